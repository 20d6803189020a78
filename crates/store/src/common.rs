//! Row-to-view assembly shared by both stores, so a profile reads the same whichever
//! database holds it.

use crate::{Result, StoreError};
use rapport_domain::model::{
    ConsentStatus, ConsentView, Frequency, IdentityView, MergeView, ProfileView,
};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::{to_datetime, Millis};
use rapport_domain::IdentityKind;
use serde_json::Value;
use std::collections::HashSet;
use std::str::FromStr;

pub struct MemberRow {
    pub id: ProfileId,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub traits: Value,
    pub trait_times: Value,
    pub traits_updated_at: Millis,
}

/// `{key: at}` for each top-level key of a patch (JSON): the times of a trait edit.
pub fn times_of(patch: &str, at: Millis) -> String {
    let times: serde_json::Map<String, Value> = match serde_json::from_str(patch) {
        Ok(Value::Object(o)) => o.into_iter().map(|(k, _)| (k, Value::from(at))).collect(),
        _ => serde_json::Map::new(),
    };
    Value::Object(times).to_string()
}

pub struct ConsentRow {
    pub channel: String,
    pub purpose: String,
    pub status: String,
    pub source: String,
    pub proof: Option<String>,
    pub at: Millis,
    pub frequency: String,
}

pub struct IdentityRow {
    pub kind: String,
    pub value: String,
    pub profile_id: ProfileId,
    pub verified: bool,
    pub source: String,
    pub first_seen: Millis,
    pub last_seen: Millis,
}

pub struct MergeRow {
    pub id: i64,
    pub survivor_id: i64,
    pub merged_id: i64,
    pub member_ids: String,
    pub cause: String,
    pub message_id: Option<String>,
    pub by_whom: String,
    pub at: Millis,
    pub undone_at: Option<Millis>,
    pub undone_by: Option<String>,
}

pub const DETACH_COLUMNS: &str =
    "id, kind, value, from_profile, to_profile, by_whom, at, undone_at, undone_by";

/// A `detaches` row, in [`DETACH_COLUMNS`] order.
pub struct DetachRow {
    pub id: i64,
    pub kind: String,
    pub value: String,
    pub from_profile: i64,
    pub to_profile: i64,
    pub by_whom: String,
    pub at: Millis,
    pub undone_at: Option<Millis>,
    pub undone_by: Option<String>,
}

impl DetachRow {
    pub fn view(self) -> rapport_domain::model::DetachView {
        rapport_domain::model::DetachView {
            id: self.id,
            identifier: format!("{}:{}", self.kind, self.value),
            from_profile: self.from_profile,
            to_profile: self.to_profile,
            by: self.by_whom,
            at: to_datetime(self.at),
            undone_at: self.undone_at.map(to_datetime),
            undone_by: self.undone_by,
        }
    }
}

pub const MERGE_COLUMNS: &str =
    "id, survivor_id, merged_id, member_ids, cause, message_id, by_whom, at, undone_at, undone_by";

impl MergeRow {
    pub fn view(self) -> MergeView {
        MergeView {
            id: self.id,
            survivor_id: self.survivor_id,
            merged_id: self.merged_id,
            member_ids: serde_json::from_str(&self.member_ids).unwrap_or_default(),
            cause: self.cause,
            message_id: self.message_id,
            by: self.by_whom,
            at: to_datetime(self.at),
            undone_at: self.undone_at.map(to_datetime),
            undone_by: self.undone_by,
        }
    }
}

pub fn kind(s: &str) -> Result<IdentityKind> {
    IdentityKind::from_str(s).map_err(|e| StoreError::Backend(e.to_string()))
}

