//! SQLite side of people: profile reads and search, trait and consent edits, merges and
//! unmerges, counts.

use super::{insert_merge, placeholders, SqliteStore};
use crate::common::{
    ConsentRow, DetachRow, IdentityRow, MemberRow, MergeRow, DETACH_COLUMNS, MERGE_COLUMNS,
};
use crate::{common, sql, ConsentInput, ProfileStore, Result, StoreError, UnmergeTarget};
use async_trait::async_trait;
use rapport_domain::model::{
    ConflictView, DetachView, MergeView, Page, ProfileSummary, ProfileView, Stats,
};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::{to_datetime, Millis};
use rapport_domain::{resolve, IdentityKey};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};
use serde_json::Value;

#[async_trait]
impl ProfileStore for SqliteStore {
    async fn profile(&self, id: ProfileId) -> Result<ProfileView> {
        self.read(move |c| profile_sync(c, id)).await
    }

    async fn profiles(&self, ids: Vec<ProfileId>) -> Result<Vec<ProfileView>> {
        self.read(move |c| profiles_in(c, ids)).await
    }

    async fn lookup(&self, key: &IdentityKey) -> Result<Option<ProfileId>> {
        let key = key.clone();
        self.read(move |c| lookup_sync(c, &key)).await
    }

    async fn search(
        &self,
        q: Option<&str>,
        limit: usize,
        after: Option<ProfileId>,
    ) -> Result<Page<ProfileSummary>> {
        let q = q.map(str::to_string);
        self.read(move |c| search_sync(c, q.as_deref(), limit, after))
            .await
    }

    async fn patch_traits(&self, id: ProfileId, patch: &Value, at: Millis) -> Result<()> {
        let patch = patch.to_string();
        self.write(move |tx| patch_traits(tx, id, &patch, at)).await
    }

