//! Communities by the Louvain method (Blondel et al. 2008) on the undirected view:
//! repeated local moving of nodes to the neighbouring community with the best
//! modularity gain, then aggregation of communities into nodes, until nothing moves.
//! Node order in each pass is a seeded shuffle, so results are reproducible.

use crate::betweenness::SplitMix;
use crate::csr::{Graph, NodeId};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Communities {
    /// Community of each node, numbered `0..count` by decreasing size.
    #[serde(skip)]
    pub membership: Vec<u32>,
    pub count: usize,
    pub modularity: f64,
    pub levels: usize,
}

/// One level of the hierarchy: a weighted undirected graph whose nodes may carry
/// internal weight (`self_w`, every internal edge counted in both directions).
pub(crate) struct Level {
    pub(crate) offsets: Vec<usize>,
    pub(crate) targets: Vec<u32>,
    pub(crate) weights: Vec<f64>,
    self_w: Vec<f64>,
}

impl Level {
    /// The first level: the graph's undirected view, nodes with no internal weight.
    pub(crate) fn of(g: &Graph) -> Level {
        Level {
            offsets: g.sym.offsets.clone(),
            targets: g.sym.targets.clone(),
            weights: g.sym.weights.clone(),
            self_w: vec![0.0; g.node_count()],
        }
    }
    pub(crate) fn n(&self) -> usize {
        self.self_w.len()
    }
    pub(crate) fn strength(&self, v: usize) -> f64 {
        self.self_w[v]
            + self.weights[self.offsets[v]..self.offsets[v + 1]]
                .iter()
                .sum::<f64>()
    }
}

/// How a run finds communities: the method and the resolution γ (1: modularity; lower
/// favours fewer, larger communities).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Method {
    pub algorithm: Algorithm,
    pub resolution: f64,
}

