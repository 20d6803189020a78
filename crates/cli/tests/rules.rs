//! Decision rules over HTTP, on SQLite and (with RAPPORT_TEST_DATABASE_URL) PostgreSQL:
//! precise errors, a rule on segment entry that opens a task, sets a trait, tags and
//! emits an event within seconds of an angry complaint, caps, consent, the audit and a
//! dry run.

mod common;

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_act_on_what_happens() {
    for s in common::servers().await {
        let k = s.kind;
        let ago = |d: i64| (Utc::now() - Duration::days(d)).to_rfc3339();
        let ok_rule =
            json!({"name": "r", "when": "track \"X\"", "then": [{"action": "task", "title": "t"}]});
        for (rule, field) in [
            (
                json!({"name": "r", "when": "track \"X\"", "then": [{"action": "fax"}]}),
                "rules[0].then[0]",
            ),
            (
                json!({"name": "r", "when": "track \"X\"", "then": [{"action": "webhook", "url": "http://x"}]}),
                "rules[0].then[0]",
            ),
            (
                json!({"name": "r", "when": "tracks \"X\"", "then": [{"action": "task", "title": "t"}]}),
                "rules[0].when",
            ),
            (
                json!({"name": "r", "when": "track \"X\"", "where": "count(page, 3x) > 1", "then": [{"action": "task", "title": "t"}]}),
                "rules[0].where",
            ),
            (
                json!({"name": "r", "when": "track \"X\"", "then": []}),
                "rules[0].then",
            ),
            (
                json!({"name": "r", "when": "track \"X\"", "cap": {"max": 0, "per_hours": 1}, "then": [{"action": "task", "title": "t"}]}),
                "rules[0].cap",
            ),
        ] {
            let (st, p) = s
                .send(Method::PUT, "/api/rules", json!({"rules": [rule]}))
                .await;
            assert_eq!((st, p["field"].as_str()), (400, Some(field)), "[{k}] {p}");
        }
        let (st, p) = s
            .send(
                Method::PUT,
                "/api/rules",
                json!({"rules": [ok_rule.clone(), ok_rule]}),
            )
            .await;
        assert_eq!(
            (st, p["field"].as_str()),
            (400, Some("rules[1].name")),
            "[{k}] {p}"
        );
        assert_eq!(
            s.get("/api/rules").await.1["rules"],
            json!([]),
            "[{k}] refused rules change nothing"
        );

        let mut msgs = vec![
            json!({"type": "identify", "userId": "vip", "traits": {"email": "vip@x.io"}}),
            json!({"type": "identify", "userId": "quiet", "traits": {"email": "quiet@x.io"}}),
        ];
        for d in 1..=4 {
            msgs.push(json!({"type": "track", "userId": "vip", "event": "Order Completed", "properties": {"revenue": 400}, "timestamp": ago(d)}));
        }
        assert_eq!(s.batch(Value::Array(msgs)).await.0, 200);
        let (st, _) = s
            .send(Method::POST, "/api/segments", json!({"name": "Angry big spenders",
                "definition": "sum(track \"Order Completed\".revenue) > 1000 and complaints(1d) >= 1"}))
            .await;
        assert_eq!(st, 201);
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/rules",
                json!({"rules": [
                    {"name": "Call angry big spenders", "when": "track \"Segment Entered\" where segment = \"Angry big spenders\"",
                     "then": [
                        {"action": "task", "title": "Call them today", "body": "A big spender complained."},
                        {"action": "set_trait", "trait": "needs_call", "value": true},
                        {"action": "add_tag", "tag": "escalated"},
                        {"action": "emit", "event": "Escalated", "properties": {"level": 2}}
                     ],
                     "cap": {"max": 1, "per_hours": 24}},
                    {"name": "Thank marketing-consenting buyers", "when": "track \"Order Completed\"",
                     "consent": {"channel": "email", "purpose": "marketing"},
                     "then": [{"action": "add_tag", "tag": "thanked"}]}
                ]}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        let vip = s.profile_of("user_id:vip").await["id"].as_i64().unwrap();
        let t = std::time::Instant::now();
        assert_eq!(
            s.batch(json!([{"type": "track", "userId": "vip", "event": "Ticket Opened",
                "properties": {"body": "This is the worst service ever. My order never arrived and I want a refund!"}}])).await.0,
            200
        );
        let tasks = common::eventually(&s, "/api/tasks", |v| {
            v.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
        eprintln!("[{k}] complaint to task: {:?}", t.elapsed());
        assert_eq!(tasks[0]["title"], "Call them today", "[{k}] {tasks}");
        assert_eq!(tasks[0]["profile_id"], vip);
        assert_eq!(tasks[0]["rule"], "Call angry big spenders");
        // A task is created as its action runs; trait changes land with the engine
        // step's commit, a moment later.
        let p = common::eventually(&s, &format!("/api/profiles/{vip}"), |p| {
            p["traits"]["needs_call"] == true
        })
        .await;
        assert_eq!(p["traits"]["needs_call"], true, "[{k}] {p}");
        assert_eq!(p["traits"]["tags"], json!(["escalated"]), "[{k}] {p}");
        let (_, tl) = s
            .get(&format!("/api/profiles/{vip}/timeline?name=Escalated"))
            .await;
        assert_eq!(tl["items"][0]["properties"]["level"], 2, "[{k}] {tl}");
        assert_eq!(
            tl["items"][0]["properties"]["rule"],
            "Call angry big spenders"
        );
        let (_, f) = s
            .get("/api/rules/firings?rule=Call%20angry%20big%20spenders")
            .await;
        assert_eq!(f.as_array().unwrap().len(), 1, "[{k}] {f}");
        assert_eq!(f[0]["actions"].as_array().unwrap().len(), 4, "[{k}] {f}");

        // A new order: no consent on record, so the consent-bound rule does not fire; the
        // capped rule does not fire twice.
        assert_eq!(s.batch(json!([{"type": "track", "userId": "vip", "event": "Order Completed", "properties": {"revenue": 10}}])).await.0, 200);
        let quiet = s.profile_of("user_id:quiet").await["id"].as_i64().unwrap();
        let (st, _) = s
            .send(
                Method::PUT,
                &format!("/api/profiles/{quiet}/consents"),
                json!({"channel": "email", "purpose": "marketing", "status": "granted"}),
            )
            .await;
        assert!(st < 300);
        assert_eq!(s.batch(json!([{"type": "track", "userId": "quiet", "event": "Order Completed", "properties": {"revenue": 10}}])).await.0, 200);
        let f = common::eventually(
            &s,
            "/api/rules/firings?rule=Thank%20marketing-consenting%20buyers",
            |v| v.as_array().is_some_and(|a| !a.is_empty()),
        )
        .await;
        assert_eq!(f.as_array().unwrap().len(), 1, "[{k}] {f}");
        assert_eq!(
            f[0]["profile_id"], quiet,
            "[{k}] only the consenting buyer: {f}"
        );
        let (_, all) = s.get("/api/rules/firings").await;
        assert_eq!(all.as_array().unwrap().len(), 2, "[{k}] {all}");

        // A dry run judges recent events and changes nothing.
        let (st, d) = s
            .send(
                Method::POST,
                "/api/rules/dry-run",
                json!({"days": 30, "rule": {"name": "big orders", "when": "track \"Order Completed\" where revenue >= 400",
                    "where": "count(track \"Order Completed\") >= 4", "then": [{"action": "task", "title": "x"}]}}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {d}");
        assert_eq!(d["matching_events"], 4, "[{k}] {d}");
        assert_eq!(d["would_fire"], 4, "[{k}] {d}");
        assert_eq!(
            s.get("/api/tasks").await.1.as_array().unwrap().len(),
            1,
            "[{k}] nothing was done"
        );

        // Static segments and tag removal: a rule moves the VIP onto a hand-kept list.
        let (st, list) = s
            .send(
                Method::POST,
                "/api/segments",
                json!({"name": "Call list", "kind": "static"}),
            )
            .await;
        assert_eq!(st, 201, "[{k}] {list}");
        let (st, e) = s
            .send(
                Method::PUT,
                "/api/rules",
                json!({"rules": [{"name": "x", "when": "track \"Called\"",
                    "then": [{"action": "add_to_segment", "segment": "Angry big spenders"}]}]}),
            )
            .await;
        assert_eq!(st, 400, "[{k}] a dynamic segment is not a list: {e}");
        assert_eq!(
            e["field"].as_str(),
            Some("rules[0].then[0].segment"),
            "[{k}] {e}"
        );
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/rules",
                json!({"rules": [{"name": "Listed", "when": "track \"Called\"",
                    "then": [{"action": "add_to_segment", "segment": "Call list"},
                             {"action": "remove_tag", "tag": "escalated"}]}]}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        assert_eq!(
            s.batch(json!([{"type": "track", "userId": "vip", "event": "Called"}]))
                .await
                .0,
            200
        );
        let members =
            common::eventually(&s, &format!("/api/segments/{}/members", list["id"]), |v| {
                v["members"].as_array().is_some_and(|a| !a.is_empty())
            })
            .await;
        assert_eq!(members["members"], json!([vip]), "[{k}] {members}");
        let p = s.get(&format!("/api/profiles/{vip}")).await.1;
        assert_eq!(p["traits"]["tags"], json!([]), "[{k}] tag removed: {p}");

        // Shadow mode: a rule in dry run fires and says what it would do; nothing is done.
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/rules",
                json!({"rules": [{"name": "Shadow", "when": "track \"Waved\"", "dry_run": true,
                    "then": [{"action": "task", "title": "Wave back"},
                             {"action": "webhook", "url": "https://x.example.invalid/h", "secret": "0123456789abcdef0123"}]}]}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        assert_eq!(
            s.get("/api/rules").await.1["rules"][0]["dry_run"],
            true,
            "[{k}]"
        );
        assert_eq!(
            s.batch(json!([{"type": "track", "userId": "vip", "event": "Waved"}]))
                .await
                .0,
            200
        );
        let f = common::eventually(&s, "/api/rules/firings?rule=Shadow", |v| {
            v.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
        assert_eq!(
            f[0]["actions"],
            json!([{"action": "task", "title": "Wave back", "dry_run": true},
                {"action": "webhook", "url": "https://x.example.invalid/h", "dry_run": true}]),
            "[{k}] {f}"
        );
        assert_eq!(
            s.get("/api/tasks").await.1.as_array().unwrap().len(),
            1,
            "[{k}] no task from the shadow rule"
        );
        assert_eq!(
            s.get("/api/outbox").await.1.as_array().map(Vec::len),
            Some(0),
            "[{k}] no webhook queued"
        );
        s.finish().await;
    }
}

/// A real HTTP peer for webhooks: `/ok` accepts, `/flaky` fails twice then accepts,
/// `/down` always fails; every request is recorded with its signature header.
async fn receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
) {
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    type Log = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;
    let log: Log = Default::default();
    let app = axum::Router::new()
        .route(
            "/{path}",
            axum::routing::post(
                |State(log): State<Log>,
                 Path(path): Path<String>,
                 headers: HeaderMap,
                 body: String| async move {
                    let sig = headers
                        .get("x-rapport-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let mut l = log.lock().unwrap();
                    let tries = l.iter().filter(|(p, _, _)| *p == path).count();
                    l.push((path.clone(), sig, body));
                    match (path.as_str(), tries) {
                        ("ok", _) => StatusCode::OK,
                        ("flaky", n) if n >= 2 => StatusCode::NO_CONTENT,
                        _ => StatusCode::INTERNAL_SERVER_ERROR,
                    }
                },
            ),
        )
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, log)
}

fn hmac_hex(secret: &str, body: &str) -> String {
    use hmac::Mac;
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body.as_bytes());
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_and_dead_lettered() {
    for s in common::servers().await {
        let k = s.kind;
        let (url, log) = receiver().await;
        let secret = "s3cret-s3cret-s3cret";
        let hook = |path: &str, max: i64| json!({"action": "webhook", "url": format!("{url}/{path}"), "secret": secret, "max_attempts": max});
        let (st, p) = s
            .send(Method::PUT, "/api/rules", json!({"rules": [{"name": "bad", "when": "any", "then": [{"action": "webhook", "url": "ftp://x", "secret": secret}]}]}))
            .await;
        assert_eq!(
            (st, p["field"].as_str()),
            (400, Some("rules[0].then[0]")),
            "[{k}] {p}"
        );
        let (st, p) = s
            .send(Method::PUT, "/api/rules", json!({"rules": [{"name": "bad", "when": "any", "then": [{"action": "webhook", "url": "http://x", "secret": "short"}]}]}))
            .await;
        assert_eq!(
            (st, p["field"].as_str()),
            (400, Some("rules[0].then[0]")),
            "[{k}] {p}"
        );
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/rules",
                json!({"rules": [
                    {"name": "welcome", "when": "track \"Signed Up\"", "then": [hook("ok", 5)]},
                    {"name": "flaky", "when": "track \"Upgraded\"", "then": [hook("flaky", 5)]},
                    {"name": "down", "when": "track \"Churned\"", "then": [hook("down", 2)]}
                ]}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        assert_eq!(
            v[0]["then"][0]["secret"], "***",
            "[{k}] secrets are not shown: {v}"
        );
        assert_eq!(
            s.get("/api/rules").await.1["rules"][0]["then"][0]["secret"],
            "***"
        );
        let (st, _) = s
            .batch(json!([
                {"type": "track", "userId": "ann", "event": "Signed Up", "properties": {"plan": "pro"}},
                {"type": "track", "userId": "ann", "event": "Upgraded"},
                {"type": "track", "userId": "bob", "event": "Churned"}
            ]))
            .await;
        assert_eq!(st, 200);
        let dead = common::eventually(&s, "/api/outbox?status=dead", |v| {
            v.as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
        assert_eq!(dead[0]["rule"], "down", "[{k}] {dead}");
        assert_eq!(dead[0]["attempts"], 2);
        assert_eq!(dead[0]["last_error"], "HTTP 500");
        assert!(dead[0].get("secret").is_none(), "[{k}] {dead}");
        // Back-off: 1 s then 2 s before the third, successful, try.
        let mut delivered = Value::Null;
        for _ in 0..80 {
            let (_, v) = s.get("/api/outbox?status=delivered").await;
            if v.as_array().is_some_and(|a| a.len() == 2) {
                delivered = v;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let flaky = delivered
            .as_array()
            .unwrap_or_else(|| panic!("[{k}] not delivered"))
            .iter()
            .find(|o| o["rule"] == "flaky")
            .unwrap()
            .clone();
        assert_eq!(flaky["attempts"], 3, "[{k}] {flaky}");
        {
            let l = log.lock().unwrap();
            let (_, sig, body) = l.iter().find(|(p, _, _)| p == "ok").unwrap();
            assert_eq!(
                sig,
                &hmac_hex(secret, body),
                "[{k}] the signature is the body's HMAC-SHA256"
            );
            let b: Value = serde_json::from_str(body).unwrap();
            assert_eq!(b["rule"], "welcome");
            assert_eq!(b["event"]["name"], "Signed Up");
            assert_eq!(b["event"]["properties"]["plan"], "pro");
            assert_eq!(l.iter().filter(|(p, _, _)| p == "flaky").count(), 3);
        }
        // A dead letter can be sent again.
        let id = dead[0]["id"].as_i64().unwrap();
        let (st, v) = s
            .send(Method::POST, &format!("/api/outbox/{id}/retry"), json!({}))
            .await;
        assert_eq!((st, &v["status"]), (200, &json!("pending")), "[{k}] {v}");
        common::eventually(&s, "/api/outbox?status=dead", |v| {
            v.as_array()
                .is_some_and(|a| a.len() == 1 && a[0]["attempts"] == 2 && a[0]["id"] == id)
        })
        .await;
        assert_eq!(
            log.lock()
                .unwrap()
                .iter()
                .filter(|(p, _, _)| p == "down")
                .count(),
            4,
            "[{k}]"
        );
        let flaky_id = flaky["id"].as_i64().unwrap();
        assert_eq!(
            s.send(
                Method::POST,
                &format!("/api/outbox/{flaky_id}/retry"),
                json!({})
            )
            .await
            .0,
            409
        );
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_best_offer_is_decided_on_every_event() {
    for s in common::servers().await {
        let k = s.kind;
        let (st, p) = s
            .send(
                Method::PUT,
                "/api/offers",
                json!({"offers": [{"name": "x", "eligible": "count(page, 3x) > 1"}]}),
            )
            .await;
        assert_eq!(
            (st, p["field"].as_str()),
            (400, Some("offers[0].eligible")),
            "[{k}] {p}"
        );
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/offers",
                json!({"offers": [
                    {"name": "Welcome discount", "eligible": "count(track \"Order Completed\") = 0", "priority": 1,
                     "score": [{"when": "count(page \"Pricing\") >= 1", "points": 5}]},
                    {"name": "Free shipping", "eligible": "count(track \"Order Completed\") >= 1", "priority": 1,
                     "score": [{"when": "sum(track \"Order Completed\".revenue) > 100", "points": 10}]},
                    {"name": "VIP preview", "eligible": "sum(track \"Order Completed\".revenue) > 1000", "priority": 2}
                ]}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        assert_eq!(
            s.batch(json!([{"type": "page", "userId": "nia", "name": "Pricing"}]))
                .await
                .0,
            200
        );
        let nia = s.profile_of("user_id:nia").await["id"].as_i64().unwrap();
        let p = common::eventually(&s, &format!("/api/profiles/{nia}"), |v| {
            v["traits"]["next_best_offer"].is_string()
        })
        .await;
        assert_eq!(
            p["traits"]["next_best_offer"], "Welcome discount",
            "[{k}] {p}"
        );
        let (_, nbo) = s.get(&format!("/api/profiles/{nia}/next-best-offer")).await;
        assert_eq!(nbo["offer"]["score"], 5.0, "[{k}] {nbo}");
        assert_eq!(nbo["offer"]["why"][0]["points"], 5.0);
        // She buys: the decision moves with the event.
        assert_eq!(s.batch(json!([{"type": "track", "userId": "nia", "event": "Order Completed", "properties": {"revenue": 150}}])).await.0, 200);
        common::eventually(&s, &format!("/api/profiles/{nia}"), |v| {
            v["traits"]["next_best_offer"] == "Free shipping"
        })
        .await;
        assert_eq!(s.batch(json!([{"type": "track", "userId": "nia", "event": "Order Completed", "properties": {"revenue": 2000}}])).await.0, 200);
        common::eventually(&s, &format!("/api/profiles/{nia}"), |v| {
            v["traits"]["next_best_offer"] == "VIP preview"
        })
        .await;
        let (_, nbo) = s.get(&format!("/api/profiles/{nia}/next-best-offer")).await;
        assert_eq!(nbo["eligible"].as_array().unwrap().len(), 2, "[{k}] {nbo}");
        assert_eq!(nbo["eligible"][1]["offer"], "Free shipping");
        s.finish().await;
    }
}
