//! `rapport bench segments`: the batch evaluator on a large population. Generates (once;
//! reused while the sizes match) N profiles with traits, e-mail and wallet identities,
//! consents and `events_per_profile` events each, straight in SQL; then times the issue's
//! five-condition definition compiled by Rapport against the same question written by
//! hand in SQL, in the same run, and prints both query plans.

use anyhow::{bail, Context, Result};
use rapport_segment::{parse, sql};
use rapport_store::DynStore;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct SegmentBench {
    #[arg(long, default_value_t = 1_000_000)]
    profiles: i64,
    #[arg(long, default_value_t = 20)]
    events_per_profile: i64,
    /// PostgreSQL URL (a `bench_segments` schema is used); SQLite in --data-dir otherwise.
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, default_value = "/tmp/rapport-bench-segments")]
    data_dir: PathBuf,
    /// Timed runs of each query (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[arg(long)]
    json: bool,
    /// Print the compiled SQL (parameters inlined) to stderr.
    #[arg(long)]
    show_sql: bool,
    /// Seconds the hand-written query may run before it is reported as not finished
    /// (PostgreSQL; its planner can loop over a set per person).
    #[arg(long, default_value_t = 120)]
    hand_timeout_s: u64,
    /// Run only this one: five_conditions, issue_example or issue_example_from_json.
    #[arg(long)]
    only: Option<String>,
}

/// Five conditions, one event aggregate (the benchmark the issue sets).
pub const FIVE: &str = r#"traits.title ~ "marketing" and count(track "Order Completed", 90d) >= 2 and has wallet on eip155:1 and traits.plan = "pro" and not consent(email, marketing) = denied"#;
/// The issue's example: five conditions, two event aggregates (a sum over a year).
pub const EXAMPLE: &str = r#"traits.title ~ "marketing" and count(track "Order Completed", 90d) >= 2 and sum(track "Order Completed".revenue, 365d) > 500 and has wallet on eip155:1 and not consent(email, marketing) = denied"#;

/// The example with its sum forced through the events' JSON (a `where` filter that every
/// order passes): the same-run baseline for `event_numbers`.
pub const EXAMPLE_JSON: &str = r#"traits.title ~ "marketing" and count(track "Order Completed", 90d) >= 2 and sum(track "Order Completed".revenue where revenue exists, 365d) > 500 and has wallet on eip155:1 and not consent(email, marketing) = denied"#;

const DAY: i64 = 86_400_000;
const TITLES: &str = "CASE x % 7 WHEN 0 THEN 'Head of Marketing' WHEN 1 THEN 'Engineer' WHEN 2 THEN 'Marketing Manager' WHEN 3 THEN 'Designer' WHEN 4 THEN 'Sales' WHEN 5 THEN 'VP Marketing' ELSE 'Founder' END";
const NAMES: &str = "CASE x % 10 WHEN 0 THEN 'Order Completed' WHEN 1 THEN 'Product Viewed' WHEN 2 THEN 'Product Viewed' WHEN 3 THEN 'Email Opened' WHEN 4 THEN 'Email Clicked' WHEN 5 THEN 'Cart Viewed' WHEN 6 THEN 'Search' WHEN 7 THEN 'Product Viewed' WHEN 8 THEN 'Review Posted' ELSE 'Login' END";

/// A fresh store for a benchmark: the PostgreSQL schema `schema` dropped and made
/// again, or SQLite in `dir` emptied first.
pub(crate) async fn fresh_store(
    url: Option<&str>,
    schema: &str,
    dir: &std::path::Path,
) -> anyhow::Result<rapport_store::DynStore> {
    Ok(match url {
        Some(url) => {
            let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await?;
            std::sync::Arc::new(
                rapport_store::postgres::PgStore::connect_schema(url, Some(schema)).await?,
            )
        }
        None => {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir)?;
            rapport_store::open(None, dir).await?
        }
    })
}

/// Runs generation statements in one transaction on the store [`fresh_store`] made,
/// then `ANALYZE`.
pub(crate) async fn run_generation(
    url: Option<&str>,
    schema: &str,
    dir: &std::path::Path,
    sql: &[String],
) -> anyhow::Result<()> {
    use anyhow::Context;
    match url {
        Some(url) => {
            let mut cfg: tokio_postgres::Config = url.parse().context("database url")?;
            cfg.options(format!("-csearch_path={schema}"));
            let (c, conn) = cfg.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            c.batch_execute(&format!("BEGIN; {}; COMMIT; ANALYZE", sql.join(";\n")))
                .await?;
        }
        None => {
            let c = rusqlite::Connection::open(dir.join("rapport.db"))?;
            c.execute_batch("PRAGMA busy_timeout = 60000")?;
            c.execute_batch(&format!(
                "BEGIN IMMEDIATE; {}; COMMIT; ANALYZE",
                sql.join(";\n")
            ))?;
        }
    }
    Ok(())
}

