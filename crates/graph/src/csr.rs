//! Compressed sparse rows: the directed graph out and in, and its undirected view.

use rayon::prelude::*;

/// A dense node index, `0..n`.
pub type NodeId = u32;

/// One adjacency structure: `targets[offsets[v]..offsets[v+1]]` are `v`'s neighbours,
/// sorted and distinct; `weights` runs beside `targets` (empty when every weight is 1).
#[derive(Debug, Clone, Default)]
pub struct Adjacency {
    pub offsets: Vec<usize>,
    pub targets: Vec<NodeId>,
    pub weights: Vec<f64>,
}

impl Adjacency {
    #[inline]
    pub fn neighbours(&self, v: NodeId) -> &[NodeId] {
        let v = v as usize;
        &self.targets[self.offsets[v]..self.offsets[v + 1]]
    }

    /// Weights beside [`neighbours`](Self::neighbours); `None` when unweighted.
    #[inline]
    pub fn weights_of(&self, v: NodeId) -> Option<&[f64]> {
        if self.weights.is_empty() {
            return None;
        }
        let v = v as usize;
        Some(&self.weights[self.offsets[v]..self.offsets[v + 1]])
    }

    #[inline]
    pub fn degree(&self, v: NodeId) -> usize {
        let v = v as usize;
        self.offsets[v + 1] - self.offsets[v]
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    fn memory(&self) -> usize {
        self.offsets.len() * 8 + self.targets.len() * 4 + self.weights.len() * 8
    }
}

/// A directed, weighted graph on nodes `0..n`, with parallel edges summed and self-loops
/// dropped. Holds the out- and in-adjacency (PageRank pulls along in-edges, Brandes
/// walks out-edges) and the undirected view (`w{u,v} = w(u→v) + w(v→u)`).
#[derive(Debug, Clone, Default)]
pub struct Graph {
    n: usize,
    pub out: Adjacency,
    pub inn: Adjacency,
    pub sym: Adjacency,
    weighted: bool,
}

impl Graph {
    /// Builds the graph from `(source, target, weight)` triples. Weights must be finite
    /// and positive (the caller validates input; others are clamped to skip the edge).
    pub fn from_edges(n: usize, edges: Vec<(NodeId, NodeId, f64)>) -> Graph {
        let mut keyed: Vec<(u64, f64)> = edges
            .into_iter()
            .filter(|&(s, t, w)| {
                s != t && (s as usize) < n && (t as usize) < n && w.is_finite() && w > 0.0
            })
            .map(|(s, t, w)| (((s as u64) << 32) | t as u64, w))
            .collect();
        keyed.par_sort_unstable_by_key(|e| e.0);
        // Sum parallel edges in place.
        let mut len = 0usize;
        for i in 0..keyed.len() {
            if len > 0 && keyed[len - 1].0 == keyed[i].0 {
                keyed[len - 1].1 += keyed[i].1;
            } else {
                keyed[len] = keyed[i];
                len += 1;
            }
        }
        keyed.truncate(len);
        keyed.shrink_to_fit();
        let weighted = keyed.iter().any(|e| e.1 != 1.0);
        let out = from_sorted(n, &keyed, weighted, |k| ((k >> 32) as NodeId, k as NodeId));
        drop(keyed);
        let inn = transpose(n, &out);
        let sym = symmetrise(n, &out, &inn);
        Graph {
            n,
            out,
            inn,
            sym,
            weighted,
        }
    }

    pub fn node_count(&self) -> usize {
        self.n
    }

    /// Directed edges after summing parallel ones.
    pub fn edge_count(&self) -> usize {
        self.out.len()
    }

    /// True when some edge weight differs from 1 (then PageRank is weighted).
    pub fn is_weighted(&self) -> bool {
        self.weighted
    }

    /// Weight of the directed edge `u → v`, 0 if absent.
    pub fn weight(&self, u: NodeId, v: NodeId) -> f64 {
        let ns = self.out.neighbours(u);
        match ns.binary_search(&v) {
            Ok(i) => self.out.weights_of(u).map_or(1.0, |w| w[i]),
            Err(_) => 0.0,
        }
    }

