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
    // Accrual A/B: the same stream ingested with the engine beside, without a loyalty
    // rule and with "points on every order", alternately; two mixes of events.
    let mut accrual = serde_json::Map::new();
    for (mix, every) in [
        ("one_in_ten_an_order", 10usize),
        ("every_event_an_order", 1),
    ] {
        let (mut without, mut with) = (Vec::new(), Vec::new());
        for round in 0..a.rounds * 2 {
            let on = round % 2 == 1;
            let rules = if on {
                serde_json::json!({"rules": [{"name": "Points for orders", "when": "track \"Order Completed\"",
                    "then": [{"action": "points", "amount": "properties.revenue * 10", "pending_days": 14}]}]})
            } else {
                serde_json::json!({"rules": []})
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
            let (_, decided) = crate::bench_realtime::throughput(
                &store,
                &values,
                &format!("{mix}{round}."),
                Some(&mut engine),
            )
            .await?;
            eprintln!(
                "accrual {mix} round {round}: {decided:.0} ev/s decided, points rule {}",
                if on { "on" } else { "off" }
            );
            if on {
                with.push(decided)
            } else {
                without.push(decided)
            }
        }
        let (wo, w) = (pct(&mut without, 0.5), pct(&mut with, 0.5));
        accrual.insert(
            mix.into(),
            serde_json::json!({"without": without, "with": with,
            "median_without": wo, "median_with": w, "drop": 1.0 - w / wo}),
        );
        eprintln!(
            "accrual {mix}: {wo:.0} → {w:.0} ev/s ({:.1}% less)",
            (1.0 - w / wo) * 100.0
        );
    }
    let out = serde_json::json!({
        "accrual": accrual,
        "store": store.kind(),
        "balance_entries": a.entries,
        "balance_p50_ms": b50,
        "balance_p99_ms": b99,
        "view_p50_ms": v50,
        "expired_lots": expired,
        "expiry_s": expiry_s,
        "targets_met": b99 < 2.0 && expiry_s < 30.0,
    });
    if a.json {
        println!("{out}");
    }
    Ok(())
}
