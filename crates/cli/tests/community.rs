//! The community, ideas and the knowledge base over HTTP, on SQLite and PostgreSQL:
//! questions answered and accepted (and the helper's evangelist value rising after the
//! graph recompute), votes and reputation, the idea vote budget and merges, moderation
//! of what text analysis holds, escaping of what people write, and the knowledge base's
//! proposals, revisions, search and deflection.

mod common;

use reqwest::Method;
use serde_json::{json, Value};

async fn person(s: &common::TestServer, email: &str) -> i64 {
    let (st, _) = s
        .batch(json!([{"type": "identify", "userId": email, "traits": {"email": email, "name": format!("{email} Tester")}}]))
        .await;
    assert_eq!(st, 200);
    s.profile_of(&format!("email:{email}")).await["id"]
        .as_i64()
        .unwrap()
}

async fn evangelist(s: &common::TestServer, id: i64) -> f64 {
    let (_, v) = s.get(&format!("/api/profiles/{id}/social")).await;
    v["evangelist"].as_f64().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_ask_answer_accept_and_vote() {
    for s in common::servers().await {
        let k = s.kind;
        let ann = person(&s, "ann@example.com").await;
        let bob = person(&s, "bob@example.com").await;
        let cat = person(&s, "cat@example.com").await;

        let (st, q) = s
            .send(Method::POST, "/api/community/questions", json!({"author": "email:ann@example.com", "title": "How do I change my card?", "body": "The old one expired."}))
            .await;
        assert_eq!(st, 201, "[{k}] {q}");
        let qid = q["id"].as_i64().unwrap();
        assert_eq!(
            (q["status"].as_str(), q["hidden"].as_bool()),
            (Some("open"), Some(false))
        );
        let (st, a) = s
            .send(
                Method::POST,
                &format!("/api/community/posts/{qid}/answers"),
                json!({"author": bob, "body": "Settings, then Billing, then Replace card."}),
            )
            .await;
        assert_eq!(st, 201, "[{k}] {a}");
        let aid = a["id"].as_i64().unwrap();
        let before = evangelist(&s, bob).await;

        // Only the asker (or staff) accepts.
        let (st, p) = s
            .send(
                Method::POST,
                &format!("/api/community/posts/{qid}/accept"),
                json!({"answer": aid, "by": cat}),
            )
            .await;
        assert_eq!(st, 404, "[{k}] {p}");
        let (st, q2) = s
            .send(
                Method::POST,
                &format!("/api/community/posts/{qid}/accept"),
                json!({"answer": aid, "by": ann}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {q2}");
        assert_eq!(
            (q2["status"].as_str(), q2["accepted_id"].as_i64()),
            (Some("answered"), Some(aid))
        );

        // Votes: not on one's own post; a second vote replaces the first.
        let (st, p) = s
            .send(
                Method::POST,
                &format!("/api/community/posts/{aid}/votes"),
                json!({"voter": bob, "value": 1}),
            )
            .await;
        assert_eq!((st, p["field"].as_str()), (400, Some("post")), "[{k}] {p}");
        for (voter, value, score) in [(ann, 1, 1), (cat, -1, 0), (cat, 1, 2)] {
            let (st, v) = s
                .send(
                    Method::POST,
                    &format!("/api/community/posts/{aid}/votes"),
                    json!({"voter": voter, "value": value}),
                )
                .await;
            assert_eq!((st, v["score"].as_i64()), (200, Some(score)), "[{k}] {v}");
        }
        let (st, p) = s
            .send(
                Method::POST,
                &format!("/api/community/posts/{aid}/votes"),
                json!({"voter": cat, "value": 5}),
            )
            .await;
        assert_eq!((st, p["field"].as_str()), (400, Some("value")));
        let (_, rep) = s.get(&format!("/api/profiles/{bob}/reputation")).await;
        assert_eq!(rep["reputation"], 10 * 2 + 15, "[{k}] {rep}");

        // The graph learns who helped whom: Bob's evangelist value rises.
        let mut after = before;
        for _ in 0..50 {
            let (st, run) = s
                .send(Method::POST, "/api/graph/recompute", json!({}))
                .await;
            assert_eq!(st, 200, "[{k}] {run}");
            after = evangelist(&s, bob).await;
            if after > before {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert!(
            after >= before + 4.0,
            "[{k}] evangelist {before} -> {after}"
        );
        let (_, rels) = s.get(&format!("/api/profiles/{bob}/relationships")).await;
        assert!(rels.to_string().contains("helpful_answer"), "[{k}] {rels}");

        // The timeline has it all.
        let (_, tl) = s
            .get(&format!(
                "/api/profiles/{bob}/timeline?name=Answer%20Accepted"
            ))
            .await;
        assert_eq!(tl["items"].as_array().map(Vec::len), Some(1), "[{k}] {tl}");

        // Bad input: too long, a customer editing someone else's post is not offered
        // (the API writes for the customer named), a locked question takes no answer.
        let (st, p) = s
            .send(
                Method::POST,
                "/api/community/questions",
                json!({"author": ann, "title": "Long", "body": "x".repeat(10_001)}),
            )
            .await;
        assert_eq!((st, p["field"].as_str()), (400, Some("body")), "[{k}] {p}");
        let (st, p) = s
            .send(
                Method::POST,
                "/api/community/questions",
                json!({"author": ann, "body": "no title"}),
            )
            .await;
        assert_eq!((st, p["field"].as_str()), (400, Some("title")));
        let (st, _) = s
            .send(
                Method::PATCH,
                &format!("/api/community/posts/{qid}"),
                json!({"locked": true}),
            )
            .await;
        assert_eq!(st, 200);
        let (st, p) = s
            .send(
                Method::POST,
                &format!("/api/community/posts/{qid}/answers"),
                json!({"author": cat, "body": "late"}),
            )
            .await;
        assert_eq!(
            (st, p["field"].as_str()),
            (400, Some("question")),
            "[{k}] {p}"
        );
        let (_, thread) = s.get(&format!("/api/community/posts/{qid}")).await;
        assert_eq!(
            thread["replies"].as_array().map(Vec::len),
            Some(1),
            "[{k}] {thread}"
        );

        // A customer edits only their own post; someone else's is "not found" and stays.
        let (st, p) = s
            .send(
                Method::PUT,
                &format!("/api/community/posts/{aid}"),
                json!({"author": cat, "body": "Mine now"}),
            )
            .await;
        assert_eq!(st, 404, "[{k}] {p}");
        let (st, p) = s
            .send(Method::PUT, &format!("/api/community/posts/{aid}"), json!({"author": bob, "body": "Settings, then Billing, then Replace card (top right)."}))
            .await;
        assert_eq!(
            (st, p["body"].as_str()),
            (
                200,
                Some("Settings, then Billing, then Replace card (top right).")
            ),
            "[{k}] {p}"
        );
        let (_, thread) = s.get(&format!("/api/community/posts/{qid}")).await;
        assert!(
            thread["replies"][0]["body"]
                .as_str()
                .unwrap()
                .ends_with("(top right)."),
            "[{k}] {thread}"
        );

        // Search finds the question by its answer's words.
        let (st, found) = s.get("/api/community/search?q=replace%20card").await;
        assert_eq!(st, 200, "[{k}] {found}");
        assert_eq!(found["items"][0]["topic"], qid, "[{k}] {found}");
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagged_posts_wait_and_what_people_write_is_escaped() {
    for s in common::servers().await {
        let k = s.kind;
        let ann = person(&s, "ann@example.com").await;
        let bob = person(&s, "bob@example.com").await;
        let (_, q) = s
            .send(Method::POST, "/api/community/questions", json!({"author": ann, "title": "Is <b>this</b> safe?", "body": "<script>alert('x')</script></script><img src=x onerror=alert(1)>"}))
            .await;
        let qid = q["id"].as_i64().unwrap();
        let (st, page) = s.page(&format!("/community/questions/{qid}")).await;
        assert_eq!(st, 200, "[{k}] {page}");
        assert!(
            !page.contains("<script>alert"),
            "[{k}] raw script on the page"
        );
        assert!(!page.contains("<img src=x"), "[{k}] raw tag on the page");
        assert!(page.contains("&lt;script&gt;alert"), "[{k}] {page}");
        // The QAPage data holds the words without closing its element.
        let ld = page
            .split("application/ld+json\">")
            .nth(1)
            .unwrap()
            .split("</script>")
            .next()
            .unwrap();
        let v: Value = serde_json::from_str(ld).expect("QAPage JSON");
        assert_eq!(v["@type"], "QAPage");
        assert!(v["mainEntity"]["text"]
            .as_str()
            .unwrap()
            .contains("<script>"));

        // An insult said angrily is held for review; staff publish or keep it hidden.
        let (_, a) = s
            .send(Method::POST, &format!("/api/community/posts/{qid}/answers"), json!({"author": bob, "body": "You are an idiot and this question is stupid garbage."}))
            .await;
        assert_eq!(
            (a["hidden"].as_bool(), a["flag"].as_str()),
            (Some(true), Some("toxic")),
            "[{k}] {a}"
        );
        let (st, page) = s.page(&format!("/community/questions/{qid}")).await;
        assert!(st == 200 && !page.contains("idiot"), "[{k}]");
        let (_, queue) = s.get("/api/community/posts?flagged=true").await;
        assert_eq!(queue.as_array().map(Vec::len), Some(1), "[{k}] {queue}");
        let aid = a["id"].as_i64().unwrap();
        let (st, p) = s
            .send(
                Method::PATCH,
                &format!("/api/community/posts/{aid}"),
                json!({"reviewed": true, "hidden": false}),
            )
            .await;
        assert_eq!((st, p["flag"].clone()), (200, Value::Null), "[{k}] {p}");
        let (_, queue) = s.get("/api/community/posts?flagged=true").await;
        assert_eq!(queue, json!([]));
        let (st, p) = s
            .send(
                Method::PATCH,
                &format!("/api/community/posts/{qid}"),
                json!({"official": true}),
            )
            .await;
        assert_eq!((st, p["field"].as_str()), (400, Some("official")));
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ideas_keep_to_the_vote_budget_and_merge() {
    for s in common::servers().await {
        let k = s.kind;
        let ann = person(&s, "ann@example.com").await;
        let bob = person(&s, "bob@example.com").await;
        let (st, _) = s
            .send(
                Method::PUT,
                "/api/community/settings",
                json!({"idea_votes": 2}),
            )
            .await;
        assert_eq!(st, 200);
        let mut ids = Vec::new();
        for t in ["Dark mode", "Dark theme please", "Gift cards"] {
            let (st, i) = s
                .send(
                    Method::POST,
                    "/api/community/ideas",
                    json!({"author": ann, "title": t, "body": "Please."}),
                )
                .await;
            assert_eq!(st, 201, "[{k}] {i}");
            ids.push(i["id"].as_i64().unwrap());
        }
        let vote = |id: i64, value: i64| {
            let s = &s;
            async move {
                s.send(
                    Method::POST,
                    &format!("/api/community/posts/{id}/votes"),
                    json!({"voter": bob, "value": value}),
                )
                .await
            }
        };
        assert_eq!(vote(ids[0], 1).await.0, 200);
        assert_eq!(vote(ids[1], 1).await.0, 200);
        let (st, p) = vote(ids[2], 1).await;
        assert_eq!((st, p["field"].as_str()), (400, Some("value")), "[{k}] {p}");
        assert!(p["detail"].as_str().unwrap().contains("all 2"), "[{k}] {p}");
        let (st, p) = vote(ids[2], -1).await;
        assert_eq!((st, p["field"].as_str()), (400, Some("value")));
        // The duplicate merges: Bob's two votes become one, and a vote is free again.
        let (st, m) = s
            .send(
                Method::POST,
                &format!("/api/community/posts/{}/merge", ids[1]),
                json!({"into": ids[0]}),
            )
            .await;
        assert_eq!((st, m["score"].as_i64()), (200, Some(1)), "[{k}] {m}");
        let (_, dup) = s.get(&format!("/api/community/posts/{}", ids[1])).await;
        assert_eq!(
            (dup["status"].as_str(), dup["duplicate_of"].as_i64()),
            (Some("duplicate"), Some(ids[0]))
        );
        assert_eq!(vote(ids[2], 1).await.0, 200);
        // Completed ideas give their votes back.
        let (st, moved) = s
            .send(
                Method::PATCH,
                &format!("/api/community/ideas/{}", ids[0]),
                json!({"status": "completed", "note": "Shipped today."}),
            )
            .await;
        assert_eq!(
            (st, moved["status"].as_str()),
            (200, Some("completed")),
            "[{k}] {moved}"
        );
        let (_, tl) = s
            .get(&format!(
                "/api/profiles/{bob}/timeline?name=Idea%20Status%20Changed"
            ))
            .await;
        assert_eq!(tl["items"].as_array().map(Vec::len), Some(1), "[{k}] {tl}");
        let (st, p) = s
            .send(
                Method::PATCH,
                &format!("/api/community/ideas/{}", ids[0]),
                json!({"status": "shipped"}),
            )
            .await;
        assert_eq!((st, p["field"].as_str()), (400, Some("status")));
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_knowledge_base_takes_proposals_and_finds_articles() {
    for s in common::servers().await {
        let k = s.kind;
        let ann = person(&s, "ann@example.com").await;
        let articles = [
            ("Change the card on your subscription", "Open Settings, then Billing, and choose Replace card. The new card is charged from the next renewal.", "Billing"),
            ("Track a parcel", "Every order e-mail has a tracking link; parcels leave the warehouse within two days.", "Delivery"),
            ("Refunds for damaged items", "Send a photo of the damage and we refund the item to the original card within five days.", "Billing"),
        ];
        for (t, b, c) in articles {
            let (st, a) = s
                .send(
                    Method::POST,
                    "/api/kb/articles",
                    json!({"title": t, "body": b, "category": c, "status": "published"}),
                )
                .await;
            assert_eq!(st, 201, "[{k}] {a}");
            assert!(a["id"].as_i64().is_some());
        }
        let (_, draft) = s
            .send(
                Method::POST,
                "/api/kb/articles",
                json!({"title": "Card fraud draft", "body": "card card card"}),
            )
            .await;
        assert_eq!(draft["status"], "draft");
        // Best first: the title match leads; drafts are never found.
        let (st, found) = s.get("/api/kb/search?q=card").await;
        assert_eq!(st, 200, "[{k}] {found}");
        let titles: Vec<&str> = found["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["title"].as_str().unwrap())
            .collect();
        assert_eq!(
            titles,
            [
                "Change the card on your subscription",
                "Refunds for damaged items"
            ],
            "[{k}] {found}"
        );
        assert!(
            found["items"][0]["snippet"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("card"),
            "[{k}] {found}"
        );
        let (_, none) = s.get("/api/kb/search?q=%22%29%20OR%20*%3A*").await;
        assert_eq!(
            none["items"],
            json!([]),
            "[{k}] query syntax is not run: {none}"
        );
        let (st, p) = s.get("/api/kb/search?q=").await;
        assert_eq!((st, p["field"].as_str()), (400, Some("q")));

        // A customer proposes an article; staff publish it; search finds it.
        let (st, prop) = s
            .send(Method::POST, "/api/kb/articles", json!({"author": ann, "title": "Gift wrapping", "body": "Tick gift wrap at checkout; the receipt stays out of the parcel."}))
            .await;
        assert_eq!(
            (st, prop["status"].as_str()),
            (201, Some("proposed")),
            "[{k}] {prop}"
        );
        let (_, found) = s.get("/api/kb/search?q=gift%20wrap").await;
        assert_eq!(found["items"], json!([]));
        let pid = prop["id"].as_i64().unwrap();
        let (st, a) = s
            .send(
                Method::POST,
                &format!("/api/kb/articles/{pid}/review"),
                json!({"accept": true}),
            )
            .await;
        assert_eq!(
            (st, a["status"].as_str()),
            (200, Some("published")),
            "[{k}] {a}"
        );
        let (_, found) = s.get("/api/kb/search?q=gift%20wrap").await;
        assert_eq!(found["items"][0]["id"], pid, "[{k}] {found}");
        let (_, tl) = s
            .get(&format!(
                "/api/profiles/{ann}/timeline?name=Article%20Published"
            ))
            .await;
        assert_eq!(tl["items"].as_array().map(Vec::len), Some(1), "[{k}] {tl}");

        // An edit proposed, seen as a diff, accepted: a new revision.
        let (st, rev) = s
            .send(Method::POST, &format!("/api/kb/articles/{pid}/proposals"), json!({"author": ann, "title": "Gift wrapping", "body": "Tick gift wrap at checkout; the receipt stays out of the parcel.\nA card with your words is free.", "note": "the card"}))
            .await;
        assert_eq!(st, 201, "[{k}] {rev}");
        let rid = rev["id"].as_i64().unwrap();
        let (_, d) = s.get(&format!("/api/kb/revisions/{rid}")).await;
        assert!(
            d["diff"]
                .as_str()
                .unwrap()
                .contains("+A card with your words is free."),
            "[{k}] {d}"
        );
        let (st, a) = s
            .send(
                Method::POST,
                &format!("/api/kb/revisions/{rid}/decision"),
                json!({"accept": true}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {a}");
        assert!(a["body"].as_str().unwrap().ends_with("free."));
        let (_, revs) = s.get(&format!("/api/kb/articles/{pid}/revisions")).await;
        let states: Vec<&str> = revs
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["accepted", "accepted"], "[{k}] {revs}");
        let (st, p) = s
            .send(
                Method::POST,
                &format!("/api/kb/revisions/{rid}/decision"),
                json!({"accept": false}),
            )
            .await;
        assert_eq!((st, p["field"].as_str()), (400, Some("revision")));
        let (st, p) = s
            .send(
                Method::POST,
                "/api/kb/articles",
                json!({"title": "x", "body": "y"}),
            )
            .await;
        assert_eq!((st, p["field"].as_str()), (400, Some("title")));

        // Helpful counts; the public page shows a published article only.
        let (st, _) = s.page(&format!("/help/articles/{}", draft["id"])).await;
        assert_eq!(st, 404);
        let (st, sugg) = s.get("/help/suggest?q=refu").await;
        assert_eq!(st, 200, "[{k}] {sugg}");
        assert_eq!(
            sugg["items"][0]["title"], "Refunds for damaged items",
            "[{k}] {sugg}"
        );
        let (_, d) = s.get("/api/kb/deflection").await;
        assert_eq!(d, json!({"suggested_opened": 0, "tickets_avoided": 0}));
        s.finish().await;
    }
}
