//! PostgreSQL side of ingestion: the snapshot of who owns a group's identifiers, and the
//! resolver's plan applied as set-based `UNNEST` statements pipelined in one transaction,
//! under the writer lock.

use super::{writer_lock, Param, Params, PgStore};
use crate::{common, IngestOutcome, IngestStore, Result, SourcedMessages};
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use rapport_domain::resolve::{
    clusters_needing_detail, lookup_keys, max_new_profiles, EventRow, Owner, Plan, Snapshot,
};
use rapport_domain::{resolve, IdentityKey, Message};

/// The event insert a group and the raw-insert baseline share (a macro so `concat!`
/// can add the conflict clause at compile time).
macro_rules! insert_events {
    () => {
        "INSERT INTO event_rows (message_id, profile_id, type, name, channel, source, properties, context, text, occurred_at, received_at)
         SELECT m, p, ty, n, ch, $6, pr::jsonb, cx::jsonb, tx, oa, ra
         FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $7::text[], $8::text[], $9::text[], $10::int8[], $11::int8[])
           AS t(m, p, ty, n, ch, pr, cx, tx, oa, ra)"
    };
}

#[async_trait]
impl IngestStore for PgStore {
    async fn ingest(&self, groups: Vec<SourcedMessages>) -> Result<IngestOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        writer_lock(&tx).await?;
        let mut total = IngestOutcome::default();
        for g in groups {
            let snap = snapshot(&tx, &g.messages).await?;
            let bound = max_new_profiles(&g.messages, &snap.owners) as i64;
            let ids: Vec<i64> = if bound > 0 {
                tx.query(
                    "SELECT nextval('profiles_id_seq') FROM generate_series(1, $1::int8)",
                    &[&bound],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect()
            } else {
                Vec::new()
            };
            let mut ids = ids.into_iter();
            let plan = resolve::resolve_all(snap, &mut ids, g.messages);
            total.add(&apply(&tx, plan, &g.source).await?);
        }
        tx.commit().await?;
        Ok(total)
    }

