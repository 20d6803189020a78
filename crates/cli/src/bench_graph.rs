//! `rapport bench graph`: the analytics on a synthetic power-law graph (1M people, 10M
//! relationships by default) and on the real ego-Facebook graph, against python-igraph
//! (its C core) on the same graphs in the same run. igraph is installed from PyPI into a
//! venv under the system temp directory the first time.

use anyhow::{bail, Context, Result};
use rapport_graph::{betweenness, community, kcore, pagerank, paths, reach, Graph, NodeId};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(clap::Args)]
pub struct GraphBench {
    #[arg(long, default_value_t = 1_000_000)]
    nodes: usize,
    #[arg(long, default_value_t = 10_000_000)]
    edges: usize,
    /// Power-law exponent of the degree distribution.
    #[arg(long, default_value_t = 2.3)]
    gamma: f64,
    /// Sources sampled for betweenness on the synthetic graph.
    #[arg(long, default_value_t = 64)]
    samples: usize,
    /// Ego-network (depth 2) queries timed per graph.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// A real edge list to measure as well (skipped if absent).
    #[arg(long, default_value = "../shared/data/graphs/facebook_combined.txt")]
    real: PathBuf,
    /// Skip the igraph baseline.
    #[arg(long)]
    no_baseline: bool,
    #[arg(long)]
    json: bool,
}

const IGRAPH_SCRIPT: &str = include_str!("../bench/igraph_baseline.py");

pub fn run(a: GraphBench) -> Result<()> {
    let dir = tempfile::tempdir()?;
    eprintln!(
        "generating a power-law graph: {} nodes, {} edges, gamma {}",
        a.nodes, a.edges, a.gamma
    );
    let t = Instant::now();
    let edges = power_law_edges(a.nodes, a.edges, a.gamma, 42);
    let gen_s = t.elapsed().as_secs_f64();
    let synth_path = dir.path().join("synthetic.txt");
    write_edges(&synth_path, &edges)?;
    drop(edges);
    let synthetic = measure_in_child(
        "synthetic",
        &synth_path,
        a.nodes,
        Some(a.samples),
        a.queries,
    )?;
    let mut out = json!({
        "machine": machine(),
        "threads": rayon::current_num_threads(),
        "gamma": a.gamma,
        "synthetic": synthetic,
        "synthetic_generate_s": gen_s,
    });
    let mut real = None;
    if a.real.exists() {
        let text = std::fs::read_to_string(&a.real)?;
        let lines = rapport_graph::edgelist::parse(&text)?;
        let mut ids = std::collections::HashMap::new();
        let mut edges = Vec::with_capacity(lines.len());
        for l in &lines {
            let mut id = |s: &str| {
                let next = ids.len() as NodeId;
                *ids.entry(s.to_string()).or_insert(next)
            };
            let (s, t) = (id(&l.source), id(&l.target));
            edges.push((s, t, l.weight.unwrap_or(1.0)));
        }
        let n = ids.len();
        let path = dir.path().join("real.txt");
        write_edges(&path, &edges)?;
        out["real"] = measure_in_child("real", &path, n, None, a.queries)?;
        out["real"]["file"] = json!(a.real.display().to_string());
        real = Some((path, n));
    } else {
        eprintln!("skipping the real graph: {} is absent", a.real.display());
    }

    if !a.no_baseline {
        let py = crate::bench::python_venv("igraph", "igraph", "igraph==1.0.0")?;
        let script = dir.path().join("igraph_baseline.py");
        std::fs::write(&script, IGRAPH_SCRIPT)?;
        eprintln!("baseline: igraph on the synthetic graph");
        let base = igraph(
            &py,
            &script,
            &synth_path,
            a.nodes,
            &synth_path.with_extension("q"),
            false,
        )?;
        compare(&mut out["synthetic"], &base);
        out["synthetic"]["igraph"] = base;
        if let Some((path, n)) = real {
            eprintln!("baseline: igraph on the real graph");
            let base = igraph(&py, &script, &path, n, &path.with_extension("q"), true)?;
            compare(&mut out["real"], &base);
            out["real"]["igraph"] = base;
        }
    }
    if !a.json {
        eprintln!("{}", serde_json::to_string_pretty(&out)?);
    }
    println!("{out}");
    Ok(())
}

/// Ours / igraph ratios: how many times faster we are (above 1 is faster).
fn compare(ours: &mut Value, base: &Value) {
    let ratio = |a: &str, b: &str| -> Value {
        match (ours[a].as_f64(), base[b].as_f64()) {
            (Some(x), Some(y)) if x > 0.0 => json!(y / x),
            _ => Value::Null,
        }
    };
    ours["speedup_vs_igraph"] = json!({
        "pagerank": ratio("pagerank_s", "pagerank_s"),
        "pagerank_one_thread": ratio("pagerank_one_thread_s", "pagerank_s"),
        "louvain": ratio("louvain_s", "louvain_s"),
        "kcore": ratio("kcore_s", "kcore_s"),
        "ego2_p99": ratio("ego2_p99_ms", "ego2_p99_ms"),
        "betweenness_exact": ratio("betweenness_s", "betweenness_exact_s"),
    });
}

