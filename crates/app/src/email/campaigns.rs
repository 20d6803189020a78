//! Campaigns: one template to an audience — a segment evaluated when the campaign starts,
//! or a list of people — planned in chunks (each person's message rendered, signed and
//! stored with `Email Sent`, idempotent per campaign × person, so a restart resumes
//! where planning stopped and nobody gets two), paced by `per_minute`, paused, resumed
//! or cancelled, with a report. `rapport serve` runs [`run`].
//!
//! An A/B test (`ab`) first plans a sample of the audience, each person drawn to one
//! variant (another template, or another subject); after the wait the variant with the
//! best open or click rate among the sample wins and the rest of the audience gets it.

use super::{compile, context_of, invalid, Email, Prepared, Recipient};
use rapport_domain::identifier::IdentityKind;
use rapport_domain::resolve::EventRow;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::{now_millis, parse_timestamp};
use rapport_email::ab::{self, Metric, Tally};
use rapport_email::address::{self, Candidate};
use rapport_segment::parser::parse;
use rapport_segment::sql;
use rapport_store::{EmailCampaign, EmailMessage, StoreError};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// People planned per transaction.
const CHUNK: usize = 500;

/// What staff give to make a campaign.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    pub name: String,
    /// Template name or id.
    pub template: String,
    pub from: String,
    #[serde(default)]
    pub from_name: Option<String>,
    /// `marketing` (default: consent needed, unsubscribe headers) or `transactional`.
    #[serde(default)]
    pub kind: Option<String>,
    /// `{"segment": NAME_OR_ID}` or `{"profiles": [ID, …]}`.
    #[schema(value_type = Object)]
    pub audience: Value,
    /// ISO-8601; the campaign starts then (`start: true` without it: now).
    #[serde(default)]
    pub send_at: Option<String>,
    /// Messages per minute handed to the relay.
    #[serde(default)]
    pub per_minute: Option<i64>,
    /// Schedule it now (else it stays a draft until `POST …/start`).
    #[serde(default)]
    pub start: bool,
    /// An A/B test of subject or content.
    #[serde(default)]
    pub ab: Option<AbInput>,
}

/// An A/B test as staff give it.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbInput {
    /// 2 to 5 variants; the first is the control.
    pub variants: Vec<VariantInput>,
    /// The share of the audience in the test, 1–100 (default 20).
    #[serde(default)]
    pub sample_percent: Option<i64>,
    /// `open` (default) or `click`.
    #[serde(default)]
    pub metric: Option<String>,
    /// How long after the sample is planned the winner is chosen (default 4 hours).
    #[serde(default)]
    pub wait_seconds: Option<i64>,
}

/// One variant: another template, another subject, or both (unset: the campaign's).
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantInput {
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
}

/// A campaign's A/B test as stored in [`EmailCampaign::ab`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AbTest {
    pub variants: Vec<Variant>,
    pub sample_percent: u8,
    pub metric: Metric,
    pub wait_seconds: i64,
    /// When the winner is chosen (set once the sample is planned).
    pub test_ends_at: Option<i64>,
    pub winner: Option<usize>,
    /// The sample per variant when the winner was chosen.
    #[serde(default)]
    pub tallies: Vec<Tally>,
}

/// A stored variant.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Variant {
    pub template_id: i64,
    pub subject: Option<String>,
}

fn ab_of(c: &EmailCampaign) -> Option<AbTest> {
    c.ab.clone().and_then(|v| serde_json::from_value(v).ok())
}

