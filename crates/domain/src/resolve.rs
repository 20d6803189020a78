//! Identity resolution: turns a group of messages plus a snapshot of who owns their
//! identifiers into a [`Plan`] of writes. Pure and deterministic, so the same messages
//! over the same state always give the same profiles.
//!
//! Model. Every identity belongs to one *raw* profile forever; raw profiles are grouped
//! into clusters, each named by its *canonical* profile (the oldest, i.e. lowest id).
//! A merge re-points the absorbed cluster's members at the survivor; an unmerge points
//! them back. Events and traits stay on the raw profile they arrived on, so undoing a
//! merge restores both people with their own events.
//!
//! Merge protection: two clusters whose `user_id`s differ are never merged by a message;
//! the tie is recorded as a conflict for review. An `alias` call is an explicit request
//! from the brand and merges regardless.

use crate::apikey::Trust;
use crate::blocklist::{DropKind, Dropped};
use crate::identifier::{IdentityKey, IdentityKind};
use crate::message::{Message, MessageType};
use crate::time::Millis;
use std::collections::{BTreeSet, HashMap, HashSet};

pub type ProfileId = i64;

/// Where an existing identity lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub raw: ProfileId,
    pub canonical: ProfileId,
    pub last_seen: Millis,
    /// A device linked to its person by a browser key through a trait identifier alone,
    /// not yet confirmed (docs/identity.md, "Browser keys").
    pub unconfirmed: bool,
}

/// `last_seen` is kept to this resolution, so a steady stream from a known person does
/// not rewrite the same identity rows on every event.
pub const LAST_SEEN_RESOLUTION_MS: Millis = 60_000;

/// What the store knows about the identifiers of a group, loaded in one go.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub owners: HashMap<IdentityKey, Owner>,
    /// Members of the clusters [`clusters_needing_detail`] names (canonical → raw ids).
    pub members: HashMap<ProfileId, Vec<ProfileId>>,
    /// `user_id` values held by each such cluster.
    pub user_ids: HashMap<ProfileId, BTreeSet<String>>,
    /// Message ids of the group that are already stored.
    pub existing_message_ids: HashSet<String>,
    /// Cluster pairs a person split apart by hand: never re-merged automatically.
    pub blocked_pairs: HashSet<(ProfileId, ProfileId)>,
    /// How many identities of each kind the clusters [`clusters_needing_detail`] names
    /// hold (for the per-person [`limit`]s).
    pub kind_counts: HashMap<ProfileId, HashMap<IdentityKind, usize>>,
}

/// At most this many identities of a kind on one person (Segment Unify's "limits"):
/// past it a new identifier is dropped and reported, and a merge that would pass it is a
/// conflict to review instead. One user id is merge protection's own rule.
pub fn limit(kind: IdentityKind) -> usize {
    match kind {
        IdentityKind::UserId => 1,
        IdentityKind::Email | IdentityKind::Phone => 10,
        IdentityKind::Wallet | IdentityKind::Social | IdentityKind::External => 20,
        IdentityKind::AnonymousId => 100,
    }
}

/// Keys the store must look up for a group of messages.
pub fn lookup_keys(messages: &[Message]) -> Vec<IdentityKey> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for m in messages {
        for k in m.keys().into_iter().chain(previous_keys(m)) {
            if seen.insert(k.clone()) {
                out.push(k);
            }
        }
    }
    out
}

/// Clusters whose members and user ids resolution may need: those of a message that
/// names two clusters, or one cluster plus an identifier not stored yet (which may be
/// created earlier in the same group). A message that only names identifiers of one
/// cluster can neither merge nor conflict, and that is the common case, so skipping it
/// saves most of the reads.
pub fn clusters_needing_detail(
    messages: &[Message],
    owners: &HashMap<IdentityKey, Owner>,
) -> Vec<ProfileId> {
    let mut out = BTreeSet::new();
    for m in messages {
        let keys: Vec<IdentityKey> = m.keys().into_iter().chain(previous_keys(m)).collect();
        let owned: BTreeSet<ProfileId> = keys
            .iter()
            .filter_map(|k| owners.get(k))
            .map(|o| o.canonical)
            .collect();
        let unowned = keys.iter().any(|k| !owners.contains_key(k));
        if owned.len() >= 2 || (unowned && !owned.is_empty()) {
            out.extend(owned);
        }
    }
    out.into_iter().collect()
}

/// An upper bound of the profiles a group can create, so the store can reserve ids.
pub fn max_new_profiles(messages: &[Message], owners: &HashMap<IdentityKey, Owner>) -> usize {
    messages
        .iter()
        .filter(|m| match &m.user_id {
            Some(u) => !owners.contains_key(u),
            None => m.keys().iter().all(|k| !owners.contains_key(k)),
        })
        .count()
}

