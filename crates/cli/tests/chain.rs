//! Web3 against a real local EVM node (ganache from npm, started here) with ERC-20 and
//! ERC-721 contracts compiled from the repository's Solidity by solc-js: Sign-In with
//! Ethereum with a real key, Transfer logs into timelines and holdings checked against
//! the chain's own balanceOf, a forced re-org, and token rewards paid once.

mod common;

use common::{eventually, start_with, stores, TestServer};
use rapport_chain::abi;
use rapport_chain::devnode::{compile, DevNode, CHAIN_ID};
use rapport_chain::{Address, U256};
use reqwest::Method;
use serde_json::{json, Value};

const CHAIN: &str = "eip155:31337";

struct Tokens {
    loyal: Address,
    badge: Address,
}

async fn deploy(node: &DevNode) -> Tokens {
    let art = compile().expect("solc compiles the contracts");
    let owner = DevNode::wallet(0);
    let loyal = node
        .deploy(
            &owner,
            art["RapportToken"].bytecode.clone(),
            &abi::constructor_two_strings("Rapport Loyalty", "LOYAL"),
        )
        .await
        .expect("deploy ERC-20");
    let badge = node
        .deploy(
            &owner,
            art["RapportBadge"].bytecode.clone(),
            &abi::constructor_two_strings("Rapport Badge", "BADGE"),
        )
        .await
        .expect("deploy ERC-721");
    Tokens { loyal, badge }
}

fn wallet_id(a: &Address) -> String {
    format!("{CHAIN}:{}", a.to_checksum(None))
}

