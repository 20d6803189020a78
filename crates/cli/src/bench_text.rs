//! `rapport bench text`: sentiment throughput on one core against the `vaderSentiment`
//! Python package on the same texts in the same run, and accuracy / macro-F1 of both on
//! the human-rated sets in `../shared/data/sentiment`.

use anyhow::{bail, Context, Result};
use rapport_text::{sentiment, Analyzer, Vader};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(clap::Args)]
pub struct TextBench {
    /// Folder of `id<TAB>rating<TAB>text` files rated in [-4, 4].
    #[arg(long, default_value = "../shared/data/sentiment")]
    data: PathBuf,
    /// Passes over the corpus for the Python baseline (ours runs for at least 2 s).
    #[arg(long, default_value_t = 1)]
    baseline_rounds: usize,
    #[arg(long)]
    no_baseline: bool,
    #[arg(long)]
    json: bool,
}

const SCRIPT: &str = include_str!("../bench/vader_baseline.py");

struct Rated {
    set: &'static str,
    rating: f64,
    text: String,
}

fn load(dir: &Path) -> Result<Vec<Rated>> {
    let mut out = Vec::new();
    for (set, file) in [
        ("tweets", "tweets_GroundTruth.txt"),
        ("movie_reviews", "movieReviewSnippets_GroundTruth.txt"),
    ] {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        for line in String::from_utf8_lossy(&bytes).lines() {
            let mut parts = line.splitn(3, '\t');
            let (Some(_), Some(r), Some(t)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if let Ok(rating) = r.trim().parse() {
                out.push(Rated {
                    set,
                    rating,
                    text: t.trim_end_matches('\r').to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// Human label from the mean rating: positive above 0.5, negative below -0.5.
fn truth(r: f64) -> usize {
    if r > 0.5 {
        0
    } else if r < -0.5 {
        2
    } else {
        1
    }
}

fn predicted(c: f64) -> usize {
    match sentiment::label(c) {
        "positive" => 0,
        "negative" => 2,
        _ => 1,
    }
}

/// Accuracy and macro-F1 over positive / neutral / negative.
fn scores(gold: &[usize], pred: &[usize]) -> Value {
    let mut m = [[0usize; 3]; 3];
    for (g, p) in gold.iter().zip(pred) {
        m[*g][*p] += 1;
    }
    let correct: usize = (0..3).map(|k| m[k][k]).sum();
    let mut f1s = Vec::new();
    for (k, row) in m.iter().enumerate() {
        let tp = row[k] as f64;
        let fp: f64 = (0..3).filter(|&g| g != k).map(|g| m[g][k] as f64).sum();
        let fnn: f64 = (0..3).filter(|&p| p != k).map(|p| row[p] as f64).sum();
        let prec = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
        let rec = if tp + fnn > 0.0 { tp / (tp + fnn) } else { 0.0 };
        f1s.push(if prec + rec > 0.0 {
            2.0 * prec * rec / (prec + rec)
        } else {
            0.0
        });
    }
    json!({"accuracy": correct as f64 / gold.len().max(1) as f64, "macro_f1": f1s.iter().sum::<f64>() / 3.0, "n": gold.len()})
}

pub fn run(a: TextBench) -> Result<()> {
    let rated = load(&a.data)?;
    let texts: Vec<&str> = rated.iter().map(|r| r.text.as_str()).collect();
    eprintln!("{} rated texts from {}", texts.len(), a.data.display());
    let vader = Vader::new();
    let analyzer = Analyzer::default();
    // One core: this thread only.
    let time = |f: &dyn Fn(&str) -> f64| -> (f64, usize) {
        let t = Instant::now();
        let mut n = 0usize;
        let mut sink = 0.0;
        while t.elapsed().as_secs_f64() < 2.0 {
            for s in &texts {
                sink += f(s);
            }
            n += texts.len();
        }
        std::hint::black_box(sink);
        (n as f64 / t.elapsed().as_secs_f64(), n)
    };
    let (sentiment_tps, _) = time(&|s| vader.polarity(s).compound);
    let (analyse_tps, _) = time(&|s| analyzer.analyse(s).compound);
    let ours: Vec<f64> = texts.iter().map(|s| vader.polarity(s).compound).collect();
    let mut out = json!({
        "texts": texts.len(),
        "sentiment_texts_per_s": sentiment_tps,
        "analyse_texts_per_s": analyse_tps,
        "threads": 1,
    });
    let by_set = |compounds: &[f64]| -> Value {
        let mut v = json!({});
        for set in ["tweets", "movie_reviews", "all"] {
            let idx: Vec<usize> = (0..rated.len())
                .filter(|&i| set == "all" || rated[i].set == set)
                .collect();
            let gold: Vec<usize> = idx.iter().map(|&i| truth(rated[i].rating)).collect();
            let pred: Vec<usize> = idx.iter().map(|&i| predicted(compounds[i])).collect();
            v[set] = scores(&gold, &pred);
        }
        v
    };
    out["ours"] = by_set(&ours);
    if !a.no_baseline {
        let py = crate::bench::python_venv("vader", "vaderSentiment", "vaderSentiment==3.3.2")?;
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("texts.txt");
        std::fs::write(&file, texts.join("\n") + "\n")?;
        let script = dir.path().join("vader_baseline.py");
        std::fs::write(&script, SCRIPT)?;
        eprintln!("baseline: vaderSentiment on the same texts");
        let o = Command::new(py)
            .arg(&script)
            .arg(&file)
            .arg(a.baseline_rounds.to_string())
            .output()?;
        if !o.status.success() {
            bail!(
                "vaderSentiment baseline failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let base: Value = serde_json::from_slice(&o.stdout)?;
        let theirs: Vec<f64> = base["compounds"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        let worst = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let tps = base["texts_per_s"].as_f64().unwrap_or(0.0);
        out["vader_sentiment"] = json!({"texts_per_s": tps, "scores": by_set(&theirs)});
        out["speedup_sentiment"] = json!(sentiment_tps / tps);
        out["speedup_analyse"] = json!(analyse_tps / tps);
        out["max_compound_difference"] = json!(worst);
    }
    if !a.json {
        eprintln!("{}", serde_json::to_string_pretty(&out)?);
    }
    println!("{out}");
    Ok(())
}
