//! Privacy end to end over HTTP, on SQLite and PostgreSQL: a person's export holds
//! everything stored about them; erasure leaves none of their e-mail, phone, name or
//! wallet in any table or column (and, on SQLite, in neither the database file nor its
//! WAL); tracking their identifiers afterwards does not bring them back; the audit
//! names who did what, without the personal data.

mod common;

use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const EMAIL: &str = "annabel.erase@customer.test";
const PHONE: &str = "+442079460958";
const NAME: &str = "Annabel Zylstra";
const WALLET: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

fn leaks(text: &str) -> Vec<&'static str> {
    [
        EMAIL,
        PHONE,
        NAME,
        WALLET,
        "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
    ]
    .into_iter()
    .filter(|needle| text.contains(needle))
    .collect()
}

/// Bytes of a file, as lossy text (a missing file is empty).
fn file_text(path: &std::path::Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_erase_leaves_nothing() {
    for (store, dir, pg) in common::stores().await {
        let db_file = dir.as_ref().map(|d| d.path().join("rapport.db"));
        let s = common::start(store, dir, pg.clone()).await;
        let k = s.kind;
        // The person, in every capability: identity, traits, events with text, a
        // relationship, a consent with proof, an e-mail copy.
        let (st, v) = s
            .batch(json!([
                {"type": "identify", "userId": "u-annabel", "messageId": "m-1",
                 "traits": {"email": EMAIL, "phone": "+44 20 7946 0958", "name": NAME, "wallets": [WALLET]},
                 "context": {"ip": "203.0.113.9"}},
                {"type": "track", "userId": "u-annabel", "event": "Review Written", "messageId": "m-2",
                 "properties": {"review": format!("{NAME} here: I love it, write to {EMAIL}"), "stars": 5}},
                {"type": "track", "userId": "u-bob", "event": "Signed Up", "messageId": "m-3",
                 "properties": {"referrer": format!("email:{EMAIL}"), "comment": format!("my friend {EMAIL} sent me, thanks!")}},
            ]))
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        let ann = s.profile_of(&format!("email:{EMAIL}")).await;
        let id = ann["id"].as_i64().unwrap();
        let (st, v) = s
            .send(
                Method::PUT,
                &format!("/api/profiles/{id}/consents"),
                json!({"channel": "email", "purpose": "marketing", "status": "granted", "proof": format!("form signed by {NAME}")}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        let (st, v) = s
            .send(
                Method::POST,
                "/api/email/domains",
                json!({"domain": "example.com"}),
            )
            .await;
        assert_eq!(st, 201, "[{k}] {v}");
        let (st, v) = s
            .send(Method::POST, "/api/email/templates", json!({"name": "hello", "subject": "Hi {{ traits.name }}", "html": "<p>Hello {{ traits.name }}</p>"}))
            .await;
        assert_eq!(st, 201, "[{k}] {v}");
        let (st, v) = s
            .send(Method::POST, "/api/email/send", json!({"template": "hello", "to": format!("email:{EMAIL}"), "from": "news@example.com"}))
            .await;
        assert_eq!(st, 202, "[{k}] {v}");
        // A support ticket, with the person's words in it.
        let (st, v) = s
            .send(Method::POST, "/api/tickets", json!({"requester": format!("email:{EMAIL}"), "subject": format!("Help {NAME}"), "body": format!("Call me on {PHONE}")}))
            .await;
        assert_eq!(st, 201, "[{k}] {v}");
        // Text analysis and relationship inference run behind ingestion.
        let mut export = Value::Null;
        for _ in 0..100 {
            let (st, v) = s.get(&format!("/api/profiles/{id}/export")).await;
            assert_eq!(st, 200, "[{k}] {v}");
            export = v;
            let r = &export["records"];
            let filled = |t: &str| r[t].as_array().is_some_and(|a| !a.is_empty());
            if filled("text_analyses") && filled("relationships") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The export: every section there, and the person's own data in it.
        assert_eq!(export["format"], "rapport.person-export/1", "[{k}]");
        assert_eq!(export["person"], id);
        let text = export.to_string();
        for needle in [EMAIL, PHONE, NAME, WALLET] {
            assert!(text.contains(needle), "[{k}] the export lacks {needle}");
        }
        let r = &export["records"];
        for t in [
            "text_analyses",
            "relationships",
            "consents",
            "email_messages",
            "identities",
            "tickets",
            "ticket_messages",
        ] {
            assert!(
                r[t].as_array().is_some_and(|a| !a.is_empty()),
                "[{k}] export lacks {t}: {r}"
            );
        }
        assert!(export["events"].as_array().unwrap().len() >= 2, "[{k}]");
        assert!(export["profile"]["identities"].as_array().unwrap().len() >= 4);
        assert!(
            !text.contains("\"secret\""),
            "[{k}] no secrets in an export"
        );

        // Bad input changes nothing.
        let (st, v) = s
            .send(
                Method::POST,
                &format!("/api/profiles/{id}/erase"),
                json!({"remember": "yes"}),
            )
            .await;
        assert_eq!(
            (st, v["field"].as_str()),
            (400, Some("remember")),
            "[{k}] {v}"
        );
        let (st, _) = s
            .send(Method::POST, "/api/profiles/999999/erase", json!({}))
            .await;
        assert_eq!(st, 404, "[{k}]");
        let (st, v) = s
            .client
            .post(format!("{}/api/profiles/{id}/erase", s.url))
            .bearer_auth(&s.write)
            .send()
            .await
            .map(|r| (r.status().as_u16(), ()))
            .unwrap();
        assert_eq!(st, 403, "[{k}] a write key cannot erase {v:?}");
        assert_eq!(s.profile_of(&format!("email:{EMAIL}")).await["id"], id);

        // Erasure.
        let (st, report) = s
            .send(
                Method::POST,
                &format!("/api/profiles/{id}/erase"),
                json!({}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {report}");
        assert!(
            report["identifiers"].as_u64().unwrap() >= 4,
            "[{k}] {report}"
        );
        assert!(
            report["events_anonymised"].as_u64().unwrap() >= 2,
            "[{k}] {report}"
        );
        for ident in [
            format!("email:{EMAIL}"),
            format!("phone:{PHONE}"),
            "user_id:u-annabel".to_string(),
            format!("wallet:eip155:1:{WALLET}"),
        ] {
            let (st, v) = s
                .get(&format!(
                    "/api/profiles/lookup?identifier={}",
                    common::urlencode(&ident)
                ))
                .await;
            assert_eq!(st, 404, "[{k}] {ident} still finds {v}");
        }
        let (st, _) = s.get(&format!("/api/profiles/{id}")).await;
        assert_eq!(st, 404, "[{k}]");
        // Bob stays, without the relationship to her.
        let bob = s.profile_of("user_id:u-bob").await;
        assert!(bob["id"].as_i64().is_some());

        // Tracking the same identifiers again does not bring her back.
        let (st, _) = s
            .batch(json!([{"type": "identify", "userId": "u-annabel", "traits": {"email": EMAIL, "name": NAME}}]))
            .await;
        assert_eq!(st, 200, "[{k}]");
        let (st, _) = s
            .get(&format!(
                "/api/profiles/lookup?identifier={}",
                common::urlencode(&format!("email:{EMAIL}"))
            ))
            .await;
        assert_eq!(st, 404, "[{k}] re-tracking recreated the person");

        // Not a trace in any table or column; on SQLite, nor in the files.
        let dump = match (&db_file, &pg) {
            (Some(path), _) => {
                let mut all = rapport_store::testing::sqlite_text(path);
                all.push_str(&file_text(path));
                all.push_str(&file_text(&path.with_extension("db-wal")));
                all
            }
            (None, Some((url, schema))) => rapport_store::testing::pg_text(url, schema).await,
            _ => unreachable!(),
        };
        let found: Vec<&str> = dump
            .lines()
            .filter(|l| !leaks(l).is_empty())
            .map(|l| &l[..l.len().min(300)])
            .take(5)
            .collect();
        assert!(
            leaks(&dump).is_empty(),
            "[{k}] still stored: {:?} in {found:#?}",
            leaks(&dump)
        );

        // The audit: who exported and erased, no personal data.
        let (st, audit) = s.get(&format!("/api/audit?target=person:{id}")).await;
        assert_eq!(st, 200, "[{k}] {audit}");
        let actions: Vec<&str> = audit
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        for a in ["profile.erase", "profile.export", "consent.set"] {
            assert!(actions.contains(&a), "[{k}] {a} not audited: {actions:?}");
        }
        assert!(
            audit[0]["who"].as_str().unwrap().starts_with("api:"),
            "[{k}] {audit}"
        );
        let (st, v) = s.get("/api/audit?limit=0").await;
        assert_eq!((st, v["field"].as_str()), (400, Some("limit")), "[{k}] {v}");
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_audiences_are_hashed_and_consented() {
    use sha2::{Digest, Sha256};
    let hex = |s: &str| -> String {
        Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    for s in common::servers().await {
        let k = s.kind;
        let (st, v) = s
            .batch(json!([
                {"type": "identify", "userId": "a1", "traits": {"email": "Ann.Lee@Gmail.com", "phone": "+44 7911 123456", "club": "x"}},
                {"type": "identify", "userId": "a2", "traits": {"email": "bo@example.com", "club": "x"}},
                {"type": "identify", "userId": "a3", "traits": {"email": "cy@example.com", "club": "x"}},
            ]))
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        for u in ["a1", "a2"] {
            let id = s.profile_of(&format!("user_id:{u}")).await["id"]
                .as_i64()
                .unwrap();
            let (st, v) = s
                .send(
                    Method::PUT,
                    &format!("/api/profiles/{id}/consents"),
                    json!({"channel": "ads", "purpose": "custom_audiences", "status": "granted"}),
                )
                .await;
            assert_eq!(st, 200, "[{k}] {v}");
        }
        let (_, seg) = s
            .send(
                Method::POST,
                "/api/segments",
                json!({"name": "Club", "definition": "traits.club = \"x\""}),
            )
            .await;
        let sid = seg["id"].as_i64().unwrap();
        s.send(
            Method::POST,
            &format!("/api/segments/{sid}/refresh"),
            json!({}),
        )
        .await;
        let get_csv = |platform: &str| {
            let url = format!(
                "{}/api/segments/{sid}/ad-audience?platform={platform}",
                s.url
            );
            let c = s.client.get(url).bearer_auth(&s.admin);
            async move {
                let r = c.send().await.unwrap();
                let st = r.status().as_u16();
                let excluded = r
                    .headers()
                    .get("x-rapport-excluded")
                    .map(|v| v.to_str().unwrap().to_string());
                (st, excluded, r.text().await.unwrap())
            }
        };
        let (st, excluded, meta) = get_csv("meta").await;
        assert_eq!((st, excluded.as_deref()), (200, Some("1")), "[{k}] {meta}");
        let mut lines: Vec<&str> = meta.lines().collect();
        assert_eq!(lines.remove(0), "email,phone");
        lines.sort_unstable();
        let mut want = vec![
            format!("{},{}", hex("ann.lee@gmail.com"), hex("447911123456")),
            format!("{},", hex("bo@example.com")),
        ];
        want.sort_unstable();
        assert_eq!(lines, want, "[{k}] {meta}");
        assert!(
            !meta.contains("cy@") && !meta.contains(&hex("cy@example.com")),
            "[{k}] no consent, not listed"
        );
        let (_, _, google) = get_csv("google").await;
        assert!(google.starts_with("Email,Phone\n"), "[{k}] {google}");
        assert!(
            google.contains(&format!(
                "{},{}",
                hex("annlee@gmail.com"),
                hex("+447911123456")
            )),
            "[{k}] {google}"
        );
        let (st, _, body) = get_csv("tiktok").await;
        assert!(st == 400 && body.contains("platform"), "[{k}] {body}");
        let (_, audit) = s.get(&format!("/api/audit?target=segment:{sid}")).await;
        assert_eq!(audit[0]["action"], "audience.export", "[{k}] {audit}");
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_anonymous_people_and_old_events() {
    for s in common::servers().await {
        let k = s.kind;
        let old = "2024-01-01T00:00:00Z";
        let (st, v) = s
            .batch(json!([
                {"type": "page", "anonymousId": "anon-1", "name": "Home"},
                {"type": "identify", "userId": "known", "traits": {"email": "keep.me@retention.test"}},
                {"type": "track", "userId": "known", "event": "Ancient", "timestamp": old, "properties": {"x": 1}},
                {"type": "track", "userId": "known", "event": "Ancient", "timestamp": old},
                {"type": "track", "userId": "known", "event": "Recent"},
            ]))
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/settings/retention",
                json!({"event_days": 0}),
            )
            .await;
        assert_eq!(
            (st, v["field"].as_str()),
            (400, Some("event_days")),
            "[{k}] {v}"
        );
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/settings/retention",
                json!({"anonymous_profile_days": 30, "event_days": 365}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        // Today: the events of 2024 go (two, counted per day), the visitor stays.
        let (st, r) = s
            .send(Method::POST, "/api/settings/retention/run", json!({}))
            .await;
        assert_eq!(st, 200, "[{k}] {r}");
        assert_eq!(
            (r["events"].as_u64(), r["anonymous_people"].as_u64()),
            (Some(2), Some(0)),
            "[{k}] {r}"
        );
        let anon = s.profile_of("anonymous_id:anon-1").await;
        // Thirty-one days on, the visitor with no identifier but a cookie goes too; the
        // known person stays, with her recent events.
        let later =
            rapport_domain::time::to_datetime(rapport_domain::time::now_millis() + 31 * 86_400_000)
                .to_rfc3339();
        let (st, r) = s
            .send(
                Method::POST,
                "/api/settings/retention/run",
                json!({"as_of": later}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {r}");
        assert_eq!(r["anonymous_people"].as_u64(), Some(1), "[{k}] {r}");
        let (st, _) = s.get(&format!("/api/profiles/{}", anon["id"])).await;
        assert_eq!(st, 404, "[{k}]");
        let known = s.profile_of("email:keep.me@retention.test").await;
        let (_, tl) = s
            .get(&format!("/api/profiles/{}/timeline", known["id"]))
            .await;
        let names: Vec<&str> = tl["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert!(
            names.contains(&"Recent") && !names.contains(&"Ancient"),
            "[{k}] {names:?}"
        );
        let (st, v) = s
            .send(
                Method::POST,
                "/api/settings/retention/run",
                json!({"as_of": "soon"}),
            )
            .await;
        assert_eq!((st, v["field"].as_str()), (400, Some("as_of")), "[{k}] {v}");
        s.finish().await;
    }
}
