//! Websites send to Rapport: the browser SDKs' configuration routes, CORS, the bodies
//! and short paths analytics-next sends, browser keys held to their origins, rate
//! limits and bot filtering, the client address per the privacy setting, and the
//! campaign as first- and last-touch traits. Then the official npm builds of both
//! browser SDKs, in headless Chromium, on both stores.

mod common;

use common::TestServer;
use serde_json::{json, Value};

const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

/// A browser key allowed from `origins`.
async fn browser_key(s: &TestServer, origins: &[&str]) -> String {
    let (st, k) = s
        .send(
            reqwest::Method::POST,
            "/api/keys",
            json!({"scope": "write", "label": "website", "trust": "browser", "origins": origins}),
        )
        .await;
    assert_eq!(st, 200, "[{}] {k}", s.kind);
    assert_eq!(k["trust"], "browser");
    k["key"].as_str().expect("secret").to_string()
}

/// A POST as a page sends it: `text/plain`, the key in the body, from `origin`.
async fn from_page(
    s: &TestServer,
    path: &str,
    origin: &str,
    ua: &str,
    body: Value,
) -> reqwest::Response {
    s.client
        .post(format!("{}{path}", s.url))
        .header("Content-Type", "text/plain")
        .header("Origin", origin)
        .header("User-Agent", ua)
        .body(body.to_string())
        .send()
        .await
        .expect("request")
}

