//! Identity resolution a CDP engineer would trust (issue 38), over HTTP on both stores:
//! placeholders never merge strangers, e-mails have one form however typed.

mod common;

use serde_json::{json, Value};

fn person_count(stats: &Value) -> i64 {
    stats["people"]
        .as_i64()
        .or_else(|| stats["profiles"].as_i64())
        .unwrap_or(-1)
}

#[tokio::test]
async fn placeholder_identifiers_do_not_merge_strangers() {
    for s in common::servers().await {
        let (status, body) = s
            .batch(json!([
                {"type": "identify", "anonymousId": "undefined", "traits": {"email": "ann@shop.example"}, "messageId": "p1"},
                {"type": "identify", "anonymousId": "undefined", "traits": {"email": "bob@shop.example"}, "messageId": "p2"},
                {"type": "track", "anonymousId": "null", "event": "Order Completed", "properties": {"revenue": 40}, "messageId": "p3"},
                {"type": "identify", "userId": "c1", "traits": {"wallet": "0x0000000000000000000000000000000000000000", "email": "test@test.com"}, "messageId": "p4"},
                {"type": "identify", "userId": "d1", "traits": {"wallet": "0x0000000000000000000000000000000000000000", "email": "test@test.com"}, "messageId": "p5"}
            ]))
            .await;
        assert_eq!(status, 200, "[{}] {body}", s.kind);
        let fields: Vec<&str> = body["dropped"]
            .as_array()
            .expect("dropped listed")
            .iter()
            .filter_map(|d| d["field"].as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "batch[0].anonymousId",
                "batch[1].anonymousId",
                "batch[2].anonymousId",
                "batch[3].traits.email",
                "batch[3].traits.wallet",
                "batch[4].traits.email",
                "batch[4].traits.wallet"
            ],
            "[{}] {body}",
            s.kind
        );
        // Ann and Bob stay two people; c1 and d1 too; the anonymous order is kept on
        // a profile of its own.
        let ann = s.profile_of("email:ann@shop.example").await;
        let bob = s.profile_of("email:bob@shop.example").await;
        assert_ne!(ann["id"], bob["id"], "[{}]", s.kind);
        let c1 = s.profile_of("user_id:c1").await;
        let d1 = s.profile_of("user_id:d1").await;
        assert_ne!(c1["id"], d1["id"], "[{}]", s.kind);
        let (st, _) = s
            .get("/api/profiles/lookup?identifier=anonymous_id%3Aundefined")
            .await;
        assert_eq!(st, 404, "[{}] no one is 'undefined'", s.kind);
        let order = s.profile_of("anonymous_id:unattributed:p3").await;
        assert_ne!(order["id"], ann["id"]);
        let stats = s.stats().await;
        assert_eq!(stats["events"], 5, "[{}] every event kept: {stats}", s.kind);
        assert!(person_count(&stats) >= 5, "[{}] {stats}", s.kind);

        // The brand's own placeholders.
        let (st, b) = s
            .send(
                reqwest::Method::PUT,
                "/api/settings/identity",
                json!({"blocked": [{"pattern": "("}]}),
            )
            .await;
        assert_eq!(st, 400);
        assert_eq!(b["field"], "blocked[0].pattern", "[{}] {b}", s.kind);
        let (st, b) = s
            .send(
                reqwest::Method::PUT,
                "/api/settings/identity",
                json!({"blocked": [{"kind": "email", "pattern": "@mailinator\\.com$"}]}),
            )
            .await;
        assert_eq!(st, 200, "[{}] {b}", s.kind);
        let (_, got) = s.get("/api/settings/identity").await;
        assert_eq!(got, b);
        let (st, body) = s
            .batch(json!([
                {"type": "identify", "userId": "e1", "traits": {"email": "temp@mailinator.com"}},
                {"type": "identify", "userId": "f1", "traits": {"email": "temp@mailinator.com"}}
            ]))
            .await;
        assert_eq!(st, 200);
        assert_eq!(body["dropped"][1]["field"], "batch[1].traits.email");
        assert!(body["dropped"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("mailinator"));
        let e1 = s.profile_of("user_id:e1").await;
        let f1 = s.profile_of("user_id:f1").await;
        assert_ne!(e1["id"], f1["id"], "[{}]", s.kind);
        s.finish().await;
    }
}