fn previous_keys(m: &Message) -> Vec<IdentityKey> {
    match (&m.previous_id, m.kind) {
        (Some(p), MessageType::Alias) => [IdentityKind::UserId, IdentityKind::AnonymousId]
            .into_iter()
            .filter_map(|k| IdentityKey::parse(k, p).ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// A profile's trait patch with each top-level key's event time, for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedPatch {
    pub profile_id: ProfileId,
    /// RFC 7396 merge patch (JSON).
    pub patch: String,
    /// `{key: ms}` for each top-level key of `patch` (JSON).
    pub times: String,
    /// The latest of the times: the profile's `traits_updated_at` moves to it.
    pub at: Millis,
    /// The earliest of the times. When it is not older than the profile's
    /// `traits_updated_at` (the latest time of any stored key), every key is fresh and
    /// the store writes the patch as it is, without comparing key by key.
    pub from: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIdentity {
    pub key: IdentityKey,
    pub profile_id: ProfileId,
    pub first_seen: Millis,
    /// A device linked by a browser key through a trait identifier alone.
    pub unconfirmed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    pub survivor: ProfileId,
    pub merged: ProfileId,
    /// Raw profiles moved from `merged`'s cluster to `survivor`'s.
    pub members: Vec<ProfileId>,
    pub cause: IdentityKey,
    pub message_id: String,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub profile_a: ProfileId,
    pub profile_b: ProfileId,
    pub key: IdentityKey,
    pub reason: String,
    pub message_id: String,
    pub at: Millis,
}

/// An event to store, attributed to a raw profile.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub profile_id: ProfileId,
    pub message: Message,
}

/// The writes one group of messages needs. Applied in one transaction.
#[derive(Debug, Default)]
pub struct Plan {
    pub new_profiles: Vec<(ProfileId, Millis)>,
    pub new_identities: Vec<NewIdentity>,
    /// Existing identities seen again: key → latest time seen.
    pub seen: HashMap<IdentityKey, Millis>,
    pub merges: Vec<Merge>,
    pub conflicts: Vec<Conflict>,
    pub events: Vec<EventRow>,
    /// Trait patches per raw profile, in arrival order.
    pub trait_patches: Vec<(ProfileId, String, Millis)>,
    pub duplicates: usize,
    /// Unconfirmed device links now confirmed (the person's user id arrived on them).
    pub confirmed: Vec<IdentityKey>,
}

impl Plan {
    /// Trait patches folded per raw profile (RFC 7396 composition), in rounds: each
    /// round holds at most one patch per profile, and rounds apply in order. Almost
    /// always one round, so each profile row is written once per group. A profile's
    /// patches fold in event-time order (arrival order breaks ties), and each key
    /// carries the time of the patch that set it last: the store writes a key only if
    /// it is not older than the stored one's (`traits::fresh_patch`).
    pub fn trait_patch_rounds(&self) -> Vec<Vec<TimedPatch>> {
        type Fold = (
            serde_json::Value,
            serde_json::Map<String, serde_json::Value>,
            Millis,
        );
        let mut by: HashMap<ProfileId, Vec<(serde_json::Value, Millis)>> = HashMap::new();
        let mut order = Vec::new();
        for (id, json, at) in &self.trait_patches {
            let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
            by.entry(*id)
                .or_insert_with(|| {
                    order.push(*id);
                    Vec::new()
                })
                .push((v, *at));
        }
        let mut rounds: Vec<Vec<TimedPatch>> = Vec::new();
        for id in order {
            let mut patches = by.remove(&id).unwrap_or_default();
            patches.sort_by_key(|(_, at)| *at);
            let mut folded: Vec<Fold> = Vec::new();
            for (v, at) in patches {
                let keys: Vec<String> = v
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default();
                match folded.last_mut() {
                    Some((acc, times, t)) if crate::traits::composable(acc, &v) => {
                        crate::traits::compose(acc, &v);
                        for k in keys {
                            times.insert(k, at.into());
                        }
                        *t = (*t).max(at);
                    }
                    _ => folded.push((v, keys.into_iter().map(|k| (k, at.into())).collect(), at)),
                }
            }
            for (i, (v, times, at)) in folded.into_iter().enumerate() {
                if rounds.len() <= i {
                    rounds.push(Vec::new());
                }
                let from = times
                    .values()
                    .filter_map(|t| t.as_i64())
                    .min()
                    .unwrap_or(at);
                rounds[i].push(TimedPatch {
                    profile_id: id,
                    patch: v.to_string(),
                    times: serde_json::Value::Object(times).to_string(),
                    at,
                    from,
                });
            }
        }
        rounds
    }

    /// Final canonical id of every raw profile whose cluster changed, for the store.
    pub fn reassignments(&self) -> Vec<(ProfileId, ProfileId)> {
        // Later merges override earlier ones (a cluster can be absorbed twice in a group).
        let mut canon: HashMap<ProfileId, ProfileId> = HashMap::new();
        for m in &self.merges {
            for &raw in &m.members {
                canon.insert(raw, m.survivor);
            }
            // Members moved earlier into the now-absorbed cluster follow it.
            for v in canon.values_mut() {
                if *v == m.merged {
                    *v = m.survivor;
                }
            }
        }
        let mut out: Vec<_> = canon.into_iter().collect();
        out.sort_unstable();
        out
    }
}

/// Hands out ids for new profiles.
pub trait IdSource {
    fn next_id(&mut self) -> ProfileId;
}

impl<I: Iterator<Item = ProfileId>> IdSource for I {
    fn next_id(&mut self) -> ProfileId {
        self.next().expect("the store reserves one id per message")
    }
}

pub struct Resolver<'a, S: IdSource> {
    owners: HashMap<IdentityKey, ProfileId>,
    last_seen: HashMap<IdentityKey, Millis>,
    canon: HashMap<ProfileId, ProfileId>,
    members: HashMap<ProfileId, Vec<ProfileId>>,
    user_ids: HashMap<ProfileId, BTreeSet<String>>,
    seen_messages: HashSet<String>,
    blocked: HashSet<(ProfileId, ProfileId)>,
    /// Devices linked by a browser key and not yet confirmed.
    unconfirmed: HashSet<IdentityKey>,
    /// Identities per kind of each cluster resolution may add to or merge.
    counts: HashMap<ProfileId, HashMap<IdentityKind, usize>>,
    ids: &'a mut S,
    plan: Plan,
}

fn pair(a: ProfileId, b: ProfileId) -> (ProfileId, ProfileId) {
    (a.min(b), a.max(b))
}

impl<'a, S: IdSource> Resolver<'a, S> {
    pub fn new(snapshot: Snapshot, ids: &'a mut S) -> Self {
        let mut owners = HashMap::with_capacity(snapshot.owners.len());
        let mut last_seen = HashMap::with_capacity(snapshot.owners.len());
        let mut canon = HashMap::new();
        let mut unconfirmed = HashSet::new();
        for (k, o) in snapshot.owners {
            if o.unconfirmed {
                unconfirmed.insert(k.clone());
            }
            last_seen.insert(k.clone(), o.last_seen);
            owners.insert(k, o.raw);
            canon.insert(o.raw, o.canonical);
        }
        for (c, ms) in &snapshot.members {
            for &m in ms {
                canon.insert(m, *c);
            }
        }
        Resolver {
            owners,
            last_seen,
            canon,
            members: snapshot.members,
            user_ids: snapshot.user_ids,
            seen_messages: snapshot.existing_message_ids,
            blocked: snapshot.blocked_pairs,
            unconfirmed,
            counts: snapshot.kind_counts,
            ids,
            plan: Plan::default(),
        }
    }

    fn canonical(&self, raw: ProfileId) -> ProfileId {
        *self.canon.get(&raw).unwrap_or(&raw)
    }

    fn uids(&self, c: ProfileId) -> impl Iterator<Item = &String> {
        self.user_ids.get(&c).into_iter().flatten()
    }

    /// Would merging clusters `a` and `b` (plus the message's user id) leave one user id?
    fn compatible(&self, a: ProfileId, b: ProfileId, uid: Option<&str>) -> bool {
        let mut all: BTreeSet<&str> = self.uids(a).map(String::as_str).collect();
        all.extend(self.uids(b).map(String::as_str));
        all.extend(uid);
        all.len() <= 1
    }

    fn new_profile(&mut self, at: Millis) -> ProfileId {
        let id = self.ids.next_id();
        self.canon.insert(id, id);
        self.members.insert(id, vec![id]);
        self.plan.new_profiles.push((id, at));
        id
    }

    /// The first kind two clusters together would hold more of than its [`limit`].
    fn over_limit(&self, a: ProfileId, b: ProfileId) -> Option<(IdentityKind, usize)> {
        let (ca, cb) = (self.counts.get(&a), self.counts.get(&b));
        IdentityKind::ALL.into_iter().find_map(|k| {
            let n = ca.and_then(|c| c.get(&k)).copied().unwrap_or(0)
                + cb.and_then(|c| c.get(&k)).copied().unwrap_or(0);
            // One user id is merge protection's rule, with its own conflict.
            (k != IdentityKind::UserId && n > limit(k)).then_some((k, n))
        })
    }

    /// Merges two clusters; the older (lower id) survives. Returns the survivor.
    fn merge(
        &mut self,
        a: ProfileId,
        b: ProfileId,
        cause: &IdentityKey,
        msg: &Message,
    ) -> ProfileId {
        let (survivor, merged) = (a.min(b), a.max(b));
        let gone = self.counts.remove(&merged).unwrap_or_default();
        let counts = self.counts.entry(survivor).or_default();
        for (k, n) in gone {
            *counts.entry(k).or_default() += n;
        }
        let moved = self.members.remove(&merged).unwrap_or_else(|| vec![merged]);
        for &m in &moved {
            self.canon.insert(m, survivor);
        }
        self.members
            .entry(survivor)
            .or_insert_with(|| vec![survivor])
            .extend(moved.iter().copied());
        let uids = self.user_ids.remove(&merged).unwrap_or_default();
        self.user_ids.entry(survivor).or_default().extend(uids);
        self.plan.merges.push(Merge {
            survivor,
            merged,
            members: moved,
            cause: cause.clone(),
            message_id: msg.message_id.clone(),
            at: msg.received_at,
        });
        survivor
    }

    fn conflict(
        &mut self,
        a: ProfileId,
        b: ProfileId,
        key: &IdentityKey,
        reason: &str,
        msg: &Message,
    ) {
        let (profile_a, profile_b) = pair(a, b);
        let exists = self
            .plan
            .conflicts
            .iter()
            .any(|c| c.profile_a == profile_a && c.profile_b == profile_b && c.key == *key);
        if !exists {
            self.plan.conflicts.push(Conflict {
                profile_a,
                profile_b,
                key: key.clone(),
                reason: reason.to_string(),
                message_id: msg.message_id.clone(),
                at: msg.received_at,
            });
        }
    }

    pub fn resolve(&mut self, mut msg: Message) {
        if !self.seen_messages.insert(msg.message_id.clone()) {
            self.plan.duplicates += 1;
            return;
        }
        let at = msg.received_at;
        let is_alias = msg.kind == MessageType::Alias;
        let mut keys = msg.keys();
        if is_alias {
            // previousId: whichever kind is known; an unknown one is an anonymous id.
            let prev = previous_keys(&msg);
            let known = prev.iter().find(|k| self.owners.contains_key(*k)).cloned();
            if let Some(k) = known.or_else(|| prev.into_iter().nth(1)) {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        let uid_value = msg.user_id.as_ref().map(|k| k.value.clone());
        let uid = uid_value.as_deref();
        let mut owned: Vec<(IdentityKey, ProfileId)> = keys
            .iter()
            .filter_map(|k| self.owners.get(k).map(|&raw| (k.clone(), raw)))
            .collect();

        // Priority is by kind, never by where an identifier sits in the message: the
        // user id, then the device (`anonymousId`), then trait identifiers strongest
        // first (external, e-mail, phone, wallet, social), then the older person.
        owned.sort_by_key(|(k, raw)| {
            let rank = match k.kind {
                IdentityKind::UserId => 0,
                IdentityKind::AnonymousId => 1,
                other => 2 + other.strength(),
            };
            (rank, self.canonical(*raw))
        });
        // Pick the cluster the message belongs to, and the raw profile it lands on.
        let uid_owner = msg
            .user_id
            .as_ref()
            .and_then(|k| self.owners.get(k).copied());
        // The person's user id on a device confirms the device, whichever key sent it.
        if let (Some(uid_raw), Some(device)) = (uid_owner, &msg.anonymous_id) {
            let same = self
                .owners
                .get(device)
                .is_some_and(|&d| self.canonical(d) == self.canonical(uid_raw));
            if same && self.unconfirmed.remove(device) {
                self.plan.confirmed.push(device.clone());
            }
        }
        // A browser key is public: it may not write into a person it reaches only
        // through a trait identifier (docs/identity.md, "Browser keys").
        if msg.trust == Trust::Browser && uid_owner.is_none() {
            let device = msg.anonymous_id.clone();
            let device_owner = device.as_ref().and_then(|d| self.owners.get(d).copied());
            let probation = device
                .as_ref()
                .is_some_and(|d| self.unconfirmed.contains(d));
            let vouched = device_owner
                .filter(|_| !probation)
                .map(|raw| self.canonical(raw));
            let foreign: Vec<(IdentityKey, ProfileId)> = owned
                .iter()
                .filter(|(k, raw)| {
                    k.kind != IdentityKind::AnonymousId
                        && k.kind != IdentityKind::UserId
                        && Some(self.canonical(*raw)) != vouched
                })
                .cloned()
                .collect();
            match vouched {
                // The device is its person's: it writes there as usual, but does not pull
                // in other people through trait identifiers.
                Some(_) if !foreign.is_empty() => {
                    for (k, _) in &foreign {
                        msg.dropped.push(unconfirmed_drop(
                            k,
                            "belongs to another person; a browser key cannot merge people",
                        ));
                    }
                    owned.retain(|o| !foreign.contains(o));
                    keys.retain(|k| !foreign.iter().any(|(f, _)| f == k));
                }
                Some(_) => {}
                None => {
                    // A device on probation stays with the person it was linked to.
                    let reached = match device_owner.filter(|_| probation) {
                        Some(raw) => Some(raw),
                        None => foreign.first().map(|(_, raw)| *raw),
                    };
                    if let Some(raw) = reached {
                        let target = self.canonical(raw);
                        self.restricted(msg, raw, target, at);
                        return;
                    }
                }
            }
        }
        let (mut target, anchor) = match uid_owner {
            Some(raw) => (self.canonical(raw), raw),
            None => {
                let pick = owned.iter().find(|(_, raw)| {
                    let c = self.canonical(*raw);
                    uid.is_none() || self.uids(c).next().is_none()
                });
                match pick {
                    Some(&(_, raw)) => (self.canonical(raw), raw),
                    None => {
                        let id = self.new_profile(at);
                        (id, id)
                    }
                }
            }
        };

        // Every other cluster the message names joins the target, unless protected.
        for (key, raw) in &owned {
            let c = self.canonical(*raw);
            if c == target {
                continue;
            }
            if !is_alias && self.blocked.contains(&pair(c, target)) {
                self.conflict(target, c, key, "profiles were split by hand", &msg);
            } else if let Some((kind, n)) = self.over_limit(target, c).filter(|_| !is_alias) {
                let reason = format!(
                    "together they would hold {n} identities of kind {kind}, over the limit of {}",
                    limit(kind)
                );
                self.conflict(target, c, key, &reason, &msg);
            } else if is_alias || self.compatible(target, c, uid) {
                target = self.merge(target, c, key, &msg);
            } else {
                self.conflict(target, c, key, "different user ids", &msg);
            }
        }

        for key in &keys {
            match self.owners.get(key) {
                Some(&raw) => {
                    let stale = self
                        .last_seen
                        .get(key)
                        .is_some_and(|&t| at >= t + LAST_SEEN_RESOLUTION_MS);
                    if self.canonical(raw) == target && stale {
                        let e = self.plan.seen.entry(key.clone()).or_insert(at);
                        *e = (*e).max(at);
                    }
                }
                None => {
                    let held = self
                        .counts
                        .entry(target)
                        .or_default()
                        .entry(key.kind)
                        .or_default();
                    if *held >= limit(key.kind) && key.kind != IdentityKind::UserId {
                        let n = *held;
                        msg.dropped.push(Dropped {
                            field: crate::blocklist::source_field(key.kind).into(),
                            value: key.value.clone(),
                            reason: format!(
                                "not attached: the person already has {n} identities of kind {}, the limit",
                                key.kind
                            ),
                            kind: DropKind::Limit,
                        });
                        continue;
                    }
                    *held += 1;
                    self.owners.insert(key.clone(), anchor);
                    if key.kind == IdentityKind::UserId {
                        self.user_ids
                            .entry(target)
                            .or_default()
                            .insert(key.value.clone());
                    }
                    self.plan.new_identities.push(NewIdentity {
                        key: key.clone(),
                        profile_id: anchor,
                        first_seen: at,
                        unconfirmed: false,
                    });
                }
            }
        }
        if let Some(t) = &msg.traits_json {
            self.plan
                .trait_patches
                .push((anchor, t.clone(), msg.occurred_at));
        }
        self.plan.events.push(EventRow {
            profile_id: anchor,
            message: msg,
        });
    }

    /// A browser message that reaches a known person (`target`) only through a trait
    /// identifier, or comes from a device still on probation: the device is linked (its
    /// anonymous id joins the person, unconfirmed) so its events are attributed, but no
    /// trait is written and no other identifier attached; what was held back is noted.
    fn restricted(&mut self, mut msg: Message, anchor: ProfileId, target: ProfileId, at: Millis) {
        if let Some(device) = msg.anonymous_id.clone() {
            if !self.owners.contains_key(&device) {
                self.owners.insert(device.clone(), anchor);
                self.unconfirmed.insert(device.clone());
                self.plan.new_identities.push(NewIdentity {
                    key: device,
                    profile_id: anchor,
                    first_seen: at,
                    unconfirmed: true,
                });
            }
        }
        let others: Vec<IdentityKey> = msg
            .keys()
            .into_iter()
            .filter(|k| k.kind != IdentityKind::AnonymousId && !self.owners.contains_key(k))
            .collect();
        for k in others {
            msg.dropped.push(unconfirmed_drop(
                &k,
                "not attached: the device's link to this person is unconfirmed",
            ));
        }
        if msg.traits_json.is_some() {
            msg.dropped.push(Dropped {
                field: "traits".into(),
                value: String::new(),
                reason: format!(
                    "not written: a browser key reached person {target} only through a trait identifier; \
                     the person's userId on this device confirms it"
                ),
                kind: DropKind::Unconfirmed,
            });
            msg.traits_json = None;
            msg.traits = None;
        }
        msg.first_touch_json = None;
        self.plan.events.push(EventRow {
            profile_id: anchor,
            message: msg,
        });
    }

    pub fn finish(self) -> Plan {
        self.plan
    }
}

fn unconfirmed_drop(k: &IdentityKey, why: &str) -> Dropped {
    Dropped {
        field: crate::blocklist::source_field(k.kind).into(),
        value: k.value.clone(),
        reason: format!("{k} {why}"),
        kind: DropKind::Unconfirmed,
    }
}

/// Resolves a whole group.
pub fn resolve_all<S: IdSource>(snapshot: Snapshot, ids: &mut S, messages: Vec<Message>) -> Plan {
    let mut r = Resolver::new(snapshot, ids);
    for m in messages {
        r.resolve(m);
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse_message, BatchContext};
    use proptest::prelude::*;
    use serde_json::json;

    /// A tiny in-memory store that applies plans, to check resolution end to end.
    #[derive(Default, Clone)]
    struct Mem {
        owners: HashMap<IdentityKey, ProfileId>,
        canon: HashMap<ProfileId, ProfileId>,
        messages: HashSet<String>,
        events: Vec<(String, ProfileId)>,
        next: ProfileId,
        merges: Vec<Merge>,
        conflicts: usize,
        /// Raw profile → (traits, their times), as both stores keep them.
        traits: HashMap<ProfileId, (serde_json::Value, crate::traits::TraitTimes, Millis)>,
        unconfirmed: HashSet<IdentityKey>,
    }

    impl Mem {
        fn snapshot(&self, msgs: &[Message]) -> Snapshot {
            let mut s = Snapshot::default();
            for k in lookup_keys(msgs) {
                if let Some(&raw) = self.owners.get(&k) {
                    let c = self.canon[&raw];
                    let unconfirmed = self.unconfirmed.contains(&k);
                    s.owners.insert(
                        k,
                        Owner {
                            raw,
                            canonical: c,
                            last_seen: 0,
                            unconfirmed,
                        },
                    );
                }
            }
            let cs = clusters_needing_detail(msgs, &s.owners);
            for c in cs {
                let ms: Vec<_> = {
                    let mut v: Vec<_> = self
                        .canon
                        .iter()
                        .filter(|(_, &cc)| cc == c)
                        .map(|(&r, _)| r)
                        .collect();
                    v.sort();
                    v
                };
                let uids = self
                    .owners
                    .iter()
                    .filter(|(k, r)| k.kind == IdentityKind::UserId && ms.contains(r))
                    .map(|(k, _)| k.value.clone())
                    .collect();
                let mut counts: HashMap<IdentityKind, usize> = HashMap::new();
                for (k, r) in &self.owners {
                    if ms.contains(r) {
                        *counts.entry(k.kind).or_default() += 1;
                    }
                }
                s.kind_counts.insert(c, counts);
                s.members.insert(c, ms);
                s.user_ids.insert(c, uids);
            }
            s.existing_message_ids = msgs
                .iter()
                .filter(|m| self.messages.contains(&m.message_id))
                .map(|m| m.message_id.clone())
                .collect();
            s
        }

        fn ingest(&mut self, msgs: Vec<Message>) {
            let snap = self.snapshot(&msgs);
            let start = self.next + 1;
            let bound = max_new_profiles(&msgs, &snap.owners) as ProfileId;
            let mut ids = start..start + bound;
            let plan = resolve_all(snap, &mut ids, msgs);
            for (id, _) in &plan.new_profiles {
                self.canon.insert(*id, *id);
                self.next = self.next.max(*id);
            }
            for ni in &plan.new_identities {
                assert!(self.owners.insert(ni.key.clone(), ni.profile_id).is_none());
                if ni.unconfirmed {
                    self.unconfirmed.insert(ni.key.clone());
                }
            }
            for k in &plan.confirmed {
                self.unconfirmed.remove(k);
            }
            for (raw, c) in plan.reassignments() {
                self.canon.insert(raw, c);
            }
            let rounds = plan.trait_patch_rounds();
            for e in plan.events {
                assert!(self.messages.insert(e.message.message_id.clone()));
                self.events
                    .push((e.message.message_id.clone(), e.profile_id));
            }
            for round in rounds {
                for p in round {
                    let patch: serde_json::Value = serde_json::from_str(&p.patch).unwrap();
                    let times: serde_json::Value = serde_json::from_str(&p.times).unwrap();
                    let (t, stored, at) = self.traits.entry(p.profile_id).or_insert((
                        json!({}),
                        Default::default(),
                        0,
                    ));
                    let fresh = crate::traits::fresh_patch(
                        stored,
                        patch.as_object().unwrap(),
                        times.as_object().unwrap(),
                    );
                    crate::traits::apply_patch(t, &serde_json::Value::Object(fresh));
                    crate::traits::later_times(stored, times.as_object().unwrap());
                    *at = (*at).max(p.at);
                }
            }
            self.conflicts += plan.conflicts.len();
            self.merges.extend(plan.merges);
        }

        /// Each person's merged traits, by canonical id.
        fn people_traits(&self) -> HashMap<ProfileId, serde_json::Value> {
            let mut members: HashMap<
                ProfileId,
                Vec<(serde_json::Value, serde_json::Value, Millis)>,
            > = HashMap::new();
            let mut raws: Vec<_> = self.traits.iter().collect();
            raws.sort_by_key(|(id, _)| **id);
            for (raw, (t, times, at)) in raws {
                members.entry(self.canon[raw]).or_default().push((
                    t.clone(),
                    serde_json::Value::Object(times.clone()),
                    *at,
                ));
            }
            members
                .into_iter()
                .map(|(c, m)| (c, crate::traits::merged_view(m)))
                .collect()
        }

        fn profile_of(&self, key: &str) -> Option<ProfileId> {
            let k = IdentityKey::parse_prefixed(key).unwrap();
            self.owners.get(&k).map(|r| self.canon[r])
        }
    }

    fn msg(v: serde_json::Value) -> Message {
        let id = v["messageId"].as_str().unwrap_or("gen").to_string();
        parse_message(
            &v,
            "",
            None,
            &BatchContext {
                received_at: 1000,
                ..Default::default()
            },
            || id,
        )
        .unwrap()
    }

    #[test]
    fn anonymous_then_known_becomes_one_profile() {
        let mut s = Mem::default();
        s.ingest(vec![msg(
            json!({"type": "page", "anonymousId": "a1", "messageId": "1"}),
        )]);
        s.ingest(vec![msg(json!({"type": "identify", "anonymousId": "a1", "userId": "u1", "messageId": "2", "traits": {"email": "x@y.io"}}))]);
        let p = s.profile_of("anonymous_id:a1").unwrap();
        assert_eq!(s.profile_of("user_id:u1"), Some(p));
        assert_eq!(s.profile_of("email:x@y.io"), Some(p));
        assert!(s.merges.is_empty());
    }

    #[test]
    fn shared_email_merges_two_profiles_oldest_survives() {
        let mut s = Mem::default();
        s.ingest(vec![msg(json!({"type": "identify", "anonymousId": "a1", "messageId": "1", "traits": {"email": "x@y.io"}}))]);
        s.ingest(vec![msg(json!({"type": "identify", "anonymousId": "a2", "messageId": "2", "traits": {"phone": "+14155552671"}}))]);
        s.ingest(vec![msg(json!({"type": "identify", "anonymousId": "a2", "messageId": "3", "traits": {"email": "X@y.io"}}))]);
        let p = s.profile_of("anonymous_id:a1").unwrap();
        assert_eq!(s.profile_of("phone:+14155552671"), Some(p));
        assert_eq!(s.merges.len(), 1);
        assert_eq!(s.merges[0].survivor, 1);
        assert_eq!(s.merges[0].cause.to_string(), "email:x@y.io");
    }

    #[test]
    fn different_user_ids_never_merge() {
        let mut s = Mem::default();
        s.ingest(vec![msg(json!({"type": "identify", "userId": "u1", "messageId": "1", "traits": {"email": "shared@y.io"}}))]);
        s.ingest(vec![msg(json!({"type": "identify", "userId": "u2", "messageId": "2", "traits": {"email": "shared@y.io"}}))]);
        assert_ne!(s.profile_of("user_id:u1"), s.profile_of("user_id:u2"));
        assert_eq!(
            s.profile_of("email:shared@y.io"),
            s.profile_of("user_id:u1")
        );
        assert_eq!(s.conflicts, 1);
        assert!(s.merges.is_empty());
        // Alias is an explicit instruction and merges anyway.
        s.ingest(vec![msg(
            json!({"type": "alias", "userId": "u2", "previousId": "u1", "messageId": "3"}),
        )]);
        assert_eq!(s.profile_of("user_id:u1"), s.profile_of("user_id:u2"));
    }

    #[test]
    fn duplicates_are_skipped_within_and_across_groups() {
        let mut s = Mem::default();
        let m = json!({"type": "track", "event": "E", "userId": "u", "messageId": "same"});
        s.ingest(vec![msg(m.clone()), msg(m.clone())]);
        s.ingest(vec![msg(m)]);
        assert_eq!(s.events.len(), 1);
    }

    #[test]
    fn a_browser_key_cannot_write_into_a_person_it_reaches_by_email() {
        let browser = |v: serde_json::Value| {
            let mut m = msg(v);
            m.trust = Trust::Browser;
            m
        };
        let mut s = Mem::default();
        s.ingest(vec![msg(
            json!({"type": "identify", "userId": "victim", "messageId": "1",
            "traits": {"email": "v@x.io", "name": "Victim"}}),
        )]);
        // The attack: a new device names the victim's e-mail, a name and a phone.
        s.ingest(vec![browser(
            json!({"type": "identify", "anonymousId": "dev", "messageId": "2",
            "traits": {"email": "v@x.io", "name": "Nina", "phone": "+14155550188"}}),
        )]);
        let victim = s.profile_of("user_id:victim").unwrap();
        assert_eq!(
            s.profile_of("anonymous_id:dev"),
            Some(victim),
            "the device is linked"
        );
        assert_eq!(
            s.profile_of("phone:+14155550188"),
            None,
            "no identifier attached"
        );
        assert_eq!(
            s.people_traits()[&victim]["name"],
            "Victim",
            "no trait written"
        );
        // Still on probation: the same device cannot write later either.
        s.ingest(vec![browser(
            json!({"type": "identify", "anonymousId": "dev", "messageId": "3",
            "traits": {"name": "Nina again"}}),
        )]);
        assert_eq!(s.people_traits()[&victim]["name"], "Victim");
        // A server key (or the person's own user id on the device) keeps full power.
        s.ingest(vec![msg(
            json!({"type": "identify", "anonymousId": "dev2", "messageId": "4",
            "traits": {"email": "v@x.io", "plan": "pro"}}),
        )]);
        assert_eq!(s.people_traits()[&victim]["plan"], "pro");
        s.ingest(vec![browser(
            json!({"type": "identify", "anonymousId": "dev", "userId": "victim",
            "messageId": "5"}),
        )]);
        assert!(s.unconfirmed.is_empty(), "confirmed by the user id");
        s.ingest(vec![browser(
            json!({"type": "identify", "anonymousId": "dev", "messageId": "6",
            "traits": {"name": "Victoria"}}),
        )]);
        assert_eq!(s.people_traits()[&victim]["name"], "Victoria");
        // A confirmed device does not pull in another person through an e-mail.
        s.ingest(vec![msg(
            json!({"type": "identify", "userId": "other", "messageId": "7",
            "traits": {"email": "o@x.io"}}),
        )]);
        s.ingest(vec![browser(
            json!({"type": "identify", "anonymousId": "dev", "messageId": "8",
            "traits": {"email": "o@x.io"}}),
        )]);
        assert_ne!(s.profile_of("user_id:other"), Some(victim));
        assert_eq!(s.merges.len(), 0, "{:?}", s.merges);
    }

    #[test]
    fn limits_per_kind_drop_new_identifiers_and_hold_merges() {
        let mut s = Mem::default();
        let emails = |from: usize, to: usize| -> Vec<String> {
            (from..to).map(|i| format!("e{i}@x.io")).collect()
        };
        s.ingest(vec![msg(
            json!({"type": "identify", "userId": "kiosk", "messageId": "k1",
            "traits": {"emails": emails(0, 10)}}),
        )]);
        let kiosk = s.profile_of("user_id:kiosk").unwrap();
        // The eleventh e-mail is not attached, and the event is kept.
        let before = s.events.len();
        s.ingest(vec![msg(
            json!({"type": "identify", "userId": "kiosk", "messageId": "k2",
            "traits": {"email": "e10@x.io"}}),
        )]);
        assert_eq!(s.profile_of("email:e10@x.io"), None);
        assert_eq!(s.events.len(), before + 1);
        // Two people of six e-mails each are not merged into one of twelve: a conflict.
        s.ingest(vec![msg(
            json!({"type": "identify", "anonymousId": "p", "messageId": "p1",
            "traits": {"emails": emails(20, 26)}}),
        )]);
        s.ingest(vec![msg(
            json!({"type": "identify", "anonymousId": "q", "messageId": "q1",
            "traits": {"emails": emails(30, 36)}}),
        )]);
        let conflicts = s.conflicts;
        s.ingest(vec![msg(
            json!({"type": "identify", "anonymousId": "p", "messageId": "p2",
            "traits": {"email": "e30@x.io"}}),
        )]);
        assert_ne!(
            s.profile_of("anonymous_id:p"),
            s.profile_of("anonymous_id:q")
        );
        assert_eq!(s.conflicts, conflicts + 1);
        assert_ne!(s.profile_of("anonymous_id:p"), Some(kiosk));
    }

    #[test]
    fn the_strongest_identifier_picks_the_person_whatever_the_order() {
        // One message names two people's e-mails (who cannot merge: different user
        // ids); in either order of its `emails` list, the older person is chosen.
        let mut a = Mem::default();
        let mut b = Mem::default();
        for s in [&mut a, &mut b] {
            s.ingest(vec![msg(
                json!({"type": "identify", "userId": "old", "messageId": "1",
                "traits": {"email": "old@x.io"}}),
            )]);
            s.ingest(vec![msg(
                json!({"type": "identify", "userId": "new", "messageId": "2",
                "traits": {"email": "new@x.io"}}),
            )]);
        }
        a.ingest(vec![msg(
            json!({"type": "identify", "anonymousId": "dev", "messageId": "3",
            "traits": {"emails": ["new@x.io", "old@x.io"]}}),
        )]);
        b.ingest(vec![msg(
            json!({"type": "identify", "anonymousId": "dev", "messageId": "3",
            "traits": {"emails": ["old@x.io", "new@x.io"]}}),
        )]);
        for s in [&a, &b] {
            assert_eq!(
                s.profile_of("anonymous_id:dev"),
                s.profile_of("user_id:old")
            );
            assert_eq!(s.conflicts, 1);
        }
    }

    #[test]
    fn blocked_pairs_are_not_remerged() {
        let msgs = vec![msg(
            json!({"type": "identify", "anonymousId": "a2", "messageId": "3", "traits": {"email": "x@y.io"}}),
        )];
        let mut snap = Snapshot::default();
        snap.owners.insert(
            IdentityKey::parse_prefixed("email:x@y.io").unwrap(),
            Owner {
                raw: 1,
                canonical: 1,
                last_seen: 0,
                unconfirmed: false,
            },
        );
        snap.owners.insert(
            IdentityKey::parse_prefixed("anonymous_id:a2").unwrap(),
            Owner {
                raw: 2,
                canonical: 2,
                last_seen: 0,
                unconfirmed: false,
            },
        );
        snap.members.insert(1, vec![1]);
        snap.members.insert(2, vec![2]);
        snap.blocked_pairs.insert((1, 2));
        let plan = resolve_all(snap, &mut (10..), msgs);
        assert!(plan.merges.is_empty());
        assert_eq!(plan.conflicts.len(), 1);
    }

    fn arb_message() -> impl Strategy<Value = serde_json::Value> {
        (
            proptest::option::of(0u8..6),
            proptest::option::of(0u8..8),
            // Wide enough for merges to pile more e-mails on one person than the limit.
            proptest::option::of(0u8..24),
            proptest::option::of(0u8..6),
            0u16..40,
            proptest::option::of(0u8..4),
        )
            .prop_map(|(u, a, e, p, mid, plan)| {
                let mut v = json!({"type": "identify", "messageId": format!("m{mid}")});
                if let Some(u) = u {
                    v["userId"] = json!(format!("u{u}"));
                }
                if let Some(a) = a {
                    // a7 stands for a placeholder many strangers send.
                    v["anonymousId"] = json!(if a == 7 {
                        "undefined".to_string()
                    } else {
                        format!("a{a}")
                    });
                }
                if u.is_none() && a.is_none() {
                    v["anonymousId"] = json!("a0");
                }
                let mut traits = serde_json::Map::new();
                if let Some(e) = e {
                    let email = if e == 23 {
                        "test@test.com".to_string()
                    } else {
                        format!("e{e}@x.io")
                    };
                    traits.insert("email".into(), json!(email));
                }
                if let Some(p) = p {
                    traits.insert(
                        "phone".into(),
                        json!(format!("+1415555{:04}", 2671 + p as u32)),
                    );
                }
                if let Some(plan) = plan {
                    traits.insert("plan".into(), json!(format!("p{plan}")));
                }
                v["traits"] = serde_json::Value::Object(traits);
                v
            })
    }

    proptest! {
        /// Invariants over random message streams split into random groups:
        /// each identity has one owner, no cluster holds two user ids, every message
        /// is stored once, and the grouping does not change who ends up with whom.
        #[test]
        fn resolution_invariants(
            raw in proptest::collection::vec(arb_message(), 1..40),
            split in 1usize..8,
            times in proptest::collection::vec(0i64..500, 40),
        ) {
            // Event times unrelated to arrival order (and distinct, so "latest" is one).
            // Screened for placeholders as the app does before ingestion.
            let blocklist = crate::blocklist::Blocklist::default();
            let msgs: Vec<Message> = raw
                .iter()
                .cloned()
                .map(msg)
                .enumerate()
                .map(|(i, mut m)| {
                    m.occurred_at = times[i] * 64 + i as i64;
                    blocklist.screen(&mut m, "");
                    m
                })
                .collect();
            let mut grouped = Mem::default();
            for chunk in msgs.chunks(split) {
                grouped.ingest(chunk.to_vec());
            }
            let mut single = Mem::default();
            for m in &msgs {
                single.ingest(vec![m.clone()]);
            }
            let distinct: HashSet<_> = msgs.iter().map(|m| m.message_id.clone()).collect();
            prop_assert_eq!(grouped.events.len(), distinct.len());
            for s in [&grouped, &single] {
                let mut uids: HashMap<ProfileId, HashSet<&str>> = HashMap::new();
                for (k, raw) in &s.owners {
                    if k.kind == IdentityKind::UserId {
                        uids.entry(s.canon[raw]).or_default().insert(&k.value);
                    }
                }
                prop_assert!(uids.values().all(|u| u.len() == 1));
                // canonical ids are fixed points
                for c in s.canon.values() { prop_assert_eq!(s.canon[c], *c); }
            }
            // Same partition of identities into people, whatever the grouping.
            let part = |s: &Mem| {
                let mut m: HashMap<ProfileId, BTreeSet<String>> = HashMap::new();
                for (k, raw) in &s.owners { m.entry(s.canon[raw]).or_default().insert(k.to_string()); }
                let mut v: Vec<_> = m.into_values().collect();
                v.sort();
                v
            };
            prop_assert_eq!(part(&grouped), part(&single));
            for s in [&grouped, &single] {
                // No placeholder is anyone's identifier, and no person passes a limit.
                prop_assert!(s.owners.keys().all(|k| crate::blocklist::builtin(k).is_none()));
                let mut held: HashMap<(ProfileId, IdentityKind), usize> = HashMap::new();
                for (k, raw) in &s.owners {
                    *held.entry((s.canon[raw], k.kind)).or_default() += 1;
                }
                for ((_, kind), n) in held {
                    prop_assert!(n <= limit(kind), "{} identities of kind {}", n, kind);
                }
            }
            // Per key, last write wins by event time, whatever the arrival order and
            // grouping: each person's plan is that of their latest message with one
            // (among messages stored: the first of a repeated messageId).
            let mut latest: HashMap<ProfileId, (Millis, String)> = HashMap::new();
            let mut seen = HashSet::new();
            for (m, r) in msgs.iter().zip(&raw) {
                if !seen.insert(m.message_id.clone()) { continue; }
                let Some(plan) = r["traits"]["plan"].as_str() else { continue };
                let raw_id = grouped.events.iter().find(|(id, _)| *id == m.message_id).map(|(_, p)| *p).unwrap();
                let person = grouped.canon[&raw_id];
                let e = latest.entry(person).or_insert((Millis::MIN, String::new()));
                if m.occurred_at > e.0 { *e = (m.occurred_at, plan.to_string()); }
            }
            let people = grouped.people_traits();
            for (person, (_, plan)) in &latest {
                prop_assert_eq!(people[person]["plan"].as_str(), Some(plan.as_str()), "person {}", person);
            }
            let single_people: BTreeSet<String> = single.people_traits().values().map(|v| v.to_string()).collect();
            let grouped_people: BTreeSet<String> = people.values().map(|v| v.to_string()).collect();
            prop_assert_eq!(grouped_people, single_people);
        }
    }
}
