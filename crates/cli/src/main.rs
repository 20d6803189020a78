//! `rapport`: the one binary. `serve` runs API, UI and workers; the other commands
//! manage keys, import/export data, load the demo set and run benchmarks.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rapport_domain::apikey::Scope;
use rapport_store::DynStore;
use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

mod bench;
mod bench_campaign;
mod bench_chain;
mod bench_crash;
mod bench_delivery;
mod bench_email;
mod bench_graph;
mod bench_kb;
mod bench_loyalty;
mod bench_privacy;
mod bench_realtime;
mod bench_segments;
mod bench_support;
mod bench_text;
mod bench_tracking;
mod bench_ui;
mod chain;
mod email;
mod loyalty;

#[derive(Parser)]
#[command(
    name = "rapport",
    version,
    about = "Self-hosted social CRM: one profile per person across e-mail, social and wallets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Directory of the embedded SQLite database.
    #[arg(
        long,
        env = "RAPPORT_DATA_DIR",
        default_value = "./rapport-data",
        global = true
    )]
    data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL instead of SQLite (or `sqlite:///path/file.db`).
    #[arg(
        long,
        env = "RAPPORT_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    database_url: Option<String>,
}

impl StoreArgs {
    pub async fn open(&self) -> Result<DynStore> {
        rapport_store::open(self.database_url.as_deref(), &self.data_dir)
            .await
            .with_context(|| format!("opening the database ({})", self.describe()))
    }

