//! The two evaluators of the segment language give one answer: on random people
//! (traits, merged profiles, identities, consents, events, texts, network scores,
//! another segment's membership) and random definitions, the SQL compiled for the
//! store and the in-memory evaluator select the same people. SQLite always; PostgreSQL
//! too when RAPPORT_TEST_DATABASE_URL is set.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rapport_domain::message::{parse_message, BatchContext};
use rapport_domain::model::{ConsentStatus, TextAnalysisView};
use rapport_domain::relationship::GraphScores;
use rapport_domain::time::{now_millis, to_datetime};
use rapport_segment::{eval, parse, sql};
mod common;

use common::stores;
use rapport_store::{ConsentInput, DynStore};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const DAY: i64 = 86_400_000;

fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[rng.gen_range(0..xs.len())]
}

/// A random population in `store`; returns the evaluation time.
async fn populate(store: &DynStore, seed: u64) -> i64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = now_millis();
    let titles = [
        "Head of Marketing",
        "Engineer",
        "marketing",
        "VP MARKETING",
        "Designer",
    ];
    let cities = ["Paris", "Berlin", "Lagos"];
    let mut msgs = Vec::new();
    let people = 24;
    for i in 0..people {
        let user = format!("u{i}");
        let mut traits = serde_json::Map::new();
        if rng.gen_bool(0.8) {
            traits.insert("title".into(), json!(pick(&mut rng, &titles)));
        }
        if rng.gen_bool(0.7) {
            traits.insert("age".into(), json!(rng.gen_range(18..70)));
        } else if rng.gen_bool(0.3) {
            traits.insert("age".into(), json!("41"));
        }
        if rng.gen_bool(0.5) {
            traits.insert("vip".into(), json!(rng.gen_bool(0.5)));
        }
        if rng.gen_bool(0.5) {
            traits.insert("address".into(), json!({"city": pick(&mut rng, &cities)}));
        }
        if rng.gen_bool(0.2) {
            traits.insert("plan".into(), Value::Null);
        } else if rng.gen_bool(0.5) {
            traits.insert("plan".into(), json!(pick(&mut rng, &["pro", "team"])));
        }
        if rng.gen_bool(0.6) {
            traits.insert("email".into(), json!(format!("{user}@x.io")));
        }
        if rng.gen_bool(0.4) {
            let chain = pick(&mut rng, &[1, 137]);
            traits.insert(
                "wallet".into(),
                json!(format!("eip155:{chain}:0x{:040x}", i + 1)),
            );
        }
        if rng.gen_bool(0.3) {
            traits.insert(
                "socials".into(),
                json!({ *pick(&mut rng, &["x", "github"]): format!("h{i}") }),
            );
        }
        msgs.push(json!({"type": "identify", "userId": user, "traits": traits, "timestamp": to_datetime(now - rng.gen_range(0..400) * DAY).to_rfc3339()}));
        for _ in 0..rng.gen_range(0..6) {
            let at = to_datetime(now - rng.gen_range(0..400 * DAY)).to_rfc3339();
            let ev = match rng.gen_range(0..4) {
                0 | 1 => {
                    json!({"type": "track", "userId": user, "event": "Order Completed", "timestamp": at,
                    "properties": {"revenue": rng.gen_range(1..20) as f64 * 50.0 + if rng.gen_bool(0.2) { 0.25 } else { 0.0 }, "currency": pick(&mut rng, &["EUR", "USD"])}})
                }
                2 => json!({"type": "page", "userId": user, "name": "Pricing", "timestamp": at}),
                _ => {
                    json!({"type": "track", "userId": user, "event": "Signed Up", "timestamp": at, "properties": {"revenue": "n/a"}})
                }
            };
            msgs.push(ev);
        }
    }
    // Second devices: some people's traits arrive on an anonymous profile later merged.
    for i in 0..people / 4 {
        let anon = format!("a{i}");
        msgs.push(json!({"type": "identify", "anonymousId": anon, "traits": {"title": pick(&mut rng, &titles), "plan": "team"},
            "timestamp": to_datetime(now - rng.gen_range(0..10) * DAY).to_rfc3339()}));
        msgs.push(
            json!({"type": "alias", "userId": format!("u{}", i * 3), "previousId": anon,
            "timestamp": to_datetime(now - DAY / 2).to_rfc3339()}),
        );
    }
    let batch = BatchContext {
        received_at: now,
        ..Default::default()
    };
    let mut n = 0;
    let mut messages: Vec<_> = msgs
        .iter()
        .map(|m| {
            n += 1;
            parse_message(m, "", None, &batch, || format!("m{seed}-{n}")).expect("valid message")
        })
        .collect();
    // SQLite fills `event_numbers` after the fact and reads the events past its position
    // from their JSON: seed 1 indexes half the events, seed 2 all, seed 3 none.
    let later = messages.split_off(if seed == 1 {
        messages.len() / 2
    } else {
        messages.len()
    });
    for (part, index) in [(messages, seed != 3), (later, false)] {
        if part.is_empty() {
            continue;
        }
        common::ingest(store, part).await;
        if index {
            rapport_app::segments::index_numbers_now(store)
                .await
                .expect("index numbers");
        }
    }
    let events = store.events_after(0, 100_000).await.expect("events");
    // Loyalty lots (available, pending, expired, some spent) on raw profiles, and tiers.
    let mut lots_seen = BTreeSet::new();
    for e in &events {
        if !lots_seen.insert(e.profile_id) || !rng.gen_bool(0.6) {
            continue;
        }
        let mut writes = Vec::new();
        for k in 0..rng.gen_range(1..4) {
            let amount = rng.gen_range(1..6) * 100;
            let earned_at = now - rng.gen_range(0..60) * DAY;
            let unlock_at = if rng.gen_bool(0.3) {
                now + rng.gen_range(1..5) * DAY
            } else {
                earned_at
            };
            let expires_at = match rng.gen_range(0..3) {
                0 => None,
                1 => Some(now - rng.gen_range(1..10) * DAY),
                _ => Some(now + rng.gen_range(1..60) * DAY),
            };
            writes.push(rapport_store::LedgerWrite {
                entry: rapport_store::EntryRow {
                    id: 0,
                    profile_id: e.profile_id,
                    kind: "earn".into(),
                    amount,
                    idempotency_key: format!("eq:{}:{k}", e.profile_id),
                    at: earned_at,
                    lot_id: None,
                    moves: vec![],
                    order: None,
                    reason: None,
                    source: "test".into(),
                    unrecovered: 0,
                },
                lot: Some(rapport_store::NewLot {
                    profile_id: e.profile_id,
                    kind: "earn".into(),
                    amount,
                    earned_at,
                    unlock_at,
                    expires_at,
                    order: None,
                    revenue: None,
                }),
                moves: vec![],
                reversed: vec![],
                redeem: None,
                events: vec![],
            });
        }
        store.write_entries(writes).await.expect("lots");
        if rng.gen_bool(0.4) {
            let person = store.profile(e.profile_id).await.expect("profile").id;
            let tier = pick(&mut rng, &["silver", "gold"]).to_string();
            store
                .set_tier(
                    rapport_store::TierRow {
                        profile_id: person,
                        state: rapport_domain::loyalty::TierState {
                            tier: Some(tier),
                            since: now,
                            below_since: None,
                        },
                        updated_at: now,
                    },
                    vec![],
                )
                .await
                .expect("tier");
        }
    }
    // Consents, texts and network scores for some.
    let mut analyses = Vec::new();
    let mut scores = Vec::new();
    let mut computed = Vec::new();
    let mut holdings = Vec::new();
    let mut seen = BTreeSet::new();
    for e in &events {
        let person = store.profile(e.profile_id).await.expect("profile").id;
        if seen.insert(person) {
            if rng.gen_bool(0.5) {
                for k in 0..rng.gen_range(1..3) {
                    let status = if rng.gen_bool(0.5) {
                        ConsentStatus::Granted
                    } else {
                        ConsentStatus::Denied
                    };
                    store
                        .set_consent(
                            person,
                            &ConsentInput {
                                channel: pick(&mut rng, &["email", "sms"]).to_string(),
                                purpose: "marketing".into(),
                                status,
                                source: "test".into(),
                                proof: None,
                                at: now - (k + 1) * DAY,
                                frequency: Default::default(),
                            },
                        )
                        .await
                        .expect("consent");
                }
            }
            // Tokens in some of their wallets (and in wallets nobody owns, below).
            let view = store.profile(person).await.expect("profile");
            for w in view
                .identities
                .iter()
                .filter(|i| i.kind.as_str() == "wallet")
            {
                for (symbol, contract) in [("LOYAL", CONTRACT_A), ("BADGE", CONTRACT_B)] {
                    if rng.gen_bool(0.6) {
                        holdings.push(holding(&mut rng, &w.value, symbol, contract, now));
                    }
                }
            }
            if rng.gen_bool(0.6) {
                computed.push(rapport_store::ScoreRow {
                    name: "s_a".into(),
                    profile_id: person,
                    value: rng.gen_range(-2..6) as f64,
                    explanation: json!({}),
                    computed_at: now,
                });
            }
            if rng.gen_bool(0.5) {
                scores.push(GraphScores {
                    profile_id: person,
                    pagerank: rng.gen_range(0..100) as f64 / 1000.0,
                    betweenness: 0.0,
                    community: rng.gen_range(0..3),
                    core: rng.gen_range(0..4),
                    reach1: rng.gen_range(0..10),
                    reach2: rng.gen_range(0..30),
                    evangelist: 0.0,
                    syndication: 0.0,
                    pagerank_pct: rng.gen_range(0..=4) as f64 / 4.0,
                    betweenness_pct: 0.0,
                });
            }
        }
        if rng.gen_bool(0.3) {
            let complaint = if rng.gen_bool(0.3) { 0.9 } else { 0.0 };
            analyses.push(TextAnalysisView {
                event_id: e.id,
                profile_id: e.profile_id,
                occurred_at: e.occurred_at,
                compound: rng.gen_range(-4..=4) as f64 / 4.0,
                label: "neutral".into(),
                language: "en".into(),
                intents: json!({"complaint": complaint, "churn_risk": 0.0}),
                entities: json!([]),
            });
        }
    }
    holdings.push(holding(
        &mut rng,
        "eip155:1:0x00000000000000000000000000000000000000Ff",
        "LOYAL",
        CONTRACT_A,
        now,
    ));
    store
        .apply_chain_batch(rapport_store::ChainBatch {
            chain_id: "eip155:1".into(),
            holdings,
            ..Default::default()
        })
        .await
        .expect("holdings");
    store
        .replace_scores(vec!["s_a".into()], computed)
        .await
        .expect("computed scores");
    store
        .save_text_analyses(analyses, ("test.cursor".into(), 0))
        .await
        .expect("texts");
    if !scores.is_empty() {
        store
            .save_graph_run(now, now, 0, json!({}), scores)
            .await
            .expect("scores");
    }
    // Another segment whose stored membership definitions may refer to.
    let s1 = store
        .create_segment("S1", "traits.plan exists", "", "dynamic", now)
        .await
        .expect("segment");
    let e = parse("traits.plan exists").expect("parse");
    let members = store
        .segment_all_matches(sql::compile(&e, store.dialect(), now))
        .await
        .expect("members");
    store
        .set_segment_members(s1.id, members, now)
        .await
        .expect("set members");
    now
}

