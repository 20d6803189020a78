//! Text analytics over HTTP, on SQLite and (with RAPPORT_TEST_DATABASE_URL) PostgreSQL:
//! every event's text analysed by the background worker, daily sentiment, per person
//! signals, and on-demand analysis with precise errors.

mod common;

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_are_analysed_and_summarised() {
    for s in common::servers().await {
        let k = s.kind;
        let ago = |h: i64| (Utc::now() - Duration::hours(h)).to_rfc3339();
        let (st, _) = s
            .batch(json!([
                {"type": "track", "userId": "zoe", "event": "Review Posted", "properties": {"review": "Absolutely love it, best headphones ever!!"}, "timestamp": ago(50)},
                {"type": "track", "userId": "zoe", "event": "Ticket Opened", "properties": {"body": "My order never arrived and support is useless. I want a refund."}, "timestamp": ago(30)},
                {"type": "track", "userId": "zoe", "event": "Product Viewed", "properties": {"product": "Mug"}, "timestamp": ago(20)},
                {"type": "track", "userId": "yan", "event": "Review Posted", "properties": {"review": "Great product, thanks @shop #happy"}, "timestamp": ago(5)},
            ]))
            .await;
        assert_eq!(st, 200);
        let zoe = s.profile_of("user_id:zoe").await["id"].as_i64().unwrap();
        let (_, tl) = s
            .get(&format!(
                "/api/profiles/{zoe}/timeline?name=Ticket%20Opened"
            ))
            .await;
        let ticket = tl["items"][0]["id"].as_i64().unwrap();
        let mut analysis = Value::Null;
        for _ in 0..100 {
            let (st, v) = s.get(&format!("/api/events/{ticket}/analysis")).await;
            if st == 200 {
                analysis = v;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(analysis["label"], "negative", "[{k}] {analysis}");
        assert_eq!(analysis["language"], "en");
        assert!(
            analysis["intents"]["complaint"].as_f64().unwrap() >= 0.5,
            "[{k}] {analysis}"
        );
        // An event without text has no analysis.
        let (_, tl) = s
            .get(&format!(
                "/api/profiles/{zoe}/timeline?name=Product%20Viewed"
            ))
            .await;
        let viewed = tl["items"][0]["id"].as_i64().unwrap();
        let (st, p) = s.get(&format!("/api/events/{viewed}/analysis")).await;
        assert_eq!(st, 404, "[{k}] {p}");

        let (_, sig) = s.get(&format!("/api/profiles/{zoe}/text-signals")).await;
        assert_eq!(sig["texts_30d"], 2, "[{k}] {sig}");
        assert!(sig["last_complaint_at"].is_string(), "[{k}] {sig}");
        let (_, series) = s
            .get(&format!("/api/text/sentiment?profile={zoe}&days=7"))
            .await;
        let texts: i64 = series
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["texts"].as_i64().unwrap())
            .sum();
        assert_eq!(texts, 2, "[{k}] {series}");
        let (_, all) = s.get("/api/text/sentiment").await;
        assert_eq!(
            all.as_array()
                .unwrap()
                .iter()
                .map(|d| d["texts"].as_i64().unwrap())
                .sum::<i64>(),
            3
        );

        let (st, v) = s
            .send(
                Method::POST,
                "/api/text/analyse",
                json!({"texts": ["I hate waiting", "¿Dónde puedo comprar esto? Es muy bonito"]}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        assert_eq!(v[0]["label"], "negative");
        assert_eq!(v[1]["language"], "es");
        for (body, field) in [
            (json!({"texts": []}), "texts"),
            (json!({"texts": ["ok", 3]}), "texts[1]"),
            (json!({"nope": 1}), "text"),
        ] {
            let (st, p) = s.send(Method::POST, "/api/text/analyse", body).await;
            assert_eq!((st, p["field"].as_str()), (400, Some(field)), "[{k}] {p}");
        }
        // Trends: "battery" rises this week; "shipping" was as common before.
        let mut msgs = vec![];
        for (i, t) in [
            "battery died after a day",
            "the battery drains so fast",
            "battery is dead again",
            "shipping was quick",
        ]
        .iter()
        .enumerate()
        {
            msgs.push(json!({"type": "track", "userId": format!("w{i}"), "event": "Posted", "properties": {"text": t}, "timestamp": ago(24 + i as i64)}));
        }
        for i in 0..8 {
            msgs.push(json!({"type": "track", "userId": format!("o{i}"), "event": "Posted", "properties": {"text": "shipping took a while"}, "timestamp": ago(24 * (10 + i))}));
        }
        assert_eq!(s.batch(Value::Array(msgs)).await.0, 200);
        let mut trends = Value::Null;
        for _ in 0..100 {
            let (_, v) = s.get("/api/text/trends?min_texts=2").await;
            if v.as_array().is_some_and(|a| !a.is_empty()) {
                trends = v;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(trends[0]["term"], "battery", "[{k}] {trends}");
        assert_eq!(trends[0]["this_week"], 3);
        assert!(
            trends
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["term"] != "shipping"),
            "[{k}] {trends}"
        );
        let (st, p) = s.get("/api/text/trends?limit=0").await;
        assert_eq!((st, p["field"].as_str()), (400, Some("limit")));
        let (st, p) = s.get("/api/text/sentiment?days=0").await;
        assert_eq!((st, p["field"].as_str()), (400, Some("days")));
        // Share of voice per product, once the brand's catalogue is known.
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/text/catalogue",
                json!({"products": ["Aurora Headphones", "Pulse Smartwatch"]}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        assert_eq!(v["products"].as_array().unwrap().len(), 2);
        let (st, p) = s
            .send(
                Method::PUT,
                "/api/text/catalogue",
                json!({"products": ["ok", ""]}),
            )
            .await;
        assert_eq!((st, p["field"].as_str()), (400, Some("products[1]")));
        assert_eq!(
            s.get("/api/text/catalogue").await.1["products"]
                .as_array()
                .unwrap()
                .len(),
            2,
            "a refused catalogue changes nothing"
        );
        let (st, _) = s
            .batch(json!([
                {"type": "track", "userId": "p1", "event": "Review Posted", "properties": {"review": "The aurora headphones are amazing"}, "timestamp": ago(3)},
                {"type": "track", "userId": "p2", "event": "Review Posted", "properties": {"review": "Aurora Headphones broke, terrible"}, "timestamp": ago(2)},
                {"type": "track", "userId": "p3", "event": "Review Posted", "properties": {"review": "Love my Pulse Smartwatch"}, "timestamp": ago(1)},
            ]))
            .await;
        assert_eq!(st, 200);
        let mut voice = Value::Null;
        for _ in 0..100 {
            let (_, v) = s.get("/api/text/products?days=7").await;
            if v.as_array().is_some_and(|a| {
                a.iter()
                    .map(|p| p["mentions"].as_i64().unwrap())
                    .sum::<i64>()
                    == 3
            }) {
                voice = v;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(voice[0]["product"], "Aurora Headphones", "[{k}] {voice}");
        assert_eq!(voice[0]["mentions"], 2);
        assert!((voice[0]["share_of_voice"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert!(
            voice[1]["sentiment"].as_f64().unwrap() > 0.5,
            "[{k}] {voice}"
        );
        let (_, a) = s
            .send(
                Method::POST,
                "/api/text/analyse",
                json!({"text": "my pulse smartwatch"}),
            )
            .await;
        assert_eq!(a[0]["entities"][0]["value"], "Pulse Smartwatch");
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_lexicon_and_leads() {
    for s in common::servers().await {
        let k = s.kind;
        let ago = |h: i64| (Utc::now() - Duration::hours(h)).to_rfc3339();
        // The brand's own words and topics, with errors naming the field.
        for (path, body, field) in [
            (
                "/api/text/lexicon",
                json!({"terms": {"meh": 9}}),
                "terms.meh",
            ),
            (
                "/api/text/lexicon",
                json!({"terms": {"two words": 1}}),
                "terms.two words",
            ),
            ("/api/text/lexicon", json!({"words": {}}), "terms"),
            (
                "/api/text/topics",
                json!({"topics": [{"name": "", "terms": ["x"]}]}),
                "topics[0].name",
            ),
            (
                "/api/text/topics",
                json!({"topics": [{"name": "A", "terms": []}]}),
                "topics[0].terms",
            ),
            (
                "/api/text/topics",
                json!({"topics": [{"name": "A", "terms": ["x"]}, {"name": "a", "terms": ["y"]}]}),
                "topics[1].name",
            ),
            (
                "/api/text/settings",
                json!({"create_leads": "yes"}),
                "create_leads",
            ),
        ] {
            let (st, p) = s.send(Method::PUT, path, body).await;
            assert_eq!(
                (st, p["field"].as_str()),
                (400, Some(field)),
                "[{k}] {path} {p}"
            );
        }
        assert_eq!(
            s.get("/api/text/topics").await.1["topics"],
            json!([]),
            "[{k}] refused input changes nothing"
        );
        let (_, before) = s
            .send(
                Method::POST,
                "/api/text/analyse",
                json!({"text": "the gizmo is zorgly"}),
            )
            .await;
        assert_eq!(before[0]["compound"], 0.0, "[{k}] {before}");
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/text/lexicon",
                json!({"terms": {"Zorgly": 3.1}}),
            )
            .await;
        assert_eq!(
            (st, &v["terms"]),
            (200, &json!({"zorgly": 3.1})),
            "[{k}] {v}"
        );
        let (_, after) = s
            .send(
                Method::POST,
                "/api/text/analyse",
                json!({"text": "the gizmo is zorgly"}),
            )
            .await;
        assert!(
            after[0]["compound"].as_f64().unwrap() > 0.5,
            "[{k}] {after}"
        );
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/text/topics",
                json!({"topics": [
                    {"name": "Delivery", "terms": ["courier", "shipping", "arrived late"]},
                    {"name": "Battery", "terms": ["battery", "charging"]}
                ]}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/text/settings",
                json!({"create_leads": true}),
            )
            .await;
        assert_eq!((st, &v["create_leads"]), (200, &json!(true)), "[{k}] {v}");

        s.batch(json!([{"type": "identify", "userId": "known", "traits": {"email": "known@example.com"}}])).await;
        let mut msgs = vec![];
        for i in 0..6 {
            msgs.push(json!({"type": "track", "userId": format!("d{i}"), "event": "Posted",
                "properties": {"text": format!("The courier lost my parcel, shipping is awful #{i}")}, "timestamp": ago(2 + i)}));
            msgs.push(json!({"type": "track", "userId": format!("b{i}"), "event": "Posted",
                "properties": {"text": "Love the battery, charging is fast and great"}, "timestamp": ago(3 + i)}));
        }
        msgs.push(json!({"type": "track", "userId": "writer", "event": "Posted",
            "properties": {"text": "Ask known@example.com or stranger@example.org, or pay 0x52908400098527886E0F7030069857D2E4169EE7"}, "timestamp": ago(1)}));
        assert_eq!(s.batch(Value::Array(msgs)).await.0, 200);

        let summary = common::eventually(&s, "/api/text/topics/summary?days=7", |v| {
            v.as_array().is_some_and(|a| {
                a.iter()
                    .map(|t| t["mentions"].as_i64().unwrap_or(0))
                    .sum::<i64>()
                    == 12
            })
        })
        .await;
        let delivery = summary
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["topic"] == "Delivery")
            .unwrap();
        assert_eq!(delivery["mentions"], 6, "[{k}] {summary}");
        assert!(
            delivery["sentiment"].as_f64().unwrap() < -0.3,
            "[{k}] {summary}"
        );
        let battery = summary
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["topic"] == "Battery")
            .unwrap();
        assert!(
            battery["sentiment"].as_f64().unwrap() > 0.5,
            "[{k}] {summary}"
        );
        let (_, series) = s.get("/api/text/sentiment?topic=Delivery&days=7").await;
        let n: i64 = series
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["texts"].as_i64().unwrap())
            .sum();
        assert_eq!(n, 6, "[{k}] {series}");
        let (st, p) = s.get("/api/text/sentiment?topic=Delivery&product=X").await;
        assert_eq!((st, p["field"].as_str()), (400, Some("topic")), "[{k}] {p}");
        let (_, rising) = s.get("/api/text/trends/topics").await;
        assert_eq!(rising.as_array().unwrap().len(), 2, "[{k}] {rising}");

        // Found without set-up: the two themes come apart.
        let (st, found) = s.get("/api/text/topics/discover?days=7").await;
        assert_eq!(st, 200, "[{k}] {found}");
        let terms_of = |w: &str| {
            found
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["terms"].as_array().unwrap().iter().any(|x| x == w))
                .cloned()
        };
        let courier = terms_of("courier").unwrap_or_else(|| panic!("[{k}] {found}"));
        assert!(
            !courier["terms"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "battery"),
            "[{k}] {found}"
        );
        assert!(
            courier["sentiment"].as_f64().unwrap() < 0.0,
            "[{k}] {found}"
        );
        let (st, p) = s.get("/api/text/topics/discover?limit=0").await;
        assert_eq!((st, p["field"].as_str()), (400, Some("limit")));

        // Entities link text to people: the known address is a mention; the unknown
        // ones became leads.
        let writer = s.profile_of("user_id:writer").await["id"].as_i64().unwrap();
        let known = s.profile_of("user_id:known").await["id"].as_i64().unwrap();
        let rels = common::eventually(&s, &format!("/api/profiles/{writer}/relationships"), |v| {
            v.to_string().matches("mentioned").count() >= 3
        })
        .await;
        assert!(
            rels.to_string().contains(&format!("\"target\":{known}")),
            "[{k}] {rels}"
        );
        let lead = s.profile_of("email:stranger@example.org").await;
        assert_eq!(lead["traits"]["lead"], true, "[{k}] {lead}");
        let wallet = s
            .profile_of("wallet:eip155:1:0x52908400098527886e0f7030069857d2e4169ee7")
            .await;
        assert_eq!(
            wallet["traits"]["lead_source"], "mentioned in a text",
            "[{k}] {wallet}"
        );
        s.finish().await;
    }
}