    fn describe(&self) -> String {
        match &self.database_url {
            Some(u) => rapport_store::redact(u),
            None => format!("sqlite: {}", self.data_dir.join("rapport.db").display()),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, UI and background workers.
    Serve {
        #[command(flatten)]
        store: StoreArgs,
        /// Address to listen on.
        #[arg(long, env = "RAPPORT_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Load the demo data set first if the database has no events.
        #[arg(long)]
        demo: bool,
        #[command(flatten)]
        workers: WorkerArgs,
    },
    /// The relationship graph: import edge lists, recompute metrics, export.
    Graph {
        #[command(subcommand)]
        command: GraphCommand,
    },
    /// Load the demo data set (10,000 people, ~300,000 events over a year).
    Demo {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, default_value_t = 10_000)]
        people: usize,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Import profiles (CSV) or events (JSON Lines, one Segment message per line).
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// A .csv or .jsonl file.
        file: PathBuf,
        /// CSV column mapping: target=Column,… (targets: user_id, anonymous_id, email,
        /// phone, wallet, social:NETWORK, external:TYPE, traits.NAME).
        #[arg(long)]
        map: Option<String>,
        /// csv or jsonl (default: from the file extension).
        #[arg(long)]
        format: Option<String>,
    },
    /// Export profiles or events as JSON Lines.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// profiles or events
        #[arg(long, default_value = "profiles")]
        what: String,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Text analytics: `analyse` reads one text per line on stdin (or the arguments) and
    /// writes one JSON object per line.
    Text {
        #[command(subcommand)]
        command: TextCommand,
    },
    /// E-mail: sending domains (DKIM), templates, sends, messages, suppressions.
    Email {
        #[command(subcommand)]
        command: email::EmailCommand,
    },
    /// Staff accounts of the web app.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// On-chain: follow EVM chains and token contracts, sync now, list.
    Chain {
        #[command(subcommand)]
        command: chain::ChainCommand,
    },
    /// Token rewards: send (and wait), list, retry.
    Rewards {
        #[command(subcommand)]
        command: chain::RewardsCommand,
    },
    /// Loyalty points: a person's points, adjustments, expiry now, the ledger as CSV.
    Loyalty {
        #[command(subcommand)]
        command: loyalty::LoyaltyCommand,
    },
    /// Benchmarks; `--json` prints one JSON object on the last line.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

/// The background workers `serve` runs.
#[derive(clap::Args)]
struct WorkerArgs {
    /// Minutes between graph recomputations while relationships change (0: never).
    #[arg(long, env = "RAPPORT_GRAPH_EVERY_MINUTES", default_value_t = 15)]
    graph_every_minutes: u64,
    /// Infer relationships from events in this process (off: another process does).
    #[arg(long, env = "RAPPORT_GRAPH_INFERENCE", default_value_t = true, action = clap::ArgAction::Set)]
    graph_inference: bool,
    /// Analyse the text of events in this process (off: another process does).
    #[arg(long, env = "RAPPORT_TEXT_ANALYSIS", default_value_t = true, action = clap::ArgAction::Set)]
    text_analysis: bool,
    /// Keep segment membership current as events arrive, in this process.
    #[arg(long, env = "RAPPORT_SEGMENTS", default_value_t = true, action = clap::ArgAction::Set)]
    segments: bool,
    /// Copy event numbers into the table segment sums read, in this process (SQLite;
    /// off: another process does; segments stay exact either way, only slower).
    #[arg(long, env = "RAPPORT_EVENT_NUMBERS", default_value_t = true, action = clap::ArgAction::Set)]
    event_numbers: bool,
    /// Minutes between full segment refreshes (time windows move without events).
    #[arg(long, env = "RAPPORT_SEGMENTS_EVERY_MINUTES", default_value_t = 15)]
    segments_every_minutes: u64,
    /// People the real-time engine holds in memory (a few KB each); after a start it
    /// reads the most recently active ahead, up to nine tenths of this.
    #[arg(long, env = "RAPPORT_REALTIME_PEOPLE", default_value_t = rapport_app::realtime::DEFAULT_CAPACITY)]
    realtime_people: usize,
    /// The hot wallet token rewards are paid from: `file:/path` (the file holds the hex
    /// private key) or `env:NAME`. Never given inline, never logged.
    #[arg(long, env = "RAPPORT_HOT_WALLET_KEY", hide_env_values = true)]
    hot_wallet_key: Option<String>,
    /// The SMTP relay e-mail goes out through: `smtp://[user:password@]host:port`
    /// (STARTTLS when offered; `?tls=required`), or `smtps://…`. Replaces the stored
    /// relay; the password is never shown or logged.
    #[arg(long, env = "RAPPORT_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// The public base URL of this server, for e-mail tracking and unsubscribe links
    /// (default: http:// and the listen address, unless set in the e-mail settings).
    #[arg(long, env = "RAPPORT_PUBLIC_URL")]
    public_url: Option<String>,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a staff account (password hashed with Argon2).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        email: String,
        /// At least 10 characters.
        #[arg(long, env = "RAPPORT_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// admin, marketer, agent, viewer or insight (aggregate audience insight only).
        #[arg(long)]
        role: String,
    },
    /// List staff accounts.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum TextCommand {
    /// Sentiment, label, language, intents and entities of each text.
    Analyse {
        /// Texts to analyse; without any, one text per line from standard input.
        texts: Vec<String>,
        /// Product catalogue: one product name per line.
        #[arg(long)]
        products: Option<PathBuf>,
        /// Extra lexicon terms: `word<TAB>valence` per line (valence about -4..4).
        #[arg(long)]
        lexicon: Option<PathBuf>,
    },
    /// Terms rising this week against the four weeks before (analysed texts in the
    /// database), one JSON object per line, best first.
    Trends {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, default_value_t = 3)]
        min_texts: usize,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Topics people write about (groups of terms used together) over the last days,
    /// with text counts, mean sentiment and examples; one JSON object per line.
    Topics {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, default_value_t = 30)]
        days: i64,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum GraphCommand {
    /// Import an edge list: `source target [weight]` per line; ends are identifiers
    /// (bare = user id, or email:…, wallet:…, social:network:handle); unknown ones
    /// become profiles.
    ImportEdges {
        #[command(flatten)]
        store: StoreArgs,
        file: PathBuf,
        /// Relationship kind of every edge.
        #[arg(long, default_value = "knows")]
        kind: String,
    },
    /// Compute every network metric and store it as profile scores.
    Recompute {
        #[command(flatten)]
        store: StoreArgs,
        /// How communities are found: louvain or leiden (default: as the latest run).
        #[arg(long)]
        communities: Option<String>,
        /// Resolution γ of the community method (1: modularity).
        #[arg(long)]
        resolution: Option<f64>,
    },
    /// Export the graph: GraphML with every metric, or CSV (node table; `--edges` for
    /// the edge table).
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// graphml or csv
        #[arg(long, default_value = "graphml")]
        format: String,
        /// With csv: the edge table instead of the node table.
        #[arg(long)]
        edges: bool,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it alone on stdout.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// write (ingest only), admin (everything) or insight (aggregate audience
        /// insight only, for partners)
        #[arg(long)]
        scope: String,
        #[arg(long, default_value = "")]
        label: String,
        /// A browser key (public, in web pages): held to its origins, rate-limited
        /// per visitor, bots dropped. Without it the key is a server key (a secret).
        #[arg(long)]
        browser: bool,
        /// An origin the browser key may be used from (`https://shop.example`);
        /// repeat for several. None: any origin.
        #[arg(long = "origin")]
        origins: Vec<String>,
    },
    /// List keys (prefixes only).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key by id.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        id: i64,
    },
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RAPPORT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("RAPPORT_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!("{what} {{bar:40}} {{pos}}/{{len}} ({{eta}})"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

pub(crate) async fn load_demo(store: &DynStore, people: usize) -> Result<()> {
    let pb = bar(people as u64, "demo people");
    let size = rapport_app::demo::DemoSize {
        people,
        ..Default::default()
    };
    let l = rapport_app::demo::load_all(store, size, &|n| pb.set_position(n as u64)).await?;
    pb.finish_and_clear();
    let (o, g, story) = (&l.ingest, &l.graph, &l.story);
    eprintln!(
        "demo loaded: {} events, {} profiles created, {} merges, {} conflicts held for review",
        o.accepted, o.profiles_created, o.merges, o.conflicts
    );
    eprintln!(
        "demo graph: {} people with relationships, {} relationships, {} communities",
        g["nodes"], g["edges"], g["communities"]["count"]
    );
    eprintln!(
        "demo story: {} segments, {} micro-segments, {} scores computed, {} offers, {} rules, {} e-mail templates, {} tickets, {} community posts and articles",
        story.segments, story.micro_segments, story.scores, story.offers, story.rules, story.templates, story.tickets, story.community
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Appends first-start credentials to `first-start-credentials.txt` in `dir` (created
/// with mode 0600 on Unix) and returns its path.
fn write_credentials(dir: &std::path::Path, lines: &[String]) -> Result<PathBuf> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("first-start-credentials.txt");
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    for l in lines {
        writeln!(f, "{l}")?;
    }
    Ok(path)
}

async fn serve(store_args: StoreArgs, listen: SocketAddr, demo: bool, w: WorkerArgs) -> Result<()> {
    let store = store_args.open().await?;
    // First-start credentials are written once to a file only the owner can read, in
    // the data directory, and shown on the terminal when there is one: stdout is where
    // logs go under systemd or docker, and secrets never reach logs.
    let mut first = Vec::new();
    if store.api_keys().await?.is_empty() {
        let admin =
            rapport_app::keys::create(&store, Scope::Admin, "first start", &Default::default())
                .await?;
        let write =
            rapport_app::keys::create(&store, Scope::Write, "first start", &Default::default())
                .await?;
        first.push(format!("admin key: {}", admin.secret));
        first.push(format!(
            "write key: {} (a server key: keep it secret; for web pages create a browser key)",
            write.secret
        ));
    }
    if store.users().await?.is_empty() {
        use rand::Rng;
        let password: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(20)
            .map(char::from)
            .collect();
        let u =
            rapport_app::users::create(&store, "admin@rapport.local", &password, "admin").await?;
        first.push(format!(
            "staff sign-in (web app at /login): {} / {password}",
            u.email
        ));
    }
    if !first.is_empty() {
        let file = write_credentials(&store_args.data_dir, &first)?;
        println!("First start: credentials written to {} (readable by you only; keep them, then delete the file).", file.display());
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            for line in &first {
                println!("  {line}");
            }
        }
        println!("More keys: rapport keys create --scope write|admin|insight [--browser]; more staff: rapport users create");
    }
    if demo {
        if store.stats().await?.events == 0 {
            load_demo(&store, 10_000).await?;
        } else {
            println!("--demo: this database already has data, so the demo is not loaded");
        }
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    println!(
        "Rapport is listening on http://{addr} ({})",
        store_args.describe()
    );
    let _ = std::io::stdout().flush();
    let (state, writer) =
        rapport_http::AppState::with_workers(store, w.graph_inference, w.text_analysis);
    if let Some(spec) = &w.hot_wallet_key {
        let wallet = rapport_chain::wallet::HotWallet::load(spec)?;
        println!("Token rewards are paid from {}", wallet.address());
        state.rewards.set_hot_wallet(Some(wallet));
    }
    state
        .email
        .start(
            w.smtp_url.as_deref(),
            w.public_url.as_deref(),
            &format!("http://{addr}"),
        )
        .await
        .map_err(|e| anyhow::anyhow!("--smtp-url / --public-url: {e}"))?;
    if w.graph_every_minutes > 0 {
        state.schedule_graph(std::time::Duration::from_secs(w.graph_every_minutes * 60));
    }
    if w.event_numbers {
        state.run_number_index();
    }
    if w.segments {
        state.run_segments(
            std::time::Duration::from_secs(w.segments_every_minutes.max(1) * 60),
            w.realtime_people,
        );
    }
    rapport_http::serve(listener, state, shutdown_signal()).await?;
    // The router (and with it every ingestor handle) is gone: the writer drains and stops.
    writer.await.ok();
    Ok(())
}

async fn import(
    store_args: StoreArgs,
    file: PathBuf,
    map: Option<String>,
    format: Option<String>,
) -> Result<()> {
    let format = format.unwrap_or_else(|| {
        file.extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase()
    });
    let f = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let store = store_args.open().await?;
    let pb = bar(len, "import bytes");
    let progress = |n: u64| pb.set_position(n);
    let source = format!(
        "import:{}",
        file.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    );
    let summary = match format.as_str() {
        "csv" => {
            rapport_app::import::import_csv(
                &store,
                BufReader::new(f),
                map.as_deref(),
                &source,
                &progress,
            )
            .await?
        }
        "jsonl" | "ndjson" | "json" => {
            if map.is_some() {
                bail!("--map applies to CSV files only");
            }
            rapport_app::import::import_jsonl(&store, BufReader::new(f), &source, &progress).await?
        }
        other => bail!("unknown import format '{other}': use --format csv or --format jsonl"),
    };
    pb.finish_and_clear();
    eprintln!(
        "{} rows: {} imported ({} already there), {} profiles created, {} merged, {} conflicts held for review, {} rejected",
        summary.rows, summary.imported, summary.duplicates, summary.profiles_created, summary.merged, summary.conflicts, summary.rejected_count
    );
    for r in &summary.rejected {
        eprintln!("  line {}: {}", r.line, r.reason);
    }
    if summary.rejected_count > summary.rejected.len() {
        eprintln!(
            "  … and {} more",
            summary.rejected_count - summary.rejected.len()
        );
    }
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

fn text(cmd: TextCommand) -> Result<()> {
    use std::io::BufRead;
    let TextCommand::Analyse {
        texts,
        products,
        lexicon,
    } = cmd
    else {
        bail!("not a local text command");
    };
    let catalogue = match &products {
        Some(p) => rapport_text::Catalogue::new(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading {}", p.display()))?
                .lines()
                .map(str::to_string),
        ),
        None => rapport_text::Catalogue::new([]),
    };
    let mut terms: Vec<(String, f64)> = Vec::new();
    if let Some(p) = &lexicon {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (w, v) = line.split_once('\t').with_context(|| {
                format!("{} line {}: expected word<TAB>valence", p.display(), i + 1)
            })?;
            let v: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && v.abs() <= 4.0)
                .with_context(|| {
                    format!(
                        "{} line {}: valence must be a number from -4 to 4",
                        p.display(),
                        i + 1
                    )
                })?;
            terms.push((w.trim().to_string(), v));
        }
    }
    let vader = rapport_text::Vader::new().with_terms(terms.iter().map(|(w, v)| (w.as_str(), *v)));
    let analyzer = rapport_text::Analyzer::new(vader, catalogue);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut emit = |t: &str| -> Result<()> {
        serde_json::to_writer(&mut out, &analyzer.analyse(t))?;
        out.write_all(b"\n")?;
        Ok(())
    };
    if texts.is_empty() {
        for line in std::io::stdin().lock().lines() {
            let line = line.context("reading standard input (UTF-8 text, one per line)")?;
            emit(line.trim_end_matches('\r'))?;
        }
    } else {
        for t in &texts {
            emit(t)?;
        }
    }
    out.flush()?;
    Ok(())
}

async fn graph(cmd: GraphCommand) -> Result<()> {
    use rapport_app::graph::{ExportFormat, GraphService};
    match cmd {
        GraphCommand::ImportEdges { store, file, kind } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let service = GraphService::new(store.open().await?);
            let pb = bar(0, "relationships");
            let source = format!(
                "import:{}",
                file.file_name().and_then(|n| n.to_str()).unwrap_or("edges")
            );
            let report = service
                .import_edges(&text, &kind, &source, &|done, total| {
                    pb.set_length(total);
                    pb.set_position(done);
                })
                .await?;
            pb.finish_and_clear();
            eprintln!(
                "{} lines: {} relationships stored, {} profiles created{}",
                report.lines,
                report.relationships,
                report.profiles_created,
                if report.weighted { ", weighted" } else { "" }
            );
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        GraphCommand::Recompute {
            store,
            communities,
            resolution,
        } => {
            let method = rapport_app::graph::community_method(communities.as_deref(), resolution)?;
            let service = GraphService::new(store.open().await?);
            let pb = bar(8, "graph");
            let run = service
                .recompute(method, &|step, steps, what| {
                    pb.set_length(steps);
                    pb.set_position(step);
                    pb.set_message(what.to_string());
                    pb.println(format!("[{step}/{steps}] {what}"));
                })
                .await?;
            pb.finish_and_clear();
            let s = &run.summary;
            eprintln!(
                "{} people, {} relationships: {} communities by {} (modularity {:.4}), PageRank in {} iterations",
                s["nodes"], s["edges"], s["communities"]["count"], s["communities"]["algorithm"], s["communities"]["modularity"].as_f64().unwrap_or(0.0), s["pagerank"]["iterations"]
            );
            println!("{}", serde_json::to_string(&run)?);
            Ok(())
        }
        GraphCommand::Export {
            store,
            format,
            edges,
            out,
        } => {
            let format = match format.as_str() {
                "graphml" => ExportFormat::GraphMl,
                "csv" => ExportFormat::Csv,
                other => bail!("--format must be graphml or csv, not '{other}'"),
            };
            if edges && format == ExportFormat::GraphMl {
                bail!("--edges applies to --format csv (GraphML always holds the edges)");
            }
            let service = GraphService::new(store.open().await?);
            let mut w: Box<dyn Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let n = service.export(format, edges, &mut *w).await?;
            w.flush()?;
            eprintln!("exported {n} rows");
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    init_logging();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            store,
            listen,
            demo,
            workers,
        } => serve(store, listen, demo, workers).await,
        Command::Graph { command } => graph(command).await,
        Command::Text {
            command:
                TextCommand::Trends {
                    store,
                    min_texts,
                    limit,
                },
        } => {
            let s = store.open().await?;
            // Texts not yet analysed by a server are analysed here first.
            rapport_app::text::analyse_all(&s).await?;
            for t in rapport_app::text::trends(&s, min_texts, limit).await? {
                println!("{}", serde_json::to_string(&t)?);
            }
            Ok(())
        }
        Command::Text {
            command: TextCommand::Topics { store, days, limit },
        } => {
            if !(1..=3650).contains(&days) {
                anyhow::bail!("--days must be from 1 to 3650");
            }
            let s = store.open().await?;
            rapport_app::text::analyse_all(&s).await?;
            for t in rapport_app::text::discover_topics(&s, days, limit.clamp(1, 100)).await? {
                println!("{}", serde_json::to_string(&t)?);
            }
            Ok(())
        }
        Command::Text { command } => text(command),
        Command::Demo { store, people } => {
            let s = store.open().await?;
            load_demo(&s, people).await
        }
        Command::Keys { command } => match command {
            KeysCommand::Create {
                store,
                scope,
                label,
                browser,
                origins,
            } => {
                let scope = Scope::parse(&scope).with_context(|| {
                    format!("--scope must be write, admin or insight, not '{scope}'")
                })?;
                let trust = browser.then_some(rapport_domain::apikey::Trust::Browser);
                let access = rapport_app::web::key_access(trust, Some(origins))
                    .map_err(|e| anyhow::anyhow!("--origin: {}", e.reason))?;
                if browser && scope != Scope::Write {
                    anyhow::bail!("--browser is for write keys: an admin key must stay secret");
                }
                let s = store.open().await?;
                let created = rapport_app::keys::create(&s, scope, &label, &access).await?;
                rapport_app::privacy::audit(
                    &s,
                    "cli",
                    "key.create",
                    format!("key:{}", created.record.prefix),
                    serde_json::json!({"scope": scope.as_str()}),
                )
                .await?;
                println!("{}", created.secret);
                Ok(())
            }
            KeysCommand::List { store } => {
                let s = store.open().await?;
                for k in s.api_keys().await? {
                    println!(
                        "{}\t{}…\t{}\t{}\t{}\t{}\t{}",
                        k.id,
                        k.prefix,
                        k.scope.as_str(),
                        k.access.trust.as_str(),
                        if k.revoked { "revoked" } else { "active" },
                        k.label,
                        k.access.origins.join(",")
                    );
                }
                Ok(())
            }
            KeysCommand::Revoke { store, id } => {
                let s = store.open().await?;
                rapport_app::keys::Keys::new(s).revoke(id).await?;
                eprintln!("key {id} revoked");
                Ok(())
            }
        },
        Command::Import {
            store,
            file,
            map,
            format,
        } => import(store, file, map, format).await,
        Command::Export { store, what, out } => {
            let s = store.open().await?;
            let mut w: Box<dyn Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let n = match what.as_str() {
                "profiles" => rapport_app::export::profiles(&s, &mut *w).await?,
                "events" => rapport_app::export::events(&s, &mut *w).await?,
                other => bail!("--what must be profiles or events, not '{other}'"),
            };
            eprintln!("exported {n} {what}");
            Ok(())
        }
        Command::Bench { command } => bench::run(command).await,
        Command::Chain { command } => chain::chain(command).await,
        Command::Email { command } => email::run(command).await,
        Command::Users { command } => match command {
            UsersCommand::Create {
                store,
                email,
                password,
                role,
            } => {
                let s = store.open().await?;
                let u = rapport_app::users::create(&s, &email, &password, &role).await?;
                rapport_app::privacy::audit(
                    &s,
                    "cli",
                    "user.create",
                    format!("user:{}", u.id),
                    serde_json::json!({"role": u.role}),
                )
                .await?;
                eprintln!("created {} ({}): sign in at /login", u.email, u.role);
                Ok(())
            }
            UsersCommand::List { store } => {
                let s = store.open().await?;
                for u in s.users().await? {
                    println!("{}\t{}\t{}", u.id, u.email, u.role);
                }
                Ok(())
            }
        },
        Command::Rewards { command } => chain::rewards_cmd(command).await,
        Command::Loyalty { command } => loyalty::run(command).await,
    }
}