/// The generation statements: `{n}` profiles, `{m}` events, times back from `{t}`.
pub(crate) fn generation(pg: bool, n: i64, m: i64, t: i64) -> Vec<String> {
    let series = |count: i64| {
        if pg {
            format!("generate_series(1::bigint, {count}) AS c(x)")
        } else {
            format!("(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {count}) SELECT x FROM c)")
        }
    };
    let (obj, hex) = if pg {
        ("jsonb_build_object", "lpad(to_hex(x), 40, '0')")
    } else {
        ("json_object", "printf('%040x', x)")
    };
    let two_years = 730 * DAY;
    vec![
        format!(
            "INSERT INTO profiles (id, canonical_id, created_at, updated_at, traits, traits_updated_at)
             SELECT x, x, {t}, {t}, {obj}('title', {TITLES}, 'plan', CASE WHEN x % 3 = 0 THEN 'pro' ELSE 'free' END), {t} FROM {}",
            series(n)
        ),
        format!(
            "INSERT INTO identities (kind, value, profile_id, verified, source, first_seen, last_seen)
             SELECT 'email', 'u' || x || '@example.com', x, {f}, 'bench', {t}, {t} FROM {}",
            series(n),
            f = if pg { "false" } else { "0" }
        ),
        format!(
            "INSERT INTO identities (kind, value, profile_id, verified, source, first_seen, last_seen)
             SELECT 'wallet', 'eip155:' || (CASE WHEN x % 10 = 0 THEN 137 ELSE 1 END) || ':0x' || {hex}, x, {f}, 'bench', {t}, {t}
             FROM {} WHERE x % 10 < 3",
            series(n),
            f = if pg { "false" } else { "0" }
        ),
        format!(
            "INSERT INTO consents (profile_id, channel, purpose, status, source, proof, at)
             SELECT x, 'email', 'marketing', CASE WHEN x % 2 = 0 THEN 'denied' ELSE 'granted' END, 'bench', NULL, {t} - x
             FROM {} WHERE x % 5 = 0",
            series(n)
        ),
        format!(
            "INSERT INTO {events} (message_id, profile_id, type, name, channel, source, properties, context, text, occurred_at, received_at)
             SELECT 'b' || x, ((x * 7919) % {n}) + 1, 'track', {NAMES}, 'web', 'bench',
                    CASE WHEN x % 10 = 0 THEN {obj}('revenue', (x * 31) % 400 + 1) ELSE {obj}() END,
                    {empty}, NULL, {t} - ((x * 104729) % {two_years}), {t} FROM {}",
            series(m),
            events = ingested_events(pg),
            empty = if pg { "'{}'::jsonb" } else { "'{}'" }
        ),
    ]
}

/// The table of ingested events: on PostgreSQL `events` is a view that adds the
/// membership events (postgres/0017).
fn ingested_events(pg: bool) -> &'static str {
    if pg {
        "event_rows"
    } else {
        "events"
    }
}

/// The same questions a person would write by hand (single-member profiles, as here).
fn hand_written(pg: bool, now: i64, with_sum: bool) -> String {
    let (title, plan, revenue, wallet_prefix) = if pg {
        (
            "strpos(lower(p.traits ->> 'title'), 'marketing') > 0",
            "p.traits ->> 'plan' = 'pro'",
            "(e.properties ->> 'revenue')::float8",
            "left(i.value, 9) = 'eip155:1:'",
        )
    } else {
        (
            "instr(lower(json_extract(p.traits, '$.title')), 'marketing') > 0",
            "json_extract(p.traits, '$.plan') = 'pro'",
            "json_extract(e.properties, '$.revenue')",
            "substr(i.value, 1, 9) = 'eip155:1:'",
        )
    };
    let events = ingested_events(pg);
    let middle = if with_sum {
        format!(
            "AND p.id IN (SELECT e.profile_id FROM {events} e WHERE e.name = 'Order Completed' AND e.type = 'track' AND e.occurred_at >= {d365} AND e.occurred_at <= {now} GROUP BY e.profile_id HAVING SUM({revenue}) > 500)",
            d365 = now - 365 * DAY
        )
    } else {
        format!("AND {plan}")
    };
    format!(
        "SELECT COUNT(*) FROM profiles p WHERE p.id = p.canonical_id AND {title}
         AND p.id IN (SELECT e.profile_id FROM {events} e WHERE e.name = 'Order Completed' AND e.type = 'track' AND e.occurred_at >= {d90} AND e.occurred_at <= {now} GROUP BY e.profile_id HAVING COUNT(*) >= 2)
         {middle}
         AND p.id IN (SELECT i.profile_id FROM identities i WHERE i.kind = 'wallet' AND {wallet_prefix})
         AND p.id NOT IN (SELECT c.profile_id FROM consents c WHERE c.channel = 'email' AND c.purpose = 'marketing' AND c.status = 'denied'
             AND c.at = (SELECT MAX(c2.at) FROM consents c2 WHERE c2.profile_id = c.profile_id AND c2.channel = 'email' AND c2.purpose = 'marketing'))",
        d90 = now - 90 * DAY,
    )
}