#[tokio::test]
async fn an_email_has_one_form_however_typed() {
    for s in common::servers().await {
        let (status, body) = s
            .batch(json!([
                {"type": "identify", "userId": "ann", "traits": {"email": "Ann Lee <AnnLee@Gmail.com>"}},
                {"type": "identify", "anonymousId": "d1", "traits": {"email": "annlee@gmail.com", "plan": "pro"}},
                {"type": "identify", "userId": "inci", "traits": {"email": "İNCİ@s2.com"}},
                {"type": "identify", "userId": "jose", "traits": {"email": "jose\u{301}@café.fr"}},
                {"type": "identify", "anonymousId": "d2", "traits": {"email": "jos\u{e9}@xn--caf-dma.fr"}}
            ]))
            .await;
        assert_eq!(status, 200, "[{}] {body}", s.kind);
        let ann = s.profile_of("user_id:ann").await;
        assert_eq!(
            s.profile_of("anonymous_id:d1").await["id"],
            ann["id"],
            "[{}] the display name is not part of the address",
            s.kind
        );
        // What is stored can be looked up again (it was a 400 for İNCİ).
        let inci = s.profile_of("email:inci@s2.com").await;
        assert_eq!(inci["id"], s.profile_of("user_id:inci").await["id"]);
        assert_eq!(
            s.profile_of("anonymous_id:d2").await["id"],
            s.profile_of("user_id:jose").await["id"],
            "[{}] NFD/NFC and U-label/A-label are one address",
            s.kind
        );
        assert!(common::identities(&s.profile_of("user_id:jose").await)
            .contains(&"email:josé@café.fr".to_string()));
        s.finish().await;
    }
}

#[tokio::test]
async fn each_trait_is_the_latest_by_event_time_whatever_the_arrival_order() {
    for s in common::servers().await {
        let kind = s.kind;
        let send = |m: Value| s.batch(json!([m]));
        // The issue's case: Robert on the user profile, Bob later on a device that then
        // ties to the user by e-mail; an admin edit of another key changes nothing else.
        for m in [
            json!({"type": "identify", "userId": "u", "timestamp": "2026-10-01T00:00:00Z", "traits": {"name": "Robert", "email": "r@x.example"}}),
            json!({"type": "identify", "anonymousId": "p", "timestamp": "2026-11-20T00:00:00Z", "traits": {"name": "Bob"}}),
            json!({"type": "identify", "anonymousId": "p", "timestamp": "2026-11-21T00:00:00Z", "traits": {"email": "r@x.example"}}),
        ] {
            assert_eq!(send(m).await.0, 200);
        }
        let u = s.profile_of("user_id:u").await;
        assert_eq!(u["traits"]["name"], "Bob", "[{kind}] {u}");
        let id = u["id"].as_i64().unwrap();
        let (st, b) = s
            .send(
                reqwest::Method::PATCH,
                &format!("/api/profiles/{id}/traits"),
                json!({"tier": "gold"}),
            )
            .await;
        assert!(st < 300, "[{kind}] {st} {b}");
        let u = s.profile_of("user_id:u").await;
        assert_eq!(
            u["traits"]["name"], "Bob",
            "[{kind}] an admin edit flipped it: {u}"
        );
        assert_eq!(u["traits"]["tier"], "gold");
        // Segments see the same person (the merged-person SQL path).
        let (_, bob) = s
            .send(
                reqwest::Method::POST,
                "/api/segments/preview",
                json!({"definition": "traits.name = \"Bob\" and traits.tier = \"gold\""}),
            )
            .await;
        assert_eq!(bob["count"], 1, "[{kind}] {bob}");
        let (_, robert) = s
            .send(
                reqwest::Method::POST,
                "/api/segments/preview",
                json!({"definition": "traits.name = \"Robert\""}),
            )
            .await;
        assert_eq!(robert["count"], 0, "[{kind}] {robert}");

        // A late batch does not overwrite a newer value, but its new keys land; in
        // separate requests and within one batch alike.
        send(json!({"type": "identify", "userId": "s", "timestamp": "2026-12-01T00:00:00Z", "traits": {"plan": "pro"}})).await;
        send(json!({"type": "identify", "userId": "s", "timestamp": "2026-11-01T00:00:00Z", "traits": {"plan": "free", "seats": 3}})).await;
        s.batch(json!([
            {"type": "identify", "userId": "t", "timestamp": "2026-12-01T00:00:00Z", "traits": {"plan": "pro"}},
            {"type": "identify", "userId": "t", "timestamp": "2026-11-01T00:00:00Z", "traits": {"plan": "free", "seats": 3}}
        ]))
        .await;
        for who in ["user_id:s", "user_id:t"] {
            let p = s.profile_of(who).await;
            assert_eq!(p["traits"]["plan"], "pro", "[{kind}] {who}: {p}");
            assert_eq!(p["traits"]["seats"], 3, "[{kind}] {who}: {p}");
        }
        // A far-future time counts as the time it arrived (docs/reliability.md,
        // "Clocks"), so it does not outrank what comes after it.
        send(json!({"type": "identify", "userId": "f", "timestamp": "2099-01-01T00:00:00Z", "traits": {"plan": "a"}})).await;
        send(json!({"type": "identify", "userId": "f", "traits": {"plan": "b"}})).await;
        let f = s.profile_of("user_id:f").await;
        assert_eq!(f["traits"]["plan"], "b", "[{kind}] {f}");
        s.finish().await;
    }
}

