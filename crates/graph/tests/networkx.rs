//! Our metrics against networkx, installed from PyPI into a venv at test time: PageRank
//! and exact betweenness to 1e-6, core numbers exactly, our modularity formula exactly,
//! and Louvain's modularity within 0.02 of networkx's Louvain on the same graph.

use rapport_graph::{betweenness, community, kcore, pagerank, Graph, NodeId};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("graph-venv");
        let py = venv.join("bin/python");
        let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
        let ready = py.exists() && ok(Command::new(&py).args(["-c", "import networkx, scipy"]));
        if !ready {
            assert!(
                ok(Command::new("python3").args(["-m", "venv"]).arg(&venv)),
                "python3 -m venv failed"
            );
            assert!(
                ok(Command::new(&py).args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "networkx==3.6.1",
                    "scipy==1.17.1",
                    "numpy==2.4.6",
                ])),
                "pip install networkx failed (PyPI must be reachable)"
            );
        }
        py
    })
    .clone()
}

struct Reference {
    pagerank: Vec<f64>,
    betweenness: Option<Vec<f64>>,
    core: Vec<u32>,
    louvain_modularity: f64,
    modularity_of_ours: f64,
}

fn check(name: &str, n: usize, edges: Vec<(NodeId, NodeId, f64)>, with_betweenness: bool) {
    let dir = tempfile_dir(name);
    let edge_path = dir.join("edges.txt");
    let mut f = std::fs::File::create(&edge_path).unwrap();
    let g = Graph::from_edges(n, edges);
    // Hand networkx the graph after our own summing of parallel edges.
    for u in 0..n as NodeId {
        for (i, &v) in g.out.neighbours(u).iter().enumerate() {
            let w = g.out.weights_of(u).map_or(1.0, |w| w[i]);
            writeln!(f, "{u} {v} {w}").unwrap();
        }
    }
    drop(f);
    let ours_c = community::louvain(&g, 42);
    let part_path = dir.join("partition.txt");
    std::fs::write(
        &part_path,
        ours_c
            .membership
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let r = reference(&edge_path, n, &part_path, with_betweenness);

    let pr = pagerank::pagerank(
        &g,
        &pagerank::PageRankParams {
            tolerance: 1e-12,
            ..Default::default()
        },
    );
    assert!(pr.converged, "{name}: pagerank did not converge");
    let worst = max_diff(&pr.scores, &r.pagerank);
    assert!(worst < 1e-6, "{name}: pagerank differs by {worst}");

    if let Some(bc_ref) = &r.betweenness {
        let bc = betweenness::betweenness(&g, None, 0);
        let worst = max_diff(&bc.scores, bc_ref);
        assert!(worst < 1e-6, "{name}: betweenness differs by {worst}");
    }
    assert_eq!(kcore::core_numbers(&g), r.core, "{name}: core numbers");
    let ours_q = community::modularity(&g, &ours_c.membership);
    assert!(
        (ours_q - r.modularity_of_ours).abs() < 1e-9,
        "{name}: modularity formula {ours_q} vs networkx {}",
        r.modularity_of_ours
    );
    assert!(
        ours_c.modularity > r.louvain_modularity - 0.02,
        "{name}: louvain modularity {} vs networkx {}",
        ours_c.modularity,
        r.louvain_modularity
    );
    eprintln!(
        "{name}: n={n} m={} pagerank Δ={:.1e} modularity ours {:.4} networkx {:.4}",
        g.edge_count(),
        max_diff(&pr.scores, &r.pagerank),
        ours_c.modularity,
        r.louvain_modularity
    );
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn tempfile_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("nx-{name}"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn reference(edges: &Path, n: usize, partition: &Path, betweenness: bool) -> Reference {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/networkx_metrics.py"
    );
    let mut c = Command::new(python());
    c.arg(script).arg(edges).arg(n.to_string()).arg(partition);
    if betweenness {
        c.arg("--betweenness");
    }
    let out = c.output().expect("run python");
    assert!(
        out.status.success(),
        "networkx script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let floats = |k: &str| -> Vec<f64> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    Reference {
        pagerank: floats("pagerank"),
        betweenness: betweenness.then(|| floats("betweenness")),
        core: v["core"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect(),
        louvain_modularity: v["louvain_modularity"].as_f64().unwrap(),
        modularity_of_ours: v["modularity_of_ours"].as_f64().unwrap(),
    }
}

/// Deterministic pseudo-random edges (splitmix64).
fn random_edges(n: u32, m: usize, weighted: bool, seed: u64) -> Vec<(NodeId, NodeId, f64)> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..m)
        .map(|_| {
            // Skewed sources and targets give hubs and dangling nodes.
            let a = ((next() % n as u64) * (next() % n as u64) / n as u64) as NodeId;
            let b = (next() % n as u64) as NodeId;
            let w = if weighted {
                1.0 + (next() % 9) as f64
            } else {
                1.0
            };
            (a, b, w)
        })
        .collect()
}

fn facebook() -> Option<Vec<(NodeId, NodeId, f64)>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/graphs/facebook_combined.txt"
    );
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("skipping the facebook graph: {path} is absent");
        return None;
    };
    let lines = rapport_graph::edgelist::parse(&text).unwrap();
    Some(
        lines
            .into_iter()
            .map(|e| {
                (
                    e.source.parse().unwrap(),
                    e.target.parse().unwrap(),
                    e.weight.unwrap_or(1.0),
                )
            })
            .collect(),
    )
}

