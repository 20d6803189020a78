//! Communities by the Leiden method (Traag, Waltman & van Eck 2019): Louvain's
//! modularity objective (with a resolution γ), but each pass refines its communities
//! before aggregating, so every community found is connected — Louvain can leave a
//! community whose parts only held together through a node that moved away.
//!
//! A pass: fast local moving (a queue of nodes whose neighbourhood changed) from the
//! partition carried over; then, inside each community, nodes start alone and a node
//! still alone joins the refined sub-community with the best gain among those it is
//! well connected with (greedy, the θ → 0 form of the paper's random choice); the graph
//! is aggregated by refined sub-community, each new node starting in its parent
//! community. It stops when local moving leaves every community a single node.

use crate::betweenness::SplitMix;
use crate::community::{aggregate, best_move, order_by_size, renumber, Communities, Level};
use crate::csr::Graph;

/// Leiden communities of the undirected view at resolution `resolution` (1: modularity).
/// The method runs again from its own result while that raises modularity (as igraph
/// iterates it): each run can only keep or improve the partition it starts from.
pub fn leiden(g: &Graph, seed: u64, resolution: f64) -> Communities {
    let n = g.node_count();
    let mut rng = SplitMix(seed);
    let (mut best, mut levels) = run(g, (0..n as u32).collect(), &mut rng, resolution);
    let mut q = crate::community::modularity(g, &best);
    for _ in 0..MAX_RUNS {
        let (next, l) = run(g, best.clone(), &mut rng, resolution);
        let next_q = crate::community::modularity(g, &next);
        if next_q <= q + 1e-12 {
            break;
        }
        (best, q, levels) = (next, next_q, levels + l);
    }
    let (membership, count) = order_by_size(&best);
    Communities {
        membership,
        count,
        modularity: q,
        levels,
    }
}

/// Runs after the first, at most.
const MAX_RUNS: usize = 10;

/// One run of the method from `start` (a community per node); returns each node's
/// community and the levels aggregated.
fn run(g: &Graph, start: Vec<u32>, rng: &mut SplitMix, resolution: f64) -> (Vec<u32>, usize) {
    let mut level = Level::of(g);
    // Each original node's node in the current level.
    let mut node_of: Vec<u32> = (0..g.node_count() as u32).collect();
    let mut part = start;
    let mut levels = 0;
    loop {
        let (moved, count) = renumber(&move_nodes(&level, part, rng, resolution));
        part = moved;
        if count == level.n() {
            break;
        }
        levels += 1;
        let refined = refine(&level, &part, count, rng, resolution);
        let (refined, sub) = renumber(&refined);
        if sub == level.n() {
            // Nothing merged inside any community: aggregating would not shrink the
            // graph, and the partition is final as it stands.
            break;
        }
        let mut next = vec![0u32; sub];
        for (v, &r) in refined.iter().enumerate() {
            next[r as usize] = part[v];
        }
        for m in node_of.iter_mut() {
            *m = refined[*m as usize];
        }
        level = aggregate(&level, &refined, sub);
        part = next;
        if levels > 64 {
            break;
        }
    }
    (node_of.iter().map(|&v| part[v as usize]).collect(), levels)
}

/// Fast local moving from `comm`: every node queued once in a seeded order; a node
/// that moves queues its neighbours outside its new community again.
fn move_nodes(g: &Level, mut comm: Vec<u32>, rng: &mut SplitMix, gamma: f64) -> Vec<u32> {
    let n = g.n();
    let k: Vec<f64> = (0..n).map(|v| g.strength(v)).collect();
    let m2: f64 = k.iter().sum();
    if m2 == 0.0 {
        return comm;
    }
    let mut tot = vec![0.0f64; n];
    for v in 0..n {
        tot[comm[v] as usize] += k[v];
    }
    let mut queue: std::collections::VecDeque<u32> = shuffled(n, rng).into();
    let mut queued = vec![true; n];
    let mut neigh_w = vec![0.0f64; n];
    let mut touched: Vec<u32> = Vec::new();
    // An empty community to move to (a node alone may do better than anywhere).
    let mut empty: Vec<u32> = (0..n as u32).filter(|&c| tot[c as usize] == 0.0).collect();
    while let Some(v) = queue.pop_front() {
        let v = v as usize;
        queued[v] = false;
        let own = comm[v];
        tot[own as usize] -= k[v];
        let (mut best, gain) = best_move(
            g,
            v,
            &comm,
            &tot,
            (k[v], m2, gamma),
            &mut neigh_w,
            &mut touched,
        );
        if gain < -1e-12 {
            if let Some(&e) = empty.last() {
                best = e;
            }
        }
        tot[best as usize] += k[v];
        if best != own {
            if empty.last() == Some(&best) {
                empty.pop();
            }
            if tot[own as usize] == 0.0 {
                empty.push(own);
            }
            comm[v] = best;
            for i in g.offsets[v]..g.offsets[v + 1] {
                let u = g.targets[i] as usize;
                if !queued[u] && comm[u] != best {
                    queued[u] = true;
                    queue.push_back(u as u32);
                }
            }
        }
    }
    comm
}

