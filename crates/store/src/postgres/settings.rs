use super::segments::{in_order, set_counters};
use super::PgStore;
use crate::{Result, SettingsStore, SETTINGS_VERSION};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use rapport_domain::time::Millis;

#[async_trait]
impl SettingsStore for PgStore {
    async fn counter(&self, name: &str) -> Result<i64> {
        let c = self.client().await?;
        Ok(
            c.query_opt("SELECT value FROM counters WHERE name = $1", &[&name])
                .await?
                .map_or(0, |r| r.get(0)),
        )
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
        let key = key.to_string();
        let c = self.client().await?;
        Ok(
            c.query_opt("SELECT value FROM settings WHERE key = $1", &[&key])
                .await?
                .map(|r| r.get(0)),
        )
    }

    async fn set_setting(&self, key: &str, value: serde_json::Value, at: Millis) -> Result<()> {
        let key = key.to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            &[&key, &value, &at],
        )
        .await?;
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ($1, 1) ON CONFLICT (name) DO UPDATE SET value = counters.value + 1",
            &[&SETTINGS_VERSION],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
