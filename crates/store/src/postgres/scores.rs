//! PostgreSQL side of computed scores and their RFM inputs.

use super::PgStore;
use crate::sql;
use crate::{PurchaseStats, Result, ScoreRow, ScoreStore};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;

#[async_trait]
impl ScoreStore for PgStore {
    async fn replace_scores(&self, names: Vec<String>, rows: Vec<crate::ScoreRow>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM profile_scores WHERE name = ANY($1)", &[&names])
            .await?;
        for chunk in rows.chunks(10_000) {
            let n: Vec<&str> = chunk.iter().map(|r| r.name.as_str()).collect();
            let p: Vec<i64> = chunk.iter().map(|r| r.profile_id).collect();
            let v: Vec<f64> = chunk.iter().map(|r| r.value).collect();
            let e: Vec<String> = chunk.iter().map(|r| r.explanation.to_string()).collect();
            let at: Vec<i64> = chunk.iter().map(|r| r.computed_at).collect();
            tx.execute(
                "INSERT INTO profile_scores (name, profile_id, value, explanation, computed_at)
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::float8[], $4::text[], $5::bigint[])
                 ON CONFLICT (name, profile_id) DO UPDATE SET value = excluded.value, explanation = excluded.explanation, computed_at = excluded.computed_at",
                &[&n, &p, &v, &e, &at],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn profile_scores(&self, id: ProfileId) -> Result<Vec<crate::ScoreRow>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql::scores::PROFILE_SCORES).await?;
        Ok(client
            .query(&stmt, &[&id])
            .await?
            .iter()
            .map(|r| ScoreRow {
                name: r.get(0),
                profile_id: r.get(1),
                value: r.get(2),
                explanation: serde_json::from_str(r.get::<_, &str>(3)).unwrap_or_default(),
                computed_at: r.get(4),
            })
            .collect())
    }

    async fn scores_of(&self, ids: Vec<ProfileId>) -> Result<Vec<crate::ScoreRow>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached("SELECT name, profile_id, value FROM profile_scores WHERE profile_id = ANY($1) ORDER BY profile_id, name").await?;
        Ok(client
            .query(&stmt, &[&ids])
            .await?
            .iter()
            .map(|r| ScoreRow::value_only(r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    async fn purchase_stats(
        &self,
        event: &str,
        prop: &str,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<crate::PurchaseStats>> {
        // Spliced into the SQL as a JSON path: only a plain name may pass.
        crate::scores::check_property(prop)?;
        let client = self.client().await?;
        let sql = format!(
            "SELECT pr.canonical_id, MAX(e.occurred_at),
                SUM(CASE WHEN e.occurred_at >= $2 THEN 1 ELSE 0 END)::bigint,
                COALESCE(SUM(CASE WHEN e.occurred_at >= $2 AND jsonb_typeof(e.properties -> '{prop}') = 'number'
                    THEN (e.properties ->> '{prop}')::float8 ELSE 0 END), 0)::float8,
                MIN(CASE WHEN e.occurred_at >= $2 THEN e.occurred_at END)
             FROM events e JOIN profiles pr ON pr.id = e.profile_id
             WHERE e.name = $1 AND e.type = 'track' AND e.occurred_at <= $3 GROUP BY pr.canonical_id"
        );
        Ok(client
            .query(&sql, &[&event, &since, &until])
            .await?
            .iter()
            .map(|r| PurchaseStats {
                profile_id: r.get(0),
                last_at: r.get(1),
                count: r.get(2),
                first_at: r.get(4),
                sum: r.get(3),
            })
            .collect())
    }

    async fn score_values(&self, name: &str) -> Result<Vec<(ProfileId, f64)>> {
        let client = self.client().await?;
        Ok(client
            .query(sql::scores::SCORE_VALUES, &[&name])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }
}
