//! Betweenness centrality by Brandes' algorithm over unweighted, directed shortest paths.
//! Exact (every node a source) or sampled (`k` sources drawn uniformly without
//! replacement, scaled by `n/k`), parallel over sources. Normalised like networkx:
//! `1 / ((n-1)(n-2))`.
//!
//! Error bound of the sampled estimate: for a node `v` write `X_s = δ_s(v)/(n-2) ∈ [0,1]`;
//! the normalised estimate is `n/(n-1) · mean(X_s)` over the sample, so by Hoeffding
//! (which also holds when sampling without replacement) `|b̂(v) - b(v)| ≤ n/(n-1) ·
//! sqrt(ln(2/δ) / 2k)` with probability `1-δ` for one node, and with `ln(2n/δ)` for
//! all nodes at once (union bound). Both are reported with δ = 0.05.

use crate::csr::{Graph, NodeId};
use rayon::prelude::*;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Betweenness {
    #[serde(skip)]
    pub scores: Vec<f64>,
    pub sources: usize,
    pub exact: bool,
    /// Absolute error bound on one node's normalised score, 95% confidence.
    pub error_bound_per_node: f64,
    /// Absolute error bound holding for every node at once, 95% confidence.
    pub error_bound_all_nodes: f64,
}

/// Exact when `k` is `None` or not below `n`, else sampled with `k` sources.
pub fn betweenness(g: &Graph, k: Option<usize>, seed: u64) -> Betweenness {
    let n = g.node_count();
    let (sources, exact): (Vec<NodeId>, bool) = match k {
        Some(k) if k < n => (sample_without_replacement(n, k, seed), false),
        _ => ((0..n as NodeId).collect(), true),
    };
    let threads = rayon::current_num_threads().max(1);
    let chunk = sources.len().div_ceil(threads * 4).max(1);
    let mut scores = sources
        .par_chunks(chunk)
        .map(|chunk| {
            let mut st = Brandes::new(n);
            for &s in chunk {
                st.single_source(g, s);
            }
            st.bc
        })
        .reduce(|| vec![0.0; n], add_into);
    let mut bound = (0.0, 0.0);
    if n > 2 {
        let mut scale = 1.0 / ((n - 1) as f64 * (n - 2) as f64);
        if !exact {
            let kf = sources.len() as f64;
            scale *= n as f64 / kf;
            let lead = n as f64 / (n - 1) as f64;
            bound = (
                lead * ((2.0f64 / 0.05).ln() / (2.0 * kf)).sqrt(),
                lead * ((2.0 * n as f64 / 0.05).ln() / (2.0 * kf)).sqrt(),
            );
        }
        scores.iter_mut().for_each(|s| *s *= scale);
    }
    Betweenness {
        scores,
        sources: sources.len(),
        exact,
        error_bound_per_node: bound.0,
        error_bound_all_nodes: bound.1,
    }
}

fn add_into(mut a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    a
}

/// Per-thread scratch, reset only where the last search reached.
struct Brandes {
    bc: Vec<f64>,
    dist: Vec<i32>,
    sigma: Vec<f64>,
    delta: Vec<f64>,
    order: Vec<NodeId>,
}

impl Brandes {
    fn new(n: usize) -> Self {
        Brandes {
            bc: vec![0.0; n],
            dist: vec![-1; n],
            sigma: vec![0.0; n],
            delta: vec![0.0; n],
            order: Vec::new(),
        }
    }

    fn single_source(&mut self, g: &Graph, s: NodeId) {
        for &v in &self.order {
            let v = v as usize;
            self.dist[v] = -1;
            self.sigma[v] = 0.0;
            self.delta[v] = 0.0;
        }
        self.order.clear();
        self.dist[s as usize] = 0;
        self.sigma[s as usize] = 1.0;
        self.order.push(s);
        // BFS; `order` doubles as the queue and, read backwards, the stack.
        let mut head = 0;
        while head < self.order.len() {
            let v = self.order[head];
            head += 1;
            let dv = self.dist[v as usize];
            let sv = self.sigma[v as usize];
            for &w in g.out.neighbours(v) {
                let w = w as usize;
                if self.dist[w] < 0 {
                    self.dist[w] = dv + 1;
                    self.order.push(w as NodeId);
                }
                if self.dist[w] == dv + 1 {
                    self.sigma[w] += sv;
                }
            }
        }
        // Dependencies, walking successors instead of storing predecessor lists.
        for &v in self.order.iter().rev() {
            let vi = v as usize;
            let dv = self.dist[vi];
            let mut acc = 0.0;
            for &w in g.out.neighbours(v) {
                let w = w as usize;
                if self.dist[w] == dv + 1 {
                    acc += (1.0 + self.delta[w]) / self.sigma[w];
                }
            }
            self.delta[vi] = self.sigma[vi] * acc;
            if v != s {
                self.bc[vi] += self.delta[vi];
            }
        }
    }
}

/// `k` distinct nodes of `0..n`, reproducible from `seed` (partial Fisher–Yates).
pub fn sample_without_replacement(n: usize, k: usize, seed: u64) -> Vec<NodeId> {
    let mut rng = SplitMix(seed);
    let mut pool: Vec<NodeId> = (0..n as NodeId).collect();
    for i in 0..k.min(n) {
        let j = i + (rng.next() % (n - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(k.min(n));
    pool
}

/// splitmix64: a tiny, well-mixed generator for reproducible sampling.
pub(crate) struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }
}

pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_graph_middle_carries_all_paths() {
        // 0 - 1 - 2 undirected (both directions): node 1 lies on 0→2 and 2→0.
        let g = Graph::from_edges(3, vec![(0, 1, 1.0), (1, 0, 1.0), (1, 2, 1.0), (2, 1, 1.0)]);
        let b = betweenness(&g, None, 0);
        assert!(b.exact);
        assert!((b.scores[1] - 1.0).abs() < 1e-12);
        assert_eq!(b.scores[0], 0.0);
    }

    #[test]
    fn split_paths_share_credit() {
        // Directed diamond 0→{1,2}→3: each middle node on half of the 0→3 paths.
        let g = Graph::from_edges(4, vec![(0, 1, 1.0), (0, 2, 1.0), (1, 3, 1.0), (2, 3, 1.0)]);
        let b = betweenness(&g, None, 0);
        let scale = 1.0 / 6.0;
        assert!((b.scores[1] - 0.5 * scale).abs() < 1e-12);
        assert!((b.scores[2] - 0.5 * scale).abs() < 1e-12);
    }

    #[test]
    fn sampling_all_sources_equals_exact() {
        let edges: Vec<_> = (0..30u32)
            .flat_map(|i| [(i, (i * 7 + 3) % 30, 1.0), (i, (i + 1) % 30, 1.0)])
            .collect();
        let g = Graph::from_edges(30, edges);
        let exact = betweenness(&g, None, 0);
        let sampled = betweenness(&g, Some(29), 7);
        assert!(!sampled.exact);
        assert!(sampled.error_bound_all_nodes > sampled.error_bound_per_node);
        for (a, b) in exact.scores.iter().zip(&sampled.scores) {
            assert!((a - b).abs() <= sampled.error_bound_all_nodes);
        }
    }

    #[test]
    fn samples_are_distinct_and_reproducible() {
        let a = sample_without_replacement(100, 40, 9);
        let mut b = a.clone();
        b.sort();
        b.dedup();
        assert_eq!(b.len(), 40);
        assert_eq!(a, sample_without_replacement(100, 40, 9));
    }
}
