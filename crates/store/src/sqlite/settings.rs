//! SQLite side of brand settings and named counters.

use super::SqliteStore;
use crate::{sql, Result, SettingsStore, SETTINGS_VERSION};
use async_trait::async_trait;
use rapport_domain::time::Millis;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn counter(&self, name: &str) -> Result<i64> {
        let name = name.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(sql::settings::COUNTER_VALUE)?
                .query_row([name], |r| r.get(0))
                .optional()?
                .unwrap_or(0))
        })
        .await
    }

    async fn counters(&self, names: Vec<String>) -> Result<Vec<i64>> {
        self.read(move |c| counters_in(c, &names)).await
    }

    async fn set_counters(&self, values: Vec<(String, i64)>) -> Result<()> {
        self.write(move |tx| set_counters(tx, &values)).await
    }

    async fn setting(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let key = key.to_string();
        self.read(move |c| {
            let v: Option<String> = c
                .prepare_cached(sql::settings::SETTING)?
                .query_row([key], |r| r.get(0))
                .optional()?;
            Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
        })
        .await
    }

    async fn set_setting(&self, key: &str, value: serde_json::Value, at: Millis) -> Result<()> {
        let key = key.to_string();
        self.write(move |tx| {
            tx.execute(
                sql::settings::UPSERT_SETTING,
                params![key, value.to_string(), at],
            )?;
            tx.execute(sql::settings::BUMP_COUNTER, [SETTINGS_VERSION])?;
            Ok(())
        })
        .await
    }
}

pub(super) fn set_counters(tx: &Transaction<'_>, values: &[(String, i64)]) -> Result<()> {
    let mut up = tx.prepare_cached(sql::settings::SET_COUNTER)?;
    for (name, value) in values {
        up.execute(params![name, value])?;
    }
    Ok(())
}

pub(super) fn counters_in(c: &Connection, names: &[String]) -> Result<Vec<i64>> {
    let mut q = c.prepare_cached(sql::settings::COUNTER_VALUE)?;
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        out.push(q.query_row([n], |r| r.get(0)).optional()?.unwrap_or(0));
    }
    Ok(out)
}
