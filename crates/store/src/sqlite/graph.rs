//! SQLite side of relationships, touches and graph scores. Lists of profile ids travel
//! as one JSON parameter read with `json_each`, so statements stay cacheable.

use super::{event_view, SqliteStore};
use crate::sql;
use crate::GraphStore;
use crate::{RelScope, Result, ScoreOrder, TouchQuery, GRAPH_VERSION};
use async_trait::async_trait;
use rapport_domain::model::EventView;
use rapport_domain::relationship::{
    fold_writes, GraphRun, GraphScores, RelationshipView, RelationshipWrite, TouchView,
};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::{to_datetime, Millis};
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;

/// Every raw profile of the clusters the JSON array `?N` names.
pub(super) fn members(n: usize) -> String {
    format!(
        "SELECT id FROM profiles WHERE canonical_id IN \
         (SELECT canonical_id FROM profiles WHERE id IN (SELECT value FROM json_each(?{n})))"
    )
}

pub(super) fn ids_json(ids: &[ProfileId]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

const SCORE_COLUMNS: &str = "g.profile_id, g.pagerank, g.betweenness, g.community, g.core, g.reach1, g.reach2, g.evangelist, g.syndication, g.pagerank_pct, g.betweenness_pct";

fn score_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GraphScores> {
    Ok(GraphScores {
        profile_id: r.get(0)?,
        pagerank: r.get(1)?,
        betweenness: r.get(2)?,
        community: r.get(3)?,
        core: r.get(4)?,
        reach1: r.get(5)?,
        reach2: r.get(6)?,
        evangelist: r.get(7)?,
        syndication: r.get(8)?,
        pagerank_pct: r.get(9)?,
        betweenness_pct: r.get(10)?,
    })
}

#[async_trait]
impl GraphStore for SqliteStore {
    async fn upsert_relationships(
        &self,
        writes: Vec<RelationshipWrite>,
        cursor: Option<(String, i64)>,
    ) -> Result<()> {
        self.write(move |tx| {
            let mut rows = fold_writes(&writes);
            // Key order keeps B-tree inserts local (measured on a 10M-edge import).
            rows.sort_by(|a, b| (a.source, a.target, &a.kind).cmp(&(b.source, b.target, &b.kind)));
            {
                let mut up = tx.prepare_cached(
                    "INSERT INTO relationships (source_id, target_id, kind, weight, count, explicit, sentiment_sum, sentiment_n, first_seen, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (source_id, target_id, kind) DO UPDATE SET
                       weight = CASE WHEN excluded.explicit THEN excluded.weight ELSE relationships.weight + excluded.weight END,
                       count = relationships.count + excluded.count,
                       explicit = MAX(relationships.explicit, excluded.explicit),
                       sentiment_sum = relationships.sentiment_sum + excluded.sentiment_sum,
                       sentiment_n = relationships.sentiment_n + excluded.sentiment_n,
                       first_seen = MIN(relationships.first_seen, excluded.first_seen),
                       last_seen = MAX(relationships.last_seen, excluded.last_seen)",
                )?;
                for r in &rows {
                    up.execute(params![
                        r.source, r.target, r.kind, r.weight, r.count, r.explicit,
                        r.sentiment_sum, r.sentiment_n, r.first_seen, r.last_seen
                    ])?;
                }
                let mut touch = tx.prepare_cached(
                    "INSERT INTO touches (source_id, target_id, kind, event_id, at, sentiment) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for w in writes.iter().filter(|w| !w.explicit && w.event_id.is_some() && w.source != w.target) {
                    touch.execute(params![w.source, w.target, w.kind, w.event_id, w.at, w.sentiment])?;
                }
            }
            if !rows.is_empty() {
                tx.execute(
                    sql::settings::BUMP_COUNTER,
                    [GRAPH_VERSION],
                )?;
            }
            if let Some((name, pos)) = cursor {
                tx.execute(
                    sql::settings::SET_COUNTER,
                    params![name, pos],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn graph_edges(&self) -> Result<Vec<(ProfileId, ProfileId, f64)>> {
        self.read(|c| {
            // Merged profiles are few: map them in memory instead of joining every edge.
            let canon: HashMap<i64, i64> = c
                .prepare(sql::graph::MERGED_PROFILES)?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<std::result::Result<_, _>>()?;
            let map = |id: i64| canon.get(&id).copied().unwrap_or(id);
            let mut st = c.prepare(sql::graph::ALL_EDGES)?;
            let mut rows = st.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push((map(r.get(0)?), map(r.get(1)?), r.get(2)?));
            }
            Ok(out)
        })
        .await
    }

    async fn relationships(&self, scope: RelScope, limit: usize) -> Result<Vec<RelationshipView>> {
        self.read(move |c| {
            let (ids, filter) = match &scope {
                RelScope::Touching(ids) => (ids, format!(
                    "SELECT * FROM relationships WHERE source_id IN ({m}) UNION SELECT * FROM relationships WHERE target_id IN ({m})",
                    m = members(1))),
                RelScope::Among(ids) => (ids, format!(
                    "SELECT * FROM relationships WHERE source_id IN ({m}) AND target_id IN ({m})", m = members(1))),
                RelScope::All => (&vec![], "SELECT * FROM relationships WHERE ?1 IS NOT NULL".to_string()),
            };
            let sql = format!(
                "SELECT ps.canonical_id, pt.canonical_id, r.kind, SUM(r.weight), SUM(r.count), MAX(r.explicit),
                        SUM(r.sentiment_sum), SUM(r.sentiment_n), MIN(r.first_seen), MAX(r.last_seen)
                 FROM ({filter}) r JOIN profiles ps ON ps.id = r.source_id JOIN profiles pt ON pt.id = r.target_id
                 WHERE ps.canonical_id <> pt.canonical_id
                 GROUP BY ps.canonical_id, pt.canonical_id, r.kind
                 ORDER BY SUM(r.weight) DESC, ps.canonical_id, pt.canonical_id, r.kind LIMIT ?2"
            );
            Ok(c.prepare_cached(&sql)?
                .query_map(params![ids_json(ids), limit as i64], |r| {
                    let n: i64 = r.get(7)?;
                    let s: f64 = r.get(6)?;
                    Ok(RelationshipView {
                        source: r.get(0)?,
                        target: r.get(1)?,
                        kind: r.get(2)?,
                        weight: r.get(3)?,
                        count: r.get(4)?,
                        explicit: r.get::<_, i64>(5)? != 0,
                        sentiment: (n > 0).then(|| s / n as f64),
                        first_seen: to_datetime(r.get(8)?),
                        last_seen: to_datetime(r.get(9)?),
                    })
                })?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn touches(&self, q: TouchQuery) -> Result<Vec<TouchView>> {
        self.read(move |c| {
            let mut sql = String::from(sql::graph::TOUCHES);
            if q.sources.is_some() {
                sql.push_str(&format!(" AND t.source_id IN ({})", members(3)));
            }
            if q.targets.is_some() {
                sql.push_str(&format!(" AND t.target_id IN ({})", members(4)));
            }
            if !q.kinds.is_empty() {
                sql.push_str(" AND t.kind IN (SELECT value FROM json_each(?5))");
            }
            sql.push_str(" ORDER BY t.at DESC, t.id DESC LIMIT ?6");
            let kinds = serde_json::to_string(&q.kinds).unwrap_or_default();
            Ok(c.prepare_cached(&sql)?
                .query_map(
                    params![
                        q.since.unwrap_or(i64::MIN),
                        q.until.unwrap_or(i64::MAX),
                        q.sources.as_deref().map(ids_json),
                        q.targets.as_deref().map(ids_json),
                        kinds,
                        q.limit as i64
                    ],
                    |r| {
                        Ok(TouchView {
                            source: r.get(0)?,
                            target: r.get(1)?,
                            kind: r.get(2)?,
                            event_id: r.get(3)?,
                            at: to_datetime(r.get(4)?),
                            sentiment: r.get(5)?,
                        })
                    },
                )?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn save_graph_run(
        &self,
        started_at: Millis,
        finished_at: Millis,
        graph_version: i64,
        summary: serde_json::Value,
        scores: Vec<GraphScores>,
    ) -> Result<i64> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO graph_runs (started_at, finished_at, graph_version, summary) VALUES (?1, ?2, ?3, ?4)",
                params![started_at, finished_at, graph_version, summary.to_string()],
            )?;
            let run = tx.last_insert_rowid();
            tx.execute("DELETE FROM graph_scores", [])?;
            let mut st = tx.prepare_cached(
                "INSERT INTO graph_scores (profile_id, pagerank, betweenness, community, core, reach1, reach2, evangelist, syndication, pagerank_pct, betweenness_pct, run_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for s in &scores {
                st.execute(params![
                    s.profile_id, s.pagerank, s.betweenness, s.community, s.core, s.reach1, s.reach2,
                    s.evangelist, s.syndication, s.pagerank_pct, s.betweenness_pct, run
                ])?;
            }
            Ok(run)
        })
        .await
    }

    async fn latest_graph_run(&self) -> Result<Option<GraphRun>> {
        self.read(|c| {
            Ok(c.prepare_cached(sql::graph::LATEST_GRAPH_RUN)?
                .query_row([], |r| {
                    let s: String = r.get(4)?;
                    Ok(GraphRun {
                        id: r.get(0)?,
                        started_at: to_datetime(r.get(1)?),
                        finished_at: to_datetime(r.get(2)?),
                        graph_version: r.get(3)?,
                        summary: serde_json::from_str(&s).unwrap_or_default(),
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn graph_scores(&self, ids: Vec<ProfileId>) -> Result<Vec<GraphScores>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {SCORE_COLUMNS} FROM graph_scores g WHERE g.profile_id IN
                 (SELECT canonical_id FROM profiles WHERE id IN (SELECT value FROM json_each(?1)))"
            ))?
            .query_map([ids_json(&ids)], score_row)?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn top_graph_scores(
        &self,
        by: ScoreOrder,
        community: Option<i64>,
        limit: usize,
    ) -> Result<Vec<GraphScores>> {
        self.read(move |c| {
            let col = by.column();
            let filter = if community.is_some() { "AND g.community = ?2" } else { "AND ?2 IS NULL" };
            Ok(c.prepare_cached(&format!(
                "SELECT {SCORE_COLUMNS} FROM graph_scores g JOIN profiles p ON p.id = g.profile_id AND p.canonical_id = p.id
                 WHERE 1 = 1 {filter} ORDER BY g.{col} DESC, g.profile_id LIMIT ?1"
            ))?
            .query_map(params![limit as i64, community], score_row)?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn communities(&self, limit: usize) -> Result<Vec<(i64, i64)>> {
        self.read(move |c| {
            Ok(c.prepare_cached(sql::graph::COMMUNITIES)?
                .query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn relationship_candidates(
        &self,
        after: i64,
        span: i64,
    ) -> Result<(Vec<EventView>, i64)> {
        self.read(move |c| {
            let max: i64 = c.query_row(sql::text::LAST_EVENT_ID, [], |r| r.get(0))?;
            let upto = max.min(after.saturating_add(span));
            if upto <= after {
                return Ok((vec![], after));
            }
            // A text match on the stored JSON: a superset of what `infer` reads, far
            // cheaper than parsing every event's properties.
            let keys = rapport_domain::relationship::HINT_KEYS
                .iter()
                .map(|k| format!("properties LIKE '%\"{k}\"%'"))
                .collect::<Vec<_>>()
                .join(" OR ");
            let sql = format!(
                "SELECT id, message_id, profile_id, type, name, channel, source, properties, '{{}}', text, occurred_at, received_at
                 FROM events WHERE id > ?1 AND id <= ?2 AND ({keys} OR text LIKE '%@%' OR text LIKE '%0x%') ORDER BY id"
            );
            let events = c
                .prepare_cached(&sql)?
                .query_map(params![after, upto], event_view)?
                .collect::<std::result::Result<_, _>>()?;
            Ok((events, upto))
        })
        .await
    }
}
