//! [`SettingsStore`] and the shapes it speaks; implemented in `sqlite/settings.rs` and
//! `postgres/settings.rs`.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::time::Millis;

pub const SETTINGS_VERSION: &str = "settings_version";

/// Brand settings (JSON by key) and named counters (workers' positions, versions).
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// A named counter (`graph_version`, worker cursors); 0 when never set.
    async fn counter(&self, name: &str) -> Result<i64>;
    /// Several named counters at once, in the order asked (0 when unset).
    async fn counters(&self, names: Vec<String>) -> Result<Vec<i64>>;
    /// Sets named counters (workers' positions) in one transaction.
    async fn set_counters(&self, values: Vec<(String, i64)>) -> Result<()>;
    /// Sets a named counter (a worker's position).
    async fn set_counter(&self, name: &str, value: i64) -> Result<()> {
        self.set_counters(vec![(name.to_string(), value)]).await
    }
    /// A brand setting (JSON), `None` when never set.
    async fn setting(&self, key: &str) -> Result<Option<serde_json::Value>>;
    /// Sets a brand setting and bumps the `settings_version` counter, so workers
    /// holding derived state (the analyzer) rebuild it.
    async fn set_setting(&self, key: &str, value: serde_json::Value, at: Millis) -> Result<()>;
}
