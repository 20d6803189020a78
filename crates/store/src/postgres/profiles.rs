//! PostgreSQL side of people: profile reads and search, trait and consent edits, merges
//! and unmerges, counts.

use super::graph::CHUNK;
use super::{insert_merge, merge_row, profiles_of, writer_lock, PgStore};
use crate::common::{DetachRow, DETACH_COLUMNS, MERGE_COLUMNS};
use crate::{common, sql, ConsentInput, ProfileStore, Result, StoreError, UnmergeTarget};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use rapport_domain::model::{
    ConflictView, DetachView, MergeView, Page, ProfileSummary, ProfileView, Stats,
};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::{to_datetime, Millis};
use rapport_domain::{resolve, IdentityKey};
use serde_json::Value;

#[async_trait]
impl ProfileStore for PgStore {
    async fn profiles(&self, ids: Vec<ProfileId>) -> Result<Vec<ProfileView>> {
        let c = self.client().await?;
        profiles_of(&c, &ids, false).await
    }

    async fn profile(&self, id: ProfileId) -> Result<ProfileView> {
        let c = self.client().await?;
        profiles_of(&c, &[id], true)
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("profile {id}")))
    }

    async fn lookup(&self, key: &IdentityKey) -> Result<Option<ProfileId>> {
        let c = self.client().await?;
        lookup_c(&c, key).await
    }

    async fn search(
        &self,
        q: Option<&str>,
        limit: usize,
        after: Option<ProfileId>,
    ) -> Result<Page<ProfileSummary>> {
        let mut c = self.client().await?;
        let after = after.unwrap_or(0);
        let fetch = (limit + 1) as i64;
        let mut ids: Vec<i64> = match q.map(str::trim).filter(|q| !q.is_empty()) {
            None => c
                .query(sql::profiles::PEOPLE_AFTER, &[&after, &fetch])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect(),
            Some(q) => match common::exact_identifier(q) {
                Some(key) => lookup_c(&c, &key)
                    .await?
                    .filter(|id| *id > after)
                    .into_iter()
                    .collect(),
                None => {
                    let like = common::like_pattern(q);
                    // The trigram indexes (migration 12) find the matches; the planner
                    // prices a scan of every profile's traits as text too low (it does not
                    // count the conversion), and pushes the page cursor into that branch,
                    // so the matches are gathered first (MATERIALIZED) with scans off.
                    let tx = c.transaction().await?;
                    // A common term ("gmail") matches most people: the next profiles in id
                    // order hold a page of matches, found without gathering them all.
                    let first: Vec<i64> = tx
                        .query(
                            "SELECT n.id FROM (
                               SELECT id FROM profiles WHERE id = canonical_id AND id > $2 ORDER BY id LIMIT 2000
                             ) n
                             WHERE EXISTS (SELECT 1 FROM profiles m WHERE m.canonical_id = n.id AND m.traits::text ILIKE $1)
                                OR EXISTS (SELECT 1 FROM profiles m JOIN identities i ON i.profile_id = m.id
                                           WHERE m.canonical_id = n.id AND lower(i.value) LIKE lower($1))
                             ORDER BY n.id LIMIT $3",
                            &[&like, &after, &fetch],
                        )
                        .await?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    if first.len() as i64 == fetch {
                        tx.commit().await?;
                        first
                    } else {
                        tx.batch_execute("SET LOCAL enable_seqscan = off").await?;
                        let ids = tx
                        .query(
                            "WITH hits AS MATERIALIZED (
                               SELECT canonical_id FROM profiles WHERE traits::text ILIKE $1
                               UNION ALL
                               SELECT p.canonical_id FROM identities i JOIN profiles p ON p.id = i.profile_id WHERE lower(i.value) LIKE lower($1)
                             ) SELECT DISTINCT canonical_id FROM hits WHERE canonical_id > $2 ORDER BY canonical_id LIMIT $3",
                            &[&like, &after, &fetch],
                        )
                        .await?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                        tx.commit().await?;
                        ids
                    }
                }
            },
        };
        let next_cursor = common::trim_page(&mut ids, limit, |id| id.to_string());
        let mut rows: std::collections::HashMap<i64, Vec<(Value, Value, Millis, Millis)>> =
            Default::default();
        let mut emails: std::collections::HashMap<i64, String> = Default::default();
        if !ids.is_empty() {
            for r in c
                .query(
                    "SELECT canonical_id, traits, traits_updated_at, created_at, trait_times FROM profiles WHERE canonical_id = ANY($1)",
                    &[&ids],
                )
                .await?
            {
                rows.entry(r.get(0))
                    .or_default()
                    .push((r.get(1), r.get(4), r.get(2), r.get(3)));
            }
            for r in c
                .query(
                    "SELECT p.canonical_id, i.value FROM identities i JOIN profiles p ON p.id = i.profile_id
                     WHERE i.kind = 'email' AND p.canonical_id = ANY($1) ORDER BY i.first_seen DESC, i.id DESC",
                    &[&ids],
                )
                .await?
            {
                emails.insert(r.get(0), r.get(1));
            }
        }
        let items = ids
            .iter()
            .map(|id| common::summary(*id, rows.remove(id).unwrap_or_default(), emails.remove(id)))
            .collect();
        Ok(Page { items, next_cursor })
    }

    async fn patch_traits(&self, id: ProfileId, patch: &Value, at: Millis) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        patch_traits(&tx, id, patch, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_consent(&self, id: ProfileId, ci: &ConsentInput) -> Result<()> {
        let c = self.client().await?;
        let cid = canonical_of(&c, id).await?;
        c.execute(
            sql::profiles::SET_CONSENT,
            &[
                &cid,
                &ci.channel,
                &ci.purpose,
                &ci.status.as_str(),
                &ci.source,
                &ci.proof,
                &ci.at,
                &ci.frequency.as_str(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn merge(&self, a: ProfileId, b: ProfileId, by: &str, at: Millis) -> Result<MergeView> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        writer_lock(&tx).await?;
        let (ca, cb) = (canonical_of(&tx, a).await?, canonical_of(&tx, b).await?);
        if ca == cb {
            return Err(StoreError::Conflict(format!(
                "profiles {a} and {b} are already one profile ({ca})"
            )));
        }
        let (survivor, merged) = (ca.min(cb), ca.max(cb));
        let members: Vec<i64> = tx
            .query(sql::profiles::CLUSTER_MEMBERS, &[&merged])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.execute(
            "UPDATE profiles SET canonical_id = $1, updated_at = $3 WHERE canonical_id = $2",
            &[&survivor, &merged, &at],
        )
        .await?;
        tx.execute(sql::profiles::UNBLOCK_PAIR, &[&survivor, &merged])
            .await?;
        tx.execute(
            "UPDATE conflicts SET resolved_at = $3 WHERE resolved_at IS NULL AND profile_a = $1 AND profile_b = $2",
            &[&survivor, &merged, &at],
        )
        .await?;
        let id = insert_merge(
            &tx,
            &resolve::Merge {
                survivor,
                merged,
                members,
                cause: IdentityKey {
                    kind: rapport_domain::IdentityKind::External,
                    value: "manual".into(),
                },
                message_id: String::new(),
                at,
            },
            by,
        )
        .await?;
        let view = merge_by_id(&tx, id).await?;
        tx.commit().await?;
        Ok(view)
    }

    async fn unmerge(&self, target: UnmergeTarget, by: &str, at: Millis) -> Result<MergeView> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        writer_lock(&tx).await?;
        let row = match target {
            UnmergeTarget::Merge(id) => tx
                .query_opt(
                    &format!("SELECT {MERGE_COLUMNS} FROM merges WHERE id = $1"),
                    &[&id],
                )
                .await?
                .map(|r| merge_row(&r))
                .ok_or_else(|| StoreError::NotFound(format!("merge {id}")))?,
            UnmergeTarget::MergedProfile(p) => {
                canonical_of(&tx, p).await?;
                tx.query_opt(
                    &format!("SELECT {MERGE_COLUMNS} FROM merges WHERE merged_id = $1 AND undone_at IS NULL ORDER BY id DESC LIMIT 1"),
                    &[&p],
                )
                .await?
                .map(|r| merge_row(&r))
                .ok_or_else(|| common::not_merged(p))?
            }
        };
        if row.undone_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "merge {} was already undone",
                row.id
            )));
        }
        let current = canonical_of(&tx, row.survivor_id).await?;
        let members: Vec<i64> = serde_json::from_str(&row.member_ids).unwrap_or_default();
        tx.execute(
            "UPDATE profiles SET canonical_id = $2, updated_at = $4 WHERE id = ANY($1) AND canonical_id = $3",
            &[&members, &row.merged_id, &current, &at],
        )
        .await?;
        tx.execute(
            "UPDATE merges SET undone_at = $2, undone_by = $3 WHERE id = $1",
            &[&row.id, &at, &by],
        )
        .await?;
        tx.execute(
            "INSERT INTO merge_blocks (profile_a, profile_b, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&current.min(row.merged_id), &current.max(row.merged_id), &at],
        )
        .await?;
        undo_dependent_merges(&tx, &row, current, by, at).await?;
        let view = merge_by_id(&tx, row.id).await?;
        tx.commit().await?;
        Ok(view)
    }

    async fn detach(
        &self,
        person: ProfileId,
        key: &IdentityKey,
        by: &str,
        at: Millis,
    ) -> Result<DetachView> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        writer_lock(&tx).await?;
        let c = canonical_of(&tx, person).await?;
        let kind = key.kind.as_str();
        let owner: i64 = tx
            .query_opt(
                "SELECT i.profile_id FROM identities i JOIN profiles p ON p.id = i.profile_id
                 WHERE i.kind = $1 AND i.value = $2 AND p.canonical_id = $3",
                &[&kind, &key.value, &c],
            )
            .await?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::NotFound(format!("identifier {key} on profile {person}")))?;
        let others: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM identities i JOIN profiles p ON p.id = i.profile_id
                 WHERE p.canonical_id = $1 AND NOT (i.kind = $2 AND i.value = $3)",
                &[&c, &kind, &key.value],
            )
            .await?
            .get(0);
        if others == 0 {
            return Err(StoreError::Conflict(format!(
                "{key} is profile {person}'s only identifier: there is nothing to detach it from"
            )));
        }
        let n: i64 = tx
            .query_one("SELECT nextval('profiles_id_seq')", &[])
            .await?
            .get(0);
        tx.execute(
            "INSERT INTO profiles (id, canonical_id, created_at, updated_at) VALUES ($1, $1, $2, $2)",
            &[&n, &at],
        )
        .await?;
        tx.execute(
            "UPDATE identities SET profile_id = $3 WHERE kind = $1 AND value = $2",
            &[&kind, &key.value, &n],
        )
        .await?;
        tx.execute(
            "INSERT INTO merge_blocks (profile_a, profile_b, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&c.min(n), &c.max(n), &at],
        )
        .await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO detaches (kind, value, from_profile, to_profile, by_whom, at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[&kind, &key.value, &owner, &n, &by, &at],
            )
            .await?
            .get(0);
        let view = detach_row(&tx, id).await?.view();
        tx.commit().await?;
        Ok(view)
    }

    async fn undo_detach(&self, id: i64, by: &str, at: Millis) -> Result<DetachView> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        writer_lock(&tx).await?;
        let d = detach_row(&tx, id).await?;
        if d.undone_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "detach {id} was already undone"
            )));
        }
        canonical_of(&tx, d.from_profile).await?;
        let moved = tx
            .execute(
                "UPDATE identities SET profile_id = $4 WHERE kind = $1 AND value = $2 AND profile_id = $3",
                &[&d.kind, &d.value, &d.to_profile, &d.from_profile],
            )
            .await?;
        if moved == 0 {
            return Err(StoreError::Conflict(format!(
                "{}:{} is no longer on profile {}: it cannot go back",
                d.kind, d.value, d.to_profile
            )));
        }
        let a = canonical_of(&tx, d.from_profile).await?;
        let b = canonical_of(&tx, d.to_profile).await?;
        tx.execute(sql::profiles::UNBLOCK_PAIR, &[&a.min(b), &a.max(b)])
            .await?;
        tx.execute(
            "UPDATE detaches SET undone_at = $2, undone_by = $3 WHERE id = $1",
            &[&id, &at, &by],
        )
        .await?;
        let view = detach_row(&tx, id).await?.view();
        tx.commit().await?;
        Ok(view)
    }

    async fn detaches(&self, person: ProfileId) -> Result<Vec<DetachView>> {
        let c = self.client().await?;
        let cid = canonical_of(&c, person).await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {DETACH_COLUMNS} FROM detaches
                     WHERE from_profile IN (SELECT id FROM profiles WHERE canonical_id = $1)
                        OR to_profile IN (SELECT id FROM profiles WHERE canonical_id = $1)
                     ORDER BY id DESC LIMIT 100"
                ),
                &[&cid],
            )
            .await?;
        Ok(rows.iter().map(|r| detach_from_row(r).view()).collect())
    }

    async fn conflicts(&self, limit: usize) -> Result<Vec<ConflictView>> {
        let c = self.client().await?;
        Ok(c.query(sql::profiles::CONFLICTS, &[&(limit as i64)])
            .await?
            .iter()
            .map(|r| ConflictView {
                id: r.get(0),
                profile_a: r.get(1),
                profile_b: r.get(2),
                identifier: r.get(3),
                reason: r.get(4),
                message_id: r.get(5),
                count: r.get(6),
                first_at: to_datetime(r.get(7)),
                last_at: to_datetime(r.get(8)),
            })
            .collect())
    }

    async fn merges(&self, limit: usize) -> Result<Vec<MergeView>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!("SELECT {MERGE_COLUMNS} FROM merges ORDER BY id DESC LIMIT $1"),
            &[&(limit as i64)],
        )
        .await?
        .iter()
        .map(|r| merge_row(r).view())
        .collect())
    }

    async fn stats(&self) -> Result<Stats> {
        let c = self.client().await?;
        let r = c
            .query_one(
                "SELECT (SELECT COUNT(*) FROM profiles WHERE id = canonical_id),
                        (SELECT COUNT(*) FROM profiles),
                        (SELECT COUNT(*) FROM identities),
                        (SELECT COUNT(*) FROM events),
                        (SELECT COUNT(*) FROM merges WHERE undone_at IS NULL),
                        (SELECT COUNT(*) FROM conflicts WHERE resolved_at IS NULL)",
                &[],
            )
            .await?;
        Ok(Stats {
            profiles: r.get(0),
            raw_profiles: r.get(1),
            identities: r.get(2),
            events: r.get(3),
            merges: r.get(4),
            open_conflicts: r.get(5),
        })
    }

    async fn lookup_many(&self, keys: Vec<IdentityKey>) -> Result<Vec<Option<ProfileId>>> {
        let c = self.client().await?;
        let mut out = vec![None; keys.len()];
        for (ci, chunk) in keys.chunks(CHUNK).enumerate() {
            let kinds: Vec<&str> = chunk.iter().map(|k| k.kind.as_str()).collect();
            let values: Vec<&str> = chunk.iter().map(|k| k.value.as_str()).collect();
            for r in c
                .query(
                    "SELECT k.ord, p.canonical_id FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS k(kind, value, ord)
                     JOIN identities i ON i.kind = k.kind AND i.value = k.value JOIN profiles p ON p.id = i.profile_id",
                    &[&kinds, &values],
                )
                .await?
            {
                let ord: i64 = r.get(0);
                out[ci * CHUNK + ord as usize - 1] = Some(r.get(1));
            }
        }
        Ok(out)
    }

    async fn canonical_ids(&self, ids: Vec<ProfileId>) -> Result<Vec<(ProfileId, ProfileId)>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT id, canonical_id FROM profiles WHERE id = ANY($1)")
            .await?;
        Ok(c.query(&stmt, &[&ids])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn verify_identity(&self, key: &IdentityKey, proof: String, at: Millis) -> Result<()> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE identities SET verified = true, proof = $3, last_seen = greatest(last_seen, $4) WHERE kind = $1 AND value = $2",
                &[&key.kind.as_str(), &key.value, &proof, &at],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("identity {key}")));
        }
        Ok(())
    }

    async fn overview(&self, since: Millis, week_ago: Millis) -> Result<crate::Overview> {
        use crate::overview_sql as q;
        let c = self.client().await?;
        let mut o = crate::Overview::default();
        let rows = c
            .query(&q::events(since), &[])
            .await?
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0),
                    r.get::<_, String>(1),
                    r.get::<_, i64>(2),
                )
            })
            .collect();
        q::fold(rows, &mut o);
        let r = c.query_one(q::PEOPLE, &[]).await?;
        o.identified = r.get(1);
        (o.web2_only, o.web3_only, o.both) = (r.get(2), r.get(3), r.get(4));
        o.people = c.query_one(q::ALL_PEOPLE, &[]).await?.get(0);
        o.new_this_week = c.query_one(&q::new_people(week_ago), &[]).await?.get(0);
        Ok(o)
    }

    async fn all_identifiers(&self) -> Result<Vec<(ProfileId, IdentityKey)>> {
        let c = self.client().await?;
        Ok(c.query(sql::profiles::ALL_IDENTIFIERS, &[])
            .await?
            .iter()
            .filter_map(|r| {
                let kind: String = r.get(1);
                Some((
                    r.get(0),
                    IdentityKey {
                        kind: kind.parse().ok()?,
                        value: r.get(2),
                    },
                ))
            })
            .collect())
    }
}