pub fn build_profile(
    canonical: ProfileId,
    members: Vec<MemberRow>,
    identities: Vec<IdentityRow>,
    consents_newest_first: Vec<ConsentRow>,
    merges: Vec<MergeRow>,
) -> Result<ProfileView> {
    let created_at = members.iter().map(|m| m.created_at).min().unwrap_or(0);
    let updated_at = members.iter().map(|m| m.updated_at).max().unwrap_or(0);
    let member_ids = members.iter().map(|m| m.id).collect();
    let traits = rapport_domain::traits::merged_view(
        members
            .into_iter()
            .map(|m| (m.traits, m.trait_times, m.traits_updated_at))
            .collect(),
    );
    let identities = identities
        .into_iter()
        .map(|i| {
            Ok(IdentityView {
                kind: kind(&i.kind)?,
                value: i.value,
                profile_id: i.profile_id,
                verified: i.verified,
                source: i.source,
                first_seen: to_datetime(i.first_seen),
                last_seen: to_datetime(i.last_seen),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut seen = HashSet::new();
    let consents = consents_newest_first
        .into_iter()
        .filter(|c| seen.insert((c.channel.clone(), c.purpose.clone())))
        .map(|c| ConsentView {
            status: ConsentStatus::parse(&c.status).unwrap_or(ConsentStatus::Denied),
            frequency: Frequency::parse(&c.frequency).unwrap_or_default(),
            channel: c.channel,
            purpose: c.purpose,
            source: c.source,
            proof: c.proof,
            at: to_datetime(c.at),
        })
        .collect();
    Ok(ProfileView {
        id: canonical,
        member_ids,
        created_at: to_datetime(created_at),
        updated_at: to_datetime(updated_at),
        traits,
        identities,
        consents,
        merges: merges.into_iter().map(MergeRow::view).collect(),
        network: None,
    })
}

/// `%q%` for LIKE, with the wildcards in `q` escaped (`\` is the escape character).
pub fn like_pattern(q: &str) -> String {
    let mut s = String::with_capacity(q.len() + 2);
    s.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

/// A search string that is an explicit identifier (`email:…`, `wallet:…`) is an exact
/// lookup; so is anything that normalises as an e-mail, phone or wallet.
pub fn exact_identifier(q: &str) -> Option<rapport_domain::IdentityKey> {
    use rapport_domain::IdentityKey;
    let q = q.trim();
    if let Some((prefix, _)) = q.split_once(':') {
        if IdentityKind::from_str(prefix).is_ok() {
            return IdentityKey::parse_prefixed(q).ok();
        }
    }
    if q.contains('@') && !q.starts_with('@') {
        return IdentityKey::parse(IdentityKind::Email, q).ok();
    }
    if q.starts_with('+') {
        return IdentityKey::parse(IdentityKind::Phone, q).ok();
    }
    // A bare 0x address may be on any chain: found by the substring search instead.
    None
}

pub fn summary(
    id: ProfileId,
    rows: Vec<(Value, Value, Millis, Millis)>,
    email: Option<String>,
) -> rapport_domain::model::ProfileSummary {
    let created = rows.iter().map(|r| r.3).min().unwrap_or(0);
    let traits =
        rapport_domain::traits::merged_view(rows.into_iter().map(|r| (r.0, r.1, r.2)).collect());
    rapport_domain::model::ProfileSummary {
        id,
        name: rapport_domain::traits::display_name(&traits),
        email,
        traits,
        created_at: to_datetime(created),
    }
}

/// The error for an unmerge aimed at a profile that was never merged away.
pub fn not_merged(p: ProfileId) -> StoreError {
    StoreError::invalid(
        "id",
        format!("profile {p} was not merged into another profile; pass the id of the merged profile (see `merges` in its profile) or a merge_id"),
    )
}

/// Keyset paging: the store fetched `limit + 1` rows; keep `limit` and, when there
/// were more, the cursor of the last one kept.
pub fn trim_page<T>(
    items: &mut Vec<T>,
    limit: usize,
    cursor: impl Fn(&T) -> String,
) -> Option<String> {
    if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor)
    } else {
        None
    }
}

/// Timeline cursor: `occurred_at-millis_id` of the last event on the page.
pub fn event_cursor(e: &rapport_domain::model::EventView) -> String {
    format!("{}_{}", e.occurred_at.timestamp_millis(), e.id)
}

/// [`crate::RecentPeople`] from the newest-first scan of `limit` events: `(event id,
/// membership event, canonical id)` each.
pub fn recent_people(rows: Vec<(i64, bool, ProfileId)>, limit: usize) -> crate::RecentPeople {
    let next = if rows.len() < limit {
        None
    } else {
        rows.last().map(|r| r.0)
    };
    crate::RecentPeople {
        people: rows
            .into_iter()
            .filter(|r| !r.1)
            .map(|(id, _, p)| (id, p))
            .collect(),
        next,
    }
}

/// Events written with a new row learn its id only as it is stored: each gets
/// `key: id` in its properties (`ticket`, `post`, `article`).
pub(crate) fn stamp_events(events: &mut [rapport_domain::resolve::EventRow], key: &str, id: i64) {
    for e in events {
        if let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(&e.message.properties_json)
        {
            m.insert(key.into(), Value::from(id));
            e.message.properties_json = Value::Object(m).to_string();
        }
    }
}
