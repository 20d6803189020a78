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

/// A staff account with the `insight` role: the audience page and nothing else, with
/// a budget of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insight_account_sees_only_the_audience_page() {
    const PASSWORD: &str = "insight-password-1";
    for s in common::servers().await {
        let k = s.kind;
        let mut batch = Vec::new();
        // 160 in each country: with noise of scale 10 (ε = 0.1), a group this far above
        // the threshold of 50 is never withheld by chance (with 80, one run in 40 was).
        for i in 0..320 {
            batch.push(json!({"type": "identify", "userId": format!("a{i}"),
                "traits": {"email": format!("a{i}@audience.test"), "country": if i < 160 { "FR" } else { "DE" }}}));
        }
        let (st, v) = s.batch(Value::Array(batch)).await;
        assert_eq!(st, 200, "[{k}] {v}");
        rapport_app::users::create(&s.store, "partner@agency.test", PASSWORD, "insight")
            .await
            .expect("an insight account");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = client
            .post(format!("{}/login", s.url))
            .form(&[
                ("email", "partner@agency.test"),
                ("password", PASSWORD),
                ("next", "/"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303, "[{k}]");
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let get = |path: &'static str| {
            let c = client
                .get(format!("{}{path}", s.url))
                .header("cookie", &cookie);
            async move {
                let r = c.send().await.unwrap();
                let loc = r
                    .headers()
                    .get("location")
                    .map(|l| l.to_str().unwrap().to_string());
                (r.status().as_u16(), loc, r.text().await.unwrap_or_default())
            }
        };
        let (st, loc, _) = get("/").await;
        assert_eq!((st, loc.as_deref()), (303, Some("/audience")), "[{k}]");
        for path in [
            "/people",
            "/people/1",
            "/ui/search?q=a1",
            "/segments",
            "/settings",
            "/audit",
            "/email",
        ] {
            let (st, _, body) = get(path).await;
            assert_eq!(st, 403, "[{k}] {path}");
            assert!(
                body.contains("aggregate audience insight only"),
                "[{k}] {body}"
            );
        }
        let (st, _, page) = get("/audience").await;
        assert_eq!(st, 200, "[{k}]");
        assert!(
            !page.contains("href=\"/people\""),
            "[{k}] the nav offers people"
        );
        let csrf = page
            .split("name=\"csrf\" content=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_string();
        let ask = |by: &'static str, definition: &'static str| {
            let c = client
                .post(format!("{}/audience", s.url))
                .header("cookie", &cookie)
                .form(&[
                    ("_csrf", csrf.as_str()),
                    ("by", by),
                    ("definition", definition),
                    ("trait", ""),
                ]);
            async move {
                let r = c.send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap_or_default())
            }
        };
        let (st, body) = ask("country", "").await;
        assert_eq!(st, 200, "[{k}] {body}");
        assert!(
            body.contains("<td>FR</td>") && body.contains("<td>DE</td>"),
            "[{k}] {body}"
        );
        assert!(!body.contains("@audience.test"), "[{k}] {body}");
        let (st, body) = ask("", "traits.email = \"a1@audience.test\"").await;
        assert!(st == 200 && body.contains("Withheld"), "[{k}] {body}");
        // A bad definition names what is wrong; the budget runs out (ε 0.1 of 1 a day).
        let (st, body) = ask("", "traits.country = ").await;
        assert_eq!(st, 400, "[{k}] {body}");
        let mut spent = false;
        for _ in 0..12 {
            let (_, body) = ask("", "").await;
            if body.contains("budget") && body.contains("spent") {
                spent = true;
                break;
            }
        }
        assert!(spent, "[{k}] the budget never ran out");
        s.finish().await;
    }
}
