//! SQLite side of ingestion: the snapshot of who owns a group's identifiers, and the
//! resolver's plan applied in the group's one write transaction (with the writer's
//! identity cache).

use super::{IdentityCache, SqliteStore};
use crate::{sql, IngestOutcome, IngestStore, Result, SourcedMessages};
use async_trait::async_trait;
use rapport_domain::resolve::{
    clusters_needing_detail, lookup_keys, max_new_profiles, EventRow, Owner, Plan, Snapshot,
};
use rapport_domain::{resolve, Message};
use rusqlite::{params, OptionalExtension, Transaction};

#[async_trait]
impl IngestStore for SqliteStore {
    async fn ingest(&self, groups: Vec<SourcedMessages>) -> Result<IngestOutcome> {
        self.write_cached(false, move |tx, cache| {
            let mut total = IngestOutcome::default();
            for g in groups {
                total.add(&ingest_group(tx, g, cache)?);
            }
            Ok(total)
        })
        .await
    }

    async fn insert_events_once(&self, rows: Vec<EventRow>, source: &str) -> Result<()> {
        let source = source.to_string();
        self.write(move |tx| insert_events_ignoring_known(tx, &rows, &source))
            .await
    }

    async fn ingestion_issues(&self, limit: usize) -> Result<Vec<crate::IngestionIssue>> {
        self.read(move |c| {
            let rows = c
                .prepare_cached(
                    "SELECT field, kind, count, first_at, last_at, example_value, example_reason
                     FROM ingestion_issues ORDER BY count DESC, field, kind LIMIT ?1",
                )?
                .query_map([limit as i64], |r| {
                    Ok(crate::IngestionIssue {
                        field: r.get(0)?,
                        kind: r.get(1)?,
                        count: r.get(2)?,
                        first_at: r.get(3)?,
                        last_at: r.get(4)?,
                        example_value: r.get(5)?,
                        example_reason: r.get(6)?,
                    })
                })?
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn insert_events_raw(&self, rows: Vec<EventRow>, source: &str) -> Result<()> {
        let source = source.to_string();
        self.write(move |tx| insert_events(tx, &rows, &source))
            .await
    }
}

pub(super) fn snapshot(
    tx: &Transaction<'_>,
    msgs: &[Message],
    cache: &mut IdentityCache,
) -> Result<Snapshot> {
    let mut snap = Snapshot::default();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT i.profile_id, p.canonical_id, i.last_seen, i.unconfirmed FROM identities i
             JOIN profiles p ON p.id = i.profile_id WHERE i.kind = ?1 AND i.value = ?2",
        )?;
        for k in lookup_keys(msgs) {
            if let Some(o) = cache.get(&k) {
                snap.owners.insert(k, o);
                continue;
            }
            let owner = stmt
                .query_row(params![k.kind.as_str(), k.value], |r| {
                    Ok(Owner {
                        raw: r.get(0)?,
                        canonical: r.get(1)?,
                        last_seen: r.get(2)?,
                        unconfirmed: r.get(3)?,
                    })
                })
                .optional()?;
            if let Some(o) = owner {
                cache
                    .owners
                    .insert(k.clone(), (o.raw, o.last_seen, o.unconfirmed));
                cache.canon.insert(o.raw, o.canonical);
                snap.owners.insert(k, o);
            }
        }
    }
    let detail = clusters_needing_detail(msgs, &snap.owners);
    if !detail.is_empty() {
        let mut members = tx.prepare_cached(sql::profiles::CLUSTER_MEMBERS)?;
        let mut idents = tx.prepare_cached(
            // CROSS JOIN fixes the join order: from the cluster's few members to their
            // identities. One read gives the user ids and the per-kind counts (a person
            // holds at most ~200 identities, `resolve::limit`).
            "SELECT i.kind, CASE WHEN i.kind = 'user_id' THEN i.value END
             FROM profiles p CROSS JOIN identities i ON i.profile_id = p.id
             WHERE p.canonical_id = ?1",
        )?;
        let mut blocks = tx.prepare_cached(
            "SELECT profile_a, profile_b FROM merge_blocks WHERE profile_a = ?1 OR profile_b = ?1",
        )?;
        for c in detail {
            let ms = members
                .query_map([c], |r| r.get(0))?
                .collect::<std::result::Result<Vec<i64>, _>>()?;
            snap.members.insert(c, ms);
            let mut us = std::collections::BTreeSet::new();
            let counts = snap.kind_counts.entry(c).or_default();
            for row in idents.query_map([c], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })? {
                let (kind, uid) = row?;
                *counts.entry(crate::common::kind(&kind)?).or_default() += 1;
                us.extend(uid);
            }
            snap.user_ids.insert(c, us);
            for b in blocks.query_map([c], |r| Ok((r.get(0)?, r.get(1)?)))? {
                snap.blocked_pairs.insert(b?);
            }
        }
    }
    let mut exists = tx.prepare_cached("SELECT 1 FROM events WHERE message_id = ?1")?;
    for m in msgs {
        if exists.exists([&m.message_id])? {
            snap.existing_message_ids.insert(m.message_id.clone());
        }
    }
    Ok(snap)
}

