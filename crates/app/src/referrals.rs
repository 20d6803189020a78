//! Referrals (docs/loyalty.md): each person has a code (a link `/r/<code>` sends friends
//! to the brand's site with `?ref=<code>`). An event that carries a code
//! (`properties.referral_code`, or Segment's `context.referrer.id`) makes its person the
//! code owner's referral, unless it is a self-referral: the same person (a shared
//! e-mail, phone, wallet or anonymous id makes one person), or the device
//! (`context.device.id`) of one of the referrer's recent events; or someone who already
//! converted. A refused referral is kept with its reason and never pays. When the referred person first
//! does the conversion event (within the window), the referrer and the friend get their
//! points once (ledger keys per referral) and the referrer's timeline a `Referral
//! Converted`, which earning rules may also act on. The friend's `Referred` event names
//! the referrer (`referred_by`), which the graph reads as a `referred` relationship
//! (the evangelist value).
//!
//! The real-time engine calls [`follow`] for each event while referrals are on.

use rapport_domain::identifier::IdentityKind;
use rapport_domain::model::{EventView, ProfileView};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::now_millis;
use rapport_store::{DynStore, ReferralLeader, ReferralRow, StoreError, TimelineFilter};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::loyalty::{member_ids, Credit};

pub const SETTINGS_KEY: &str = "referrals";
const DAY: i64 = 86_400_000;
/// Codes are made of these (no 0/O, 1/I/L): easy to read out and type.
const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

fn invalid(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::invalid(field, reason)
}

/// The referral programme (`GET|PUT /api/referrals/settings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReferralSettings {
    /// Off: codes are still given, but no referral is recorded or credited.
    pub enabled: bool,
    /// Points for the referrer when a referred friend converts.
    pub referrer_points: i64,
    /// Points for the friend on the same conversion (0: none).
    pub friend_points: i64,
    /// The event that counts as converting.
    pub conversion_event: String,
    /// A referral that has not converted after this many days no longer pays.
    pub window_days: i64,
    /// Where `/r/<code>` sends people (`?ref=<code>` added).
    pub landing_url: String,
}

impl Default for ReferralSettings {
    fn default() -> Self {
        ReferralSettings {
            enabled: false,
            referrer_points: 500,
            friend_points: 0,
            conversion_event: "Order Completed".into(),
            window_days: 90,
            landing_url: "/".into(),
        }
    }
}

pub async fn settings(store: &DynStore) -> Result<ReferralSettings, StoreError> {
    crate::stored_settings(store, SETTINGS_KEY).await
}

pub async fn set_settings(
    store: &DynStore,
    s: ReferralSettings,
) -> Result<ReferralSettings, StoreError> {
    for (f, v) in [
        ("referrer_points", s.referrer_points),
        ("friend_points", s.friend_points),
    ] {
        if !(0..=rapport_domain::loyalty::MAX_POINTS).contains(&v) {
            return Err(invalid(
                f,
                format!(
                    "whole points from 0 to {}",
                    rapport_domain::loyalty::MAX_POINTS
                ),
            ));
        }
    }
    let ev = s.conversion_event.trim();
    if ev.is_empty() || ev.len() > 200 || ev != s.conversion_event {
        return Err(invalid(
            "conversion_event",
            "an event name, 1 to 200 characters, no surrounding spaces",
        ));
    }
    if !(1..=3_650).contains(&s.window_days) {
        return Err(invalid("window_days", "from 1 to 3650"));
    }
    let url = s.landing_url.as_str();
    let ok = url.starts_with('/') && !url.starts_with("//")
        || url.starts_with("https://")
        || url.starts_with("http://");
    if !ok || url.len() > 500 || url.chars().any(char::is_whitespace) {
        return Err(invalid(
            "landing_url",
            "a path (/…) or an http(s) URL without spaces",
        ));
    }
    let v = serde_json::to_value(&s).map_err(|e| StoreError::Backend(e.to_string()))?;
    store.set_setting(SETTINGS_KEY, v, now_millis()).await?;
    Ok(s)
}