#[tokio::test]
async fn phones_wallets_handles_and_ids_have_one_form() {
    for s in common::servers().await {
        let kind = s.kind;
        let (st, b) = s
            .batch(json!([
                {"type": "identify", "userId": 1717.0, "traits": {"phone": "+1 415 555 0102 ext. 23"}},
                {"type": "identify", "userId": 1717, "traits": {"socials": {"bsky": "https://bsky.app/profile/Ann.bsky.social"}}},
                {"type": "identify", "anonymousId": "d3", "traits": {"phone": "+14155550102;ext=23", "wallet": "eip155:01:0x52908400098527886E0F7030069857D2E4169EE7"}},
                {"type": "identify", "anonymousId": "d4", "traits": {"socials": {"bluesky": "@@ann.bsky.social"}}, "context": {"externalIds": [{"id": "A7", "type": "CRM"}]}},
                {"type": "identify", "userId": "owner", "traits": {"phone": "+14155550102"}, "context": {"externalIds": [{"id": "A7", "type": "crm"}]}}
            ]))
            .await;
        assert_eq!(st, 200, "[{kind}] {b}");
        let p = s.profile_of("user_id:1717").await;
        let ids = common::identities(&p);
        for want in [
            "phone:+14155550102;ext=23",
            "social:bluesky:ann.bsky.social",
            "wallet:eip155:1:0x52908400098527886E0F7030069857D2E4169EE7",
            "anonymous_id:d3",
            "anonymous_id:d4",
        ] {
            assert!(
                ids.contains(&want.to_string()),
                "[{kind}] {want} not in {ids:?}"
            );
        }
        // The base number and the external id in another case belong to the owner.
        let owner = s.profile_of("user_id:owner").await;
        assert_ne!(
            owner["id"], p["id"],
            "[{kind}] an extension is not the switchboard"
        );
        assert_eq!(
            s.profile_of("external:crm:A7").await["id"],
            s.profile_of("anonymous_id:d4").await["id"]
        );
        s.finish().await;
    }
}

