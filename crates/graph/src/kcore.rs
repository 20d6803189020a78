//! Core numbers (k-core decomposition) of the undirected view, ignoring weights, by the
//! O(m) bucket algorithm of Batagelj and Zaversnik (2003).

use crate::csr::{Graph, NodeId};

pub fn core_numbers(g: &Graph) -> Vec<u32> {
    let n = g.node_count();
    let mut deg: Vec<u32> = (0..n as NodeId).map(|v| g.sym.degree(v) as u32).collect();
    let max = deg.iter().copied().max().unwrap_or(0) as usize;
    let mut bin = vec![0usize; max + 2];
    for &d in &deg {
        bin[d as usize] += 1;
    }
    let mut start = 0;
    for b in bin.iter_mut() {
        let c = *b;
        *b = start;
        start += c;
    }
    let mut pos = vec![0usize; n];
    let mut vert = vec![0 as NodeId; n];
    for v in 0..n {
        let d = deg[v] as usize;
        pos[v] = bin[d];
        vert[pos[v]] = v as NodeId;
        bin[d] += 1;
    }
    for d in (1..=max + 1).rev() {
        bin[d] = bin[d - 1];
    }
    bin[0] = 0;
    for i in 0..n {
        let v = vert[i];
        for &u in g.sym.neighbours(v) {
            let u = u as usize;
            if deg[u] > deg[v as usize] {
                let du = deg[u] as usize;
                let pu = pos[u];
                let pw = bin[du];
                let w = vert[pw];
                if u as NodeId != w {
                    pos[u] = pw;
                    vert[pu] = w;
                    pos[w as usize] = pu;
                    vert[pw] = u as NodeId;
                }
                bin[du] += 1;
                deg[u] -= 1;
            }
        }
    }
    deg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triangle_with_a_tail() {
        let pairs = [(0u32, 1u32), (1, 2), (0, 2), (2, 3)];
        let edges = pairs
            .iter()
            .flat_map(|&(a, b)| [(a, b, 1.0), (b, a, 1.0)])
            .collect();
        let g = Graph::from_edges(5, edges);
        assert_eq!(core_numbers(&g), vec![2, 2, 2, 1, 0]);
    }
}