/// Checks an A/B test: every variant's template and subject compile.
async fn ab_test(email: &Email, input: &AbInput, c: &EmailCampaign) -> Result<AbTest, StoreError> {
    if !(2..=5).contains(&input.variants.len()) {
        return Err(invalid("ab.variants", "2 to 5 variants"));
    }
    let sample = input.sample_percent.unwrap_or(20);
    if !(1..=100).contains(&sample) {
        return Err(invalid("ab.sample_percent", "from 1 to 100"));
    }
    let metric = match input.metric.as_deref().unwrap_or("open") {
        "open" => Metric::Open,
        "click" => Metric::Click,
        _ => return Err(invalid("ab.metric", "`open` or `click`")),
    };
    let wait = input.wait_seconds.unwrap_or(4 * 3600);
    if !(0..=30 * 86_400).contains(&wait) {
        return Err(invalid("ab.wait_seconds", "from 0 to 2,592,000 (30 days)"));
    }
    let mut variants = Vec::with_capacity(input.variants.len());
    for (i, v) in input.variants.iter().enumerate() {
        let template_id = match &v.template {
            Some(t) => {
                email
                    .template(t)
                    .await
                    .map_err(|e| match e {
                        StoreError::Invalid { reason, .. } => {
                            invalid(&format!("ab.variants[{i}].template"), reason)
                        }
                        e => e,
                    })?
                    .id
            }
            None => c.template_id,
        };
        let subject = v.subject.as_ref().map(|s| s.trim().to_string());
        if subject
            .as_ref()
            .is_some_and(|s| s.is_empty() || s.len() > 998)
        {
            return Err(invalid(
                &format!("ab.variants[{i}].subject"),
                "1 to 998 characters",
            ));
        }
        let variant = Variant {
            template_id,
            subject,
        };
        prepare(email, c, &variant).await.map_err(|e| match e {
            StoreError::Invalid { field, reason } => {
                invalid(&format!("ab.variants[{i}].{field}"), reason)
            }
            e => e,
        })?;
        variants.push(variant);
    }
    Ok(AbTest {
        variants,
        sample_percent: sample as u8,
        metric,
        wait_seconds: wait,
        test_ends_at: None,
        winner: None,
        tallies: Vec::new(),
    })
}

/// What every message of one variant shares.
async fn prepare(email: &Email, c: &EmailCampaign, v: &Variant) -> Result<Prepared, StoreError> {
    let mut prep = email
        .prepare(
            &v.template_id.to_string(),
            &c.from_address,
            c.from_name.clone(),
            &c.kind,
            Some(c.id),
        )
        .await?;
    if let Some(s) = &v.subject {
        prep.template.subject = s.clone();
        // The template compiled already: an error now is the variant's subject.
        prep.compiled = compile(&prep.template).map_err(|e| match e {
            StoreError::Invalid { reason, .. } => invalid("subject", reason),
            e => e,
        })?;
    }
    Ok(prep)
}

/// The people an audience names now. A segment that no longer parses, or is gone, is an
/// error naming `audience.segment`.
pub async fn audience(email: &Email, a: &Value) -> Result<Vec<ProfileId>, StoreError> {
    let store = email.store();
    if let Some(ids) = a.get("profiles") {
        let ids = ids
            .as_array()
            .filter(|v| !v.is_empty() && v.len() <= 1_000_000)
            .ok_or_else(|| invalid("audience.profiles", "1 to 1,000,000 profile ids"))?;
        let mut out = Vec::with_capacity(ids.len());
        for (i, v) in ids.iter().enumerate() {
            out.push(
                v.as_i64()
                    .ok_or_else(|| invalid(&format!("audience.profiles[{i}]"), "a profile id"))?,
            );
        }
        return Ok(out);
    }
    let seg = match a.get("segment") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(invalid(
                "audience",
                "`{\"segment\": NAME_OR_ID}` or `{\"profiles\": [ID, …]}`",
            ))
        }
    };
    let row = match seg.parse::<i64>() {
        Ok(id) => store.segment(id).await.ok(),
        Err(_) => store.segment_by_name(&seg).await?,
    }
    .ok_or_else(|| invalid("audience.segment", format!("no segment `{seg}`")))?;
    if row.kind == "static" {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = store.segment_member_ids(row.id, after, 10_000).await?;
            let Some(&last) = page.last() else { break };
            after = last;
            out.extend(page);
        }
        return Ok(out);
    }
    let e = parse(&row.definition).map_err(|e| {
        invalid(
            "audience.segment",
            format!("segment `{}` no longer parses: {e}", row.name),
        )
    })?;
    store
        .segment_all_matches(sql::compile(&e, store.dialect(), now_millis()))
        .await
}

