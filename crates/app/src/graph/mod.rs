//! The relationship graph as a capability: explicit relationships (API, edge-list
//! import), relationships inferred from events by a background worker, network
//! analytics recomputed on demand or on a schedule and stored as profile scores, social
//! value with its explanation, and word-of-mouth attribution. The algorithms are in
//! `rapport-graph` (pure); this module moves data between them and the store.
//!
//! Files: `mod.rs` the service and its in-memory graph cache; `io` relationships in and
//! out; `inference` the worker that reads them from events; `analytics` the recompute;
//! `views` ego networks, pairs and paths; `social_value`; `attribution`.

mod analytics;
mod attribution;
mod inference;
mod io;
mod social_value;
mod views;

pub use analytics::*;
pub use attribution::*;
pub use inference::*;
pub use io::*;
use rapport_domain::identifier::{IdentityKey, IdentityKind};
use rapport_domain::import::content_id;
use rapport_domain::message::{parse_message, BatchContext};
use rapport_domain::model::EventView;
use rapport_domain::relationship::{
    self, GraphRun, GraphScores, RelationshipView, RelationshipWrite, TouchView,
};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use rapport_domain::FieldError;
use rapport_graph::{betweenness, community, kcore, pagerank, paths, reach, social, Graph, NodeId};
use rapport_store::{
    DynStore, RelScope, ScoreOrder, SourcedMessages, StoreError, TouchQuery, GRAPH_VERSION,
};
use serde::Serialize;
use serde_json::{json, Value};
pub use social_value::*;
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
pub use views::*;

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("graph computation failed: {0}")]
    Compute(String),
}

impl From<FieldError> for GraphError {
    fn from(e: FieldError) -> Self {
        GraphError::Invalid {
            field: e.field,
            reason: e.reason,
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> GraphError {
    GraphError::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

pub type Result<T> = std::result::Result<T, GraphError>;

const DAY: Millis = 86_400_000;

/// The graph in memory, as of one `graph_version`.
pub struct Loaded {
    pub version: i64,
    pub graph: Graph,
    pub ids: Vec<ProfileId>,
    pub index: HashMap<ProfileId, NodeId>,
}

impl Loaded {
    pub fn node(&self, id: ProfileId) -> Option<NodeId> {
        self.index.get(&id).copied()
    }
}

/// Shared by the HTTP handlers and the scheduler: the store and a cached in-memory
/// graph, rebuilt when the relationships' version changes.
pub struct GraphService {
    store: DynStore,
    cache: Mutex<Option<Arc<Loaded>>>,
    /// One recomputation at a time.
    recompute_lock: tokio::sync::Mutex<()>,
}

/// Progress of a recomputation: (step, steps, what).
pub type Progress<'a> = &'a (dyn Fn(u64, u64, &str) + Send + Sync);

impl GraphService {
    pub fn new(store: DynStore) -> Self {
        GraphService {
            store,
            cache: Mutex::new(None),
            recompute_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// The graph as of the store's current version, loading it if that changed.
    pub async fn load(&self) -> Result<Arc<Loaded>> {
        let version = self.store.counter(GRAPH_VERSION).await?;
        if let Some(l) = self.cached() {
            if l.version == version {
                return Ok(l);
            }
        }
        let edges = self.store.graph_edges().await?;
        let loaded = tokio::task::spawn_blocking(move || build(version, edges))
            .await
            .map_err(|e| GraphError::Compute(e.to_string()))?;
        let loaded = Arc::new(loaded);
        if let Ok(mut c) = self.cache.lock() {
            *c = Some(loaded.clone());
        }
        Ok(loaded)
    }

    fn cached(&self) -> Option<Arc<Loaded>> {
        self.cache.lock().ok().and_then(|c| c.clone())
    }

    async fn canonical(&self, id: ProfileId) -> Result<ProfileId> {
        Ok(self.store.profile(id).await?.id)
    }
}

/// Looks up one order for `top`.
pub fn score_order(s: &str) -> Result<ScoreOrder> {
    ScoreOrder::parse(s).ok_or_else(|| {
        invalid(
            "by",
            format!("'{s}' is not one of pagerank, betweenness, syndication, evangelist"),
        )
    })
}

impl GraphService {}