/// Sub-communities inside each of `part`'s `count` communities: nodes start alone; a
/// node still alone and well connected to its community joins the well-connected
/// sub-community of that community with the best non-negative gain.
fn refine(g: &Level, part: &[u32], count: usize, rng: &mut SplitMix, gamma: f64) -> Vec<u32> {
    let n = g.n();
    let k: Vec<f64> = (0..n).map(|v| g.strength(v)).collect();
    let m2: f64 = k.iter().sum();
    let mut refined: Vec<u32> = (0..n as u32).collect();
    if m2 == 0.0 {
        return refined;
    }
    let mut tot_c = vec![0.0f64; count];
    for v in 0..n {
        tot_c[part[v] as usize] += k[v];
    }
    // Weight from each sub-community to the rest of its community; starts as each
    // node's weight to the rest of its community.
    let mut ext = vec![0.0f64; n];
    for v in 0..n {
        for i in g.offsets[v]..g.offsets[v + 1] {
            if part[g.targets[i] as usize] == part[v] {
                ext[v] += g.weights[i];
            }
        }
    }
    let mut tot_r = k.clone();
    let mut size = vec![1u32; n];
    let mut neigh_w = vec![0.0f64; n];
    let mut touched: Vec<u32> = Vec::new();
    for v in shuffled(n, rng) {
        let v = v as usize;
        let c = part[v] as usize;
        if size[refined[v] as usize] != 1 {
            continue;
        }
        let well = |inner: f64, tot: f64| inner >= gamma * tot * (tot_c[c] - tot) / m2 - 1e-12;
        if !well(ext[v], k[v]) {
            continue;
        }
        for i in g.offsets[v]..g.offsets[v + 1] {
            let u = g.targets[i] as usize;
            if part[u] as usize != c {
                continue;
            }
            let r = refined[u];
            if neigh_w[r as usize] == 0.0 {
                touched.push(r);
            }
            neigh_w[r as usize] += g.weights[i];
        }
        let own = refined[v];
        let mut best = own;
        let mut best_gain = 0.0;
        for &r in &touched {
            let ri = r as usize;
            if r == own || !well(ext[ri], tot_r[ri]) {
                continue;
            }
            let gain = neigh_w[ri] - gamma * tot_r[ri] * k[v] / m2;
            if gain >= best_gain - 1e-12 && (best == own || gain > best_gain + 1e-12) {
                best_gain = gain;
                best = r;
            }
        }
        if best != own {
            let b = best as usize;
            // The merged sub-community's weight to the rest of the community: both
            // sides' outside weight, less the weight now inside (counted from each side).
            ext[b] += ext[v] - 2.0 * neigh_w[b];
            tot_r[b] += k[v];
            size[b] += 1;
            size[own as usize] = 0;
            refined[v] = best;
        }
        for &r in &touched {
            neigh_w[r as usize] = 0.0;
        }
        touched.clear();
    }
    refined
}

fn shuffled(n: usize, rng: &mut SplitMix) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::community::louvain;

    fn undirected(n: usize, pairs: &[(u32, u32)]) -> Graph {
        let edges = pairs
            .iter()
            .flat_map(|&(a, b)| [(a, b, 1.0), (b, a, 1.0)])
            .collect();
        Graph::from_edges(n, edges)
    }

    fn cliques(count: u32, size: u32) -> Vec<(u32, u32)> {
        let mut pairs = vec![];
        for q in 0..count {
            for a in 0..size {
                for b in a + 1..size {
                    pairs.push((q * size + a, q * size + b));
                }
            }
            // A ring of cliques, each joined to the next by one edge.
            pairs.push((q * size, ((q + 1) % count) * size + 1));
        }
        pairs
    }

    fn connected(g: &Graph, membership: &[u32]) -> bool {
        crate::community::disconnected(g, membership) == 0
    }

    #[test]
    fn a_ring_of_cliques_splits_into_its_cliques() {
        let g = undirected(60, &cliques(10, 6));
        let c = leiden(&g, 3, 1.0);
        assert_eq!(c.count, 10);
        for q in 0..10 {
            let m = &c.membership[q * 6..q * 6 + 6];
            assert!(m.iter().all(|&x| x == m[0]), "clique {q}: {m:?}");
        }
        assert!(connected(&g, &c.membership));
        assert!((c.modularity - louvain(&g, 3).modularity).abs() < 1e-9);
    }

    #[test]
    fn resolution_trades_size_for_count() {
        let g = undirected(60, &cliques(10, 6));
        // Low resolution favours large communities, high resolution small ones.
        assert!(leiden(&g, 1, 0.05).count < 10);
        assert!(leiden(&g, 1, 1.0).count == 10);
        assert!(leiden(&g, 1, 20.0).count > 10);
    }

    #[test]
    fn communities_hold_together_on_random_graphs() {
        let mut rng = SplitMix(11);
        for round in 0..20 {
            let n = 40 + round * 7;
            let mut pairs = vec![];
            for a in 0..n as u32 {
                for b in a + 1..n as u32 {
                    // Denser inside blocks of 8, sparse between.
                    let p = if a / 8 == b / 8 { 40 } else { 3 };
                    if rng.next() % 100 < p {
                        pairs.push((a, b));
                    }
                }
            }
            let g = undirected(n, &pairs);
            let c = leiden(&g, round as u64, 1.0);
            assert!(connected(&g, &c.membership), "round {round}");
            let l = louvain(&g, round as u64);
            assert!(
                c.modularity >= l.modularity - 0.02,
                "round {round}: leiden {} louvain {}",
                c.modularity,
                l.modularity
            );
        }
    }

    #[test]
    fn an_empty_graph_is_every_node_alone() {
        let g = undirected(4, &[]);
        let c = leiden(&g, 1, 1.0);
        assert_eq!(c.count, 4);
        assert_eq!(c.modularity, 0.0);
    }
}