pub(super) fn insert_events(
    tx: &rusqlite::Connection,
    rows: &[EventRow],
    source: &str,
) -> Result<()> {
    insert_events_sql(tx, rows, source, "INSERT")
}

/// For writers whose events are idempotent by message id (the chain sync after a crash).
pub(super) fn insert_events_ignoring_known(
    tx: &Transaction<'_>,
    rows: &[EventRow],
    source: &str,
) -> Result<()> {
    insert_events_sql(tx, rows, source, "INSERT OR IGNORE")
}

pub(super) fn insert_events_sql(
    tx: &rusqlite::Connection,
    rows: &[EventRow],
    source: &str,
    verb: &str,
) -> Result<()> {
    let mut stmt = tx.prepare_cached(&format!(
        "{verb} INTO events (message_id, profile_id, type, name, channel, source, properties, context, text, occurred_at, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?;
    for e in rows {
        let m = &e.message;
        stmt.execute(params![
            m.message_id,
            e.profile_id,
            m.kind.as_str(),
            m.name,
            m.channel,
            source,
            m.properties_json,
            m.context_json,
            m.text,
            m.occurred_at,
            m.received_at
        ])?;
    }
    Ok(())
}

pub(super) fn insert_merge(tx: &Transaction<'_>, m: &resolve::Merge, by: &str) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO merges (survivor_id, merged_id, member_ids, cause, message_id, by_whom, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        m.survivor,
        m.merged,
        serde_json::to_string(&m.members).unwrap_or_default(),
        m.cause.to_string(),
        if m.message_id.is_empty() {
            None
        } else {
            Some(&m.message_id)
        },
        by,
        m.at
    ])?;
    Ok(tx.last_insert_rowid())
}

