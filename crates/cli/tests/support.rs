//! Support tickets end to end against real peers: a customer's e-mail delivered into a
//! real IMAP mailbox (Debian's Dovecot) opens a ticket; the agent's reply goes out through
//! a real SMTP server (aiosmtpd) threaded under it; the customer's answer, and later a
//! reply to the resolved ticket, land on the same ticket — on SQLite and PostgreSQL.

mod common;

use common::dovecot::Dovecot;
use common::sink::{header_of, Sink};
use common::TestServer;
use reqwest::Method;
use serde_json::{json, Value};

async fn tickets(s: &TestServer) -> Vec<Value> {
    s.get("/api/tickets")
        .await
        .1
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn field_of(s: &TestServer, m: Method, path: &str, body: Value) -> (u16, String) {
    let (st, v) = s.send(m, path, body).await;
    (st, v["field"].as_str().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_emails_support_and_the_thread_holds() {
    for s in common::servers().await {
        let k = s.kind;
        let sink = Sink::start();
        let imap = Dovecot::start();
        let (st, v) = s
            .send(Method::PUT, "/api/email/settings", json!({"relay_url": format!("smtp://127.0.0.1:{}", sink.port), "public_url": s.url}))
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        // The support address must be on a sending domain.
        let (st, f) = field_of(
            &s,
            Method::PUT,
            "/api/support/settings",
            json!({"address": "support@shop.example"}),
        )
        .await;
        assert_eq!((st, f.as_str()), (400, "address"), "[{k}]");
        let (st, _) = s
            .send(
                Method::POST,
                "/api/email/domains",
                json!({"domain": "shop.example"}),
            )
            .await;
        assert_eq!(st, 201, "[{k}]");
        let (st, f) = field_of(
            &s,
            Method::PUT,
            "/api/support/settings",
            json!({"address": "support@shop.example", "mailbox": "pop3://x"}),
        )
        .await;
        assert_eq!((st, f.as_str()), (400, "mailbox"), "[{k}]");
        let (st, v) = s
            .send(Method::PUT, "/api/support/settings", json!({"address": "support@shop.example", "name": "Shop support", "mailbox": imap.url(), "poll_seconds": 1}))
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        let shown = s.get("/api/support/settings").await.1;
        assert!(
            shown["mailbox"].as_str().unwrap_or("").contains("***")
                && !shown.to_string().contains("secret"),
            "[{k}] the mailbox password is never shown: {shown}"
        );

        // 1. The customer writes to support.
        imap.deliver("From: Ann Lee <ann@customer.test>\r\nTo: support@shop.example\r\nSubject: My order is late\r\nMessage-ID: <c1@customer.test>\r\nDate: Mon, 7 Dec 2026 09:00:00 +0000\r\n\r\nWhere is my parcel? Order 1042.\r\n").await;
        let opened = common::eventually(&s, "/api/tickets", |v| {
            v.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
        let t = opened[0].clone();
        let id = t["id"].as_i64().unwrap();
        assert_eq!(t["number"], id, "[{k}]");
        assert_eq!(
            (
                t["subject"].as_str(),
                t["status"].as_str(),
                t["channel"].as_str()
            ),
            (Some("My order is late"), Some("open"), Some("email")),
            "[{k}] {t}"
        );
        let person = t["profile_id"].as_i64().unwrap();
        let p = s.get(&format!("/api/profiles/{person}")).await.1;
        assert_eq!(
            p["traits"]["name"], "Ann Lee",
            "[{k}] a new customer is made from the mail: {p}"
        );

        // 2. The agent answers; the reply goes out threaded under the customer's mail.
        let (st, r) = s
            .send(
                Method::POST,
                &format!("/api/tickets/{id}/replies"),
                json!({"body": "It ships today, sorry for the wait."}),
            )
            .await;
        assert_eq!(st, 201, "[{k}] {r}");
        let sent = sink.wait_for(1).await;
        let eml = &sent[0];
        assert_eq!(
            header_of(eml, "In-Reply-To").as_deref(),
            Some("<c1@customer.test>"),
            "[{k}]"
        );
        assert!(
            header_of(eml, "References")
                .unwrap_or_default()
                .contains("<c1@customer.test>"),
            "[{k}]"
        );
        assert_eq!(
            header_of(eml, "Subject").unwrap_or_default(),
            format!("Re: [#{id}] My order is late"),
            "[{k}]"
        );
        assert!(
            header_of(eml, "From")
                .unwrap_or_default()
                .contains("support@shop.example"),
            "[{k}]"
        );
        assert!(
            header_of(eml, "To")
                .unwrap_or_default()
                .contains("ann@customer.test"),
            "[{k}]"
        );
        let staff_mid = header_of(eml, "Message-ID").expect("message id");
        assert_eq!(
            r["message_id"].as_str(),
            Some(staff_mid.as_str()),
            "[{k}] {r}"
        );
        let raw = std::fs::read_to_string(eml).unwrap();
        assert!(raw.contains("It ships today"), "[{k}]");
        let (_, t) = s.get(&format!("/api/tickets/{id}")).await;
        assert_eq!(t["status"], "pending", "[{k}] waiting on the customer: {t}");
        assert!(t["first_response_at"].is_i64(), "[{k}]");

        // 3. The customer answers the agent's mail: the same ticket, open again.
        imap.deliver(&format!("From: ann@customer.test\r\nTo: support@shop.example\r\nSubject: Re: [#{id}] My order is late\r\nMessage-ID: <c2@customer.test>\r\nIn-Reply-To: {staff_mid}\r\nReferences: <c1@customer.test> {staff_mid}\r\n\r\nThanks, got the tracking number.\r\n\r\nOn Mon, 7 Dec 2026, Shop support wrote:\r\n> It ships today, sorry for the wait.\r\n")).await;
        let t = common::eventually(&s, &format!("/api/tickets/{id}"), |v| {
            v["messages"].as_array().is_some_and(|m| m.len() == 3)
        })
        .await;
        assert_eq!(t["status"], "open", "[{k}] {t}");
        assert_eq!(
            t["messages"][2]["body"], "Thanks, got the tracking number.",
            "[{k}] quoted history taken off: {t}"
        );
        assert_eq!(tickets(&s).await.len(), 1, "[{k}] no new ticket");

        // 4. Resolved; a later reply (the subject's number only, no thread headers) reopens it.
        let (st, v) = s
            .send(
                Method::PATCH,
                &format!("/api/tickets/{id}"),
                json!({"status": "resolved"}),
            )
            .await;
        assert_eq!(
            (st, v["status"].as_str()),
            (200, Some("resolved")),
            "[{k}] {v}"
        );
        // 5. "How did we do?": a one-click rating from the e-mail, then a word.
        let sent = sink.wait_for(2).await;
        let rating_mail = sent
            .iter()
            .filter_map(|f| rapport_email::inbound::read(&std::fs::read(f).unwrap()))
            .find(|m| m.text.contains("/e/r/"))
            .expect("a rating e-mail");
        let five = rating_mail
            .text
            .lines()
            .find(|l| l.starts_with("5 (great): "))
            .and_then(|l| l.split(": ").nth(1))
            .expect("the five-star link")
            .trim()
            .to_string();
        let r = reqwest::get(&five).await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "[{k}]");
        assert!(r.text().await.unwrap().contains("5 out of 5"), "[{k}]");
        let r = reqwest::Client::new()
            .post(&five)
            .form(&[("comment", "Quick and kind <b>thanks</b>")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "[{k}]");
        let (_, t) = s.get(&format!("/api/tickets/{id}")).await;
        assert_eq!(
            (t["csat"].as_i64(), t["csat_comment"].as_str()),
            (Some(5), Some("Quick and kind <b>thanks</b>")),
            "[{k}] {t}"
        );
        let forged = format!("{}x", five.rsplit_once('/').unwrap().0);
        assert_eq!(
            reqwest::get(&forged).await.unwrap().status().as_u16(),
            404,
            "[{k}]"
        );
        imap.deliver(&format!("From: Ann <ANN@customer.test>\r\nTo: support@shop.example\r\nSubject: RE: [#{id}] My order is late\r\nMessage-ID: <c3@customer.test>\r\n\r\nIt arrived broken.\r\n")).await;
        let t = common::eventually(&s, &format!("/api/tickets/{id}"), |v| {
            v["messages"].as_array().is_some_and(|m| m.len() == 4)
        })
        .await;
        assert_eq!(
            t["status"], "open",
            "[{k}] reopened, never a new ticket: {t}"
        );
        assert_eq!(tickets(&s).await.len(), 1, "[{k}]");
        // Someone else quoting the number does not get into Ann's ticket.
        imap.deliver(&format!("From: mallory@evil.test\r\nTo: support@shop.example\r\nSubject: Re: [#{id}] My order is late\r\nMessage-ID: <m1@evil.test>\r\n\r\nLet me in.\r\n")).await;
        common::eventually(&s, "/api/tickets", |v| {
            v.as_array().is_some_and(|a| a.len() == 2)
        })
        .await;
        let (_, t) = s.get(&format!("/api/tickets/{id}")).await;
        assert_eq!(t["messages"].as_array().map(Vec::len), Some(4), "[{k}]");
        // An auto-reply opens nothing.
        imap.deliver("From: ann@customer.test\r\nAuto-Submitted: auto-replied\r\nSubject: Out of office\r\nMessage-ID: <ooo@customer.test>\r\n\r\nAway.\r\n").await;
        for _ in 0..100 {
            if imap.unseen().await == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(
            imap.unseen().await,
            0,
            "[{k}] every message read and flagged"
        );
        assert_eq!(tickets(&s).await.len(), 2, "[{k}]");
        // A mail is never refused for its size: a long subject is cut to 300 characters.
        imap.deliver(&format!(
            "From: long@customer.test\r\nSubject: {}\r\nMessage-ID: <long@customer.test>\r\n\r\nHi\r\n",
            "x".repeat(400)
        ))
        .await;
        let all = common::eventually(&s, "/api/tickets", |v| {
            v.as_array().is_some_and(|a| a.len() == 3)
        })
        .await;
        assert_eq!(all[0]["subject"].as_str().map(str::len), Some(300), "[{k}]");

        // Every step is on Ann's timeline.
        let (_, tl) = s
            .get(&format!("/api/profiles/{person}/timeline?channel=support"))
            .await;
        let names: Vec<&str> = tl["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        for n in [
            "Ticket Opened",
            "Ticket Replied",
            "Ticket Resolved",
            "CSAT Given",
        ] {
            assert!(names.contains(&n), "[{k}] {n} missing: {names:?}");
        }
        let (_, mine) = s.get(&format!("/api/profiles/{person}/tickets")).await;
        assert_eq!(mine.as_array().map(Vec::len), Some(1), "[{k}] {mine}");
        s.finish().await;
    }
}

/// Tickets through the API: bad input is refused naming the field and changes nothing;
/// notes are never sent; snoozing needs a time; the inbox filters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_through_the_api_refuse_bad_input() {
    for s in common::servers().await {
        let k = s.kind;
        for (body, field) in [
            (
                json!({"requester": "email:bob@customer.test", "subject": " ", "body": "x"}),
                "subject",
            ),
            (
                json!({"requester": "email:bob@customer.test", "subject": "s".repeat(301), "body": "x"}),
                "subject",
            ),
            (
                json!({"requester": "email:bob@customer.test", "subject": "Hi", "body": "x".repeat(20_001)}),
                "body",
            ),
            (
                json!({"requester": "not an address", "subject": "Hi", "body": "x"}),
                "requester",
            ),
            (
                json!({"requester": 99999, "subject": "Hi", "body": "x"}),
                "requester",
            ),
            (
                json!({"requester": "email:bob@customer.test", "subject": "Hi", "body": "x", "priority": "asap"}),
                "priority",
            ),
            (
                json!({"requester": "email:bob@customer.test", "subject": "Hi", "body": "x", "colour": 1}),
                "colour",
            ),
        ] {
            let (st, f) = field_of(&s, Method::POST, "/api/tickets", body.clone()).await;
            assert_eq!((st, f.as_str()), (400, field), "[{k}] {body}");
        }
        assert!(tickets(&s).await.is_empty(), "[{k}] nothing was opened");
        // HTML in a ticket is kept as text (the app escapes it when it shows it).
        let (st, t) = s
            .send(Method::POST, "/api/tickets", json!({"requester": "email:bob@customer.test", "subject": "Broken <b>lamp</b>", "body": "<script>alert(1)</script> it flickers", "priority": "high", "tags": ["Lamp", "lamp"]}))
            .await;
        assert_eq!(st, 201, "[{k}] {t}");
        let id = t["id"].as_i64().unwrap();
        // Tags lower-cased and once each; text analysis adds its own after them.
        assert_eq!(
            (
                t["priority"].as_str(),
                t["tags"][0].as_str(),
                t["tags"][1].as_str()
            ),
            (Some("high"), Some("lamp"), Some("intent:complaint")),
            "[{k}] {t}"
        );
        // A staff reply needs the support address; refused, nothing added.
        let (st, f) = field_of(
            &s,
            Method::POST,
            &format!("/api/tickets/{id}/replies"),
            json!({"body": "On it"}),
        )
        .await;
        assert_eq!((st, f.as_str()), (400, "address"), "[{k}]");
        let (st, f) = field_of(
            &s,
            Method::POST,
            &format!("/api/tickets/{id}/replies"),
            json!({"body": "x", "from": "robot"}),
        )
        .await;
        assert_eq!((st, f.as_str()), (400, "from"), "[{k}]");
        let (st, f) = field_of(
            &s,
            Method::POST,
            &format!("/api/tickets/{id}/replies"),
            json!({"body": "  ", "from": "note"}),
        )
        .await;
        assert_eq!((st, f.as_str()), (400, "body"), "[{k}]");
        let (st, m) = s
            .send(
                Method::POST,
                &format!("/api/tickets/{id}/replies"),
                json!({"body": "Check the batch number first.", "from": "note"}),
            )
            .await;
        assert_eq!((st, m["author"].as_str()), (201, Some("note")), "[{k}] {m}");
        let (_, t) = s.get(&format!("/api/tickets/{id}")).await;
        assert_eq!(t["messages"].as_array().map(Vec::len), Some(2), "[{k}]");
        assert_eq!(t["status"], "open", "[{k}] a note leaves the status: {t}");
        // Status changes: a bad status, snoozing without a time, a time in the past.
        for (body, field) in [
            (json!({"status": "done"}), "status"),
            (json!({"status": "snoozed"}), "snooze_until"),
            (
                json!({"status": "snoozed", "snooze_until": "2001-01-01T00:00:00Z"}),
                "snooze_until",
            ),
            (
                json!({"status": "open", "snooze_until": "2099-01-01T00:00:00Z"}),
                "snooze_until",
            ),
            (json!({"assignee": "nobody"}), "assignee"),
        ] {
            let (st, f) = field_of(
                &s,
                Method::PATCH,
                &format!("/api/tickets/{id}"),
                body.clone(),
            )
            .await;
            assert_eq!((st, f.as_str()), (400, field), "[{k}] {body}");
        }
        let (st, v) = s
            .send(
                Method::PATCH,
                &format!("/api/tickets/{id}"),
                json!({"assignee": "Agent@Shop.example"}),
            )
            .await;
        assert_eq!(
            (st, v["assignee"].as_str()),
            (200, Some("agent@shop.example")),
            "[{k}] {v}"
        );
        assert_eq!(
            s.get("/api/tickets?assignee=agent@shop.example")
                .await
                .1
                .as_array()
                .map(Vec::len),
            Some(1),
            "[{k}]"
        );
        assert_eq!(
            s.get("/api/tickets?unassigned=true")
                .await
                .1
                .as_array()
                .map(Vec::len),
            Some(0),
            "[{k}]"
        );
        assert_eq!(
            s.get("/api/tickets?status=closed")
                .await
                .1
                .as_array()
                .map(Vec::len),
            Some(0),
            "[{k}]"
        );
        let (st, f) = (s.get("/api/tickets?status=later").await.0, ());
        assert_eq!((st, f), (400, ()), "[{k}]");
        // Snoozed until a moment from now, then woken by the worker.
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
        let (st, v) = s
            .send(
                Method::PATCH,
                &format!("/api/tickets/{id}"),
                json!({"status": "snoozed", "snooze_until": soon}),
            )
            .await;
        assert_eq!(
            (st, v["status"].as_str()),
            (200, Some("snoozed")),
            "[{k}] {v}"
        );
        let t =
            common::eventually(&s, &format!("/api/tickets/{id}"), |v| v["status"] == "open").await;
        assert!(t["snooze_until"].is_null(), "[{k}] {t}");
        assert_eq!(s.get("/api/tickets/424242").await.0, 404, "[{k}]");
        s.finish().await;
    }
}

/// Service levels: a policy per priority (checked, naming the field); the next promise of
/// each ticket, the inbox of what is due soon, and `SLA Breached` recorded once per
/// broken promise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_levels_are_watched() {
    for s in common::servers().await {
        let k = s.kind;
        let (st, f) = field_of(
            &s,
            Method::PUT,
            "/api/support/settings",
            json!({"sla": {"high": {"first_response_minutes": 60, "resolution_minutes": 30}}}),
        )
        .await;
        assert_eq!((st, f.as_str()), (400, "sla.high"), "[{k}]");
        let (st, f) = field_of(
            &s,
            Method::PUT,
            "/api/support/settings",
            json!({"sla": {"asap": {"first_response_minutes": 1, "resolution_minutes": 2}}}),
        )
        .await;
        assert_eq!((st, f.as_str()), (400, "sla.asap"), "[{k}]");
        let (st, v) = s
            .send(Method::PUT, "/api/support/settings", json!({"sla": {"urgent": {"first_response_minutes": 30, "resolution_minutes": 120}}}))
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        assert_eq!(
            v["sla"]["urgent"]["first_response_minutes"], 30,
            "[{k}] {v}"
        );
        assert_eq!(
            v["sla"]["normal"]["first_response_minutes"], 480,
            "[{k}] defaults kept: {v}"
        );
        let (_, t) = s
            .send(Method::POST, "/api/tickets", json!({"requester": "email:cy@customer.test", "subject": "Down", "body": "Nothing works", "priority": "urgent"}))
            .await;
        let id = t["id"].as_i64().unwrap();
        let (_, v) = s.get(&format!("/api/tickets/{id}")).await;
        assert_eq!(
            (v["due"]["promise"].as_str(), v["due"]["breached"].as_bool()),
            (Some("first_response"), Some(false)),
            "[{k}] {v}"
        );
        let due_at = v["due"]["at"].as_i64().unwrap();
        assert_eq!(
            due_at - v["created_at"].as_i64().unwrap(),
            30 * 60_000,
            "[{k}]"
        );
        let within = |m: i64| {
            let s = &s;
            async move {
                s.get(&format!("/api/tickets?due_within={m}"))
                    .await
                    .1
                    .as_array()
                    .map(Vec::len)
            }
        };
        assert_eq!(within(10).await, Some(0), "[{k}]");
        assert_eq!(within(40).await, Some(1), "[{k}]");
        assert_eq!(s.get("/api/tickets?due_within=-1").await.0, 400, "[{k}]");
        // A ticket opened two hours ago (written as the store would have then): its
        // first answer is overdue; the worker's step records it once.
        let person = t["profile_id"].as_i64().unwrap();
        let then = rapport_domain::time::now_millis() - 2 * 3_600_000;
        let old = s
            .store
            .open_ticket(
                rapport_store::Ticket {
                    id: 0,
                    number: 0,
                    profile_id: person,
                    address: None,
                    subject: "Still down".into(),
                    status: "open".into(),
                    priority: "urgent".into(),
                    assignee: None,
                    team: None,
                    tags: vec![],
                    channel: "api".into(),
                    snooze_until: None,
                    created_at: then,
                    updated_at: then,
                    first_response_at: None,
                    resolved_at: None,
                    csat: None,
                    csat_comment: None,
                    origin: None,
                },
                rapport_store::TicketMessage {
                    id: 0,
                    ticket_id: 0,
                    author: "customer".into(),
                    staff: None,
                    body: "Hello?".into(),
                    message_id: None,
                    email_id: None,
                    at: then,
                },
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            within(0).await,
            Some(1),
            "[{k}] only the old one is overdue"
        );
        rapport_app::tickets::sla_step(&s.store).await.unwrap();
        rapport_app::tickets::sla_step(&s.store).await.unwrap();
        let (_, tl) = s
            .get(&format!(
                "/api/profiles/{person}/timeline?name=SLA%20Breached"
            ))
            .await;
        let items = tl["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 1, "[{k}] once per broken promise: {tl}");
        assert_eq!(
            (
                items[0]["properties"]["ticket"].as_i64(),
                items[0]["properties"]["promise"].as_str()
            ),
            (Some(old.id), Some("first_response")),
            "[{k}]"
        );
        s.finish().await;
    }
}

/// An agent's help around a ticket: text analysis tags it and finds the articles that
/// may answer it; teams and tags narrow the inbox; canned replies are written out for
/// the customer; a social post that complains opens a ticket once the brand turns it on
/// — once only, also when the step is repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_are_tagged_routed_and_answered_with_help() {
    for s in common::servers().await {
        let k = s.kind;
        let (st, _) = s
            .send(Method::POST, "/api/kb/articles", json!({"title": "Returns and refunds", "body": "Send a broken lamp back within 30 days for a full refund.", "status": "published"}))
            .await;
        assert_eq!(st, 201, "[{k}]");
        s.send(Method::POST, "/api/kb/articles", json!({"title": "Pairing the app", "body": "Open the app and hold the button.", "status": "published"}))
            .await;

        // Settings: bad ones are refused by field, nothing saved.
        let good = json!({
            "teams": [{"name": "Billing", "members": ["Bo@Shop.test"]}, {"name": "Devices"}],
            "canned_replies": [{"name": "refund", "body": "Hi {{ traits.first_name }},\n\nyour refund for #{{ data.number }} is on its way.\n\n{{ data.agent }}"}]
        });
        let mut bad = good.clone();
        bad["teams"][1]["name"] = json!("billing");
        assert_eq!(
            field_of(&s, Method::PUT, "/api/support/settings", bad).await,
            (400, "teams[1].name".into()),
            "[{k}]"
        );
        let mut bad = good.clone();
        bad["canned_replies"][0]["body"] = json!("Hi {{ traits.first_name ");
        assert_eq!(
            field_of(&s, Method::PUT, "/api/support/settings", bad).await,
            (400, "canned_replies[0].body".into()),
            "[{k}]"
        );
        let (_, v) = s.get("/api/support/settings").await;
        assert_eq!(v["teams"], json!([]), "[{k}] nothing saved: {v}");
        let (st, v) = s.send(Method::PUT, "/api/support/settings", good).await;
        assert_eq!(st, 200, "[{k}] {v}");
        assert_eq!(v["teams"][0]["members"], json!(["bo@shop.test"]), "[{k}]");

        // A ticket is tagged by what it says, and the refund article is suggested.
        s.post_v1(
            "/v1/identify",
            json!({"userId": "zoe", "traits": {"email": "zoe@customer.test", "first_name": "Zoe"}}),
        )
        .await;
        let (st, t) = s
            .send(Method::POST, "/api/tickets", json!({"requester": "email:zoe@customer.test", "subject": "Broken lamp", "body": "My lamp arrived broken. I want a refund!", "tags": ["vip"]}))
            .await;
        assert_eq!(st, 201, "[{k}] {t}");
        let id = t["id"].as_i64().unwrap();
        let tags: Vec<&str> = t["tags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            tags,
            ["vip", "intent:complaint", "sentiment:negative"],
            "[{k}] {t}"
        );
        let (_, v) = s.get(&format!("/api/tickets/{id}")).await;
        assert_eq!(
            v["suggested_articles"][0]["title"], "Returns and refunds",
            "[{k}] {v}"
        );
        let (_, other) = s
            .send(Method::POST, "/api/tickets", json!({"requester": "email:al@customer.test", "subject": "Thanks", "body": "All good, thank you."}))
            .await;

        // Teams: one of the settings' (any case), else refused and the ticket unchanged.
        let path = format!("/api/tickets/{id}");
        assert_eq!(
            field_of(
                &s,
                Method::PATCH,
                &path,
                json!({"team": "Sales", "priority": "high"})
            )
            .await,
            (400, "team".into()),
            "[{k}]"
        );
        let (st, v) = s
            .send(Method::PATCH, &path, json!({"team": "billing"}))
            .await;
        assert_eq!(
            (st, v["team"].as_str()),
            (200, Some("Billing")),
            "[{k}] {v}"
        );
        assert_eq!(
            v["priority"], "normal",
            "[{k}] the refused change left nothing"
        );
        let ids = |v: Value| -> Vec<i64> {
            v.as_array()
                .unwrap()
                .iter()
                .filter_map(|t| t["id"].as_i64())
                .collect()
        };
        assert_eq!(
            ids(s.get("/api/tickets?team=Billing").await.1),
            [id],
            "[{k}]"
        );
        assert_eq!(
            ids(s.get("/api/tickets?tag=intent:complaint").await.1),
            [id],
            "[{k}]"
        );
        assert_eq!(
            ids(s.get("/api/tickets?tag=Sentiment:Positive").await.1),
            [other["id"].as_i64().unwrap()],
            "[{k}]"
        );

        // A canned reply, written out for Zoe (as a note: nothing to send here).
        let replies = format!("/api/tickets/{id}/replies");
        assert_eq!(
            field_of(
                &s,
                Method::POST,
                &replies,
                json!({"canned": "nope", "from": "note"})
            )
            .await,
            (400, "canned".into()),
            "[{k}]"
        );
        assert_eq!(
            field_of(
                &s,
                Method::POST,
                &replies,
                json!({"canned": "refund", "body": "x", "from": "note"})
            )
            .await,
            (400, "canned".into()),
            "[{k}]"
        );
        let (st, m) = s
            .send(
                Method::POST,
                &replies,
                json!({"canned": "refund", "from": "note"}),
            )
            .await;
        assert_eq!(st, 201, "[{k}] {m}");
        assert!(
            m["body"].as_str().is_some_and(|b| b.starts_with(&format!(
                "Hi Zoe,\n\nyour refund for #{id} is on its way.\n\napi:"
            ))),
            "[{k}] the agent is the key: {m}"
        );

        // Social complaints open tickets once turned on; praise does not.
        let social = |n: &str, text: &str| {
            json!({"userId": format!("bsky-{n}"), "event": "Social Post", "messageId": format!("post-{n}"),
                "context": {"channel": "social"}, "properties": {"network": "bluesky", "text": text}})
        };
        let (_, v) = s.get("/api/support/settings").await;
        let mut on = v.clone();
        on["social_complaints"] = json!(true);
        on.as_object_mut().unwrap().remove("mailbox");
        let (st, v) = s.send(Method::PUT, "/api/support/settings", on).await;
        assert_eq!(st, 200, "[{k}] {v}");
        s.post_v1(
            "/v1/track",
            social(
                "ann",
                "My lamp arrived broken and nobody answers. Worst purchase ever.",
            ),
        )
        .await;
        s.post_v1("/v1/track", social("bob", "Love my new lamp, thank you!"))
            .await;
        let all = common::eventually(&s, "/api/tickets", |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|t| t["channel"] == "social"))
        })
        .await;
        let from_social: Vec<&Value> = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["channel"] == "social")
            .collect();
        assert_eq!(from_social.len(), 1, "[{k}] {all}");
        let st = from_social[0];
        assert!(
            st["subject"]
                .as_str()
                .is_some_and(|x| x.starts_with("On bluesky: My lamp arrived broken")),
            "[{k}] {st}"
        );
        assert!(
            st["tags"]
                .as_array()
                .unwrap()
                .contains(&json!("intent:complaint")),
            "[{k}] {st}"
        );
        // The step read again from the start opens nothing twice.
        s.store
            .set_counter(rapport_app::tickets::SOCIAL_CURSOR, 0)
            .await
            .unwrap();
        rapport_app::tickets::social_step(&s.store).await.unwrap();
        let again = tickets(&s).await;
        assert_eq!(
            again.iter().filter(|t| t["channel"] == "social").count(),
            1,
            "[{k}]"
        );
        s.finish().await;
    }
}
