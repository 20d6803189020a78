//! Local queries on the undirected view: ego networks, shortest paths and personalised
//! PageRank ("who is close to this person").

use crate::csr::{Graph, NodeId};
use std::collections::{HashMap, VecDeque};

/// Nodes within `depth` hops of `v` (`v` first, then by distance), at most `limit`.
pub fn ego(g: &Graph, v: NodeId, depth: u32, limit: usize) -> Vec<(NodeId, u32)> {
    // A bitset over all nodes: one small zeroed allocation beats hashing when the
    // two-hop neighbourhood of a hub holds a large share of the graph.
    let mut seen = vec![0u64; g.node_count().div_ceil(64)];
    let mut mark = |w: NodeId| -> bool {
        let (i, b) = ((w / 64) as usize, 1u64 << (w % 64));
        let fresh = seen[i] & b == 0;
        seen[i] |= b;
        fresh
    };
    let mut out = vec![(v, 0)];
    mark(v);
    let mut head = 0;
    while head < out.len() && out.len() < limit {
        let (u, d) = out[head];
        head += 1;
        if d >= depth {
            continue;
        }
        for &w in g.sym.neighbours(u) {
            if mark(w) {
                out.push((w, d + 1));
                if out.len() >= limit {
                    break;
                }
            }
        }
    }
    out
}

/// A shortest path from `a` to `b` in hops, by bidirectional breadth-first search.
pub fn shortest_path(g: &Graph, a: NodeId, b: NodeId, max_hops: u32) -> Option<Vec<NodeId>> {
    if a == b {
        return Some(vec![a]);
    }
    let mut parent_a: HashMap<NodeId, NodeId> = HashMap::from([(a, a)]);
    let mut parent_b: HashMap<NodeId, NodeId> = HashMap::from([(b, b)]);
    let mut front_a = vec![a];
    let mut front_b = vec![b];
    let mut hops = 0;
    while !front_a.is_empty() && !front_b.is_empty() && hops < max_hops {
        hops += 1;
        // Expand the smaller frontier.
        let (front, parent, other) = if front_a.len() <= front_b.len() {
            (&mut front_a, &mut parent_a, &parent_b)
        } else {
            (&mut front_b, &mut parent_b, &parent_a)
        };
        let mut next = Vec::new();
        let mut meet = None;
        'outer: for &u in front.iter() {
            for &w in g.sym.neighbours(u) {
                if parent.contains_key(&w) {
                    continue;
                }
                parent.insert(w, u);
                if other.contains_key(&w) {
                    meet = Some(w);
                    break 'outer;
                }
                next.push(w);
            }
        }
        if let Some(m) = meet {
            let mut left = vec![m];
            let mut x = m;
            while parent_a[&x] != x {
                x = parent_a[&x];
                left.push(x);
            }
            left.reverse();
            let mut x = m;
            while parent_b[&x] != x {
                x = parent_b[&x];
                left.push(x);
            }
            return Some(left);
        }
        *front = next;
    }
    None
}

/// Approximate personalised PageRank from `seed` by forward push (Andersen, Chung and
/// Lang 2006) on the weighted undirected view: teleport probability `alpha` back to the
/// seed, residual threshold `eps` per unit of strength. Returns the `top` nodes other
/// than the seed, best first.
pub fn personalised_pagerank(
    g: &Graph,
    seed: NodeId,
    alpha: f64,
    eps: f64,
    top: usize,
) -> Vec<(NodeId, f64)> {
    let strength = |v: NodeId| -> f64 { g.sym.weights_of(v).map_or(0.0, |w| w.iter().sum()) };
    let mut p: HashMap<NodeId, f64> = HashMap::new();
    let mut r: HashMap<NodeId, f64> = HashMap::from([(seed, 1.0)]);
    let mut queue: VecDeque<NodeId> = VecDeque::from([seed]);
    let mut pushes = 0usize;
    while let Some(u) = queue.pop_front() {
        let ru = r.get(&u).copied().unwrap_or(0.0);
        let du = strength(u);
        if du == 0.0 {
            *p.entry(u).or_default() += ru;
            r.insert(u, 0.0);
            continue;
        }
        if ru < eps * du {
            continue;
        }
        pushes += 1;
        if pushes > 5_000_000 {
            break;
        }
        *p.entry(u).or_default() += alpha * ru;
        let spread = (1.0 - alpha) * ru / 2.0;
        r.insert(u, (1.0 - alpha) * ru / 2.0);
        if r[&u] >= eps * du {
            queue.push_back(u);
        }
        let ns = g.sym.neighbours(u);
        let ws = g.sym.weights_of(u).unwrap_or(&[]);
        for (i, &w) in ns.iter().enumerate() {
            let before = r.get(&w).copied().unwrap_or(0.0);
            let after = before + spread * ws[i] / du;
            r.insert(w, after);
            let dw = strength(w);
            if before < eps * dw && after >= eps * dw {
                queue.push_back(w);
            }
        }
    }
    let mut ranked: Vec<(NodeId, f64)> = p.into_iter().filter(|&(v, _)| v != seed).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(top);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn undirected(n: usize, pairs: &[(u32, u32)]) -> Graph {
        Graph::from_edges(
            n,
            pairs
                .iter()
                .flat_map(|&(a, b)| [(a, b, 1.0), (b, a, 1.0)])
                .collect(),
        )
    }

    #[test]
    fn ego_by_depth() {
        let g = undirected(6, &[(0, 1), (1, 2), (2, 3), (0, 4)]);
        let e1: Vec<_> = ego(&g, 0, 1, 100).into_iter().map(|x| x.0).collect();
        assert_eq!(e1, vec![0, 1, 4]);
        assert_eq!(ego(&g, 0, 2, 100).len(), 4);
        assert_eq!(ego(&g, 0, 2, 2).len(), 2);
    }

    #[test]
    fn path_through_the_middle() {
        let g = undirected(7, &[(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 4)]);
        assert_eq!(shortest_path(&g, 0, 4, 10), Some(vec![0, 5, 4]));
        assert_eq!(shortest_path(&g, 0, 3, 10).map(|p| p.len()), Some(4));
        assert_eq!(shortest_path(&g, 0, 6, 10), None);
        assert_eq!(shortest_path(&g, 0, 3, 2), None);
    }

    #[test]
    fn closeness_prefers_near_and_well_connected() {
        // 0's friends 1 and 2; 1 also shares friend 3 with 0 via 2. 4 hangs off 3.
        let g = undirected(5, &[(0, 1), (0, 2), (1, 2), (2, 3), (3, 4)]);
        let ppr = personalised_pagerank(&g, 0, 0.15, 1e-7, 10);
        let order: Vec<_> = ppr.iter().map(|x| x.0).collect();
        assert_eq!(order[0], 2);
        assert_eq!(*order.last().unwrap(), 4);
    }
}
