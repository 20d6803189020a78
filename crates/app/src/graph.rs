//! The relationship graph as a capability: explicit relationships (API, edge-list
//! import), relationships inferred from events by a background worker, network
//! analytics recomputed on demand or on a schedule and stored as profile scores, social
//! value with its explanation, and word-of-mouth attribution. The algorithms are in
//! `rapport-graph` (pure); this module moves data between them and the store.

use crate::import::content_id;
use rapport_domain::identifier::{IdentityKey, IdentityKind};
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
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Event names that count as a conversion for attribution and referral value, unless
/// the caller names others.
pub const CONVERSIONS: [&str; 6] = [
    "Order Completed",
    "Signed Up",
    "Subscription Started",
    "Checkout Completed",
    "Trial Started",
    "Converted",
];

/// Touch kinds that carry word of mouth.
pub const WORD_OF_MOUTH: [&str; 5] = [
    "referred",
    "mentioned",
    "replied",
    "answered",
    "helpful_answer",
];

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

/// One relationship as a client states it, ends named by identifier.
#[derive(Debug, Clone)]
pub struct EdgeInput {
    pub source: String,
    pub target: String,
    pub kind: String,
    pub weight: Option<f64>,
    pub at: Millis,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AddReport {
    pub relationships: usize,
    pub profiles_created: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EgoNode {
    pub profile_id: ProfileId,
    pub depth: u32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EgoNetwork {
    pub center: ProfileId,
    pub depth: u32,
    pub nodes: Vec<EgoNode>,
    pub edges: Vec<RelationshipView>,
    /// True when `limit` cut the network short.
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PathView {
    pub profiles: Vec<ProfileId>,
    pub edges: Vec<RelationshipView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Close {
    pub profile_id: ProfileId,
    /// Personalised PageRank from the person asked about.
    pub score: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InfluenceSource {
    pub profile_id: ProfileId,
    /// Share of this person's PageRank that flows in from `profile_id`.
    pub share: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SocialView {
    pub profile_id: ProfileId,
    pub scores: Option<GraphScores>,
    pub evangelist: f64,
    pub syndication: f64,
    /// Each term of the evangelist formula: name, value, contribution.
    #[schema(value_type = Vec<Object>)]
    pub evangelist_factors: Value,
    /// Audience, activity and brokerage: raw value and factor.
    #[schema(value_type = Vec<Object>)]
    pub syndication_factors: Value,
    /// Events per channel over the last 90 days, most used first.
    #[schema(value_type = Object)]
    pub channels: Value,
    /// Who the PageRank comes from: the in-neighbours contributing most.
    pub influence_sources: Vec<InfluenceSource>,
    /// Plain-language reasons.
    pub why: Vec<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttributedPerson {
    pub profile_id: ProfileId,
    /// Hops from the converter (1 = touched them directly).
    pub depth: u32,
    /// Share of the conversion: split equally among direct touchers, half of each
    /// person's share passed on to whoever touched them first.
    pub credit: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attribution {
    #[schema(value_type = Object)]
    pub conversion: EventView,
    pub converter: ProfileId,
    pub window_days: i64,
    pub people: Vec<AttributedPerson>,
    /// The touches on the chains, newest first.
    pub touches: Vec<TouchView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DrivenConversion {
    pub touch: TouchView,
    #[schema(value_type = Object)]
    pub conversion: EventView,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Influence {
    pub profile_id: ProfileId,
    pub window_days: i64,
    pub people_touched: usize,
    pub conversions: Vec<DrivenConversion>,
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

    /// Stores explicit relationships; identifiers nobody owns yet become new profiles.
    pub async fn add(&self, inputs: Vec<EdgeInput>, source: &str) -> Result<AddReport> {
        let mut keys = Vec::with_capacity(inputs.len() * 2);
        let mut kinds = Vec::with_capacity(inputs.len());
        for (i, e) in inputs.iter().enumerate() {
            let key = |field: &str, v: &str| {
                IdentityKey::parse_prefixed(v)
                    .map_err(|err| invalid(&format!("relationships[{i}].{field}"), err.to_string()))
            };
            keys.push(key("source", &e.source)?);
            keys.push(key("target", &e.target)?);
            kinds.push(
                relationship::validate_kind(&e.kind)
                    .map_err(|err| invalid(&format!("relationships[{i}].kind"), err.reason))?,
            );
            if let Some(w) = e.weight {
                if !w.is_finite() || w <= 0.0 {
                    return Err(invalid(
                        &format!("relationships[{i}].weight"),
                        "must be a positive finite number",
                    ));
                }
            }
        }
        let (ids, created) = self.resolve_or_create(keys, source).await?;
        let writes: Vec<RelationshipWrite> = inputs
            .iter()
            .enumerate()
            .filter(|(i, _)| ids[2 * i] != ids[2 * i + 1])
            .map(|(i, e)| RelationshipWrite {
                source: ids[2 * i],
                target: ids[2 * i + 1],
                kind: kinds[i].clone(),
                weight: e.weight.unwrap_or(1.0),
                explicit: true,
                at: e.at,
                sentiment: None,
                event_id: None,
            })
            .collect();
        let n = writes.len();
        for chunk in writes.chunks(100_000) {
            self.store
                .upsert_relationships(chunk.to_vec(), None)
                .await?;
        }
        Ok(AddReport {
            relationships: n,
            profiles_created: created,
        })
    }

    /// The cluster of each identifier, creating a profile (by an `identify` of that
    /// identifier alone, so it is idempotent) for each unknown one.
    async fn resolve_or_create(
        &self,
        keys: Vec<IdentityKey>,
        source: &str,
    ) -> Result<(Vec<ProfileId>, usize)> {
        let found = self.store.lookup_many(keys.clone()).await?;
        let mut missing: Vec<IdentityKey> = Vec::new();
        let mut seen = HashSet::new();
        for (k, f) in keys.iter().zip(&found) {
            if f.is_none() && seen.insert(k.clone()) {
                missing.push(k.clone());
            }
        }
        let created = missing.len();
        if !missing.is_empty() {
            let now = rapport_domain::time::now_millis();
            for chunk in missing.chunks(5_000) {
                let messages = chunk
                    .iter()
                    .map(|k| identify_for(k, now))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                self.store
                    .ingest(vec![SourcedMessages {
                        source: source.to_string(),
                        messages,
                    }])
                    .await?;
            }
        }
        let found = if created > 0 {
            self.store.lookup_many(keys.clone()).await?
        } else {
            found
        };
        let ids = found
            .into_iter()
            .zip(&keys)
            .map(|(f, k)| f.ok_or_else(|| GraphError::NotFound(format!("profile for {k}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok((ids, created))
    }

    /// Computes every metric over the whole graph and stores it as profile scores.
    pub async fn recompute(&self, progress: Progress<'_>) -> Result<GraphRun> {
        let _guard = self.recompute_lock.lock().await;
        let started = rapport_domain::time::now_millis();
        let steps = 8;
        progress(1, steps, "loading relationships");
        let t = Instant::now();
        let loaded = self.load().await?;
        let load_s = t.elapsed().as_secs_f64();
        progress(2, steps, "reading activity and touches");
        let active: HashMap<ProfileId, i64> = self
            .store
            .active_days_all(started - 90 * DAY)
            .await?
            .into_iter()
            .collect();
        let contributions = self.contributions(None).await?;
        let l2 = loaded.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, &'static str)>();
        let compute = tokio::task::spawn_blocking(move || {
            analyse(&l2, &active, &contributions, &|s, what| {
                let _ = tx.send((s, what));
            })
        });
        let mut compute = std::pin::pin!(compute);
        let (scores, summary) = loop {
            tokio::select! {
                Some((s, what)) = rx.recv() => progress(s, steps, what),
                r = &mut compute => break r.map_err(|e| GraphError::Compute(e.to_string()))?,
            }
        };
        let mut summary = summary;
        summary["timings_s"]["load"] = json!(load_s);
        progress(8, steps, "saving scores");
        let finished = rapport_domain::time::now_millis();
        let id = self
            .store
            .save_graph_run(started, finished, loaded.version, summary, scores)
            .await?;
        crate::changes::announce(&self.store, crate::changes::Change::Scores).await?;
        tracing::info!(run = id, nodes = loaded.ids.len(), "graph recomputed");
        self.store
            .latest_graph_run()
            .await?
            .ok_or_else(|| GraphError::NotFound("graph run".into()))
    }

    /// Recomputes when relationships changed since the latest run (or none exists).
    pub async fn recompute_if_stale(&self) -> Result<Option<GraphRun>> {
        let version = self.store.counter(GRAPH_VERSION).await?;
        let latest = self.store.latest_graph_run().await?;
        if version == 0 || latest.as_ref().is_some_and(|r| r.graph_version == version) {
            return Ok(None);
        }
        Ok(Some(self.recompute(&|_, _, _| {}).await?))
    }

    /// Per person (or for one person) counts of what their word of mouth achieved.
    async fn contributions(
        &self,
        only: Option<ProfileId>,
    ) -> Result<HashMap<ProfileId, social::SocialInputs>> {
        let touches = self
            .store
            .touches(TouchQuery {
                sources: only.map(|id| vec![id]),
                kinds: WORD_OF_MOUTH.iter().map(|s| s.to_string()).collect(),
                limit: 10_000_000,
                ..Default::default()
            })
            .await?;
        let referred: Vec<&TouchView> = touches.iter().filter(|t| t.kind == "referred").collect();
        let mut first_conversion: HashMap<ProfileId, Millis> = HashMap::new();
        if !referred.is_empty() {
            let people: Vec<ProfileId> = referred
                .iter()
                .map(|t| t.target)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let since = referred
                .iter()
                .map(|t| t.at.timestamp_millis())
                .min()
                .unwrap_or(0);
            let names = CONVERSIONS.iter().map(|s| s.to_string()).collect();
            for ev in self
                .store
                .named_events(people.clone(), names, since, i64::MAX, 10_000_000)
                .await?
            {
                // Events come back on raw profiles; map through the referred people.
                let owner = self.canonical(ev.profile_id).await?;
                let at = ev.occurred_at.timestamp_millis();
                let e = first_conversion.entry(owner).or_insert(at);
                *e = (*e).min(at);
            }
        }
        let mut out: HashMap<ProfileId, social::SocialInputs> = HashMap::new();
        let mut counted: HashSet<(ProfileId, ProfileId)> = HashSet::new();
        for t in &touches {
            let e = out.entry(t.source).or_default();
            match t.kind.as_str() {
                "referred" => {
                    e.referrals += 1;
                    let converted = first_conversion
                        .get(&t.target)
                        .is_some_and(|&c| c >= t.at.timestamp_millis());
                    if converted && counted.insert((t.source, t.target)) {
                        e.referrals_converted += 1;
                    }
                }
                "answered" => e.answers += 1,
                "helpful_answer" => e.answers_helpful += 1,
                _ => match t.sentiment {
                    Some(s) if s >= 0.05 => e.mentions_positive += 1,
                    Some(s) if s <= -0.05 => e.mentions_negative += 1,
                    _ => {}
                },
            }
        }
        Ok(out)
    }

    async fn canonical(&self, id: ProfileId) -> Result<ProfileId> {
        Ok(self.store.profile(id).await?.id)
    }

    /// The people within `depth` hops (1 or 2) and the relationships among them.
    pub async fn ego(&self, id: ProfileId, depth: u32, limit: usize) -> Result<EgoNetwork> {
        if !(1..=2).contains(&depth) {
            return Err(invalid("depth", "must be 1 or 2"));
        }
        let center = self.canonical(id).await?;
        let loaded = self.load().await?;
        let nodes: Vec<EgoNode> = match loaded.node(center) {
            None => vec![EgoNode {
                profile_id: center,
                depth: 0,
            }],
            Some(v) => paths::ego(&loaded.graph, v, depth, limit + 1)
                .into_iter()
                .map(|(n, d)| EgoNode {
                    profile_id: loaded.ids[n as usize],
                    depth: d,
                })
                .collect(),
        };
        let truncated = nodes.len() > limit;
        let nodes: Vec<EgoNode> = nodes.into_iter().take(limit).collect();
        let ids: Vec<ProfileId> = nodes.iter().map(|n| n.profile_id).collect();
        let edges = self
            .store
            .relationships(RelScope::Among(ids), 20_000)
            .await?;
        Ok(EgoNetwork {
            center,
            depth,
            nodes,
            edges,
            truncated,
        })
    }

    /// Every relationship between two people, both directions (the pair-level view).
    pub async fn pair(
        &self,
        a: ProfileId,
        b: ProfileId,
    ) -> Result<(Vec<RelationshipView>, Vec<RelationshipView>)> {
        let (ca, cb) = (self.canonical(a).await?, self.canonical(b).await?);
        let all = self
            .store
            .relationships(RelScope::Among(vec![ca, cb]), 1000)
            .await?;
        let (ab, ba) = all.into_iter().partition(|r| r.source == ca);
        Ok((ab, ba))
    }

    /// "Who is close to this person": personalised PageRank on the undirected view.
    pub async fn close(&self, id: ProfileId, limit: usize) -> Result<Vec<Close>> {
        let center = self.canonical(id).await?;
        let loaded = self.load().await?;
        let Some(v) = loaded.node(center) else {
            return Ok(vec![]);
        };
        let l2 = loaded.clone();
        let ranked = tokio::task::spawn_blocking(move || {
            paths::personalised_pagerank(&l2.graph, v, 0.15, 1e-6, limit)
        })
        .await
        .map_err(|e| GraphError::Compute(e.to_string()))?;
        Ok(ranked
            .into_iter()
            .map(|(n, score)| Close {
                profile_id: loaded.ids[n as usize],
                score,
            })
            .collect())
    }

    /// A shortest chain of relationships between two people (either direction).
    pub async fn path(&self, a: ProfileId, b: ProfileId) -> Result<Option<PathView>> {
        let (ca, cb) = (self.canonical(a).await?, self.canonical(b).await?);
        let loaded = self.load().await?;
        let (Some(na), Some(nb)) = (loaded.node(ca), loaded.node(cb)) else {
            return Ok((ca == cb).then(|| PathView {
                profiles: vec![ca],
                edges: vec![],
            }));
        };
        let Some(p) = paths::shortest_path(&loaded.graph, na, nb, 12) else {
            return Ok(None);
        };
        let profiles: Vec<ProfileId> = p.iter().map(|&n| loaded.ids[n as usize]).collect();
        let among = self
            .store
            .relationships(RelScope::Among(profiles.clone()), 10_000)
            .await?;
        let steps: HashSet<(ProfileId, ProfileId)> = profiles
            .windows(2)
            .flat_map(|w| [(w[0], w[1]), (w[1], w[0])])
            .collect();
        let edges = among
            .into_iter()
            .filter(|r| steps.contains(&(r.source, r.target)))
            .collect();
        Ok(Some(PathView { profiles, edges }))
    }

    /// Social value with its explanation.
    pub async fn social(&self, id: ProfileId) -> Result<SocialView> {
        let center = self.canonical(id).await?;
        let now = rapport_domain::time::now_millis();
        let scores = self
            .store
            .graph_scores(vec![center])
            .await?
            .into_iter()
            .next();
        let activity = self.store.activity(center, now - 90 * DAY).await?;
        let mut inputs = self
            .contributions(Some(center))
            .await?
            .remove(&center)
            .unwrap_or_default();
        inputs.active_days_90 = activity.active_days as u32;
        if let Some(s) = &scores {
            inputs.reach2 = s.reach2 as u64;
            inputs.betweenness_percentile = s.betweenness_pct;
        }
        let value = social::social_value(&inputs);
        let mut influence_sources = Vec::new();
        let loaded = self.load().await?;
        if let Some(v) = loaded.node(center) {
            let g = &loaded.graph;
            let ins: Vec<ProfileId> = g
                .inn
                .neighbours(v)
                .iter()
                .map(|&u| loaded.ids[u as usize])
                .collect();
            let pr: HashMap<ProfileId, f64> = self
                .store
                .graph_scores(ins.clone())
                .await?
                .into_iter()
                .map(|s| (s.profile_id, s.pagerank))
                .collect();
            let mut flows: Vec<(ProfileId, f64)> = g
                .inn
                .neighbours(v)
                .iter()
                .map(|&u| {
                    let out: f64 = g
                        .out
                        .weights_of(u)
                        .map_or(g.out.degree(u) as f64, |w| w.iter().sum());
                    let id = loaded.ids[u as usize];
                    (
                        id,
                        0.85 * pr.get(&id).copied().unwrap_or(0.0) * g.weight(u, v) / out,
                    )
                })
                .collect();
            let total: f64 = flows.iter().map(|f| f.1).sum();
            flows.sort_by(|a, b| b.1.total_cmp(&a.1));
            influence_sources = flows
                .into_iter()
                .take(10)
                .map(|(profile_id, f)| InfluenceSource {
                    profile_id,
                    share: if total > 0.0 { f / total } else { 0.0 },
                })
                .collect();
        }
        let why = explain(scores.as_ref(), &inputs, &value, &activity.channels);
        Ok(SocialView {
            profile_id: center,
            scores,
            evangelist: value.evangelist,
            syndication: value.syndication,
            evangelist_factors: serde_json::to_value(&value.evangelist_factors).unwrap_or_default(),
            syndication_factors: serde_json::to_value(&value.syndication_factors)
                .unwrap_or_default(),
            channels: Value::Object(
                activity
                    .channels
                    .iter()
                    .map(|(c, n)| (c.clone(), json!(n)))
                    .collect(),
            ),
            influence_sources,
            why,
        })
    }

    /// The chains of people and touches that led to a conversion event.
    pub async fn attribution(
        &self,
        event_id: i64,
        window_days: i64,
        max_depth: u32,
    ) -> Result<Attribution> {
        if !(1..=3650).contains(&window_days) {
            return Err(invalid("window_days", "must be between 1 and 3650"));
        }
        if !(1..=5).contains(&max_depth) {
            return Err(invalid("depth", "must be between 1 and 5"));
        }
        let conversion = self.store.event(event_id).await?;
        let converter = self.canonical(conversion.profile_id).await?;
        let t_conv = conversion.occurred_at.timestamp_millis();
        let since = t_conv - window_days * DAY;
        // `before[p]`: a touch into p counts only if it happened before p acted on.
        let mut before: HashMap<ProfileId, Millis> = HashMap::from([(converter, t_conv)]);
        let mut credit: HashMap<ProfileId, f64> = HashMap::from([(converter, 1.0)]);
        let mut depth_of: HashMap<ProfileId, u32> = HashMap::new();
        let mut frontier = vec![converter];
        let mut chain: Vec<TouchView> = Vec::new();
        for depth in 1..=max_depth {
            if frontier.is_empty() {
                break;
            }
            let touches = self
                .store
                .touches(TouchQuery {
                    targets: Some(frontier.clone()),
                    kinds: WORD_OF_MOUTH.iter().map(|s| s.to_string()).collect(),
                    since: Some(since),
                    until: Some(
                        frontier
                            .iter()
                            .filter_map(|p| before.get(p))
                            .copied()
                            .max()
                            .unwrap_or(t_conv),
                    ),
                    limit: 10_000,
                    ..Default::default()
                })
                .await?;
            let mut next = Vec::new();
            // Each frontier person's credit: half kept, half split among their touchers
            // (all of it at the converter, who did not persuade themselves).
            let mut by_target: HashMap<ProfileId, Vec<&TouchView>> = HashMap::new();
            for t in &touches {
                let ok = before
                    .get(&t.target)
                    .is_some_and(|&b| t.at.timestamp_millis() <= b)
                    && t.source != converter
                    && !depth_of.contains_key(&t.source);
                if ok {
                    by_target.entry(t.target).or_default().push(t);
                }
            }
            for (target, ts) in by_target {
                let sources: Vec<ProfileId> = ts
                    .iter()
                    .map(|t| t.source)
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                let share = credit.get(&target).copied().unwrap_or(0.0);
                let passed = if target == converter {
                    share
                } else {
                    share / 2.0
                };
                if target != converter {
                    credit.insert(target, share - passed);
                } else {
                    credit.insert(target, 0.0);
                }
                for s in &sources {
                    *credit.entry(*s).or_default() += passed / sources.len() as f64;
                    // Their own touchers must come before their first touch here.
                    let first = ts
                        .iter()
                        .filter(|t| t.source == *s)
                        .map(|t| t.at.timestamp_millis())
                        .min()
                        .unwrap_or(t_conv);
                    let e = before.entry(*s).or_insert(first);
                    *e = (*e).min(first);
                    if !depth_of.contains_key(s) {
                        depth_of.insert(*s, depth);
                        next.push(*s);
                    }
                }
                chain.extend(ts.into_iter().cloned());
            }
            frontier = next;
        }
        let mut people: Vec<AttributedPerson> = depth_of
            .into_iter()
            .map(|(p, d)| AttributedPerson {
                profile_id: p,
                depth: d,
                credit: credit.get(&p).copied().unwrap_or(0.0),
            })
            .collect();
        people.sort_by(|a, b| {
            b.credit
                .total_cmp(&a.credit)
                .then(a.profile_id.cmp(&b.profile_id))
        });
        chain.sort_by_key(|t| std::cmp::Reverse(t.at));
        Ok(Attribution {
            conversion,
            converter,
            window_days,
            people,
            touches: chain,
        })
    }

    /// Conversions by people this person touched (referred, mentioned, replied to,
    /// answered) within `window_days` after the touch.
    pub async fn influence(
        &self,
        id: ProfileId,
        window_days: i64,
        names: Vec<String>,
    ) -> Result<Influence> {
        if !(1..=3650).contains(&window_days) {
            return Err(invalid("window_days", "must be between 1 and 3650"));
        }
        let center = self.canonical(id).await?;
        let touches = self
            .store
            .touches(TouchQuery {
                sources: Some(vec![center]),
                kinds: WORD_OF_MOUTH.iter().map(|s| s.to_string()).collect(),
                limit: 100_000,
                ..Default::default()
            })
            .await?;
        let people: Vec<ProfileId> = touches
            .iter()
            .map(|t| t.target)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut conversions = Vec::new();
        if !people.is_empty() {
            let since = touches
                .iter()
                .map(|t| t.at.timestamp_millis())
                .min()
                .unwrap_or(0);
            let events = self
                .store
                .named_events(people.clone(), names, since, i64::MAX, 100_000)
                .await?;
            let mut seen = HashSet::new();
            for ev in events {
                let owner = self.canonical(ev.profile_id).await?;
                let at = ev.occurred_at.timestamp_millis();
                // Credit the latest touch before the conversion, within the window.
                let touch = touches
                    .iter()
                    .filter(|t| {
                        t.target == owner
                            && t.at.timestamp_millis() <= at
                            && at - t.at.timestamp_millis() <= window_days * DAY
                    })
                    .max_by_key(|t| t.at);
                if let Some(t) = touch {
                    if seen.insert(ev.id) {
                        conversions.push(DrivenConversion {
                            touch: t.clone(),
                            conversion: ev,
                        });
                    }
                }
            }
        }
        Ok(Influence {
            profile_id: center,
            window_days,
            people_touched: people.len(),
            conversions,
        })
    }
}

fn explain(
    scores: Option<&GraphScores>,
    inputs: &social::SocialInputs,
    value: &social::SocialValue,
    channels: &[(String, i64)],
) -> Vec<String> {
    let mut why = Vec::new();
    match scores {
        None => why.push("No network scores yet: this person has no relationships, or the graph has not been computed since they appeared.".into()),
        Some(s) => {
            why.push(format!(
                "Influence (PageRank) {:.3e}: higher than {:.0}% of people; {} direct connections, {} within two hops.",
                s.pagerank, s.pagerank_pct * 100.0, s.reach1, s.reach2
            ));
            if s.betweenness_pct >= 0.9 {
                why.push(format!(
                    "A broker: lies on more shortest paths between others than {:.0}% of people (betweenness {:.3e}).",
                    s.betweenness_pct * 100.0, s.betweenness
                ));
            }
            why.push(format!("Member of community {} (k-core {}).", s.community, s.core));
        }
    }
    if inputs.referrals > 0 {
        why.push(format!(
            "Referred {} people, {} of whom converted.",
            inputs.referrals, inputs.referrals_converted
        ));
    }
    if inputs.answers > 0 {
        why.push(format!(
            "Answered {} questions, {} marked helpful.",
            inputs.answers, inputs.answers_helpful
        ));
    }
    if inputs.mentions_positive + inputs.mentions_negative > 0 {
        why.push(format!(
            "Mentioned others {} times positively and {} times negatively.",
            inputs.mentions_positive, inputs.mentions_negative
        ));
    }
    why.push(format!(
        "Evangelist value {:.1}; connector (syndication) value {:.2} from audience, activity on {} of the last 90 days and brokerage.",
        value.evangelist, value.syndication, inputs.active_days_90
    ));
    if let Some((c, n)) = channels.first() {
        why.push(format!(
            "Engages mostly through {c} ({n} events in 90 days)."
        ));
    }
    why
}

fn build(version: i64, edges: Vec<(ProfileId, ProfileId, f64)>) -> Loaded {
    let mut index: HashMap<ProfileId, NodeId> = HashMap::new();
    let mut ids: Vec<ProfileId> = Vec::new();
    let mut node = |id: ProfileId| -> NodeId {
        *index.entry(id).or_insert_with(|| {
            ids.push(id);
            (ids.len() - 1) as NodeId
        })
    };
    let triples: Vec<(NodeId, NodeId, f64)> = edges
        .into_iter()
        .map(|(s, t, w)| (node(s), node(t), w))
        .collect();
    let graph = Graph::from_edges(ids.len(), triples);
    Loaded {
        version,
        graph,
        ids,
        index,
    }
}

/// Above this many node × edge visits, betweenness is sampled.
const EXACT_BETWEENNESS_WORK: f64 = 2e10;
/// Sources sampled on large graphs.
const BETWEENNESS_SAMPLES: usize = 256;

/// Every metric, as score rows and a summary of parameters and global results.
fn analyse(
    l: &Loaded,
    active: &HashMap<ProfileId, i64>,
    contributions: &HashMap<ProfileId, social::SocialInputs>,
    step: &(dyn Fn(u64, &'static str) + Sync),
) -> (Vec<GraphScores>, Value) {
    let g = &l.graph;
    let n = g.node_count();
    let mut timings = serde_json::Map::new();
    let mut time = |name: &str, t: Instant| {
        timings.insert(name.into(), json!(t.elapsed().as_secs_f64()));
    };
    step(3, "PageRank");
    let t = Instant::now();
    let params = pagerank::PageRankParams::default();
    let pr = pagerank::pagerank(g, &params);
    time("pagerank", t);
    step(4, "betweenness");
    let t = Instant::now();
    let work = n as f64 * g.edge_count() as f64;
    let k = (work > EXACT_BETWEENNESS_WORK).then_some(BETWEENNESS_SAMPLES);
    let bc = betweenness::betweenness(g, k, 7);
    time("betweenness", t);
    step(5, "communities");
    let t = Instant::now();
    let comm = community::louvain(g, 42);
    time("communities", t);
    step(6, "k-core and reach");
    let t = Instant::now();
    let cores = kcore::core_numbers(g);
    let r = reach::reach(g);
    time("kcore_reach", t);
    step(7, "social value");
    let pr_pct = social::percentiles(&pr.scores);
    let bc_pct = social::percentiles(&bc.scores);
    let scores = (0..n)
        .map(|i| {
            let id = l.ids[i];
            let mut inputs = contributions.get(&id).cloned().unwrap_or_default();
            inputs.reach2 = r.reach2[i] as u64;
            inputs.active_days_90 = active.get(&id).copied().unwrap_or(0) as u32;
            inputs.betweenness_percentile = bc_pct[i];
            let v = social::social_value(&inputs);
            GraphScores {
                profile_id: id,
                pagerank: pr.scores[i],
                betweenness: bc.scores[i],
                community: comm.membership[i] as i64,
                core: cores[i] as i64,
                reach1: r.reach1[i] as i64,
                reach2: r.reach2[i] as i64,
                evangelist: v.evangelist,
                syndication: v.syndication,
                pagerank_pct: pr_pct[i],
                betweenness_pct: bc_pct[i],
            }
        })
        .collect();
    let summary = json!({
        "nodes": n,
        "edges": g.edge_count(),
        "weighted": g.is_weighted(),
        "pagerank": {"damping": params.damping, "tolerance_l1": params.tolerance, "iterations": pr.iterations, "delta": pr.delta, "converged": pr.converged},
        "betweenness": bc,
        "communities": comm,
        "reach": r,
        "timings_s": Value::Object(timings),
    });
    (scores, summary)
}

/// An `identify` message carrying one identifier, with a content id so repeating it
/// changes nothing.
fn identify_for(
    k: &IdentityKey,
    at: Millis,
) -> std::result::Result<rapport_domain::Message, FieldError> {
    identify_with(k, at, json!({}), "rel")
}

/// An `identify` of one identifier with the given traits; `tag` keeps content ids of
/// different purposes apart.
fn identify_with(
    k: &IdentityKey,
    at: Millis,
    traits: Value,
    tag: &str,
) -> std::result::Result<rapport_domain::Message, FieldError> {
    let mut msg = json!({"type": "identify", "traits": traits});
    match k.kind {
        IdentityKind::UserId => msg["userId"] = json!(k.value),
        IdentityKind::AnonymousId => msg["anonymousId"] = json!(k.value),
        IdentityKind::Email | IdentityKind::Phone | IdentityKind::Wallet => {
            msg["traits"][k.kind.as_str()] = json!(k.value)
        }
        IdentityKind::Social => {
            let (network, handle) = k.value.split_once(':').unwrap_or(("", &k.value));
            msg["traits"]["socials"] = json!({ network: handle });
        }
        IdentityKind::External => {
            let (kind, id) = k.value.split_once(':').unwrap_or(("external", &k.value));
            msg["context"] = json!({"externalIds": [{"id": id, "type": kind}]});
        }
    }
    let id = content_id(tag, &[k.kind.as_str(), &k.value]);
    let batch = BatchContext {
        received_at: at,
        identifiers_suffice: true,
        ..Default::default()
    };
    parse_message(&msg, "", None, &batch, || id)
}

/// E-mail addresses and wallet addresses written in an event's text are mentions of
/// whoever owns them (handles need a network, which `relationship::infer` reads). A
/// bare `0x` address is taken on the event's `chain_id`, else Ethereum mainnet.
fn text_mentions(ev: &EventView, hints: &mut Vec<relationship::EdgeHint>) {
    let Some(text) = ev.text.as_deref() else {
        return;
    };
    if !text.contains('@') && !text.contains("0x") {
        return;
    }
    static NONE: std::sync::OnceLock<rapport_text::Catalogue> = std::sync::OnceLock::new();
    let none = NONE.get_or_init(|| rapport_text::Catalogue::new([]));
    let chain = ev
        .properties
        .get("chain_id")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    for e in rapport_text::entities::extract(text, none)
        .into_iter()
        .take(50)
    {
        let key = match e.kind {
            "email" => IdentityKey::parse(IdentityKind::Email, &e.value).ok(),
            "wallet" => {
                IdentityKey::parse(IdentityKind::Wallet, &format!("eip155:{chain}:{}", e.value))
                    .ok()
            }
            _ => None,
        };
        if let Some(other) = key {
            let h = relationship::EdgeHint {
                kind: "mentioned",
                other,
                toward_author: false,
                from: None,
            };
            if !hints.contains(&h) {
                hints.push(h);
            }
        }
    }
}

fn vader() -> &'static rapport_text::Vader {
    static V: std::sync::OnceLock<rapport_text::Vader> = std::sync::OnceLock::new();
    V.get_or_init(rapport_text::Vader::new)
}

/// Name of the inference worker's position in the event log.
pub const INFERENCE_CURSOR: &str = "cursor.graph_inference";

/// One step of the inference worker: reads the next events after its saved position,
/// stores the relationships they imply and the new position in one transaction.
/// Returns how many events it read (0 when caught up).
pub async fn infer_step(store: &DynStore, batch: usize) -> Result<usize> {
    let pos = store.counter(INFERENCE_CURSOR).await?;
    let (events, last) = store.relationship_candidates(pos, batch as i64).await?;
    if last == pos {
        return Ok(0);
    }
    let hinted: Vec<(&EventView, Vec<relationship::EdgeHint>)> = events
        .iter()
        .map(|e| {
            let mut hints = relationship::infer(e);
            text_mentions(e, &mut hints);
            (e, hints)
        })
        .filter(|(_, h)| !h.is_empty())
        .collect();
    let mut keys: Vec<IdentityKey> = Vec::new();
    for (_, hints) in &hinted {
        for h in hints {
            keys.push(h.other.clone());
            keys.extend(h.from.iter().cloned());
        }
    }
    keys.sort();
    keys.dedup();
    let mut owners: HashMap<IdentityKey, ProfileId> = if keys.is_empty() {
        HashMap::new()
    } else {
        let found = store.lookup_many(keys.clone()).await?;
        keys.into_iter()
            .zip(found)
            .filter_map(|(k, f)| f.map(|f| (k, f)))
            .collect()
    };
    // Unknown people mentioned in texts become lead profiles when the brand wants.
    let unknown: Vec<&IdentityKey> = hinted
        .iter()
        .flat_map(|(_, hs)| hs.iter())
        .filter(|h| h.kind == "mentioned" && !owners.contains_key(&h.other))
        .map(|h| &h.other)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if !unknown.is_empty() && crate::text::create_leads(store).await? {
        let now = rapport_domain::time::now_millis();
        let leads = unknown
            .iter()
            .map(|k| {
                identify_with(
                    k,
                    now,
                    json!({"lead": true, "lead_source": "mentioned in a text"}),
                    "lead",
                )
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        store
            .ingest(vec![SourcedMessages {
                source: "text-mentions".to_string(),
                messages: leads,
            }])
            .await?;
        let keys: Vec<IdentityKey> = unknown.into_iter().cloned().collect();
        let found = store.lookup_many(keys.clone()).await?;
        owners.extend(
            keys.into_iter()
                .zip(found)
                .filter_map(|(k, f)| f.map(|f| (k, f))),
        );
    }
    let mut writes = Vec::new();
    for (ev, hints) in hinted {
        for h in hints {
            let Some(&other) = owners.get(&h.other) else {
                continue;
            };
            let (source, target) = match (&h.from, h.toward_author) {
                (Some(f), _) => match owners.get(f) {
                    Some(&f) => (f, other),
                    None => continue,
                },
                (None, true) => (other, ev.profile_id),
                (None, false) => (ev.profile_id, other),
            };
            // Someone writing their own address is not a relationship.
            if source == target {
                continue;
            }
            writes.push(RelationshipWrite {
                source,
                target,
                kind: h.kind.to_string(),
                weight: 1.0,
                explicit: false,
                at: ev.occurred_at.timestamp_millis(),
                // A score the sender supplied wins; else the text's own (VADER).
                sentiment: ev
                    .properties
                    .get("sentiment")
                    .and_then(Value::as_f64)
                    .filter(|s| (-1.0..=1.0).contains(s))
                    .or_else(|| ev.text.as_deref().map(|t| vader().polarity(t).compound)),
                event_id: Some(ev.id),
            });
        }
    }
    store
        .upsert_relationships(writes, Some((INFERENCE_CURSOR.to_string(), last)))
        .await?;
    Ok((last - pos) as usize)
}

/// Runs inference until it has read every stored event; returns events read.
pub async fn infer_all(store: &DynStore) -> Result<usize> {
    let mut total = 0;
    loop {
        match infer_step(store, 100_000).await? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

/// Runs the inference worker until `shutdown` fires: catches up after a restart from
/// its saved position, then polls for new events.
pub async fn run_inference(store: DynStore, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        // Large spans and a pause even when behind: each step is one write transaction
        // (one fsync) on the store ingestion also writes to, so fewer, larger steps cost
        // ingestion least; relationships appear within about a second.
        let step = infer_step(&store, 100_000).await;
        let (idle, busy) = (Duration::from_millis(500), Duration::from_millis(200));
        if !crate::worker::pause_after("relationship inference", step, idle, busy, &mut shutdown)
            .await
        {
            return;
        }
    }
}

/// Recomputes the graph every `every` when relationships changed.
pub async fn run_schedule(
    service: Arc<GraphService>,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = service.recompute_if_stale().await {
            tracing::warn!(error = %e, "scheduled graph recomputation failed");
        }
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

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportEdgesReport {
    pub lines: usize,
    pub relationships: usize,
    pub profiles_created: usize,
    pub weighted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    GraphMl,
    Csv,
}

impl GraphService {
    /// Imports an edge list (`rapport graph import-edges`). The whole file is checked
    /// before anything is written; an error names the line.
    pub async fn import_edges(
        &self,
        text: &str,
        kind: &str,
        source: &str,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<ImportEdgesReport> {
        let kind = relationship::validate_kind(kind)?;
        let lines = rapport_graph::edgelist::parse(text).map_err(|e| GraphError::Invalid {
            field: format!("line {}: {}", e.line, e.field),
            reason: e.reason,
        })?;
        let now = rapport_domain::time::now_millis();
        let mut report = ImportEdgesReport {
            lines: lines.len(),
            weighted: lines.iter().any(|l| l.weight.is_some_and(|w| w != 1.0)),
            ..Default::default()
        };
        for l in &lines {
            for (field, v) in [("source", &l.source), ("target", &l.target)] {
                IdentityKey::parse_prefixed(v).map_err(|e| GraphError::Invalid {
                    field: format!("line {}: {field}", l.line),
                    reason: e.to_string(),
                })?;
            }
        }
        // Moved, not cloned: a 10M-line file is held once.
        let inputs: Vec<EdgeInput> = lines
            .into_iter()
            .map(|l| EdgeInput {
                source: l.source,
                target: l.target,
                kind: kind.clone(),
                weight: l.weight,
                at: now,
            })
            .collect();
        let total = inputs.len() as u64;
        let mut done = 0u64;
        for chunk in inputs.chunks(50_000) {
            let r = self.add(chunk.to_vec(), source).await?;
            report.relationships += r.relationships;
            report.profiles_created += r.profiles_created;
            done += chunk.len() as u64;
            progress(done, total);
        }
        Ok(report)
    }

    /// Writes the graph with every metric: GraphML (nodes and edges), or CSV (the node
    /// table, or with `edges` the edge table). Recomputes first when the stored scores
    /// are older than the relationships. Returns the rows written.
    pub async fn export(
        &self,
        format: ExportFormat,
        edges: bool,
        w: &mut dyn std::io::Write,
    ) -> Result<usize> {
        self.recompute_if_stale().await?;
        let loaded = self.load().await?;
        let names = self.names().await?;
        let name = |id: ProfileId| {
            names
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("profile:{id}"))
        };
        let scores: HashMap<ProfileId, GraphScores> = self
            .store
            .top_graph_scores(ScoreOrder::Pagerank, None, 1 << 40)
            .await?
            .into_iter()
            .map(|s| (s.profile_id, s))
            .collect();
        let io = |e: std::io::Error| GraphError::Compute(format!("writing the export: {e}"));
        let csv_err = |e: csv::Error| GraphError::Compute(format!("writing the export: {e}"));
        match (format, edges) {
            (ExportFormat::Csv, false) => {
                let mut c = csv::Writer::from_writer(w);
                c.write_record([
                    "user_id",
                    "pagerank",
                    "betweenness",
                    "community",
                    "core",
                    "reach1",
                    "reach2",
                ])
                .map_err(csv_err)?;
                for &id in &loaded.ids {
                    let Some(s) = scores.get(&id) else { continue };
                    c.write_record([
                        name(id),
                        s.pagerank.to_string(),
                        s.betweenness.to_string(),
                        s.community.to_string(),
                        s.core.to_string(),
                        s.reach1.to_string(),
                        s.reach2.to_string(),
                    ])
                    .map_err(csv_err)?;
                }
                c.flush().map_err(io)?;
                Ok(loaded.ids.len())
            }
            (ExportFormat::Csv, true) => {
                let rels = self.store.relationships(RelScope::All, 1 << 40).await?;
                let mut c = csv::Writer::from_writer(w);
                c.write_record([
                    "source",
                    "target",
                    "kind",
                    "weight",
                    "count",
                    "first_seen",
                    "last_seen",
                ])
                .map_err(csv_err)?;
                for r in &rels {
                    c.write_record([
                        name(r.source),
                        name(r.target),
                        r.kind.clone(),
                        r.weight.to_string(),
                        r.count.to_string(),
                        r.first_seen.to_rfc3339(),
                        r.last_seen.to_rfc3339(),
                    ])
                    .map_err(csv_err)?;
                }
                c.flush().map_err(io)?;
                Ok(rels.len())
            }
            (ExportFormat::GraphMl, _) => {
                let rels = self.store.relationships(RelScope::All, 1 << 40).await?;
                let mut out = std::io::BufWriter::new(w);
                writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#).map_err(io)?;
                writeln!(out, r#"<graphml xmlns="http://graphml.graphdrawing.org/xmlns" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">"#).map_err(io)?;
                let node_keys = [
                    ("user_id", "string"),
                    ("pagerank", "double"),
                    ("betweenness", "double"),
                    ("community", "long"),
                    ("core", "long"),
                    ("reach1", "long"),
                    ("reach2", "long"),
                    ("evangelist", "double"),
                    ("syndication", "double"),
                ];
                for (k, t) in node_keys {
                    writeln!(
                        out,
                        r#"  <key id="{k}" for="node" attr.name="{k}" attr.type="{t}"/>"#
                    )
                    .map_err(io)?;
                }
                for (k, t) in [("kind", "string"), ("weight", "double"), ("count", "long")] {
                    writeln!(
                        out,
                        r#"  <key id="e_{k}" for="edge" attr.name="{k}" attr.type="{t}"/>"#
                    )
                    .map_err(io)?;
                }
                writeln!(out, r#"  <graph id="rapport" edgedefault="directed">"#).map_err(io)?;
                for &id in &loaded.ids {
                    write!(
                        out,
                        r#"    <node id="p{id}"><data key="user_id">{}</data>"#,
                        xml_escape(&name(id))
                    )
                    .map_err(io)?;
                    if let Some(s) = scores.get(&id) {
                        write!(
                            out,
                            r#"<data key="pagerank">{}</data><data key="betweenness">{}</data><data key="community">{}</data><data key="core">{}</data><data key="reach1">{}</data><data key="reach2">{}</data><data key="evangelist">{}</data><data key="syndication">{}</data>"#,
                            s.pagerank, s.betweenness, s.community, s.core, s.reach1, s.reach2, s.evangelist, s.syndication
                        )
                        .map_err(io)?;
                    }
                    writeln!(out, "</node>").map_err(io)?;
                }
                for r in &rels {
                    writeln!(
                        out,
                        r#"    <edge source="p{}" target="p{}"><data key="e_kind">{}</data><data key="e_weight">{}</data><data key="e_count">{}</data></edge>"#,
                        r.source, r.target, xml_escape(&r.kind), r.weight, r.count
                    )
                    .map_err(io)?;
                }
                writeln!(out, "  </graph>\n</graphml>").map_err(io)?;
                out.flush().map_err(io)?;
                Ok(loaded.ids.len() + rels.len())
            }
        }
    }

    /// How exports name each person: the user id if there is one (bare, as edge lists
    /// write it), else the strongest other identifier in prefixed form.
    async fn names(&self) -> Result<HashMap<ProfileId, String>> {
        let rank = |k: IdentityKind| match k {
            IdentityKind::UserId => 0,
            IdentityKind::Email => 1,
            IdentityKind::Social => 2,
            IdentityKind::Wallet => 3,
            IdentityKind::Phone => 4,
            IdentityKind::External => 5,
            IdentityKind::AnonymousId => 6,
        };
        let mut best: HashMap<ProfileId, (u8, String)> = HashMap::new();
        for (id, k) in self.store.all_identifiers().await? {
            let r = rank(k.kind);
            let name = if k.kind == IdentityKind::UserId {
                k.value.clone()
            } else {
                k.to_string()
            };
            match best.get(&id) {
                Some((br, _)) if *br <= r => {}
                _ => {
                    best.insert(id, (r, name));
                }
            }
        }
        Ok(best.into_iter().map(|(id, (_, n))| (id, n)).collect())
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