/// Runs [`measure`] in a fresh `rapport bench graph-measure` process, so its peak memory
/// is the graph's alone (read from the same file igraph reads), not the generator's.
fn measure_in_child(
    name: &str,
    edges: &Path,
    n: usize,
    samples: Option<usize>,
    queries: usize,
) -> Result<Value> {
    let exe = std::env::current_exe()?;
    let mut c = Command::new(exe);
    c.args([
        "bench",
        "graph-measure",
        "--name",
        name,
        "--nodes",
        &n.to_string(),
        "--queries",
        &queries.to_string(),
    ])
    .arg("--file")
    .arg(edges);
    if let Some(k) = samples {
        c.args(["--samples", &k.to_string()]);
    }
    let out = c.stderr(std::process::Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("measuring the {name} graph failed");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(text.lines().last().unwrap_or("{}"))?)
}

#[derive(clap::Args)]
pub struct MeasureArgs {
    #[arg(long)]
    name: String,
    #[arg(long)]
    file: PathBuf,
    #[arg(long)]
    nodes: usize,
    #[arg(long)]
    samples: Option<usize>,
    #[arg(long, default_value_t = 1000)]
    queries: usize,
}

/// `rapport bench graph-measure` (internal): loads an edge file and times each metric.
pub fn measure_file(a: MeasureArgs) -> Result<()> {
    let t = Instant::now();
    let edges = read_edges(&a.file)?;
    let load_s = t.elapsed().as_secs_f64();
    let mut v = measure(
        &a.name,
        a.nodes,
        edges,
        a.samples,
        a.queries,
        &a.file.with_extension("q"),
    )?;
    v["load_s"] = json!(load_s);
    v["peak_rss_mb"] = json!(crate::bench::peak_rss_mb("self"));
    println!("{v}");
    Ok(())
}

/// `source target` per line, as [`write_edges`] writes them.
fn read_edges(path: &Path) -> Result<Vec<(NodeId, NodeId, f64)>> {
    let bytes = std::fs::read(path)?;
    let mut out = Vec::with_capacity(bytes.len() / 14);
    for line in bytes.split(|&b| b == b'\n') {
        let mut it = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
        let (Some(a), Some(b)) = (it.next(), it.next()) else {
            continue;
        };
        let num = |f: &[u8]| -> Result<NodeId> {
            f.iter().try_fold(0u32, |acc, &c| {
                if c.is_ascii_digit() {
                    Ok(acc * 10 + (c - b'0') as u32)
                } else {
                    bail!("bad node id in {}", path.display())
                }
            })
        };
        out.push((num(a)?, num(b)?, 1.0));
    }
    Ok(out)
}

fn measure(
    name: &str,
    n: usize,
    edges: Vec<(NodeId, NodeId, f64)>,
    samples: Option<usize>,
    queries: usize,
    queries_out: &Path,
) -> Result<Value> {
    let step = |what: &str| eprintln!("[{name}] {what}…");
    step("building the graph");
    let t = Instant::now();
    let g = Graph::from_edges(n, edges);
    let build_s = t.elapsed().as_secs_f64();

    step("PageRank");
    let params = pagerank::PageRankParams::default();
    let t = Instant::now();
    let pr = pagerank::pagerank(&g, &params);
    let pagerank_s = t.elapsed().as_secs_f64();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let t = Instant::now();
    let pr1 = one.install(|| pagerank::pagerank(&g, &params));
    let pagerank_one_thread_s = t.elapsed().as_secs_f64();
    if pr1.iterations != pr.iterations {
        bail!("PageRank differs between thread counts");
    }

    step("betweenness");
    let t = Instant::now();
    let bc = betweenness::betweenness(&g, samples, 7);
    let betweenness_s = t.elapsed().as_secs_f64();

    step("communities");
    let t = Instant::now();
    let comm = community::louvain(&g, 42);
    let louvain_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let leiden = rapport_graph::leiden::leiden(&g, 42, 1.0);
    let leiden_s = t.elapsed().as_secs_f64();

    step("k-core");
    let t = Instant::now();
    let cores = kcore::core_numbers(&g);
    let kcore_s = t.elapsed().as_secs_f64();

    step("reach");
    let t = Instant::now();
    let r = reach::reach(&g);
    let reach_s = t.elapsed().as_secs_f64();

    step("ego networks");
    let picks = betweenness::sample_without_replacement(n, queries.min(n), 99);
    std::fs::write(
        queries_out,
        picks
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    )?;
    let mut lat: Vec<f64> = Vec::with_capacity(picks.len());
    let mut sizes = 0usize;
    for &v in &picks {
        let t = Instant::now();
        sizes += paths::ego(&g, v, 2, usize::MAX).len();
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];

    Ok(json!({
        "nodes": n,
        "edges": g.edge_count(),
        "adjacency_mb": g.memory() as f64 / 1048576.0,
        "build_s": build_s,
        "pagerank_s": pagerank_s,
        "pagerank_one_thread_s": pagerank_one_thread_s,
        "pagerank_iterations": pr.iterations,
        "pagerank_l1_delta": pr.delta,
        "betweenness_s": betweenness_s,
        "betweenness": bc,
        "louvain_s": louvain_s,
        "communities": comm,
        "leiden_s": leiden_s,
        "leiden": leiden,
        "leiden_over_louvain": leiden_s / louvain_s,
        "disconnected_communities": {"louvain": community::disconnected(&g, &comm.membership),
            "leiden": community::disconnected(&g, &leiden.membership)},
        "kcore_s": kcore_s,
        "max_core": cores.iter().max(),
        "reach_s": reach_s,
        "reach": r,
        "ego2_p50_ms": q(0.5),
        "ego2_p99_ms": q(0.99),
        "ego2_mean_nodes": sizes as f64 / picks.len().max(1) as f64,
    }))
}

