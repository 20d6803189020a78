//! The HTTP API end to end, on every store under test.

mod common;

use common::{identities, servers};
use serde_json::{json, Value};
use std::io::Write;

#[tokio::test]
async fn identify_normalises_every_identifier_into_one_profile() {
    for s in servers().await {
        let (st, body) = s
            .post_v1(
                "/v1/identify",
                json!({"userId": "42", "messageId": "m-1", "traits": {
                    "email": "Ann.Lee@Example.COM", "phone": "+44 20 7946 0958", "twitter": "@AnnLee",
                    "wallets": ["0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", {"chain": "eip155:137", "address": "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"}],
                    "name": "Ann Lee"},
                    "context": {"traits": {"emails": ["ann@work.io"]}, "externalIds": [{"id": "z-9", "type": "zendesk", "collection": "users", "encoding": "none"}]}}),
            )
            .await;
        assert_eq!(st, 200, "[{}] {body}", s.kind);
        assert_eq!(body, json!({"success": true}));
        let p = s.profile_of("user_id:42").await;
        assert_eq!(
            identities(&p),
            vec![
                "email:ann.lee@example.com",
                "email:ann@work.io",
                "external:zendesk:z-9",
                "phone:+442079460958",
                "social:x:annlee",
                "user_id:42",
                "wallet:eip155:137:0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
                "wallet:eip155:1:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            ],
            "[{}]",
            s.kind
        );
        for id in [
            "email:ANN.LEE@example.com",
            "phone:+442079460958",
            "social:twitter:annlee",
            "wallet:0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED",
            "external:zendesk:z-9",
        ] {
            assert_eq!(s.profile_of(id).await["id"], p["id"], "[{}] {id}", s.kind);
        }
        let ident = &p["identities"][0];
        assert_eq!(ident["verified"], false);
        assert!(
            ident["source"].as_str().unwrap_or("").starts_with("rk_w_"),
            "provenance names the key"
        );
        assert!(ident["first_seen"].is_string() && ident["last_seen"].is_string());
        assert_eq!(p["traits"]["name"], "Ann Lee");
        let (st, _) = s
            .get("/api/profiles/lookup?identifier=email:nobody@example.com")
            .await;
        assert_eq!(st, 404);
        s.finish().await;
    }
}

#[tokio::test]
async fn retried_batches_never_double_events() {
    for s in servers().await {
        let msgs = json!([
            {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "order-1", "properties": {"revenue": 10}},
            {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "order-2", "properties": {"revenue": 20}},
            {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "order-2", "properties": {"revenue": 20}}
        ]);
        for _ in 0..3 {
            let (st, b) = s.batch(msgs.clone()).await;
            assert_eq!(st, 200, "[{}] {b}", s.kind);
        }
        assert_eq!(s.stats().await["events"], 2, "[{}]", s.kind);
        s.finish().await;
    }
}

#[tokio::test]
async fn a_shared_identifier_merges_and_unmerge_restores_both() {
    for s in servers().await {
        s.batch(json!([
            {"type": "identify", "anonymousId": "laptop", "messageId": "a1", "traits": {"email": "kim@example.com", "name": "Kim"}},
            {"type": "page", "anonymousId": "laptop", "messageId": "a2", "name": "Home"},
        ]))
        .await;
        s.batch(json!([
            {"type": "identify", "anonymousId": "phone", "messageId": "b1", "traits": {"phone": "+14155552671", "city": "Oslo"}},
            {"type": "screen", "anonymousId": "phone", "messageId": "b2", "name": "Cart"},
        ]))
        .await;
        let a = s.profile_of("anonymous_id:laptop").await["id"]
            .as_i64()
            .unwrap();
        let b = s.profile_of("anonymous_id:phone").await["id"]
            .as_i64()
            .unwrap();
        assert_ne!(a, b);
        // The phone device now tells us the same e-mail: one person.
        let (st, _) = s.batch(json!([{"type": "identify", "anonymousId": "phone", "messageId": "b3", "traits": {"email": "KIM@example.com"}}])).await;
        assert_eq!(st, 200);
        let merged = s.profile_of("phone:+14155552671").await;
        assert_eq!(
            merged["id"].as_i64(),
            Some(a.min(b)),
            "[{}] the older profile survives",
            s.kind
        );
        assert_eq!(merged["traits"]["name"], "Kim");
        assert_eq!(merged["traits"]["city"], "Oslo");
        let m = &merged["merges"][0];
        assert_eq!(m["cause"], "email:kim@example.com", "[{}] {merged}", s.kind);
        assert_eq!(m["message_id"], "b3");
        assert!(m["by"].as_str().unwrap().starts_with("rk_w_"));
        let (_, tl) = s.get(&format!("/api/profiles/{a}/timeline")).await;
        assert_eq!(
            tl["items"].as_array().unwrap().len(),
            5,
            "[{}] both people's events",
            s.kind
        );
        // The merged-away id still resolves, to the survivor.
        assert_eq!(
            s.get(&format!("/api/profiles/{b}")).await.1["id"].as_i64(),
            Some(a)
        );

        // Unmerge: both come back with their own events and identifiers.
        let (st, undone) = s
            .send(
                reqwest::Method::POST,
                &format!("/api/profiles/{b}/unmerge"),
                json!({}),
            )
            .await;
        assert_eq!(st, 200, "[{}] {undone}", s.kind);
        assert!(undone["undone_at"].is_string());
        let pa = s.get(&format!("/api/profiles/{a}")).await.1;
        let pb = s.get(&format!("/api/profiles/{b}")).await.1;
        assert_eq!(pb["id"].as_i64(), Some(b));
        assert!(identities(&pa).contains(&"email:kim@example.com".to_string()));
        assert!(identities(&pb).contains(&"phone:+14155552671".to_string()));
        assert!(!identities(&pa).contains(&"phone:+14155552671".to_string()));
        let (_, ta) = s.get(&format!("/api/profiles/{a}/timeline")).await;
        let (_, tb) = s.get(&format!("/api/profiles/{b}/timeline")).await;
        assert_eq!(ta["items"].as_array().unwrap().len(), 2);
        assert_eq!(tb["items"].as_array().unwrap().len(), 3);
        // A person split them: the same tie no longer merges them automatically.
        s.batch(json!([{"type": "identify", "anonymousId": "phone", "messageId": "b4", "traits": {"email": "kim@example.com"}}])).await;
        assert_ne!(
            s.profile_of("anonymous_id:phone").await["id"],
            s.profile_of("anonymous_id:laptop").await["id"]
        );
        let (_, conflicts) = s.get("/api/conflicts").await;
        assert_eq!(
            conflicts[0]["reason"], "profiles were split by hand",
            "[{}] {conflicts}",
            s.kind
        );
        // Undoing twice is a conflict; unmerging a profile never merged is a clear 400.
        let (st, _) = s
            .send(
                reqwest::Method::POST,
                &format!("/api/profiles/{b}/unmerge"),
                json!({"merge_id": undone["id"]}),
            )
            .await;
        assert_eq!(st, 409);
        let (st, e) = s
            .send(
                reqwest::Method::POST,
                &format!("/api/profiles/{a}/unmerge"),
                json!({}),
            )
            .await;
        assert_eq!(st, 400, "{e}");
        assert_eq!(e["field"], "id");
        s.finish().await;
    }
}

#[tokio::test]
async fn different_user_ids_never_merge_automatically() {
    for s in servers().await {
        s.batch(json!([
            {"type": "identify", "userId": "alice", "messageId": "1", "traits": {"email": "family@example.com"}},
            {"type": "identify", "userId": "bob", "messageId": "2", "traits": {"email": "family@example.com"}},
        ]))
        .await;
        let alice = s.profile_of("user_id:alice").await;
        let bob = s.profile_of("user_id:bob").await;
        assert_ne!(alice["id"], bob["id"], "[{}]", s.kind);
        assert_eq!(
            s.profile_of("email:family@example.com").await["id"],
            alice["id"]
        );
        let (_, c) = s.get("/api/conflicts").await;
        assert_eq!(c.as_array().unwrap().len(), 1, "[{}] {c}", s.kind);
        assert_eq!(c[0]["identifier"], "email:family@example.com");
        assert_eq!(c[0]["reason"], "different user ids");
        // Reviewed: they are one person after all.
        let (st, m) = s
            .send(
                reqwest::Method::POST,
                &format!("/api/profiles/{}/merge", bob["id"]),
                json!({"other_id": alice["id"]}),
            )
            .await;
        assert_eq!(st, 200, "{m}");
        assert_eq!(s.profile_of("user_id:bob").await["id"], alice["id"]);
        assert_eq!(s.get("/api/conflicts").await.1.as_array().unwrap().len(), 0);
        // alias is an explicit instruction and merges across user ids.
        s.batch(json!([
            {"type": "identify", "userId": "carol", "messageId": "3"},
            {"type": "identify", "userId": "carol-new", "messageId": "4"},
            {"type": "alias", "userId": "carol-new", "previousId": "carol", "messageId": "5"},
        ]))
        .await;
        assert_eq!(
            s.profile_of("user_id:carol").await["id"],
            s.profile_of("user_id:carol-new").await["id"]
        );
        s.finish().await;
    }
}

#[tokio::test]
async fn bad_input_is_refused_precisely_and_stores_nothing() {
    for s in servers().await {
        s.batch(json!([{"type": "track", "userId": "u", "event": "Seed", "messageId": "seed"}]))
            .await;
        let before = s.stats().await;
        // A bad identifier (an e-mail, a phone, a wallet checksum, a userId object) no
        // longer refuses the request: it is dropped and reported, the event kept
        // (identity.rs::one_bad_identifier_does_not_lose_the_events). What is still
        // refused, naming the field, is the message's shape:
        let cases: Vec<(Value, u16, &str)> = vec![
            (
                json!([{"type": "track", "userId": "u"}]),
                400,
                "batch[0].event",
            ),
            (
                json!([{"type": "launch", "userId": "u"}]),
                400,
                "batch[0].type",
            ),
            (
                json!([{"type": "track", "event": "E"}]),
                400,
                "batch[0].userId",
            ),
            (
                json!([{"type": "track", "userId": "u", "event": "E", "timestamp": "yesterday"}]),
                400,
                "batch[0].timestamp",
            ),
            (
                json!([{"type": "track", "userId": "u", "event": "E", "properties": {"blob": "x".repeat(33 * 1024)}}]),
                413,
                "batch[0]",
            ),
        ];
        for (msgs, status, field) in cases {
            let (st, body) = s.batch(msgs).await;
            assert_eq!(st, status, "[{}] {body}", s.kind);
            assert_eq!(body["field"], field, "[{}] {body}", s.kind);
            assert_eq!(body["status"], status);
            assert!(body["detail"].as_str().unwrap().contains(field));
        }
        // Malformed JSON, oversize request, bad gzip.
        let raw = |body: Vec<u8>, gzip: bool| {
            let mut r = s
                .client
                .post(format!("{}/v1/batch", s.url))
                .basic_auth(&s.write, Some(""))
                .header("content-type", "application/json")
                .body(body);
            if gzip {
                r = r.header("content-encoding", "gzip");
            }
            r.send()
        };
        let r = raw(b"{\"batch\": [".to_vec(), false).await.unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert_eq!(r.json::<Value>().await.unwrap()["field"], "body");
        let big: Vec<Value> = (0..40).map(|i| json!({"type": "track", "userId": "u", "event": "E", "properties": {"p": "y".repeat(15_000), "i": i}})).collect();
        let r = raw(serde_json::to_vec(&json!({"batch": big})).unwrap(), false)
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        let r = raw(b"not gzip".to_vec(), true).await.unwrap();
        assert_eq!(r.status(), 400);
        // Unknown and missing keys; a write key cannot read.
        let r = s
            .client
            .post(format!("{}/v1/track", s.url))
            .basic_auth("rk_w_nope", Some(""))
            .json(&json!({"userId": "u", "event": "E"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let r = s
            .client
            .get(format!("{}/api/profiles", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = s
            .client
            .get(format!("{}/api/profiles", s.url))
            .bearer_auth(&s.write)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let r = s
            .client
            .get(format!("{}/api/stats", s.url))
            .basic_auth(&s.write, Some(""))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(s.stats().await, before, "[{}] nothing stored", s.kind);
        s.finish().await;
    }
}

#[tokio::test]
async fn gzip_bodies_and_clock_skew() {
    for s in servers().await {
        // Client clock one hour fast: event at 10:00, sent at 10:05 (its clock).
        let now = chrono::Utc::now();
        let skew = chrono::Duration::hours(1);
        let sent = now + skew;
        let happened = sent - chrono::Duration::minutes(5);
        let body = json!({"batch": [{"type": "track", "userId": "g", "event": "Zipped", "messageId": "z1", "timestamp": happened.to_rfc3339()}], "sentAt": sent.to_rfc3339()});
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&serde_json::to_vec(&body).unwrap()).unwrap();
        let r = s
            .client
            .post(format!("{}/v1/batch", s.url))
            .basic_auth(&s.write, Some(""))
            .header("content-encoding", "gzip")
            .header("content-type", "application/json")
            .body(enc.finish().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let p = s.profile_of("user_id:g").await;
        let (_, tl) = s.get(&format!("/api/profiles/{}/timeline", p["id"])).await;
        let occurred: chrono::DateTime<chrono::Utc> = tl["items"][0]["occurred_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let expected = now - chrono::Duration::minutes(5);
        assert!(
            (occurred - expected).num_seconds().abs() <= 5,
            "[{}] {occurred} vs {expected}",
            s.kind
        );
        s.finish().await;
    }
}

#[tokio::test]
async fn timeline_pages_and_filters() {
    for s in servers().await {
        let mut msgs = Vec::new();
        for i in 0..25 {
            let ts = format!("2025-01-{:02}T12:00:00Z", i + 1);
            let m = match i % 3 {
                0 => {
                    json!({"type": "page", "userId": "t", "name": "Home", "timestamp": ts, "messageId": format!("t{i}")})
                }
                1 => {
                    json!({"type": "track", "userId": "t", "event": "Email Opened", "context": {"channel": "email"}, "timestamp": ts, "messageId": format!("t{i}")})
                }
                _ => {
                    json!({"type": "track", "userId": "t", "event": "Order Completed", "timestamp": ts, "messageId": format!("t{i}")})
                }
            };
            msgs.push(m);
        }
        assert_eq!(s.batch(Value::Array(msgs)).await.0, 200);
        let id = s.profile_of("user_id:t").await["id"].clone();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let q = match &cursor {
                Some(c) => format!("/api/profiles/{id}/timeline?limit=10&cursor={c}"),
                None => format!("/api/profiles/{id}/timeline?limit=10"),
            };
            let (st, page) = s.get(&q).await;
            assert_eq!(st, 200, "{page}");
            for e in page["items"].as_array().unwrap() {
                seen.push(e["occurred_at"].as_str().unwrap().to_string());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 25, "[{}]", s.kind);
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.reverse();
        assert_eq!(seen, sorted, "newest first");
        let (_, pages) = s
            .get(&format!("/api/profiles/{id}/timeline?type=page"))
            .await;
        assert_eq!(pages["items"].as_array().unwrap().len(), 9);
        let (_, email) = s
            .get(&format!("/api/profiles/{id}/timeline?channel=email"))
            .await;
        assert_eq!(email["items"].as_array().unwrap().len(), 8);
        let (_, named) = s.get(&format!("/api/profiles/{id}/timeline?name=Order%20Completed&since=2025-01-10T00:00:00Z&until=2025-01-20T00:00:00Z")).await;
        assert_eq!(
            named["items"].as_array().unwrap().len(),
            3,
            "[{}] {named}",
            s.kind
        );
        let (st, e) = s
            .get(&format!("/api/profiles/{id}/timeline?since=soon"))
            .await;
        assert_eq!((st, e["field"].as_str()), (400, Some("since")));
        let (st, e) = s.get(&format!("/api/profiles/{id}/timeline?limit=0")).await;
        assert_eq!((st, e["field"].as_str()), (400, Some("limit")));
        let (st, _) = s.get("/api/profiles/999999/timeline").await;
        assert_eq!(st, 404);
        s.finish().await;
    }
}

#[tokio::test]
async fn traits_consents_and_search() {
    for s in servers().await {
        s.batch(json!([
            {"type": "identify", "userId": "p1", "messageId": "1", "traits": {"name": "Priya Patel", "title": "Head of Marketing", "email": "priya@acme.io"}},
            {"type": "identify", "userId": "p2", "messageId": "2", "traits": {"name": "Marco Rossi", "title": "Engineer", "email": "marco@globex.com"}},
            {"type": "identify", "userId": "p3", "messageId": "3", "traits": {"name": "Maria Costa", "title": "Marketing Lead"}},
        ]))
        .await;
        let id = s.profile_of("user_id:p1").await["id"].clone();
        let (st, p) = s
            .send(
                reqwest::Method::PATCH,
                &format!("/api/profiles/{id}/traits"),
                json!({"tier": "gold", "title": null}),
            )
            .await;
        assert_eq!(st, 200, "{p}");
        assert_eq!(p["traits"]["tier"], "gold");
        assert!(
            p["traits"].get("title").is_none(),
            "[{}] null removes: {p}",
            s.kind
        );
        let (st, e) = s
            .send(
                reqwest::Method::PATCH,
                &format!("/api/profiles/{id}/traits"),
                json!([1]),
            )
            .await;
        assert_eq!((st, e["field"].as_str()), (400, Some("body")));

        let (st, c) = s.send(reqwest::Method::PUT, &format!("/api/profiles/{id}/consents"), json!({"channel": "email", "purpose": "marketing", "status": "granted", "source": "signup-form", "proof": "Ticked 'send me offers' at 203.0.113.7", "at": "2025-03-01T10:00:00Z"})).await;
        assert_eq!(st, 200, "{c}");
        let (_, c) = s.send(reqwest::Method::PUT, &format!("/api/profiles/{id}/consents"), json!({"channel": "email", "purpose": "marketing", "status": "denied", "source": "unsubscribe-link"})).await;
        s.send(
            reqwest::Method::PUT,
            &format!("/api/profiles/{id}/consents"),
            json!({"channel": "sms", "purpose": "marketing", "status": "granted"}),
        )
        .await;
        assert_eq!(c.as_array().unwrap().len(), 1);
        assert_eq!(c[0]["status"], "denied", "the latest decision wins");
        let (_, all) = s.get(&format!("/api/profiles/{id}/consents")).await;
        assert_eq!(all.as_array().unwrap().len(), 2);
        for (body, field) in [
            (
                json!({"purpose": "marketing", "status": "granted"}),
                "channel",
            ),
            (
                json!({"channel": "email", "purpose": "marketing", "status": "maybe"}),
                "status",
            ),
            (
                json!({"channel": "email", "purpose": "marketing", "status": "granted", "at": "later"}),
                "at",
            ),
        ] {
            let (st, e) = s
                .send(
                    reqwest::Method::PUT,
                    &format!("/api/profiles/{id}/consents"),
                    body,
                )
                .await;
            assert_eq!((st, e["field"].as_str()), (400, Some(field)), "{e}");
        }

        let (_, r) = s.get("/api/profiles?q=marketing").await;
        let names: Vec<&str> = r["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            names,
            vec!["Maria Costa"],
            "[{}] title trait removed from Priya",
            s.kind
        );
        let (_, r) = s.get("/api/profiles?q=MARCO@globex.com").await;
        assert_eq!(r["items"][0]["email"], "marco@globex.com");
        let (_, r) = s.get("/api/profiles?q=globex").await;
        assert_eq!(r["items"].as_array().unwrap().len(), 1);
        let (_, page1) = s.get("/api/profiles?limit=2").await;
        assert_eq!(page1["items"].as_array().unwrap().len(), 2);
        let (_, page2) = s
            .get(&format!(
                "/api/profiles?limit=2&cursor={}",
                page1["next_cursor"].as_str().unwrap()
            ))
            .await;
        assert_eq!(page2["items"].as_array().unwrap().len(), 1);
        assert!(page2["next_cursor"].is_null());
        s.finish().await;
    }
}

#[tokio::test]
async fn jsonl_bulk_endpoint_is_all_or_nothing() {
    for s in servers().await {
        let good = "{\"type\":\"track\",\"userId\":\"j\",\"event\":\"A\"}\n{\"type\":\"identify\",\"userId\":\"j\",\"traits\":{\"email\":\"j@example.com\"}}\n";
        let bad = format!("{good}{{\"type\":\"track\",\"userId\":\"j\"}}\n");
        let post = |body: String| {
            s.client
                .post(format!("{}/api/import/events", s.url))
                .bearer_auth(&s.write)
                .body(body)
                .send()
        };
        let r = post(bad).await.unwrap();
        assert_eq!(r.status(), 400);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["field"], "line 3: event", "{e}");
        assert_eq!(s.stats().await["events"], 0);
        let r = post(good.to_string()).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["accepted"], 2);
        // The same upload again (no messageIds): content-derived ids, no doubles.
        post(good.to_string()).await.unwrap();
        assert_eq!(s.stats().await["events"], 2, "[{}]", s.kind);
        s.finish().await;
    }
}

#[tokio::test]
async fn ops_endpoints_openapi_and_keys() {
    for s in servers().await {
        let r = s
            .client
            .get(format!("{}/healthz", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = s.client.get(format!("{}/", s.url)).send().await.unwrap();
        assert!(r.text().await.unwrap().contains("Rapport"));
        s.batch(json!([{"type": "track", "userId": "m", "event": "E"}]))
            .await;
        let metrics = s
            .client
            .get(format!("{}/metrics", s.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.contains("rapport_events_accepted_total"));
        assert!(metrics.contains("rapport_ingest_seconds_bucket"));
        let (_, doc) = s.get("/openapi.json").await;
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for path in [
            "/v1/batch",
            "/v1/identify",
            "/v1/track",
            "/v1/page",
            "/v1/screen",
            "/v1/group",
            "/v1/alias",
            "/api/profiles",
            "/api/profiles/{id}",
            "/api/profiles/{id}/timeline",
            "/api/profiles/{id}/unmerge",
            "/api/profiles/{id}/consents",
            "/api/profiles/lookup",
            "/api/stats",
            "/api/import/events",
            "/api/keys",
            "/api/kb/articles",
            "/api/kb/search",
            "/api/community/questions",
            "/api/community/posts/{id}/answers",
        ] {
            assert!(doc["paths"].get(path).is_some(), "OpenAPI lacks {path}");
        }
        let (st, k) = s
            .send(
                reqwest::Method::POST,
                "/api/keys",
                json!({"scope": "write", "label": "site"}),
            )
            .await;
        assert_eq!(st, 200);
        let key = k["key"].as_str().unwrap().to_string();
        let send = |key: String| {
            s.client
                .post(format!("{}/v1/track", s.url))
                .basic_auth(key, Some(""))
                .json(&json!({"userId": "k", "event": "E"}))
                .send()
        };
        assert_eq!(send(key.clone()).await.unwrap().status(), 200);
        let (st, _) = s
            .send(
                reqwest::Method::DELETE,
                &format!("/api/keys/{}", k["id"]),
                json!({}),
            )
            .await;
        assert_eq!(st, 204);
        assert_eq!(
            send(key).await.unwrap().status(),
            401,
            "a revoked key stops working"
        );
        let (_, keys) = s.get("/api/keys").await;
        assert!(
            keys.as_array()
                .unwrap()
                .iter()
                .all(|k| k.get("key").is_none()),
            "secrets are never listed"
        );
        let (st, e) = s
            .send(reqwest::Method::POST, "/api/keys", json!({"scope": "root"}))
            .await;
        assert_eq!((st, e["field"].as_str()), (400, Some("scope")));
        let r = s
            .client
            .get(format!("{}/nope", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        // Found by schemathesis: an id out of range was a text/plain 400.
        let r = s
            .client
            .get(format!("{}/api/profiles/9223372036854775808", s.url))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert_eq!(r.json::<Value>().await.unwrap()["field"], "id");
        let get_profile = &doc["paths"]["/api/profiles/{id}"]["get"]["responses"];
        assert!(
            get_profile["401"]["content"]
                .get("application/problem+json")
                .is_some(),
            "{get_profile}"
        );
        assert!(get_profile["404"]["content"]
            .get("application/problem+json")
            .is_some());
        s.finish().await;
    }
}

/// A NUL character (which PostgreSQL cannot store) is refused the same way on both
/// stores, naming the field, and changes nothing; so are numbers past what sums can
/// hold; a broken client clock falls back to the arrival time; errors name fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_are_refused_or_bounded_on_both_stores() {
    for s in common::servers().await {
        let k = s.kind;
        let before = s.stats().await["events"].clone();
        let poison = json!({"userId": "u", "event": "e", "properties": {"r": "a\u{0}b"}});
        let (st, e) = s.post_v1("/v1/track", poison).await;
        assert_eq!(
            (st, e["field"].clone()),
            (400, json!("properties.r")),
            "[{k}] {e}"
        );
        let (st, e) = s
            .batch(json!([{"type": "track", "userId": "u", "event": "ok"},
                          {"type": "identify", "userId": "u", "traits": {"bio": "x\u{0}"}}]))
            .await;
        assert_eq!(
            (st, e["field"].clone()),
            (400, json!("batch[1].traits.bio")),
            "[{k}] {e}"
        );
        assert_eq!(s.stats().await["events"], before, "[{k}] nothing stored");
        // The admin API too: a trait patch, a segment name.
        let (st, _) = s
            .post_v1("/v1/identify", json!({"userId": "nul-user"}))
            .await;
        assert_eq!(st, 200);
        let id = s.profile_of("user_id:nul-user").await["id"].clone();
        let (st, e) = s
            .send(
                reqwest::Method::PATCH,
                &format!("/api/profiles/{id}/traits"),
                json!({"nick": "a\u{0}"}),
            )
            .await;
        assert_eq!((st, e["field"].clone()), (400, json!("nick")), "[{k}] {e}");
        let (st, e) = s
            .send(
                reqwest::Method::POST,
                "/api/segments",
                json!({"name": "a\u{0}", "definition": "traits.x = 1"}),
            )
            .await;
        assert_eq!((st, e["field"].clone()), (400, json!("name")), "[{k}] {e}");
        // A broken client clock: the event is kept at its arrival time and says so (not
        // in the year +12025); a window past 100 years is refused.
        let (st, _) = s
            .post_v1(
                "/v1/track",
                json!({"userId": "clock", "event": "Tick",
                "timestamp": "9999-12-31T00:00:00Z", "sentAt": "0001-01-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(st, 200);
        let p = s.profile_of("user_id:clock").await;
        let (_, tl) = s.get(&format!("/api/profiles/{}/timeline", p["id"])).await;
        let at = tl["items"][0]["occurred_at"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(at.starts_with("20"), "[{k}] {at}");
        assert!(
            tl["items"][0]["context"]["timestamp_fallback"].is_string(),
            "[{k}] {tl}"
        );
        let (st, e) = s
            .send(
                reqwest::Method::POST,
                "/api/segments/preview",
                json!({"definition": "count(track \"Tick\", 36500y) > 0"}),
            )
            .await;
        assert_eq!(st, 400, "[{k}] {e}");
        // Numbers stay exact, sums finite.
        let big: Value =
            serde_json::from_str("123456789012345678901234567890123456789").expect("number");
        let (st, e) = s
            .post_v1(
                "/v1/track",
                json!({"userId": "u", "event": "Big", "properties": {"revenue": big}}),
            )
            .await;
        assert_eq!(
            (st, e["field"].clone()),
            (400, json!("properties.revenue")),
            "[{k}] {e}"
        );
        let (st, e) = s
            .post_v1(
                "/v1/track",
                json!({"userId": "u", "event": "Big", "properties": {"revenue": 1.7e308}}),
            )
            .await;
        assert_eq!(
            (st, e["field"].clone()),
            (400, json!("properties.revenue")),
            "[{k}] {e}"
        );
        // A type error names the field, not the value.
        let (st, e) = s
            .send(
                reqwest::Method::POST,
                "/api/rewards",
                json!({"profile_id": 1.5, "token": "X", "amount": "1"}),
            )
            .await;
        assert_eq!(
            (st, e["field"].clone()),
            (400, json!("profile_id")),
            "[{k}] {e}"
        );
        s.finish().await;
    }
}
