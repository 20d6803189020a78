//! E-mail end to end against real peers: a real SMTP server (aiosmtpd, from PyPI) as the
//! relay, dkimpy as an independent DKIM verifier fed the TXT records Rapport shows, and
//! the tracking and RFC 8058 one-click unsubscribe routes driven over HTTP — on SQLite
//! and PostgreSQL.

mod common;

use common::TestServer;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::dovecot::Dovecot;
use common::sink::{header_of, python, Sink};

fn inspect(eml: &Path, records: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/email/read_message.py");
    let out = Command::new(python())
        .arg(script)
        .arg(eml)
        .arg(records.to_string())
        .output()
        .expect("run read_message.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inspect JSON")
}

fn envelope(eml: &Path) -> Value {
    let j = eml.with_extension("json");
    serde_json::from_str(&std::fs::read_to_string(j).expect("envelope")).expect("json")
}

/// The first `href`/`src` in `html` that starts with `prefix`.
fn url_in(html: &str, prefix: &str) -> String {
    let i = html
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {html}"));
    html[i..]
        .split(['"', '\'', '<', ' '])
        .next()
        .unwrap_or("")
        .to_string()
}

async fn problem_field(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    s.send(Method::POST, path, body).await
}

async fn timeline_names(s: &TestServer, id: i64) -> Vec<String> {
    let (_, t) = s
        .get(&format!(
            "/api/profiles/{id}/timeline?channel=email&limit=100"
        ))
        .await;
    t["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_sign_track_and_unsubscribe_through_a_real_relay() {
    for s in common::servers().await {
        let k = s.kind;
        let sink = Sink::start();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");

        // Settings: the relay and the public URL links point to; the password is never shown.
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/email/settings",
                json!({"relay_url": format!("smtp://rapport:hunter22@127.0.0.1:{}?tls=none", sink.port), "public_url": s.url, "machine_open_seconds": 0}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        assert!(!v.to_string().contains("hunter22"), "[{k}] {v}");
        let (_, v) = s.get("/api/email/settings").await;
        assert!(
            !v.to_string().contains("hunter22") && v["relay_url"].as_str().unwrap().contains("***"),
            "[{k}] {v}"
        );
        // aiosmtpd offers no AUTH: a relay without a password, as most local relays are.
        let (st, _) = s
            .send(Method::PUT, "/api/email/settings", json!({"relay_url": format!("smtp://127.0.0.1:{}", sink.port), "public_url": s.url, "machine_open_seconds": 0}))
            .await;
        assert_eq!(st, 200);
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/email/settings",
                json!({"relay_url": "http://x"}),
            )
            .await;
        assert_eq!(
            (st, v["field"].as_str()),
            (400, Some("relay_url")),
            "[{k}] {v}"
        );

        // A domain and its DKIM records.
        let (st, d) =
            problem_field(&s, "/api/email/domains", json!({"domain": "example.com"})).await;
        assert_eq!(st, 201, "[{k}] {d}");
        assert!(
            d["dns_txt"]
                .as_str()
                .unwrap()
                .starts_with("v=DKIM1; k=ed25519; p="),
            "[{k}] {d}"
        );
        assert_eq!(
            d["dns_name"],
            format!("{}._domainkey.example.com", d["selector"].as_str().unwrap())
        );
        let records: serde_json::Map<String, Value> = d["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["dns_name"].as_str().unwrap().to_string(),
                    r["dns_txt"].clone(),
                )
            })
            .collect();
        assert_eq!(records.len(), 2, "[{k}] ed25519 and rsa: {d}");
        assert!(
            !d.to_string().contains("PRIVATE"),
            "[{k}] no private key shown"
        );
        let (st, v) =
            problem_field(&s, "/api/email/domains", json!({"domain": "example.com"})).await;
        assert_eq!(st, 409, "[{k}] {v}");
        let (st, v) =
            problem_field(&s, "/api/email/domains", json!({"domain": "not a domain"})).await;
        assert_eq!(
            (st, v["field"].as_str()),
            (400, Some("domain")),
            "[{k}] {v}"
        );

        // Templates: errors name the part, line and column.
        let (st, v) = problem_field(
            &s,
            "/api/email/templates",
            json!({"name": "broken", "subject": "s", "html": "<p>\n {{ traits.name </p>"}),
        )
        .await;
        assert_eq!((st, v["field"].as_str()), (400, Some("html")), "[{k}] {v}");
        assert!(
            v["detail"].as_str().unwrap_or("").contains("line 2"),
            "[{k}] {v}"
        );
        let (st, v) = problem_field(
            &s,
            "/api/email/templates",
            json!({"name": "typo", "subject": "Hi {{ frist_name }}", "html": "<p>x</p>"}),
        )
        .await;
        assert_eq!(
            (st, v["field"].as_str()),
            (400, Some("subject")),
            "[{k}] {v}"
        );
        assert!(
            v["detail"].as_str().unwrap_or("").contains("frist_name"),
            "[{k}] {v}"
        );
        let html = "<html><body><p>Hello {{ traits.first_name }},</p><p><a href=\"https://shop.example/sale?x=1&amp;y=2\">Our sale</a></p><p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p></body></html>";
        let (st, t) = problem_field(&s, "/api/email/templates", json!({"name": "sale", "subject": "Hi {{ traits.first_name | default('there') }}", "html": html})).await;
        assert_eq!(st, 201, "[{k}] {t}");
        let (st, _) = problem_field(
            &s,
            "/api/email/templates",
            json!({"name": "sale", "subject": "x", "html": "x"}),
        )
        .await;
        assert_eq!(st, 409);

        // A person with marketing consent.
        let (st, _) = s
            .batch(json!([{"type": "identify", "userId": "ann", "traits": {"email": "ann@customer.test", "first_name": "Ann"}}]))
            .await;
        assert_eq!(st, 200);
        let ann = s.profile_of("email:ann@customer.test").await["id"]
            .as_i64()
            .unwrap();
        let (st, v) = s
            .send(Method::PUT, &format!("/api/profiles/{ann}/consents"), json!({"channel": "email", "purpose": "marketing", "status": "granted", "source": "signup-form"}))
            .await;
        assert_eq!(st, 200, "[{k}] {v}");

        // Preview for the person.
        let tid = t["id"].as_i64().unwrap();
        let (st, p) = problem_field(
            &s,
            &format!("/api/email/templates/{tid}/preview"),
            json!({"profile": ann}),
        )
        .await;
        assert_eq!(st, 200, "[{k}] {p}");
        assert_eq!(
            (p["subject"].as_str(), p["to"].as_str()),
            (Some("Hi Ann"), Some("ann@customer.test")),
            "[{k}] {p}"
        );

        // Bad sends change nothing.
        for (body, field) in [
            (
                json!({"template": "sale", "to": ann, "from": "news@elsewhere.test", "kind": "marketing"}),
                "from",
            ),
            (
                json!({"template": "sale", "to": ann, "from": "not an address", "kind": "marketing"}),
                "from",
            ),
            (
                json!({"template": "nope", "to": ann, "from": "news@example.com"}),
                "template",
            ),
            (
                json!({"template": "sale", "to": 999999, "from": "news@example.com"}),
                "to",
            ),
            (
                json!({"template": "sale", "to": "email:bad@@x", "from": "news@example.com"}),
                "to",
            ),
            (
                json!({"template": "sale", "to": ann, "from": "news@example.com", "kind": "spam"}),
                "kind",
            ),
        ] {
            let (st, v) = problem_field(&s, "/api/email/send", body.clone()).await;
            assert_eq!(
                (st, v["field"].as_str()),
                (400, Some(field)),
                "[{k}] {body}: {v}"
            );
        }
        let (_, none) = s.get("/api/email/messages").await;
        assert_eq!(none.as_array().map(Vec::len), Some(0), "[{k}] {none}");

        // The send, and what reaches the relay.
        let (st, sent) = problem_field(&s, "/api/email/send", json!({"template": "sale", "to": ann, "from": "news@example.com", "from_name": "Example News", "kind": "marketing", "idempotency_key": "sale-ann"})).await;
        assert_eq!(st, 202, "[{k}] {sent}");
        assert_eq!(sent["status"], "queued");
        // The same key again: the same message, not a second one.
        let (_, again) = problem_field(&s, "/api/email/send", json!({"template": "sale", "to": ann, "from": "news@example.com", "kind": "marketing", "idempotency_key": "sale-ann"})).await;
        assert_eq!(again["id"], sent["id"], "[{k}] {again}");
        let files = sink.wait_for(1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sink.messages().len(), 1, "[{k}] one copy");
        let env = envelope(&files[0]);
        assert_eq!(env["rcpt_tos"], json!(["ann@customer.test"]), "[{k}] {env}");
        assert!(
            env["mail_from"].as_str().unwrap().starts_with("bounce+")
                && env["mail_from"].as_str().unwrap().ends_with("@example.com"),
            "[{k}] VERP {env}"
        );
        let m = inspect(&files[0], &Value::Object(records.clone()));
        let h = &m["headers"];
        assert_eq!(
            m["dkim"],
            json!([true, true]),
            "[{k}] both signatures verify: {m}"
        );
        assert_eq!(h["To"], "ann@customer.test", "[{k}] {h}");
        assert_eq!(h["From"], "Example News <news@example.com>", "[{k}] {h}");
        assert_eq!(h["Subject"], "Hi Ann");
        assert_eq!(h["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click");
        assert!(
            h["Message-ID"].as_str().unwrap().ends_with("@example.com>"),
            "[{k}] {h}"
        );
        assert!(h["Date"].is_string(), "[{k}] {h}");
        assert_eq!(m["content_type"], "multipart/alternative");
        let text = m["parts"]["text/plain"].as_str().unwrap();
        let body = m["parts"]["text/html"].as_str().unwrap();
        assert!(
            text.contains("Hello Ann"),
            "[{k}] text derived from the HTML: {text}"
        );
        assert!(
            !body.contains("shop.example"),
            "[{k}] links are tracked: {body}"
        );
        let unsub = h["List-Unsubscribe"]
            .as_str()
            .unwrap()
            .trim_matches(['<', '>'])
            .to_string();
        assert!(
            unsub.starts_with(&format!("{}/e/u/", s.url)),
            "[{k}] {unsub}"
        );
        assert!(
            body.contains(&unsub),
            "[{k}] the body's unsubscribe link is the header's"
        );

        // Delivered: the relay took it.
        let mid = sent["id"].as_str().unwrap().to_string();
        common::eventually(&s, &format!("/api/email/messages/{mid}"), |v| {
            v["status"] == "delivered"
        })
        .await;

        // Open and click.
        let pixel = url_in(body, &format!("{}/e/o/", s.url));
        let r = http
            .get(&pixel)
            .header("user-agent", "Mozilla/5.0 (Macintosh)")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/gif");
        let r = http
            .get(&pixel)
            .header("user-agent", "Barracuda Sentinel")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let click = url_in(body, &format!("{}/e/c/", s.url));
        let r = http.get(&click).send().await.unwrap();
        assert_eq!(r.status(), 302);
        assert_eq!(
            r.headers()["location"],
            "https://shop.example/sale?x=1&y=2",
            "[{k}] back to the link, decoded"
        );
        // A token changed by one character, or another action's token, goes nowhere.
        let mut forged = click.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(http.get(&forged).send().await.unwrap().status(), 404);
        assert_eq!(
            http.get(pixel.replace("/e/o/", "/e/c/"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        let (_, msg) = s.get(&format!("/api/email/messages/{mid}")).await;
        assert!(
            msg["opened_at"].is_i64() && msg["clicked_at"].is_i64(),
            "[{k}] {msg}"
        );

        // RFC 8058 one-click: no key, no page, 200; consent denied with its proof.
        let r = http
            .post(&unsub)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "[{k}]");
        assert_eq!(
            http.get(&unsub).send().await.unwrap().status(),
            200,
            "[{k}] the page"
        );
        let (_, p) = s.get(&format!("/api/profiles/{ann}")).await;
        let denied = p["consents"].as_array().unwrap().iter().find(|c| {
            c["channel"] == "email" && c["purpose"] == "marketing" && c["status"] == "denied"
        });
        let denied = denied.unwrap_or_else(|| panic!("[{k}] no denied consent: {p}"));
        assert!(
            denied["proof"].as_str().unwrap().contains(&mid),
            "[{k}] {denied}"
        );

        // Everything is on the timeline, machine opens told apart.
        let names = timeline_names(&s, ann).await;
        for n in [
            "Email Sent",
            "Email Delivered",
            "Email Opened",
            "Email Link Clicked",
            "Unsubscribed",
        ] {
            assert!(
                names.iter().any(|x| x == n),
                "[{k}] {n} missing from {names:?}"
            );
        }
        assert_eq!(
            names.iter().filter(|x| *x == "Email Opened").count(),
            2,
            "[{k}] {names:?}"
        );
        let (_, t) = s
            .get(&format!("/api/profiles/{ann}/timeline?name=Email%20Opened"))
            .await;
        let machine: Vec<bool> = t["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["properties"]["machine"].as_bool().unwrap())
            .collect();
        assert_eq!(
            machine.iter().filter(|m| **m).count(),
            1,
            "[{k}] one machine open: {t}"
        );

        // Unsubscribed: the next marketing send is skipped, and listed; nothing is sent.
        let (st, v) = problem_field(
            &s,
            "/api/email/send",
            json!({"template": "sale", "to": ann, "from": "news@example.com", "kind": "marketing"}),
        )
        .await;
        assert_eq!(
            (st, v["status"].as_str()),
            (202, Some("skipped")),
            "[{k}] {v}"
        );
        assert!(
            v["reason"].as_str().unwrap().contains("consent"),
            "[{k}] {v}"
        );
        // Transactional mail still goes out.
        let (st, v) = problem_field(&s, "/api/email/send", json!({"template": "sale", "to": "email:ann@customer.test", "from": "news@example.com"})).await;
        assert_eq!(
            (st, v["status"].as_str()),
            (202, Some("queued")),
            "[{k}] {v}"
        );
        let files = sink.wait_for(2).await;
        let m = inspect(&files[1], &Value::Object(records.clone()));
        assert!(
            m["headers"].get("List-Unsubscribe").is_none()
                && m["headers"].get("Precedence").is_none(),
            "[{k}] {m}"
        );

        // A relay that refuses the recipient (550): bounced, suppressed, never sent again.
        let (st, v) = problem_field(&s, "/api/email/send", json!({"template": "sale", "to": "email:reject@customer.test", "from": "news@example.com"})).await;
        assert_eq!(st, 202, "[{k}] {v}");
        let rid = v["id"].as_str().unwrap().to_string();
        let pid = v["profile_id"].as_i64().unwrap();
        common::eventually(&s, &format!("/api/email/messages/{rid}"), |v| {
            v["status"] == "bounced"
        })
        .await;
        let (_, sup) = s.get("/api/email/suppressions").await;
        assert!(
            sup.as_array()
                .unwrap()
                .iter()
                .any(|x| x["address"] == "reject@customer.test" && x["reason"] == "hard_bounce"),
            "[{k}] {sup}"
        );
        assert!(
            timeline_names(&s, pid)
                .await
                .iter()
                .any(|n| n == "Email Bounced"),
            "[{k}]"
        );
        let (_, v) = problem_field(&s, "/api/email/send", json!({"template": "sale", "to": "email:reject@customer.test", "from": "news@example.com"})).await;
        assert_eq!(v["status"], "skipped", "[{k}] {v}");
        // The person's e-mail page: which address and why.
        let (_, e) = s.get(&format!("/api/profiles/{ann}/email")).await;
        assert_eq!(
            (e["address"].as_str(), e["reason"].as_str()),
            (Some("ann@customer.test"), Some("engaged")),
            "[{k}] {e}"
        );
        assert_eq!(
            sink.messages().len(),
            2,
            "[{k}] nothing else reached the relay"
        );
        s.finish().await;
    }
}

/// A DSN as an MTA returns it (RFC 3464's layout), to `rcpt` about the message `mid`.
fn dsn(rcpt: &str, message_id: &str, action: &str, status: &str) -> String {
    format!("From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>\r\nTo: {rcpt}\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not be delivered.\r\n\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.test\r\n\r\nFinal-Recipient: rfc822; bob@customer.test\r\nAction: {action}\r\nStatus: {status}\r\nDiagnostic-Code: smtp; 550 {status} mailbox unavailable\r\n\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {message_id}\r\nFrom: news@example.com\r\nTo: bob@customer.test\r\n\r\n--B--\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounces_and_complaints_come_back() {
    for s in common::servers().await {
        let k = s.kind;
        let sink = Sink::start();
        let (st, _) = s
            .send(Method::PUT, "/api/email/settings", json!({"relay_url": format!("smtp://127.0.0.1:{}", sink.port), "public_url": s.url}))
            .await;
        assert_eq!(st, 200);
        assert_eq!(
            problem_field(&s, "/api/email/domains", json!({"domain": "example.com"}))
                .await
                .0,
            201
        );
        assert_eq!(
            problem_field(
                &s,
                "/api/email/templates",
                json!({"name": "t", "subject": "Hello", "html": "<p>Hi</p>"})
            )
            .await
            .0,
            201
        );
        let send = |to: &'static str| {
            problem_field(
                &s,
                "/api/email/send",
                json!({"template": "t", "to": to, "from": "news@example.com"}),
            )
        };
        let (_, bob) = send("email:bob@customer.test").await;
        let (_, cat) = send("email:cat@customer.test").await;
        let files = sink.wait_for(2).await;
        let envelopes: Vec<Value> = files.iter().map(|f| envelope(f)).collect();
        let verp_of = |addr: &str| {
            envelopes.iter().find(|e| e["rcpt_tos"][0] == addr).unwrap()["mail_from"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let mid_header = |f: &Path| {
            let raw = std::fs::read_to_string(f).unwrap();
            raw.lines().find(|l| l.starts_with("Message-ID:")).unwrap()[11..]
                .trim()
                .to_string()
        };
        let bob_id = bob["id"].as_str().unwrap().to_string();
        common::eventually(&s, &format!("/api/email/messages/{bob_id}"), |v| {
            v["status"] == "delivered"
        })
        .await;

        let post_raw = |raw: String| {
            s.client
                .post(format!("{}/api/email/inbound", s.url))
                .bearer_auth(&s.admin)
                .header("content-type", "message/rfc822")
                .body(raw)
                .send()
        };
        // A soft bounce (4.x.x) to the VERP address: the message goes out again.
        let bob_file = files
            .iter()
            .zip(&envelopes)
            .find(|(_, e)| e["rcpt_tos"][0] == "bob@customer.test")
            .unwrap()
            .0
            .clone();
        let r = post_raw(dsn(
            &verp_of("bob@customer.test"),
            &mid_header(&bob_file),
            "failed",
            "4.2.2",
        ))
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (v["report"].as_str(), v["message"].as_str()),
            (Some("soft_bounce"), Some(bob_id.as_str())),
            "[{k}] {v}"
        );
        let (_, m) = s.get(&format!("/api/email/messages/{bob_id}")).await;
        assert_eq!(m["status"], "queued", "[{k}] retried later: {m}");
        // A hard bounce found by the returned headers' Message-ID alone (a relay that
        // rewrote the envelope): suppressed.
        let r = post_raw(dsn(
            "postmaster@example.com",
            &mid_header(&bob_file),
            "failed",
            "5.1.1",
        ))
        .await
        .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["report"], "hard_bounce", "[{k}] {v}");
        let (_, m) = s.get(&format!("/api/email/messages/{bob_id}")).await;
        assert_eq!(m["status"], "bounced", "[{k}] {m}");
        let (_, sup) = s.get("/api/email/suppressions").await;
        assert!(
            sup.as_array()
                .unwrap()
                .iter()
                .any(|x| x["address"] == "bob@customer.test" && x["reason"] == "hard_bounce"),
            "[{k}] {sup}"
        );

        // An ARF complaint about cat's message: suppressed, marketing consent denied.
        let cat_file = files
            .iter()
            .zip(&envelopes)
            .find(|(_, e)| e["rcpt_tos"][0] == "cat@customer.test")
            .unwrap()
            .0
            .clone();
        let original = std::fs::read_to_string(&cat_file).unwrap();
        let arf = format!("From: <fbl@isp.test>\r\nTo: <fbl@example.com>\r\nSubject: complaint\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n--F\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n\r\n--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: isp-fbl/1.0\r\nVersion: 1\r\n\r\n--F\r\nContent-Type: message/rfc822\r\n\r\n{original}\r\n--F--\r\n");
        let v: Value = post_raw(arf).await.unwrap().json().await.unwrap();
        assert_eq!(
            (v["report"].as_str(), v["message"].as_str()),
            (Some("complaint"), cat["id"].as_str()),
            "[{k}] {v}"
        );
        let cat_id = cat["profile_id"].as_i64().unwrap();
        let (_, p) = s.get(&format!("/api/profiles/{cat_id}")).await;
        assert!(
            p["consents"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["channel"] == "email"
                    && c["status"] == "denied"
                    && c["source"] == "complaint"),
            "[{k}] {p}"
        );
        let names = timeline_names(&s, cat_id).await;
        assert!(
            names.iter().any(|n| n == "Email Complained"),
            "[{k}] {names:?}"
        );
        let bob_pid = bob["profile_id"].as_i64().unwrap();
        let bounced = timeline_names(&s, bob_pid)
            .await
            .iter()
            .filter(|n| *n == "Email Bounced")
            .count();
        assert_eq!(bounced, 2, "[{k}] soft then hard");
        // A rule makes a journey: an order sends a (transactional) thank-you.
        let (st, v) = s
            .send(Method::PUT, "/api/rules", json!({"rules": [{"name": "thanks", "when": "track \"Order Completed\"", "then": [{"action": "send_email", "template": "t", "from": "news@example.com", "kind": "transactional"}]}]}))
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        let (st, v) = s
            .send(Method::PUT, "/api/rules", json!({"rules": [{"name": "bad", "when": "track \"x\"", "then": [{"action": "send_email", "from": "news@example.com"}]}]}))
            .await;
        assert_eq!(
            (st, v["field"].as_str()),
            (400, Some("rules[0].then[0].template")),
            "[{k}] {v}"
        );
        let (st, _) = s
            .batch(json!([{"type": "identify", "userId": "dan", "traits": {"email": "dan@customer.test"}}, {"type": "track", "userId": "dan", "event": "Order Completed", "properties": {"revenue": 20}}]))
            .await;
        assert_eq!(st, 200);
        let dan = s.profile_of("email:dan@customer.test").await["id"]
            .as_i64()
            .unwrap();
        common::eventually(&s, &format!("/api/email/messages?profile={dan}"), |v| {
            v[0]["status"] == "delivered"
        })
        .await;
        // Mail that is none of ours, and an empty body.
        let v: Value = post_raw("From: a@b.test\r\nSubject: hi\r\n\r\nhello\r\n".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (v["report"].as_str(), v["message"].is_null()),
            (Some("other"), true),
            "[{k}] {v}"
        );
        assert_eq!(post_raw(String::new()).await.unwrap().status(), 400);
        s.finish().await;
    }
}

/// The CLI and `rapport serve --smtp-url`: a domain, a template and a send made with
/// `rapport email …`, delivered by the server's worker through the relay it was started with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_and_serve_with_smtp_url() {
    const BIN: &str = env!("CARGO_BIN_EXE_rapport");
    let targets = cli_targets().await;
    for (args, pg, dir) in targets {
        let run = |a: &[&str]| {
            let out = Command::new(BIN)
                .args(a)
                .args(&args)
                .env("RAPPORT_LOG", "warn")
                .output()
                .expect("run rapport");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        };
        let (ok, out, err) = run(&["email", "domain", "example.com"]);
        assert!(ok, "{err}");
        assert_eq!(out.lines().count(), 2, "{out}");
        let html = dir.path().join("t.html");
        std::fs::write(
            &html,
            "<p>Welcome {{ traits.name | default('friend') }}</p>",
        )
        .unwrap();
        let (ok, _, err) = run(&[
            "email",
            "template",
            "--name",
            "welcome",
            "--subject",
            "Welcome",
            "--html",
            html.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        std::fs::write(&html, "<p>{{ oops </p>").unwrap();
        let (ok, _, err) = run(&[
            "email",
            "template",
            "--name",
            "broken",
            "--subject",
            "x",
            "--html",
            html.to_str().unwrap(),
        ]);
        assert!(
            !ok && err.contains("--html") && err.contains("line 1"),
            "{err}"
        );
        let (ok, _, err) = run(&[
            "email",
            "send",
            "--template",
            "welcome",
            "--to",
            "email:eve@customer.test",
            "--from",
            "hello@nowhere.test",
        ]);
        assert!(!ok && err.contains("--from"), "{err}");
        let (ok, out, err) = run(&[
            "email",
            "send",
            "--template",
            "welcome",
            "--to",
            "email:eve@customer.test",
            "--from",
            "hello@example.com",
        ]);
        assert!(ok, "{err}");
        assert!(out.contains("\"queued\""), "{out}");
        let eve = serde_json::from_str::<Value>(out.trim()).unwrap();
        assert_eq!(eve["to"], "eve@customer.test");

        // A campaign made, listed, shown and started; `rapport serve` plans and sends it.
        let (ok, _, err) = run(&[
            "email",
            "campaign",
            "create",
            "--name",
            "Hello",
            "--template",
            "welcome",
            "--from",
            "hello@example.com",
            "--segment",
            "Nope",
        ]);
        assert!(!ok && err.contains("--segment"), "{err}");
        let (ok, out, err) = run(&[
            "email",
            "campaign",
            "create",
            "--name",
            "Hello",
            "--template",
            "welcome",
            "--from",
            "hello@example.com",
            "--profiles",
            "1",
            "--kind",
            "transactional",
        ]);
        assert!(ok, "{err}");
        let c: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(c["status"], "draft", "{out}");
        let cid = c["id"].to_string();
        let (ok, out, _) = run(&["email", "campaign", "list"]);
        assert!(
            ok && out.lines().count() == 1 && out.contains("\"Hello\""),
            "{out}"
        );
        let (ok, out, err) = run(&["email", "campaign", "act", &cid, "start"]);
        assert!(ok && out.contains("\"scheduled\""), "{out}{err}");
        let (ok, _, err) = run(&["email", "campaign", "act", &cid, "start"]);
        assert!(!ok && err.contains("cannot start"), "{err}");

        let sink = Sink::start();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut serve = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--smtp-url",
                &format!("smtp://127.0.0.1:{}", sink.port),
            ])
            .args(&args)
            .env("RAPPORT_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("serve");
        let files = sink.wait_for(2).await;
        // The relay keeps the message before the server records the delivery: wait for
        // the record rather than killing the server between the two.
        let mut out = String::new();
        for _ in 0..100 {
            let (ok, o, _) = run(&["email", "messages"]);
            out = o;
            if ok && out.matches("\"delivered\"").count() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (ok, shown, _) = run(&["email", "campaign", "show", &cid]);
        let shown: Value = serde_json::from_str(shown.trim()).unwrap();
        assert!(
            ok && shown["report"]["statuses"]["delivered"] == 1,
            "{shown}"
        );
        let _ = serve.kill();
        let _ = serve.wait();
        for f in &files {
            assert_eq!(envelope(f)["rcpt_tos"], json!(["eve@customer.test"]));
        }
        assert_eq!(out.matches("\"delivered\"").count(), 2, "{out}");
        if let Some((url, schema)) = pg {
            common::drop_schema(&url, &schema).await;
        }
    }
}

/// Headers of a kept message, by name.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_to_a_segment_paced_paused_and_reported() {
    for s in common::servers().await {
        let k = s.kind;
        let sink = Sink::start();
        let (st, _) = s
            .send(Method::PUT, "/api/email/settings", json!({"relay_url": format!("smtp://127.0.0.1:{}", sink.port), "public_url": s.url, "marketing_consent": "not_denied"}))
            .await;
        assert_eq!(st, 200);
        assert_eq!(
            problem_field(&s, "/api/email/domains", json!({"domain": "example.com"}))
                .await
                .0,
            201
        );
        assert_eq!(problem_field(&s, "/api/email/templates", json!({"name": "news", "subject": "News for {{ traits.first_name }}", "html": "<p>Hi {{ traits.first_name }}</p><a href=\"https://shop.example/new\">New</a>"})).await.0, 201);
        // 30 people, 20 on the pro plan; of those 3 said no to marketing, 1 is suppressed.
        let people: Vec<Value> = (0..30)
            .map(|i| json!({"type": "identify", "userId": format!("u{i}"), "traits": {"email": format!("p{i}@customer.test"), "first_name": format!("P{i}"), "plan": if i < 20 { "pro" } else { "free" }}}))
            .collect();
        assert_eq!(s.batch(Value::Array(people)).await.0, 200);
        for i in 0..3 {
            let id = s.profile_of(&format!("email:p{i}@customer.test")).await["id"]
                .as_i64()
                .unwrap();
            let (st, _) = s
                .send(
                    Method::PUT,
                    &format!("/api/profiles/{id}/consents"),
                    json!({"channel": "email", "purpose": "marketing", "status": "denied"}),
                )
                .await;
            assert_eq!(st, 200);
        }
        assert_eq!(
            problem_field(
                &s,
                "/api/email/suppressions",
                json!({"address": "p3@customer.test"})
            )
            .await
            .0,
            201
        );
        for (name, def) in [
            ("Pro", "traits.plan = \"pro\""),
            ("Doomed", "traits.plan = \"free\""),
        ] {
            let (st, v) = problem_field(
                &s,
                "/api/segments",
                json!({"name": name, "definition": def}),
            )
            .await;
            assert_eq!(st, 201, "[{k}] {v}");
        }

        // Bad input names its field.
        for (body, field) in [
            (
                json!({"name": "x", "template": "news", "from": "news@example.com", "audience": {"segment": "Nope"}}),
                "audience.segment",
            ),
            (
                json!({"name": "x", "template": "news", "from": "news@elsewhere.test", "audience": {"segment": "Pro"}}),
                "from",
            ),
            (
                json!({"name": "x", "template": "news", "from": "news@example.com", "audience": {"profiles": ["a"]}}),
                "audience.profiles[0]",
            ),
            (
                json!({"name": "x", "template": "news", "from": "news@example.com", "audience": {"segment": "Pro"}, "per_minute": 0}),
                "per_minute",
            ),
            (
                json!({"name": "x", "template": "gone", "from": "news@example.com", "audience": {"segment": "Pro"}}),
                "template",
            ),
        ] {
            let (st, v) = problem_field(&s, "/api/email/campaigns", body.clone()).await;
            assert_eq!(
                (st, v["field"].as_str()),
                (400, Some(field)),
                "[{k}] {body}: {v}"
            );
        }

        // A draft, a test send to staff, then the start.
        let (st, c) = problem_field(&s, "/api/email/campaigns", json!({"name": "Spring", "template": "news", "from": "news@example.com", "audience": {"segment": "Pro"}, "per_minute": 6000})).await;
        assert_eq!(
            (st, c["status"].as_str()),
            (201, Some("draft")),
            "[{k}] {c}"
        );
        let cid = c["id"].as_i64().unwrap();
        let (st, t) = problem_field(
            &s,
            &format!("/api/email/campaigns/{cid}/test"),
            json!({"to": "email:staff@example.com"}),
        )
        .await;
        assert_eq!(st, 202, "[{k}] {t}");
        let first = sink.wait_for(1).await;
        assert_eq!(
            envelope(&first[0])["rcpt_tos"],
            json!(["staff@example.com"])
        );
        let (st, _) = problem_field(
            &s,
            &format!("/api/email/campaigns/{cid}/actions"),
            json!({"action": "start"}),
        )
        .await;
        assert_eq!(st, 200);
        let (st, v) = problem_field(
            &s,
            &format!("/api/email/campaigns/{cid}/actions"),
            json!({"action": "start"}),
        )
        .await;
        assert_eq!(st, 409, "[{k}] {v}");
        let done = common::eventually(&s, &format!("/api/email/campaigns/{cid}"), |v| {
            v["campaign"]["status"] == "done"
        })
        .await;
        let r = &done["report"];
        assert_eq!(r["statuses"]["delivered"], 16, "[{k}] {done}");
        assert_eq!(r["statuses"]["skipped"], 4, "[{k}] {done}");
        assert_eq!(done["campaign"]["planned"], 16);
        let files = sink.wait_for(17).await;
        let mut rcpts: Vec<String> = files
            .iter()
            .map(|f| envelope(f)["rcpt_tos"][0].as_str().unwrap().to_string())
            .collect();
        rcpts.sort();
        let before = rcpts.len();
        rcpts.dedup();
        assert_eq!((before, rcpts.len()), (17, 17), "[{k}] each person once");
        for i in 0..4 {
            assert!(
                !rcpts.contains(&format!("p{i}@customer.test")),
                "[{k}] p{i} must be skipped"
            );
        }
        let campaign_file = files
            .iter()
            .find(|f| envelope(f)["rcpt_tos"][0] == "p10@customer.test")
            .unwrap();
        assert_eq!(
            header_of(campaign_file, "Precedence").as_deref(),
            Some("bulk")
        );
        assert_eq!(
            header_of(campaign_file, "Subject").as_deref(),
            Some("News for P10")
        );
        let skipped: Vec<String> = r["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x[0].as_str().unwrap().to_string())
            .collect();
        assert!(
            skipped.iter().any(|x| x.contains("consent"))
                && skipped.iter().any(|x| x.contains("suppressed")),
            "[{k}] {r}"
        );
        // A click shows in the report per link.
        let m = s
            .get(&format!(
                "/api/email/messages?profile={}",
                s.profile_of("email:p10@customer.test").await["id"]
            ))
            .await
            .1;
        let raw = std::fs::read(campaign_file).unwrap();
        let parsed = read_parts(&raw);
        let click = url_in(&parsed, &format!("{}/e/c/", s.url));
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(&click)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "[{k}] {m}");
        let (_, v) = s.get(&format!("/api/email/campaigns/{cid}")).await;
        assert_eq!(
            v["report"]["links"],
            json!([["https://shop.example/new", 1]]),
            "[{k}] {v}"
        );
        assert_eq!(v["report"]["clicked"], 1);

        // Paced at one a second: pause holds the rest, resume sends on, cancel drops it.
        let (_, c2) = problem_field(&s, "/api/email/campaigns", json!({"name": "Slow", "template": "news", "from": "news@example.com", "audience": {"profiles": (20..30).collect::<Vec<_>>()}, "per_minute": 60, "start": true})).await;
        let c2 = c2["id"].as_i64().unwrap();
        // Profile ids 20..30 may not all exist: unknown ids are left out.
        sink.wait_for(18).await;
        let (st, _) = problem_field(
            &s,
            &format!("/api/email/campaigns/{c2}/actions"),
            json!({"action": "pause"}),
        )
        .await;
        assert_eq!(st, 200);
        let held = sink.messages().len();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            sink.messages().len() <= held + 1,
            "[{k}] paused: nothing more (one may have been in flight)"
        );
        let (_, v) = s.get(&format!("/api/email/campaigns/{c2}")).await;
        assert!(
            v["report"]["statuses"]["paused"].as_i64().unwrap_or(0) > 0,
            "[{k}] {v}"
        );
        let (st, _) = problem_field(
            &s,
            &format!("/api/email/campaigns/{c2}/actions"),
            json!({"action": "resume"}),
        )
        .await;
        assert_eq!(st, 200);
        let resumed = sink.messages().len();
        sink.wait_for(resumed + 1).await;
        let (st, _) = problem_field(
            &s,
            &format!("/api/email/campaigns/{c2}/actions"),
            json!({"action": "cancel"}),
        )
        .await;
        assert_eq!(st, 200);
        let (_, v) = s.get(&format!("/api/email/campaigns/{c2}")).await;
        assert_eq!(v["campaign"]["status"], "cancelled");
        assert!(
            v["report"]["statuses"]["cancelled"].as_i64().unwrap_or(0) > 0,
            "[{k}] {v}"
        );

        // A segment gone before the start: the campaign fails, naming it; nothing sent.
        let (_, c3) = problem_field(&s, "/api/email/campaigns", json!({"name": "Doomed", "template": "news", "from": "news@example.com", "audience": {"segment": "Doomed"}})).await;
        let c3 = c3["id"].as_i64().unwrap();
        let (_, segs) = s.get("/api/segments").await;
        let doomed = segs
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "Doomed")
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        assert_eq!(
            s.send(
                Method::DELETE,
                &format!("/api/segments/{doomed}"),
                json!({})
            )
            .await
            .0,
            204
        );
        let count = sink.messages().len();
        problem_field(
            &s,
            &format!("/api/email/campaigns/{c3}/actions"),
            json!({"action": "start"}),
        )
        .await;
        let v = common::eventually(&s, &format!("/api/email/campaigns/{c3}"), |v| {
            v["campaign"]["status"] == "failed"
        })
        .await;
        assert!(
            v["campaign"]["error"]
                .as_str()
                .unwrap()
                .starts_with("audience.segment"),
            "[{k}] {v}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sink.messages().len(), count);
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounces_read_from_an_imap_mailbox() {
    for s in common::servers().await {
        let k = s.kind;
        let sink = Sink::start();
        let imap = Dovecot::start();
        // A mailbox URL that is not one names the field; the password is never shown.
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/email/settings",
                json!({"bounce_mailbox": "pop3://x"}),
            )
            .await;
        assert_eq!(
            (st, v["field"].as_str()),
            (400, Some("bounce_mailbox")),
            "[{k}] {v}"
        );
        let (st, v) = s
            .send(Method::PUT, "/api/email/settings", json!({"relay_url": format!("smtp://127.0.0.1:{}", sink.port), "public_url": s.url, "bounce_mailbox": imap.url(), "bounce_poll_seconds": 1}))
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        let (_, shown) = s.get("/api/email/settings").await;
        let shown_mailbox = shown["bounce_mailbox"].as_str().unwrap_or("");
        assert!(
            shown_mailbox.contains("***") && !shown.to_string().contains("secret"),
            "[{k}] {shown}"
        );
        problem_field(&s, "/api/email/domains", json!({"domain": "example.com"})).await;
        problem_field(
            &s,
            "/api/email/templates",
            json!({"name": "t", "subject": "Hello", "html": "<p>Hi</p>"}),
        )
        .await;
        let send = |to: &'static str| {
            problem_field(
                &s,
                "/api/email/send",
                json!({"template": "t", "to": to, "from": "news@example.com"}),
            )
        };
        let (_, gone) = send("email:gone@customer.test").await;
        let (_, angry) = send("email:angry@customer.test").await;
        let files = sink.wait_for(2).await;
        let file_of = |addr: &str| {
            files
                .iter()
                .find(|f| envelope(f)["rcpt_tos"][0] == addr)
                .unwrap()
                .clone()
        };
        let gone_file = file_of("gone@customer.test");
        let verp = envelope(&gone_file)["mail_from"]
            .as_str()
            .unwrap()
            .to_string();
        let mid = header_of(&gone_file, "Message-ID").unwrap();
        for m in [&gone, &angry] {
            common::eventually(
                &s,
                &format!("/api/email/messages/{}", m["id"].as_str().unwrap()),
                |v| v["status"] == "delivered",
            )
            .await;
        }
        // The MTA's DSN for one and the ISP's ARF complaint about the other arrive in the
        // mailbox, with an unrelated message beside them.
        imap.deliver(&dsn(&verp, &mid, "failed", "5.1.1")).await;
        let original = std::fs::read_to_string(file_of("angry@customer.test")).unwrap();
        imap.deliver(&format!("From: <fbl@isp.test>\r\nTo: <fbl@example.com>\r\nSubject: complaint\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n--F\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n\r\n--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: isp-fbl/1.0\r\nVersion: 1\r\n\r\n--F\r\nContent-Type: message/rfc822\r\n\r\n{original}\r\n--F--\r\n")).await;
        imap.deliver("From: someone@else.test\r\nTo: bounces@example.com\r\nSubject: hello\r\n\r\nnot a report\r\n").await;
        let sup = common::eventually(&s, "/api/email/suppressions", |v| {
            v.as_array().is_some_and(|a| a.len() == 2)
        })
        .await;
        let reasons: Vec<(String, String)> = sup
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["address"].as_str().unwrap().into(),
                    x["reason"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert!(
            reasons.contains(&("gone@customer.test".into(), "hard_bounce".into())),
            "[{k}] {sup}"
        );
        assert!(
            reasons.contains(&("angry@customer.test".into(), "complaint".into())),
            "[{k}] {sup}"
        );
        let (_, m) = s
            .get(&format!(
                "/api/email/messages/{}",
                gone["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(m["status"], "bounced", "[{k}] {m}");
        let gone_id = m["profile_id"].as_i64().unwrap();
        assert!(timeline_names(&s, gone_id)
            .await
            .contains(&"Email Bounced".to_string()));
        // Every message read was flagged seen, the unrelated one too: nothing is read twice.
        let mut left = usize::MAX;
        for _ in 0..50 {
            left = imap.unseen().await;
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(left, 0, "[{k}] unseen messages left in the mailbox");
        s.finish().await;
    }
}

/// Polls a campaign until `ok` holds (an A/B wait is longer than `eventually`'s).
async fn campaign_when(s: &TestServer, id: i64, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let (_, v) = s.get(&format!("/api/email/campaigns/{id}")).await;
        if ok(&v) {
            return v;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("campaign {id} never got there: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_test_sends_the_winner_to_the_rest() {
    for s in common::servers().await {
        let k = s.kind;
        let sink = Sink::start();
        let (st, _) = s
            .send(Method::PUT, "/api/email/settings", json!({"relay_url": format!("smtp://127.0.0.1:{}", sink.port), "public_url": s.url, "marketing_consent": "not_denied"}))
            .await;
        assert_eq!(st, 200);
        problem_field(&s, "/api/email/domains", json!({"domain": "example.com"})).await;
        let (st, _) = problem_field(&s, "/api/email/templates", json!({"name": "offer", "subject": "Plain offer", "html": "<p>Hi {{ traits.first_name }}</p><a href=\"https://shop.example/offer\">Offer</a>"})).await;
        assert_eq!(st, 201);
        let people: Vec<Value> = (0..60)
            .map(|i| json!({"type": "identify", "userId": format!("ab{i}"), "traits": {"email": format!("ab{i}@customer.test"), "first_name": format!("A{i}")}}))
            .collect();
        assert_eq!(s.batch(Value::Array(people)).await.0, 200);
        let mut ids = Vec::new();
        for i in 0..60 {
            ids.push(s.profile_of(&format!("email:ab{i}@customer.test")).await["id"].clone());
        }
        let base = json!({"name": "AB", "template": "offer", "from": "news@example.com", "audience": {"profiles": ids}, "start": true});
        let with = |ab: Value| {
            let mut b = base.clone();
            b["ab"] = ab;
            b
        };
        // Bad tests name their field; nothing is made.
        for (ab, field) in [
            (json!({"variants": [{}]}), "ab.variants"),
            (
                json!({"variants": [{}, {"subject": "B"}], "metric": "reply"}),
                "ab.metric",
            ),
            (
                json!({"variants": [{}, {"subject": "B"}], "sample_percent": 0}),
                "ab.sample_percent",
            ),
            (
                json!({"variants": [{}, {"subject": "Hi {{ oops"}]}),
                "ab.variants[1].subject",
            ),
            (
                json!({"variants": [{}, {"template": "gone"}]}),
                "ab.variants[1].template",
            ),
        ] {
            let (st, v) = problem_field(&s, "/api/email/campaigns", with(ab.clone())).await;
            assert_eq!(
                (st, v["field"].as_str()),
                (400, Some(field)),
                "[{k}] {ab}: {v}"
            );
        }
        assert_eq!(s.get("/api/email/campaigns").await.1, json!([]), "[{k}]");

        // Half the audience tests two subjects; the one people click wins.
        let (st, c) = problem_field(&s, "/api/email/campaigns", with(json!({"variants": [{}, {"subject": "B: for {{ traits.first_name }}"}], "sample_percent": 50, "metric": "click", "wait_seconds": 6}))).await;
        assert_eq!(st, 201, "[{k}] {c}");
        let cid = c["id"].as_i64().unwrap();
        let v = campaign_when(&s, cid, |v| v["campaign"]["status"] == "testing").await;
        let variants = v["report"]["variants"].as_array().unwrap().clone();
        assert_eq!(variants.len(), 2, "[{k}] {v}");
        let sample: i64 = variants.iter().map(|x| x["sent"].as_i64().unwrap()).sum();
        assert!((15..=45).contains(&sample), "[{k}] a half of 60: {sample}");
        let files = sink.wait_for(sample as usize).await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut clicked = 0;
        for f in &files {
            let subject = header_of(f, "Subject").unwrap();
            if subject.starts_with("B: for A") {
                let click = url_in(
                    &read_parts(&std::fs::read(f).unwrap()),
                    &format!("{}/e/c/", s.url),
                );
                assert_eq!(client.get(&click).send().await.unwrap().status(), 302);
                clicked += 1;
            } else {
                assert_eq!(subject, "Plain offer", "[{k}]");
            }
        }
        assert!(clicked > 0, "[{k}] variant B drew nobody of {sample}");
        let done = campaign_when(&s, cid, |v| v["campaign"]["status"] == "done").await;
        let ab = &done["campaign"]["ab"];
        assert_eq!(ab["winner"], 1, "[{k}] {done}");
        assert_eq!(ab["tallies"][1]["clicked"], clicked, "[{k}] {done}");
        assert_eq!(ab["tallies"][0]["clicked"], 0, "[{k}] {done}");
        // The rest got the winner; everyone exactly once.
        let files = sink.wait_for(60).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let files = if sink.messages().len() > files.len() {
            sink.messages()
        } else {
            files
        };
        assert_eq!(files.len(), 60, "[{k}]");
        let mut rcpts: Vec<String> = files
            .iter()
            .map(|f| envelope(f)["rcpt_tos"][0].as_str().unwrap().to_string())
            .collect();
        rcpts.sort();
        rcpts.dedup();
        assert_eq!(rcpts.len(), 60, "[{k}] each person once");
        let winners = files
            .iter()
            .filter(|f| header_of(f, "Subject").unwrap().starts_with("B: for A"))
            .count() as i64;
        assert_eq!(
            winners,
            variants[1]["sent"].as_i64().unwrap() + (60 - sample),
            "[{k}] the sample's B plus all the rest"
        );
        assert_eq!(done["report"]["statuses"]["delivered"], 60, "[{k}] {done}");
        // Clicks arriving together are written together (one commit): none is lost.
        let click = url_in(
            &read_parts(&std::fs::read(&files[0]).unwrap()),
            &format!("{}/e/c/", s.url),
        );
        let before = done["report"]["links"][0][1].as_i64().unwrap_or(0);
        let burst: Vec<_> = (0..50)
            .map(|_| {
                let (client, click) = (client.clone(), click.clone());
                tokio::spawn(async move { client.get(&click).send().await.unwrap().status() })
            })
            .collect();
        for b in burst {
            assert_eq!(b.await.unwrap(), 302);
        }
        let (_, v) = s.get(&format!("/api/email/campaigns/{cid}")).await;
        assert_eq!(
            v["report"]["links"][0][1].as_i64().unwrap_or(0),
            before + 50,
            "[{k}] {v}"
        );
        s.finish().await;
    }
}

/// The HTML part of a kept message, decoded.
fn read_parts(raw: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("m.eml");
    std::fs::write(&f, raw).unwrap();
    inspect(&f, &json!({}))["parts"]["text/html"]
        .as_str()
        .unwrap()
        .to_string()
}

/// SIGKILL mid-campaign of 10,000 recipients, then a restart: nobody gets a second copy,
/// and every recipient the relay did not get is one of the few messages the killed
/// worker had claimed (`unknown`: the relay may have them, so they are not sent again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_campaign_sends_nobody_twice() {
    const BIN: &str = env!("CARGO_BIN_EXE_rapport");
    const PEOPLE: usize = 10_000;
    let targets = cli_targets().await;
    for (args, pg, dir) in targets {
        let kind = if pg.is_some() { "postgres" } else { "sqlite" };
        let run = |a: &[&str]| {
            let out = Command::new(BIN)
                .args(a)
                .args(&args)
                .env("RAPPORT_LOG", "warn")
                .output()
                .expect("run rapport");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let csv = dir.path().join("people.csv");
        let mut text = String::from("email,first_name\n");
        for i in 0..PEOPLE {
            text.push_str(&format!("r{i}@customer.test,R{i}\n"));
        }
        std::fs::write(&csv, text).unwrap();
        run(&["import", csv.to_str().unwrap()]);
        run(&["email", "domain", "example.com", "--keys", "ed25519"]);
        let html = dir.path().join("t.html");
        std::fs::write(&html, "<p>Hello {{ traits.first_name }}</p>").unwrap();
        run(&[
            "email",
            "template",
            "--name",
            "big",
            "--subject",
            "Big news",
            "--html",
            html.to_str().unwrap(),
        ]);
        let admin = run(&["keys", "create", "--scope", "admin"]);

        let sink = Sink::start();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let serve = || {
            Command::new(BIN)
                .args([
                    "serve",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--smtp-url",
                    &format!("smtp://127.0.0.1:{}", sink.port),
                ])
                .args(&args)
                .env("RAPPORT_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .expect("serve")
        };
        let http = reqwest::Client::new();
        let call = |m: Method, path: &str, body: Value| {
            http.request(m, format!("{url}{path}"))
                .bearer_auth(&admin)
                .json(&body)
                .send()
        };
        let mut server = serve();
        let up = |server: &mut Child| {
            assert!(server.try_wait().unwrap().is_none());
        };
        for _ in 0..100 {
            if http.get(format!("{url}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        up(&mut server);
        let r = call(Method::PUT, "/api/email/settings", json!({"marketing_consent": "not_denied", "claim_timeout_seconds": 2, "public_url": url, "connections": 16})).await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let r = call(
            Method::POST,
            "/api/segments",
            json!({"name": "Everyone", "definition": "has email"}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
        let r = call(Method::POST, "/api/email/campaigns", json!({"name": "Big", "template": "big", "from": "news@example.com", "audience": {"segment": "Everyone"}, "start": true})).await.unwrap();
        assert_eq!(r.status(), 201);
        let cid = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        // Kill it with a third of the messages at the relay.
        for _ in 0..1200 {
            if sink.messages().len() >= PEOPLE / 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = server.kill();
        let _ = server.wait();
        let at_kill = sink.messages().len();
        assert!(
            at_kill > 0 && at_kill < PEOPLE,
            "[{kind}] killed at {at_kill}"
        );
        let mut server = serve();
        let mut report = Value::Null;
        for _ in 0..1800 {
            if let Ok(r) = call(
                Method::GET,
                &format!("/api/email/campaigns/{cid}"),
                json!({}),
            )
            .await
            {
                report = r.json().await.unwrap_or(Value::Null);
                if report["campaign"]["status"] == "done" {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(report["campaign"]["status"], "done", "[{kind}] {report}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = server.kill();
        let _ = server.wait();

        let mut seen = std::collections::HashMap::<String, usize>::new();
        for f in sink.messages() {
            *seen
                .entry(envelope(&f)["rcpt_tos"][0].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "[{kind}] sent twice: {twice:?}");
        let statuses = &report["report"]["statuses"];
        let delivered = statuses["delivered"].as_i64().unwrap_or(0) as usize;
        let unknown = statuses["unknown"].as_i64().unwrap_or(0) as usize;
        assert_eq!(delivered + unknown, PEOPLE, "[{kind}] {report}");
        // Everyone delivered is at the relay; the missing are among the unknown.
        let missing = PEOPLE - seen.len();
        assert!(
            missing <= unknown && unknown <= 16,
            "[{kind}] missing {missing}, unknown {unknown}"
        );
        eprintln!("[{kind}] killed at {at_kill} of {PEOPLE}: delivered {delivered}, unknown {unknown} (of which at the relay {}), missing {missing}, duplicates 0", unknown - missing);
        if let Some((url, schema)) = pg {
            common::drop_schema(&url, &schema).await;
        }
    }
}

/// The CLI's store arguments for each store under test (SQLite in a directory, and a
/// fresh PostgreSQL schema when `RAPPORT_TEST_DATABASE_URL` is set), with that schema
/// to drop and a directory for the test's files.
type Target = (Vec<String>, Option<(String, String)>, tempfile::TempDir);

async fn cli_targets() -> Vec<Target> {
    let mut targets: Vec<Target> = Vec::new();
    let dir = tempfile::tempdir().expect("tempdir");
    targets.push((
        vec!["--data-dir".into(), dir.path().display().to_string()],
        None,
        dir,
    ));
    if let Some(url) = common::pg_url() {
        let schema = common::unique_schema();
        rapport_store::postgres::PgStore::connect_schema(&url, Some(&schema))
            .await
            .expect("pg");
        let sep = if url.contains('?') { '&' } else { '?' };
        let dir = tempfile::tempdir().expect("tempdir");
        targets.push((
            vec![
                "--database-url".into(),
                format!("{url}{sep}options=-csearch_path%3D{schema}"),
                "--data-dir".into(),
                dir.path().display().to_string(),
            ],
            Some((url, schema)),
            dir,
        ));
    }
    targets
}
