//! Data subjects' rights and staff accountability: the export of everything stored
//! about a person (GDPR Art. 15/20), erasure (Art. 17) with identifiers remembered by
//! hash only so tracking cannot recreate the person, and the audit of staff access.
//! Used alike by the staff API, the web app and the customer portal.

use crate::changes::{announce, Change};
use rapport_domain::privacy::identifier_hash;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::{now_millis, Millis};
use rapport_domain::Message;
use rapport_store::{AuditEntry, DynStore, ErasureReport, StoreError, TimelineFilter};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The export's format name; a change to its shape changes the number.
pub const EXPORT_FORMAT: &str = "rapport.person-export/1";
/// Other processes' erasures are seen within this long; this process's at once.
const ERASED_TTL: Duration = Duration::from_secs(10);

/// Everything stored about `person` as one JSON document: the profile (identities,
/// traits, consents, merges, network scores), segments, scores with their explanations,
/// every event, and every other row about them by table.
pub async fn export(store: &DynStore, person: ProfileId) -> Result<Value, StoreError> {
    let mut profile = store.profile(person).await?;
    let id = profile.id;
    profile.network = store.graph_scores(vec![id]).await?.into_iter().next();
    let segments = store.profile_segments(id).await?;
    let scores = store.profile_scores(id).await?;
    let mut events = Vec::new();
    let mut filter = TimelineFilter {
        limit: 5_000,
        ..Default::default()
    };
    loop {
        let page = store.timeline(id, &filter).await?;
        let Some(last) = page.items.last() else { break };
        filter.before = Some((last.occurred_at.timestamp_millis(), last.id));
        let more = page.next_cursor.is_some();
        events.extend(page.items);
        if !more {
            break;
        }
    }
    let records: serde_json::Map<String, Value> = store
        .person_records(id)
        .await?
        .into_iter()
        .map(|(table, rows)| (table, Value::Array(rows)))
        .collect();
    Ok(json!({
        "format": EXPORT_FORMAT,
        "exported_at": rapport_domain::time::to_datetime(now_millis()),
        "person": id,
        "profile": profile,
        "segments": segments,
        "scores": scores,
        "events": events,
        "records": records,
    }))
}

/// Records one staff action in the audit.
pub async fn audit(
    store: &DynStore,
    who: &str,
    action: &str,
    target: String,
    detail: Value,
) -> Result<(), StoreError> {
    store
        .record_audit(AuditEntry {
            id: 0,
            at: now_millis(),
            who: who.to_string(),
            action: action.to_string(),
            target,
            detail,
        })
        .await
}

/// Identifiers of erased people, by hash: messages that carry one are not stored, so a
/// tracker still holding an erased person's cookie or address does not bring them back.
pub struct Erased {
    store: DynStore,
    cached: RwLock<Option<(Arc<HashSet<String>>, Instant)>>,
}

impl Erased {
    pub fn new(store: DynStore) -> Erased {
        Erased {
            store,
            cached: RwLock::new(None),
        }
    }

    async fn hashes(&self) -> Result<Arc<HashSet<String>>, StoreError> {
        if let Ok(c) = self.cached.read() {
            if let Some((set, at)) = c.as_ref() {
                if at.elapsed() < ERASED_TTL {
                    return Ok(set.clone());
                }
            }
        }
        self.reload().await
    }

    async fn reload(&self) -> Result<Arc<HashSet<String>>, StoreError> {
        let set = Arc::new(self.store.erased_hashes().await?.into_iter().collect());
        if let Ok(mut c) = self.cached.write() {
            *c = Some((Arc::clone(&set), Instant::now()));
        }
        Ok(set)
    }

    /// Takes out the messages carrying an erased identifier; returns how many.
    pub async fn screen(&self, messages: &mut Vec<Message>) -> Result<usize, StoreError> {
        let set = self.hashes().await?;
        if set.is_empty() {
            return Ok(0);
        }
        let before = messages.len();
        messages.retain(|m| {
            !m.identifiers
                .iter()
                .any(|k| set.contains(&identifier_hash(k)))
        });
        let n = before - messages.len();
        if n > 0 {
            crate::metrics::metrics().messages_erased.inc_by(n as u64);
        }
        Ok(n)
    }

    /// Erases `person` (see `PrivacyStore::erase`); `remember`: their identifiers are
    /// kept by hash so tracking cannot recreate them. Irreversible.
    pub async fn erase(
        &self,
        person: ProfileId,
        remember: bool,
        by: &str,
        at: Millis,
    ) -> Result<ErasureReport, StoreError> {
        let canonical = self.store.profile(person).await?.id;
        let report = self.store.erase(vec![canonical], remember, by, at).await?;
        self.reload().await?;
        announce(&self.store, Change::Standing).await?;
        announce(&self.store, Change::Retracted).await?;
        tracing::info!(
            person = canonical,
            profiles = report.profiles,
            events_anonymised = report.events_anonymised,
            by,
            "person erased"
        );
        Ok(report)
    }
}

/// The consent a person must have granted to be in an advertising audience.
pub const AD_CONSENT: (&str, &str) = ("ads", "custom_audiences");

