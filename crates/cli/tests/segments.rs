//! Segments over HTTP, on SQLite and (with RAPPORT_TEST_DATABASE_URL) PostgreSQL:
//! preview the issue's example, errors with line and column, save, members, real-time
//! entry as an event arrives (with its timeline event), size history, references.

mod common;

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};

const EXAMPLE: &str = r#"traits.title ~ "marketing" and count(track "Order Completed", 90d) >= 2 and sum(track "Order Completed".revenue, 365d) > 500 and has wallet on eip155:1 and not consent(email, marketing) = denied"#;

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
        let segs = common::eventually(&s, &format!("/api/profiles/{dan}/segments"), |v| {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfm_engagement_and_custom_scores_explain_themselves() {
    for s in common::servers().await {
        let k = s.kind;
        let ago = |d: i64| (Utc::now() - Duration::days(d)).to_rfc3339();
        let mut msgs = vec![];
        // u0 buys often, recently and big; u9 once, long ago, small.
        for i in 0..10i64 {
            let u = format!("u{i}");
            msgs.push(
                json!({"type": "identify", "userId": u, "traits": {"email": format!("{u}@x.io")}}),
            );
            for j in 0..(10 - i) {
                msgs.push(
                    json!({"type": "track", "userId": u, "event": "Order Completed",
                    "properties": {"revenue": 100 * (10 - i)}, "timestamp": ago(1 + i * 30 + j)}),
                );
            }
            if i < 3 {
                msgs.push(
                    json!({"type": "page", "userId": u, "name": "Pricing", "timestamp": ago(2)}),
                );
            }
        }
        assert_eq!(s.batch(Value::Array(msgs)).await.0, 200);
        for (body, field) in [
            (
                json!({"scores": [{"name": "Bad Name", "terms": [{"when": "has email", "points": 1}]}]}),
                "scores[0].name",
            ),
            (
                json!({"scores": [{"name": "rfm_r", "terms": [{"when": "has email", "points": 1}]}]}),
                "scores[0].name",
            ),
            (
                json!({"scores": [{"name": "lead", "terms": [{"when": "count(page, 3x) > 1", "points": 1}]}]}),
                "scores[0].terms[0].when",
            ),
            (
                json!({"scores": [{"name": "lead", "terms": [{"when": "has email", "points": "ten"}]}]}),
                "scores[0].terms[0].points",
            ),
        ] {
            let (st, p) = s.send(Method::PUT, "/api/scores/custom", body).await;
            assert_eq!((st, p["field"].as_str()), (400, Some(field)), "[{k}] {p}");
        }
        let (st, p) = s
            .send(Method::PUT, "/api/scores/rfm", json!({"window_days": 0}))
            .await;
        assert_eq!(
            (st, p["field"].as_str()),
            (400, Some("window_days")),
            "[{k}] {p}"
        );
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/scores/custom",
                json!({"scores": [{"name": "lead_score", "description": "fit and intent", "terms": [
                    {"when": "has email", "points": 10},
                    {"when": "count(page \"Pricing\", 30d) >= 1", "points": 25},
                    {"when": "sum(track \"Order Completed\".revenue) > 3000", "points": 40}
                ]}]}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        let (st, v) = s
            .send(Method::POST, "/api/scores/recompute", json!({}))
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        assert!(v["values"].as_i64().unwrap() >= 10 * 7, "[{k}] {v}");

        let u0 = s.profile_of("user_id:u0").await["id"].as_i64().unwrap();
        let (_, sc) = s.get(&format!("/api/profiles/{u0}/scores")).await;
        let get = |n: &str| {
            sc.as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == n)
                .cloned()
                .unwrap_or_else(|| panic!("[{k}] no {n}: {sc}"))
        };
        assert_eq!(get("rfm_r")["value"], 5.0, "[{k}] {sc}");
        assert_eq!(get("rfm_f")["value"], 5.0, "[{k}] {sc}");
        assert_eq!(get("rfm_m")["value"], 5.0, "[{k}] {sc}");
        assert_eq!(
            get("rfm")["explanation"]["label"],
            "champions",
            "[{k}] {sc}"
        );
        assert_eq!(get("rfm_frequency")["value"], 10.0);
        assert_eq!(get("lead_score")["value"], 75.0, "[{k}] {sc}");
        assert_eq!(
            get("lead_score")["explanation"]["terms"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert!(get("engagement")["value"].as_f64().unwrap() >= 0.0);
        let u9 = s.profile_of("user_id:u9").await["id"].as_i64().unwrap();
        let (_, sc9) = s.get(&format!("/api/profiles/{u9}/scores")).await;
        let r9 = sc9
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "rfm_r")
            .unwrap();
        assert_eq!(r9["value"], 1.0, "[{k}] {sc9}");

        // Scores in the segment language; no value counts as 0.
        let (_, p) = s
            .send(
                Method::POST,
                "/api/segments/preview",
                json!({"definition": "score.rfm_r >= 4"}),
            )
            .await;
        assert_eq!(p["count"], 4, "[{k}] {p}");
        let (_, p) = s
            .send(
                Method::POST,
                "/api/segments/preview",
                json!({"definition": "score.lead_score >= 35"}),
            )
            .await;
        // u0-u2 viewed pricing (10 + 25); u3 and u4 spent over 3,000 (10 + 40).
        assert_eq!(p["count"], 5, "[{k}] {p}");
        let (_, p) = s
            .send(
                Method::POST,
                "/api/segments/preview",
                json!({"definition": "score.nothing = 0 and score.lead_score < 35"}),
            )
            .await;
        assert_eq!(p["count"], 5, "[{k}] {p}");
        let (_, cfg) = s.get("/api/scores").await;
        assert_eq!(cfg["custom"][0]["name"], "lead_score", "[{k}] {cfg}");
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_angry_complaint_from_a_big_spender_moves_them_at_once() {
    for s in common::servers().await {
        let k = s.kind;
        let ago = |d: i64| (Utc::now() - Duration::days(d)).to_rfc3339();
        let mut msgs =
            vec![json!({"type": "identify", "userId": "vip", "traits": {"email": "vip@x.io"}})];
        for d in 1..=4 {
            msgs.push(json!({"type": "track", "userId": "vip", "event": "Order Completed", "properties": {"revenue": 400}, "timestamp": ago(d)}));
        }
        assert_eq!(s.batch(Value::Array(msgs)).await.0, 200);
        let (st, seg) = s
            .send(
                Method::POST,
                "/api/segments",
                json!({"name": "Angry big spenders", "definition": "sum(track \"Order Completed\".revenue) > 1000 and complaints(1d) >= 1"}),
            )
            .await;
        assert_eq!((st, &seg["size"]), (201, &json!(0)), "[{k}] {seg}");
        let vip = s.profile_of("user_id:vip").await["id"].as_i64().unwrap();
        let t = std::time::Instant::now();
        let (st, _) = s
            .batch(json!([{"type": "track", "userId": "vip", "event": "Ticket Opened",
                "properties": {"body": "This is the worst service ever. My order never arrived and I want a refund!"}}]))
            .await;
        assert_eq!(st, 200);
        let segs = common::eventually(&s, &format!("/api/profiles/{vip}/segments"), |v| {
            v.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
        let took = t.elapsed();
        assert_eq!(segs, json!(["Angry big spenders"]), "[{k}]");
        eprintln!("[{k}] complaint to segment entry: {took:?}");
        assert!(
            took < std::time::Duration::from_secs(5),
            "[{k}] took {took:?}"
        );
        let (_, tl) = s
            .get(&format!(
                "/api/profiles/{vip}/timeline?name=Segment%20Entered"
            ))
            .await;
        assert_eq!(
            tl["items"][0]["properties"]["segment"], "Angry big spenders",
            "[{k}] {tl}"
        );
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn micro_segments_group_and_describe_people() {
    for s in common::servers().await {
        let k = s.kind;
        let ago = |d: i64| (Utc::now() - Duration::days(d)).to_rfc3339();
        let mut msgs = vec![];
        for i in 0..60i64 {
            let u = format!("m{i}");
            match i % 3 {
                // Big recent spenders.
                0 => {
                    for d in 0..6 {
                        msgs.push(json!({"type": "track", "userId": u, "event": "Order Completed", "properties": {"revenue": 900}, "timestamp": ago(1 + d)}));
                    }
                }
                // One small purchase a long time ago.
                1 => msgs.push(json!({"type": "track", "userId": u, "event": "Order Completed", "properties": {"revenue": 15}, "timestamp": ago(300 + i)})),
                // Browsers who never buy.
                _ => {
                    for d in 0..3 {
                        msgs.push(json!({"type": "page", "userId": u, "name": "Home", "timestamp": ago(d)}));
                    }
                }
            }
        }
        assert_eq!(s.batch(Value::Array(msgs)).await.0, 200);
        let (st, p) = s
            .send(Method::POST, "/api/micro-segments/refresh", json!({"k": 1}))
            .await;
        assert_eq!((st, p["field"].as_str()), (400, Some("k")), "[{k}] {p}");
        let (st, groups) = s
            .send(Method::POST, "/api/micro-segments/refresh", json!({"k": 3}))
            .await;
        assert_eq!(st, 200, "[{k}] {groups}");
        let groups = groups.as_array().unwrap().clone();
        assert_eq!(groups.len(), 3, "[{k}] {groups:?}");
        assert!(groups.iter().all(|g| g["size"] == 20), "[{k}] {groups:?}");
        let big = groups
            .iter()
            .find(|g| g["description"].as_str().unwrap().contains("big spenders"))
            .unwrap_or_else(|| panic!("[{k}] {groups:?}"));
        let m0 = s.profile_of("user_id:m0").await["id"].as_i64().unwrap();
        let (_, segs) = s.get(&format!("/api/profiles/{m0}/segments")).await;
        assert_eq!(segs, json!([big["name"].clone()]), "[{k}]");
        // Usable as a segment.
        let def = format!("in segment \"{}\"", big["name"].as_str().unwrap());
        let (_, p) = s
            .send(
                Method::POST,
                "/api/segments/preview",
                json!({"definition": def}),
            )
            .await;
        assert_eq!(p["count"], 20, "[{k}] {p}");
        let id = big["id"].as_i64().unwrap();
        let (st, _) = s
            .send(
                Method::POST,
                &format!("/api/segments/{id}/refresh"),
                json!({}),
            )
            .await;
        assert_eq!(st, 400, "[{k}]");
        // Refreshing replaces the groups.
        let (_, again) = s
            .send(Method::POST, "/api/micro-segments/refresh", json!({"k": 2}))
            .await;
        assert_eq!(again.as_array().unwrap().len(), 2);
        let (_, list) = s.get("/api/segments").await;
        assert_eq!(
            list.as_array()
                .unwrap()
                .iter()
                .filter(|x| x["kind"] == "micro")
                .count(),
            2,
            "[{k}] {list}"
        );
        s.finish().await;
    }
}

/// A long OR of trait tests runs in time linear in its length (one set test per trait,
/// the merged traits built once per person), at any length the limit allows; past the
/// limit, a clear 400 with line and column, on both stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_ors_of_trait_tests_stay_cheap_and_are_bounded() {
    for s in common::servers().await {
        let k = s.kind;
        // Ann is two profiles (a merge), Bob one.
        s.batch(json!([
            {"type": "identify", "anonymousId": "ann-phone", "traits": {"k7": "v7", "plan": "p3"}},
            {"type": "identify", "userId": "ann", "traits": {"email": "ann@x.io"}},
            {"type": "identify", "userId": "bob", "traits": {"k499": "v499", "plan": "p400"}},
            {"type": "identify", "userId": "cy", "traits": {"k7": "nope"}}
        ]))
        .await;
        s.batch(json!([{"type": "alias", "userId": "ann", "previousId": "ann-phone"}]))
            .await;
        let ann = s.profile_of("user_id:ann").await;
        assert_eq!(ann["traits"]["k7"], "v7", "[{k}] merged: {ann}");
        let preview = |d: String| {
            s.send(
                Method::POST,
                "/api/segments/preview",
                json!({ "definition": d }),
            )
        };
        let distinct: Vec<String> = (0..500)
            .map(|i| format!("traits.k{i} = \"v{i}\""))
            .collect();
        let (st, v) = preview(distinct.join(" or ")).await;
        assert_eq!((st, v["count"].clone()), (200, json!(2)), "[{k}] {v}");
        let same: Vec<String> = (0..500)
            .map(|i| format!("traits.plan = \"p{i}\""))
            .collect();
        let (st, v) = preview(same.join(" or ")).await;
        assert_eq!((st, v["count"].clone()), (200, json!(2)), "[{k}] {v}");
        let (st, v) = preview(format!("{} or traits.k500 exists", distinct.join(" or "))).await;
        assert_eq!(st, 400, "[{k}] {v}");
        assert!(
            v["detail"]
                .as_str()
                .is_some_and(|d| d.contains("more than 500 conditions")),
            "{v}"
        );
        s.finish().await;
    }
}