fn new_code() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .take(8)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// A person's code (made on first ask).
pub async fn code_of(store: &DynStore, person: ProfileId) -> Result<String, StoreError> {
    store.referral_code(person, new_code(), now_millis()).await
}

/// Where a code's link sends people.
pub fn landing(s: &ReferralSettings, code: &str) -> String {
    let sep = if s.landing_url.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{}{sep}ref={code}", s.landing_url)
}

/// The referral code an event carries, if any.
pub fn code_in(ev: &EventView) -> Option<String> {
    fn from(v: &Value) -> Option<String> {
        let c = v.as_str()?.trim();
        (!c.is_empty() && c.len() <= 40).then(|| c.to_ascii_uppercase())
    }
    from(&ev.properties["referral_code"]).or_else(|| from(&ev.context["referrer"]["id"]))
}

/// The engine's call for each event while referrals are on: a code makes a referral; the
/// conversion event credits one.
pub async fn follow(
    store: &DynStore,
    s: &ReferralSettings,
    person: ProfileId,
    ev: &EventView,
) -> Result<(), StoreError> {
    if let Some(code) = code_in(ev) {
        attribute(store, s, person, &code, ev).await?;
    }
    if ev.kind == "track" && ev.name.as_deref() == Some(s.conversion_event.as_str()) {
        converted(store, s, person, ev).await?;
    }
    Ok(())
}

/// How to name a person to the graph: their first identity, prefixed by its kind.
fn identity_of(v: &ProfileView) -> Option<String> {
    let order = |k: IdentityKind| match k {
        IdentityKind::UserId => 0,
        IdentityKind::Email => 1,
        _ => 2,
    };
    v.identities
        .iter()
        .filter(|i| i.kind != IdentityKind::AnonymousId)
        .min_by_key(|i| order(i.kind))
        .map(|i| format!("{}:{}", i.kind.as_str(), i.value))
}

/// Why a referral is a self-referral, if it is one.
async fn self_referral(
    store: &DynStore,
    s: &ReferralSettings,
    referrer: ProfileId,
    person: ProfileId,
    ev: &EventView,
) -> Result<Option<String>, StoreError> {
    if referrer == person {
        return Ok(Some("self-referral: the referrer's own code".into()));
    }
    // The device only: a network address is shared by whole offices and households
    // (and is often the collector's own), so it would refuse honest friends.
    if let Some(device) = ev.context["device"]["id"]
        .as_str()
        .filter(|d| !d.is_empty())
    {
        let recent = store
            .timeline(
                referrer,
                &TimelineFilter {
                    limit: 200,
                    ..Default::default()
                },
            )
            .await?;
        if recent
            .items
            .iter()
            .any(|e| e.context["device"]["id"].as_str() == Some(device))
        {
            return Ok(Some("self-referral: the referrer's device".into()));
        }
    }
    // An existing customer is not brought by a friend.
    let before = store
        .named_events(
            vec![person],
            vec![s.conversion_event.clone()],
            0,
            ev.occurred_at.timestamp_millis(),
            2,
        )
        .await?;
    if before.iter().any(|e| e.id != ev.id) {
        return Ok(Some("already a customer".into()));
    }
    Ok(None)
}