/// Checks and saves a campaign (a draft, or scheduled with `start` / `send_at`).
pub async fn create(email: &Email, input: CampaignInput) -> Result<EmailCampaign, StoreError> {
    let name = input.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(invalid("name", "1 to 200 characters"));
    }
    let kind = input.kind.clone().unwrap_or_else(|| "marketing".into());
    if !matches!(kind.as_str(), "marketing" | "transactional") {
        return Err(invalid("kind", "`marketing` or `transactional`"));
    }
    if let Some(r) = input.per_minute {
        if !(1..=1_000_000).contains(&r) {
            return Err(invalid("per_minute", "from 1 to 1,000,000"));
        }
    }
    let send_at = match &input.send_at {
        Some(t) => Some(parse_timestamp(t).ok_or_else(|| invalid("send_at", "an ISO-8601 time"))?),
        None => None,
    };
    // The template, sender and audience are checked now; the audience is evaluated again
    // when the campaign starts.
    let prep = email
        .prepare(
            &input.template,
            &input.from,
            input.from_name.clone(),
            &kind,
            None,
        )
        .await?;
    audience(email, &input.audience).await?;
    let now = now_millis();
    let mut c = EmailCampaign {
        id: 0,
        name: name.to_string(),
        template_id: prep.template.id,
        from_address: input.from.trim().to_string(),
        from_name: input.from_name,
        kind,
        audience: input.audience,
        status: if input.start || send_at.is_some() {
            "scheduled".into()
        } else {
            "draft".into()
        },
        send_at: send_at.or(input.start.then_some(now)),
        per_minute: input.per_minute,
        planned: 0,
        skipped: 0,
        error: None,
        created_at: now,
        started_at: None,
        finished_at: None,
        ab: None,
    };
    if let Some(a) = &input.ab {
        let test = ab_test(email, a, &c).await?;
        c.ab = Some(serde_json::to_value(test).map_err(|e| StoreError::Backend(e.to_string()))?);
    }
    c.id = email.store().save_campaign(c.clone()).await?;
    Ok(c)
}

async fn get(email: &Email, id: i64) -> Result<EmailCampaign, StoreError> {
    email
        .store()
        .campaign(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("campaign {id}")))
}

/// Starts, pauses, resumes or cancels a campaign.
pub async fn act(email: &Email, id: i64, action: &str) -> Result<EmailCampaign, StoreError> {
    let store = email.store();
    let mut c = get(email, id).await?;
    let wrong = |c: &EmailCampaign| {
        StoreError::Conflict(format!("campaign {id} is {}: it cannot {action}", c.status))
    };
    match action {
        "start" => {
            if c.status != "draft" {
                return Err(wrong(&c));
            }
            c.status = "scheduled".into();
            c.send_at = Some(now_millis());
        }
        "pause" => {
            if !matches!(
                c.status.as_str(),
                "scheduled" | "planning" | "testing" | "sending"
            ) {
                return Err(wrong(&c));
            }
            c.status = "paused".into();
            store.save_campaign(c.clone()).await?;
            store.move_campaign_messages(id, "queued", "paused").await?;
            return Ok(c);
        }
        "resume" => {
            if c.status != "paused" {
                return Err(wrong(&c));
            }
            store.move_campaign_messages(id, "paused", "queued").await?;
            // Planning picks up past the people already planned; a test whose sample is
            // planned waits on for its winner.
            let waiting = ab_of(&c).is_some_and(|a| a.test_ends_at.is_some() && a.winner.is_none());
            c.status = if waiting {
                "testing"
            } else if c.started_at.is_some() {
                "planning"
            } else {
                "scheduled"
            }
            .into();
        }
        "cancel" => {
            if matches!(c.status.as_str(), "done" | "cancelled" | "failed") {
                return Err(wrong(&c));
            }
            c.status = "cancelled".into();
            c.finished_at = Some(now_millis());
            store.save_campaign(c.clone()).await?;
            for from in ["queued", "paused"] {
                store.move_campaign_messages(id, from, "cancelled").await?;
            }
            return Ok(c);
        }
        other => {
            return Err(invalid(
                "action",
                format!("`{other}`: use start, pause, resume or cancel"),
            ))
        }
    }
    store.save_campaign(c.clone()).await?;
    Ok(c)
}

/// A test send of the campaign's message to a staff address (transactional: no consent
/// needed, not counted in the campaign).
pub async fn test_send(email: &Email, id: i64, to: &str) -> Result<EmailMessage, StoreError> {
    let c = get(email, id).await?;
    if !to.starts_with("email:") {
        return Err(invalid("to", "`email:<address>` of the staff member"));
    }
    email
        .send(super::SendRequest {
            template: c.template_id.to_string(),
            to: json!(to),
            from: c.from_address,
            from_name: c.from_name,
            data: json!({}),
            idempotency_key: None,
            kind: Some("transactional".into()),
            not_before: None,
            untracked: false,
            thread: None,
        })
        .await
}

