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
        let p = s.get(&format!("/api/profiles/{vip}")).await.1;
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
        s.finish().await;
    }
}
