//! Our sentiment against the reference `vaderSentiment` 3.3.2 (PyPI, in a venv at test
//! time) on every human-rated text shipped in `../shared/data/sentiment` (4,200 tweets
//! and 10,605 movie-review snippets) plus social-media edge cases: compound scores must
//! agree within 0.01 (VADER rounds to 4 places; we compare rounded values).

use rapport_text::Vader;
use std::path::PathBuf;
use std::process::Command;

fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vader-venv");
    let py = venv.join("bin/python");
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    if !(py.exists() && ok(Command::new(&py).args(["-c", "import vaderSentiment"]))) {
        assert!(ok(Command::new("python3").args(["-m", "venv"]).arg(&venv)));
        assert!(
            ok(Command::new(&py).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "vaderSentiment==3.3.2"
            ])),
            "pip install vaderSentiment failed (PyPI must be reachable)"
        );
    }
    py
}

const EDGE_CASES: &[&str] = &[
    "I LOVE this!!!",
    "I love this",
    "This is not bad at all",
    "The food was good but the service was horrible",
    "Worst. Purchase. Ever. 😡😡",
    "meh... it's ok I guess :/",
    "sooo good 😍😍😍",
    "I can't say I didn't enjoy it",
    "not very good, kind of slow, sort of broken",
    "This is the shit!",
    "yeah right, great service",
    "Without a doubt the best",
    "Never so happy in my life",
    "the least helpful support ever",
    "at least it arrived",
    "no problems at all",
    "No, nothing good about it",
    "WTF is this garbage?!?!",
    "Support was AMAZING but shipping was SLOW",
    "lol 😂 this is hilarious",
    "",
    "   ",
    "!!!",
    "kind of nice",
    "It's not that I hate it, but I don't love it either",
];

fn corpus() -> Vec<String> {
    let mut texts: Vec<String> = EDGE_CASES.iter().map(|s| s.to_string()).collect();
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/sentiment"
    );
    for f in [
        "tweets_GroundTruth.txt",
        "movieReviewSnippets_GroundTruth.txt",
    ] {
        match std::fs::read(format!("{dir}/{f}")) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                for line in text.lines() {
                    if let Some(t) = line.splitn(3, '\t').nth(2) {
                        texts.push(t.trim_end_matches('\r').to_string());
                    }
                }
            }
            Err(_) => eprintln!("skipping {f}: {dir} is absent"),
        }
    }
    texts
}

#[test]
fn compound_matches_vader_sentiment() {
    let texts = corpus();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join("vader-corpus.txt");
    std::fs::write(&file, texts.join("\n") + "\n").unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/vader_scores.py"
    );
    let out = Command::new(python())
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Vec<f64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(reference.len(), texts.len());
    let v = Vader::new();
    let mut worst = (0.0f64, String::new());
    let mut off = 0;
    for (t, r) in texts.iter().zip(&reference) {
        let ours = v.polarity(t).compound;
        let d = (ours - r).abs();
        if d > 0.01 {
            off += 1;
        }
        if d > worst.0 {
            worst = (d, t.clone());
        }
    }
    eprintln!(
        "{} texts, {} beyond 0.01, largest difference {:.2e} on {:?}",
        texts.len(),
        off,
        worst.0,
        worst.1
    );
    assert!(texts.len() >= 1000 || texts.len() == EDGE_CASES.len());
    assert_eq!(off, 0, "largest difference {} on {:?}", worst.0, worst.1);
}
