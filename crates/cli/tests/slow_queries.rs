//! A slow segment preview hurts no one else: analytical reads run on connections of
//! their own (SQLite) or a bounded share of the pool (PostgreSQL), stop after the query
//! timeout, and stop when their client goes away — while /healthz and /v1/track stay
//! fast. Its own test binary: the query timeout is set for this process only.

mod common;

use serde_json::json;
use std::time::{Duration, Instant};

/// A definition within the limits that is slow on the data below: 32 event conditions,
/// each a regular expression over every event's text.
fn slow() -> String {
    (0..32)
        .map(|i| format!("count(any where text matches \"(a|b)*c{i}\") > 5"))
        .collect::<Vec<_>>()
        .join(" or ")
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// Waits until the background workers (real-time segments, text analysis, relationship
/// inference) have caught up with the demo's events: what is measured below is slow
/// previews against the request paths, not a year of events being digested.
async fn settled(store: &rapport_store::DynStore) {
    let cursors = [
        rapport_app::segments::SEGMENT_CURSOR,
        rapport_app::text::ANALYSIS_CURSOR,
        rapport_app::graph::INFERENCE_CURSOR,
    ];
    let give_up = Instant::now() + Duration::from_secs(120);
    loop {
        let at = store
            .counters(cursors.iter().map(|c| c.to_string()).collect())
            .await
            .expect("counters");
        let min = at.iter().copied().min().unwrap_or(0);
        let behind = !store.events_after(min, 1).await.expect("events").is_empty();
        if !behind || Instant::now() > give_up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_preview_hurts_no_one_else() {
    for s in common::servers().await {
        rapport_store::set_heavy_read_timeout(Duration::from_secs(60));
        let k = s.kind;
        rapport_app::demo::load(
            &s.store,
            rapport_app::demo::DemoSize {
                people: 400,
                events_per_person: 60,
            },
            &|_| {},
        )
        .await
        .expect("demo");
        settled(&s.store).await;
        let preview = |d: String, timeout: Duration| {
            s.client
                .post(format!("{}/api/segments/preview", s.url))
                .bearer_auth(&s.admin)
                .json(&json!({ "definition": d }))
                .timeout(timeout)
                .send()
        };
        let t = Instant::now();
        let r = preview(slow(), Duration::from_secs(60))
            .await
            .expect("preview");
        let alone = t.elapsed();
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        eprintln!("[{k}] the slow preview alone: {alone:?} ({status})");

        // Four of them at once, again and again for three seconds, while a client checks
        // health and sends events.
        let stop = Instant::now() + Duration::from_secs(3);
        let load = async {
            let mut n = 0;
            while Instant::now() < stop {
                let all = futures_util::future::join_all(
                    (0..4).map(|_| preview(slow(), Duration::from_secs(60))),
                )
                .await;
                n += all.len();
            }
            n
        };
        let probe = async {
            let (mut health, mut track) = (Vec::new(), Vec::new());
            let mut i = 0;
            while Instant::now() < stop {
                let t = Instant::now();
                let r = s
                    .client
                    .get(format!("{}/healthz", s.url))
                    .send()
                    .await
                    .expect("health");
                assert!(r.status().is_success());
                health.push(t.elapsed());
                let t = Instant::now();
                let (st, _) = s
                    .post_v1("/v1/track", json!({"userId": "probe", "event": "Probe", "messageId": format!("probe-{i}")}))
                    .await;
                assert_eq!(st, 200);
                track.push(t.elapsed());
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (health, track)
        };
        let (previews, (health, track)) = tokio::join!(load, probe);
        let (h, t) = (p99(health.clone()), p99(track.clone()));
        eprintln!(
            "[{k}] {previews} slow previews; /healthz p99 {h:?} ({} probes), /v1/track p99 {t:?}",
            health.len()
        );
        assert!(h < Duration::from_millis(100), "[{k}] /healthz p99 {h:?}");
        assert!(t < Duration::from_millis(100), "[{k}] /v1/track p99 {t:?}");

        assert_eq!(status, 200, "[{k}] {body}");
        // Past the timeout the database stops it: a clear 400, not a hang.
        rapport_store::set_heavy_read_timeout(alone / 10);
        let t = Instant::now();
        let r = preview(slow(), Duration::from_secs(60))
            .await
            .expect("preview");
        let took = t.elapsed();
        assert_eq!(r.status(), 400, "[{k}]");
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("stopped")),
            "{body}"
        );
        assert!(took < alone, "[{k}] stopped after {took:?}");
        rapport_store::set_heavy_read_timeout(Duration::from_secs(60));

        // A client that goes away stops its query: two abandoned previews do not hold
        // up a third, quick one. (Abandoned at a fifth of what the query takes now,
        // warm, so they are surely still running.)
        let t = Instant::now();
        let r = preview(slow(), Duration::from_secs(60))
            .await
            .expect("preview");
        assert_eq!(r.status(), 200);
        let warm = t.elapsed();
        for _ in 0..2 {
            assert!(
                preview(slow(), warm / 5).await.is_err(),
                "[{k}] warm {warm:?}"
            );
        }
        let t = Instant::now();
        let r = preview("traits.plan exists".into(), Duration::from_secs(60))
            .await
            .expect("quick");
        assert_eq!(r.status(), 200);
        let quick = t.elapsed();
        eprintln!("[{k}] a quick preview after two abandoned slow ones: {quick:?}");
        assert!(quick < warm / 2, "[{k}] {quick:?} vs {warm:?}");
        s.finish().await;
    }
}