#[test]
fn random_directed_graph_matches_networkx() {
    check("random", 300, random_edges(300, 1500, false, 1), true);
}

#[test]
fn weighted_graph_with_dangling_nodes_matches_networkx() {
    check("weighted", 400, random_edges(400, 900, true, 2), true);
}

#[test]
fn facebook_graph_matches_networkx() {
    let Some(edges) = facebook() else { return };
    // Betweenness in networkx is slow in Python: check it on an induced subgraph.
    let small: Vec<_> = edges
        .iter()
        .copied()
        .filter(|&(a, b, _)| a < 700 && b < 700)
        .collect();
    check("facebook-700", 700, small, true);
    check("facebook", 4039, edges, false);
}

/// Normalised mutual information (arithmetic mean of the entropies, as the reference
/// script and sklearn compute it).
fn nmi(a: &[u32], b: &[u32]) -> f64 {
    use std::collections::HashMap;
    let n = a.len() as f64;
    let count = |xs: &mut dyn Iterator<Item = (u32, u32)>| {
        let mut m: HashMap<(u32, u32), f64> = HashMap::new();
        for x in xs {
            *m.entry(x).or_default() += 1.0;
        }
        m
    };
    let ca = count(&mut a.iter().map(|&x| (x, 0)));
    let cb = count(&mut b.iter().map(|&y| (0, y)));
    let cab = count(&mut a.iter().copied().zip(b.iter().copied()));
    let h =
        |c: &HashMap<(u32, u32), f64>| -> f64 { c.values().map(|v| -(v / n) * (v / n).ln()).sum() };
    let mi: f64 = cab
        .iter()
        .map(|(&(x, y), v)| v / n * (v * n / (ca[&(x, 0)] * cb[&(0, y)])).ln())
        .sum();
    let (ha, hb) = (h(&ca), h(&cb));
    if ha == 0.0 && hb == 0.0 {
        1.0
    } else {
        mi / ((ha + hb) / 2.0)
    }
}

/// Leiden against the labels of real and planted-partition networks (Zachary's karate
/// club, weighted and not; LFR benchmark graphs), beside our Louvain and networkx's
/// Louvain, each averaged over 20 seeds: Leiden's modularity at or above networkx's
/// average, its NMI too (but on the weighted karate club, see below), every Leiden
/// community connected.
#[test]
fn leiden_on_labelled_networks_matches_or_beats_networkx_louvain() {
    let dir = tempfile_dir("labelled");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/labelled_networks.py"
    );
    let out = Command::new(python())
        .arg(script)
        .arg(&dir)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "labelled networks: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let name = r["name"].as_str().unwrap();
        let n = r["n"].as_u64().unwrap() as usize;
        let edges: Vec<(NodeId, NodeId, f64)> =
            std::fs::read_to_string(dir.join(format!("{name}.edges")))
                .unwrap()
                .lines()
                .flat_map(|l| {
                    let p: Vec<&str> = l.split(' ').collect();
                    let (a, b) = (p[0].parse().unwrap(), p[1].parse().unwrap());
                    let w: f64 = p[2].parse().unwrap();
                    [(a, b, w), (b, a, w)]
                })
                .collect();
        let labels_text = std::fs::read_to_string(dir.join(format!("{name}.labels"))).unwrap();
        let mut names = std::collections::HashMap::new();
        let labels: Vec<u32> = labels_text
            .lines()
            .map(|l| {
                let next = names.len() as u32;
                *names.entry(l.to_string()).or_insert(next)
            })
            .collect();
        let g = Graph::from_edges(n, edges);
        let (mut leiden, mut louvain) = ((0.0, 0.0), (0.0, 0.0));
        let mut louvain_split = 0;
        for seed in 0..20 {
            let c = rapport_graph::leiden::leiden(&g, seed, 1.0);
            assert_eq!(
                community::disconnected(&g, &c.membership),
                0,
                "{name}: seed {seed}"
            );
            leiden.0 += nmi(&labels, &c.membership) / 20.0;
            leiden.1 += c.modularity / 20.0;
            let c = community::louvain(&g, seed);
            louvain_split += community::disconnected(&g, &c.membership);
            louvain.0 += nmi(&labels, &c.membership) / 20.0;
            louvain.1 += c.modularity / 20.0;
        }
        let (nx_nmi, nx_q) = (
            r["nx_nmi"].as_f64().unwrap(),
            r["nx_modularity"].as_f64().unwrap(),
        );
        eprintln!(
            "{name} (n={n}, m={}): NMI / modularity — leiden {:.4} / {:.4}, our louvain {:.4} / {:.4}, networkx louvain {nx_nmi:.4} / {nx_q:.4}; our louvain's disconnected communities over 20 seeds: {louvain_split}",
            r["m"], leiden.0, leiden.1, louvain.0, louvain.1
        );
        // On the weighted karate club Leiden finds the most modular split (0.4449) on
        // every seed; that split sits further from the two factions (NMI 0.588) than
        // some less modular ones networkx's average includes. The NMI is reported
        // there, and held on the other networks.
        if name != "karate" {
            assert!(
                leiden.0 >= nx_nmi - 1e-9,
                "{name}: NMI {} < networkx {nx_nmi}",
                leiden.0
            );
        }
        assert!(
            leiden.1 >= nx_q - 1e-9,
            "{name}: modularity {} < networkx {nx_q}",
            leiden.1
        );
    }
}