fn units(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

async fn follow(s: &TestServer, node: &DevNode, t: &Tokens) {
    let (st, v) = s
        .send(
            Method::POST,
            "/api/chains",
            json!({"id": CHAIN, "rpc_url": node.url, "confirmations": 0,
            "start_block": 0, "brand_wallets": [DevNode::wallet(0).address().to_string()]}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert!(
        v.get("rpc_url").is_none(),
        "the RPC URL is never shown: {v}"
    );
    for (a, std, sym) in [(t.loyal, "erc20", "LOYAL"), (t.badge, "erc721", "BADGE")] {
        let (st, v) = s
            .send(Method::POST, &format!("/api/chains/{CHAIN}/contracts"),
                json!({"address": a.to_string(), "standard": std, "symbol": sym, "brand_owned": true}))
            .await;
        assert_eq!(st, 201, "{v}");
    }
}

async fn sync(s: &TestServer) -> Value {
    let (st, v) = s
        .send(
            Method::POST,
            &format!("/api/chains/{CHAIN}/sync?steps=100"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "[{}] sync: {v}", s.kind);
    v
}

fn holding<'a>(h: &'a Value, symbol: &str) -> &'a Value {
    h["holdings"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["symbol"] == symbol))
        .unwrap_or(&Value::Null)
}

async fn timeline_names(s: &TestServer, id: i64) -> Vec<String> {
    let (_, v) = s
        .get(&format!("/api/profiles/{id}/timeline?limit=100"))
        .await;
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siwe_links_a_verified_wallet_once() {
    for (store, dir, pg) in stores().await {
        let s = start_with(store, dir, pg, |_| {}).await;
        let host = s.url.trim_start_matches("http://").to_string();
        let key = DevNode::wallet(1);
        let nonce = |s: &TestServer| {
            let c = s
                .client
                .get(format!("{}/api/siwe/nonce", s.url))
                .basic_auth(&s.write, Some(""));
            async move {
                c.send()
                    .await
                    .expect("nonce")
                    .json::<Value>()
                    .await
                    .expect("json")["nonce"]
                    .as_str()
                    .expect("nonce")
                    .to_string()
            }
        };
        let now = chrono::Utc::now();
        let message = |domain: &str, nonce: &str, exp: chrono::DateTime<chrono::Utc>| {
            rapport_chain::siwe::message_text(
                domain,
                &key.address(),
                &format!("http://{domain}/connect"),
                CHAIN_ID,
                nonce,
                &now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                Some(&exp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            )
        };
        let verify = |body: Value| {
            let c = s
                .client
                .post(format!("{}/api/siwe/verify", s.url))
                .basic_auth(&s.write, Some(""))
                .json(&body);
            async move {
                let r = c.send().await.expect("verify");
                (
                    r.status().as_u16(),
                    r.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };
        let n = nonce(&s).await;
        let msg = message(&host, &n, now + chrono::Duration::minutes(5));
        let sig = key.sign_message(&msg).expect("sign");
        let (st, v) =
            verify(json!({"message": msg, "signature": sig, "link_to": "email:ada@shop.example"}))
                .await;
        assert_eq!(st, 200, "[{}] {v}", s.kind);
        assert_eq!(v["verified"], true);
        let p = s.profile_of("email:ada@shop.example").await;
        let w = p["identities"]
            .as_array()
            .expect("ids")
            .iter()
            .find(|i| i["kind"] == "wallet")
            .expect("the wallet joined the e-mail's profile")
            .clone();
        assert_eq!(w["value"], wallet_id(&key.address()));
        assert_eq!(w["verified"], true, "{p}");
        // Replay: the nonce is spent.
        let (st, v) =
            verify(json!({"message": msg, "signature": sig, "link_to": "email:ada@shop.example"}))
                .await;
        assert_eq!(
            (st, v["field"].as_str()),
            (400, Some("message.nonce")),
            "{v}"
        );
        // Another site's message, an expired one, a signature by someone else.
        let n = nonce(&s).await;
        let other = message("evil.example", &n, now + chrono::Duration::minutes(5));
        let (st, v) = verify(json!({"message": other, "signature": key.sign_message(&other).expect("sign"), "link_to": "email:ada@shop.example"})).await;
        assert_eq!(
            (st, v["field"].as_str()),
            (400, Some("message.domain")),
            "{v}"
        );
        let expired = message(&host, &n, now - chrono::Duration::minutes(1));
        let (st, v) = verify(json!({"message": expired, "signature": key.sign_message(&expired).expect("sign"), "link_to": "email:ada@shop.example"})).await;
        assert_eq!(
            (st, v["field"].as_str()),
            (400, Some("message.expiration_time")),
            "{v}"
        );
        let fresh = message(&host, &n, now + chrono::Duration::minutes(5));
        let forged = DevNode::wallet(2).sign_message(&fresh).expect("sign");
        let (st, v) = verify(
            json!({"message": fresh, "signature": forged, "link_to": "email:ada@shop.example"}),
        )
        .await;
        assert_eq!((st, v["field"].as_str()), (400, Some("signature")), "{v}");
        let (st, v) = verify(json!({"message": fresh, "signature": key.sign_message(&fresh).expect("sign"), "link_to": "phone:+33"})).await;
        assert_eq!((st, v["field"].as_str()), (400, Some("link_to")), "{v}");
        // A wallet that only arrived in traits stays unverified.
        let (st, _) = s.post_v1("/v1/identify", json!({"userId": "bo", "traits": {"wallet": wallet_id(&DevNode::wallet(2).address())}})).await;
        assert_eq!(st, 200);
        let p = s.profile_of("user_id:bo").await;
        assert!(
            p["identities"]
                .as_array()
                .expect("ids")
                .iter()
                .any(|i| i["kind"] == "wallet" && i["verified"] == false),
            "{p}"
        );
        // The customer page that does the same with a browser wallet.
        let page = s
            .client
            .get(format!("{}/connect", s.url))
            .send()
            .await
            .expect("page");
        assert_eq!(page.status().as_u16(), 200);
        let html = page.text().await.expect("html");
        assert!(html.contains("Connect your wallet") && html.contains("/api/siwe/verify"));
        // With no node configured, on-chain features say so.
        let (st, v) = s
            .send(
                Method::POST,
                "/api/rewards",
                json!({"profile_id": p["id"], "token": "LOYAL", "amount": "1"}),
            )
            .await;
        assert_eq!(st, 409, "{v}");
        assert!(
            v["detail"]
                .as_str()
                .unwrap_or("")
                .contains("no chain is configured"),
            "{v}"
        );
        let (_, v) = s.get(&format!("/api/profiles/{}/holdings", p["id"])).await;
        assert!(
            v["note"]
                .as_str()
                .unwrap_or("")
                .contains("no chain is configured"),
            "{v}"
        );
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_become_timelines_and_holdings_and_survive_a_reorg() {
    let node = DevNode::start().await.expect("ganache");
    let t = deploy(&node).await;
    let (owner, alice, bob) = (DevNode::wallet(0), DevNode::wallet(1), DevNode::wallet(2));
    let carol = Address::repeat_byte(0xca);
    let tx = |to: Address, data: Vec<u8>, w: &rapport_chain::wallet::HotWallet| {
        let w = w.clone();
        let node = &node;
        async move { node.transact(&w, to, data).await.expect("transaction") }
    };
    tx(
        t.loyal,
        abi::erc20_mint(&alice.address(), units(100)),
        &owner,
    )
    .await;
    tx(t.loyal, abi::erc20_mint(&bob.address(), units(50)), &owner).await;
    tx(
        t.loyal,
        abi::erc20_transfer(&bob.address(), units(30)),
        &alice,
    )
    .await;
    tx(t.loyal, abi::erc20_transfer(&carol, units(5)), &bob).await;
    tx(t.badge, abi::erc721_mint(&alice.address()), &owner).await;
    for (store, dir, pg) in stores().await {
        let s = start_with(store, dir, pg, |_| {}).await;
        let (st, _) = s.batch(json!([
            {"type": "identify", "userId": "alice", "traits": {"email": "alice@shop.example", "wallet": wallet_id(&alice.address())}},
            {"type": "identify", "userId": "bob", "traits": {"wallet": wallet_id(&bob.address())}},
        ])).await;
        assert_eq!(st, 200);
        let a = s.profile_of("user_id:alice").await["id"]
            .as_i64()
            .expect("id");
        let b = s.profile_of("user_id:bob").await["id"]
            .as_i64()
            .expect("id");
        follow(&s, &node, &t).await;
        let r = sync(&s).await;
        assert_eq!(r["logs"], 5, "{r}");
        let (_, h) = s.get(&format!("/api/profiles/{a}/holdings")).await;
        assert_eq!(holding(&h, "LOYAL")["amount"], 70.0, "{h}");
        assert_eq!(holding(&h, "LOYAL")["from_brand_amount"], 100.0, "{h}");
        assert!(holding(&h, "LOYAL")["held_since"].is_i64(), "{h}");
        assert_eq!(holding(&h, "BADGE")["token_ids"], json!(["1"]), "{h}");
        let (_, h) = s.get(&format!("/api/profiles/{b}/holdings")).await;
        assert_eq!(holding(&h, "LOYAL")["amount"], 75.0, "{h}");
        for (who, id) in [(&alice, a), (&bob, b)] {
            let on_chain = node
                .balance_of(t.loyal, who.address())
                .await
                .expect("balanceOf");
            let (_, h) = s.get(&format!("/api/profiles/{id}/holdings")).await;
            assert_eq!(holding(&h, "LOYAL")["balance"], on_chain.to_string(), "{h}");
        }
        let names = timeline_names(&s, a).await;
        assert_eq!(
            names.iter().filter(|n| *n == "Token Received").count(),
            2,
            "{names:?}"
        );
        assert_eq!(
            names.iter().filter(|n| *n == "Token Sent").count(),
            1,
            "{names:?}"
        );
        // A transfer between two customers is a relationship, counted once.
        let rel = eventually(&s, &format!("/api/profiles/{a}/relationships"), |v| {
            v.to_string().contains("transferred")
        })
        .await;
        assert!(rel.to_string().contains(&b.to_string()), "{rel}");
        // Token conditions in segments.
        let (_, v) = s
            .send(
                Method::POST,
                "/api/segments/preview",
                json!({"definition": "holds(\"LOYAL\") >= 70"}),
            )
            .await;
        assert_eq!(v["count"], 2, "{v}");
        let (_, v) = s.send(Method::POST, "/api/segments/preview",
            json!({"definition": "holds(\"BADGE\") >= 1 and from_brand(\"LOYAL\") >= 100 and held_days(\"LOYAL\") >= 0"})).await;
        assert_eq!(v["count"], 1, "{v}");
        assert_eq!(v["sample"][0]["id"], a, "{v}");
        s.finish().await;
    }
    // The re-org: alice sends everything to carol, the node reverts, another fork wins.
    for (store, dir, pg) in stores().await {
        // Each store follows the chain from scratch through the fork (a snapshot is
        // good for one revert).
        let snap = node.snapshot().await.expect("snapshot");
        let s = start_with(store, dir, pg, |_| {}).await;
        let (st, _) = s
            .post_v1(
                "/v1/identify",
                json!({"userId": "alice", "traits": {"wallet": wallet_id(&alice.address())}}),
            )
            .await;
        assert_eq!(st, 200);
        let a = s.profile_of("user_id:alice").await["id"]
            .as_i64()
            .expect("id");
        follow(&s, &node, &t).await;
        sync(&s).await;
        let forked = node.snapshot().await.expect("snapshot");
        tx(t.loyal, abi::erc20_transfer(&carol, units(70)), &alice).await;
        sync(&s).await;
        let (_, h) = s.get(&format!("/api/profiles/{a}/holdings")).await;
        assert_eq!(holding(&h, "LOYAL")["amount"], 0.0, "{h}");
        assert!(holding(&h, "LOYAL")["held_since"].is_null(), "{h}");
        assert_eq!(
            timeline_names(&s, a)
                .await
                .iter()
                .filter(|n| *n == "Token Sent")
                .count(),
            2
        );
        // Sums read `event_numbers`, which triggers keep in step with the events.
        let sent_over_50 = json!({"definition": "sum(track \"Token Sent\".amount) > 50"});
        let (_, v) = s
            .send(Method::POST, "/api/segments/preview", sent_over_50.clone())
            .await;
        assert_eq!(v["count"], 1, "30 + 70 sent: {v}");
        node.revert(&forked).await.expect("revert");
        node.mine(2).await.expect("mine");
        tx(
            t.loyal,
            abi::erc20_transfer(&alice.address(), units(1)),
            &bob,
        )
        .await;
        let r = sync(&s).await;
        assert!(r["reorged_blocks"].as_i64().unwrap_or(0) >= 1, "{r}");
        assert_eq!(r["retracted_logs"], 1, "{r}");
        let on_chain = node
            .balance_of(t.loyal, alice.address())
            .await
            .expect("balanceOf");
        assert_eq!(on_chain, units(71));
        let (_, h) = s.get(&format!("/api/profiles/{a}/holdings")).await;
        assert_eq!(holding(&h, "LOYAL")["balance"], on_chain.to_string(), "{h}");
        assert!(holding(&h, "LOYAL")["held_since"].is_i64(), "{h}");
        let names = timeline_names(&s, a).await;
        assert_eq!(
            names.iter().filter(|n| *n == "Token Sent").count(),
            1,
            "the re-orged transfer is retracted: {names:?}"
        );
        let (_, v) = s
            .send(Method::POST, "/api/segments/preview", sent_over_50)
            .await;
        assert_eq!(v["count"], 0, "the retracted 70 no longer counts: {v}");
        // Two mints, and bob's transfer on the winning fork.
        assert_eq!(
            names.iter().filter(|n| *n == "Token Received").count(),
            3,
            "{names:?}"
        );
        // The next sync starts where this one stopped.
        let (_, v) = s.get("/api/chains").await;
        assert_eq!(v["chains"][0]["lag_blocks"], 0, "{v}");
        assert_eq!(sync(&s).await["logs"], 0);
        node.revert(&snap).await.expect("back to the shared start");
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rewards_pay_once_fail_visibly_and_retry() {
    let node = DevNode::start().await.expect("ganache");
    let t = deploy(&node).await;
    let alice = DevNode::wallet(1).address();
    for (store, dir, pg) in stores().await {
        let s = start_with(store, dir, pg, |st| {
            st.rewards.set_hot_wallet(Some(DevNode::wallet(0)))
        })
        .await;
        let (st, _) = s
            .post_v1(
                "/v1/identify",
                json!({"userId": "alice", "traits": {"wallet": wallet_id(&alice)}}),
            )
            .await;
        assert_eq!(st, 200);
        let a = s.profile_of("user_id:alice").await["id"]
            .as_i64()
            .expect("id");
        follow(&s, &node, &t).await;
        let before = node.balance_of(t.loyal, alice).await.expect("balance");
        let ask = json!({"profile_id": a, "token": "LOYAL", "amount": "10", "idempotency_key": format!("promo-{}", s.kind)});
        let (st, first) = s.send(Method::POST, "/api/rewards", ask.clone()).await;
        assert_eq!(st, 201, "{first}");
        let (st, again) = s.send(Method::POST, "/api/rewards", ask).await;
        assert_eq!((st, &again["id"]), (200, &first["id"]), "{again}");
        let id = first["id"].as_i64().expect("id");
        let done = eventually(&s, &format!("/api/rewards/{id}"), |v| {
            v["status"] == "confirmed" || v["status"] == "failed"
        })
        .await;
        assert_eq!(done["status"], "confirmed", "{done}");
        assert_eq!(
            node.balance_of(t.loyal, alice).await.expect("balance") - before,
            units(10),
            "paid exactly once"
        );
        assert!(timeline_names(&s, a)
            .await
            .contains(&"Token Reward Sent".to_string()));
        // A transfer the hot wallet cannot pay fails with the reason, then succeeds on retry.
        let (st, big) = s
            .send(
                Method::POST,
                "/api/rewards",
                json!({"profile_id": a, "token": "LOYAL", "amount": "5000", "kind": "transfer"}),
            )
            .await;
        assert_eq!(st, 201, "{big}");
        let big_id = big["id"].as_i64().expect("id");
        let failed = eventually(&s, &format!("/api/rewards/{big_id}"), |v| {
            v["status"] == "failed"
        })
        .await;
        assert!(
            failed["last_error"]
                .as_str()
                .unwrap_or("")
                .contains("balance"),
            "{failed}"
        );
        node.transact(
            &DevNode::wallet(0),
            t.loyal,
            abi::erc20_mint(&DevNode::wallet(0).address(), units(5000)),
        )
        .await
        .expect("fund the hot wallet");
        let (st, v) = s
            .send(
                Method::POST,
                &format!("/api/rewards/{big_id}/retry"),
                json!({}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let done = eventually(&s, &format!("/api/rewards/{big_id}"), |v| {
            v["status"] == "confirmed"
        })
        .await;
        assert!(done["tx_hash"].is_string());
        // An NFT mint, and bad input that names its field.
        let (st, nft) = s
            .send(
                Method::POST,
                "/api/rewards",
                json!({"profile_id": a, "token": "BADGE", "amount": "1"}),
            )
            .await;
        assert_eq!(st, 201, "{nft}");
        eventually(&s, &format!("/api/rewards/{}", nft["id"]), |v| {
            v["status"] == "confirmed"
        })
        .await;
        for (body, field) in [
            (
                json!({"profile_id": a, "token": "LOYAL", "amount": "-1"}),
                "amount",
            ),
            (
                json!({"profile_id": a, "token": "NOPE", "amount": "1"}),
                "token",
            ),
            (
                json!({"profile_id": a, "token": "BADGE", "amount": "2"}),
                "amount",
            ),
            (json!({"profile_id": a, "token": "LOYAL"}), "amount"),
        ] {
            let (st, v) = s.send(Method::POST, "/api/rewards", body).await;
            assert_eq!((st, v["field"].as_str()), (400, Some(field)), "{v}");
        }
        // A rule pays too, once per triggering event.
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/rules",
                json!({"rules": [{"name": "Thank reviewers", "when": "track \"Review Written\"",
            "then": [{"action": "token_reward", "token": "LOYAL", "amount": "2"}]}]}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let before = node.balance_of(t.loyal, alice).await.expect("balance");
        let (st, _) = s
            .post_v1(
                "/v1/track",
                json!({"userId": "alice", "event": "Review Written", "properties": {"stars": 5}}),
            )
            .await;
        assert_eq!(st, 200);
        let list = eventually(&s, "/api/rewards?status=confirmed", |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|r| r["source"] == "rule:Thank reviewers"))
        })
        .await;
        assert_eq!(
            list.as_array().map(|a| a
                .iter()
                .filter(|r| r["source"] == "rule:Thank reviewers")
                .count()),
            Some(1)
        );
        assert_eq!(
            node.balance_of(t.loyal, alice).await.expect("balance") - before,
            units(2)
        );
        s.finish().await;
    }
}

/// Links `key`'s wallet to `link_to` by Sign-In with Ethereum (a verified wallet).
async fn siwe_link(s: &TestServer, key: &rapport_chain::wallet::HotWallet, link_to: &str) {
    let host = s.url.trim_start_matches("http://").to_string();
    let (_, n) = s.get("/api/siwe/nonce").await;
    let now = chrono::Utc::now();
    let msg = rapport_chain::siwe::message_text(
        &host,
        &key.address(),
        &format!("http://{host}/connect"),
        CHAIN_ID,
        n["nonce"].as_str().expect("nonce"),
        &now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        Some(
            &(now + chrono::Duration::minutes(5))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
    );
    let sig = key.sign_message(&msg).expect("sign");
    let (st, v) = s
        .send(
            Method::POST,
            "/api/siwe/verify",
            json!({"message": msg, "signature": sig, "link_to": link_to}),
        )
        .await;
    assert_eq!(st, 200, "[{}] {v}", s.kind);
}

async fn available(s: &TestServer, id: i64) -> i64 {
    let (_, v) = s.get(&format!("/api/profiles/{id}/loyalty")).await;
    v["available"].as_i64().expect("available")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_become_tokens_and_tokens_reach_a_tier() {
    let node = DevNode::start().await.expect("ganache");
    let t = deploy(&node).await;
    let key = DevNode::wallet(1);
    let who = key.address();
    for (store, dir, pg) in stores().await {
        let s = start_with(store, dir, pg, |st| {
            st.rewards.set_hot_wallet(Some(DevNode::wallet(0)))
        })
        .await;
        follow(&s, &node, &t).await;
        siwe_link(&s, &key, "email:ada@shop.example").await;
        let ada = s.profile_of("email:ada@shop.example").await["id"]
            .as_i64()
            .expect("id");
        // A wallet known only from traits is not verified: no tokens for it.
        let (st, _) = s.post_v1("/v1/identify", json!({"userId": "bo", "traits": {"email": "bo@shop.example", "wallet": wallet_id(&DevNode::wallet(2).address())}})).await;
        assert_eq!(st, 200);
        let bo = s.profile_of("user_id:bo").await["id"].as_i64().expect("id");
        // Settings that name a token nobody follows, or an NFT, are refused.
        for (bad, field) in [
            (
                json!({"token": {"token": "NOPE", "points_per_token": 100}}),
                "token.token",
            ),
            (
                json!({"token": {"token": "BADGE", "points_per_token": 100}}),
                "token.token",
            ),
            (
                json!({"token": {"token": "LOYAL", "points_per_token": 0}}),
                "token.points_per_token",
            ),
            (
                json!({"tiers": [{"name": "holder", "threshold": 10, "holding": {"token": "NOPE"}}]}),
                "tiers[0].holding.token",
            ),
        ] {
            let (st, v) = s.send(Method::PUT, "/api/loyalty/settings", bad).await;
            assert_eq!((st, v["field"].as_str()), (400, Some(field)), "{v}");
        }
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/loyalty/settings",
                json!({"tiers": [{"name": "silver", "threshold": 100},
                                 {"name": "holder", "threshold": 100000, "holding": {"token": "BADGE", "min": 1}}],
                       "token": {"token": "LOYAL", "points_per_token": 100}}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        for p in [ada, bo] {
            let (st, v) = s
                .send(Method::POST, "/api/loyalty/adjust",
                    json!({"profile_id": p, "points": 500, "reason": "welcome", "idempotency_key": format!("w{p}")}))
                .await;
            assert_eq!(st, 201, "{v}");
        }
        let convert = |p: i64, points: Value, key: &str| {
            s.send(
                Method::POST,
                "/api/loyalty/convert",
                json!({"profile_id": p, "points": points, "idempotency_key": key}),
            )
        };
        let (st, v) = convert(bo, json!(100), "b1").await;
        assert_eq!((st, v["field"].as_str()), (400, Some("profile_id")), "{v}");
        let (st, v) = convert(ada, json!(1.5), "a0").await;
        assert_eq!((st, v["field"].as_str()), (400, Some("points")), "{v}");
        let (st, v) = convert(ada, json!(100000), "a0").await;
        assert_eq!(st, 409, "{v}");
        assert_eq!(available(&s, ada).await, 500, "nothing changed");
        assert_eq!(available(&s, bo).await, 500, "nothing changed");
        // 250 points at 100 a token: 2.5 LOYAL, paid once for one key.
        let before = node.balance_of(t.loyal, who).await.expect("balance");
        let (st, first) = convert(ada, json!(250), "a1").await;
        assert_eq!(st, 201, "{first}");
        assert_eq!(first["amount"], "2.5", "{first}");
        let (st, again) = convert(ada, json!(250), "a1").await;
        assert_eq!((st, &again["id"]), (200, &first["id"]), "{again}");
        assert_eq!(available(&s, ada).await, 250, "spent once");
        let done = eventually(&s, &format!("/api/rewards/{}", first["id"]), |v| {
            v["status"] == "confirmed" || v["status"] == "failed"
        })
        .await;
        assert_eq!(done["status"], "confirmed", "{done}");
        assert_eq!(
            node.balance_of(t.loyal, who).await.expect("balance") - before,
            units(5) / U256::from(2u64),
            "[{}] 2.5 LOYAL on chain",
            s.kind
        );
        // A payment that fails on chain gives the points back: LOYAL is no longer the
        // brand's to mint, and the hot wallet holds none to transfer.
        let (st, v) = s
            .send(Method::POST, &format!("/api/chains/{CHAIN}/contracts"),
                json!({"address": t.loyal.to_string(), "standard": "erc20", "symbol": "LOYAL", "brand_owned": false}))
            .await;
        assert!(st == 200 || st == 201, "{v}");
        let (st, failing) = convert(ada, json!(100), "a2").await;
        assert_eq!(st, 201, "{failing}");
        assert_eq!(available(&s, ada).await, 150);
        let r = eventually(&s, &format!("/api/rewards/{}", failing["id"]), |v| {
            v["status"] == "reversed"
        })
        .await;
        assert!(r["last_error"].as_str().is_some(), "{r}");
        assert_eq!(available(&s, ada).await, 250, "[{}] points back", s.kind);
        let (st, _) = s
            .send(
                Method::POST,
                &format!("/api/rewards/{}/retry", failing["id"]),
                json!({}),
            )
            .await;
        assert_eq!(st, 409, "a reversed conversion is not paid after all");
        // Holding the brand's NFT reaches the token-gated tier.
        let (st, nft) = s
            .send(Method::POST, "/api/rewards",
                json!({"profile_id": ada, "token": "BADGE", "amount": "1", "idempotency_key": format!("nft-{}", s.kind)}))
            .await;
        assert_eq!(st, 201, "{nft}");
        eventually(&s, &format!("/api/rewards/{}", nft["id"]), |v| {
            v["status"] == "confirmed"
        })
        .await;
        sync(&s).await;
        eventually(&s, &format!("/api/profiles/{ada}/loyalty"), |v| {
            v["tier"] == "holder"
        })
        .await;
        // Named as a competitor's token, the same NFT is a split-loyalty signal.
        let (st, v) = s
            .send(
                Method::PUT,
                "/api/loyalty/competitors",
                json!({"competitors": [{"name": "Rival", "tokens": ["BADGE"]}]}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let (st, v) = s
            .send(Method::POST, "/api/scores/recompute", json!({}))
            .await;
        assert_eq!(st, 200, "{v}");
        let (_, sc) = s.get(&format!("/api/profiles/{ada}/scores")).await;
        let split = sc
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == "split_loyalty"))
            .cloned()
            .unwrap_or_else(|| panic!("[{}] {sc}", s.kind));
        assert_eq!(split["value"], 0.6, "{split}");
        assert_eq!(
            split["explanation"]["signals"][0]["held"][0]["competitor"], "Rival",
            "{split}"
        );
        s.finish().await;
    }
}