impl Default for Method {
    fn default() -> Self {
        Method {
            algorithm: Algorithm::Louvain,
            resolution: 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Louvain,
    /// Louvain with a refinement phase: every community connected.
    Leiden,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Louvain => "louvain",
            Algorithm::Leiden => "leiden",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        match s {
            "louvain" => Some(Algorithm::Louvain),
            "leiden" => Some(Algorithm::Leiden),
            _ => None,
        }
    }
}

/// Communities by the chosen method, seeded.
pub fn detect(g: &Graph, method: Method, seed: u64) -> Communities {
    match method.algorithm {
        Algorithm::Louvain => louvain_at(g, seed, method.resolution),
        Algorithm::Leiden => crate::leiden::leiden(g, seed, method.resolution),
    }
}

/// Louvain at resolution 1 (modularity).
pub fn louvain(g: &Graph, seed: u64) -> Communities {
    louvain_at(g, seed, 1.0)
}

/// Louvain at resolution `gamma`.
pub fn louvain_at(g: &Graph, seed: u64, gamma: f64) -> Communities {
    let n = g.node_count();
    let mut level = Level::of(g);
    let mut membership: Vec<u32> = (0..n as u32).collect();
    let mut rng = SplitMix(seed);
    let mut levels = 0;
    loop {
        let (comm, moved) = local_moving(&level, &mut rng, gamma);
        if !moved {
            break;
        }
        levels += 1;
        let (renumbered, count) = renumber(&comm);
        for m in membership.iter_mut() {
            *m = renumbered[*m as usize];
        }
        level = aggregate(&level, &renumbered, count);
        if count == level.n() && levels > 64 {
            break;
        }
    }
    let (membership, count) = order_by_size(&membership);
    let modularity = modularity(g, &membership);
    Communities {
        membership,
        count,
        modularity,
        levels,
    }
}

fn local_moving(g: &Level, rng: &mut SplitMix, gamma: f64) -> (Vec<u32>, bool) {
    let n = g.n();
    let k: Vec<f64> = (0..n).map(|v| g.strength(v)).collect();
    let m2: f64 = k.iter().sum();
    let mut comm: Vec<u32> = (0..n as u32).collect();
    if m2 == 0.0 {
        return (comm, false);
    }
    let mut tot = k.clone();
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut neigh_w = vec![0.0f64; n];
    let mut touched: Vec<u32> = Vec::new();
    let mut any_move = false;
    loop {
        let mut moves = 0usize;
        for &v in &order {
            let v = v as usize;
            let own = comm[v];
            tot[own as usize] -= k[v];
            let (best, _) = best_move(
                g,
                v,
                &comm,
                &tot,
                (k[v], m2, gamma),
                &mut neigh_w,
                &mut touched,
            );
            tot[best as usize] += k[v];
            if best != own {
                comm[v] = best;
                moves += 1;
            }
        }
        if moves == 0 {
            break;
        }
        any_move = true;
    }
    (comm, any_move)
}

/// Where node `v` (already taken out of its community's total in `tot`) gains most:
/// its own community or a neighbour's, and the gain up to a constant factor,
/// w(v,c) − γ·tot_c·k_v / 2m (`kv_m2_gamma`: k_v, 2m, γ). `neigh_w` is zero on entry
/// and on return; `touched` empty.
pub(crate) fn best_move(
    g: &Level,
    v: usize,
    comm: &[u32],
    tot: &[f64],
    (kv, m2, gamma): (f64, f64, f64),
    neigh_w: &mut [f64],
    touched: &mut Vec<u32>,
) -> (u32, f64) {
    for i in g.offsets[v]..g.offsets[v + 1] {
        let c = comm[g.targets[i] as usize];
        if neigh_w[c as usize] == 0.0 {
            touched.push(c);
        }
        neigh_w[c as usize] += g.weights[i];
    }
    let own = comm[v];
    let mut best = own;
    let mut best_gain = neigh_w[own as usize] - gamma * tot[own as usize] * kv / m2;
    for &c in touched.iter() {
        let gain = neigh_w[c as usize] - gamma * tot[c as usize] * kv / m2;
        if gain > best_gain + 1e-12 {
            best_gain = gain;
            best = c;
        }
    }
    for &c in touched.iter() {
        neigh_w[c as usize] = 0.0;
    }
    touched.clear();
    (best, best_gain)
}

/// Communities that are not connected inside themselves (Louvain can leave some; Leiden
/// never does).
pub fn disconnected(g: &Graph, membership: &[u32]) -> usize {
    let n = g.node_count();
    let mut seen = vec![false; n];
    let mut started = std::collections::HashSet::new();
    let mut split = std::collections::HashSet::new();
    let mut stack = Vec::new();
    for s in 0..n {
        if seen[s] {
            continue;
        }
        // A community met a second time from an unseen node has a second part.
        if !started.insert(membership[s]) {
            split.insert(membership[s]);
        }
        seen[s] = true;
        stack.push(s as NodeId);
        while let Some(v) = stack.pop() {
            for &u in g.sym.neighbours(v) {
                if !seen[u as usize] && membership[u as usize] == membership[s] {
                    seen[u as usize] = true;
                    stack.push(u);
                }
            }
        }
    }
    split.len()
}

pub(crate) fn renumber(comm: &[u32]) -> (Vec<u32>, usize) {
    let mut map = vec![u32::MAX; comm.len()];
    let mut next = 0u32;
    let out = comm
        .iter()
        .map(|&c| {
            if map[c as usize] == u32::MAX {
                map[c as usize] = next;
                next += 1;
            }
            map[c as usize]
        })
        .collect();
    (out, next as usize)
}

/// Communities become nodes: members grouped by a counting sort, each group's
/// neighbour weights gathered in a dense scratch row.
pub(crate) fn aggregate(g: &Level, comm: &[u32], count: usize) -> Level {
    let n = g.n();
    let mut start = vec![0usize; count + 1];
    for &c in comm {
        start[c as usize + 1] += 1;
    }
    for i in 0..count {
        start[i + 1] += start[i];
    }
    let mut cursor = start.clone();
    let mut members = vec![0u32; n];
    for (v, &c) in comm.iter().enumerate() {
        let c = c as usize;
        members[cursor[c]] = v as u32;
        cursor[c] += 1;
    }
    let mut offsets = Vec::with_capacity(count + 1);
    offsets.push(0);
    let mut targets = Vec::new();
    let mut weights = Vec::new();
    let mut self_w = vec![0.0; count];
    let mut row = vec![0.0f64; count];
    let mut touched: Vec<u32> = Vec::new();
    for c in 0..count {
        for &v in &members[start[c]..start[c + 1]] {
            let v = v as usize;
            self_w[c] += g.self_w[v];
            for i in g.offsets[v]..g.offsets[v + 1] {
                let d = comm[g.targets[i] as usize];
                if d as usize == c {
                    self_w[c] += g.weights[i];
                } else {
                    if row[d as usize] == 0.0 {
                        touched.push(d);
                    }
                    row[d as usize] += g.weights[i];
                }
            }
        }
        for &d in &touched {
            targets.push(d);
            weights.push(row[d as usize]);
            row[d as usize] = 0.0;
        }
        touched.clear();
        offsets.push(targets.len());
    }
    Level {
        offsets,
        targets,
        weights,
        self_w,
    }
}

pub(crate) fn order_by_size(membership: &[u32]) -> (Vec<u32>, usize) {
    let count = membership
        .iter()
        .map(|&c| c as usize + 1)
        .max()
        .unwrap_or(0);
    let mut sizes: Vec<(usize, u32)> = vec![(0, 0); count];
    for (i, s) in sizes.iter_mut().enumerate() {
        s.1 = i as u32;
    }
    for &c in membership {
        sizes[c as usize].0 += 1;
    }
    sizes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut rank = vec![0u32; count];
    for (r, &(_, c)) in sizes.iter().enumerate() {
        rank[c as usize] = r as u32;
    }
    (
        membership.iter().map(|&c| rank[c as usize]).collect(),
        count,
    )
}

/// Newman's modularity of a partition of the undirected view.
pub fn modularity(g: &Graph, membership: &[u32]) -> f64 {
    let count = membership
        .iter()
        .map(|&c| c as usize + 1)
        .max()
        .unwrap_or(0);
    let mut internal = vec![0.0f64; count];
    let mut tot = vec![0.0f64; count];
    let mut m2 = 0.0;
    for v in 0..g.node_count() as NodeId {
        let cv = membership[v as usize] as usize;
        let ns = g.sym.neighbours(v);
        let ws = g.sym.weights_of(v).unwrap_or(&[]);
        for (i, &u) in ns.iter().enumerate() {
            let w = ws.get(i).copied().unwrap_or(1.0);
            tot[cv] += w;
            m2 += w;
            if membership[u as usize] as usize == cv {
                internal[cv] += w;
            }
        }
    }
    if m2 == 0.0 {
        return 0.0;
    }
    internal
        .iter()
        .zip(&tot)
        .map(|(i, t)| i / m2 - (t / m2) * (t / m2))
        .sum()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn undirected(n: usize, pairs: &[(u32, u32)]) -> Graph {
        let edges = pairs
            .iter()
            .flat_map(|&(a, b)| [(a, b, 1.0), (b, a, 1.0)])
            .collect();
        Graph::from_edges(n, edges)
    }

    #[test]
    fn two_cliques_joined_by_a_bridge_split_in_two() {
        let mut pairs = vec![];
        for a in 0..5u32 {
            for b in a + 1..5 {
                pairs.push((a, b));
                pairs.push((a + 5, b + 5));
            }
        }
        pairs.push((0, 5));
        let g = undirected(10, &pairs);
        let c = louvain(&g, 1);
        assert_eq!(c.count, 2);
        assert!(c.membership[..5].iter().all(|&x| x == c.membership[0]));
        assert!(c.membership[5..].iter().all(|&x| x == c.membership[5]));
        assert_ne!(c.membership[0], c.membership[5]);
        // Known value: 2 × (21/42 - (21/42)²) with 2m = 42.
        assert!((c.modularity - (2.0 * (20.0 / 42.0 - 0.25))).abs() < 1e-12);
    }

    #[test]
    fn a_community_in_two_parts_is_counted_once() {
        // 0-1 and 2-3 are two pieces; 4-5 is whole.
        let g = undirected(6, &[(0, 1), (2, 3), (4, 5), (1, 4)]);
        assert_eq!(disconnected(&g, &[0, 0, 0, 0, 1, 1]), 1);
        assert_eq!(disconnected(&g, &[0, 0, 1, 1, 2, 2]), 0);
        assert_eq!(disconnected(&g, &[0, 0, 0, 0, 0, 0]), 1);
        assert_eq!(disconnected(&g, &[0, 1, 0, 1, 0, 1]), 2);
    }

    #[test]
    fn single_community_has_zero_modularity() {
        let g = undirected(3, &[(0, 1), (1, 2), (0, 2)]);
        assert!(modularity(&g, &[0, 0, 0]).abs() < 1e-12);
    }
}
