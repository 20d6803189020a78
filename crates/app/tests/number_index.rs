//! The event number index (`event_numbers`, read by segment sums): SQLite fills it after
//! the fact when ingestion is quiet, and segment SQL must give the same answer before,
//! during and after — on SQLite and, when configured, PostgreSQL (kept by trigger).

mod common;

use common::stores;
use rapport_domain::message::{parse_message, BatchContext};
use rapport_domain::time::now_millis;
use rapport_segment::{parse, sql};
use rapport_store::DynStore;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

async fn orders(store: &DynStore, who: &str, revenues: &[f64]) {
    let batch = BatchContext {
        received_at: now_millis(),
        ..Default::default()
    };
    let mut n = 0;
    let parsed = revenues
        .iter()
        .map(|r| {
            n += 1;
            let m = json!({"type": "track", "userId": who, "event": "Order Completed", "properties": {"revenue": r}});
            parse_message(&m, "", None, &batch, || format!("{who}-{r}-{n}")).expect("valid")
        })
        .collect();
    common::ingest(store, parsed).await;
}

async fn big_spenders(store: &DynStore) -> BTreeSet<i64> {
    let e = parse(r#"sum(track "Order Completed".revenue) > 100"#).expect("definition");
    store
        .segment_all_matches(sql::compile(&e, store.dialect(), now_millis() + 1000))
        .await
        .expect("segment")
        .into_iter()
        .collect()
}

#[tokio::test]
async fn sums_are_exact_before_and_after_the_index_catches_up() {
    for (store, _dir, pg) in stores().await {
        orders(&store, "ann", &[60.0, 50.0]).await;
        orders(&store, "bob", &[90.0]).await;
        let before = big_spenders(&store).await;
        assert_eq!(
            before.len(),
            1,
            "[{}] only ann spent over 100",
            store.kind()
        );

        let (stop, stopped) = tokio::sync::watch::channel(false);
        let worker = tokio::spawn(rapport_app::segments::run_number_index(
            store.clone(),
            stopped,
        ));
        // Quiet now: the index catches up within its first checks.
        let t = Instant::now();
        loop {
            let (position, last) = store.event_numbers_position().await.expect("position");
            if position == last {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "[{}] index stuck at {position} of {last}",
                store.kind()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if store.kind() == "sqlite" {
            assert!(store.event_numbers_position().await.expect("position").0 >= 3);
        }
        assert_eq!(
            big_spenders(&store).await,
            before,
            "[{}] indexed",
            store.kind()
        );

        // Half indexed, half in the tail: with the worker stopped, bob's next order is
        // read from its JSON.
        let _ = stop.send(true);
        worker.await.expect("worker");
        orders(&store, "bob", &[20.0]).await;
        if store.kind() == "sqlite" {
            let (position, last) = store.event_numbers_position().await.expect("position");
            assert!(position < last, "the new order is past the index");
        }
        let after = big_spenders(&store).await;
        assert_eq!(after.len(), 2, "[{}] bob now spent 110", store.kind());
        common::drop_pg(pg).await;
    }
}