pub(super) async fn canonical_of(c: &impl GenericClient, id: ProfileId) -> Result<ProfileId> {
    c.query_opt(sql::rules::CANONICAL_ID, &[&id])
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::NotFound(format!("profile {id}")))
}

/// Merges a JSON patch into a person's traits (one statement: the canonical id looked up
/// in it).
pub(super) async fn patch_traits(
    tx: &impl GenericClient,
    id: ProfileId,
    patch: &Value,
    at: Millis,
) -> Result<()> {
    let stmt = tx
        .prepare_cached(
            "UPDATE profiles SET traits = rapport_merge_patch(traits, rapport_fresh_patch(trait_times, $2, $4::text::jsonb)),
                                 trait_times = rapport_later_times(trait_times, $4::text::jsonb),
                                 traits_updated_at = GREATEST(traits_updated_at, $3), updated_at = $3
             WHERE id = (SELECT canonical_id FROM profiles WHERE id = $1)",
        )
        .await?;
    let times = crate::common::times_of(&patch.to_string(), at);
    if tx.execute(&stmt, &[&id, patch, &at, &times]).await? == 0 {
        return Err(StoreError::NotFound(format!("profile {id}")));
    }
    Ok(())
}

pub(super) async fn merge_by_id(c: &impl GenericClient, id: i64) -> Result<MergeView> {
    let r = c
        .query_one(
            &format!("SELECT {MERGE_COLUMNS} FROM merges WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(merge_row(&r).view())
}

pub(super) async fn lookup_c(
    c: &impl GenericClient,
    key: &IdentityKey,
) -> Result<Option<ProfileId>> {
    Ok(c.query_opt(
        sql::profiles::LOOKUP_MANY,
        &[&key.kind.as_str(), &key.value],
    )
    .await?
    .map(|r| r.get(0)))
}

fn detach_from_row(r: &tokio_postgres::Row) -> DetachRow {
    DetachRow {
        id: r.get(0),
        kind: r.get(1),
        value: r.get(2),
        from_profile: r.get(3),
        to_profile: r.get(4),
        by_whom: r.get(5),
        at: r.get(6),
        undone_at: r.get(7),
        undone_by: r.get(8),
    }
}

async fn detach_row(c: &impl GenericClient, id: i64) -> Result<DetachRow> {
    c.query_opt(
        &format!("SELECT {DETACH_COLUMNS} FROM detaches WHERE id = $1"),
        &[&id],
    )
    .await?
    .map(|r| detach_from_row(&r))
    .ok_or_else(|| StoreError::NotFound(format!("detach {id}")))
}

/// Later merges into the same person made by messages from the profiles an unmerge just
/// moved out existed only because of the undone merge (docs/identity.md, "Unmerge"):
/// they are undone with it, in order, each one's moved profiles counting for the next.
async fn undo_dependent_merges(
    tx: &impl GenericClient,
    undone: &crate::common::MergeRow,
    person: ProfileId,
    by: &str,
    at: Millis,
) -> Result<()> {
    let mut moved: std::collections::HashSet<i64> =
        serde_json::from_str::<Vec<i64>>(&undone.member_ids)
            .unwrap_or_default()
            .into_iter()
            .collect();
    let later: Vec<crate::common::MergeRow> = tx
        .query(
            &format!(
                "SELECT {MERGE_COLUMNS} FROM merges WHERE id > $1 AND undone_at IS NULL AND message_id IS NOT NULL ORDER BY id"
            ),
            &[&undone.id],
        )
        .await?
        .iter()
        .map(merge_row)
        .collect();
    let by = format!("{by} (with merge {})", undone.id);
    for m in later {
        if canonical_of(tx, m.survivor_id).await? != person {
            continue;
        }
        let from: Option<i64> = tx
            .query_opt(
                "SELECT profile_id FROM event_rows WHERE message_id = $1",
                &[&m.message_id],
            )
            .await?
            .map(|r| r.get(0));
        if !from.is_some_and(|p| moved.contains(&p)) {
            continue;
        }
        let members: Vec<i64> = serde_json::from_str(&m.member_ids).unwrap_or_default();
        tx.execute(
            "UPDATE profiles SET canonical_id = $2, updated_at = $4 WHERE id = ANY($1) AND canonical_id = $3",
            &[&members, &m.merged_id, &person, &at],
        )
        .await?;
        tx.execute(
            "UPDATE merges SET undone_at = $2, undone_by = $3 WHERE id = $1",
            &[&m.id, &at, &by],
        )
        .await?;
        moved.extend(members);
    }
    Ok(())
}
