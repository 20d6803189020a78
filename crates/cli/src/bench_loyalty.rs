//! `rapport bench loyalty`: the loyalty issue's store targets on a fresh store — a
//! person's balance read with 10,000 ledger entries (p99 < 2 ms) and 1,000,000 expired
//! lots written off (< 30 s), lots generated in SQL on `people` profiles.

use anyhow::{ensure, Result};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct LoyaltyBench {
    /// Profiles holding the expired lots.
    #[arg(long, default_value_t = 200_000)]
    people: i64,
    /// Expired lots to write off.
    #[arg(long, default_value_t = 1_000_000)]
    lots: i64,
    /// Ledger entries (each an open lot) of the person whose balance is read.
    #[arg(long, default_value_t = 10_000)]
    entries: i64,
    /// Events per accrual round (ingested with the real-time engine beside).
    #[arg(long, default_value_t = 20_000)]
    accrual_events: usize,
    /// Rounds of each side of the accrual A/B.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// PostgreSQL URL (schema `bench_loyalty`, dropped first); SQLite in --data-dir
    /// (emptied first) otherwise.
    #[arg(long, env = "RAPPORT_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    #[arg(long, default_value = "/tmp/rapport-bench-loyalty")]
    data_dir: PathBuf,
    #[arg(long)]
    json: bool,
}

const DAY: i64 = 86_400_000;

/// The accrual arms: no rule, the points rule earning nothing, the points rule earning.
const ARMS: [&str; 3] = ["idle", "firing", "earning"];

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