/// Plans what is due and closes what is sent; returns the messages made.
pub async fn step(email: &Arc<Email>) -> Result<usize, StoreError> {
    let store = email.store();
    let now = now_millis();
    let mut made = 0;
    for mut c in store.campaigns().await? {
        match c.status.as_str() {
            "scheduled" if c.send_at.is_none_or(|t| t <= now) => {
                c.status = "planning".into();
                c.started_at = Some(now);
                store.save_campaign(c.clone()).await?;
                made += plan(email, c).await?;
            }
            "planning" => made += plan(email, c).await?,
            "testing" => {
                let Some(mut test) = ab_of(&c) else { continue };
                if test.test_ends_at.is_some_and(|t| t <= now) {
                    let r = store.campaign_report(c.id).await?;
                    test.tallies = (0..test.variants.len() as i64)
                        .map(|i| {
                            r.variants
                                .iter()
                                .find(|v| v.variant == i)
                                .map(|v| Tally {
                                    sent: v.sent,
                                    opened: v.opened,
                                    clicked: v.clicked,
                                })
                                .unwrap_or_default()
                        })
                        .collect();
                    test.winner = Some(ab::winner(&test.tallies, test.metric));
                    c.ab = serde_json::to_value(&test).ok();
                    c.status = "planning".into();
                    store.save_campaign(c.clone()).await?;
                    made += plan(email, c).await?;
                }
            }
            "sending" => {
                let r = store.campaign_report(c.id).await?;
                if !["queued", "paused", "sending"]
                    .iter()
                    .any(|s| r.statuses.contains_key(*s))
                {
                    c.status = "done".into();
                    c.finished_at = Some(now);
                    store.save_campaign(c).await?;
                }
            }
            _ => {}
        }
    }
    Ok(made)
}

