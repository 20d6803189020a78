//! PageRank by power iteration, pulling along in-edges so each node's update is
//! independent (parallel over nodes, no atomics). The standard definition: damping `d`,
//! uniform teleport, the mass of dangling nodes (no out-edges) spread uniformly,
//! transition probabilities proportional to edge weight.

use crate::csr::{Graph, NodeId};
use rayon::prelude::*;
use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct PageRankParams {
    pub damping: f64,
    /// Stop when the L1 change between iterations falls below this.
    pub tolerance: f64,
    pub max_iterations: usize,
}

impl Default for PageRankParams {
    fn default() -> Self {
        PageRankParams {
            damping: 0.85,
            tolerance: 1e-8,
            max_iterations: 1000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PageRank {
    pub scores: Vec<f64>,
    pub iterations: usize,
    /// L1 change of the last iteration.
    pub delta: f64,
    pub converged: bool,
}

const CHUNK: usize = 2048;

pub fn pagerank(g: &Graph, p: &PageRankParams) -> PageRank {
    let n = g.node_count();
    if n == 0 {
        return PageRank {
            scores: vec![],
            iterations: 0,
            delta: 0.0,
            converged: true,
        };
    }
    let nf = n as f64;
    // 1 / out-strength, 0 for dangling nodes.
    let inv_out: Vec<f64> = (0..n as NodeId)
        .into_par_iter()
        .map(|u| {
            let s = match g.out.weights_of(u) {
                Some(w) => w.iter().sum::<f64>(),
                None => g.out.degree(u) as f64,
            };
            if s > 0.0 {
                1.0 / s
            } else {
                0.0
            }
        })
        .collect();
    let dangling: Vec<NodeId> = (0..n as NodeId)
        .filter(|&u| inv_out[u as usize] == 0.0)
        .collect();
    let mut x = vec![1.0 / nf; n];
    let mut next = vec![0.0; n];
    let mut contrib = vec![0.0; n];
    let d = p.damping;
    let mut it = 0;
    let mut delta = f64::INFINITY;
    while it < p.max_iterations {
        it += 1;
        contrib
            .par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .zip(inv_out.par_chunks(CHUNK))
            .for_each(|((c, x), inv)| {
                for i in 0..c.len() {
                    c[i] = x[i] * inv[i];
                }
            });
        let dangling_mass: f64 = dangling.iter().map(|&u| x[u as usize]).sum();
        let base = (1.0 - d) / nf + d * dangling_mass / nf;
        let contrib = &contrib;
        delta = next
            .par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .enumerate()
            .map(|(ci, (out, old))| {
                let first = ci * CHUNK;
                let mut err = 0.0;
                for (i, slot) in out.iter_mut().enumerate() {
                    let v = (first + i) as NodeId;
                    let srcs = g.inn.neighbours(v);
                    let s: f64 = match g.inn.weights_of(v) {
                        None => srcs.iter().map(|&u| contrib[u as usize]).sum(),
                        Some(w) => srcs
                            .iter()
                            .zip(w)
                            .map(|(&u, &w)| contrib[u as usize] * w)
                            .sum(),
                    };
                    let val = base + d * s;
                    err += (val - old[i]).abs();
                    *slot = val;
                }
                err
            })
            .sum();
        std::mem::swap(&mut x, &mut next);
        if delta < p.tolerance {
            break;
        }
    }
    PageRank {
        scores: x,
        iterations: it,
        delta,
        converged: delta < p.tolerance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_sum_to_one_and_follow_links() {
        // A star pointing at 0, plus a dangling node 4.
        let g = Graph::from_edges(5, vec![(1, 0, 1.0), (2, 0, 1.0), (3, 0, 1.0), (0, 1, 1.0)]);
        let pr = pagerank(&g, &PageRankParams::default());
        assert!(pr.converged);
        let sum: f64 = pr.scores.iter().sum();
        assert!((sum - 1.0).abs() < 1e-9);
        assert!(pr.scores[0] > pr.scores[1] && pr.scores[1] > pr.scores[2]);
        assert!((pr.scores[2] - pr.scores[3]).abs() < 1e-12);
    }

    #[test]
    fn two_node_cycle_is_uniform() {
        let g = Graph::from_edges(2, vec![(0, 1, 1.0), (1, 0, 1.0)]);
        let pr = pagerank(&g, &PageRankParams::default());
        assert!((pr.scores[0] - 0.5).abs() < 1e-12);
    }

    #[test]
    fn weights_shift_rank() {
        let g = Graph::from_edges(3, vec![(0, 1, 9.0), (0, 2, 1.0), (1, 0, 1.0), (2, 0, 1.0)]);
        let pr = pagerank(&g, &PageRankParams::default());
        assert!(pr.scores[1] > 2.0 * pr.scores[2]);
    }
}
