//! The brand's identity-resolution policy (`GET`/`PUT /api/settings/identity`): which
//! identifier values are placeholders (built-in ones plus the brand's patterns), taken
//! out of messages before resolution and reported (`rapport_domain::blocklist`).

use crate::metrics::metrics;
use rapport_domain::blocklist::{BlockedPattern, Blocklist, Dropped};
use rapport_domain::time::now_millis;
use rapport_domain::{FieldError, Message};
use rapport_store::{DynStore, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

const SETTINGS_KEY: &str = "identity";
/// Other processes' changes are seen within this long; this process's at once.
const SETTINGS_TTL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySettings {
    /// The brand's own placeholder values, on top of the built-in ones
    /// (docs/identity.md, "Blocked values").
    pub blocked: Vec<BlockedPattern>,
    /// The region (ISO 3166-1 alpha-2, e.g. `GB`) phone numbers written without `+`
    /// belong to; absent: such numbers are dropped as invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_region: Option<String>,
}

impl IdentitySettings {
    fn blocklist(&self) -> Result<Blocklist, FieldError> {
        let region = self
            .default_region
            .as_deref()
            .map(rapport_domain::blocklist::region)
            .transpose()?;
        Ok(Blocklist::new(&self.blocked)?.with_region(region))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Invalid(FieldError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The settings, their compiled list, and when they were read.
type Cached = (Arc<IdentitySettings>, Arc<Blocklist>, Instant);

/// One per process: the settings and their compiled blocklist, kept [`SETTINGS_TTL`].
pub struct IdentityPolicy {
    store: DynStore,
    /// Both behind `Arc`s: each request clones pointers, not patterns.
    cached: RwLock<Option<Cached>>,
}

impl IdentityPolicy {
    pub fn new(store: DynStore) -> IdentityPolicy {
        IdentityPolicy {
            store,
            cached: RwLock::new(None),
        }
    }

    /// The cached settings and list while fresh.
    fn fresh(&self) -> Option<(Arc<IdentitySettings>, Arc<Blocklist>)> {
        let c = self.cached.read().ok()?;
        c.as_ref()
            .filter(|(_, _, at)| at.elapsed() < SETTINGS_TTL)
            .map(|(s, b, _)| (s.clone(), b.clone()))
    }

    async fn current(&self) -> Result<(Arc<IdentitySettings>, Arc<Blocklist>), StoreError> {
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let s: IdentitySettings = match self.store.setting(SETTINGS_KEY).await? {
            Some(v) => serde_json::from_value(v).unwrap_or_default(),
            None => IdentitySettings::default(),
        };
        // Stored settings were checked when saved; a pattern this build cannot compile
        // leaves the built-in rules in force rather than refusing every message.
        let b = Arc::new(s.blocklist().unwrap_or_default());
        let s = Arc::new(s);
        self.remember(&s, &b);
        Ok((s, b))
    }

    fn remember(&self, s: &Arc<IdentitySettings>, b: &Arc<Blocklist>) {
        if let Ok(mut c) = self.cached.write() {
            *c = Some((s.clone(), b.clone(), Instant::now()));
        }
    }

    pub async fn settings(&self) -> Result<IdentitySettings, StoreError> {
        Ok(IdentitySettings::clone(&self.current().await?.0))
    }

    /// Validates and stores new settings; this process uses them at once.
    pub async fn set_settings(
        &self,
        s: IdentitySettings,
    ) -> Result<IdentitySettings, IdentityError> {
        let b = Arc::new(s.blocklist().map_err(IdentityError::Invalid)?);
        let value = serde_json::to_value(&s).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.store
            .set_setting(SETTINGS_KEY, value, now_millis())
            .await?;
        self.remember(&Arc::new(s.clone()), &b);
        Ok(s)
    }

    /// Screens messages before ingestion; `path(i)` names message `i`'s fields
    /// (`batch[i].`, `line 7: `).
    pub async fn screen(
        &self,
        messages: &mut [Message],
        path: impl Fn(usize) -> String,
    ) -> Result<Vec<Dropped>, StoreError> {
        let (_, b) = self.current().await?;
        let mut out = Vec::new();
        for (i, m) in messages.iter_mut().enumerate() {
            out.extend(b.screen(m, &path(i)));
        }
        if !out.is_empty() {
            metrics().identifiers_dropped.inc_by(out.len() as u64);
        }
        Ok(out)
    }
}