/// A segment's members as a hashed customer list for `platform` (Meta Custom Audiences,
/// Google Customer Match): a CSV of SHA-256 hex of each normalised e-mail and phone, a
/// row per address (the person's first phone on their first row), only people whose
/// latest `ads` × `custom_audiences` consent is granted. Returns the CSV, people
/// included and people left out for want of consent.
pub async fn ad_audience(
    store: &DynStore,
    segment: i64,
    platform: rapport_domain::privacy::AdPlatform,
) -> Result<(String, usize, usize), StoreError> {
    use rapport_domain::model::ConsentStatus;
    use rapport_domain::privacy::hex_sha256;
    use rapport_domain::IdentityKind;
    store.segment(segment).await?;
    let mut csv = String::from(platform.header());
    csv.push('\n');
    let (mut included, mut excluded) = (0, 0);
    let mut after = 0;
    loop {
        let ids = store.segment_member_ids(segment, after, 1_000).await?;
        let Some(last) = ids.last() else { break };
        after = *last;
        for p in store.profiles(ids).await? {
            let granted = p.consents.iter().any(|c| {
                (c.channel.as_str(), c.purpose.as_str()) == AD_CONSENT
                    && c.status == ConsentStatus::Granted
            });
            if !granted {
                excluded += 1;
                continue;
            }
            let of = |kind: IdentityKind| {
                p.identities
                    .iter()
                    .filter(move |i| i.kind == kind)
                    .map(|i| i.value.as_str())
            };
            let emails: Vec<String> = of(IdentityKind::Email)
                .map(|e| hex_sha256(&platform.email(e)))
                .collect();
            let phone = of(IdentityKind::Phone)
                .next()
                .map(|ph| hex_sha256(&platform.phone(ph)))
                .unwrap_or_default();
            if emails.is_empty() && phone.is_empty() {
                continue;
            }
            included += 1;
            if emails.is_empty() {
                csv.push_str(&format!(",{phone}\n"));
            }
            for (i, e) in emails.iter().enumerate() {
                let ph = if i == 0 { phone.as_str() } else { "" };
                csv.push_str(&format!("{e},{ph}\n"));
            }
        }
    }
    Ok((csv, included, excluded))
}

const RETENTION_KEY: &str = "retention";
const DAY_MS: i64 = 86_400_000;

/// How long data is kept (`GET`/`PUT /api/settings/retention`); absent: for ever.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// People with no identifier but anonymous ids, not seen for this many days, are
    /// erased (their identifiers are not remembered).
    pub anonymous_profile_days: Option<u32>,
    /// Events older than this many days are deleted; their daily counts per type, name
    /// and channel are kept (`event_aggregates`).
    pub event_days: Option<u32>,
}

impl RetentionSettings {
    pub fn check(&self) -> Result<(), StoreError> {
        for (field, v) in [
            ("anonymous_profile_days", self.anonymous_profile_days),
            ("event_days", self.event_days),
        ] {
            if v.is_some_and(|d| d == 0 || d > 36_500) {
                return Err(StoreError::invalid(
                    field,
                    "1 to 36,500 days, or null to keep for ever",
                ));
            }
        }
        Ok(())
    }
}

pub async fn retention(store: &DynStore) -> Result<RetentionSettings, StoreError> {
    Ok(match store.setting(RETENTION_KEY).await? {
        Some(v) => serde_json::from_value(v).unwrap_or_default(),
        None => RetentionSettings::default(),
    })
}

pub async fn set_retention(store: &DynStore, s: &RetentionSettings) -> Result<(), StoreError> {
    s.check()?;
    let v = serde_json::to_value(s).map_err(|e| StoreError::Backend(e.to_string()))?;
    store.set_setting(RETENTION_KEY, v, now_millis()).await
}

/// What one retention run removed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RetentionReport {
    pub anonymous_people: usize,
    pub events: usize,
}

/// Runs the retention rules as of `now` until nothing is left: anonymous people erased
/// a thousand per transaction, old events deleted ten thousand per transaction.
pub async fn apply_retention(store: &DynStore, now: Millis) -> Result<RetentionReport, StoreError> {
    let s = retention(store).await?;
    let mut report = RetentionReport::default();
    if let Some(days) = s.anonymous_profile_days {
        let before = now - i64::from(days) * DAY_MS;
        loop {
            let people = store.anonymous_people(before, 1_000).await?;
            if people.is_empty() {
                break;
            }
            report.anonymous_people += people.len();
            store.erase(people, false, "retention", now).await?;
        }
    }
    if let Some(days) = s.event_days {
        let before = now - i64::from(days) * DAY_MS;
        loop {
            let n = store.expire_events(before, 10_000).await?;
            report.events += n;
            if n == 0 {
                break;
            }
        }
    }
    if report.anonymous_people + report.events > 0 {
        announce(store, Change::Standing).await?;
        announce(store, Change::Retracted).await?;
        let m = crate::metrics::metrics();
        m.retention_people.inc_by(report.anonymous_people as u64);
        m.retention_events.inc_by(report.events as u64);
    }
    tracing::info!(
        anonymous_people = report.anonymous_people,
        events = report.events,
        "retention applied"
    );
    Ok(report)
}

/// The daily retention job: a first run a minute after start, then every 24 hours.
pub async fn run_retention(store: DynStore, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        if let Err(e) = apply_retention(&store, now_millis()).await {
            tracing::warn!(error = %e, "retention failed; retrying in an hour");
            wait = Duration::from_secs(3600);
            continue;
        }
        wait = Duration::from_secs(86_400);
    }
}