async fn events_named(s: &TestServer, identifier: &str, name: &str) -> Vec<Value> {
    let (st, p) = s
        .get(&format!(
            "/api/profiles/lookup?identifier={}",
            common::urlencode(identifier)
        ))
        .await;
    if st != 200 {
        return Vec::new();
    }
    let (_, tl) = s
        .get(&format!(
            "/api/profiles/{}/timeline?limit=500&name={name}",
            p["id"]
        ))
        .await;
    tl["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_requests_are_taken_as_the_sdks_send_them() {
    for s in common::servers().await {
        let k = s.kind;
        let shop = "https://shop.example";
        let key = browser_key(&s, &["https://Shop.example/"]).await;

        // analytics-next's settings: the Segment.io integration pointed back here.
        let r = s
            .client
            .get(format!("{}/v1/projects/{key}/settings", s.url))
            .header("Origin", shop)
            .send()
            .await
            .expect("settings");
        assert_eq!(r.status(), 200, "[{k}]");
        assert_eq!(r.headers()["access-control-allow-origin"], shop);
        let v: Value = r.json().await.expect("json");
        let host = s.url.trim_start_matches("http://");
        assert_eq!(v["integrations"]["Segment.io"]["apiKey"], key.as_str());
        assert_eq!(
            v["integrations"]["Segment.io"]["apiHost"],
            format!("{host}/v1")
        );
        assert_eq!(v["remotePlugins"], json!([]));
        // RudderStack's source configuration: by query or by Basic auth.
        let (st, v) = {
            let r = s
                .client
                .get(format!(
                    "{}/sourceConfig/?p=npm&v=3.34.1&writeKey={key}",
                    s.url
                ))
                .header("Origin", shop)
                .send()
                .await
                .expect("sourceConfig");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        };
        assert_eq!(st, 200, "[{k}] {v}");
        assert_eq!(v["source"]["enabled"], true);
        assert_eq!(v["source"]["destinations"], json!([]));
        let r = s
            .client
            .get(format!("{}/sourceConfig", s.url))
            .basic_auth(&key, Some(""))
            .header("Origin", shop)
            .send()
            .await
            .expect("sourceConfig");
        assert_eq!(r.status(), 200, "[{k}]");
        // Unknown keys, and an origin the key does not allow, are refused clearly.
        let r = s
            .client
            .get(format!("{}/v1/projects/rk_w_nope/settings", s.url))
            .send()
            .await
            .expect("settings");
        assert_eq!(r.status(), 404, "[{k}]");
        assert_eq!(
            s.client
                .get(format!("{}/sourceConfig/", s.url))
                .send()
                .await
                .expect("sourceConfig")
                .status(),
            401
        );
        let r = s
            .client
            .get(format!("{}/v1/projects/{key}/settings", s.url))
            .header("Origin", "https://evil.example")
            .send()
            .await
            .expect("settings");
        assert_eq!(r.status(), 403, "[{k}]");

        // The preflight RudderStack's Authorization header needs.
        let r = s
            .client
            .request(reqwest::Method::OPTIONS, format!("{}/v1/page", s.url))
            .header("Origin", shop)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type,anonymousid",
            )
            .send()
            .await
            .expect("preflight");
        assert_eq!(r.status(), 200, "[{k}]");
        assert_eq!(r.headers()["access-control-allow-origin"], shop);
        let allowed = r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap_or("")
            .to_ascii_lowercase();
        assert!(
            allowed.contains("authorization") && allowed.contains("anonymousid"),
            "{allowed}"
        );
        // The admin API is not opened to other sites.
        let r = s
            .client
            .request(reqwest::Method::OPTIONS, format!("{}/api/stats", s.url))
            .header("Origin", shop)
            .header("Access-Control-Request-Method", "GET")
            .send()
            .await
            .expect("preflight");
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "[{k}]"
        );

        // analytics-next's bodies: text/plain, writeKey inside, short paths, `b` batches.
        let page = json!({"type": "page", "anonymousId": "web-anon", "name": "Home", "writeKey": key,
            "context": {"page": {"url": "https://shop.example/?utm_source=bsky&utm_campaign=launch", "path": "/"},
                        "userAgent": CHROME, "locale": "de-DE", "library": {"name": "analytics.js"}}});
        let r = from_page(&s, "/v1/p", shop, CHROME, page.clone()).await;
        assert_eq!(
            r.status(),
            200,
            "[{k}] {}",
            r.text().await.unwrap_or_default()
        );
        assert_eq!(r.headers()["access-control-allow-origin"], shop);
        let batch = json!({"writeKey": key, "sentAt": "2030-01-01T00:00:00Z", "batch": [
            {"type": "track", "anonymousId": "web-anon", "event": "Product Viewed", "writeKey": key,
             "context": {"campaign": {"source": "newsletter", "medium": "email", "name": "spring"}}},
            {"type": "identify", "anonymousId": "web-anon", "userId": "web-user", "traits": {"email": "web@example.com"}}]});
        let r = from_page(&s, "/v1/b", shop, CHROME, batch).await;
        assert_eq!(
            r.status(),
            200,
            "[{k}] {}",
            r.text().await.unwrap_or_default()
        );
        for (path, body) in [
            (
                "/v1/t",
                json!({"type": "track", "userId": "web-user", "event": "Clicked", "writeKey": key}),
            ),
            (
                "/v1/i",
                json!({"type": "identify", "userId": "web-user", "writeKey": key, "traits": {"plan": "pro"}}),
            ),
            (
                "/v1/g",
                json!({"type": "group", "userId": "web-user", "groupId": "acme", "writeKey": key}),
            ),
            (
                "/v1/s",
                json!({"type": "screen", "userId": "web-user", "name": "Cart", "writeKey": key}),
            ),
            (
                "/v1/a",
                json!({"type": "alias", "userId": "web-user", "previousId": "old-web-id", "writeKey": key}),
            ),
        ] {
            let r = from_page(&s, path, shop, CHROME, body).await;
            assert_eq!(
                r.status(),
                200,
                "[{k}] {path}: {}",
                r.text().await.unwrap_or_default()
            );
        }
        // Same validation as everywhere: the field is named; no key at all is a 401.
        let r = from_page(
            &s,
            "/v1/t",
            shop,
            CHROME,
            json!({"type": "track", "userId": "u", "writeKey": key}),
        )
        .await;
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.expect("json")["field"], "event");
        let r = from_page(
            &s,
            "/v1/t",
            shop,
            CHROME,
            json!({"type": "track", "userId": "u", "event": "E"}),
        )
        .await;
        assert_eq!(r.status(), 401);

        // One person, the campaign as first and last touch, the page context kept, the
        // address truncated (the default), channel web.
        let p = s.profile_of("email:web@example.com").await;
        assert_eq!(
            s.profile_of("anonymous_id:web-anon").await["id"],
            p["id"],
            "[{k}]"
        );
        assert_eq!(
            p["traits"]["first_touch"]["source"], "bsky",
            "[{k}] {}",
            p["traits"]
        );
        assert_eq!(p["traits"]["first_touch"]["name"], "launch");
        assert_eq!(p["traits"]["last_touch"]["source"], "newsletter");
        assert_eq!(
            p["traits"]["last_touch"].get("term"),
            None,
            "older parts do not linger"
        );
        let (_, tl) = s
            .get(&format!("/api/profiles/{}/timeline?type=page", p["id"]))
            .await;
        let ev = &tl["items"][0];
        assert_eq!(ev["channel"], "web");
        assert_eq!(ev["context"]["ip"], "127.0.0.0", "[{k}] {ev}");
        assert_eq!(ev["context"]["locale"], "de-DE");
        assert_eq!(ev["context"]["page"]["path"], "/");
        // A segment reads the touch.
        let (st, v) = s
            .send(
                reqwest::Method::POST,
                "/api/segments/preview",
                json!({"definition": "traits.last_touch.source = \"newsletter\""}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        assert_eq!(v["count"], 1, "[{k}] {v}");

        // Another origin, or none, is refused for this key; a server key is not held.
        let r = from_page(&s, "/v1/p", "https://evil.example", CHROME, page.clone()).await;
        assert_eq!(r.status(), 403, "[{k}]");
        let r = s
            .client
            .post(format!("{}/v1/page", s.url))
            .basic_auth(&key, Some(""))
            .json(&page)
            .send()
            .await
            .expect("no origin");
        assert_eq!(r.status(), 403, "[{k}] curl with a public key");
        let r = s
            .client
            .post(format!("{}/v1/page", s.url))
            .basic_auth(&s.write, Some(""))
            .header("Origin", "https://evil.example")
            .json(&page)
            .send()
            .await
            .expect("server key");
        assert_eq!(r.status(), 200, "[{k}]");
        // A browser key does not bulk-import, read, or manage.
        let r = s
            .client
            .post(format!("{}/api/import/events", s.url))
            .bearer_auth(&key)
            .body("{}")
            .send()
            .await
            .expect("import");
        assert_eq!(r.status(), 403, "[{k}]");
        let r = s
            .client
            .get(format!("{}/api/settings/web", s.url))
            .bearer_auth(&key)
            .send()
            .await
            .expect("read");
        assert_eq!(r.status(), 403, "[{k}]");

        // Bots are dropped (200, so they do not retry), and kept when the brand says.
        let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        let crawl =
            json!({"type": "track", "anonymousId": "crawler", "event": "Crawled", "writeKey": key});
        assert_eq!(
            from_page(&s, "/v1/t", shop, bot, crawl.clone())
                .await
                .status(),
            200
        );
        assert!(
            events_named(&s, "anonymous_id:crawler", "Crawled")
                .await
                .is_empty(),
            "[{k}] a bot's event was stored"
        );
        let (st, w) = s
            .send(
                reqwest::Method::PUT,
                "/api/settings/web",
                json!({"keep_bots": true, "ip": "none"}),
            )
            .await;
        assert_eq!(
            (st, w["keep_bots"].clone(), w["rate_per_address"].clone()),
            (200, json!(true), json!(20)),
            "[{k}] {w}"
        );
        assert_eq!(from_page(&s, "/v1/t", shop, bot, crawl).await.status(), 200);
        let kept = events_named(&s, "anonymous_id:crawler", "Crawled").await;
        assert_eq!(kept.len(), 1, "[{k}]");
        assert!(
            kept[0]["context"].get("ip").is_none(),
            "[{k}] ip policy none: {}",
            kept[0]["context"]
        );

        // Settings are validated, naming the field, and change nothing when refused.
        let (st, e) = s
            .send(
                reqwest::Method::PUT,
                "/api/settings/web",
                json!({"rate_per_address": 0}),
            )
            .await;
        assert_eq!(
            (st, e["field"].clone()),
            (400, json!("rate_per_address")),
            "[{k}] {e}"
        );
        let (st, e) = s
            .send(
                reqwest::Method::PUT,
                "/api/settings/web",
                json!({"ip": "hashed"}),
            )
            .await;
        assert_eq!((st, e["field"].clone()), (400, json!("ip")), "[{k}] {e}");
        assert_eq!(s.get("/api/settings/web").await.1["ip"], "none");

        // Past the per-address rate: 429 with Retry-After; another address is not held.
        s.send(
            reqwest::Method::PUT,
            "/api/settings/web",
            json!({"rate_per_address": 2}),
        )
        .await;
        let mut codes = Vec::new();
        let mut retry_after = None;
        for i in 0..5 {
            let r = from_page(&s, "/v1/t", shop, CHROME, json!({"type": "track", "anonymousId": "fast", "event": "Tap", "messageId": format!("tap-{i}"), "writeKey": key})).await;
            codes.push(r.status().as_u16());
            if r.status() == 429 {
                retry_after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                assert_eq!(
                    r.headers()["access-control-allow-origin"],
                    shop,
                    "the SDK can read the 429"
                );
            }
        }
        assert_eq!(&codes[..2], &[200, 200], "[{k}] {codes:?}");
        assert!(codes[2..].contains(&429), "[{k}] {codes:?}");
        assert_eq!(retry_after.as_deref(), Some("1"), "[{k}]");
        // Retried after Retry-After (all five, as an SDK whose answer was lost would),
        // the refused ones arrive and none twice.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        for (i, code) in codes.iter().enumerate() {
            let r = from_page(&s, "/v1/t", shop, CHROME, json!({"type": "track", "anonymousId": "fast", "event": "Tap", "messageId": format!("tap-{i}"), "writeKey": key})).await;
            assert_eq!(r.status(), 200, "[{k}] retry {i} (first {code})");
            tokio::time::sleep(std::time::Duration::from_millis(550)).await;
        }
        assert_eq!(
            events_named(&s, "anonymous_id:fast", "Tap").await.len(),
            5,
            "[{k}]"
        );

        // Keys: an admin key cannot be a browser key; origins are validated and changed.
        let (st, e) = s
            .send(
                reqwest::Method::POST,
                "/api/keys",
                json!({"scope": "admin", "trust": "browser"}),
            )
            .await;
        assert_eq!((st, e["field"].clone()), (400, json!("trust")), "[{k}] {e}");
        let (st, e) = s
            .send(
                reqwest::Method::POST,
                "/api/keys",
                json!({"scope": "write", "trust": "browser", "origins": ["shop.example"]}),
            )
            .await;
        assert_eq!(
            (st, e["field"].clone()),
            (400, json!("origins[0]")),
            "[{k}] {e}"
        );
        let (_, keys) = s.get("/api/keys").await;
        let id = keys
            .as_array()
            .expect("keys")
            .iter()
            .find(|x| x["trust"] == "browser")
            .expect("browser key")["id"]
            .clone();
        let (st, v) = s
            .send(
                reqwest::Method::PATCH,
                &format!("/api/keys/{id}"),
                json!({"trust": "browser", "origins": ["https://evil.example"]}),
            )
            .await;
        assert_eq!(
            (st, v["origins"].clone()),
            (200, json!(["https://evil.example"])),
            "[{k}] {v}"
        );
        let r = from_page(&s, "/v1/p", "https://evil.example", CHROME, page.clone()).await;
        assert_eq!(r.status(), 200, "[{k}] the new origin is allowed at once");
        s.finish().await;
    }
}