#[tokio::test]
async fn a_tie_split_by_hand_comes_back_as_a_conflict() {
    for s in common::servers().await {
        let kind = s.kind;
        let tie = |n: &str| {
            json!([
                {"type": "identify", "userId": "alice", "messageId": format!("a{n}"), "traits": {"email": "family@shop.example"}},
                {"type": "identify", "userId": "bob", "messageId": format!("b{n}"), "traits": {"email": "family@shop.example"}}
            ])
        };
        s.batch(tie("1")).await;
        let alice = s.profile_of("user_id:alice").await;
        let bob = s.profile_of("user_id:bob").await;
        assert_eq!(s.get("/api/conflicts").await.1.as_array().unwrap().len(), 1);
        // Merged by hand (resolving the conflict), then split again by hand.
        let (st, _) = s
            .send(
                reqwest::Method::POST,
                &format!("/api/profiles/{}/merge", bob["id"]),
                json!({"other_id": alice["id"]}),
            )
            .await;
        assert_eq!(st, 200);
        assert_eq!(s.get("/api/conflicts").await.1.as_array().unwrap().len(), 0);
        let merged = [&alice, &bob]
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .max()
            .unwrap();
        let (st, b) = s
            .send(
                reqwest::Method::POST,
                &format!("/api/profiles/{merged}/unmerge"),
                json!({}),
            )
            .await;
        assert_eq!(st, 200, "[{kind}] {b}");
        // The same tie again: a conflict to review, as the docs promise.
        s.batch(tie("2")).await;
        let (_, c) = s.get("/api/conflicts").await;
        assert_eq!(c.as_array().unwrap().len(), 1, "[{kind}] {c}");
        assert_ne!(
            s.profile_of("user_id:alice").await["id"],
            s.profile_of("user_id:bob").await["id"]
        );
        s.finish().await;
    }
}

#[tokio::test]
async fn one_bad_identifier_does_not_lose_the_events() {
    for s in common::servers().await {
        let kind = s.kind;
        let (st, body) = s
            .batch(json!([
                {"type": "track", "userId": "buyer", "event": "Order Completed", "properties": {"revenue": 99.5},
                 "context": {"traits": {"email": "n/a"}}},
                {"type": "identify", "userId": "buyer", "traits": {"phone": "12", "name": "Ann"}},
                {"type": "identify", "userId": "buyer2", "traits": {"email": "not an address"}},
                {"type": "track", "userId": "bad\u{7}id", "event": "Order Completed", "messageId": "lost-id"}
            ]))
            .await;
        assert_eq!(st, 200, "[{kind}] {body}");
        let fields: Vec<&str> = body["dropped"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["field"].as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "batch[0].context.traits.email",
                "batch[1].traits.phone",
                "batch[2].traits.email",
                "batch[3].userId"
            ],
            "[{kind}] {body}"
        );
        assert_eq!(s.stats().await["events"], 4, "[{kind}] every event kept");
        let buyer = s.profile_of("user_id:buyer").await;
        assert_eq!(buyer["traits"]["name"], "Ann");
        s.profile_of("anonymous_id:unattributed:lost-id").await;
        // Counted per field and kind, with the latest example.
        let (st, issues) = s.get("/api/ingestion/issues").await;
        assert_eq!(st, 200);
        let email = issues
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["field"] == "traits.email")
            .unwrap_or_else(|| panic!("[{kind}] {issues}"));
        assert_eq!(email["kind"], "invalid");
        assert_eq!(email["count"], 1);
        assert_eq!(email["example_value"], "not an address");
        assert_eq!(issues[0]["count"], 1);
        // Placeholders are counted too.
        s.batch(json!([{"type": "identify", "anonymousId": "undefined", "userId": "z"}]))
            .await;
        let (_, issues) = s.get("/api/ingestion/issues?limit=1000").await;
        assert!(
            issues
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["field"] == "anonymousId" && i["kind"] == "blocked"),
            "[{kind}] {issues}"
        );
        s.finish().await;
    }
}