pub(super) fn apply(tx: &Transaction<'_>, plan: &Plan, source: &str) -> Result<IngestOutcome> {
    let now = rapport_domain::time::now_millis();
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO profiles (id, canonical_id, created_at, updated_at) VALUES (?1, ?1, ?2, ?2)",
        )?;
        for (id, at) in &plan.new_profiles {
            stmt.execute(params![id, at])?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO identities (kind, value, profile_id, source, first_seen, last_seen, unconfirmed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
        )?;
        for i in &plan.new_identities {
            stmt.execute(params![
                i.key.kind.as_str(),
                i.key.value,
                i.profile_id,
                source,
                i.first_seen,
                i.unconfirmed
            ])?;
        }
        let mut stmt = tx.prepare_cached(
            "UPDATE identities SET unconfirmed = 0 WHERE kind = ?1 AND value = ?2",
        )?;
        for k in &plan.confirmed {
            stmt.execute(params![k.kind.as_str(), k.value])?;
        }
        let mut stmt = tx.prepare_cached(
            "UPDATE identities SET last_seen = max(last_seen, ?3) WHERE kind = ?1 AND value = ?2",
        )?;
        for (k, at) in &plan.seen {
            stmt.execute(params![k.kind.as_str(), k.value, at])?;
        }
        let mut stmt = tx.prepare_cached(
            "UPDATE profiles SET canonical_id = ?2, updated_at = ?3 WHERE id = ?1",
        )?;
        for (raw, c) in plan.reassignments() {
            stmt.execute(params![raw, c, now])?;
        }
        for m in &plan.merges {
            insert_merge(tx, m, source)?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO conflicts (profile_a, profile_b, identifier, reason, message_id, first_at, last_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
             ON CONFLICT (profile_a, profile_b, identifier) DO UPDATE SET count = count + 1, last_at = excluded.last_at,
                 reason = excluded.reason, resolved_at = NULL",
        )?;
        for c in &plan.conflicts {
            stmt.execute(params![
                c.profile_a,
                c.profile_b,
                c.key.to_string(),
                c.reason,
                c.message_id,
                c.at
            ])?;
        }
        // Each key is written only if it is not older than the stored one's.
        let mut stmt = tx.prepare_cached(
            // The usual case, a patch no older than anything stored (`?6` ≥ the
            // profile's latest key time), skips the key-by-key comparison.
            "UPDATE profiles SET
                 traits = CASE WHEN ?6 >= traits_updated_at THEN json_patch(traits, ?2)
                               ELSE json_patch(traits, rapport_fresh_patch(trait_times, ?2, ?3)) END,
                 trait_times = CASE WHEN ?6 >= traits_updated_at THEN json_patch(trait_times, ?3)
                                    ELSE rapport_later_times(trait_times, ?3) END,
                 traits_updated_at = max(traits_updated_at, ?4), updated_at = ?5 WHERE id = ?1",
        )?;
        for round in plan.trait_patch_rounds() {
            for p in round {
                stmt.execute(params![p.profile_id, p.patch, p.times, p.at, now, p.from])?;
            }
        }
        // The first campaign is kept: replaced only by an earlier one (a late batch).
        let mut stmt = tx.prepare_cached(
            "UPDATE profiles SET traits = json_set(traits, '$.first_touch', json(?2)) WHERE id = ?1
               AND CASE WHEN json_type(traits, '$.first_touch.at') IN ('integer', 'real')
                        THEN json_extract(traits, '$.first_touch.at') > ?3 ELSE 1 END",
        )?;
        for e in &plan.events {
            if let Some(touch) = &e.message.first_touch_json {
                stmt.execute(params![e.profile_id, touch, e.message.occurred_at])?;
            }
        }
    }
    insert_events(tx, &plan.events, source)?;
    let msgs: Vec<&Message> = plan.events.iter().map(|e| &e.message).collect();
    let issues = crate::ingest::issue_counts(&msgs, now);
    if !issues.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO ingestion_issues (field, kind, count, first_at, last_at, example_value, example_reason)
             VALUES (?1, ?2, ?3, ?6, ?6, ?4, ?5)
             ON CONFLICT (field, kind) DO UPDATE SET count = count + excluded.count, last_at = excluded.last_at,
                 example_value = excluded.example_value, example_reason = excluded.example_reason",
        )?;
        for (field, kind, n, value, reason, at) in &issues {
            stmt.execute(params![field, kind, n, value, reason, at])?;
        }
    }
    Ok(IngestOutcome {
        accepted: plan.events.len(),
        duplicates: plan.duplicates,
        profiles_created: plan.new_profiles.len(),
        identities_created: plan.new_identities.len(),
        merges: plan.merges.len(),
        conflicts: plan.conflicts.len(),
    })
}

pub(super) fn ingest_group(
    tx: &Transaction<'_>,
    group: SourcedMessages,
    cache: &mut IdentityCache,
) -> Result<IngestOutcome> {
    let snap = snapshot(tx, &group.messages, cache)?;
    let bound = max_new_profiles(&group.messages, &snap.owners) as i64;
    let start: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM profiles", [], |r| {
        r.get(0)
    })?;
    let mut ids = start..start + bound;
    let plan = resolve::resolve_all(snap, &mut ids, group.messages);
    let outcome = apply(tx, &plan, &group.source)?;
    cache.learn(&plan);
    Ok(outcome)
}
