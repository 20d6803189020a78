//! API keys: creation and authentication. A short cache keeps the hot ingest path off
//! the database; a revoked key stops working within [`CACHE_TTL`].

use rapport_domain::apikey::{self, Scope};
use rapport_store::{ApiKeyRecord, DynStore, KeyAccess, Result};
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

pub const CACHE_TTL: Duration = Duration::from_secs(10);

pub struct Keys {
    store: DynStore,
    cache: RwLock<HashMap<String, (Option<ApiKeyRecord>, Instant)>>,
}

/// A created key: the secret (shown once) and its record.
pub struct Created {
    pub secret: String,
    pub record: ApiKeyRecord,
}

pub async fn create(
    store: &DynStore,
    scope: Scope,
    label: &str,
    access: &KeyAccess,
) -> Result<Created> {
    let k = apikey::generate(scope);
    let record = store
        .create_api_key(
            &k.prefix,
            &k.hash,
            scope,
            label,
            access,
            rapport_domain::time::now_millis(),
        )
        .await?;
    Ok(Created {
        secret: k.secret,
        record,
    })
}

impl Keys {
    pub fn new(store: DynStore) -> Self {
        Keys {
            store,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The active key a secret belongs to, if any.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<ApiKeyRecord>> {
        let hash = apikey::hash(secret);
        if let Ok(cache) = self.cache.read() {
            if let Some((rec, at)) = cache.get(&hash) {
                if at.elapsed() < CACHE_TTL {
                    return Ok(rec.clone());
                }
            }
        }
        let rec = self
            .store
            .api_key_by_hash(&hash)
            .await?
            .filter(|r| !r.revoked);
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() > 10_000 {
                cache.clear(); // unknown keys must not grow the cache without bound
            }
            cache.insert(hash, (rec.clone(), Instant::now()));
        }
        Ok(rec)
    }

    /// Revokes a key; this process stops accepting it at once, others within the
    /// cache's 10 s.
    pub async fn revoke(&self, id: i64) -> Result<()> {
        self.store
            .revoke_api_key(id, rapport_domain::time::now_millis())
            .await?;
        self.forget_all();
        Ok(())
    }

    /// Changes a key's trust level and origins; this process applies them at once,
    /// others within the cache's 10 s.
    pub async fn set_access(&self, id: i64, access: &KeyAccess) -> Result<()> {
        self.store.set_api_key_access(id, access).await?;
        self.forget_all();
        Ok(())
    }

    pub fn forget_all(&self) {
        if let Ok(mut c) = self.cache.write() {
            c.clear();
        }
    }
}