#[tokio::test]
async fn an_identifier_can_be_detached_and_put_back() {
    for s in common::servers().await {
        let kind = s.kind;
        // A recycled phone number: it belonged to Ann, now someone else texts from it.
        s.batch(json!([{"type": "identify", "userId": "ann", "traits": {"phone": "+14155550123", "email": "ann@shop.example"}}]))
            .await;
        let ann = s.profile_of("user_id:ann").await;
        let id = ann["id"].as_i64().unwrap();
        let (st, d) = s
            .send(
                reqwest::Method::DELETE,
                &format!("/api/profiles/{id}/identities/phone/%2B14155550123"),
                json!(null),
            )
            .await;
        assert_eq!(st, 200, "[{kind}] {d}");
        let phone_owner = s.profile_of("phone:+14155550123").await;
        assert_ne!(phone_owner["id"], ann["id"], "[{kind}]");
        assert_eq!(d["to_profile"], phone_owner["id"]);
        assert!(!common::identities(&s.profile_of("user_id:ann").await)
            .contains(&"phone:+14155550123".to_string()));
        // The new owner's messages carrying the number do not merge it back.
        s.batch(json!([{"type": "identify", "anonymousId": "new-owner", "traits": {"phone": "+14155550123"}},
                       {"type": "identify", "anonymousId": "new-owner", "traits": {"email": "ann@shop.example"}}]))
            .await;
        assert_ne!(
            s.profile_of("phone:+14155550123").await["id"],
            s.profile_of("user_id:ann").await["id"],
            "[{kind}] a detached identifier came back by itself"
        );
        let (_, list) = s.get(&format!("/api/profiles/{id}/detaches")).await;
        assert_eq!(
            list[0]["identifier"], "phone:+14155550123",
            "[{kind}] {list}"
        );
        // Refusals: unknown identifier, the only one left, bad kind.
        let (st, _) = s
            .send(
                reqwest::Method::DELETE,
                &format!("/api/profiles/{id}/identities/phone/%2B14155550999"),
                json!(null),
            )
            .await;
        assert_eq!(st, 404);
        let (st, b) = s
            .send(
                reqwest::Method::DELETE,
                &format!("/api/profiles/{id}/identities/fax/1"),
                json!(null),
            )
            .await;
        assert_eq!((st, b["field"].as_str()), (400, Some("kind")));
        let lone = s.profile_of("phone:+14155550123").await["id"]
            .as_i64()
            .unwrap();
        let (_, lone_p) = s.get(&format!("/api/profiles/{lone}")).await;
        if lone_p["identities"].as_array().unwrap().len() == 1 {
            let (st, _) = s
                .send(
                    reqwest::Method::DELETE,
                    &format!("/api/profiles/{lone}/identities/phone/%2B14155550123"),
                    json!(null),
                )
                .await;
            assert_eq!(st, 409, "[{kind}] a person's only identifier");
        }
        // Put back: Ann has her number again.
        let (st, u) = s
            .send(
                reqwest::Method::POST,
                &format!("/api/detaches/{}/undo", d["id"]),
                json!(null),
            )
            .await;
        assert_eq!(st, 200, "[{kind}] {u}");
        assert!(u["undone_at"].is_string());
        assert_eq!(
            s.profile_of("phone:+14155550123").await["id"],
            s.profile_of("user_id:ann").await["id"]
        );
        let (st, _) = s
            .send(
                reqwest::Method::POST,
                &format!("/api/detaches/{}/undo", d["id"]),
                json!(null),
            )
            .await;
        assert_eq!(st, 409, "[{kind}] undone twice");
        s.finish().await;
    }
}