/// The server's message, not just "db error".
fn pg_err(e: tokio_postgres::Error) -> anyhow::Error {
    match e.as_db_error() {
        Some(d) => anyhow::anyhow!("PostgreSQL: {}", d.message()),
        None => e.into(),
    }
}

enum Raw {
    Sqlite(rusqlite::Connection),
    Pg(tokio_postgres::Client),
}

impl Raw {
    async fn batch(&self, sql: &str) -> Result<()> {
        match self {
            Raw::Sqlite(c) => c.execute_batch(sql)?,
            Raw::Pg(c) => c.batch_execute(sql).await.map_err(pg_err)?,
        }
        Ok(())
    }

    async fn count(&self, sql: &str) -> Result<i64> {
        Ok(match self {
            Raw::Sqlite(c) => c.query_row(sql, [], |r| r.get(0))?,
            Raw::Pg(c) => c.query_one(sql, &[]).await.map_err(pg_err)?.get(0),
        })
    }

    /// A count, or `None` when it took longer than `secs` (PostgreSQL cancels it).
    async fn count_within(&self, sql: &str, secs: u64) -> Result<Option<i64>> {
        match self {
            Raw::Sqlite(_) => Ok(Some(self.count(sql).await?)),
            Raw::Pg(c) => {
                c.batch_execute(&format!("SET statement_timeout = '{secs}s'"))
                    .await
                    .map_err(pg_err)?;
                let r = c.query_one(sql, &[]).await;
                c.batch_execute("SET statement_timeout = 0")
                    .await
                    .map_err(pg_err)?;
                match r {
                    Ok(row) => Ok(Some(row.get(0))),
                    Err(e)
                        if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(pg_err(e)),
                }
            }
        }
    }

    /// The plan of a query with its parameters inlined as literals.
    async fn plan(&self, sql: &str) -> Result<String> {
        Ok(match self {
            Raw::Sqlite(c) => {
                let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let rows = st.query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(3)?,
                    ))
                })?;
                let mut depth: Vec<(i64, usize)> = Vec::new();
                let mut out = String::new();
                for row in rows {
                    let (id, parent, detail) = row?;
                    let level = depth
                        .iter()
                        .find(|(i, _)| *i == parent)
                        .map(|(_, l)| l + 1)
                        .unwrap_or(0);
                    depth.push((id, level));
                    out.push_str(&format!("{}{}\n", "  ".repeat(level), detail));
                }
                out
            }
            Raw::Pg(c) => c
                .query(&format!("EXPLAIN {sql}"), &[])
                .await?
                .iter()
                .map(|r| r.get::<_, String>(0) + "\n")
                .collect(),
        })
    }
}

/// A compiled condition with its parameters written in as SQL literals (for the
/// plan and the raw connection; the server binds them).
fn inline(c: &sql::Compiled, pg: bool) -> String {
    let mut s = c.condition.clone();
    for (i, p) in c.params.iter().enumerate().rev() {
        let lit = match p {
            sql::Param::Text(t) => format!("'{}'", t.replace('\'', "''")),
            sql::Param::Int(n) => n.to_string(),
            sql::Param::Real(r) => format!("{r:?}"),
        };
        let n = i + 1;
        if pg {
            for pat in [
                format!("(${n}::text)::bigint"),
                format!("(${n}::text)::float8"),
                format!("(${n}::text)"),
            ] {
                s = s.replace(&pat, &lit);
            }
        } else {
            s = s.replace(&format!("?{n}"), &lit);
        }
    }
    s
}

