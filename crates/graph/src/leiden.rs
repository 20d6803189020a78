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
    use crate::community::tests::undirected;

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

    /// Σ_c in_c/2m − γ(tot_c/2m)²: the quality the moves climb.
    fn quality(g: &Level, comm: &[u32], gamma: f64) -> f64 {
        let n = g.n();
        let k: Vec<f64> = (0..n).map(|v| g.strength(v)).collect();
        let m2: f64 = k.iter().sum();
        let mut tot = vec![0.0; n];
        let mut inner = 0.0;
        for v in 0..n {
            tot[comm[v] as usize] += k[v];
            for i in g.offsets[v]..g.offsets[v + 1] {
                if comm[g.targets[i] as usize] == comm[v] {
                    inner += g.weights[i];
                }
            }
        }
        inner / m2 - gamma * tot.iter().map(|t| (t / m2) * (t / m2)).sum::<f64>()
    }

    /// No node gains by moving to a neighbour's community or to a new one of its own.
    fn is_local_optimum(g: &Level, comm: &[u32], gamma: f64) -> bool {
        let q = quality(g, comm, gamma);
        // An id no node has (none when every node is alone: then a new community is
        // where each node already is).
        let fresh = (0..g.n() as u32).find(|c| !comm.contains(c));
        (0..g.n()).all(|v| {
            let mut to: Vec<u32> = (g.offsets[v]..g.offsets[v + 1])
                .map(|i| comm[g.targets[i] as usize])
                .collect();
            to.extend(fresh);
            to.into_iter().all(|c| {
                let mut moved = comm.to_vec();
                moved[v] = c;
                quality(g, &moved, gamma) <= q + 1e-9
            })
        })
    }

    fn two_triangles() -> Graph {
        undirected(6, &[(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5), (2, 3)])
    }

    #[test]
    fn local_moving_ends_where_no_single_move_helps() {
        let mut rng = SplitMix(5);
        for (gamma, seed) in [(1.0, 1u64), (0.5, 2), (2.0, 3), (4.0, 4)] {
            let g = undirected(60, &cliques(10, 6));
            let l = Level::of(&g);
            let n = l.n() as u32;
            // From singletons, from everyone together, and from a scrambled start.
            for start in [
                (0..n).collect::<Vec<u32>>(),
                vec![0; n as usize],
                (0..n).map(|v| (v * 7 + seed as u32) % 5).collect(),
            ] {
                let comm = move_nodes(&l, start, &mut rng, gamma);
                assert!(is_local_optimum(&l, &comm, gamma), "γ {gamma}: {comm:?}");
            }
        }
    }

    #[test]
    fn a_node_no_neighbour_wants_moves_to_a_community_of_its_own() {
        // A pendant on a clique, all in one community, at a resolution where staying
        // costs: only a fresh community does better.
        let mut pairs = cliques(1, 5);
        pairs.pop();
        pairs.push((0, 5));
        let g = undirected(6, &pairs);
        let l = Level::of(&g);
        let comm = move_nodes(&l, vec![0; 6], &mut SplitMix(1), 1.2);
        assert!(is_local_optimum(&l, &comm, 1.2), "{comm:?}");
        assert_ne!(comm[5], comm[1], "{comm:?}");
    }

    #[test]
    fn refinement_splits_a_community_along_its_weak_link() {
        let g = two_triangles();
        let l = Level::of(&g);
        for seed in 0..20 {
            // Everyone in one community: sub-communities grow only along edges.
            let r = refine(&l, &[0; 6], 1, &mut SplitMix(seed), 1.0);
            assert_eq!(
                crate::community::disconnected(&g, &r),
                0,
                "seed {seed}: {r:?}"
            );
            // Never across communities: with the triangles apart, each stays whole.
            let r = refine(&l, &[0, 0, 0, 1, 1, 1], 2, &mut SplitMix(seed), 1.0);
            assert_eq!(renumber(&r), (vec![0, 0, 0, 1, 1, 1], 2), "seed {seed}");
            // Node 3 put with the first triangle is not well connected there: alone.
            let r = refine(&l, &[0, 0, 0, 0, 1, 1], 2, &mut SplitMix(seed), 1.0);
            let (r, count) = renumber(&r);
            assert_eq!(count, 3, "seed {seed}: {r:?}");
            assert!(r[..3].iter().all(|&x| x == r[0]) && r[4] == r[5]);
            assert!(r[3] != r[0] && r[3] != r[4]);
        }
    }

    #[test]
    fn refinement_merges_only_what_gains() {
        // At a high resolution a triangle is not worth keeping together: all alone.
        let g = two_triangles();
        let l = Level::of(&g);
        let r = refine(&l, &[0; 6], 1, &mut SplitMix(3), 8.0);
        assert_eq!(renumber(&r).1, 6, "{r:?}");
        // A path whose halves meet only weakly (weights 5, 5, 1, 5, 5).
        let g = Graph::from_edges(
            6,
            [
                (0, 1, 5.0),
                (1, 2, 5.0),
                (2, 3, 1.0),
                (3, 4, 5.0),
                (4, 5, 5.0),
            ]
            .iter()
            .flat_map(|&(a, b, w)| [(a, b, w), (b, a, w)])
            .collect(),
        );
        let l = Level::of(&g);
        for seed in 0..10 {
            let r = refine(&l, &[0; 6], 1, &mut SplitMix(seed), 1.0);
            assert_eq!(
                crate::community::disconnected(&g, &r),
                0,
                "seed {seed}: {r:?}"
            );
            let r = refine(&l, &[0, 0, 0, 1, 1, 1], 2, &mut SplitMix(seed), 1.0);
            assert_eq!(renumber(&r), (vec![0, 0, 0, 1, 1, 1], 2), "seed {seed}");
        }
    }

    fn weighted(edges: &[(u32, u32, f64)]) -> Level {
        let n = 1 + edges.iter().map(|e| e.0.max(e.1)).max().unwrap_or(0) as usize;
        Level::of(&Graph::from_edges(
            n,
            edges
                .iter()
                .flat_map(|&(a, b, w)| [(a, b, w), (b, a, w)])
                .collect(),
        ))
    }

    #[test]
    fn refinement_pairs_nodes_by_their_strongest_well_connected_tie() {
        // 0=1 heavy, 2=3 heavy-ish, 1-2 and 1-3 light: two pairs, whatever the order.
        let l = weighted(&[(0, 1, 10.0), (1, 2, 1.0), (1, 3, 1.0), (2, 3, 4.0)]);
        for seed in 0..16 {
            let r = refine(&l, &[0; 4], 1, &mut SplitMix(seed), 1.0);
            assert_eq!(renumber(&r).0, [0, 0, 1, 1], "seed {seed}");
        }
        // A chain 0-1=2-3-4 (1=2 heavy): 1 and 2 together, 3 and 4 together, and 0
        // with them only if it came before the pair outgrew what it can join.
        let l = weighted(&[(0, 1, 1.0), (1, 2, 10.0), (2, 3, 1.0), (3, 4, 3.0)]);
        for seed in 0..16 {
            let (r, _) = renumber(&refine(&l, &[0; 5], 1, &mut SplitMix(seed), 1.0));
            assert!(
                r == [0, 1, 1, 2, 2] || r == [0, 0, 0, 1, 1],
                "seed {seed}: {r:?}"
            );
        }
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
        assert!(c.levels >= 1);
        // From a poor start, another run still finds the cliques (runs repeat while
        // modularity rises).
        let (again, _) = run(&g, (0..60).map(|v| v % 3).collect(), &mut SplitMix(1), 1.0);
        let q = crate::community::modularity(&g, &again);
        assert!(q > 0.0);
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