/// Chung–Lu style directed graph with planted communities: both ends drawn with
/// probability ∝ (rank + 1)^(-1/(γ-1)), so degrees follow a power law with exponent γ;
/// each node belongs to one of n/1000 communities, and with probability `1 - mixing`
/// the target is drawn from the source's community (real social graphs cluster; a pure
/// Chung–Lu graph has almost no community structure). Node ids are shuffled so hubs
/// are spread over the id space as in real data.
pub fn power_law_edges(n: usize, m: usize, gamma: f64, seed: u64) -> Vec<(NodeId, NodeId, f64)> {
    const MIXING: f64 = 0.2;
    let alpha = 1.0 / (gamma - 1.0);
    let weight = |i: usize| ((i + 1) as f64).powf(-alpha);
    let mut cum = Vec::with_capacity(n);
    let mut acc = 0.0;
    for i in 0..n {
        acc += weight(i);
        cum.push(acc);
    }
    let groups = (n / 1000).max(1);
    let group_of = |i: usize| (mix(i as u64 ^ seed) % groups as u64) as usize;
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); groups];
    let mut local_cum: Vec<Vec<f64>> = vec![Vec::new(); groups];
    for i in 0..n {
        let g = group_of(i);
        let prev = local_cum[g].last().copied().unwrap_or(0.0);
        members[g].push(i as u32);
        local_cum[g].push(prev + weight(i));
    }
    let mut rng = SplitMix(seed);
    let mut perm: Vec<NodeId> = (0..n as NodeId).collect();
    for i in (1..n).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        perm.swap(i, j);
    }
    let unit = |rng: &mut SplitMix| (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
    // Distinct edges: draw with some overshoot, deduplicate, repeat until `m`.
    let mut keys: Vec<u64> = Vec::with_capacity(m + m / 3);
    while keys.len() < m {
        let want = (m - keys.len()) + (m - keys.len()) / 3 + 1000;
        for _ in 0..want {
            let x = unit(&mut rng) * acc;
            let s = cum.partition_point(|&c| c < x).min(n - 1);
            let t = if unit(&mut rng) < MIXING {
                let x = unit(&mut rng) * acc;
                cum.partition_point(|&c| c < x).min(n - 1)
            } else {
                let g = group_of(s);
                let lc = &local_cum[g];
                let x = unit(&mut rng) * lc[lc.len() - 1];
                members[g][lc.partition_point(|&c| c < x).min(lc.len() - 1)] as usize
            };
            if s != t {
                keys.push(((perm[s] as u64) << 32) | perm[t] as u64);
            }
        }
        keys.sort_unstable();
        keys.dedup();
    }
    for i in (1..keys.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        keys.swap(i, j);
    }
    keys.truncate(m);
    keys.into_iter()
        .map(|k| ((k >> 32) as NodeId, k as NodeId, 1.0))
        .collect()
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
}

fn write_edges(path: &Path, edges: &[(NodeId, NodeId, f64)]) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (s, t, _) in edges {
        writeln!(f, "{s} {t}")?;
    }
    f.flush()?;
    Ok(())
}

fn igraph(
    py: &Path,
    script: &Path,
    edges: &Path,
    n: usize,
    queries: &Path,
    bc: bool,
) -> Result<Value> {
    let mut c = Command::new(py);
    c.arg(script).arg(edges).arg(n.to_string()).arg(queries);
    if bc {
        c.arg("--betweenness");
    }
    let out = c.output().context("running the igraph baseline")?;
    if !out.status.success() {
        bail!(
            "igraph baseline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    json!({"cpu": cpu, "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)})
}
