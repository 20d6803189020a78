//! The relationship graph over HTTP, on SQLite and (with RAPPORT_TEST_DATABASE_URL)
//! PostgreSQL: explicit relationships, inference from events by the background worker,
//! pair-level views, recomputed metrics, ego networks, paths, closeness, social value
//! and word-of-mouth attribution.

mod common;

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};

fn ago(hours: i64) -> String {
    (Utc::now() - Duration::hours(hours)).to_rfc3339()
}

async fn wait_for<F: Fn(&Value) -> bool>(s: &common::TestServer, path: &str, ok: F) -> Value {
    for _ in 0..100 {
        let (st, v) = s.get(path).await;
        if st == 200 && ok(&v) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("[{}] {path} never satisfied the condition", s.kind);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relationships_metrics_and_word_of_mouth() {
    for s in common::servers().await {
        let k = s.kind;
        let (st, _) = s
            .batch(json!([
                {"type": "identify", "userId": "ann", "traits": {"email": "ann@example.com", "name": "Ann"}, "timestamp": ago(100)},
                {"type": "identify", "userId": "bob", "traits": {"socials": {"twitter": "bob"}}, "timestamp": ago(100)},
                {"type": "identify", "userId": "cat", "timestamp": ago(100)},
                {"type": "identify", "userId": "eve", "timestamp": ago(100)},
            ]))
            .await;
        assert_eq!(st, 200);

        // Explicit relationships; an unknown identifier becomes a profile.
        let (st, v) = s
            .send(Method::POST, "/api/relationships", json!({"relationships": [
                {"source": "ann", "target": "social:x:bob", "kind": "knows", "weight": 2},
                {"source": "email:new@example.com", "target": "email:ann@example.com", "kind": "colleague"},
            ]}))
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        assert_eq!(v, json!({"relationships": 2, "profiles_created": 1}));

        // Bad input names the field and changes nothing.
        let ann = s.profile_of("user_id:ann").await["id"].as_i64().unwrap();
        let before = s.get(&format!("/api/profiles/{ann}/relationships")).await.1;
        for (body, field) in [
            (
                json!({"source": "ann", "target": "bob", "kind": "Best Friend"}),
                "relationships[0].kind",
            ),
            (
                json!({"relationships": [{"source": "ann", "target": "bob", "kind": "knows"}, {"source": "ann", "target": "bob", "kind": "knows", "weight": -1}]}),
                "relationships[1].weight",
            ),
            (
                json!({"source": "email:not-an-email", "target": "bob", "kind": "knows"}),
                "relationships[0].source",
            ),
            (
                json!({"source": "ann", "kind": "knows"}),
                "relationships[0].target",
            ),
        ] {
            let (st, p) = s.send(Method::POST, "/api/relationships", body).await;
            assert_eq!(st, 400, "[{k}] {p}");
            assert_eq!(p["field"], field, "[{k}] {p}");
        }
        assert_eq!(
            s.get(&format!("/api/profiles/{ann}/relationships")).await.1,
            before
        );

        // Relationships inferred from events: a mention in a post, a mention list, a
        // referral, an accepted answer; then conversions.
        let (st, _) = s
            .batch(json!([
                {"type": "track", "userId": "ann", "event": "Post Created", "properties": {"network": "x", "text": "Loving it, thanks @bob!"}, "timestamp": ago(72)},
                {"type": "track", "userId": "bob", "event": "Post Created", "properties": {"mentions": ["cat"], "text": "cat should try this"}, "timestamp": ago(50)},
                {"type": "track", "userId": "cat", "event": "Order Completed", "properties": {"revenue": 40}, "timestamp": ago(24)},
                {"type": "track", "userId": "dan", "event": "Signed Up", "properties": {"referrer": "email:ann@example.com"}, "timestamp": ago(20)},
                {"type": "track", "userId": "eve", "event": "Answer Posted", "properties": {"question_author": "dan", "accepted": true}, "timestamp": ago(10)},
            ]))
            .await;
        assert_eq!(st, 200);
        let bob = s.profile_of("social:x:bob").await["id"].as_i64().unwrap();
        let cat = s.profile_of("user_id:cat").await["id"].as_i64().unwrap();
        let dan = s.profile_of("user_id:dan").await["id"].as_i64().unwrap();
        let new = s.profile_of("email:new@example.com").await["id"]
            .as_i64()
            .unwrap();
        let rels = wait_for(&s, &format!("/api/profiles/{ann}/relationships"), |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|c| c["profile_id"] == json!(dan)))
        })
        .await;
        let with_bob = rels
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["profile_id"] == json!(bob))
            .unwrap();
        let kinds: Vec<_> = with_bob["outgoing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["kind"].as_str().unwrap(),
                    r["weight"].as_f64().unwrap(),
                    r["explicit"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![("knows", 2.0, true), ("mentioned", 1.0, false)],
            "[{k}] {with_bob}"
        );
        let with_dan = rels
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["profile_id"] == json!(dan))
            .unwrap();
        assert_eq!(with_dan["outgoing"][0]["kind"], "referred");

        // The pair-level view is directional.
        let (st, pair) = s
            .get(&format!("/api/profiles/{ann}/relationships/{bob}"))
            .await;
        assert_eq!(st, 200);
        assert_eq!(pair["a_to_b"].as_array().unwrap().len(), 2);
        assert_eq!(pair["b_to_a"], json!([]));

        // Network metrics, stored as scores.
        let (st, run) = s
            .send(Method::POST, "/api/graph/recompute", json!({}))
            .await;
        assert_eq!(st, 200, "[{k}] {run}");
        assert_eq!(run["summary"]["nodes"], 6, "[{k}] {run}");
        assert_eq!(run["summary"]["betweenness"]["exact"], true);
        let (_, top) = s.get("/api/graph/top?by=pagerank&limit=10").await;
        let pr: Vec<f64> = top
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["pagerank"].as_f64().unwrap())
            .collect();
        assert_eq!(pr.len(), 6);
        assert!(pr.windows(2).all(|w| w[0] >= w[1]));
        assert!((pr.iter().sum::<f64>() - 1.0).abs() < 1e-6);
        let (_, comms) = s.get("/api/graph/communities").await;
        let total: i64 = comms["communities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["size"].as_i64().unwrap())
            .sum();
        assert_eq!(total, 6);
        assert_eq!(run["summary"]["communities"]["algorithm"], "louvain");
        // Leiden chosen for a run; later runs keep the choice; bad choices change nothing.
        for (body, field) in [
            (json!({"communities": "kmeans"}), "communities"),
            (
                json!({"communities": "leiden", "resolution": 0}),
                "resolution",
            ),
            (json!({"resolution": "high"}), "resolution"),
        ] {
            let (st, p) = s.send(Method::POST, "/api/graph/recompute", body).await;
            assert_eq!((st, p["field"].as_str()), (400, Some(field)), "[{k}] {p}");
        }
        let (_, latest) = s.get("/api/graph/runs/latest").await;
        assert!(
            latest["id"].is_i64() && latest["id"] == run["id"],
            "[{k}] a refused run made no run"
        );
        let (st, leiden) = s
            .send(
                Method::POST,
                "/api/graph/recompute",
                json!({"communities": "leiden", "resolution": 0.5}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {leiden}");
        let c = &leiden["summary"]["communities"];
        assert_eq!(
            (c["algorithm"].as_str(), c["resolution"].as_f64()),
            (Some("leiden"), Some(0.5))
        );
        let (_, again) = s
            .send(Method::POST, "/api/graph/recompute", json!({}))
            .await;
        assert_eq!(
            again["summary"]["communities"]["algorithm"], "leiden",
            "[{k}]"
        );
        let (st, p) = s.get("/api/graph/top?by=fame").await;
        assert_eq!((st, p["field"].as_str()), (400, Some("by")));
        // Ann sits between the newcomer and everyone else: the top broker.
        let (_, brokers) = s.get("/api/graph/top?by=betweenness&limit=1").await;
        assert_eq!(brokers[0]["profile_id"], json!(ann), "[{k}] {brokers}");
        let (_, profile) = s.get(&format!("/api/profiles/{ann}/social")).await;
        assert_eq!(profile["scores"]["reach1"], 3, "[{k}] {profile}");
        // Scores are part of the profile itself.
        let (_, p) = s.get(&format!("/api/profiles/{ann}")).await;
        assert_eq!(p["network"]["reach1"], 3, "[{k}] {p}");
        assert_eq!(p["network"]["profile_id"], json!(ann));

        // Ego network, path and closeness.
        let (_, ego) = s.get(&format!("/api/profiles/{ann}/network?depth=2")).await;
        let depth_of = |id: i64| {
            ego["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["profile_id"] == json!(id))
                .map(|n| n["depth"].as_i64().unwrap())
        };
        assert_eq!(
            (depth_of(ann), depth_of(bob), depth_of(cat)),
            (Some(0), Some(1), Some(2)),
            "[{k}] {ego}"
        );
        assert!(ego["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "mentioned"
                && e["source"] == json!(bob)
                && e["target"] == json!(cat)));
        let (st, p) = s.get(&format!("/api/profiles/{ann}/network?depth=3")).await;
        assert_eq!((st, p["field"].as_str()), (400, Some("depth")));
        let (st, path) = s
            .get("/api/graph/path?from=email:new@example.com&to=cat")
            .await;
        assert_eq!(st, 200, "[{k}] {path}");
        assert_eq!(path["profiles"], json!([new, ann, bob, cat]));
        assert_eq!(path["edges"].as_array().unwrap().len(), 4);
        let (_, close) = s.get(&format!("/api/profiles/{cat}/close")).await;
        assert_eq!(close[0]["profile_id"], json!(bob), "[{k}] {close}");

        // Social value: Ann referred Dan, who converted; Eve's answer helped.
        let (_, social) = s.get(&format!("/api/profiles/{ann}/social")).await;
        // 5 (converted referral) + 1 (referral) + 1 (positive mention of Bob).
        assert_eq!(social["evangelist"], 7.0, "[{k}] {social}");
        assert!(social["why"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("Referred 1 people, 1 of whom converted")));
        assert_eq!(social["channels"]["server"], 2, "[{k}] {social}");
        let eve = s.profile_of("user_id:eve").await["id"].as_i64().unwrap();
        let (_, social) = s.get(&format!("/api/profiles/{eve}/social")).await;
        assert_eq!(social["evangelist"], 4.0);

        // Word of mouth: Cat's order came through Bob, whom Ann had mentioned before.
        let (_, tl) = s
            .get(&format!(
                "/api/profiles/{cat}/timeline?name=Order%20Completed"
            ))
            .await;
        let order = tl["items"][0]["id"].as_i64().unwrap();
        let (st, attr) = s
            .get(&format!("/api/events/{order}/attribution?window_days=30"))
            .await;
        assert_eq!(st, 200, "[{k}] {attr}");
        let people: Vec<(i64, i64, f64)> = attr["people"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["profile_id"].as_i64().unwrap(),
                    p["depth"].as_i64().unwrap(),
                    p["credit"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(people, vec![(ann, 2, 0.5), (bob, 1, 0.5)], "[{k}] {attr}");
        let (_, attr) = s
            .get(&format!("/api/events/{order}/attribution?window_days=1"))
            .await;
        assert_eq!(
            attr["people"],
            json!([]),
            "[{k}] touches outside the window do not count"
        );
        let (_, inf) = s.get(&format!("/api/profiles/{ann}/influence")).await;
        assert_eq!(
            inf["conversions"].as_array().unwrap().len(),
            1,
            "[{k}] {inf}"
        );
        assert_eq!(inf["conversions"][0]["conversion"]["name"], "Signed Up");
        let (st, p) = s
            .get(&format!("/api/events/{order}/attribution?window_days=0"))
            .await;
        assert_eq!((st, p["field"].as_str()), (400, Some("window_days")));
        s.finish().await;
    }
}
