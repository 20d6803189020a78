//! Sentiment throughput alone, for profiling (`perf record`); the benchmark of record
//! is `rapport bench text`. Usage: sentiment_speed [DATA_DIR] [SECONDS]
use rapport_text::Vader;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| "../shared/data/sentiment".into());
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let mut texts = Vec::new();
    for f in [
        "tweets_GroundTruth.txt",
        "movieReviewSnippets_GroundTruth.txt",
    ] {
        let bytes = std::fs::read(format!("{dir}/{f}")).expect("data file");
        for line in String::from_utf8_lossy(&bytes).lines() {
            if let Some(t) = line.splitn(3, '\t').nth(2) {
                texts.push(t.to_string());
            }
        }
    }
    let v = Vader::new();
    let t = Instant::now();
    let (mut n, mut sink) = (0usize, 0.0);
    while t.elapsed().as_secs_f64() < secs {
        for s in &texts {
            sink += v.polarity(s).compound;
        }
        n += texts.len();
    }
    std::hint::black_box(sink);
    println!("{:.0} texts/s", n as f64 / t.elapsed().as_secs_f64());
}