const CONTRACT_A: &str = "0xAbC0000000000000000000000000000000000001";
const CONTRACT_B: &str = "0xAbC0000000000000000000000000000000000002";

fn holding(
    rng: &mut StdRng,
    wallet: &str,
    symbol: &str,
    contract: &str,
    now: i64,
) -> rapport_store::HoldingRow {
    let amount = rng.gen_range(-1..5) as f64 * 10.0;
    rapport_store::HoldingRow {
        chain_id: "eip155:1".into(),
        contract: contract.into(),
        wallet: wallet.into(),
        symbol: symbol.into(),
        standard: "erc20".into(),
        balance: amount.to_string(),
        amount,
        token_ids: vec![],
        held_since: (amount > 0.0).then(|| now - rng.gen_range(0..100) * DAY),
        from_brand: "0".into(),
        from_brand_amount: rng.gen_range(0..3) as f64 * 5.0,
        first_received_at: None,
        last_activity_at: None,
        updated_at: now,
    }
}

/// Conditions covering every construct, with random parameters.
fn condition() -> impl Strategy<Value = String> {
    let op = prop::sample::select(vec!["=", "!=", "<", "<=", ">", ">="]);
    let window = prop::sample::select(vec!["", ", 30d", ", 90d", ", 1y", ", 12h"]);
    let sel = prop::sample::select(vec![
        "track \"Order Completed\"",
        "track \"Signed Up\"",
        "page",
        "any",
        "track \"Order Completed\" where currency = \"EUR\"",
        "track \"Order Completed\" where revenue >= 500",
    ]);
    prop_oneof![
        prop::sample::select(vec![
            r#"traits.title ~ "mark""#,
            r#"traits.title ~ "MARK""#,
            r#"traits.title = "Engineer""#,
            r#"traits.title != "Engineer""#,
            r#"traits.title matches "^(Head|VP)""#,
            r#"traits.title in ["Engineer", "marketing"]"#,
            r#"traits.title > "M""#,
            r#"traits.age = "41""#,
            "traits.age = 41",
            r#"traits.age in [20, 33, "41", true]"#,
            r#"traits.age exists"#,
            "traits.vip = true",
            "traits.vip != false",
            r#"traits.address.city = "Paris""#,
            r#"traits.address.city in ["Berlin", "Lagos"]"#,
            "traits.plan exists",
            r#"traits.plan = "team""#,
            "traits.nickname exists",
            "has email",
            "has wallet",
            "has wallet on eip155:1",
            "has social on github",
            "has phone",
            "in segment \"S1\"",
            "consent(email, marketing) = granted",
            "consent(email, marketing) != denied",
            "consent(sms, marketing) = unknown",
            "complaints(90d) >= 1",
            "texts() > 1",
            r#"last(track "Order Completed".currency) = "EUR""#,
            r#"first(track "Order Completed".revenue, 1y) > 400"#,
            r#"last(any.revenue) exists"#,
        ])
        .prop_map(str::to_string),
        (op.clone(), 18..70i32).prop_map(|(o, n)| format!("traits.age {o} {n}")),
        (sel.clone(), window.clone(), op.clone(), 0..5i32)
            .prop_map(|(s, w, o, n)| format!("count({s}{w}) {o} {n}")),
        // Plain selectors read `event_numbers`; `any` and filtered ones read the JSON.
        (
            prop::sample::select(vec!["sum", "avg", "min", "max"]),
            prop::sample::select(vec![
                "track \"Order Completed\"",
                "track \"Signed Up\"",
                "any",
                "track \"Order Completed\".revenue where currency = \"EUR\"",
            ]),
            window.clone(),
            op.clone(),
            0..24i32
        )
            .prop_map(|(f, s, w, o, n)| {
                let s = if s.contains(".revenue") {
                    s.to_string()
                } else {
                    format!("{s}.revenue")
                };
                format!("{f}({s}{w}) {o} {}", n * 50)
            }),
        (
            prop::sample::select(vec!["days_since", "days_since_first"]),
            sel,
            op.clone(),
            0..400i32
        )
            .prop_map(|(f, s, o, n)| format!("{f}({s}) {o} {n}")),
        (op.clone(), -4..=4i32, window).prop_map(|(o, n, w)| format!(
            "sentiment({}) {o} {}",
            w.trim_start_matches(", "),
            n as f64 / 4.0 + 0.125
        )),
        (op.clone(), -2..6i32).prop_map(|(o, n)| format!("score.s_a {o} {n}")),
        (
            prop::sample::select(vec!["holds", "from_brand", "held_days"]),
            prop::sample::select(vec![
                "LOYAL",
                "BADGE",
                "0xabc0000000000000000000000000000000000001",
                "NONE"
            ]),
            op.clone(),
            -1..6i32
        )
            .prop_map(|(f, t, o, n)| format!("{f}(\"{t}\") {o} {}", n * 10)),
        (op.clone(), -1..2i32).prop_map(|(o, n)| format!("score.none {o} {n}")),
        (
            prop::sample::select(vec!["points", "pending", "expiring(30d)", "expiring(1y)"]),
            op.clone(),
            -1..12i32
        )
            .prop_map(|(f, o, n)| format!("loyalty.{f} {o} {}", n * 100)),
        (
            prop::sample::select(vec!["=", "!="]),
            prop::sample::select(vec!["gold", "silver", "bronze"])
        )
            .prop_map(|(o, t)| format!("loyalty.tier {o} \"{t}\"")),
        (
            prop::sample::select(vec!["pagerank_pct", "community", "core", "reach2"]),
            op,
            0..5i32
        )
            .prop_map(|(s, o, n)| format!("graph.{s} {o} {n}")),
    ]
}

