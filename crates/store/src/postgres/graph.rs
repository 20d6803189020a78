//! PostgreSQL side of relationships, touches and graph scores: bulk writes as `UNNEST`
//! arrays, id lists as `bigint[]` parameters.

use super::{event_view, PgStore};
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
use std::collections::HashMap;
use tokio_postgres::Row;

/// Every raw profile of the clusters the `bigint[]` parameter `$N` names.
pub(super) fn members(n: usize) -> String {
    format!(
        "SELECT id FROM profiles WHERE canonical_id IN (SELECT canonical_id FROM profiles WHERE id = ANY(${n}))"
    )
}

const SCORE_COLUMNS: &str = "g.profile_id, g.pagerank, g.betweenness, g.community, g.core, g.reach1, g.reach2, g.evangelist, g.syndication, g.pagerank_pct, g.betweenness_pct";
pub(super) const CHUNK: usize = 20_000;

fn score_row(r: &Row) -> GraphScores {
    GraphScores {
        profile_id: r.get(0),
        pagerank: r.get(1),
        betweenness: r.get(2),
        community: r.get(3),
        core: r.get(4),
        reach1: r.get(5),
        reach2: r.get(6),
        evangelist: r.get(7),
        syndication: r.get(8),
        pagerank_pct: r.get(9),
        betweenness_pct: r.get(10),
    }
}

