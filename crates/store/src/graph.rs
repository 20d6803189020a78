//! [`GraphStore`] and the shapes it speaks; implemented in `sqlite/graph.rs` and
//! `postgres/graph.rs`.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::model::EventView;
use rapport_domain::relationship::{
    GraphRun, GraphScores, RelationshipView, RelationshipWrite, TouchView,
};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;

/// Which relationships to read; ids are profiles (any member of a cluster).
#[derive(Debug, Clone)]
pub enum RelScope {
    /// Every relationship with either end among these people.
    Touching(Vec<ProfileId>),
    /// Relationships with both ends among these people.
    Among(Vec<ProfileId>),
    /// Every relationship (exports).
    All,
}

/// Touches (inferred observations) to read; ends are profiles (any cluster member).
#[derive(Debug, Clone, Default)]
pub struct TouchQuery {
    pub sources: Option<Vec<ProfileId>>,
    pub targets: Option<Vec<ProfileId>>,
    pub kinds: Vec<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreOrder {
    Pagerank,
    Betweenness,
    Syndication,
    Evangelist,
}

impl ScoreOrder {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pagerank" | "influence" => ScoreOrder::Pagerank,
            "betweenness" | "brokerage" => ScoreOrder::Betweenness,
            "syndication" | "connector" => ScoreOrder::Syndication,
            "evangelist" => ScoreOrder::Evangelist,
            _ => return None,
        })
    }

    pub fn column(self) -> &'static str {
        match self {
            ScoreOrder::Pagerank => "pagerank",
            ScoreOrder::Betweenness => "betweenness",
            ScoreOrder::Syndication => "syndication",
            ScoreOrder::Evangelist => "evangelist",
        }
    }
}

pub const GRAPH_VERSION: &str = "graph_version";

/// Relationships between people, inferred touches, and graph analytics runs and scores.
#[async_trait]
pub trait GraphStore: Send + Sync {
    /// Stores relationship observations in one transaction, bumping the graph version;
    /// `cursor` (name, position) is saved in the same transaction by background workers.
    async fn upsert_relationships(
        &self,
        writes: Vec<RelationshipWrite>,
        cursor: Option<(String, i64)>,
    ) -> Result<()>;
    /// Every relationship as `(source cluster, target cluster, weight)`, kinds not summed.
    async fn graph_edges(&self) -> Result<Vec<(ProfileId, ProfileId, f64)>>;
    async fn relationships(&self, scope: RelScope, limit: usize) -> Result<Vec<RelationshipView>>;
    async fn touches(&self, q: TouchQuery) -> Result<Vec<TouchView>>;
    /// Replaces every person's graph scores with a new computation's, atomically.
    async fn save_graph_run(
        &self,
        started_at: Millis,
        finished_at: Millis,
        graph_version: i64,
        summary: serde_json::Value,
        scores: Vec<GraphScores>,
    ) -> Result<i64>;
    async fn latest_graph_run(&self) -> Result<Option<GraphRun>>;
    async fn graph_scores(&self, ids: Vec<ProfileId>) -> Result<Vec<GraphScores>>;
    async fn top_graph_scores(
        &self,
        by: ScoreOrder,
        community: Option<i64>,
        limit: usize,
    ) -> Result<Vec<GraphScores>>;
    /// Communities of the latest run with their sizes, largest first.
    async fn communities(&self, limit: usize) -> Result<Vec<(i64, i64)>>;
    /// Events with ids in `(after, after + span]` that may imply a relationship (a
    /// `properties` key of [`HINT_KEYS`](rapport_domain::relationship::HINT_KEYS) or
    /// an `@` in the text; `context` left out), and the position to resume from:
    /// `after + span`, or the last event's id when that is lower.
    async fn relationship_candidates(&self, after: i64, span: i64)
        -> Result<(Vec<EventView>, i64)>;
}