/// The official npm builds of `@segment/analytics-next` and `@rudderstack/analytics-js`,
/// in Debian's headless Chromium, on a page of a local static server (tools/e2e/sdk.js).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_sdks_work_unchanged_in_chromium() {
    let (chromium, tools) = common::browser_tools();
    const BURST: usize = 15;
    for s in common::servers().await {
        let k = s.kind;
        // The shop's own port, so the key can allow exactly its origin.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let key = browser_key(&s, &[&format!("http://127.0.0.1:{port}")]).await;
        s.send(
            reqwest::Method::PUT,
            "/api/settings/web",
            json!({"rate_per_address": 5}),
        )
        .await;
        for sdk in ["segment", "rudderstack"] {
            let run = format!("{sdk}-{k}");
            let out = tokio::process::Command::new("node")
                .arg(tools.join("sdk.js"))
                .env("RAPPORT", &s.url)
                .env("WRITE_KEY", &key)
                .env("ADMIN_KEY", &s.admin)
                .env("SDK", sdk)
                .env("PORT", port.to_string())
                .env("RUN", &run)
                .env("BURST", BURST.to_string())
                .env("CHROMIUM", &chromium)
                .output()
                .await
                .expect("node runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "[{k}] {sdk}: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let report: Value = serde_json::from_str(stdout.trim()).expect("the run's report");

            // One profile: the browser's anonymous id, the e-mail, every event.
            let p = s.profile_of(&format!("email:{run}@example.com")).await;
            let anon = report["anonymousId"].as_str().expect("anonymous id");
            assert_eq!(
                s.profile_of(&format!("anonymous_id:{anon}")).await["id"],
                p["id"],
                "[{k}] {sdk}"
            );
            assert_eq!(p["traits"]["name"], "Web Buyer");
            assert_eq!(
                p["traits"]["first_touch"]["source"], "newsletter",
                "[{k}] {sdk}: {}",
                p["traits"]
            );
            let (_, tl) = s
                .get(&format!("/api/profiles/{}/timeline?limit=200", p["id"]))
                .await;
            let items = tl["items"].as_array().expect("timeline");
            let named = |t: &str, n: Option<&str>| {
                items
                    .iter()
                    .filter(|e| e["type"] == t && e["name"].as_str() == n)
                    .count()
            };
            assert_eq!(named("page", Some("Home")), 1, "[{k}] {sdk}");
            assert_eq!(named("page", Some("Spring sale")), 1, "[{k}] {sdk}");
            assert_eq!(named("identify", None), 1, "[{k}] {sdk}");
            assert_eq!(named("track", Some("Order Completed")), 1, "[{k}] {sdk}");
            // The burst went past the rate limit (429s seen), the SDK retried, each
            // event arrived once.
            let refusals = report["refusals"].as_array().expect("refusals");
            assert!(
                refusals
                    .iter()
                    .any(|r| r.as_str().is_some_and(|r| r.starts_with("429"))),
                "[{k}] {sdk}: no 429: {report}"
            );
            let mut burst: Vec<i64> = items
                .iter()
                .filter(|e| e["name"] == "Burst")
                .filter_map(|e| e["properties"]["i"].as_i64())
                .collect();
            burst.sort_unstable();
            assert_eq!(
                burst,
                (0..BURST as i64).collect::<Vec<_>>(),
                "[{k}] {sdk}: {report}"
            );
            let page = items.iter().find(|e| e["type"] == "page").expect("a page");
            assert_eq!(page["channel"], "web", "[{k}] {sdk}");
            assert!(page["context"]["page"]["url"]
                .as_str()
                .is_some_and(|u| u.contains("shop.html")));
            assert!(page["context"]["userAgent"]
                .as_str()
                .is_some_and(|u| u.contains("Chrome")));
            assert_eq!(page["context"]["ip"], "127.0.0.0");
            // The page on another origin (localhost, not 127.0.0.1) was refused at the
            // configuration step and sent nothing.
            assert!(
                report["otherOrigin"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!(403))),
                "[{k}] {sdk}: {report}"
            );
        }
        let (_, pages) = s.get("/api/stats").await;
        assert!(pages["events"].as_i64().unwrap_or(0) > 0);
        s.finish().await;
    }
}