#[tokio::test]
async fn national_phone_numbers_in_the_brands_region() {
    for s in common::servers().await {
        let kind = s.kind;
        let send = || {
            s.batch(
                json!([{"type": "identify", "userId": "uk", "traits": {"phone": "020 7946 0958"}}]),
            )
        };
        let (_, body) = send().await;
        assert_eq!(
            body["dropped"][0]["field"], "batch[0].traits.phone",
            "[{kind}] {body}"
        );
        let (st, b) = s
            .send(
                reqwest::Method::PUT,
                "/api/settings/identity",
                json!({"default_region": "XX"}),
            )
            .await;
        assert_eq!(
            (st, b["field"].as_str()),
            (400, Some("default_region")),
            "[{kind}] {b}"
        );
        let (st, _) = s
            .send(
                reqwest::Method::PUT,
                "/api/settings/identity",
                json!({"default_region": "GB"}),
            )
            .await;
        assert_eq!(st, 200);
        let (_, body) = send().await;
        assert!(body.get("dropped").is_none(), "[{kind}] {body}");
        assert!(common::identities(&s.profile_of("user_id:uk").await)
            .contains(&"phone:+442079460958".to_string()));
        s.finish().await;
    }
}

/// The attack of issue 38: a browser key is public; with it anyone can send a message
/// naming a customer's e-mail.
#[tokio::test]
async fn a_browser_key_cannot_write_into_someone_it_reaches_by_email() {
    for s in common::servers().await {
        let kind = s.kind;
        let (st, k) = s
            .send(
                reqwest::Method::POST,
                "/api/keys",
                json!({"scope": "write", "trust": "browser"}),
            )
            .await;
        assert_eq!(st, 200, "[{kind}] {k}");
        let browser_key = k["key"].as_str().unwrap().to_string();
        let from_browser = |m: Value| {
            s.client
                .post(format!("{}/v1/identify", s.url))
                .basic_auth(&browser_key, Some(""))
                .json(&m)
                .send()
        };
        // The victim, known from the brand's server.
        s.post_v1("/v1/identify", json!({"userId": "victim", "traits": {"email": "victim@shop.example", "name": "Vera", "phone": "+14155550170"}}))
            .await;
        let victim = s.profile_of("user_id:victim").await;
        // The attack: a new device claims the victim's e-mail, a name and a phone.
        let r = from_browser(json!({"anonymousId": "attacker-device",
            "traits": {"email": "victim@shop.example", "name": "Nina", "phone": "+14155550181"}}))
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        let after = s.profile_of("user_id:victim").await;
        assert_eq!(
            after["traits"]["name"], "Vera",
            "[{kind}] the victim's name was overwritten"
        );
        let ids = common::identities(&after);
        assert!(
            !ids.contains(&"phone:+14155550181".to_string()),
            "[{kind}] {ids:?}"
        );
        assert!(ids.contains(&"phone:+14155550170".to_string()));
        // The device is linked, so its events are attributed, and nothing else moved.
        assert_eq!(
            s.profile_of("anonymous_id:attacker-device").await["id"],
            victim["id"]
        );
        let (st, _) = s
            .get("/api/profiles/lookup?identifier=phone%3A%2B14155550181")
            .await;
        assert_eq!(
            st, 404,
            "[{kind}] the attacker's phone was attached somewhere"
        );
        // Later messages from the device are held the same way.
        from_browser(json!({"anonymousId": "attacker-device", "traits": {"name": "Nina again"}}))
            .await
            .unwrap();
        assert_eq!(
            s.profile_of("user_id:victim").await["traits"]["name"],
            "Vera"
        );
        let (_, issues) = s.get("/api/ingestion/issues").await;
        assert!(
            issues
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["kind"] == "unconfirmed"),
            "[{kind}] held-back writes are reported: {issues}"
        );
        // The victim's own device, once their user id appears on it, writes as usual.
        from_browser(json!({"anonymousId": "vera-phone", "userId": "victim"}))
            .await
            .unwrap();
        from_browser(json!({"anonymousId": "vera-phone", "traits": {"plan": "pro"}}))
            .await
            .unwrap();
        assert_eq!(
            s.profile_of("user_id:victim").await["traits"]["plan"],
            "pro",
            "[{kind}]"
        );
        // A server key keeps full power.
        s.post_v1("/v1/identify", json!({"anonymousId": "crm-sync", "traits": {"email": "victim@shop.example", "tier": "gold"}}))
            .await;
        assert_eq!(
            s.profile_of("user_id:victim").await["traits"]["tier"],
            "gold",
            "[{kind}]"
        );
        s.finish().await;
    }
}