#[async_trait]
impl GraphStore for PgStore {
    async fn upsert_relationships(
        &self,
        writes: Vec<RelationshipWrite>,
        cursor: Option<(String, i64)>,
    ) -> Result<()> {
        let mut rows = fold_writes(&writes);
        // One key order for every writer, so concurrent upserts cannot deadlock.
        rows.sort_by(|a, b| (a.source, a.target, &a.kind).cmp(&(b.source, b.target, &b.kind)));
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for chunk in rows.chunks(CHUNK) {
            let col = |f: fn(&rapport_domain::relationship::EdgeRow) -> i64| -> Vec<i64> {
                chunk.iter().map(f).collect()
            };
            let (src, dst) = (col(|r| r.source), col(|r| r.target));
            let kind: Vec<&str> = chunk.iter().map(|r| r.kind.as_str()).collect();
            let weight: Vec<f64> = chunk.iter().map(|r| r.weight).collect();
            let count = col(|r| r.count);
            let explicit: Vec<bool> = chunk.iter().map(|r| r.explicit).collect();
            let ssum: Vec<f64> = chunk.iter().map(|r| r.sentiment_sum).collect();
            let (sn, first, last) = (
                col(|r| r.sentiment_n),
                col(|r| r.first_seen),
                col(|r| r.last_seen),
            );
            tx.execute(
                "INSERT INTO relationships (source_id, target_id, kind, weight, count, explicit, sentiment_sum, sentiment_n, first_seen, last_seen)
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::float8[], $5::bigint[], $6::bool[], $7::float8[], $8::bigint[], $9::bigint[], $10::bigint[])
                 ON CONFLICT (source_id, target_id, kind) DO UPDATE SET
                   weight = CASE WHEN excluded.explicit THEN excluded.weight ELSE relationships.weight + excluded.weight END,
                   count = relationships.count + excluded.count,
                   explicit = relationships.explicit OR excluded.explicit,
                   sentiment_sum = relationships.sentiment_sum + excluded.sentiment_sum,
                   sentiment_n = relationships.sentiment_n + excluded.sentiment_n,
                   first_seen = LEAST(relationships.first_seen, excluded.first_seen),
                   last_seen = GREATEST(relationships.last_seen, excluded.last_seen)",
                &[&src, &dst, &kind, &weight, &count, &explicit, &ssum, &sn, &first, &last],
            )
            .await?;
        }
        let touches: Vec<&RelationshipWrite> = writes
            .iter()
            .filter(|w| !w.explicit && w.event_id.is_some() && w.source != w.target)
            .collect();
        for chunk in touches.chunks(CHUNK) {
            let src: Vec<i64> = chunk.iter().map(|w| w.source).collect();
            let dst: Vec<i64> = chunk.iter().map(|w| w.target).collect();
            let kind: Vec<&str> = chunk.iter().map(|w| w.kind.as_str()).collect();
            let ev: Vec<Option<i64>> = chunk.iter().map(|w| w.event_id).collect();
            let at: Vec<i64> = chunk.iter().map(|w| w.at).collect();
            let sent: Vec<Option<f64>> = chunk.iter().map(|w| w.sentiment).collect();
            tx.execute(
                "INSERT INTO touches (source_id, target_id, kind, event_id, at, sentiment)
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::float8[])",
                &[&src, &dst, &kind, &ev, &at, &sent],
            )
            .await?;
        }
        if !rows.is_empty() {
            tx.execute(sql::settings::BUMP_COUNTER, &[&GRAPH_VERSION])
                .await?;
        }
        if let Some((name, pos)) = cursor {
            tx.execute(sql::settings::SET_COUNTER, &[&name, &pos])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn graph_edges(&self) -> Result<Vec<(ProfileId, ProfileId, f64)>> {
        let c = self.client().await?;
        // Merged profiles are few: map them in memory instead of joining every edge.
        let canon: HashMap<i64, i64> = c
            .query(sql::graph::MERGED_PROFILES, &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let map = |id: i64| canon.get(&id).copied().unwrap_or(id);
        Ok(c.query(sql::graph::ALL_EDGES, &[])
            .await?
            .iter()
            .map(|r| (map(r.get(0)), map(r.get(1)), r.get(2)))
            .collect())
    }

    async fn relationships(&self, scope: RelScope, limit: usize) -> Result<Vec<RelationshipView>> {
        let c = self.client().await?;
        let (ids, filter) = match &scope {
            RelScope::Touching(ids) => (ids, format!(
                "SELECT * FROM relationships WHERE source_id IN ({m}) UNION SELECT * FROM relationships WHERE target_id IN ({m})",
                m = members(1))),
            RelScope::Among(ids) => (ids, format!(
                "SELECT * FROM relationships WHERE source_id IN ({m}) AND target_id IN ({m})", m = members(1))),
            RelScope::All => (&vec![], "SELECT * FROM relationships WHERE cardinality($1::bigint[]) = 0".to_string()),
        };
        let sql = format!(
            "SELECT ps.canonical_id, pt.canonical_id, r.kind, SUM(r.weight)::float8, SUM(r.count)::bigint, BOOL_OR(r.explicit),
                    SUM(r.sentiment_sum)::float8, SUM(r.sentiment_n)::bigint, MIN(r.first_seen), MAX(r.last_seen)
             FROM ({filter}) r JOIN profiles ps ON ps.id = r.source_id JOIN profiles pt ON pt.id = r.target_id
             WHERE ps.canonical_id <> pt.canonical_id
             GROUP BY ps.canonical_id, pt.canonical_id, r.kind
             ORDER BY SUM(r.weight) DESC, ps.canonical_id, pt.canonical_id, r.kind LIMIT $2"
        );
        Ok(c.query(&sql, &[ids, &(limit as i64)])
            .await?
            .iter()
            .map(|r| {
                let n: i64 = r.get(7);
                let s: f64 = r.get(6);
                RelationshipView {
                    source: r.get(0),
                    target: r.get(1),
                    kind: r.get(2),
                    weight: r.get(3),
                    count: r.get(4),
                    explicit: r.get(5),
                    sentiment: (n > 0).then(|| s / n as f64),
                    first_seen: to_datetime(r.get(8)),
                    last_seen: to_datetime(r.get(9)),
                }
            })
            .collect())
    }

    async fn touches(&self, q: TouchQuery) -> Result<Vec<TouchView>> {
        let c = self.client().await?;
        let mut sql = String::from(sql::graph::TOUCHES);
        let since = q.since.unwrap_or(i64::MIN);
        let until = q.until.unwrap_or(i64::MAX);
        let limit = q.limit as i64;
        let sources = q.sources.clone().unwrap_or_default();
        let targets = q.targets.clone().unwrap_or_default();
        if q.sources.is_some() {
            sql.push_str(&format!(" AND t.source_id IN ({})", members(3)));
        } else {
            sql.push_str(" AND cardinality($3::bigint[]) = 0");
        }
        if q.targets.is_some() {
            sql.push_str(&format!(" AND t.target_id IN ({})", members(4)));
        } else {
            sql.push_str(" AND cardinality($4::bigint[]) = 0");
        }
        if !q.kinds.is_empty() {
            sql.push_str(" AND t.kind = ANY($5)");
        } else {
            sql.push_str(" AND cardinality($5::text[]) = 0");
        }
        sql.push_str(" ORDER BY t.at DESC, t.id DESC LIMIT $6");
        Ok(c.query(
            &sql,
            &[&since, &until, &sources, &targets, &q.kinds, &limit],
        )
        .await?
        .iter()
        .map(|r| TouchView {
            source: r.get(0),
            target: r.get(1),
            kind: r.get(2),
            event_id: r.get(3),
            at: to_datetime(r.get(4)),
            sentiment: r.get(5),
        })
        .collect())
    }

    async fn save_graph_run(
        &self,
        started_at: Millis,
        finished_at: Millis,
        graph_version: i64,
        summary: serde_json::Value,
        scores: Vec<GraphScores>,
    ) -> Result<i64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let run: i64 = tx
            .query_one(
                "INSERT INTO graph_runs (started_at, finished_at, graph_version, summary) VALUES ($1, $2, $3, $4) RETURNING id",
                &[&started_at, &finished_at, &graph_version, &summary.to_string()],
            )
            .await?
            .get(0);
        tx.execute("DELETE FROM graph_scores", &[]).await?;
        for chunk in scores.chunks(CHUNK) {
            let f = |g: fn(&GraphScores) -> f64| -> Vec<f64> { chunk.iter().map(g).collect() };
            let i = |g: fn(&GraphScores) -> i64| -> Vec<i64> { chunk.iter().map(g).collect() };
            tx.execute(
                "INSERT INTO graph_scores (profile_id, pagerank, betweenness, community, core, reach1, reach2, evangelist, syndication, pagerank_pct, betweenness_pct, run_id)
                 SELECT *, $12::bigint FROM UNNEST($1::bigint[], $2::float8[], $3::float8[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::float8[], $9::float8[], $10::float8[], $11::float8[])",
                &[
                    &i(|s| s.profile_id), &f(|s| s.pagerank), &f(|s| s.betweenness), &i(|s| s.community),
                    &i(|s| s.core), &i(|s| s.reach1), &i(|s| s.reach2), &f(|s| s.evangelist),
                    &f(|s| s.syndication), &f(|s| s.pagerank_pct), &f(|s| s.betweenness_pct), &run,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(run)
    }

    async fn latest_graph_run(&self) -> Result<Option<GraphRun>> {
        let c = self.client().await?;
        Ok(c.query_opt(sql::graph::LATEST_GRAPH_RUN, &[])
            .await?
            .map(|r| {
                let s: String = r.get(4);
                GraphRun {
                    id: r.get(0),
                    started_at: to_datetime(r.get(1)),
                    finished_at: to_datetime(r.get(2)),
                    graph_version: r.get(3),
                    summary: serde_json::from_str(&s).unwrap_or_default(),
                }
            }))
    }

    async fn graph_scores(&self, ids: Vec<ProfileId>) -> Result<Vec<GraphScores>> {
        let c = self.client().await?;
        // Prepared once per connection: the real-time engine reads it with every load.
        let stmt = c
            .prepare_cached(&format!("SELECT {SCORE_COLUMNS} FROM graph_scores g WHERE g.profile_id IN (SELECT canonical_id FROM profiles WHERE id = ANY($1))"))
            .await?;
        Ok(c.query(&stmt, &[&ids])
            .await?
            .iter()
            .map(score_row)
            .collect())
    }

    async fn top_graph_scores(
        &self,
        by: ScoreOrder,
        community: Option<i64>,
        limit: usize,
    ) -> Result<Vec<GraphScores>> {
        let c = self.client().await?;
        let col = by.column();
        Ok(c.query(
            &format!(
                "SELECT {SCORE_COLUMNS} FROM graph_scores g JOIN profiles p ON p.id = g.profile_id AND p.canonical_id = p.id
                 WHERE ($2::bigint IS NULL OR g.community = $2) ORDER BY g.{col} DESC, g.profile_id LIMIT $1"
            ),
            &[&(limit as i64), &community],
        )
        .await?
        .iter()
        .map(score_row)
        .collect())
    }

    async fn communities(&self, limit: usize) -> Result<Vec<(i64, i64)>> {
        let c = self.client().await?;
        Ok(c.query(sql::graph::COMMUNITIES, &[&(limit as i64)])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn relationship_candidates(
        &self,
        after: i64,
        span: i64,
    ) -> Result<(Vec<EventView>, i64)> {
        let c = self.client().await?;
        let max: i64 = c.query_one(sql::text::LAST_EVENT_ID, &[]).await?.get(0);
        let upto = max.min(after.saturating_add(span));
        if upto <= after {
            return Ok((vec![], after));
        }
        let keys: Vec<&str> = rapport_domain::relationship::HINT_KEYS.to_vec();
        let events = c
            .query(
                "SELECT id, message_id, profile_id, type, name, channel, source, properties, '{}'::jsonb, text, occurred_at, received_at
                 FROM events WHERE id > $1 AND id <= $2 AND (properties ?| $3 OR text LIKE '%@%' OR text LIKE '%0x%') ORDER BY id",
                &[&after, &upto, &keys],
            )
            .await?
            .iter()
            .map(event_view)
            .collect();
        Ok((events, upto))
    }
}
