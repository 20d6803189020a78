//! PostgreSQL side of brand settings and named counters.

use super::segments::in_order;
use super::PgStore;
use crate::{sql, Result, SettingsStore, SETTINGS_VERSION};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use rapport_domain::time::Millis;

#[async_trait]
impl SettingsStore for PgStore {
    async fn counter(&self, name: &str) -> Result<i64> {
        let c = self.client().await?;
        Ok(c.query_opt(sql::settings::COUNTER_VALUE, &[&name])
            .await?
            .map_or(0, |r| r.get(0)))
    }

    async fn counters(&self, names: Vec<String>) -> Result<Vec<i64>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT name, value FROM counters WHERE name = ANY($1)")
            .await?;
        Ok(in_order(&names, &client.query(&stmt, &[&names]).await?))
    }

    async fn set_counters(&self, values: Vec<(String, i64)>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        set_counters(&tx, &values).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn setting(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let c = self.client().await?;
        Ok(c.query_opt(sql::settings::SETTING, &[&key])
            .await?
            .map(|r| r.get(0)))
    }

    async fn set_setting(&self, key: &str, value: serde_json::Value, at: Millis) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(sql::settings::UPSERT_SETTING, &[&key, &value, &at])
            .await?;
        tx.execute(sql::settings::BUMP_COUNTER, &[&SETTINGS_VERSION])
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

pub(super) async fn set_counters(tx: &impl GenericClient, values: &[(String, i64)]) -> Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = values.iter().map(|v| v.0.as_str()).collect();
    let nums: Vec<i64> = values.iter().map(|v| v.1).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO counters (name, value) SELECT * FROM UNNEST($1::text[], $2::bigint[])
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .await?;
    tx.execute(&stmt, &[&names, &nums]).await?;
    Ok(())
}