/// Issue 38, item 5: a merge made by a message from a device that came in through an
/// earlier merge is undone with that merge.
#[tokio::test]
async fn an_unmerge_undoes_what_existed_only_because_of_the_merge() {
    for s in common::servers().await {
        let kind = s.kind;
        for m in [
            json!({"type": "identify", "anonymousId": "a1", "messageId": "m1", "traits": {"email": "e1@shop.example", "name": "Ann"}}),
            json!({"type": "track", "anonymousId": "a2", "messageId": "m2", "event": "Viewed"}),
            json!({"type": "identify", "anonymousId": "a3", "messageId": "m3", "traits": {"phone": "+14155550142", "name": "Cyd"}}),
            json!({"type": "identify", "anonymousId": "a2", "messageId": "m4", "traits": {"email": "e1@shop.example"}}),
            json!({"type": "identify", "anonymousId": "a2", "messageId": "m5", "traits": {"phone": "+14155550142"}}),
        ] {
            assert_eq!(s.batch(json!([m])).await.0, 200);
        }
        let e1 = s.profile_of("email:e1@shop.example").await;
        assert_eq!(
            e1["id"],
            s.profile_of("phone:+14155550142").await["id"],
            "[{kind}] all one before"
        );
        let a2 = s.profile_of("anonymous_id:a2").await;
        let a2_raw = a2["identities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["value"] == "a2")
            .map(|i| i["profile_id"].as_i64().unwrap())
            .unwrap();
        let (st, b) = s
            .send(
                reqwest::Method::POST,
                &format!("/api/profiles/{a2_raw}/unmerge"),
                json!({}),
            )
            .await;
        assert_eq!(st, 200, "[{kind}] {b}");
        // The phone came in only through a2: it leaves with it, and e1 is Ann again.
        let e1 = s.profile_of("email:e1@shop.example").await;
        assert!(
            !common::identities(&e1).contains(&"phone:+14155550142".to_string()),
            "[{kind}] the phone stayed: {e1}"
        );
        assert_eq!(e1["traits"]["name"], "Ann", "[{kind}] {e1}");
        assert_eq!(
            s.profile_of("phone:+14155550142").await["traits"]["name"],
            "Cyd"
        );
        let (_, merges) = s.get("/api/merges").await;
        let undone = merges
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["undone_at"].is_string())
            .count();
        assert_eq!(
            undone, 2,
            "[{kind}] the merge and the one that depended on it: {merges}"
        );
        s.finish().await;
    }
}

#[tokio::test]
async fn limits_per_kind_hold_a_shared_device_back() {
    for s in common::servers().await {
        let kind = s.kind;
        let emails: Vec<String> = (0..10)
            .map(|i| format!("visitor{i}@shop.example"))
            .collect();
        s.batch(json!([{"type": "identify", "userId": "kiosk", "traits": {"emails": emails}}]))
            .await;
        let (st, body) = s
            .batch(json!([{"type": "identify", "userId": "kiosk", "event": "x", "traits": {"email": "visitor10@shop.example"}}]))
            .await;
        assert_eq!(st, 200, "[{kind}] {body}");
        let (st, _) = s
            .get("/api/profiles/lookup?identifier=email%3Avisitor10%40shop.example")
            .await;
        assert_eq!(st, 404, "[{kind}] the eleventh e-mail was attached");
        let (_, issues) = s.get("/api/ingestion/issues").await;
        assert!(
            issues
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["kind"] == "limit" && i["field"] == "traits.email"),
            "[{kind}] {issues}"
        );
        s.finish().await;
    }
}
