//! `rapport bench kb`: knowledge-base search with N published articles (default 10,000)
//! beside M community posts (default 1,000,000: questions with their answers) — the
//! API's search, the ticket form's suggestions as a customer types, and the community
//! search — each query fetched `--runs` times over loopback. Texts are real: the
//! human-rated tweets and movie-review snippets in `../shared/data/sentiment`, mixed
//! with a shop's support vocabulary.

use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rapport_store::{Article, Post, Revision};
use serde_json::json;
use std::time::Instant;

#[derive(clap::Args)]
pub struct KbBench {
    #[arg(long, default_value_t = 10_000)]
    articles: usize,
    #[arg(long, default_value_t = 1_000_000)]
    posts: usize,
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// PostgreSQL URL; SQLite in a temporary directory when absent.
    #[arg(long, env = "RAPPORT_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// The folder of the sentiment data sets.
    #[arg(long, default_value = "../shared/data/sentiment")]
    data: std::path::PathBuf,
    #[arg(long)]
    json: bool,
}

const TOPICS: [&str; 24] = [
    "card",
    "refund",
    "parcel",
    "delivery",
    "password",
    "invoice",
    "subscription",
    "return",
    "discount",
    "gift",
    "wrap",
    "account",
    "order",
    "tracking",
    "warranty",
    "size",
    "exchange",
    "payment",
    "shipping",
    "address",
    "cancel",
    "coupon",
    "loyalty",
    "points",
];
const VERBS: [&str; 8] = [
    "Change", "Track", "Cancel", "Reset", "Update", "Claim", "Use", "Find",
];
const QUERIES: [&str; 10] = [
    "change card",
    "refund damaged item",
    "track parcel",
    "password reset",
    "gift wrap",
    "cancel subscription",
    "delivery late",
    "invoice",
    "return label",
    "loyalty points",
];

fn texts(dir: &std::path::Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in [
        "tweets_GroundTruth.txt",
        "movieReviewSnippets_GroundTruth.txt",
    ] {
        let p = dir.join(f);
        let s = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        out.extend(
            s.lines()
                .filter_map(|l| l.splitn(3, '\t').nth(2))
                .map(str::to_string),
        );
    }
    if out.is_empty() {
        bail!("no texts in {}", dir.display());
    }
    Ok(out)
}

fn words(rng: &mut StdRng, texts: &[String], n: usize) -> String {
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(&texts[rng.gen_range(0..texts.len())]);
        s.push(' ');
        s.push_str(TOPICS[rng.gen_range(0..TOPICS.len())]);
        s.push_str(". ");
    }
    s
}

