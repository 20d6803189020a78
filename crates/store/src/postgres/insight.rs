//! PostgreSQL side of audience insight: breakdowns and privacy budgets.

use super::PgStore;
use crate::insight::{Dimension, InsightStore};
use crate::{Compiled, Result};
use async_trait::async_trait;

#[async_trait]
impl InsightStore for PgStore {
    async fn breakdown(&self, c: Compiled, by: Dimension) -> Result<Vec<(Option<String>, i64)>> {
        let sql = format!(
            "SELECT {} AS g, COUNT(*) FROM profiles p WHERE p.id = p.canonical_id AND {{cond}} GROUP BY g",
            by.sql(false)
        );
        Ok(self
            .over_matches(&c, &sql)
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn spend(&self, key_id: i64, day: i64, epsilon: f64, budget: f64) -> Result<Option<f64>> {
        let c = self.client().await?;
        // One statement: the row is locked by the upsert, so concurrent spends queue
        // and each sees the other's total.
        let row = c
            .query_opt(
                "INSERT INTO insight_spend AS s (key_id, day, epsilon, queries) VALUES ($1, $2, $3, 1)
                 ON CONFLICT (key_id, day) DO UPDATE SET epsilon = s.epsilon + excluded.epsilon, queries = s.queries + 1
                 WHERE s.epsilon + excluded.epsilon <= $4::float8 + 1e-9
                 RETURNING epsilon",
                &[&key_id, &day, &epsilon, &budget],
            )
            .await?;
        Ok(match row {
            Some(r) => {
                let spent: f64 = r.get(0);
                // A first spend larger than the budget is inserted by the upsert: refuse
                // it here (never the case with the checked settings: ε ≤ budget).
                (spent <= budget + 1e-9).then_some(spent)
            }
            None => None,
        })
    }
}