    async fn set_consent(&self, id: ProfileId, consent: &ConsentInput) -> Result<()> {
        let c = consent.clone();
        self.write(move |tx| {
            let p = canonical_of(tx, id)?;
            tx.execute(
                sql::profiles::SET_CONSENT,
                params![
                    p,
                    c.channel,
                    c.purpose,
                    c.status.as_str(),
                    c.source,
                    c.proof,
                    c.at,
                    c.frequency.as_str()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn merge(&self, a: ProfileId, b: ProfileId, by: &str, at: Millis) -> Result<MergeView> {
        let by = by.to_string();
        self.write_cached(true, move |tx, _| {
            let (ca, cb) = (canonical_of(tx, a)?, canonical_of(tx, b)?);
            if ca == cb {
                return Err(StoreError::Conflict(format!("profiles {a} and {b} are already one profile ({ca})")));
            }
            let (survivor, merged) = (ca.min(cb), ca.max(cb));
            let members: Vec<i64> = tx
                .prepare(sql::profiles::CLUSTER_MEMBERS)?
                .query_map([merged], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?;
            tx.execute(
                "UPDATE profiles SET canonical_id = ?1, updated_at = ?3 WHERE canonical_id = ?2",
                params![survivor, merged, at],
            )?;
            tx.execute(
                sql::profiles::UNBLOCK_PAIR,
                params![survivor, merged],
            )?;
            tx.execute(
                "UPDATE conflicts SET resolved_at = ?3 WHERE resolved_at IS NULL AND profile_a = ?1 AND profile_b = ?2",
                params![survivor, merged, at],
            )?;
            let id = insert_merge(
                tx,
                &resolve::Merge {
                    survivor,
                    merged,
                    members,
                    cause: IdentityKey { kind: rapport_domain::IdentityKind::External, value: "manual".into() },
                    message_id: String::new(),
                    at,
                },
                &by,
            )?;
            merge_by_id(tx, id)
        })
        .await
    }

    async fn unmerge(&self, target: UnmergeTarget, by: &str, at: Millis) -> Result<MergeView> {
        let by = by.to_string();
        self.write_cached(true, move |tx, _| {
            let row = match target {
                UnmergeTarget::Merge(id) => tx
                    .query_row(&format!("SELECT {MERGE_COLUMNS} FROM merges WHERE id = ?1"), [id], merge_row)
                    .optional()?
                    .ok_or_else(|| StoreError::NotFound(format!("merge {id}")))?,
                UnmergeTarget::MergedProfile(p) => {
                    canonical_of(tx, p)?;
                    tx.query_row(
                        &format!("SELECT {MERGE_COLUMNS} FROM merges WHERE merged_id = ?1 AND undone_at IS NULL ORDER BY id DESC LIMIT 1"),
                        [p],
                        merge_row,
                    )
                    .optional()?
                    .ok_or_else(|| common::not_merged(p))?
                }
            };
            if row.undone_at.is_some() {
                return Err(StoreError::Conflict(format!("merge {} was already undone", row.id)));
            }
            let current = canonical_of(tx, row.survivor_id)?;
            let members: Vec<i64> = serde_json::from_str(&row.member_ids).unwrap_or_default();
            let mut stmt = tx.prepare_cached(
                "UPDATE profiles SET canonical_id = ?2, updated_at = ?4 WHERE id = ?1 AND canonical_id = ?3",
            )?;
            for m in &members {
                stmt.execute(params![m, row.merged_id, current, at])?;
            }
            tx.execute(
                "UPDATE merges SET undone_at = ?2, undone_by = ?3 WHERE id = ?1",
                params![row.id, at, by],
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO merge_blocks (profile_a, profile_b, at) VALUES (?1, ?2, ?3)",
                params![current.min(row.merged_id), current.max(row.merged_id), at],
            )?;
            undo_dependent_merges(tx, &row, current, &by, at)?;
            merge_by_id(tx, row.id)
        })
        .await
    }

    async fn detach(
        &self,
        person: ProfileId,
        key: &IdentityKey,
        by: &str,
        at: Millis,
    ) -> Result<DetachView> {
        let (key, by) = (key.clone(), by.to_string());
        // Identity ownership changes: the writer's identity cache is dropped (`true`).
        self.write_cached(true, move |tx, _| {
            let c = canonical_of(tx, person)?;
            let owner: i64 = tx
                .query_row(
                    "SELECT i.profile_id FROM identities i JOIN profiles p ON p.id = i.profile_id
                     WHERE i.kind = ?1 AND i.value = ?2 AND p.canonical_id = ?3",
                    params![key.kind.as_str(), key.value, c],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("identifier {key} on profile {person}")))?;
            let others: i64 = tx.query_row(
                "SELECT COUNT(*) FROM identities i JOIN profiles p ON p.id = i.profile_id
                 WHERE p.canonical_id = ?1 AND NOT (i.kind = ?2 AND i.value = ?3)",
                params![c, key.kind.as_str(), key.value],
                |r| r.get(0),
            )?;
            if others == 0 {
                return Err(StoreError::Conflict(format!(
                    "{key} is profile {person}'s only identifier: there is nothing to detach it from"
                )));
            }
            let n: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM profiles", [], |r| r.get(0))?;
            tx.execute(
                "INSERT INTO profiles (id, canonical_id, created_at, updated_at) VALUES (?1, ?1, ?2, ?2)",
                params![n, at],
            )?;
            tx.execute(
                "UPDATE identities SET profile_id = ?3 WHERE kind = ?1 AND value = ?2",
                params![key.kind.as_str(), key.value, n],
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO merge_blocks (profile_a, profile_b, at) VALUES (?1, ?2, ?3)",
                params![c.min(n), c.max(n), at],
            )?;
            tx.execute(
                "INSERT INTO detaches (kind, value, from_profile, to_profile, by_whom, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![key.kind.as_str(), key.value, owner, n, by, at],
            )?;
            detach_by_id(tx, tx.last_insert_rowid())
        })
        .await
    }

    async fn undo_detach(&self, id: i64, by: &str, at: Millis) -> Result<DetachView> {
        let by = by.to_string();
        self.write_cached(true, move |tx, _| {
            let d = detach_row(tx, id)?;
            if d.undone_at.is_some() {
                return Err(StoreError::Conflict(format!("detach {id} was already undone")));
            }
            canonical_of(tx, d.from_profile)?;
            let moved = tx.execute(
                "UPDATE identities SET profile_id = ?4 WHERE kind = ?1 AND value = ?2 AND profile_id = ?3",
                params![d.kind, d.value, d.to_profile, d.from_profile],
            )?;
            if moved == 0 {
                return Err(StoreError::Conflict(format!(
                    "{}:{} is no longer on profile {}: it cannot go back",
                    d.kind, d.value, d.to_profile
                )));
            }
            let (a, b) = (canonical_of(tx, d.from_profile)?, canonical_of(tx, d.to_profile)?);
            tx.execute(sql::profiles::UNBLOCK_PAIR, params![a.min(b), a.max(b)])?;
            tx.execute(
                "UPDATE detaches SET undone_at = ?2, undone_by = ?3 WHERE id = ?1",
                params![id, at, by],
            )?;
            detach_by_id(tx, id)
        })
        .await
    }

    async fn detaches(&self, person: ProfileId) -> Result<Vec<DetachView>> {
        self.read(move |c| {
            let cid = canonical_of(c, person)?;
            let rows = c
                .prepare_cached(&format!(
                    "SELECT {DETACH_COLUMNS} FROM detaches
                     WHERE from_profile IN (SELECT id FROM profiles WHERE canonical_id = ?1)
                        OR to_profile IN (SELECT id FROM profiles WHERE canonical_id = ?1)
                     ORDER BY id DESC LIMIT 100"
                ))?
                .query_map([cid], detach_from_row)?
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(rows.into_iter().map(DetachRow::view).collect())
        })
        .await
    }

    async fn conflicts(&self, limit: usize) -> Result<Vec<ConflictView>> {
        self.read(move |c| {
            Ok(c.prepare_cached(sql::profiles::CONFLICTS)?
                .query_map([limit as i64], |r| {
                    Ok(ConflictView {
                        id: r.get(0)?,
                        profile_a: r.get(1)?,
                        profile_b: r.get(2)?,
                        identifier: r.get(3)?,
                        reason: r.get(4)?,
                        message_id: r.get(5)?,
                        count: r.get(6)?,
                        first_at: to_datetime(r.get(7)?),
                        last_at: to_datetime(r.get(8)?),
                    })
                })?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn merges(&self, limit: usize) -> Result<Vec<MergeView>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {MERGE_COLUMNS} FROM merges ORDER BY id DESC LIMIT ?1"
            ))?
            .query_map([limit as i64], merge_row)?
            .map(|r| r.map(MergeRow::view))
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn stats(&self) -> Result<Stats> {
        self.read(|c| {
            let n = |sql: &str| -> Result<i64> { Ok(c.query_row(sql, [], |r| r.get(0))?) };
            Ok(Stats {
                profiles: n("SELECT COUNT(*) FROM profiles WHERE id = canonical_id")?,
                raw_profiles: n("SELECT COUNT(*) FROM profiles")?,
                identities: n("SELECT COUNT(*) FROM identities")?,
                events: n("SELECT COUNT(*) FROM events")?,
                merges: n("SELECT COUNT(*) FROM merges WHERE undone_at IS NULL")?,
                open_conflicts: n("SELECT COUNT(*) FROM conflicts WHERE resolved_at IS NULL")?,
            })
        })
        .await
    }

    async fn lookup_many(&self, keys: Vec<IdentityKey>) -> Result<Vec<Option<ProfileId>>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(sql::profiles::LOOKUP_MANY)?;
            keys.iter()
                .map(|k| {
                    Ok(st
                        .query_row(params![k.kind.as_str(), k.value], |r| r.get(0))
                        .optional()?)
                })
                .collect()
        })
        .await
    }

    async fn canonical_ids(&self, ids: Vec<ProfileId>) -> Result<Vec<(ProfileId, ProfileId)>> {
        self.read(move |c| canonical_ids_in(c, &ids)).await
    }

    async fn verify_identity(&self, key: &IdentityKey, proof: String, at: Millis) -> Result<()> {
        let key = key.clone();
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE identities SET verified = 1, proof = ?3, last_seen = max(last_seen, ?4) WHERE kind = ?1 AND value = ?2",
                params![key.kind.as_str(), key.value, proof, at],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("identity {}", key)));
            }
            Ok(())
        })
        .await
    }

    async fn overview(&self, since: Millis, week_ago: Millis) -> Result<crate::Overview> {
        self.read(move |c| {
            use crate::overview_sql as q;
            let mut o = crate::Overview::default();
            let rows = c
                .prepare(&q::events(since))?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<std::result::Result<Vec<_>, _>>()?;
            q::fold(rows, &mut o);
            let (with_ids, identified, w2, w3, both): (i64, i64, i64, i64, i64) =
                c.query_row(q::PEOPLE, [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?;
            let _ = with_ids;
            o.identified = identified;
            (o.web2_only, o.web3_only, o.both) = (w2, w3, both);
            o.people = c.query_row(q::ALL_PEOPLE, [], |r| r.get(0))?;
            o.new_this_week = c.query_row(&q::new_people(week_ago), [], |r| r.get(0))?;
            Ok(o)
        })
        .await
    }

    async fn all_identifiers(&self) -> Result<Vec<(ProfileId, IdentityKey)>> {
        self.read(|c| {
            let mut st = c.prepare(sql::profiles::ALL_IDENTIFIERS)?;
            let mut rows = st.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let kind: String = r.get(1)?;
                if let Ok(kind) = kind.parse() {
                    out.push((
                        r.get(0)?,
                        IdentityKey {
                            kind,
                            value: r.get(2)?,
                        },
                    ));
                }
            }
            Ok(out)
        })
        .await
    }
}

