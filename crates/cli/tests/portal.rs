//! The customer portal over HTTP and in headless Chromium, on SQLite and PostgreSQL,
//! with sign-in links taken from a real SMTP server's mailbox (aiosmtpd): single-use and
//! expiring links, sessions apart from staff ones, staff-only traits refused, choices
//! recorded as consents, the data download and account deletion.

mod common;

use common::sink::Sink;
use common::TestServer;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const EMAIL: &str = "ann.portal@customer.test";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The relay, a sending domain, the person (with a staff-only trait), a segment she is
/// in and a marketing consent.
async fn set_up(s: &TestServer, sink: &Sink) -> i64 {
    let k = s.kind;
    let (st, v) = s
        .send(
            Method::PUT,
            "/api/email/settings",
            json!({"relay_url": format!("smtp://127.0.0.1:{}", sink.port), "public_url": s.url}),
        )
        .await;
    assert_eq!(st, 200, "[{k}] {v}");
    let (st, v) = s
        .send(
            Method::POST,
            "/api/email/domains",
            json!({"domain": "shop.example"}),
        )
        .await;
    assert_eq!(st, 201, "[{k}] {v}");
    let (st, v) = s
        .batch(json!([{"type": "identify", "userId": "ann", "traits": {"email": EMAIL, "name": "Ann", "vip_notes": "staff only", "country": "FR"}}]))
        .await;
    assert_eq!(st, 200, "[{k}] {v}");
    let id = s.profile_of(&format!("email:{EMAIL}")).await["id"]
        .as_i64()
        .unwrap();
    let (st, v) = s
        .send(
            Method::PUT,
            &format!("/api/profiles/{id}/consents"),
            json!({"channel": "email", "purpose": "marketing", "status": "granted"}),
        )
        .await;
    assert_eq!(st, 200, "[{k}] {v}");
    let (st, v) = s
        .send(Method::POST, "/api/segments", json!({"name": "French customers", "definition": "traits.country = \"FR\"", "description": "Customers who told us they live in France."}))
        .await;
    assert!(st == 200 || st == 201, "[{k}] {v}");
    let sid = v["id"].as_i64().unwrap();
    let (st, v) = s
        .send(
            Method::POST,
            &format!("/api/segments/{sid}/refresh"),
            json!({}),
        )
        .await;
    assert!(st < 300, "[{k}] {v}");
    id
}

fn link_in(sink: &Sink, to: &str) -> Option<String> {
    let out = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/portal/link.py"))
        .arg(sink.dir.path())
        .arg(to)
        .output()
        .expect("python3");
    let l = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!l.is_empty()).then_some(l)
}

