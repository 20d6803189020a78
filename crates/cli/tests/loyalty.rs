//! Loyalty over HTTP, on SQLite and (with RAPPORT_TEST_DATABASE_URL) PostgreSQL: points
//! earned from live events by a rule, pending then available, a refund taking them back,
//! expiry, redemption with one key paying once and coupon codes, adjustments, tiers up and
//! down per downgrade mode, and bad input refused naming the field with nothing changed.

mod common;

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};

fn names(timeline: &Value) -> Vec<String> {
    timeline["items"]
        .as_array()
        .or(timeline.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_are_earned_spent_reversed_expired_and_tiered() {
    for s in common::servers().await {
        let k = s.kind;
        let at = |d: Duration| (Utc::now() + d).to_rfc3339();
        // Bad input: each refused naming its field, nothing saved.
        for (rule, field) in [
            (
                json!({"action": "points", "amount": "properties.revenue *"}),
                "rules[0].then[0].amount",
            ),
            (
                json!({"action": "points", "amount": -5}),
                "rules[0].then[0].amount",
            ),
            (
                json!({"action": "points", "amount": 5, "pending_days": -1}),
                "rules[0].then[0].pending_days",
            ),
            (
                json!({"action": "points", "amount": 5, "expires_days": 1.5}),
                "rules[0].then[0].expires_days",
            ),
            (
                json!({"action": "points", "amount": 5, "cap": {"points": 0, "days": 1}}),
                "rules[0].then[0].cap.points",
            ),
        ] {
            let body = json!({"rules": [{"name": "r", "when": "track \"Order Completed\"", "then": [rule]}]});
            let (st, p) = s.send(Method::PUT, "/api/rules", body).await;
            assert_eq!((st, p["field"].as_str()), (400, Some(field)), "[{k}] {p}");
        }
        assert_eq!(s.get("/api/rules").await.1["rules"], json!([]), "[{k}]");
        let bad = json!({"tiers": [{"name": "silver", "threshold": 100}, {"name": "gold", "threshold": 50}]});
        let (st, p) = s.send(Method::PUT, "/api/loyalty/settings", bad).await;
        assert_eq!(
            (st, p["field"].as_str()),
            (400, Some("tiers[1].threshold")),
            "[{k}] {p}"
        );
        assert_eq!(
            s.get("/api/loyalty/settings").await.1["tiers"],
            json!([]),
            "[{k}]"
        );

        let settings = json!({"tiers": [
            {"name": "silver", "threshold": 100},
            {"name": "gold", "threshold": 1000, "multiplier": 2, "benefits": "Free delivery"}],
            "basis": "points", "window_days": 365, "downgrade": "rolling", "grace_days": 0});
        let (st, p) = s.send(Method::PUT, "/api/loyalty/settings", settings).await;
        assert_eq!(st, 200, "[{k}] {p}");
        let rules = json!({"rules": [
            {"name": "earn", "when": "track \"Order Completed\"",
             "then": [{"action": "points", "amount": "properties.revenue * 10", "pending_days": 1, "expires_days": 365}]},
            {"name": "refunds", "when": "track \"Order Refunded\"", "then": [{"action": "reverse_points"}]}]});
        let (st, p) = s.send(Method::PUT, "/api/rules", rules).await;
        assert_eq!(st, 200, "[{k}] {p}");

        for (name, def) in [
            ("Point holders", "loyalty.points >= 300"),
            ("Gold", "loyalty.tier = \"gold\""),
        ] {
            let (st, p) = s
                .send(
                    Method::POST,
                    "/api/segments",
                    json!({"name": name, "definition": def}),
                )
                .await;
            assert_eq!(st, 201, "[{k}] {p}");
        }
        let (st, p) = s
            .send(
                Method::POST,
                "/api/segments",
                json!({"name": "x", "definition": "loyalty.tier > \"gold\""}),
            )
            .await;
        assert_eq!(
            (st, p["field"].as_str()),
            (400, Some("definition")),
            "[{k}] {p}"
        );
        // An order a day ago less four seconds: pending, then available.
        let order = |id: &str, revenue: f64, when: Duration| {
            json!({"type": "track", "userId": "ana", "event": "Order Completed",
                   "properties": {"order_id": id, "revenue": revenue}, "timestamp": at(when)})
        };
        let msgs = json!([
            {"type": "identify", "userId": "ana", "traits": {"email": "ana@shop.example"}},
            order("o1", 12.5, Duration::days(-1) + Duration::seconds(4)),
        ]);
        assert_eq!(s.batch(msgs).await.0, 200, "[{k}]");
        let ana = s.profile_of("email:ana@shop.example").await["id"]
            .as_i64()
            .unwrap();
        let path = format!("/api/profiles/{ana}/loyalty");
        let v = common::eventually(&s, &path, |v| v["pending"] == 125).await;
        assert_eq!(v["available"], 0, "[{k}] {v}");
        // A tier is reached by points earned, pending too (as the engine follows them).
        common::eventually(&s, &path, |v| v["tier"] == "silver").await;
        let v = common::eventually(&s, &path, |v| v["available"] == 125).await;
        assert_eq!(v["pending"], 0, "[{k}]");
        assert_eq!(v["next_tier"]["name"], "gold", "[{k}] {v}");
        assert_eq!(v["next_tier"]["needed"], 875.0, "[{k}]");

        // A second order, then its refund: the points go back out.
        assert_eq!(
            s.batch(json!([order("o2", 20.0, Duration::days(-2))]))
                .await
                .0,
            200
        );
        common::eventually(&s, &path, |v| v["available"] == 325).await;
        let segs = format!("/api/profiles/{ana}/segments");
        let in_segment = |v: &Value, name: &str| v.to_string().contains(&format!("\"{name}\""));
        common::eventually(&s, &segs, |v| in_segment(v, "Point holders")).await;
        let refund = json!([{"type": "track", "userId": "ana", "event": "Order Refunded", "properties": {"order_id": "o2"}}]);
        assert_eq!(s.batch(refund).await.0, 200);
        let v = common::eventually(&s, &path, |v| v["available"] == 125).await;
        let reversal = v["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "reverse")
            .cloned();
        assert_eq!(
            reversal.as_ref().map(|e| e["amount"].clone()),
            Some(json!(-200)),
            "[{k}] {v}"
        );
        assert_eq!(
            reversal.map(|e| e["order"].clone()),
            Some(json!("o2")),
            "[{k}]"
        );

        // An order 400 days old: its points expired 35 days ago and are written off.
        assert_eq!(
            s.batch(json!([order("o3", 5.0, Duration::days(-400))]))
                .await
                .0,
            200
        );
        common::eventually(&s, &path, |v| {
            v["history"]
                .as_array()
                .is_some_and(|h| h.iter().any(|e| e["order"] == "o3"))
        })
        .await;
        let (st, _) = s.send(Method::POST, "/api/loyalty/expire", json!({})).await;
        assert_eq!(st, 200, "[{k}]");
        let v = s.get(&path).await.1;
        let expired = v["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "expire")
            .cloned();
        assert_eq!(
            expired.map(|e| e["amount"].clone()),
            Some(json!(-50)),
            "[{k}] {v}"
        );
        assert_eq!(
            (v["available"].clone(), v["pending"].clone()),
            (json!(125), json!(0)),
            "[{k}]"
        );

        // The catalogue: a mug from a pool of codes, one per person.
        let (st, mug) = s
            .send(
                Method::POST,
                "/api/loyalty/rewards",
                json!({"name": "Mug", "cost": 100, "stock": 5, "per_person": 1}),
            )
            .await;
        assert_eq!(st, 201, "[{k}] {mug}");
        let (st, p) = s
            .send(
                Method::POST,
                "/api/loyalty/rewards",
                json!({"name": "Bad", "cost": 1.5}),
            )
            .await;
        assert_eq!((st, p["field"].as_str()), (400, Some("cost")), "[{k}] {p}");
        let codes = s
            .client
            .post(format!("{}/api/loyalty/rewards/{}/codes", s.url, mug["id"]))
            .bearer_auth(&s.admin)
            .header("content-type", "text/csv")
            .body("code\nMUG-1\nMUG-2\nMUG-1\n")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(
            (codes["added"].clone(), codes["left"].clone()),
            (json!(2), json!(2)),
            "[{k}] {codes}"
        );
        let redeem = |key: &str, reward: Value| json!({"profile_id": ana, "reward": reward, "idempotency_key": key});
        let (st, r1) = s
            .send(
                Method::POST,
                "/api/loyalty/redeem",
                redeem("k1", json!("Mug")),
            )
            .await;
        assert_eq!(
            (st, r1["code"].as_str()),
            (201, Some("MUG-1")),
            "[{k}] {r1}"
        );
        let (st, again) = s
            .send(
                Method::POST,
                "/api/loyalty/redeem",
                redeem("k1", json!("Mug")),
            )
            .await;
        assert_eq!(
            (st, again["id"].clone()),
            (200, r1["id"].clone()),
            "[{k}] one key pays once"
        );
        let v = s.get(&path).await.1;
        assert_eq!(v["available"], 25, "[{k}] {v}");
        let (st, p) = s
            .send(
                Method::POST,
                "/api/loyalty/redeem",
                redeem("k2", mug["id"].clone()),
            )
            .await;
        assert_eq!(st, 409, "[{k}] {p}");
        let (st, p) = s
            .send(
                Method::POST,
                "/api/loyalty/redeem",
                redeem("k3", json!("Yacht")),
            )
            .await;
        assert_eq!(
            (st, p["field"].as_str()),
            (400, Some("reward")),
            "[{k}] {p}"
        );
        let (st, _) = s
            .send(
                Method::POST,
                "/api/loyalty/redeem",
                json!({"profile_id": 999_999, "reward": "Mug"}),
            )
            .await;
        assert_eq!(st, 404, "[{k}]");
        assert_eq!(
            s.get(&path).await.1["available"],
            25,
            "[{k}] refusals took nothing"
        );

        // Adjustments by staff.
        let adjust = |points: Value, key: &str| json!({"profile_id": ana, "points": points, "reason": "goodwill", "idempotency_key": key});
        let (st, e) = s
            .send(
                Method::POST,
                "/api/loyalty/adjust",
                adjust(json!(500), "a1"),
            )
            .await;
        assert_eq!((st, e["amount"].clone()), (201, json!(500)), "[{k}] {e}");
        assert_eq!(
            s.send(
                Method::POST,
                "/api/loyalty/adjust",
                adjust(json!(500), "a1")
            )
            .await
            .0,
            200
        );
        let (st, p) = s
            .send(
                Method::POST,
                "/api/loyalty/adjust",
                adjust(json!(-5000), "a2"),
            )
            .await;
        assert_eq!(st, 409, "[{k}] {p}");
        let (st, p) = s
            .send(
                Method::POST,
                "/api/loyalty/adjust",
                adjust(json!(1.5), "a3"),
            )
            .await;
        assert_eq!(
            (st, p["field"].as_str()),
            (400, Some("points")),
            "[{k}] {p}"
        );
        let (st, p) = s
            .send(
                Method::POST,
                "/api/loyalty/redeem",
                redeem("k4", json!("Mug")),
            )
            .await;
        assert_eq!(st, 409, "[{k}] the limit is one per person: {p}");
        assert!(
            p["detail"].as_str().unwrap_or("").contains("per person"),
            "[{k}] {p}"
        );
        assert_eq!(s.get(&path).await.1["available"], 525, "[{k}]");

        // Tiers: up at once, down when the qualifying points go (rolling, no grace) —
        // and kept with `never`.
        assert_eq!(
            s.batch(json!([order("o4", 100.0, Duration::days(-2))]))
                .await
                .0,
            200
        );
        let v = common::eventually(&s, &path, |v| v["tier"] == "gold").await;
        common::eventually(&s, &segs, |v| in_segment(v, "Gold")).await;
        assert_eq!(v["available"], 1525, "[{k}] silver earns 1×: {v}");
        let refund = json!([{"type": "track", "userId": "ana", "event": "Order Refunded", "properties": {"order_id": "o4"}}]);
        assert_eq!(s.batch(refund).await.0, 200);
        common::eventually(&s, &path, |v| v["tier"] == "silver").await;
        common::eventually(&s, &segs, |v| !in_segment(v, "Gold")).await;
        let mut never = s.get("/api/loyalty/settings").await.1;
        never["downgrade"] = json!("never");
        assert_eq!(
            s.send(Method::PUT, "/api/loyalty/settings", never).await.0,
            200
        );
        assert_eq!(
            s.batch(json!([order("o5", 100.0, Duration::days(-2))]))
                .await
                .0,
            200
        );
        common::eventually(&s, &path, |v| v["tier"] == "gold").await;
        let refund = json!([{"type": "track", "userId": "ana", "event": "Order Refunded", "properties": {"order_id": "o5"}}]);
        assert_eq!(s.batch(refund).await.0, 200);
        let v = common::eventually(&s, &path, |v| {
            v["history"].as_array().is_some_and(|h| {
                h.iter()
                    .any(|e| e["kind"] == "reverse" && e["order"] == "o5")
            })
        })
        .await;
        assert_eq!(v["tier"], "gold", "[{k}] never: kept");
        // Gold earns double.
        assert_eq!(
            s.batch(json!([order("o6", 1.0, Duration::days(-2))]))
                .await
                .0,
            200
        );
        let v = common::eventually(&s, &path, |v| {
            v["history"]
                .as_array()
                .is_some_and(|h| h.iter().any(|e| e["order"] == "o6"))
        })
        .await;
        let o6 = v["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["order"] == "o6")
            .cloned()
            .unwrap();
        assert_eq!(o6["amount"], 20, "[{k}] {o6}");

        // The timeline tells it; the programme's figures add up.
        let tl = s
            .get(&format!("/api/profiles/{ana}/timeline?limit=100"))
            .await
            .1;
        let n = names(&tl);
        for want in [
            "Points Earned",
            "Points Reversed",
            "Points Expired",
            "Points Redeemed",
            "Points Adjusted",
            "Tier Changed",
        ] {
            assert!(
                n.iter().any(|x| x == want),
                "[{k}] {want} missing from {n:?}"
            );
        }
        let sum = s.get("/api/loyalty/summary").await.1;
        assert_eq!(sum["outstanding"], 545, "[{k}] {sum}");
        assert_eq!(sum["holders"], 1, "[{k}]");
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrals_credit_once_and_refuse_self_referrals() {
    for s in common::servers().await {
        let k = s.kind;
        // Bad settings are refused naming the field, nothing saved.
        for (bad, field) in [
            (
                json!({"enabled": true, "referrer_points": -5}),
                "referrer_points",
            ),
            (
                json!({"enabled": true, "friend_points": 1.5}),
                "friend_points",
            ),
            (json!({"enabled": true, "window_days": 0}), "window_days"),
            (
                json!({"enabled": true, "landing_url": "javascript:alert(1)"}),
                "landing_url",
            ),
        ] {
            let (st, p) = s.send(Method::PUT, "/api/referrals/settings", bad).await;
            assert_eq!(st, 400, "[{k}] {p}");
            assert!(
                p["field"].as_str().is_some_and(|f| f.contains(field))
                    || p["detail"].as_str().is_some_and(|d| d.contains(field)),
                "[{k}] {p}"
            );
        }
        assert_eq!(s.get("/api/referrals/settings").await.1["enabled"], false);
        let (st, p) = s
            .send(Method::PUT, "/api/referrals/settings",
                json!({"enabled": true, "referrer_points": 500, "friend_points": 100, "landing_url": "https://shop.example/welcome"}))
            .await;
        assert_eq!(st, 200, "[{k}] {p}");
        let ctx = |device: &str, ip: &str| json!({"device": {"id": device}, "ip": ip});
        let (st, _) = s
            .post_v1("/v1/identify", json!({"userId": "ann", "traits": {"email": "ann@example.com"}, "context": ctx("dev-ann", "10.0.0.1")}))
            .await;
        assert_eq!(st, 200);
        let ann = s.profile_of("user_id:ann").await["id"]
            .as_i64()
            .expect("id");
        let (st, mine) = s.get(&format!("/api/profiles/{ann}/referral")).await;
        assert_eq!(st, 200, "[{k}] {mine}");
        let code = mine["code"].as_str().expect("code").to_string();
        assert_eq!(
            s.get(&format!("/api/profiles/{ann}/referral")).await.1["code"],
            code.as_str(),
            "one code each"
        );
        assert_eq!(
            mine["landing"],
            format!("https://shop.example/welcome?ref={code}")
        );
        // The link lands on the brand's page with the code.
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .get(format!("{}/r/{}", s.url, code.to_lowercase()))
            .send()
            .await
            .expect("link");
        assert_eq!(r.status().as_u16(), 303, "[{k}]");
        assert_eq!(
            r.headers()["location"],
            format!("https://shop.example/welcome?ref={code}").as_str()
        );
        // A friend signs up with the code, then orders twice: credited once.
        let signup = |user: &str, c: Value| json!({"userId": user, "event": "Signed Up", "properties": {"referral_code": code}, "context": c});
        let order = |user: &str, id: &str| json!({"userId": user, "event": "Order Completed", "properties": {"order_id": id, "revenue": 20}});
        assert_eq!(
            s.post_v1("/v1/track", signup("bob", ctx("dev-bob", "10.0.0.2")))
                .await
                .0,
            200
        );
        let bob = s.profile_of("user_id:bob").await["id"]
            .as_i64()
            .expect("id");
        let theirs = common::eventually(&s, &format!("/api/profiles/{bob}/referral"), |v| {
            v["referred_by"]["status"] == "pending"
        })
        .await;
        assert_eq!(theirs["referred_by"]["referrer_id"], ann, "[{k}] {theirs}");
        for id in ["o1", "o2"] {
            assert_eq!(s.post_v1("/v1/track", order("bob", id)).await.0, 200);
        }
        // The code sent again changes nothing.
        assert_eq!(
            s.post_v1("/v1/track", signup("bob", ctx("dev-bob", "10.0.0.2")))
                .await
                .0,
            200
        );
        common::eventually(&s, &format!("/api/profiles/{ann}/loyalty"), |v| {
            v["available"] == 500
        })
        .await;
        common::eventually(&s, &format!("/api/profiles/{bob}/loyalty"), |v| {
            v["available"] == 100
        })
        .await;
        // Self-referrals: the referrer's own code, a second account on the referrer's
        // device; and an existing customer. None is credited.
        assert_eq!(
            s.post_v1("/v1/track", signup("ann", ctx("dev-ann", "10.0.0.1")))
                .await
                .0,
            200
        );
        assert_eq!(
            s.post_v1("/v1/track", signup("ann-again", ctx("dev-ann", "10.9.9.9")))
                .await
                .0,
            200
        );
        assert_eq!(s.post_v1("/v1/track", order("cy", "c1")).await.0, 200);
        assert_eq!(
            s.post_v1("/v1/track", signup("cy", ctx("dev-cy", "10.0.0.3")))
                .await
                .0,
            200
        );
        let refused = common::eventually(&s, "/api/referrals?status=refused", |v| {
            v.as_array().is_some_and(|a| a.len() == 3)
        })
        .await;
        let reasons: Vec<&str> = refused
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|r| r["reason"].as_str())
            .collect();
        assert!(
            reasons.iter().any(|r| r.contains("own code")),
            "[{k}] {refused}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("device")),
            "[{k}] {refused}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("already a customer")),
            "[{k}] {refused}"
        );
        let again = s.profile_of("user_id:ann-again").await["id"]
            .as_i64()
            .expect("id");
        assert_eq!(
            s.post_v1("/v1/track", order("ann-again", "a1")).await.0,
            200
        );
        assert_eq!(s.post_v1("/v1/track", order("cy", "c2")).await.0, 200);
        // Bob's third order has gone through the engine after the others: still 500.
        assert_eq!(s.post_v1("/v1/track", order("bob", "o3")).await.0, 200);
        common::eventually(
            &s,
            &format!("/api/profiles/{bob}/timeline?limit=100"),
            |v| names(v).iter().filter(|n| *n == "Order Completed").count() == 3,
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(
            s.get(&format!("/api/profiles/{ann}/loyalty")).await.1["available"],
            500,
            "[{k}] credited once"
        );
        assert_eq!(
            s.get(&format!("/api/profiles/{again}/loyalty")).await.1["available"],
            0,
            "[{k}]"
        );
        let (_, tl) = s
            .get(&format!("/api/profiles/{ann}/timeline?limit=100"))
            .await;
        assert_eq!(
            names(&tl)
                .iter()
                .filter(|n| *n == "Referral Converted")
                .count(),
            1,
            "[{k}]"
        );
        // The leaderboard and the graph's `referred` relationship.
        let (_, board) = s.get("/api/referrals/leaderboard").await;
        assert_eq!(board[0]["referrer_id"], ann, "[{k}] {board}");
        assert_eq!(board[0]["converted"], 1, "[{k}] {board}");
        common::eventually(
            &s,
            &format!("/api/profiles/{ann}/relationships/{bob}"),
            |v| {
                v["a_to_b"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|r| r["kind"] == "referred"))
            },
        )
        .await;
        s.finish().await;
    }
}

fn score_of(scores: &Value, name: &str) -> Option<Value> {
    scores
        .as_array()?
        .iter()
        .find(|x| x["name"] == name)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_loyalty_counts_competitor_mentions_and_purchase_gaps() {
    for s in common::servers().await {
        let k = s.kind;
        for (bad, field) in [
            (
                json!({"competitors": [{"name": " Acme"}]}),
                "competitors[0].name",
            ),
            (
                json!({"competitors": [{"name": "Acme", "products": ["x"]}]}),
                "competitors[0].products[0]",
            ),
            (
                json!({"competitors": [{"name": "Acme", "tokens": ["NOPE"]}]}),
                "competitors[0].tokens[0]",
            ),
            (json!({"mention_days": 0}), "mention_days"),
        ] {
            let (st, p) = s.send(Method::PUT, "/api/loyalty/competitors", bad).await;
            assert_eq!((st, p["field"].as_str()), (400, Some(field)), "[{k}] {p}");
        }
        assert_eq!(
            s.get("/api/loyalty/competitors").await.1["competitors"],
            json!([])
        );
        let (st, p) = s
            .send(
                Method::PUT,
                "/api/loyalty/competitors",
                json!({"competitors": [{"name": "Acme", "products": ["RunFast"]}]}),
            )
            .await;
        assert_eq!(st, 200, "[{k}] {p}");
        let at = |days: i64| (Utc::now() - Duration::days(days)).to_rfc3339();
        let order = |user: &str, days: i64| json!({"userId": user, "event": "Order Completed", "timestamp": at(days), "properties": {"revenue": 30}});
        // Dan bought every ten days, then stopped eighty days ago, and wrote about a
        // competitor's product; Eve buys every ten days still; Fay wrote "acmeville".
        for d in [100, 90, 80] {
            assert_eq!(s.post_v1("/v1/track", order("dan", d)).await.0, 200);
        }
        for d in [30, 20, 10] {
            assert_eq!(s.post_v1("/v1/track", order("eve", d)).await.0, 200);
        }
        let review = |user: &str, text: &str| json!({"userId": user, "event": "Review Posted", "properties": {"text": text}});
        assert_eq!(
            s.post_v1(
                "/v1/track",
                review("dan", "Honestly the RunFast from Acme fits better")
            )
            .await
            .0,
            200
        );
        assert_eq!(
            s.post_v1("/v1/track", review("fay", "Greetings from acmeville"))
                .await
                .0,
            200
        );
        let (st, p) = s
            .send(Method::POST, "/api/scores/recompute", json!({}))
            .await;
        assert_eq!(st, 200, "[{k}] {p}");
        let id = |u: &'static str| {
            let s = &s;
            async move {
                s.profile_of(&format!("user_id:{u}")).await["id"]
                    .as_i64()
                    .expect("id")
            }
        };
        let (dan, eve, fay) = (id("dan").await, id("eve").await, id("fay").await);
        let (_, sc) = s.get(&format!("/api/profiles/{dan}/scores")).await;
        let split = score_of(&sc, "split_loyalty").unwrap_or_else(|| panic!("[{k}] {sc}"));
        // One text (0.15) and a gap eight times the rhythm (0.4): 1 − 0.85 · 0.6.
        assert_eq!(split["value"], 0.49, "[{k}] {split}");
        let kinds: Vec<&str> = split["explanation"]["signals"]
            .as_array()
            .expect("signals")
            .iter()
            .filter_map(|x| x["signal"].as_str())
            .collect();
        assert_eq!(kinds, vec!["mentions", "purchase_gap"], "[{k}] {split}");
        for p in [eve, fay] {
            let (_, sc) = s.get(&format!("/api/profiles/{p}/scores")).await;
            assert!(score_of(&sc, "split_loyalty").is_none(), "[{k}] {sc}");
        }
        let (st, p) = s
            .send(
                Method::POST,
                "/api/segments/preview",
                json!({"definition": "score.split_loyalty > 0.3"}),
            )
            .await;
        assert_eq!((st, &p["count"]), (200, &json!(1)), "[{k}] {p}");
        s.finish().await;
    }
}