/// Makes the messages of a planning campaign, a chunk per transaction, past the people
/// it already has; stops when the campaign is paused or cancelled meanwhile.
async fn plan(email: &Arc<Email>, mut c: EmailCampaign) -> Result<usize, StoreError> {
    let store = email.store();
    let people = match audience(email, &c.audience).await {
        Ok(p) => p,
        Err(StoreError::Invalid { field, reason }) => {
            c.status = "failed".into();
            c.error = Some(format!("{field}: {reason}"));
            c.finished_at = Some(now_millis());
            store.save_campaign(c).await?;
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    // Without a test one message for all; in a test's sample one per variant; after it,
    // the winner's.
    let mut test = ab_of(&c);
    let testing = test.as_ref().is_some_and(|t| t.winner.is_none());
    let variants: Vec<Variant> = match &test {
        None => vec![Variant {
            template_id: c.template_id,
            subject: None,
        }],
        Some(t) if testing => t.variants.clone(),
        Some(t) => {
            let w = t
                .winner
                .unwrap_or(0)
                .min(t.variants.len().saturating_sub(1));
            t.variants.get(w).cloned().into_iter().collect()
        }
    };
    let mut preps = Vec::with_capacity(variants.len());
    for (i, v) in variants.iter().enumerate() {
        match prepare(email, &c, v).await {
            Ok(mut p) => {
                p.variant = testing.then_some(i as i64);
                preps.push(p);
            }
            Err(StoreError::Invalid { field, reason }) => {
                c.status = "failed".into();
                c.error = Some(format!("{field}: {reason}"));
                store.save_campaign(c).await?;
                return Ok(0);
            }
            Err(e) => return Err(e),
        }
    }
    let preps = Arc::new(preps);
    let done: HashSet<ProfileId> = store.campaign_people(c.id).await?.into_iter().collect();
    let mut seen = HashSet::new();
    let sample = test.as_ref().map_or(100, |t| t.sample_percent);
    let todo: Vec<ProfileId> = people
        .into_iter()
        .filter(|p| !done.contains(p) && seen.insert(*p))
        .filter(|p| !testing || ab::in_sample(c.id, *p, sample))
        .collect();
    let start = c.started_at.unwrap_or_else(now_millis);
    let mut index = done.len() as i64;
    let mut made = 0;
    let data = json!({});
    // Three chunks in flight: the next one's people read, this one's made, the last
    // one's stored — the reads, the rendering and the writes each have a core or a
    // connection of their own.
    let chunks: Vec<Vec<ProfileId>> = todo.chunks(CHUNK).map(<[_]>::to_vec).collect();
    let load = |ids: Vec<ProfileId>| {
        let store = store.clone();
        tokio::spawn(async move {
            let persons = store.profiles(ids).await?;
            let addresses: Vec<String> = persons
                .iter()
                .flat_map(|p| p.identities.iter())
                .filter(|i| i.kind == IdentityKind::Email)
                .map(|i| i.value.clone())
                .collect();
            let facts: HashMap<String, rapport_store::AddressFacts> = store
                .address_facts(addresses)
                .await?
                .into_iter()
                .map(|f| (f.address.clone(), f))
                .collect();
            Ok::<_, StoreError>((persons, facts))
        })
    };
    let joined = |e: tokio::task::JoinError| StoreError::Backend(e.to_string());
    let mut next = chunks.first().cloned().map(load);
    let mut storing: Option<tokio::task::JoinHandle<Result<Vec<EmailMessage>, StoreError>>> = None;
    for i in 0..chunks.len() {
        let Some(loading) = next.take() else { break };
        let (persons, facts) = loading.await.map_err(joined)??;
        next = chunks.get(i + 1).cloned().map(load);
        // Who gets what, in order (address, variant, context: reads), then the messages
        // rendered and composed on every core, then paced by their place in the queue.
        let mut slots: Vec<Option<(EmailMessage, Vec<EventRow>)>> =
            Vec::with_capacity(persons.len());
        let mut jobs = Vec::with_capacity(persons.len());
        // Scores in one read per chunk (a newsletter that names one would otherwise
        // read them person by person).
        let mut scores: HashMap<ProfileId, serde_json::Map<String, Value>> = HashMap::new();
        if preps.iter().any(|p| p.compiled.uses("scores")) {
            let ids = persons.iter().map(|p| p.id).collect();
            for s in store.scores_of(ids).await? {
                scores
                    .entry(s.profile_id)
                    .or_default()
                    .insert(s.name, json!(s.value));
            }
        }
        let segments = preps.iter().any(|p| p.compiled.uses("segments"));
        for p in persons {
            let candidates: Vec<Candidate> = p
                .identities
                .iter()
                .filter(|i| i.kind == IdentityKind::Email)
                .map(|i| {
                    let f = facts.get(&i.value);
                    Candidate {
                        address: i.value.clone(),
                        primary: f.is_some_and(|f| f.primary),
                        last_engaged: f.and_then(|f| f.last_engaged),
                        suppressed: f.is_some_and(|f| f.suppressed),
                        first_seen: i.first_seen.timestamp_millis(),
                    }
                })
                .collect();
            let key = Some(format!("campaign:{}:{}", c.id, p.id));
            let Some(choice) = address::choose(&candidates) else {
                let mut m = skipped(&c, p.id, "no e-mail address");
                m.idempotency_key = key;
                slots.push(Some((m, Vec::new())));
                continue;
            };
            let variant = if testing {
                ab::variant(c.id, p.id, preps.len())
            } else {
                0
            };
            let segments = if segments {
                store.profile_segments(p.id).await?
            } else {
                Vec::new()
            };
            let ctx = context_of(
                &p,
                &choice.address,
                &data,
                scores.remove(&p.id).unwrap_or_default(),
                segments,
            );
            jobs.push(Job {
                slot: slots.len(),
                suppressed: candidates.iter().all(|x| x.suppressed),
                last_sent: email.last_marketing(&p).await?,
                person: p,
                address: choice.address,
                reason: choice.reason.as_str(),
                ctx,
                key,
                variant,
            });
            slots.push(None);
        }
        for (slot, profile, made_one) in make_all(email, &preps, jobs).await? {
            slots[slot] = Some(match made_one {
                Ok(m) => m,
                // One person's data that does not render is that person's skip.
                Err(StoreError::Invalid { field, reason }) => {
                    let mut m = skipped(&c, profile, &format!("{field}: {reason}"));
                    m.idempotency_key = Some(format!("campaign:{}:{}", c.id, profile));
                    (m, Vec::new())
                }
                Err(e) => return Err(e),
            });
        }
        let mut batch = Vec::with_capacity(slots.len());
        for (mut m, events) in slots.into_iter().flatten() {
            if m.status != "skipped" {
                m.next_at = c
                    .per_minute
                    .map_or(start, |r| start + index * 60_000 / r.max(1));
                index += 1;
            }
            batch.push((m, events));
        }
        if let Some(prev) = storing.take() {
            made += counted(&mut c, prev.await.map_err(joined)??);
            // Paused or cancelled while planning: stop here; resuming plans the rest.
            if !save_counts(email, &mut c).await? {
                return Ok(made);
            }
        }
        let st = store.clone();
        storing = Some(tokio::spawn(async move { st.queue(batch).await }));
    }
    if let Some(prev) = storing.take() {
        made += counted(&mut c, prev.await.map_err(joined)??);
        if !save_counts(email, &mut c).await? {
            return Ok(made);
        }
    }
    match test.as_mut() {
        Some(t) if testing => {
            t.test_ends_at = Some(now_millis() + t.wait_seconds * 1000);
            c.ab = serde_json::to_value(&*t).ok();
            c.status = "testing".into();
        }
        _ => c.status = "sending".into(),
    }
    store.save_campaign(c).await?;
    Ok(made)
}

/// Adds stored messages to the campaign's counts; returns the messages made.
fn counted(c: &mut EmailCampaign, stored: Vec<EmailMessage>) -> usize {
    let mut made = 0;
    for m in &stored {
        if m.status == "skipped" {
            c.skipped += 1;
        } else {
            c.planned += 1;
            made += 1;
        }
    }
    made
}

/// Saves the counts onto the campaign as it is now (staff may have paused or cancelled
/// it meanwhile: that stays); false when it is no longer planning.
async fn save_counts(email: &Email, c: &mut EmailCampaign) -> Result<bool, StoreError> {
    let mut now = get(email, c.id).await?;
    now.planned = c.planned;
    now.skipped = c.skipped;
    email.store().save_campaign(now.clone()).await?;
    let planning = now.status == "planning";
    *c = now;
    Ok(planning)
}

/// One person's message to make.
struct Job {
    slot: usize,
    person: rapport_domain::model::ProfileView,
    address: String,
    reason: &'static str,
    suppressed: bool,
    last_sent: Option<rapport_domain::time::Millis>,
    ctx: Value,
    key: Option<String>,
    variant: usize,
}

type Made = Result<(EmailMessage, Vec<EventRow>), StoreError>;

/// Renders, composes and signs-to-be the jobs on the blocking pool, one part per core
/// (rendering is most of a campaign's planning time); returns (slot, person, message).
async fn make_all(
    email: &Arc<Email>,
    preps: &Arc<Vec<Prepared>>,
    mut jobs: Vec<Job>,
) -> Result<Vec<(usize, ProfileId, Made)>, StoreError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = jobs.len().div_ceil(cores).max(1);
    let mut parts = Vec::new();
    while !jobs.is_empty() {
        let rest = jobs.split_off(per.min(jobs.len()));
        let part = std::mem::replace(&mut jobs, rest);
        let (email, preps) = (email.clone(), preps.clone());
        parts.push(tokio::task::spawn_blocking(move || {
            part.into_iter()
                .map(|j| {
                    let made = email.make(
                        &preps[j.variant],
                        Recipient {
                            person: &j.person,
                            address: &j.address,
                            reason: j.reason,
                            suppressed: j.suppressed,
                            last_sent: j.last_sent,
                        },
                        &j.ctx,
                        j.key,
                        0,
                    );
                    (j.slot, j.person.id, made)
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut out = Vec::new();
    for p in parts {
        out.extend(p.await.map_err(|e| StoreError::Backend(e.to_string()))?);
    }
    Ok(out)
}

fn skipped(c: &EmailCampaign, profile: ProfileId, why: &str) -> EmailMessage {
    let now = now_millis();
    EmailMessage {
        id: 0,
        public_id: uuid::Uuid::now_v7().to_string(),
        idempotency_key: None,
        kind: c.kind.clone(),
        template_id: Some(c.template_id),
        campaign_id: Some(c.id),
        profile_id: profile,
        to_address: String::new(),
        address_reason: String::new(),
        from_address: c.from_address.clone(),
        subject: String::new(),
        return_path: String::new(),
        raw: Vec::new(),
        links: Vec::new(),
        status: "skipped".into(),
        attempts: 0,
        next_at: now,
        last_error: Some(why.into()),
        created_at: now,
        delivered_at: None,
        opened_at: None,
        clicked_at: None,
        unsubscribed_at: None,
        variant: None,
    }
}

/// The campaign worker `rapport serve` runs.
pub async fn run(email: Arc<Email>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let step = step(&email).await;
        let idle = Duration::from_millis(500);
        if !crate::worker::pause_after("e-mail campaigns", step, idle, idle, &mut shutdown).await {
            return;
        }
    }
}

/// A campaign with its report, as the API shows it.
pub async fn view(email: &Email, id: i64) -> Result<Value, StoreError> {
    let c = get(email, id).await?;
    let r = email.store().campaign_report(id).await?;
    Ok(json!({"campaign": c, "report": r}))
}