fn definition() -> impl Strategy<Value = String> {
    condition().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4)
                .prop_map(|v| format!("({})", v.join(" and "))),
            prop::collection::vec(inner.clone(), 2..4)
                .prop_map(|v| format!("({})", v.join(" or "))),
            inner.prop_map(|x| format!("not {x}")),
        ]
    })
}

#[test]
fn sql_and_memory_agree_on_random_definitions_and_people() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for seed in 1..=3u64 {
        let setups = rt.block_on(async {
            let mut v = Vec::new();
            for (store, dir, pg) in stores().await {
                let now = populate(&store, seed).await;
                let mut people = Vec::new();
                let mut seen = BTreeSet::new();
                for e in store.events_after(0, 100_000).await.expect("events") {
                    let id = store.profile(e.profile_id).await.expect("profile").id;
                    if seen.insert(id) {
                        people.push(
                            rapport_app::segments::person(&store, id)
                                .await
                                .expect("person"),
                        );
                    }
                }
                v.push((store, dir, pg, now, seen, people));
            }
            v
        });
        for (store, _dir, _pg, now, ids, people) in &setups {
            assert!(
                people.len() >= 20,
                "[{}] {} people",
                store.kind(),
                people.len()
            );
            // The test must not pass by selecting nobody (or everybody) every time.
            let split = std::cell::Cell::new(0usize);
            let mut runner = TestRunner::new(Config {
                cases: 200,
                failure_persistence: None,
                ..Config::default()
            });
            runner
                .run(&definition(), |src| {
                    let e = parse(&src).map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
                    let by_sql: BTreeSet<i64> = rt
                        .block_on(store.segment_all_matches(sql::compile(
                            &e,
                            store.dialect(),
                            *now,
                        )))
                        .map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?
                        .into_iter()
                        .collect();
                    let by_memory: BTreeSet<i64> = ids
                        .iter()
                        .zip(people)
                        .filter(|(_, p)| eval::eval(&e, p, *now))
                        .map(|(id, _)| *id)
                        .collect();
                    // The real-time engine's form: selectors slotted, events indexed.
                    let mut slotted = e.clone();
                    let mut table = Vec::new();
                    rapport_segment::assign_slots(&mut slotted, &mut table);
                    let by_index: BTreeSet<i64> = ids
                        .iter()
                        .zip(people)
                        .filter(|(_, p)| {
                            let mut p = (*p).clone();
                            p.index = Some(eval::EventIndex::build(&table, &p.events));
                            eval::eval(&slotted, &p, *now)
                        })
                        .map(|(id, _)| *id)
                        .collect();
                    prop_assert_eq!(&by_index, &by_memory, "indexed: {}", src);
                    if !by_sql.is_empty() && by_sql.len() < ids.len() {
                        split.set(split.get() + 1);
                    }
                    prop_assert_eq!(
                        &by_sql,
                        &by_memory,
                        "[{}] seed {}: {}",
                        store.kind(),
                        seed,
                        src
                    );
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                split.get() >= 60,
                "[{}] only {} of 200 definitions split the people",
                store.kind(),
                split.get()
            );
        }
        rt.block_on(async {
            for (_, _, pg, ..) in setups {
                common::drop_pg(pg).await;
            }
        });
    }
}