async fn attribute(
    store: &DynStore,
    s: &ReferralSettings,
    person: ProfileId,
    code: &str,
    ev: &EventView,
) -> Result<(), StoreError> {
    let Some(owner) = store.code_owner(code.to_string()).await? else {
        return Ok(());
    };
    let referrer = match store.profile(owner).await {
        Ok(v) => v,
        Err(StoreError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let friend = store.profile(person).await?;
    if store.referral_of(member_ids(&friend)).await?.is_some() {
        return Ok(());
    }
    let refused = self_referral(store, s, referrer.id, friend.id, ev).await?;
    let at = ev.occurred_at.timestamp_millis();
    let mut events = Vec::new();
    if refused.is_none() {
        if let Some(by) = identity_of(&referrer) {
            events.push(crate::timeline::event(
                friend.id,
                crate::loyalty::SOURCE,
                "Referred",
                &format!("referred:{}", friend.id),
                at,
                json!({"referred_by": by, "referral_code": code}),
            )?);
        }
    }
    store
        .add_referral(
            ReferralRow {
                id: 0,
                code: code.to_string(),
                referrer_id: referrer.id,
                referred_id: friend.id,
                status: if refused.is_some() {
                    "refused"
                } else {
                    "pending"
                }
                .into(),
                reason: refused,
                created_at: at,
                converted_at: None,
            },
            events,
        )
        .await?;
    Ok(())
}

async fn converted(
    store: &DynStore,
    s: &ReferralSettings,
    person: ProfileId,
    ev: &EventView,
) -> Result<(), StoreError> {
    let friend = store.profile(person).await?;
    let Some(r) = store.referral_of(member_ids(&friend)).await? else {
        return Ok(());
    };
    let at = ev.occurred_at.timestamp_millis();
    if r.status != "pending" || at < r.created_at || at > r.created_at + s.window_days * DAY {
        return Ok(());
    }
    let referrer = match store.profile(r.referrer_id).await {
        Ok(v) => v.id,
        Err(StoreError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    // Credited first under keys of their own: after a crash here the conversion is
    // looked at again and the credits are not written twice.
    let pay = [
        (referrer, s.referrer_points, "referrer"),
        (friend.id, s.friend_points, "friend"),
    ];
    for (who, points, role) in pay {
        if points > 0 {
            Credit {
                person: who,
                kind: "earn",
                points,
                key: format!("referral:{}:{role}", r.id),
                source: "referral".into(),
                reason: format!("referral {}", r.code),
                props: json!({"referral_id": r.id, "role": role}),
            }
            .write(store)
            .await?;
        }
    }
    let event = crate::timeline::event(
        referrer,
        crate::loyalty::SOURCE,
        "Referral Converted",
        &format!("referral-converted:{}", r.id),
        at,
        json!({"referral_id": r.id, "friend_profile_id": friend.id, "code": r.code}),
    )?;
    store.convert_referral(r.id, at, vec![event]).await?;
    Ok(())
}

/// A person's side of referrals (`GET /api/profiles/{id}/referral`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReferralView {
    pub profile_id: ProfileId,
    pub code: String,
    /// Where the code's link sends people.
    pub landing: String,
    /// The referral that brought this person, if any.
    pub referred_by: Option<ReferralRow>,
    /// The people they referred, newest first.
    pub referrals: Vec<ReferralRow>,
    pub converted: usize,
}

pub async fn view(store: &DynStore, id: ProfileId) -> Result<ReferralView, StoreError> {
    let v = store.profile(id).await?;
    let s = settings(store).await?;
    let code = code_of(store, v.id).await?;
    let referrals = store.referrals_by(member_ids(&v), 200).await?;
    Ok(ReferralView {
        profile_id: v.id,
        landing: landing(&s, &code),
        code,
        referred_by: store.referral_of(member_ids(&v)).await?,
        converted: referrals.iter().filter(|r| r.status == "converted").count(),
        referrals,
    })
}

/// Top referrers.
pub async fn leaders(store: &DynStore, limit: usize) -> Result<Vec<ReferralLeader>, StoreError> {
    store.referral_leaders(limit).await
}

/// The newest referrals with a status (`pending`, `converted`, `refused`; any: none).
pub async fn list(
    store: &DynStore,
    status: Option<String>,
    limit: usize,
) -> Result<Vec<ReferralRow>, StoreError> {
    if let Some(st) = &status {
        if !matches!(st.as_str(), "pending" | "converted" | "refused") {
            return Err(invalid("status", "pending, converted or refused"));
        }
    }
    store.referrals(status, limit).await
}