/// NaN (null in the JSON) when there is nothing.
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub async fn run(a: SegmentBench) -> Result<()> {
    let pg = a.database_url.is_some();
    let schema = format!("bench_segments_{}_{}", a.profiles, a.events_per_profile);
    let (store, raw): (DynStore, Raw) = match &a.database_url {
        Some(url) => {
            let s = rapport_store::postgres::PgStore::connect_schema(url, Some(&schema)).await?;
            let mut cfg: tokio_postgres::Config = url.parse().context("database url")?;
            cfg.options(format!("-csearch_path={schema}"));
            let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            (std::sync::Arc::new(s), Raw::Pg(client))
        }
        None => {
            std::fs::create_dir_all(&a.data_dir)?;
            let s = rapport_store::open(None, &a.data_dir).await?;
            let c = rusqlite::Connection::open(a.data_dir.join("rapport.db"))?;
            // The store's own reader settings, so both sides read alike.
            c.execute_batch("PRAGMA busy_timeout = 60000; PRAGMA cache_size = -65536; PRAGMA mmap_size = 268435456;")?;
            (s, Raw::Sqlite(c))
        }
    };
    let have = raw.count("SELECT COUNT(*) FROM profiles").await?;
    let events = a.profiles * a.events_per_profile;
    let mut now = store.counter("bench.segments.generated_at").await?;
    if have != a.profiles || now == 0 {
        if have != 0 {
            bail!(
                "the benchmark store holds {have} profiles, not {}: remove it ({}) first",
                a.profiles,
                if pg { schema.as_str() } else { "--data-dir" }
            );
        }
        now = rapport_domain::time::now_millis();
        eprintln!("generating {} profiles and {events} events…", a.profiles);
        let t = Instant::now();
        raw.batch(if pg { "BEGIN" } else { "BEGIN IMMEDIATE" })
            .await?;
        for st in generation(pg, a.profiles, events, now) {
            raw.batch(&st).await?;
            eprintln!("  {:.0} s", t.elapsed().as_secs_f64());
        }
        raw.batch("COMMIT").await?;
        // SQLite fills `event_numbers` after the fact, as `serve` does behind ingest.
        let n = rapport_app::segments::index_numbers_now(&store).await?;
        eprintln!(
            "  {:.0} s (numbers of {n} events indexed)",
            t.elapsed().as_secs_f64()
        );
        // PostgreSQL's index-only scans need the visibility map a VACUUM writes.
        raw.batch(if pg { "VACUUM ANALYZE" } else { "ANALYZE" })
            .await?;
        store
            .set_counter("bench.segments.generated_at", now)
            .await?;
        eprintln!("generated in {:.0} s", t.elapsed().as_secs_f64());
    }
    let mut results = Vec::new();
    for (label, definition, with_sum) in [
        ("five_conditions", FIVE, false),
        ("issue_example", EXAMPLE, true),
        ("issue_example_from_json", EXAMPLE_JSON, true),
    ] {
        if a.only.as_deref().is_some_and(|o| o != label) {
            continue;
        }
        let e = parse(definition).map_err(|e| anyhow::anyhow!("{e}"))?;
        let compiled = sql::compile(&e, store.dialect(), now);
        let ours_sql = format!(
            "SELECT COUNT(*) FROM profiles p WHERE p.id = p.canonical_id AND {}",
            inline(&compiled, pg)
        );
        let hand = hand_written(pg, now, with_sum);
        if a.show_sql {
            eprintln!("{ours_sql}\n\n{hand}\n");
            if a.runs == 0 {
                continue;
            }
        }
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        let mut counts = (0, 0);
        let mut hand_finished = true;
        for _ in 0..a.runs.max(1) {
            let t = Instant::now();
            let (n, _) = store.segment_matches(compiled.clone(), 10).await?;
            ours.push(t.elapsed().as_secs_f64());
            counts = (n, n);
            if hand_finished {
                let t = Instant::now();
                match raw.count_within(&hand, a.hand_timeout_s).await? {
                    Some(m) => {
                        theirs.push(t.elapsed().as_secs_f64());
                        counts = (n, m);
                    }
                    None => {
                        eprintln!(
                            "{label}: the hand-written SQL did not finish in {} s",
                            a.hand_timeout_s
                        );
                        hand_finished = false;
                    }
                }
            }
        }
        if counts.0 != counts.1 {
            bail!(
                "{label}: Rapport counted {} people, the hand-written SQL {}",
                counts.0,
                counts.1
            );
        }
        eprintln!(
            "{label}: {} people; Rapport (count and sample) {:.3} s, hand-written count {:.3} s",
            counts.0,
            median(ours.clone()),
            median(theirs.clone())
        );
        results.push(json!({
            "name": label,
            "definition": definition,
            "count": counts.0,
            "rapport_s": median(ours.clone()),
            "rapport_runs_s": ours,
            "hand_written_s": median(theirs.clone()),
            "hand_written_runs_s": theirs,
            "hand_written_finished": hand_finished,
            "rapport_plan": raw.plan(&ours_sql).await?,
            "hand_written_plan": raw.plan(&hand).await?,
        }));
    }
    let out = json!({
        "store": store.kind(),
        "profiles": a.profiles,
        "events": events,
        "segments": results,
    });
    if !a.json {
        eprintln!("{}", serde_json::to_string_pretty(&out)?);
    }
    println!("{out}");
    Ok(())
}