    /// Bytes held by the adjacency arrays.
    pub fn memory(&self) -> usize {
        self.out.memory() + self.inn.memory() + self.sym.memory()
    }
}

fn from_sorted(
    n: usize,
    keyed: &[(u64, f64)],
    weighted: bool,
    split: impl Fn(u64) -> (NodeId, NodeId),
) -> Adjacency {
    let mut offsets = vec![0usize; n + 1];
    let mut targets = Vec::with_capacity(keyed.len());
    let mut weights = Vec::with_capacity(if weighted { keyed.len() } else { 0 });
    for &(k, w) in keyed {
        let (s, t) = split(k);
        offsets[s as usize + 1] += 1;
        targets.push(t);
        if weighted {
            weights.push(w);
        }
    }
    for i in 0..n {
        offsets[i + 1] += offsets[i];
    }
    Adjacency {
        offsets,
        targets,
        weights,
    }
}

/// The in-adjacency: a counting sort of the out-edges by target, which keeps each
/// row sorted because sources are visited in order.
fn transpose(n: usize, out: &Adjacency) -> Adjacency {
    let mut offsets = vec![0usize; n + 1];
    for &t in &out.targets {
        offsets[t as usize + 1] += 1;
    }
    for i in 0..n {
        offsets[i + 1] += offsets[i];
    }
    let mut cursor = offsets.clone();
    let mut targets = vec![0 as NodeId; out.len()];
    let mut weights = vec![0f64; out.weights.len()];
    for s in 0..n {
        for i in out.offsets[s]..out.offsets[s + 1] {
            let t = out.targets[i] as usize;
            let at = cursor[t];
            cursor[t] += 1;
            targets[at] = s as NodeId;
            if !weights.is_empty() {
                weights[at] = out.weights[i];
            }
        }
    }
    Adjacency {
        offsets,
        targets,
        weights,
    }
}

/// The undirected view: for each node, the sorted union of its out- and in-neighbours,
/// weighted `w(u→v) + w(v→u)`. Always weighted (a reciprocal pair weighs 2).
fn symmetrise(n: usize, out: &Adjacency, inn: &Adjacency) -> Adjacency {
    let mut offsets = vec![0usize; n + 1];
    let mut targets = Vec::with_capacity(out.len() * 2);
    let mut weights = Vec::with_capacity(out.len() * 2);
    for v in 0..n as NodeId {
        let (a, b) = (out.neighbours(v), inn.neighbours(v));
        let (wa, wb) = (out.weights_of(v), inn.weights_of(v));
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let take_a = j >= b.len() || (i < a.len() && a[i] <= b[j]);
            let take_b = i >= a.len() || (j < b.len() && b[j] <= a[i]);
            let mut w = 0.0;
            let t = if take_a { a[i] } else { b[j] };
            if take_a {
                w += wa.map_or(1.0, |w| w[i]);
                i += 1;
            }
            if take_b {
                w += wb.map_or(1.0, |w| w[j]);
                j += 1;
            }
            targets.push(t);
            weights.push(w);
        }
        offsets[v as usize + 1] = targets.len();
    }
    targets.shrink_to_fit();
    weights.shrink_to_fit();
    Adjacency {
        offsets,
        targets,
        weights,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_out_in_and_undirected_views() {
        // 0→1 twice (summed), 1→0, 1→2, self-loop dropped.
        let g = Graph::from_edges(
            3,
            vec![
                (0, 1, 1.0),
                (0, 1, 1.0),
                (1, 0, 1.0),
                (1, 2, 1.0),
                (2, 2, 1.0),
            ],
        );
        assert_eq!(g.edge_count(), 3);
        assert!(g.is_weighted());
        assert_eq!(g.weight(0, 1), 2.0);
        assert_eq!(g.weight(2, 1), 0.0);
        assert_eq!(g.inn.neighbours(1), &[0]);
        assert_eq!(g.inn.neighbours(0), &[1]);
        assert_eq!(g.sym.neighbours(1), &[0, 2]);
        assert_eq!(g.sym.weights_of(1).unwrap(), &[3.0, 1.0]);
    }

    #[test]
    fn unit_weights_make_an_unweighted_graph() {
        let g = Graph::from_edges(2, vec![(0, 1, 1.0), (1, 0, 1.0)]);
        assert!(!g.is_weighted());
        assert!(g.out.weights.is_empty());
    }
}