/// The profiles of these ids; unknown ones are left out.
pub(super) fn profiles_in(c: &Connection, ids: Vec<ProfileId>) -> Result<Vec<ProfileView>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match profile_read(c, id, false) {
            Ok(v) => out.push(v),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

pub(super) fn canonical_of(conn: &Connection, id: ProfileId) -> Result<ProfileId> {
    conn.prepare_cached(sql::rules::CANONICAL_ID)?
        .query_row([id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("profile {id}")))
}

/// Merges a JSON patch into a person's traits.
pub(super) fn patch_traits(
    tx: &Transaction<'_>,
    id: ProfileId,
    patch: &str,
    at: Millis,
) -> Result<()> {
    let c = canonical_of(tx, id)?;
    tx.prepare_cached(
        "UPDATE profiles SET traits = json_patch(traits, rapport_fresh_patch(trait_times, ?2, ?4)),
                             trait_times = rapport_later_times(trait_times, ?4),
                             traits_updated_at = max(traits_updated_at, ?3), updated_at = ?3 WHERE id = ?1",
    )?
    .execute(params![c, patch, at, crate::common::times_of(patch, at)])?;
    Ok(())
}

pub(super) fn merge_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MergeRow> {
    Ok(MergeRow {
        id: r.get(0)?,
        survivor_id: r.get(1)?,
        merged_id: r.get(2)?,
        member_ids: r.get(3)?,
        cause: r.get(4)?,
        message_id: r.get(5)?,
        by_whom: r.get(6)?,
        at: r.get(7)?,
        undone_at: r.get(8)?,
        undone_by: r.get(9)?,
    })
}

pub(super) fn merge_by_id(conn: &Connection, id: i64) -> Result<MergeView> {
    Ok(conn
        .query_row(
            &format!("SELECT {MERGE_COLUMNS} FROM merges WHERE id = ?1"),
            [id],
            merge_row,
        )?
        .view())
}

pub(super) fn profile_sync(conn: &Connection, id: ProfileId) -> Result<ProfileView> {
    profile_read(conn, id, true)
}

/// A person's profile; `with_merges`: with their merge history (the API shows it; the
/// real-time engine does not read it).
pub(super) fn profile_read(
    conn: &Connection,
    id: ProfileId,
    with_merges: bool,
) -> Result<ProfileView> {
    let c = canonical_of(conn, id)?;
    let members = conn
        .prepare_cached(
            "SELECT id, created_at, updated_at, traits, traits_updated_at, trait_times FROM profiles WHERE canonical_id = ?1 ORDER BY id",
        )?
        .query_map([c], |r| {
            let t: String = r.get(3)?;
            let times: String = r.get(5)?;
            Ok(MemberRow {
                id: r.get(0)?,
                created_at: r.get(1)?,
                updated_at: r.get(2)?,
                traits: serde_json::from_str(&t).unwrap_or(Value::Null),
                trait_times: serde_json::from_str(&times).unwrap_or(Value::Null),
                traits_updated_at: r.get(4)?,
            })
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let identities = conn
        .prepare_cached(
            "SELECT kind, value, profile_id, verified, source, first_seen, last_seen FROM identities
             WHERE profile_id IN (SELECT id FROM profiles WHERE canonical_id = ?1) ORDER BY kind, first_seen, id",
        )?
        .query_map([c], |r| {
            Ok(IdentityRow {
                kind: r.get(0)?,
                value: r.get(1)?,
                profile_id: r.get(2)?,
                verified: r.get::<_, i64>(3)? != 0,
                source: r.get(4)?,
                first_seen: r.get(5)?,
                last_seen: r.get(6)?,
            })
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let consents = conn
        .prepare_cached(
            "SELECT channel, purpose, status, source, proof, at, frequency FROM consents
             WHERE profile_id IN (SELECT id FROM profiles WHERE canonical_id = ?1) ORDER BY at DESC, id DESC",
        )?
        .query_map([c], |r| {
            Ok(ConsentRow {
                channel: r.get(0)?,
                purpose: r.get(1)?,
                status: r.get(2)?,
                source: r.get(3)?,
                proof: r.get(4)?,
                at: r.get(5)?,
                frequency: r.get(6)?,
            })
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if !with_merges {
        return common::build_profile(c, members, identities, consents, Vec::new());
    }
    let merges = conn
        .prepare_cached(&format!(
            "SELECT {MERGE_COLUMNS} FROM merges WHERE survivor_id IN (SELECT id FROM profiles WHERE canonical_id = ?1)
             OR merged_id IN (SELECT id FROM profiles WHERE canonical_id = ?1) ORDER BY id DESC LIMIT 100"
        ))?
        .query_map([c], merge_row)?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    common::build_profile(c, members, identities, consents, merges)
}

pub(super) fn lookup_sync(conn: &Connection, key: &IdentityKey) -> Result<Option<ProfileId>> {
    Ok(conn
        .prepare_cached(sql::profiles::LOOKUP_MANY)?
        .query_row(params![key.kind.as_str(), key.value], |r| r.get(0))
        .optional()?)
}

pub(super) fn summaries(conn: &Connection, ids: &[ProfileId]) -> Result<Vec<ProfileSummary>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ph = placeholders(ids.len());
    let mut rows: std::collections::HashMap<i64, Vec<(Value, Value, Millis, Millis)>> =
        Default::default();
    let mut stmt = conn.prepare(&format!(
        "SELECT canonical_id, traits, traits_updated_at, created_at, trait_times FROM profiles WHERE canonical_id IN ({ph})"
    ))?;
    let mut q = stmt.query(params_from_iter(ids))?;
    while let Some(r) = q.next()? {
        let t: String = r.get(1)?;
        let times: String = r.get(4)?;
        rows.entry(r.get(0)?).or_default().push((
            serde_json::from_str(&t).unwrap_or(Value::Null),
            serde_json::from_str(&times).unwrap_or(Value::Null),
            r.get(2)?,
            r.get(3)?,
        ));
    }
    let mut emails: std::collections::HashMap<i64, String> = Default::default();
    let mut stmt = conn.prepare(&format!(
        "SELECT p.canonical_id, i.value FROM profiles p CROSS JOIN identities i ON i.profile_id = p.id
         WHERE i.kind = 'email' AND p.canonical_id IN ({ph}) ORDER BY i.first_seen DESC, i.id DESC"
    ))?;
    let mut q = stmt.query(params_from_iter(ids))?;
    while let Some(r) = q.next()? {
        emails.insert(r.get(0)?, r.get(1)?);
    }
    Ok(ids
        .iter()
        .map(|id| common::summary(*id, rows.remove(id).unwrap_or_default(), emails.remove(id)))
        .collect())
}

pub(super) fn search_sync(
    conn: &Connection,
    q: Option<&str>,
    limit: usize,
    after: Option<ProfileId>,
) -> Result<Page<ProfileSummary>> {
    let after = after.unwrap_or(0);
    let fetch = (limit + 1) as i64;
    let mut ids: Vec<i64> = match q.map(str::trim).filter(|q| !q.is_empty()) {
        None => conn
            .prepare_cached(sql::profiles::PEOPLE_AFTER)?
            .query_map(params![after, fetch], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?,
        Some(q) => match common::exact_identifier(q) {
            Some(key) => lookup_sync(conn, &key)?
                .filter(|id| *id > after)
                .into_iter()
                .collect(),
            None => {
                let like = common::like_pattern(q);
                conn.prepare_cached(
                    "SELECT DISTINCT canonical_id FROM (
                       SELECT canonical_id FROM profiles WHERE traits LIKE ?1 ESCAPE '\\'
                       UNION ALL
                       SELECT p.canonical_id FROM identities i JOIN profiles p ON p.id = i.profile_id WHERE i.value LIKE ?1 ESCAPE '\\'
                     ) WHERE canonical_id > ?2 ORDER BY canonical_id LIMIT ?3",
                )?
                .query_map(params![like, after, fetch], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?
            }
        },
    };
    let next_cursor = common::trim_page(&mut ids, limit, |id| id.to_string());
    Ok(Page {
        items: summaries(conn, &ids)?,
        next_cursor,
    })
}

/// The person of each raw profile; unknown ids are left out.
pub(super) fn canonical_ids_in(
    c: &Connection,
    ids: &[ProfileId],
) -> Result<Vec<(ProfileId, ProfileId)>> {
    let mut q = c.prepare_cached(sql::rules::CANONICAL_ID)?;
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        if let Some(cid) = q.query_row([id], |r| r.get(0)).optional()? {
            out.push((id, cid));
        }
    }
    Ok(out)
}

fn detach_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DetachRow> {
    Ok(DetachRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        value: r.get(2)?,
        from_profile: r.get(3)?,
        to_profile: r.get(4)?,
        by_whom: r.get(5)?,
        at: r.get(6)?,
        undone_at: r.get(7)?,
        undone_by: r.get(8)?,
    })
}

fn detach_row(c: &Connection, id: i64) -> Result<DetachRow> {
    c.query_row(
        &format!("SELECT {DETACH_COLUMNS} FROM detaches WHERE id = ?1"),
        [id],
        detach_from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("detach {id}")))
}

fn detach_by_id(c: &Connection, id: i64) -> Result<DetachView> {
    Ok(detach_row(c, id)?.view())
}

/// Later merges into the same person made by messages from the profiles an unmerge just
/// moved out existed only because of the undone merge (docs/identity.md, "Unmerge"):
/// they are undone with it, in order, each one's moved profiles counting for the next.
fn undo_dependent_merges(
    tx: &Transaction<'_>,
    undone: &MergeRow,
    person: ProfileId,
    by: &str,
    at: Millis,
) -> Result<()> {
    let mut moved: std::collections::HashSet<i64> =
        serde_json::from_str::<Vec<i64>>(&undone.member_ids)
            .unwrap_or_default()
            .into_iter()
            .collect();
    let later: Vec<MergeRow> = tx
        .prepare(&format!(
            "SELECT {MERGE_COLUMNS} FROM merges WHERE id > ?1 AND undone_at IS NULL AND message_id IS NOT NULL ORDER BY id"
        ))?
        .query_map([undone.id], merge_row)?
        .collect::<std::result::Result<_, _>>()?;
    let by = format!("{by} (with merge {})", undone.id);
    for m in later {
        if canonical_of(tx, m.survivor_id)? != person {
            continue;
        }
        let from: Option<i64> = tx
            .query_row(
                "SELECT profile_id FROM events WHERE message_id = ?1",
                [&m.message_id],
                |r| r.get(0),
            )
            .optional()?;
        if !from.is_some_and(|p| moved.contains(&p)) {
            continue;
        }
        let members: Vec<i64> = serde_json::from_str(&m.member_ids).unwrap_or_default();
        let mut stmt = tx.prepare_cached(
            "UPDATE profiles SET canonical_id = ?2, updated_at = ?4 WHERE id = ?1 AND canonical_id = ?3",
        )?;
        for p in &members {
            stmt.execute(params![p, m.merged_id, person, at])?;
        }
        tx.execute(
            "UPDATE merges SET undone_at = ?2, undone_by = ?3 WHERE id = ?1",
            params![m.id, at, by],
        )?;
        moved.extend(members);
    }
    Ok(())
}
