//! Network analytics recomputed into stored scores: PageRank, betweenness, communities,
//! k-core, reach and social value, on demand or on the schedule `rapport serve` runs.

use super::*;

pub(super) fn build(version: i64, edges: Vec<(ProfileId, ProfileId, f64)>) -> Loaded {
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
pub(super) const EXACT_BETWEENNESS_WORK: f64 = 2e10;

/// Sources sampled on large graphs.
pub(super) const BETWEENNESS_SAMPLES: usize = 256;

/// Every metric, as score rows and a summary of parameters and global results.
pub(super) fn analyse(
    l: &Loaded,
    active: &HashMap<ProfileId, i64>,
    contributions: &HashMap<ProfileId, social::SocialInputs>,
    method: community::Method,
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
    let comm = community::detect(g, method, 42);
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
        "communities": {"count": comm.count, "modularity": comm.modularity, "levels": comm.levels,
            "algorithm": method.algorithm, "resolution": method.resolution},
        "reach": r,
        "timings_s": Value::Object(timings),
    });
    (scores, summary)
}

/// A run's community method from a request: `algorithm` louvain or leiden, `resolution`
/// above 0 (at most 100); none given: none chosen (the latest run's stays).
pub fn community_method(
    algorithm: Option<&str>,
    resolution: Option<f64>,
) -> Result<Option<community::Method>> {
    if algorithm.is_none() && resolution.is_none() {
        return Ok(None);
    }
    let algorithm = match algorithm {
        None => community::Algorithm::Louvain,
        Some(a) => community::Algorithm::parse(a)
            .ok_or_else(|| super::invalid("communities", "must be louvain or leiden"))?,
    };
    let resolution = resolution.unwrap_or(1.0);
    if !(resolution > 0.0 && resolution <= 100.0) {
        return Err(super::invalid(
            "resolution",
            "must be a number above 0 and at most 100",
        ));
    }
    Ok(Some(community::Method {
        algorithm,
        resolution,
    }))
}

/// The community method a run's summary records (Louvain at 1 for runs before the
/// choice existed).
pub fn method_of(summary: &Value) -> community::Method {
    let c = &summary["communities"];
    community::Method {
        algorithm: c["algorithm"]
            .as_str()
            .and_then(community::Algorithm::parse)
            .unwrap_or(community::Algorithm::Louvain),
        resolution: c["resolution"].as_f64().unwrap_or(1.0),
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

impl GraphService {
    /// Computes every metric over the whole graph and stores it as profile scores.
    /// Communities are found by `method` (the one of the latest run when none is given).
    pub async fn recompute(
        &self,
        method: Option<community::Method>,
        progress: Progress<'_>,
    ) -> Result<GraphRun> {
        let _guard = self.recompute_lock.lock().await;
        let method = match method {
            Some(m) => m,
            None => self
                .store
                .latest_graph_run()
                .await?
                .map(|r| method_of(&r.summary))
                .unwrap_or_default(),
        };
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
            analyse(&l2, &active, &contributions, method, &|s, what| {
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
        Ok(Some(self.recompute(None, &|_, _, _| {}).await?))
    }
}