pub async fn run(a: KbBench) -> Result<()> {
    let texts = texts(&a.data)?;
    let target = crate::bench::fresh_target(a.database_url.as_deref(), "kb").await?;
    let store = target.store.clone();
    let mut rng = StdRng::seed_from_u64(7);
    let now = rapport_domain::time::now_millis();
    let started = Instant::now();
    eprintln!("{} articles…", a.articles);
    for i in 0..a.articles {
        let title = format!(
            "{} your {} {}",
            VERBS[rng.gen_range(0..VERBS.len())],
            TOPICS[rng.gen_range(0..TOPICS.len())],
            TOPICS[rng.gen_range(0..TOPICS.len())]
        );
        let art = Article {
            id: 0,
            title,
            body: words(&mut rng, &texts, 12),
            category: Some(TOPICS[i % TOPICS.len()].into()),
            status: "published".into(),
            author_profile: None,
            author_staff: Some("bench".into()),
            helpful_yes: 0,
            helpful_no: 0,
            created_at: now,
            updated_at: now,
            published_at: Some(now),
        };
        let rev = Revision {
            id: 0,
            article_id: 0,
            title: art.title.clone(),
            body: art.body.clone(),
            category: art.category.clone(),
            status: "accepted".into(),
            author_profile: None,
            author_staff: Some("bench".into()),
            note: None,
            at: now,
        };
        store.add_article(art, rev, Vec::new()).await?;
    }
    eprintln!("{} posts…", a.posts);
    let post =
        |kind: &str, parent: Option<i64>, title: Option<String>, body: String, i: usize| Post {
            id: 0,
            kind: kind.into(),
            parent_id: parent,
            profile_id: Some((i % 50_000) as i64 + 1),
            staff: None,
            title,
            body,
            status: if parent.is_none() {
                "open".into()
            } else {
                String::new()
            },
            accepted_id: None,
            score: 0,
            hidden: false,
            locked: false,
            official: false,
            flag: None,
            duplicate_of: None,
            created_at: now - (a.posts - i) as i64 * 1_000,
            updated_at: now,
        };
    // A question and three answers at a time, 4,000 posts per transaction.
    let mut made = 0;
    while made < a.posts {
        let n = (a.posts - made).min(4_000) / 4;
        let qs: Vec<Post> = (0..n.max(1))
            .map(|j| {
                let t = format!(
                    "{} {} {}?",
                    texts[rng.gen_range(0..texts.len())]
                        .chars()
                        .take(40)
                        .collect::<String>(),
                    TOPICS[rng.gen_range(0..TOPICS.len())],
                    TOPICS[rng.gen_range(0..TOPICS.len())]
                );
                post(
                    "question",
                    None,
                    Some(t),
                    words(&mut rng, &texts, 2),
                    made + j,
                )
            })
            .collect();
        let ids = store.import_posts(qs).await?;
        let answers: Vec<Post> = ids
            .iter()
            .flat_map(|q| std::iter::repeat_n(*q, 3))
            .enumerate()
            .map(|(j, q)| {
                post(
                    "answer",
                    Some(q),
                    None,
                    words(&mut rng, &texts, 2),
                    made + j,
                )
            })
            .collect();
        made += ids.len() + answers.len();
        store.import_posts(answers).await?;
        if made % 200_000 < 4_000 {
            eprintln!("  {made} posts ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    store.refresh_statistics().await?;
    eprintln!("loaded in {:.0} s", started.elapsed().as_secs_f64());
    let admin = rapport_app::keys::create(
        &store,
        rapport_domain::apikey::Scope::Admin,
        "bench",
        &Default::default(),
    )
    .await?
    .secret;
    let (url, client) = crate::bench::serve_here(&store).await?;
    let mut out = Vec::new();
    for (what, path, api) in [
        ("kb search", "/api/kb/search?q=", true),
        ("suggest while typing", "/help/suggest?q=", false),
        ("community search", "/api/community/search?q=", true),
    ] {
        let mut ms = Vec::with_capacity(a.runs * QUERIES.len());
        for _ in 0..a.runs {
            for q in QUERIES {
                // Suggestions come while the last word is still being typed.
                let q = if api {
                    q.to_string()
                } else {
                    q[..q.len() - 2].to_string()
                };
                let req = client.get(format!("{url}{path}{}", q.replace(' ', "%20")));
                let req = if api { req.bearer_auth(&admin) } else { req };
                let t = Instant::now();
                let r = req.send().await?;
                let status = r.status();
                let body = r.bytes().await?;
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
                if !status.is_success() {
                    bail!("{path}{q} answered {status}");
                }
                if body.len() < 20 {
                    bail!("{path}{q} found nothing");
                }
            }
        }
        ms.sort_by(f64::total_cmp);
        let pct = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
        let (p50, p95, p99) = (pct(0.5), pct(0.95), pct(0.99));
        eprintln!("{what:<24} p50 {p50:6.1} ms  p95 {p95:6.1} ms  p99 {p99:6.1} ms");
        out.push(json!({"query": what, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}));
    }
    if a.json {
        println!(
            "{}",
            json!({"store": target.kind, "articles": a.articles, "posts": a.posts, "searches": out})
        );
    }
    target.cleanup().await;
    Ok(())
}
