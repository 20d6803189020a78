//! Segments over HTTP, on SQLite and (with RAPPORT_TEST_DATABASE_URL) PostgreSQL:
//! preview the issue's example, errors with line and column, save, members, real-time
//! entry as an event arrives (with its timeline event), size history, references.

mod common;

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};

const EXAMPLE: &str = r#"traits.title ~ "marketing" and count(track "Order Completed", 90d) >= 2 and sum(track "Order Completed".revenue, 365d) > 500 and has wallet on eip155:1 and not consent(email, marketing) = denied"#;

async fn eventually(s: &common::TestServer, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (_, v) = s.get(path).await;
        if ok(&v) {
            return v;
        }
        last = v;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{path} never satisfied the test: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_preview_save_and_move_in_real_time() {
    for s in common::servers().await {
        let k = s.kind;
        let ago = |d: i64| (Utc::now() - Duration::days(d)).to_rfc3339();
        let order = |u: &str, d: i64, revenue: f64| json!({"type": "track", "userId": u, "event": "Order Completed", "properties": {"revenue": revenue}, "timestamp": ago(d)});
        let wallet = "0x52908400098527886E0F7030069857D2E4169EE7";
        let mut msgs = vec![
            // ann: matches everything.
            json!({"type": "identify", "userId": "ann", "traits": {"title": "Head of Marketing", "email": "ann@x.io", "wallet": wallet}}),
            order("ann", 10, 300.0),
            order("ann", 40, 250.0),
            // bob: a marketer with the orders and wallet, but denied marketing e-mail.
            json!({"type": "identify", "userId": "bob", "traits": {"title": "Marketing lead", "email": "bob@x.io", "wallet": "0x1111111111111111111111111111111111111111"}}),
            order("bob", 5, 400.0),
            order("bob", 6, 400.0),
            // cat: no wallet. dan: one order too few (old one outside 90 days).
            json!({"type": "identify", "userId": "cat", "traits": {"title": "marketing", "email": "cat@x.io"}}),
            order("cat", 1, 900.0),
            order("cat", 2, 900.0),
            json!({"type": "identify", "userId": "dan", "traits": {"title": "VP MARKETING", "wallet": "0x2222222222222222222222222222222222222222"}}),
            order("dan", 3, 600.0),
            order("dan", 120, 100.0),
            json!({"type": "identify", "userId": "eve", "traits": {"title": "Engineer"}}),
        ];
        msgs.push(json!({"type": "track", "userId": "zed", "event": "Signed Up"}));
        assert_eq!(s.batch(Value::Array(msgs)).await.0, 200);
        let bob = s.profile_of("user_id:bob").await["id"].as_i64().unwrap();
        let (st, _) = s
            .send(
                Method::PUT,
                &format!("/api/profiles/{bob}/consents"),
                json!({"channel": "email", "purpose": "marketing", "status": "denied"}),
            )
            .await;
        assert!(st < 300, "[{k}] consent {st}");

        let (st, p) = s
            .send(
                Method::POST,
                "/api/segments/preview",
                json!({"definition": EXAMPLE}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {p}");
        assert_eq!(p["count"], 1, "[{k}] {p}");
        assert_eq!(p["sample"][0]["email"], "ann@x.io", "[{k}] {p}");

        // Errors name the definition and say where.
        let (st, p) = s
            .send(
                Method::POST,
                "/api/segments/preview",
                json!({"definition": "traits.plan = \"pro\"\n  and count(track \"X\", 9x) > 1"}),
            )
            .await;
        assert_eq!(
            (st, p["field"].as_str()),
            (400, Some("definition")),
            "[{k}] {p}"
        );
        assert!(
            p["detail"].as_str().unwrap().contains("line 2, column 24"),
            "[{k}] {p}"
        );
        let (st, p) = s
            .send(
                Method::POST,
                "/api/segments/preview",
                json!({"definition": "in segment \"Nope\""}),
            )
            .await;
        assert_eq!(st, 400, "[{k}] {p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("'Nope' does not exist"),
            "[{k}] {p}"
        );
        let (st, p) = s
            .send(Method::POST, "/api/segments/preview", json!({}))
            .await;
        assert_eq!(
            (st, p["field"].as_str()),
            (400, Some("definition")),
            "[{k}] {p}"
        );

        // Saved: members computed at once.
        let (st, seg) = s
            .send(
                Method::POST,
                "/api/segments",
                json!({"name": "Crypto marketers", "definition": EXAMPLE}),
            )
            .await;
        assert_eq!(st, 201, "[{k}] {seg}");
        assert_eq!(seg["size"], 1, "[{k}] {seg}");
        let id = seg["id"].as_i64().unwrap();
        let (st, p) = s
            .send(
                Method::POST,
                "/api/segments",
                json!({"name": "Crypto marketers", "definition": "has email"}),
            )
            .await;
        assert_eq!(st, 409, "[{k}] {p}");
        let (st, p) = s
            .send(
                Method::POST,
                "/api/segments",
                json!({"name": "", "definition": "has email"}),
            )
            .await;
        assert_eq!((st, p["field"].as_str()), (400, Some("name")), "[{k}] {p}");
        // A segment built on another.
        let (st, fans) = s
            .send(Method::POST, "/api/segments", json!({"name": "Fans", "definition": "in segment \"Crypto marketers\" or traits.title = \"Engineer\""}))
            .await;
        assert_eq!((st, &fans["size"]), (201, &json!(2)), "[{k}] {fans}");
        let (st, p) = s
            .send(Method::DELETE, &format!("/api/segments/{id}"), json!({}))
            .await;
        assert_eq!(st, 409, "[{k}] {p}");

        // dan's second recent order arrives: he enters in real time.
        assert_eq!(s.batch(json!([order("dan", 0, 50.0)])).await.0, 200);
        let dan = s.profile_of("user_id:dan").await["id"].as_i64().unwrap();
        let segs = eventually(&s, &format!("/api/profiles/{dan}/segments"), |v| {
            v.as_array().is_some_and(|a| a.len() == 2)
        })
        .await;
        assert_eq!(segs, json!(["Crypto marketers", "Fans"]), "[{k}]");
        let (_, tl) = s
            .get(&format!(
                "/api/profiles/{dan}/timeline?name=Segment%20Entered"
            ))
            .await;
        assert_eq!(tl["items"].as_array().unwrap().len(), 2, "[{k}] {tl}");
        assert!(
            tl["items"][0]["properties"]["segment"].is_string(),
            "[{k}] {tl}"
        );
        let (_, m) = s.get(&format!("/api/segments/{id}/members")).await;
        assert_eq!(m["members"].as_array().unwrap().len(), 2, "[{k}] {m}");
        let (_, sizes) = s.get(&format!("/api/segments/{id}/sizes")).await;
        let last = sizes.as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["size"], 2, "[{k}] {sizes}");

        // Editing the definition recomputes; an exit is recorded too.
        let (st, v) = s
            .send(
                Method::PUT,
                &format!("/api/segments/{id}"),
                json!({"definition": "traits.title = \"Head of Marketing\""}),
            )
            .await;
        assert_eq!((st, &v["size"]), (200, &json!(1)), "[{k}] {v}");
        let (_, tl) = s
            .get(&format!(
                "/api/profiles/{dan}/timeline?name=Segment%20Exited"
            ))
            .await;
        assert_eq!(tl["items"].as_array().unwrap().len(), 1, "[{k}] {tl}");
        let (st, p) = s
            .send(
                Method::PUT,
                &format!("/api/segments/{id}"),
                json!({"definition": "in segment \"Fans\""}),
            )
            .await;
        assert_eq!(st, 400, "[{k}] cycle {p}");
        assert!(p["detail"].as_str().unwrap().contains("cycle"), "[{k}] {p}");
        let (_, list) = s.get("/api/segments").await;
        assert_eq!(list.as_array().unwrap().len(), 2);
        let fans_id = fans["id"].as_i64().unwrap();
        assert_eq!(
            s.send(
                Method::DELETE,
                &format!("/api/segments/{fans_id}"),
                json!({})
            )
            .await
            .0,
            204
        );
        assert_eq!(
            s.send(Method::DELETE, &format!("/api/segments/{id}"), json!({}))
                .await
                .0,
            204
        );
        assert_eq!(s.get(&format!("/api/segments/{id}")).await.0, 404);
        s.finish().await;
    }
}