    async fn insert_events_once(&self, rows: Vec<EventRow>, source: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        writer_lock(&tx).await?;
        let mut p = Pipeline::default();
        add_events_ignoring_known(&mut p, &rows, source);
        p.run(&tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ingestion_issues(&self, limit: usize) -> Result<Vec<crate::IngestionIssue>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT field, kind, count, first_at, last_at, example_value, example_reason
                 FROM ingestion_issues ORDER BY count DESC, field, kind LIMIT $1",
                &[&(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| crate::IngestionIssue {
                field: r.get(0),
                kind: r.get(1),
                count: r.get(2),
                first_at: r.get(3),
                last_at: r.get(4),
                example_value: r.get(5),
                example_reason: r.get(6),
            })
            .collect())
    }

    async fn insert_events_raw(&self, rows: Vec<EventRow>, source: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Event ids commit in order (see `writer_lock`).
        writer_lock(&tx).await?;
        let mut p = Pipeline::default();
        add_events(&mut p, &rows, source);
        p.run(&tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

pub(super) async fn snapshot(tx: &Transaction<'_>, msgs: &[Message]) -> Result<Snapshot> {
    let mut snap = Snapshot::default();
    let keys = lookup_keys(msgs);
    let kinds: Vec<&str> = keys.iter().map(|k| k.kind.as_str()).collect();
    let values: Vec<&str> = keys.iter().map(|k| k.value.as_str()).collect();
    let ids: Vec<&str> = msgs.iter().map(|m| m.message_id.as_str()).collect();
    // Independent reads, pipelined on the connection: one round trip for both.
    let owner_params: [Param<'_>; 2] = [&kinds, &values];
    let id_params: [Param<'_>; 1] = [&ids];
    let (owners_stmt, ids_stmt) = tokio::try_join!(
        tx.prepare_cached(
            "SELECT i.kind, i.value, i.profile_id, p.canonical_id, i.last_seen, i.unconfirmed
             FROM UNNEST($1::text[], $2::text[]) AS k(kind, value)
             JOIN identities i ON i.kind = k.kind AND i.value = k.value
             JOIN profiles p ON p.id = i.profile_id"
        ),
        tx.prepare_cached("SELECT message_id FROM event_rows WHERE message_id = ANY($1)"),
    )?;
    let (rows, existing) = tokio::try_join!(
        tx.query(&owners_stmt, &owner_params),
        tx.query(&ids_stmt, &id_params),
    )?;
    for r in existing {
        snap.existing_message_ids.insert(r.get(0));
    }
    for r in rows {
        let key = IdentityKey {
            kind: common::kind(r.get(0))?,
            value: r.get(1),
        };
        snap.owners.insert(
            key,
            Owner {
                raw: r.get(2),
                canonical: r.get(3),
                last_seen: r.get(4),
                unconfirmed: r.get(5),
            },
        );
    }
    let detail = clusters_needing_detail(msgs, &snap.owners);
    if !detail.is_empty() {
        for r in tx
            .query(
                "SELECT canonical_id, id FROM profiles WHERE canonical_id = ANY($1) ORDER BY id",
                &[&detail],
            )
            .await?
        {
            snap.members.entry(r.get(0)).or_default().push(r.get(1));
        }
        for c in &detail {
            snap.user_ids.entry(*c).or_default();
        }
        // By member id array: an index scan on identities(profile_id) whatever the
        // planner's statistics say.
        let mut canon_of = std::collections::HashMap::new();
        for (c, ms) in &snap.members {
            for m in ms {
                canon_of.insert(*m, *c);
            }
        }
        let member_ids: Vec<i64> = canon_of.keys().copied().collect();
        // One read gives the user ids and the per-kind counts (a person holds at most
        // ~200 identities, `resolve::limit`).
        for r in tx
            .query(
                "SELECT profile_id, kind, CASE WHEN kind = 'user_id' THEN value END FROM identities WHERE profile_id = ANY($1)",
                &[&member_ids],
            )
            .await?
        {
            let raw: i64 = r.get(0);
            if let Some(c) = canon_of.get(&raw) {
                *snap
                    .kind_counts
                    .entry(*c)
                    .or_default()
                    .entry(common::kind(r.get(1))?)
                    .or_default() += 1;
                if let Some(uid) = r.get::<_, Option<String>>(2) {
                    snap.user_ids.entry(*c).or_default().insert(uid);
                }
            }
        }
        for r in tx
            .query("SELECT profile_a, profile_b FROM merge_blocks WHERE profile_a = ANY($1) OR profile_b = ANY($1)", &[&detail])
            .await?
        {
            snap.blocked_pairs.insert((r.get(0), r.get(1)));
        }
    }
    Ok(snap)
}

/// Statements sent back to back on one connection without waiting for each reply
/// (tokio-postgres pipelines concurrent requests): a group's writes cost about one
/// round trip instead of one per statement. The server runs them in order.
#[derive(Default)]
pub(super) struct Pipeline<'a> {
    stmts: Vec<(&'static str, Params<'a>)>,
}

impl<'a> Pipeline<'a> {
    pub(super) fn add(&mut self, sql: &'static str, params: Params<'a>) {
        self.stmts.push((sql, params));
    }

    pub(super) async fn run(self, tx: &Transaction<'_>) -> Result<()> {
        let prepared = futures_util::future::try_join_all(
            self.stmts.iter().map(|(sql, _)| tx.prepare_cached(sql)),
        )
        .await?;
        let refs: Vec<Vec<Param<'_>>> = self
            .stmts
            .iter()
            .map(|(_, ps)| ps.iter().map(|p| p.as_ref() as Param<'_>).collect())
            .collect();
        futures_util::future::try_join_all(
            prepared.iter().zip(&refs).map(|(st, r)| tx.execute(st, r)),
        )
        .await?;
        Ok(())
    }
}

/// Writes events a capability records beside its own rows, in its transaction; takes
/// the writer lock first (event ids are handed out in commit order).
pub(super) async fn write_events(
    tx: &Transaction<'_>,
    rows: &[EventRow],
    source: &str,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    super::writer_lock(tx).await?;
    let mut p = Pipeline::default();
    add_events(&mut p, rows, source);
    p.run(tx).await
}

pub(super) fn add_events<'a>(p: &mut Pipeline<'a>, rows: &'a [EventRow], source: &'a str) {
    add_events_sql(p, rows, source, insert_events!())
}

/// For writers whose events are idempotent by message id (the chain sync after a crash).
pub(super) fn add_events_ignoring_known<'a>(
    p: &mut Pipeline<'a>,
    rows: &'a [EventRow],
    source: &'a str,
) {
    add_events_sql(
        p,
        rows,
        source,
        concat!(insert_events!(), " ON CONFLICT (message_id) DO NOTHING"),
    )
}

pub(super) fn add_events_sql<'a>(
    p: &mut Pipeline<'a>,
    rows: &'a [EventRow],
    source: &'a str,
    sql: &'static str,
) {
    if rows.is_empty() {
        return;
    }
    let m = || rows.iter().map(|e| &e.message);
    p.add(
        sql,
        vec![
            Box::new(m().map(|m| m.message_id.as_str()).collect::<Vec<_>>()),
            Box::new(rows.iter().map(|e| e.profile_id).collect::<Vec<_>>()),
            Box::new(m().map(|m| m.kind.as_str()).collect::<Vec<_>>()),
            Box::new(m().map(|m| m.name.as_deref()).collect::<Vec<_>>()),
            Box::new(m().map(|m| m.channel.as_str()).collect::<Vec<_>>()),
            Box::new(source),
            Box::new(m().map(|m| m.properties_json.as_str()).collect::<Vec<_>>()),
            Box::new(m().map(|m| m.context_json.as_str()).collect::<Vec<_>>()),
            Box::new(m().map(|m| m.text.as_deref()).collect::<Vec<_>>()),
            Box::new(m().map(|m| m.occurred_at).collect::<Vec<_>>()),
            Box::new(m().map(|m| m.received_at).collect::<Vec<_>>()),
        ],
    );
}

pub(super) async fn insert_merge(
    tx: &Transaction<'_>,
    m: &resolve::Merge,
    by: &str,
) -> Result<i64> {
    let members = serde_json::to_string(&m.members).unwrap_or_default();
    let message_id = if m.message_id.is_empty() {
        None
    } else {
        Some(m.message_id.as_str())
    };
    let row = tx
        .query_one(
            "INSERT INTO merges (survivor_id, merged_id, member_ids, cause, message_id, by_whom, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[&m.survivor, &m.merged, &members, &m.cause.to_string(), &message_id, &by, &m.at],
        )
        .await?;
    Ok(row.get(0))
}

pub(super) async fn apply(tx: &Transaction<'_>, plan: Plan, source: &str) -> Result<IngestOutcome> {
    let now = rapport_domain::time::now_millis();
    let mut p = Pipeline::default();
    if !plan.new_profiles.is_empty() {
        p.add(
            "INSERT INTO profiles (id, canonical_id, created_at, updated_at)
             SELECT id, id, at, at FROM UNNEST($1::int8[], $2::int8[]) AS t(id, at)",
            vec![
                Box::new(plan.new_profiles.iter().map(|p| p.0).collect::<Vec<i64>>()),
                Box::new(plan.new_profiles.iter().map(|p| p.1).collect::<Vec<i64>>()),
            ],
        );
    }
    let ni = &plan.new_identities;
    if !ni.is_empty() {
        p.add(
            "INSERT INTO identities (kind, value, profile_id, source, first_seen, last_seen, unconfirmed)
             SELECT kind, value, pid, $4, fs, fs, u FROM UNNEST($1::text[], $2::text[], $3::int8[], $5::int8[], $6::bool[]) AS t(kind, value, pid, fs, u)",
            vec![
                Box::new(ni.iter().map(|i| i.key.kind.as_str()).collect::<Vec<_>>()),
                Box::new(ni.iter().map(|i| i.key.value.as_str()).collect::<Vec<_>>()),
                Box::new(ni.iter().map(|i| i.profile_id).collect::<Vec<i64>>()),
                Box::new(source),
                Box::new(ni.iter().map(|i| i.first_seen).collect::<Vec<i64>>()),
                Box::new(ni.iter().map(|i| i.unconfirmed).collect::<Vec<bool>>()),
            ],
        );
    }
    if !plan.confirmed.is_empty() {
        p.add(
            "UPDATE identities i SET unconfirmed = false
             FROM UNNEST($1::text[], $2::text[]) AS t(kind, value)
             WHERE i.kind = t.kind AND i.value = t.value",
            vec![
                Box::new(
                    plan.confirmed
                        .iter()
                        .map(|k| k.kind.as_str())
                        .collect::<Vec<_>>(),
                ),
                Box::new(
                    plan.confirmed
                        .iter()
                        .map(|k| k.value.as_str())
                        .collect::<Vec<_>>(),
                ),
            ],
        );
    }
    let mut seen: Vec<_> = plan.seen.iter().collect();
    seen.sort(); // a stable row order avoids deadlocks between concurrent writers
    if !seen.is_empty() {
        p.add(
            "UPDATE identities i SET last_seen = GREATEST(i.last_seen, t.at)
             FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS t(kind, value, at)
             WHERE i.kind = t.kind AND i.value = t.value",
            vec![
                Box::new(
                    seen.iter()
                        .map(|(k, _)| k.kind.as_str())
                        .collect::<Vec<_>>(),
                ),
                Box::new(
                    seen.iter()
                        .map(|(k, _)| k.value.as_str())
                        .collect::<Vec<_>>(),
                ),
                Box::new(seen.iter().map(|(_, at)| **at).collect::<Vec<i64>>()),
            ],
        );
    }
    let re = plan.reassignments();
    if !re.is_empty() {
        p.add(
            "UPDATE profiles p SET canonical_id = t.c, updated_at = $3
             FROM UNNEST($1::int8[], $2::int8[]) AS t(id, c) WHERE p.id = t.id",
            vec![
                Box::new(re.iter().map(|r| r.0).collect::<Vec<i64>>()),
                Box::new(re.iter().map(|r| r.1).collect::<Vec<i64>>()),
                Box::new(now),
            ],
        );
    }
    let ms = &plan.merges;
    if !ms.is_empty() {
        // All merges of the group (about one per 30 events in busy traffic) at once.
        p.add(
            "INSERT INTO merges (survivor_id, merged_id, member_ids, cause, message_id, by_whom, at)
             SELECT s, m, mem, c, mid, $6, at
             FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $7::int8[])
               WITH ORDINALITY AS t(s, m, mem, c, mid, at, n) ORDER BY n",
            vec![
                Box::new(ms.iter().map(|m| m.survivor).collect::<Vec<i64>>()),
                Box::new(ms.iter().map(|m| m.merged).collect::<Vec<i64>>()),
                Box::new(ms.iter().map(|m| serde_json::to_string(&m.members).unwrap_or_default()).collect::<Vec<String>>()),
                Box::new(ms.iter().map(|m| m.cause.to_string()).collect::<Vec<String>>()),
                Box::new(
                    ms.iter()
                        .map(|m| if m.message_id.is_empty() { None } else { Some(m.message_id.as_str()) })
                        .collect::<Vec<_>>(),
                ),
                Box::new(source),
                Box::new(ms.iter().map(|m| m.at).collect::<Vec<i64>>()),
            ],
        );
    }
    for c in &plan.conflicts {
        p.add(
            "INSERT INTO conflicts (profile_a, profile_b, identifier, reason, message_id, first_at, last_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (profile_a, profile_b, identifier) DO UPDATE SET count = conflicts.count + 1, last_at = excluded.last_at,
                 reason = excluded.reason, resolved_at = NULL",
            vec![
                Box::new(c.profile_a),
                Box::new(c.profile_b),
                Box::new(c.key.to_string()),
                Box::new(c.reason.as_str()),
                Box::new(c.message_id.as_str()),
                Box::new(c.at),
            ],
        );
    }
    for patches in plan.trait_patch_rounds() {
        // A patch with no nulls and no nested objects is a plain jsonb concatenation;
        // only the others need the (slower) recursive merge-patch function. Each key is
        // written only if it is not older than the stored one's.
        let flat: Vec<bool> = patches
            .iter()
            .map(|p| rapport_domain::traits::is_flat_patch(&p.patch))
            .collect();
        p.add(
            // The usual case, a patch no older than anything stored (`t.since` ≥ the
            // profile's latest key time), skips the key-by-key comparison.
            "UPDATE profiles p SET
                    traits = CASE WHEN t.since >= p.traits_updated_at THEN
                                      CASE WHEN t.flat THEN p.traits || t.patch::jsonb ELSE rapport_merge_patch(p.traits, t.patch::jsonb) END
                                  WHEN t.flat THEN p.traits || rapport_fresh_patch(p.trait_times, t.patch::jsonb, t.times::jsonb)
                                  ELSE rapport_merge_patch(p.traits, rapport_fresh_patch(p.trait_times, t.patch::jsonb, t.times::jsonb)) END,
                    trait_times = CASE WHEN t.since >= p.traits_updated_at THEN p.trait_times || t.times::jsonb
                                       ELSE rapport_later_times(p.trait_times, t.times::jsonb) END,
                    traits_updated_at = GREATEST(p.traits_updated_at, t.at), updated_at = $4
             FROM UNNEST($1::int8[], $2::text[], $3::int8[], $5::bool[], $6::text[], $7::int8[]) AS t(id, patch, at, flat, times, since) WHERE p.id = t.id",
            vec![
                Box::new(patches.iter().map(|p| p.profile_id).collect::<Vec<i64>>()),
                Box::new(patches.iter().map(|p| p.patch.clone()).collect::<Vec<String>>()),
                Box::new(patches.iter().map(|p| p.at).collect::<Vec<i64>>()),
                Box::new(now),
                Box::new(flat),
                Box::new(patches.iter().map(|p| p.times.clone()).collect::<Vec<String>>()),
                Box::new(patches.iter().map(|p| p.from).collect::<Vec<i64>>()),
            ],
        );
    }
    // The first campaign is kept: replaced only by an earlier one (a late batch).
    let touches: Vec<_> = plan
        .events
        .iter()
        .filter_map(|e| {
            Some((
                e.profile_id,
                e.message.first_touch_json.clone()?,
                e.message.occurred_at,
            ))
        })
        .collect();
    if !touches.is_empty() {
        p.add(
            "UPDATE profiles p SET traits = jsonb_set(p.traits, '{first_touch}', t.touch::jsonb)
             FROM (SELECT DISTINCT ON (id) id, touch, at
                   FROM UNNEST($1::int8[], $2::text[], $3::int8[]) AS u(id, touch, at) ORDER BY id, at) t
             WHERE p.id = t.id
               AND CASE WHEN jsonb_typeof(p.traits->'first_touch'->'at') = 'number'
                        THEN (p.traits->'first_touch'->>'at')::numeric > t.at ELSE true END",
            vec![
                Box::new(touches.iter().map(|t| t.0).collect::<Vec<i64>>()),
                Box::new(touches.iter().map(|t| t.1.clone()).collect::<Vec<String>>()),
                Box::new(touches.iter().map(|t| t.2).collect::<Vec<i64>>()),
            ],
        );
    }
    add_events(&mut p, &plan.events, source);
    let msgs: Vec<&Message> = plan.events.iter().map(|e| &e.message).collect();
    for (field, kind, n, value, reason, at) in crate::ingest::issue_counts(&msgs, now) {
        p.add(
            "INSERT INTO ingestion_issues (field, kind, count, first_at, last_at, example_value, example_reason)
             VALUES ($1, $2, $3, $6, $6, $4, $5)
             ON CONFLICT (field, kind) DO UPDATE SET count = ingestion_issues.count + excluded.count,
                 last_at = excluded.last_at, example_value = excluded.example_value,
                 example_reason = excluded.example_reason",
            vec![
                Box::new(field),
                Box::new(kind.to_string()),
                Box::new(n),
                Box::new(value),
                Box::new(reason),
                Box::new(at),
            ],
        );
    }
    p.run(tx).await?;
    Ok(IngestOutcome {
        accepted: plan.events.len(),
        duplicates: plan.duplicates,
        profiles_created: plan.new_profiles.len(),
        identities_created: plan.new_identities.len(),
        merges: plan.merges.len(),
        conflicts: plan.conflicts.len(),
    })
}