pub async fn run(a: LoyaltyBench) -> Result<()> {
    const SCHEMA: &str = "bench_loyalty";
    let pg = a.database_url.is_some();
    let store =
        crate::bench_segments::fresh_store(a.database_url.as_deref(), SCHEMA, &a.data_dir).await?;
    let now = rapport_domain::time::now_millis();
    let series = |count: i64| {
        if pg {
            format!("generate_series(1::bigint, {count}) AS c(x)")
        } else {
            format!("(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {count}) SELECT x FROM c)")
        }
    };
    let mut sql: Vec<String> = crate::bench_segments::generation(pg, a.people, 0, now)
        .into_iter()
        .take(2)
        .collect();
    // Person 1: `entries` earnings, each its lot, still open (the worst case for a
    // balance: every lot holds points).
    sql.push(format!(
        "INSERT INTO loyalty_lots (id, profile_id, kind, amount, remaining, earned_at, unlock_at, expires_at, order_ref, revenue)
         SELECT x, 1, 'earn', 10, 10, {now} - x * 60000, {now} - x * 60000 + (x % 2) * 30 * {DAY}, {now} + (x % 400 + 1) * {DAY}, 'o' || x, 1.0 FROM {}",
        series(a.entries)
    ));
    sql.push(format!(
        "INSERT INTO loyalty_entries (profile_id, kind, amount, idempotency_key, at, lot_id, order_ref, source)
         SELECT 1, 'earn', 10, 'bench:' || x, {now} - x * 60000, x, 'o' || x, 'bench' FROM {}",
        series(a.entries)
    ));
    // Everyone: lots whose time has passed, `lots / people` each.
    if a.lots > 0 {
        sql.push(format!(
        "INSERT INTO loyalty_lots (id, profile_id, kind, amount, remaining, earned_at, unlock_at, expires_at)
         SELECT {e} + x, (x % {p}) + 1, 'earn', 25, 25, {old}, {old}, {now} - 1000 - (x % 1000) FROM {}",
        series(a.lots),
        e = a.entries,
        p = a.people,
        old = now - 400 * DAY
    ));
    }
    if pg {
        sql.push("SELECT setval('loyalty_lots_id_seq', (SELECT max(id) FROM loyalty_lots))".into());
        // Profiles were written with their ids: the accrual's new people come after.
        sql.push("SELECT setval('profiles_id_seq', (SELECT max(id) FROM profiles))".into());
    }
    let t0 = Instant::now();
    crate::bench_segments::run_generation(a.database_url.as_deref(), SCHEMA, &a.data_dir, &sql)
        .await?;
    if let Some(url) = &a.database_url {
        // As autovacuum leaves a table that took a million rows (the visibility map set,
        // so a balance reads the index alone); a fresh bulk load has not had it yet.
        let mut cfg: tokio_postgres::Config = url.parse()?;
        cfg.options(format!("-csearch_path={SCHEMA}"));
        let (c, conn) = cfg.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        c.batch_execute("VACUUM ANALYZE loyalty_lots").await?;
    }
    eprintln!("generated in {:.0} s", t0.elapsed().as_secs_f64());

    // The balance of a person with `entries` entries, as the API and engine read it.
    let mut reads = Vec::new();
    for _ in 0..2_000 {
        let t = Instant::now();
        let b = store.balance(&[1], now).await?;
        reads.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(b.available + b.pending == 10 * a.entries, "balance {b:?}");
    }
    let (b50, b99) = (pct(&mut reads, 0.5), pct(&mut reads, 0.99));
    let mut views = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        rapport_app::loyalty::view(&store, 1, 50).await?;
        views.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let v50 = pct(&mut views, 0.5);
    eprintln!(
        "balance with {} entries: p50 {b50:.3} ms, p99 {b99:.3} ms; whole view p50 {v50:.1} ms",
        a.entries
    );

    // Expiry: every expired lot written off, one entry and event per profile and step.
    let t = Instant::now();
    let mut expired = 0;
    loop {
        let n = rapport_app::loyalty::expire_step(
            &store,
            rapport_domain::time::now_millis(),
            rapport_app::loyalty::EXPIRY_BATCH,
        )
        .await?;
        expired += n;
        if n == 0 {
            break;
        }
    }
    let expiry_s = t.elapsed().as_secs_f64();
    ensure!(
        expired as i64 == a.lots,
        "{expired} of {} lots written off",
        a.lots
    );
    ensure!(
        store.expired_lots(now, 1).await?.is_empty(),
        "expired lots left"
    );
    eprintln!(
        "{expired} lots expired in {expiry_s:.1} s ({:.0} lots/s)",
        expired as f64 / expiry_s
    );
    // Accrual A/B: the same stream ingested with the engine beside, in three arms run
    // alternately: no rule (the engine idle), the points rule firing on every order but
    // earning nothing (its amount reads a property the orders lack: the same firings,
    // no ledger), and the points rule earning. What accrual adds is the third against
    // the second; the first shows what any rule costs (the engine deciding events).
    let mut accrual = serde_json::Map::new();
    for (mix, every) in [
        ("one_in_ten_an_order", 10usize),
        ("every_event_an_order", 1),
    ] {
        let mut arms: [(Vec<f64>, Vec<f64>); 3] = Default::default();
        for round in 0..a.rounds * 3 {
            let arm = round % 3;
            let amount = if arm == 1 {
                "properties.no_such_property * 10"
            } else {
                "properties.revenue * 10"
            };
            let rules = if arm == 0 {
                serde_json::json!({"rules": []})
            } else {
                serde_json::json!({"rules": [{"name": "Points for orders", "when": "track \"Order Completed\"",
                    "then": [{"action": "points", "amount": amount, "pending_days": 14}]}]})
            };
            rapport_app::rules::set_rules(&store, &rules).await?;
            let values: Vec<serde_json::Value> = (0..a.accrual_events)
                .map(|i| {
                    let user = format!("acc{}", (i * 7919) % 5_000);
                    if i % every == 0 {
                        serde_json::json!({"type": "track", "userId": user, "event": "Order Completed",
                            "properties": {"order_id": format!("{mix}-{round}-{i}"), "revenue": (i % 90 + 10) as f64}})
                    } else {
                        serde_json::json!({"type": "track", "userId": user, "event": "Product Viewed",
                            "properties": {"sku": format!("SKU-{}", i % 300)}})
                    }
                })
                .collect();
            let mut engine = rapport_app::realtime::Engine::default();
            // The engine starts where the log is: earlier rounds are not decided again.
            while engine.step(&store, 10_000).await?.events > 0 {}
            let (ingested, decided) = crate::bench_realtime::throughput(
                &store,
                &values,
                &format!("{mix}{round}."),
                Some(&mut engine),
            )
            .await?;
            eprintln!(
                "accrual {mix} round {round} ({}): {ingested:.0} ev/s ingested, {decided:.0} ev/s decided",
                ARMS[arm]
            );
            arms[arm].0.push(ingested);
            arms[arm].1.push(decided);
        }
        let mut out = serde_json::Map::new();
        let mut medians = [(0.0, 0.0); 3];
        for (i, (ingested, decided)) in arms.iter_mut().enumerate() {
            medians[i] = (pct(ingested, 0.5), pct(decided, 0.5));
            out.insert(
                ARMS[i].into(),
                serde_json::json!({"ingested": ingested, "decided": decided,
                    "median_ingested": medians[i].0, "median_decided": medians[i].1}),
            );
        }
        let drop = 1.0 - medians[2].1 / medians[1].1;
        out.insert("accrual_drop".into(), drop.into());
        out.insert(
            "drop_against_idle".into(),
            (1.0 - medians[2].1 / medians[0].1).into(),
        );
        accrual.insert(mix.into(), out.into());
        eprintln!(
            "accrual {mix}: decided {:.0} (idle) / {:.0} (firing) → {:.0} ev/s earning: accrual adds {:.1}% ({:.1}% against the idle engine)",
            medians[0].1,
            medians[1].1,
            medians[2].1,
            drop * 100.0,
            (1.0 - medians[2].1 / medians[0].1) * 100.0
        );
    }
    let accrual_drop = accrual["one_in_ten_an_order"]["accrual_drop"]
        .as_f64()
        .unwrap_or(1.0);
    let out = serde_json::json!({
        "accrual": accrual,
        "store": store.kind(),
        "balance_entries": a.entries,
        "balance_p50_ms": b50,
        "balance_p99_ms": b99,
        "view_p50_ms": v50,
        "expired_lots": expired,
        "expiry_s": expiry_s,
        "targets_met": b99 < 2.0 && expiry_s < 30.0 && accrual_drop < 0.1,
    });
    if a.json {
        println!("{out}");
    }
    Ok(())
}