async fn wait_link(sink: &Sink, to: &str) -> String {
    for _ in 0..200 {
        if let Some(l) = link_in(sink, to) {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no sign-in link reached the relay for {to}");
}

async fn form(
    s: &TestServer,
    cookie: &str,
    path: &str,
    f: &[(&str, &str)],
) -> (u16, String, Option<String>) {
    let r = client()
        .post(format!("{}{path}", s.url))
        .header("cookie", cookie)
        .form(f)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    let set = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (st, r.text().await.unwrap_or_default(), set)
}

async fn page(s: &TestServer, cookie: &str, path: &str) -> (u16, String) {
    let r = client()
        .get(format!("{}{path}", s.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

fn csrf(html: &str) -> String {
    html.split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a csrf field")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_links_sessions_and_refusals() {
    for s in common::servers().await {
        let k = s.kind;
        let sink = Sink::start();
        let id = set_up(&s, &sink).await;

        // The answer is the same for a known and an unknown address; only the known one
        // gets mail.
        let (st, known, _) = form(&s, "", "/me/sign-in", &[("email", EMAIL)]).await;
        let (st2, unknown, _) =
            form(&s, "", "/me/sign-in", &[("email", "nobody@customer.test")]).await;
        assert_eq!((st, st2), (200, 200), "[{k}]");
        assert_eq!(
            known.replace(EMAIL, "X"),
            unknown.replace("nobody@customer.test", "X"),
            "[{k}] the answers differ"
        );
        let (st, v, _) = form(&s, "", "/me/sign-in", &[("email", "not an address")]).await;
        assert_eq!(st, 400, "[{k}] {v}");
        let link = wait_link(&sink, EMAIL).await;
        assert!(link.starts_with(&s.url), "[{k}] {link}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            sink.messages().len(),
            1,
            "[{k}] one message, to the known address"
        );
        let token = link.split("token=").nth(1).unwrap().to_string();

        // The link's page does not use it (mail scanners open links); the button does.
        let (st, body) = page(&s, "", &format!("/me/link?token={token}")).await;
        assert_eq!(st, 200, "[{k}] {body}");
        let (st, _, cookie) = form(&s, "", "/me/link", &[("token", &token)]).await;
        assert_eq!(st, 303, "[{k}]");
        let cookie = cookie.expect("a session cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.starts_with("rapport_me="),
            "{cookie}"
        );
        let me = cookie.split(';').next().unwrap().to_string();
        // Replayed, expired, made up: refused, no session.
        let (st, body, set) = form(&s, "", "/me/link", &[("token", &token)]).await;
        assert_eq!((st, set.is_none()), (400, true), "[{k}]");
        assert!(body.contains("already used"), "[{k}] {body}");
        let now = rapport_domain::time::now_millis();
        s.store
            .create_link(rapport_store::PortalLink {
                token_hash: rapport_domain::privacy::hex_sha256("old-token"),
                purpose: "sign_in".into(),
                email: EMAIL.into(),
                profile_id: Some(id),
                created_at: now - 20 * 60_000,
                expires_at: now - 5 * 60_000,
                used_at: None,
            })
            .await
            .unwrap();
        let (st, body, _) = form(&s, "", "/me/link", &[("token", "old-token")]).await;
        assert!(st == 400 && body.contains("expired"), "[{k}] {st} {body}");
        let (st, body, _) = form(&s, "", "/me/link", &[("token", "made-up")]).await;
        assert!(st == 400 && body.contains("not valid"), "[{k}] {st} {body}");

        // Signed in: the portal; staff pages do not take the customer's session.
        let (st, home) = page(&s, &me, "/me").await;
        assert_eq!(st, 200, "[{k}] {home}");
        for text in [
            EMAIL,
            "My profile",
            "French customers",
            "Your sign-in link",
            "Why am I seeing this?",
        ] {
            assert!(home.contains(text), "[{k}] the portal lacks {text}");
        }
        assert!(
            !home.contains("staff only"),
            "[{k}] a staff-only trait is shown"
        );
        let (st, _) = page(&s, &me.replace("rapport_me", "rapport_session"), "/people").await;
        assert_eq!(st, 303, "[{k}] a customer session opened a staff page");
        let token_csrf = csrf(&home);

        // A staff-only trait, a missing CSRF token: refused, nothing changed.
        let (st, body, _) = form(
            &s,
            &me,
            "/me/traits",
            &[("_csrf", &token_csrf), ("trait.vip_notes", "hacked")],
        )
        .await;
        assert!(st == 400 && body.contains("vip_notes"), "[{k}] {st} {body}");
        let (st, _, _) = form(&s, &me, "/me/traits", &[("trait.name", "Mallory")]).await;
        assert_eq!(st, 400, "[{k}]");
        let p = s.profile_of(&format!("email:{EMAIL}")).await;
        assert_eq!(
            (
                p["traits"]["vip_notes"].as_str(),
                p["traits"]["name"].as_str()
            ),
            (Some("staff only"), Some("Ann")),
            "[{k}] {p}"
        );
        // An editable one.
        let (st, _, _) = form(
            &s,
            &me,
            "/me/traits",
            &[("_csrf", &token_csrf), ("trait.name", "Ann Customer")],
        )
        .await;
        assert_eq!(st, 303, "[{k}]");
        assert_eq!(
            s.profile_of(&format!("email:{EMAIL}")).await["traits"]["name"],
            "Ann Customer"
        );
        // Preferences: nothing ticked denies both purposes, as the customer's consent.
        let (st, _, _) = form(
            &s,
            &me,
            "/me/preferences",
            &[("_csrf", &token_csrf), ("pref.email.newsletter", "granted")],
        )
        .await;
        assert_eq!(st, 303, "[{k}]");
        let (_, consents) = s.get(&format!("/api/profiles/{id}/consents")).await;
        let of = |p: &str| {
            consents
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["purpose"] == p)
                .cloned()
                .unwrap_or(Value::Null)
        };
        assert_eq!(
            (
                of("marketing")["status"].as_str(),
                of("marketing")["source"].as_str()
            ),
            (Some("denied"), Some("customer")),
            "[{k}] {consents}"
        );
        assert_eq!(of("newsletter")["status"], "granted", "[{k}] {consents}");
        assert!(
            of("marketing")["proof"]
                .as_str()
                .unwrap()
                .contains("customer portal"),
            "[{k}] {consents}"
        );
        // A second address: chosen as primary, then removed; the last way we know her
        // cannot be removed.
        let (st, _) = s
            .batch(json!([{"type": "identify", "userId": "ann", "traits": {"emails": ["ann.work@customer.test"]}}]))
            .await;
        assert_eq!(st, 200, "[{k}]");
        let (_, home) = page(&s, &me, "/me").await;
        assert!(
            home.contains("Write to me at") && home.contains("ann.work@customer.test"),
            "[{k}] {home}"
        );
        let (st, _, _) = form(
            &s,
            &me,
            "/me/primary",
            &[
                ("_csrf", &token_csrf),
                ("address", "ann.work@customer.test"),
            ],
        )
        .await;
        assert_eq!(st, 303, "[{k}]");
        let (_, home) = page(&s, &me, "/me").await;
        assert!(
            home.contains("We write to <strong>ann.work@customer.test</strong>"),
            "[{k}] {home}"
        );
        let (st, body, _) = form(
            &s,
            &me,
            "/me/primary",
            &[("_csrf", &token_csrf), ("address", "someone@else.test")],
        )
        .await;
        assert!(st == 400 && body.contains("address"), "[{k}] {body}");
        for ident in ["email:ann.work@customer.test", "user_id:ann"] {
            let (st, _, _) = form(
                &s,
                &me,
                "/me/identities/remove",
                &[("_csrf", &token_csrf), ("identity", ident)],
            )
            .await;
            assert_eq!(st, 303, "[{k}] {ident}");
            let (st, _) = s
                .get(&format!(
                    "/api/profiles/lookup?identifier={}",
                    common::urlencode(ident)
                ))
                .await;
            assert_eq!(st, 404, "[{k}] {ident} still finds someone");
        }
        let (st, body, _) = form(
            &s,
            &me,
            "/me/identities/remove",
            &[
                ("_csrf", &token_csrf),
                ("identity", &format!("email:{EMAIL}")),
            ],
        )
        .await;
        assert!(st == 400 && body.contains("last way"), "[{k}] {body}");
        assert_eq!(
            s.profile_of(&format!("email:{EMAIL}")).await["id"],
            id,
            "[{k}] still her"
        );

        // The download.
        let r = client()
            .get(format!("{}/me/download", s.url))
            .header("cookie", &me)
            .send()
            .await
            .unwrap();
        assert!(r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment"));
        let doc: Value = r.json().await.unwrap();
        assert_eq!(
            (doc["format"].as_str(), doc["person"].as_i64()),
            (Some("rapport.person-export/1"), Some(id)),
            "[{k}]"
        );

        // Deleting needs the confirmation; then she is gone, and so is the session.
        let (st, _, _) = form(&s, &me, "/me/delete", &[("_csrf", &token_csrf)]).await;
        assert_eq!(st, 400, "[{k}] deleted without confirmation");
        let (st, body, _) = form(
            &s,
            &me,
            "/me/delete",
            &[("_csrf", &token_csrf), ("confirm", "yes")],
        )
        .await;
        assert!(st == 200 && body.contains("deleted"), "[{k}] {st} {body}");
        let (st, _) = s
            .get(&format!("/api/profiles/lookup?identifier=email:{EMAIL}"))
            .await;
        assert_eq!(st, 404, "[{k}]");
        let (st, body) = page(&s, &me, "/me").await;
        assert!(
            st == 200 && body.contains("Send me a sign-in link"),
            "[{k}] {body}"
        );
        let (_, audit) = s
            .get(&format!(
                "/api/audit?target=person:{id}&action=profile.erase"
            ))
            .await;
        assert_eq!(
            audit[0]["who"],
            format!("customer:person:{id}"),
            "[{k}] {audit}"
        );

        // Link requests are throttled per address.
        let mut last = 0;
        for _ in 0..8 {
            last = form(&s, "", "/me/sign-in", &[("email", "flood@customer.test")])
                .await
                .0;
        }
        assert_eq!(last, 429, "[{k}]");
        s.finish().await;
    }
}

/// Signs Ann in through the link the relay received; her session cookie.
async fn signed_in(s: &TestServer, sink: &Sink) -> String {
    let (st, _, _) = form(s, "", "/me/sign-in", &[("email", EMAIL)]).await;
    assert_eq!(st, 200, "[{}]", s.kind);
    let link = wait_link(sink, EMAIL).await;
    let token = link.split("token=").nth(1).unwrap().to_string();
    let (st, _, cookie) = form(s, "", "/me/link", &[("token", &token)]).await;
    assert_eq!(st, 303, "[{}]", s.kind);
    cookie
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// The SIWE message a wallet page shows (a hidden field's value, HTML-unescaped).
fn siwe_message(html: &str) -> String {
    html.split("name=\"message\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the message to sign")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Signs in (or adds) with `wallet` through the two wallet pages; the final answer.
async fn with_wallet(
    s: &TestServer,
    cookie: &str,
    purpose: &str,
    csrf: &str,
    wallet: &rapport_chain::wallet::HotWallet,
) -> (u16, String, Option<String>) {
    let address = wallet.address().to_checksum(None);
    let (st, body, _) = form(
        s,
        cookie,
        "/me/wallet",
        &[
            ("for", purpose),
            ("_csrf", csrf),
            ("address", &address),
            ("chain", "1"),
        ],
    )
    .await;
    assert_eq!(st, 200, "[{}] {body}", s.kind);
    let message = siwe_message(&body);
    assert!(
        message.contains(&address) && message.contains("Chain ID: 1"),
        "{message}"
    );
    let signature = wallet.sign_message(&message).expect("sign");
    form(
        s,
        cookie,
        "/me/wallet/verify",
        &[
            ("for", purpose),
            ("_csrf", csrf),
            ("message", &message),
            ("signature", &signature),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_second_address_wallets_and_frequency() {
    for s in common::servers().await {
        let k = s.kind;
        let sink = Sink::start();
        let id = set_up(&s, &sink).await;
        let me = signed_in(&s, &sink).await;
        let (_, home) = page(&s, &me, "/me").await;
        let token_csrf = csrf(&home);

        // How often: weekly lets one marketing e-mail through in 7 days, a pause none;
        // an unknown choice is refused and changes nothing.
        let (st, v) = s
            .send(Method::POST, "/api/email/templates", json!({"name": "promo", "subject": "News", "html": "<p>Hi</p><p><a href=\"{{ preferences_url }}\">Your choices</a></p>"}))
            .await;
        assert!(st < 300, "[{k}] {v}");
        let (st, body, _) = form(
            &s,
            &me,
            "/me/preferences",
            &[
                ("_csrf", &token_csrf),
                ("pref.email.marketing", "granted"),
                ("freq.email.marketing", "hourly"),
            ],
        )
        .await;
        assert!(
            st == 400 && body.contains("freq.email.marketing"),
            "[{k}] {st} {body}"
        );
        let (_, consents) = s.get(&format!("/api/profiles/{id}/consents")).await;
        assert_eq!(consents.as_array().unwrap().len(), 1, "[{k}] {consents}");
        let (st, _, _) = form(
            &s,
            &me,
            "/me/preferences",
            &[
                ("_csrf", &token_csrf),
                ("pref.email.marketing", "granted"),
                ("freq.email.marketing", "weekly"),
            ],
        )
        .await;
        assert_eq!(st, 303, "[{k}]");
        let (_, consents) = s.get(&format!("/api/profiles/{id}/consents")).await;
        let marketing = consents
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["purpose"] == "marketing")
            .cloned()
            .unwrap();
        assert_eq!(
            (
                marketing["status"].as_str(),
                marketing["frequency"].as_str(),
                marketing["source"].as_str()
            ),
            (Some("granted"), Some("weekly"), Some("customer")),
            "[{k}] {consents}"
        );
        let promo = || json!({"template": "promo", "to": format!("email:{EMAIL}"), "from": "news@shop.example", "kind": "marketing"});
        let (st, first) = s.send(Method::POST, "/api/email/send", promo()).await;
        assert_eq!(
            (st, first["status"].as_str()),
            (202, Some("queued")),
            "[{k}] {first}"
        );
        let (_, second) = s.send(Method::POST, "/api/email/send", promo()).await;
        assert_eq!(second["status"], "skipped", "[{k}] {second}");
        assert!(
            second["reason"]
                .as_str()
                .unwrap()
                .contains("at most one a week"),
            "[{k}] {second}"
        );
        let (st, _, _) = form(
            &s,
            &me,
            "/me/preferences",
            &[
                ("_csrf", &token_csrf),
                ("pref.email.marketing", "granted"),
                ("freq.email.marketing", "paused"),
            ],
        )
        .await;
        assert_eq!(st, 303, "[{k}]");
        let (_, paused) = s.send(Method::POST, "/api/email/send", promo()).await;
        assert!(
            paused["status"] == "skipped"
                && paused["reason"]
                    .as_str()
                    .unwrap()
                    .contains("paused by the customer until"),
            "[{k}] {paused}"
        );
        let (_, home) = page(&s, &me, "/me").await;
        assert!(home.contains("Paused until"), "[{k}] {home}");
        // The footer link of the one that went: the preference centre.
        let mut footer = false;
        for _ in 0..100 {
            footer = sink.messages().iter().any(|m| {
                std::fs::read_to_string(m)
                    .is_ok_and(|t| t.contains(&format!("{}/me", s.url)) && t.contains("News"))
            });
            if footer {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            footer,
            "[{k}] no message with the preferences link reached the relay"
        );

        // A second address joins her once its owner opens the confirmation link.
        const SECOND: &str = "ann.second@customer.test";
        let (st, body, _) = form(
            &s,
            &me,
            "/me/emails",
            &[("_csrf", &token_csrf), ("email", EMAIL)],
        )
        .await;
        assert!(
            st == 400 && body.contains("already yours"),
            "[{k}] {st} {body}"
        );
        let (st, _, _) = form(
            &s,
            &me,
            "/me/emails",
            &[("_csrf", &token_csrf), ("email", SECOND)],
        )
        .await;
        assert_eq!(st, 303, "[{k}]");
        // Until then the address is only a recipient (the message is logged on a
        // profile of its own), not hers.
        let (_, before) = s
            .get(&format!("/api/profiles/lookup?identifier=email:{SECOND}"))
            .await;
        assert_ne!(
            before["id"], id,
            "[{k}] the address joined before it was confirmed"
        );
        let link = wait_link(&sink, SECOND).await;
        let token = link.split("token=").nth(1).unwrap().to_string();
        let (st, _, cookie) = form(&s, "", "/me/link", &[("token", &token)]).await;
        assert!(st == 303 && cookie.is_some(), "[{k}] {st}");
        let p = s.profile_of(&format!("email:{SECOND}")).await;
        assert_eq!(p["id"], id, "[{k}] {p}");
        let second = p["identities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["value"] == SECOND)
            .cloned()
            .unwrap();
        assert_eq!(second["verified"], true, "[{k}] {p}");

        // A wallet, proved by signing, joins her; the signed message works once.
        let wallet = rapport_chain::devnode::DevNode::wallet(1);
        let (st, _) = page(&s, &me, "/me/wallet?for=add").await;
        assert_eq!(st, 200, "[{k}]");
        let (st, body, _) = with_wallet(&s, &me, "add", &token_csrf, &wallet).await;
        assert_eq!(st, 303, "[{k}] {body}");
        let p = s.profile_of(&format!("email:{EMAIL}")).await;
        let w = p["identities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["kind"] == "wallet")
            .cloned()
            .expect("a wallet");
        assert_eq!(w["verified"], true, "[{k}] {p}");
        assert!(
            w["value"]
                .as_str()
                .unwrap()
                .ends_with(&wallet.address().to_checksum(None)),
            "[{k}] {w}"
        );
        // A bad signature: refused with the field named.
        let (st, body, _) = form(
            &s,
            &me,
            "/me/wallet/verify",
            &[
                ("for", "add"),
                ("_csrf", &token_csrf),
                ("message", "hello"),
                ("signature", "0x00"),
            ],
        )
        .await;
        assert!(st == 400 && body.contains("message"), "[{k}] {st} {body}");

        // Signed out, the wallet signs her in; a wallet only named in tracking does not.
        let (st, _, _) = form(&s, &me, "/me/sign-out", &[("_csrf", &token_csrf)]).await;
        assert_eq!(st, 303, "[{k}]");
        let (st, body, cookie) = with_wallet(&s, "", "sign-in", "", &wallet).await;
        assert!(st == 303 && cookie.is_some(), "[{k}] {st} {body}");
        let again = cookie.unwrap().split(';').next().unwrap().to_string();
        let (_, home) = page(&s, &again, "/me").await;
        assert!(
            home.contains("My profile") && home.contains(EMAIL),
            "[{k}] {home}"
        );
        let stranger = rapport_chain::devnode::DevNode::wallet(2);
        let (st, _) = s
            .batch(json!([{"type": "identify", "userId": "ann", "traits": {"wallet": format!("eip155:1:{}", stranger.address().to_checksum(None))}}]))
            .await;
        assert_eq!(st, 200, "[{k}]");
        let (st, body, cookie) = with_wallet(&s, "", "sign-in", "", &stranger).await;
        assert!(
            st == 400 && cookie.is_none() && body.contains("not linked"),
            "[{k}] {st} {body}"
        );
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_uses_the_portal_in_headless_chromium() {
    let (chromium, tools) = common::browser_tools();
    for s in common::servers().await {
        let k = s.kind;
        let sink = Sink::start();
        let id = set_up(&s, &sink).await;
        let shots = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/screenshots")
            .join(k);
        std::fs::create_dir_all(&shots).expect("screenshots dir");
        let out = tokio::process::Command::new("node")
            .arg(tools.join("portal.js"))
            .env("BASE", &s.url)
            .env("EMAIL", EMAIL)
            .env("MAILDIR", sink.dir.path())
            .env(
                "LINK_SCRIPT",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/portal/link.py"),
            )
            .env("SEGMENT", "French customers")
            .env("SHOTS", &shots)
            .env("CHROMIUM", &chromium)
            .output()
            .await
            .expect("node runs");
        assert!(
            out.status.success(),
            "[{k}] the browser run failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Staff cannot find her any more, by any identifier or by search.
        for ident in [format!("email:{EMAIL}"), "user_id:ann".to_string()] {
            let (st, _) = s
                .get(&format!(
                    "/api/profiles/lookup?identifier={}",
                    common::urlencode(&ident)
                ))
                .await;
            assert_eq!(st, 404, "[{k}] {ident}");
        }
        let (_, found) = s.get("/api/profiles?q=ann.portal").await;
        assert_eq!(
            found["items"].as_array().map(Vec::len),
            Some(0),
            "[{k}] {found}"
        );
        let (st, _) = s.get(&format!("/api/profiles/{id}")).await;
        assert_eq!(st, 404, "[{k}]");
        s.finish().await;
    }
}

/// Support in the portal: a signed-in customer writes (a ticket, channel `portal`), sees
/// the agent's answer but never the staff's notes, replies — reopening the resolved
/// ticket — and cannot open someone else's ticket; what they write is shown as text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_write_to_support_in_the_portal() {
    for s in common::servers().await {
        let k = s.kind;
        let sink = Sink::start();
        let ann = set_up(&s, &sink).await;
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/support/settings",
                json!({"address": "support@shop.example"}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        let cookie = signed_in(&s, &sink).await;
        let (_, home) = page(&s, &cookie, "/me").await;
        assert!(home.contains("Questions and requests"), "[{k}]");
        let token = csrf(&home);
        // Refused, nothing opened: an empty message; a form without its token.
        let (st, _, _) = form(
            &s,
            &cookie,
            "/me/tickets",
            &[("_csrf", &token), ("subject", "Hi"), ("body", " ")],
        )
        .await;
        assert_eq!(st, 400, "[{k}]");
        let (st, _, _) = form(
            &s,
            &cookie,
            "/me/tickets",
            &[("subject", "Hi"), ("body", "x")],
        )
        .await;
        assert_eq!(st, 400, "[{k}]");
        assert_eq!(
            s.get("/api/tickets").await.1.as_array().map(Vec::len),
            Some(0),
            "[{k}]"
        );
        let (st, _, _) = form(
            &s,
            &cookie,
            "/me/tickets",
            &[
                ("_csrf", &token),
                ("subject", "Wrong size"),
                (
                    "body",
                    "I got an S, I ordered an M <script>alert(1)</script>",
                ),
            ],
        )
        .await;
        assert_eq!(st, 303, "[{k}]");
        let t = s.get("/api/tickets").await.1[0].clone();
        let id = t["id"].as_i64().unwrap();
        assert_eq!(
            (t["channel"].as_str(), t["profile_id"].as_i64()),
            (Some("portal"), Some(ann)),
            "[{k}] {t}"
        );
        // The agent answers (e-mailed too) and notes something for staff only, resolving.
        let (st, v) = s
            .send(
                Method::POST,
                &format!("/api/tickets/{id}/replies"),
                json!({"body": "An M is on its way."}),
            )
            .await;
        assert_eq!(st, 201, "[{k}] {v}");
        let (st, v) = s.send(Method::POST, &format!("/api/tickets/{id}/replies"), json!({"body": "Customer is a repeat exchanger", "from": "note", "status": "resolved"})).await;
        assert_eq!(st, 201, "[{k}] {v}");
        let (st, html) = page(&s, &cookie, &format!("/me/tickets/{id}")).await;
        assert_eq!(st, 200, "[{k}]");
        assert!(html.contains("An M is on its way."), "[{k}]");
        assert!(
            !html.contains("repeat exchanger"),
            "[{k}] a staff note shown to the customer"
        );
        assert!(
            !html.contains("<script>alert(1)") && html.contains("&lt;script&gt;"),
            "[{k}]"
        );
        let (st, _, _) = form(
            &s,
            &cookie,
            &format!("/me/tickets/{id}"),
            &[("_csrf", &csrf(&html)), ("body", "Thanks! And the belt?")],
        )
        .await;
        assert_eq!(st, 303, "[{k}]");
        let (_, t) = s.get(&format!("/api/tickets/{id}")).await;
        assert_eq!(t["status"], "open", "[{k}] reopened: {t}");
        assert_eq!(t["messages"].as_array().map(Vec::len), Some(4), "[{k}]");
        // Someone else's ticket is not found, to read or to answer.
        let (_, other) = s
            .send(Method::POST, "/api/tickets", json!({"requester": "email:bob@customer.test", "subject": "Mine", "body": "Private"}))
            .await;
        let other = other["id"].as_i64().unwrap();
        let (st, html) = page(&s, &cookie, &format!("/me/tickets/{other}")).await;
        assert!(st == 404 && !html.contains("Private"), "[{k}] {st}");
        let (st, _, _) = form(
            &s,
            &cookie,
            &format!("/me/tickets/{other}"),
            &[("_csrf", &token), ("body", "Let me in")],
        )
        .await;
        assert_eq!(st, 404, "[{k}]");
        assert_eq!(
            s.store.ticket_messages(other).await.unwrap().len(),
            1,
            "[{k}]"
        );
        // Signed out, the pages send to sign-in.
        let (st, _) = page(&s, "", &format!("/me/tickets/{id}")).await;
        assert_eq!(st, 303, "[{k}]");
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_help_each_other_in_headless_chromium() {
    const ANN: &str = "ann.asks@customer.test";
    const BOB: &str = "bob.helps@customer.test";
    let (chromium, tools) = common::browser_tools();
    for s in common::servers().await {
        let k = s.kind;
        let sink = Sink::start();
        for (path, body) in [
            (
                "/api/email/settings",
                json!({"relay_url": format!("smtp://127.0.0.1:{}", sink.port), "public_url": s.url}),
            ),
            ("/api/email/domains", json!({"domain": "shop.example"})),
        ] {
            let m = if path.ends_with("settings") {
                Method::PUT
            } else {
                Method::POST
            };
            let (st, v) = s.send(m, path, body).await;
            assert!(st == 200 || st == 201, "[{k}] {v}");
        }
        let (st, _) = s
            .batch(json!([
                {"type": "identify", "userId": "ann-asks", "traits": {"email": ANN, "name": "Ann Asker"}},
                {"type": "identify", "userId": "bob-helps", "traits": {"email": BOB, "name": "Bob Helper"}}
            ]))
            .await;
        assert_eq!(st, 200);
        rapport_app::users::create(&s.store, "agent@shop.example", "agent password 1", "agent")
            .await
            .expect("agent");
        let bob = s.profile_of(&format!("email:{BOB}")).await["id"]
            .as_i64()
            .unwrap();
        let (_, social) = s.get(&format!("/api/profiles/{bob}/social")).await;
        let before = social["evangelist"].as_f64().unwrap_or(0.0);
        let shots = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/screenshots")
            .join(k);
        std::fs::create_dir_all(&shots).expect("screenshots dir");
        let out = tokio::process::Command::new("node")
            .arg(tools.join("community.js"))
            .env("BASE", &s.url)
            .env("ANN", ANN)
            .env("BOB", BOB)
            .env("AGENT", "agent@shop.example")
            .env("PASSWORD", "agent password 1")
            .env("MAILDIR", sink.dir.path())
            .env(
                "LINK_SCRIPT",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/portal/link.py"),
            )
            .env("SHOTS", &shots)
            .env("CHROMIUM", &chromium)
            .output()
            .await
            .expect("node runs");
        assert!(
            out.status.success(),
            "[{k}] the browser run failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The helper's evangelist value rises once the graph is recomputed.
        let mut after = before;
        for _ in 0..50 {
            let (st, run) = s
                .send(Method::POST, "/api/graph/recompute", json!({}))
                .await;
            assert_eq!(st, 200, "[{k}] {run}");
            let (_, social) = s.get(&format!("/api/profiles/{bob}/social")).await;
            after = social["evangelist"].as_f64().unwrap_or(0.0);
            if after > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            after >= before + 4.0,
            "[{k}] evangelist {before} -> {after}"
        );
        // The article opened from the ticket form counts; a helpful vote too.
        let (_, d) = s.get("/api/kb/deflection").await;
        assert_eq!(d["suggested_opened"], 1, "[{k}] {d}");
        let (_, found) = s.get("/api/kb/search?q=delivery%20address").await;
        assert_eq!(
            found["items"][0]["title"], "Changing a delivery address",
            "[{k}] {found}"
        );
        let id = found["items"][0]["id"].as_i64().unwrap();
        let (_, a) = s.get(&format!("/api/kb/articles/{id}")).await;
        assert_eq!(a["helpful_yes"], 1, "[{k}] {a}");
        s.finish().await;
    }
}

/// The hidden field `name`'s value after `after` in a page.
fn field_after(html: &str, after: &str, name: &str) -> String {
    let rest = html.split(after).nth(1).expect("the form");
    rest.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the field")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_see_and_redeem_points_in_the_portal() {
    for s in common::servers().await {
        let k = s.kind;
        let sink = Sink::start();
        let ann = set_up(&s, &sink).await;
        let (st, v) = s
            .send(
                Method::POST,
                "/api/loyalty/adjust",
                json!({"profile_id": ann, "points": 300, "reason": "welcome"}),
            )
            .await;
        assert_eq!(st, 201, "[{k}] {v}");
        let (st, sticker) = s
            .send(
                Method::POST,
                "/api/loyalty/rewards",
                json!({"name": "Sticker", "cost": 100, "description": "A shiny one"}),
            )
            .await;
        assert_eq!(st, 201, "[{k}] {sticker}");
        let (st, v) = s
            .send(
                Method::POST,
                "/api/loyalty/rewards",
                json!({"name": "Bike", "cost": 5000}),
            )
            .await;
        assert_eq!(st, 201, "[{k}] {v}");
        let codes = s
            .client
            .post(format!(
                "{}/api/loyalty/rewards/{}/codes",
                s.url, sticker["id"]
            ))
            .bearer_auth(&s.admin)
            .body("STICK-1\nSTICK-2\n")
            .send()
            .await
            .unwrap();
        assert_eq!(codes.status().as_u16(), 200, "[{k}]");
        let cookie = signed_in(&s, &sink).await;
        let (_, home) = page(&s, &cookie, "/me").await;
        assert!(
            home.contains("My points") && home.contains("<strong>300</strong>"),
            "[{k}] {home}"
        );
        let (st, html) = page(&s, &cookie, "/me/points").await;
        assert_eq!(st, 200, "[{k}]");
        assert!(
            html.contains("4700 more points needed"),
            "[{k}] the bike is out of reach: {html}"
        );
        let token = field_after(&html, "Sticker", "_csrf");
        let key = field_after(&html, "Sticker", "key");
        let f = [
            ("_csrf", token.as_str()),
            ("reward", &sticker["id"].to_string()),
            ("key", key.as_str()),
        ];
        // Sent twice (a double click): redeemed once.
        for _ in 0..2 {
            let (st, _, _) = form(&s, &cookie, "/me/points/redeem", &f).await;
            assert_eq!(st, 303, "[{k}]");
        }
        let v = s.get(&format!("/api/profiles/{ann}/loyalty")).await.1;
        assert_eq!(v["available"], 200, "[{k}] {v}");
        let (_, html) = page(&s, &cookie, "/me/points").await;
        assert!(
            html.contains("STICK-1") && !html.contains("STICK-2"),
            "[{k}] {html}"
        );
        // Without the form's token: refused, nothing redeemed.
        let (st, _, _) = form(
            &s,
            &cookie,
            "/me/points/redeem",
            &[("reward", "Sticker"), ("key", "x")],
        )
        .await;
        assert_eq!(st, 400, "[{k}]");
        // Out of reach: said so, nothing taken.
        let fresh = field_after(&html, "Sticker", "key");
        let (st, _, _) = form(
            &s,
            &cookie,
            "/me/points/redeem",
            &[("_csrf", &token), ("reward", "Bike"), ("key", &fresh)],
        )
        .await;
        assert_eq!(st, 303, "[{k}]");
        let r = client()
            .post(format!("{}/me/points/redeem", s.url))
            .header("cookie", &cookie)
            .form(&[
                ("_csrf", token.as_str()),
                ("reward", "Bike"),
                ("key", "another"),
            ])
            .send()
            .await
            .unwrap();
        let to = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(
            to.contains("Not%20redeemed") || to.contains("Not+redeemed"),
            "[{k}] {to}"
        );
        assert_eq!(
            s.get(&format!("/api/profiles/{ann}/loyalty")).await.1["available"],
            200,
            "[{k}]"
        );
        s.finish().await;
    }
}
