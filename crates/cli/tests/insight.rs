//! Aggregate-only insight over HTTP, on SQLite and PostgreSQL: an insight key reaches
//! only insight routes; answers are noisy, withheld below k, and a daily budget stops
//! the differencing and averaging attacks (docs/privacy.md).

mod common;

use reqwest::Method;
use serde_json::{json, Value};

const TARGET: &str = "target.person@insight.test";

async fn call(s: &common::TestServer, key: &str, path: &str, body: Value) -> (u16, Value) {
    let r = s
        .client
        .post(format!("{}{path}", s.url))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn insight_key(s: &common::TestServer) -> String {
    let (st, v) = s
        .send(
            Method::POST,
            "/api/keys",
            json!({"scope": "insight", "label": "partner"}),
        )
        .await;
    assert_eq!(st, 200, "[{}] {v}", s.kind);
    v["key"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insight_is_noisy_bounded_and_never_personal() {
    for s in common::servers().await {
        let k = s.kind;
        let mut batch = Vec::new();
        for i in 0..300 {
            let country = if i < 200 { "FR" } else { "DE" };
            batch.push(json!({"type": "identify", "userId": format!("u{i}"),
                "traits": {"email": format!("p{i}@insight.test"), "country": country}}));
        }
        batch.push(json!({"type": "identify", "userId": "target",
            "traits": {"email": TARGET, "country": "FR"}}));
        let (st, v) = s.batch(Value::Array(batch)).await;
        assert_eq!(st, 200, "[{k}] {v}");
        let key = insight_key(&s).await;

        // Person routes and ingestion refuse the key.
        for path in ["/api/profiles/1", "/api/profiles?q=target", "/api/audit"] {
            let r = s
                .client
                .get(format!("{}{path}", s.url))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            assert_eq!(st, 403, "[{k}] {path}: {v}");
            assert!(
                v["detail"].as_str().unwrap().contains("insight scope"),
                "[{k}] {v}"
            );
        }
        let (st, _) = call(&s, &key, "/v1/track", json!({"userId": "x", "event": "e"})).await;
        assert_eq!(st, 403, "[{k}] an insight key cannot ingest");

        // Bad input is refused before any budget is spent.
        let (st, v) = call(
            &s,
            &key,
            "/api/insight/audience",
            json!({"definition": "traits.country = "}),
        )
        .await;
        assert_eq!(
            (st, v["field"].as_str()),
            (400, Some("definition")),
            "[{k}] {v}"
        );
        let (st, v) = call(&s, &key, "/api/insight/breakdown", json!({"by": "email"})).await;
        assert_eq!((st, v["field"].as_str()), (400, Some("by")), "[{k}] {v}");

        // The differencing attack: the audience with and without the target, five
        // times each (the whole default budget: ε = 0.1 per query, 1 per day).
        let all = r#"traits.country = "FR""#;
        let but = format!(r#"traits.country = "FR" and not traits.email = "{TARGET}""#);
        let mut diffs = Vec::new();
        let mut left = Vec::new();
        for _ in 0..5 {
            let (st, a) = call(
                &s,
                &key,
                "/api/insight/audience",
                json!({"definition": all}),
            )
            .await;
            assert_eq!(st, 200, "[{k}] {a}");
            let (st, b) = call(
                &s,
                &key,
                "/api/insight/audience",
                json!({"definition": but}),
            )
            .await;
            assert_eq!(st, 200, "[{k}] {b}");
            left.push(b["budget_left"].as_f64().unwrap());
            let (a, b) = (a["count"].as_i64().unwrap(), b["count"].as_i64().unwrap());
            assert!(
                (a - 201).abs() < 150 && (b - 200).abs() < 150,
                "[{k}] {a} {b}"
            );
            diffs.push(a - b);
        }
        assert!(
            left[4].abs() < 1e-6 && (left[0] - 0.8).abs() < 1e-6,
            "[{k}] {left:?}"
        );
        assert!(
            diffs.iter().any(|d| *d != 1),
            "[{k}] exact answers would always differ by one: {diffs:?}"
        );
        // Averaging: 1,000 more repeats are all refused (429, Retry-After).
        let mut answered = 0;
        for _ in 0..1000 {
            let r = s
                .client
                .post(format!("{}/api/insight/audience", s.url))
                .bearer_auth(&key)
                .json(&json!({"definition": all}))
                .send()
                .await
                .unwrap();
            if r.status().as_u16() == 200 {
                answered += 1;
            } else {
                assert_eq!(r.status().as_u16(), 429, "[{k}]");
                assert!(r.headers().contains_key("retry-after"));
            }
        }
        assert_eq!(answered, 0, "[{k}] the budget is spent");

        // Settings: k ≥ 10; a larger ε for the rest of the test, with a fresh key.
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/insight/settings",
                json!({"min_group": 5, "epsilon": 0.1, "daily_budget": 1.0}),
            )
            .await;
        assert_eq!(
            (st, v["field"].as_str()),
            (400, Some("min_group")),
            "[{k}] {v}"
        );
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/insight/settings",
                json!({"min_group": 50, "epsilon": 1.0, "daily_budget": 10.0}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        let key = insight_key(&s).await;
        // One person: below k, withheld.
        let (st, v) = call(
            &s,
            &key,
            "/api/insight/audience",
            json!({"definition": format!(r#"traits.email = "{TARGET}""#)}),
        )
        .await;
        assert_eq!(st, 200, "[{k}] {v}");
        assert_eq!(
            (v["count"].clone(), v["suppressed"].clone()),
            (Value::Null, json!(true)),
            "[{k}] {v}"
        );
        assert!(v["reason"].as_str().unwrap().contains("50"), "[{k}] {v}");
        assert_eq!(v["epsilon_spent"], json!(1.0));
        assert_eq!(v["budget_left"], json!(9.0));
        // A breakdown: both countries, near their sizes; the one-person groups of a
        // breakdown by e-mail all withheld.
        let (st, v) = call(&s, &key, "/api/insight/breakdown", json!({"by": "country"})).await;
        assert_eq!(st, 200, "[{k}] {v}");
        let groups = v["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 2, "[{k}] {v}");
        assert_eq!(groups[0]["value"], "FR");
        assert!(
            (groups[0]["count"].as_i64().unwrap() - 201).abs() <= 20,
            "[{k}] {v}"
        );
        assert!(
            (groups[1]["count"].as_i64().unwrap() - 100).abs() <= 20,
            "[{k}] {v}"
        );
        let (st, v) = call(
            &s,
            &key,
            "/api/insight/breakdown",
            json!({"by": "traits.email"}),
        )
        .await;
        assert_eq!(st, 200, "[{k}] {v}");
        assert_eq!(
            (
                v["groups"].as_array().unwrap().len(),
                v["suppressed"].clone()
            ),
            (0, json!(true)),
            "[{k}] {v}"
        );
        assert!(!v.to_string().contains("@insight.test"), "[{k}] {v}");
        s.finish().await;
    }
}
