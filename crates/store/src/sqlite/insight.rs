//! SQLite side of audience insight: breakdowns and privacy budgets.

use super::segments::bind;
use super::SqliteStore;
use crate::insight::{Dimension, InsightStore};
use crate::{Compiled, Result};
use async_trait::async_trait;
use rusqlite::{params, params_from_iter, OptionalExtension};

#[async_trait]
impl InsightStore for SqliteStore {
    async fn breakdown(&self, c: Compiled, by: Dimension) -> Result<Vec<(Option<String>, i64)>> {
        self.read_heavy(move |conn| {
            let values = bind(&c.params);
            let sql = format!(
                "SELECT {} AS g, COUNT(*) FROM profiles p WHERE p.id = p.canonical_id AND {} GROUP BY g",
                by.sql(true),
                c.condition
            );
            Ok(conn
                .prepare(&sql)?
                .query_map(params_from_iter(values.iter()), |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn spend(&self, key_id: i64, day: i64, epsilon: f64, budget: f64) -> Result<Option<f64>> {
        self.write(move |tx| {
            let spent: f64 = tx
                .query_row(
                    "SELECT epsilon FROM insight_spend WHERE key_id = ?1 AND day = ?2",
                    params![key_id, day],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0.0);
            // A hair of tolerance: ten spends of 0.1 make 1.0 in decimal, not in binary.
            if spent + epsilon > budget + 1e-9 {
                return Ok(None);
            }
            tx.execute(
                "INSERT INTO insight_spend (key_id, day, epsilon, queries) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (key_id, day) DO UPDATE SET epsilon = epsilon + excluded.epsilon, queries = queries + 1",
                params![key_id, day, epsilon],
            )?;
            Ok(Some(spent + epsilon))
        })
        .await
    }
}
