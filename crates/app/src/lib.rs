//! Application services: what the HTTP layer and the CLI call. Each module is one
//! capability; none knows about HTTP.

pub mod chain;
pub mod changes;
pub mod community;
pub mod demo;
pub mod email;
pub mod export;
pub mod graph;
pub mod identity;
pub mod import;
pub mod ingest;
pub mod insight;
pub mod kb;
pub mod keys;
pub mod loyalty;
pub mod metrics;
pub mod micro;
pub mod offers;
pub mod outbound;
pub mod portal;
pub mod privacy;
pub mod profiles;
pub mod realtime;
pub mod referrals;
pub mod rewards;
pub mod rules;
pub mod scores;
pub mod segments;
pub mod siwe;
pub mod split_loyalty;
pub mod text;
pub mod throttle;
pub mod tickets;
pub mod timeline;
pub mod upload;
pub mod users;
pub mod web;
pub mod worker;

/// A capability's settings stored as JSON under `key`; the defaults when none are saved
/// (or what is saved no longer reads as `T`).
pub(crate) async fn stored_settings<T: serde::de::DeserializeOwned + Default>(
    store: &rapport_store::DynStore,
    key: &str,
) -> Result<T, rapport_store::StoreError> {
    Ok(store
        .setting(key)
        .await?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}
