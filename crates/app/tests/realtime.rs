//! The real-time engine keeps people's state in memory between steps: these check it
//! notices what changes that state — new events, a merge, a trait edited outside the
//! event stream, redefined segments — on SQLite and, when configured, PostgreSQL.

mod common;

use common::stores;
use rapport_app::changes::{announce, Change};
use rapport_app::realtime::Engine;
use rapport_domain::message::{parse_message, BatchContext};
use rapport_domain::time::now_millis;
use rapport_store::{DynStore, PersonReads, ScoreRow};
use serde_json::{json, Value};

async fn send(store: &DynStore, msgs: Vec<Value>) {
    let batch = BatchContext {
        received_at: now_millis(),
        ..Default::default()
    };
    let parsed = msgs
        .iter()
        .map(|m| parse_message(m, "", None, &batch, uuid_like).expect("valid message"))
        .collect();
    common::ingest(store, parsed).await;
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("rt-{}-{}", now_millis(), N.fetch_add(1, Ordering::Relaxed))
}

async fn members(store: &DynStore, name: &str) -> Vec<i64> {
    let s = store
        .segment_by_name(name)
        .await
        .expect("segment")
        .expect("exists");
    store
        .segment_member_ids(s.id, 0, 1_000)
        .await
        .expect("members")
}

/// Saves a dynamic segment.
async fn define(store: &DynStore, name: &str, definition: &str) {
    rapport_app::segments::create(store, name, definition, "")
        .await
        .expect("segment");
}

/// The person known by this e-mail address.
async fn by_email(store: &DynStore, email: &str) -> i64 {
    let key = rapport_domain::identifier::IdentityKey::parse(
        rapport_domain::identifier::IdentityKind::Email,
        email,
    )
    .expect("key");
    store.lookup(&key).await.expect("lookup").expect("known")
}

/// Lets the engine do what it does while idle until nothing is left; how many people it
/// read.
async fn idle(engine: &mut Engine, store: &DynStore) -> usize {
    let mut read = 0;
    while let Some(n) = engine.warm(store, 10).await.expect("warm") {
        read += n;
    }
    read
}

/// Ingests `msgs` and lets the engine decide until it is caught up.
async fn feed(engine: &mut Engine, store: &DynStore, msgs: Vec<Value>) {
    send(store, msgs).await;
    while engine.step(store, 1_000).await.expect("step").events > 0 {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_keeps_its_people_current() {
    for (store, _dir, pg) in stores().await {
        let kind = store.kind();
        define(
            &store,
            "Pro buyers",
            "traits.plan = \"pro\" and count(track \"Order Completed\") >= 2",
        )
        .await;
        let mut engine = Engine::default();
        feed(&mut engine, &store, vec![
            json!({"type": "identify", "userId": "ada", "traits": {"plan": "pro", "email": "ada@example.com"}}),
            json!({"type": "track", "userId": "ada", "event": "Order Completed"}),
        ]).await;
        assert!(
            members(&store, "Pro buyers").await.is_empty(),
            "[{kind}] one order is not two"
        );
        assert_eq!(engine.cached(), 1, "[{kind}] ada is held in memory");

        // A new event is added to the state held in memory.
        feed(
            &mut engine,
            &store,
            vec![json!({"type": "track", "userId": "ada", "event": "Order Completed"})],
        )
        .await;
        let ada = by_email(&store, "ada@example.com").await;
        assert_eq!(
            members(&store, "Pro buyers").await,
            vec![ada],
            "[{kind}] two orders"
        );

        // A trait edited outside the event stream: the engine reloads after `touched`.
        store
            .patch_traits(ada, &json!({"plan": "free"}), now_millis())
            .await
            .expect("patch");
        announce(&store, Change::Standing).await.expect("touched");
        feed(
            &mut engine,
            &store,
            vec![json!({"type": "page", "userId": "ada", "name": "Home"})],
        )
        .await;
        // A page view is not a selector of the segment, but the reload re-evaluates all.
        assert!(
            members(&store, "Pro buyers").await.is_empty(),
            "[{kind}] no longer pro"
        );

        // An identify changing a trait: no selector of the segment matches it, but the
        // engine re-reads the profile and redoes the segments reading traits.
        feed(
            &mut engine,
            &store,
            vec![json!({"type": "identify", "userId": "ada", "traits": {"plan": "pro"}})],
        )
        .await;
        assert_eq!(
            members(&store, "Pro buyers").await,
            vec![ada],
            "[{kind}] pro again"
        );
        // An identify bringing a wallet: the state is reloaded with the new identity.
        define(&store, "Wallet people", "has wallet on eip155:1").await;
        feed(
            &mut engine,
            &store,
            vec![json!({"type": "page", "userId": "ada", "name": "Home"})],
        )
        .await;
        assert!(
            members(&store, "Wallet people").await.is_empty(),
            "[{kind}] no wallet yet"
        );
        feed(
            &mut engine,
            &store,
            vec![json!({"type": "identify", "userId": "ada",
                "traits": {"wallets": ["0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"]}})],
        )
        .await;
        assert_eq!(
            members(&store, "Wallet people").await,
            vec![ada],
            "[{kind}] the new wallet is seen"
        );
        feed(
            &mut engine,
            &store,
            vec![json!({"type": "identify", "userId": "ada", "traits": {"plan": "free"}})],
        )
        .await;
        assert!(
            members(&store, "Pro buyers").await.is_empty(),
            "[{kind}] free again"
        );

        // A merge: an anonymous visitor's two orders join Grace when she identifies.
        feed(
            &mut engine,
            &store,
            vec![
                json!({"type": "track", "anonymousId": "dev-1", "event": "Order Completed"}),
                json!({"type": "track", "anonymousId": "dev-1", "event": "Order Completed"}),
                json!({"type": "identify", "userId": "grace", "traits": {"plan": "pro"}}),
            ],
        )
        .await;
        feed(
            &mut engine,
            &store,
            vec![json!({"type": "identify", "userId": "grace", "anonymousId": "dev-1"})],
        )
        .await;
        assert_eq!(
            members(&store, "Pro buyers").await.len(),
            1,
            "[{kind}] grace, with the visitor's orders"
        );

        // Redefining the segment is picked up at the next step.
        let seg = store
            .segment_by_name("Pro buyers")
            .await
            .expect("s")
            .expect("s");
        rapport_app::segments::update(
            &store,
            seg.id,
            Some("count(track \"Order Completed\") >= 1"),
            None,
        )
        .await
        .expect("update");
        feed(
            &mut engine,
            &store,
            vec![json!({"type": "track", "userId": "ada", "event": "Order Completed"})],
        )
        .await;
        assert_eq!(
            members(&store, "Pro buyers").await.len(),
            2,
            "[{kind}] both now"
        );
        // Sizes are kept from entries and exits, not recounted: they must still agree.
        let sizes = store.segment_sizes(seg.id, 0).await.expect("sizes");
        assert_eq!(
            sizes.last().map(|s| s.size),
            Some(members(&store, "Pro buyers").await.len() as i64),
            "[{kind}] {sizes:?}"
        );
        // Each entry is on the person's timeline, named and with the segment's id.
        let entered: Vec<_> = store
            .events_after(0, 100_000)
            .await
            .expect("events")
            .into_iter()
            .filter(|e| e.name.as_deref() == Some("Segment Entered"))
            .filter(|e| e.properties["segment"] == "Pro buyers")
            .collect();
        assert!(!entered.is_empty(), "[{kind}] entries on the timeline");
        for e in &entered {
            assert_eq!(e.source, "segments", "[{kind}]");
            assert_eq!(
                e.properties["segment_id"],
                json!(seg.id.to_string()),
                "[{kind}] {e:?}"
            );
        }
        common::drop_pg(pg).await;
    }
}

/// A held state past the engine's TTL is checked against the profile at the person's
/// next event: a trait changed by a write that did not call `touched` is seen, without
/// reading the person's history again; within the TTL the held state is used as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_past_its_ttl_is_checked_against_the_profile() {
    for (store, _dir, pg) in stores().await {
        let kind = store.kind();
        define(
            &store,
            "Pro visitors",
            "traits.plan = \"pro\" and count(page) >= 1",
        )
        .await;
        let mut engine = Engine::default();
        feed(&mut engine, &store, vec![
            json!({"type": "identify", "userId": "lin", "traits": {"plan": "pro", "email": "lin@example.com"}}),
            json!({"type": "page", "userId": "lin", "name": "Home"}),
        ]).await;
        let lin = members(&store, "Pro visitors").await;
        assert_eq!(lin.len(), 1, "[{kind}] lin is a pro visitor");
        let lin = lin[0];

        // Written without `touched`, as by a path that forgot it.
        store
            .patch_traits(lin, &json!({"plan": "free"}), now_millis())
            .await
            .expect("patch");
        let order = || json!({"type": "track", "userId": "lin", "event": "Order Completed"});
        send(&store, vec![order()]).await;
        let r = engine.step(&store, 1_000).await.expect("step");
        assert_eq!(
            (r.loads, r.checks),
            (0, 0),
            "[{kind}] within the TTL: held as it is"
        );
        while engine.step(&store, 1_000).await.expect("step").events > 0 {}

        engine.set_ttl(std::time::Duration::ZERO);
        send(&store, vec![order()]).await;
        let r = engine.step(&store, 1_000).await.expect("step");
        assert_eq!(r.loads, 0, "[{kind}] no reload of the history");
        // Its `Segment Exited`, decided in the same step, is checked again too: zero TTL.
        assert!(r.checks >= 1, "[{kind}] the profile re-read");
        while engine.step(&store, 1_000).await.expect("step").events > 0 {}
        assert!(
            members(&store, "Pro visitors").await.is_empty(),
            "[{kind}] the changed plan is seen"
        );
        let person = rapport_app::segments::person(&store, lin)
            .await
            .expect("person");
        assert_eq!(
            person
                .events
                .iter()
                .filter(|e| e.name.as_deref() == Some("Order Completed"))
                .count(),
            2,
            "[{kind}] both orders in the history"
        );
        common::drop_pg(pg).await;
    }
}

/// After a restart the engine reads ahead the most recently active people while no events
/// wait, up to nine tenths of its capacity: their next event is decided without a load,
/// and as a load would decide it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_latest_people_are_read_ahead() {
    for (store, _dir, pg) in stores().await {
        let kind = store.kind();
        define(&store, "Buyers", "count(track \"Order Completed\") >= 2").await;
        let mut engine = Engine::default();
        let order = |i: usize| json!({"type": "track", "userId": format!("w{i}"), "event": "Order Completed"});
        let mut history = Vec::new();
        for i in 0..30 {
            history.push(json!({"type": "identify", "userId": format!("w{i}"), "traits": {"email": format!("w{i}@example.com")}}));
            history.push(order(i));
        }
        feed(&mut engine, &store, history).await;
        assert!(
            members(&store, "Buyers").await.is_empty(),
            "[{kind}] one order each"
        );

        // A restart with room for 20 people: 18 are read ahead, the 18 latest (w12–w29).
        let mut engine = Engine::new(20);
        let mut calls = 0;
        while let Some(n) = engine.warm(&store, 5).await.expect("warm") {
            assert!(n <= 5, "[{kind}] at most five a call");
            calls += 1;
            assert!(calls < 50, "[{kind}] warming ends");
        }
        assert_eq!(engine.cached(), 18, "[{kind}] nine tenths of the capacity");
        assert_eq!(
            engine.warm(&store, 5).await.expect("warm"),
            None,
            "[{kind}] stays done"
        );

        send(&store, vec![order(29), order(12)]).await;
        let r = engine.step(&store, 1_000).await.expect("step");
        assert_eq!((r.events, r.loads), (2, 0), "[{kind}] both were held");
        while engine.step(&store, 1_000).await.expect("step").events > 0 {}
        let (w12, w29) = (
            by_email(&store, "w12@example.com").await,
            by_email(&store, "w29@example.com").await,
        );
        let mut want = vec![w12, w29];
        want.sort_unstable();
        assert_eq!(
            members(&store, "Buyers").await,
            want,
            "[{kind}] decided as after a load"
        );

        send(&store, vec![order(11)]).await;
        let r = engine.step(&store, 1_000).await.expect("step");
        assert_eq!(r.loads, 1, "[{kind}] w11 was not read ahead");
        common::drop_pg(pg).await;
    }
}

/// What `touched` and `scores_changed` mark is re-read while the engine is idle, so the
/// person's next event is decided with neither a load nor a check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_idle_the_engine_rereads_what_was_marked() {
    for (store, _dir, pg) in stores().await {
        let kind = store.kind();
        define(
            &store,
            "Loyal visitors",
            "score.loyalty >= 50 and count(page) >= 1",
        )
        .await;
        let mut engine = Engine::default();
        let page = || json!({"type": "page", "userId": "ida", "name": "Home"});
        feed(
            &mut engine,
            &store,
            vec![
                json!({"type": "identify", "userId": "ida", "traits": {"email": "ida@example.com"}}),
                page(),
            ],
        )
        .await;
        let ida = by_email(&store, "ida@example.com").await;
        let loyalty = |value: f64| ScoreRow {
            name: "loyalty".into(),
            profile_id: ida,
            value,
            explanation: json!({}),
            computed_at: now_millis(),
        };
        assert_eq!(
            idle(&mut engine, &store).await,
            0,
            "[{kind}] nothing to re-read"
        );

        for (value, mark, inside) in [(80.0, "scores", true), (20.0, "touched", false)] {
            store
                .replace_scores(vec!["loyalty".into()], vec![loyalty(value)])
                .await
                .expect("scores");
            if mark == "scores" {
                announce(&store, Change::Scores)
                    .await
                    .expect("scores changed");
            } else {
                announce(&store, Change::Standing).await.expect("touched");
            }
            assert_eq!(
                idle(&mut engine, &store).await,
                1,
                "[{kind}] {mark}: ida re-read while idle"
            );
            send(&store, vec![page()]).await;
            let r = engine.step(&store, 1_000).await.expect("step");
            assert_eq!(
                (r.loads, r.checks),
                (0, 0),
                "[{kind}] {mark}: nothing left to read"
            );
            while engine.step(&store, 1_000).await.expect("step").events > 0 {}
            let want = if inside { vec![ida] } else { vec![] };
            assert_eq!(
                members(&store, "Loyal visitors").await,
                want,
                "[{kind}] {mark}: the score {value} is seen"
            );
        }
        common::drop_pg(pg).await;
    }
}

/// After `touched` (a score run, a batch refresh, an edit outside the event stream) a held
/// state has its standing re-read at the person's next event — profile, memberships,
/// scores — without its history; a merge found there, or `reset`, reads the person whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_touched_a_held_state_has_its_standing_reread() {
    for (store, _dir, pg) in stores().await {
        let kind = store.kind();
        define(
            &store,
            "Loyal visitors",
            "score.loyalty >= 50 and count(page) >= 1",
        )
        .await;
        define(&store, "Buyers", "count(track \"Order Completed\") >= 1").await;
        let mut engine = Engine::default();
        feed(
            &mut engine,
            &store,
            vec![
                json!({"type": "identify", "userId": "mo", "traits": {"email": "mo@example.com"}}),
                json!({"type": "page", "userId": "mo", "name": "Home"}),
                json!({"type": "track", "userId": "mo", "event": "Order Completed"}),
                json!({"type": "identify", "userId": "jo", "traits": {"email": "jo@example.com"}}),
            ],
        )
        .await;
        let buyers = members(&store, "Buyers").await;
        assert_eq!(buyers.len(), 1, "[{kind}] mo bought");
        let mo = buyers[0];
        assert!(
            members(&store, "Loyal visitors").await.is_empty(),
            "[{kind}] no score yet"
        );

        // A score run gives mo a loyalty score, and a batch refresh that disagrees takes
        // him out of Buyers in the store.
        store
            .replace_scores(
                vec!["loyalty".into()],
                vec![ScoreRow {
                    name: "loyalty".into(),
                    profile_id: mo,
                    value: 80.0,
                    explanation: json!({}),
                    computed_at: now_millis(),
                }],
            )
            .await
            .expect("scores");
        let buyers_id = store
            .segment_by_name("Buyers")
            .await
            .expect("s")
            .expect("s")
            .id;
        store
            .set_segment_members(buyers_id, vec![], now_millis())
            .await
            .expect("members");
        announce(&store, Change::Standing).await.expect("touched");
        let page = |u: &str| json!({"type": "page", "userId": u, "name": "Pricing"});
        send(&store, vec![page("mo")]).await;
        let r = engine.step(&store, 1_000).await.expect("step");
        assert_eq!(r.loads, 0, "[{kind}] no reload of the history");
        assert!(r.checks >= 1, "[{kind}] the standing re-read");
        while engine.step(&store, 1_000).await.expect("step").events > 0 {}
        assert_eq!(
            members(&store, "Loyal visitors").await,
            vec![mo],
            "[{kind}] the new score is seen at the next event"
        );
        // The store's membership was adopted, and everything re-decided against the
        // history held: mo's order puts him back.
        assert_eq!(
            members(&store, "Buyers").await,
            vec![mo],
            "[{kind}] re-entered"
        );
        let entries = store
            .events_after(0, 100_000)
            .await
            .expect("events")
            .into_iter()
            .filter(|e| e.name.as_deref() == Some("Segment Entered"))
            .filter(|e| e.properties["segment"] == "Buyers")
            .count();
        assert_eq!(entries, 2, "[{kind}] entered, taken out, entered again");

        // A score run alone: only the scores are re-read, and the segment reading one
        // is redone.
        store
            .replace_scores(
                vec!["loyalty".into()],
                vec![ScoreRow {
                    name: "loyalty".into(),
                    profile_id: mo,
                    value: 20.0,
                    explanation: json!({}),
                    computed_at: now_millis(),
                }],
            )
            .await
            .expect("scores");
        announce(&store, Change::Scores)
            .await
            .expect("scores changed");
        send(&store, vec![page("mo")]).await;
        let r = engine.step(&store, 1_000).await.expect("step");
        assert_eq!((r.loads, r.checks), (0, 1), "[{kind}] the scores re-read");
        while engine.step(&store, 1_000).await.expect("step").events > 0 {}
        assert!(
            members(&store, "Loyal visitors").await.is_empty(),
            "[{kind}] the lower score is seen"
        );

        // A merge made outside the event stream: read whole.
        let jo = by_email(&store, "jo@example.com").await;
        store
            .merge(mo, jo, "staff", now_millis())
            .await
            .expect("merge");
        announce(&store, Change::Standing).await.expect("touched");
        send(&store, vec![page("mo")]).await;
        let r = engine.step(&store, 1_000).await.expect("step");
        assert!(r.loads >= 1, "[{kind}] merged: read whole ({r:?})");
        while engine.step(&store, 1_000).await.expect("step").events > 0 {}

        // Within the TTL and untouched, the state is used as it is; after `reset`, read
        // whole.
        send(&store, vec![page("mo")]).await;
        let r = engine.step(&store, 1_000).await.expect("step");
        assert_eq!((r.loads, r.checks), (0, 0), "[{kind}] held as it is");
        while engine.step(&store, 1_000).await.expect("step").events > 0 {}
        announce(&store, Change::Retracted).await.expect("reset");
        send(&store, vec![page("mo")]).await;
        let r = engine.step(&store, 1_000).await.expect("step");
        assert_eq!(r.loads, 1, "[{kind}] reset: read whole");
        common::drop_pg(pg).await;
    }
}

/// The engine's own membership events are loaded with a person only when some
/// definition reads them: one that counts `Segment Entered` sees them after a cold load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_events_are_loaded_when_a_definition_reads_them() {
    for (store, _dir, pg) in stores().await {
        let kind = store.kind();
        for (name, def) in [
            ("Pagers", "count(page) >= 1"),
            ("Buyers", "count(track \"Order Completed\") >= 1"),
            ("Joiners", "count(track \"Segment Entered\") >= 2"),
        ] {
            define(&store, name, def).await;
        }
        let mut engine = Engine::default();
        feed(&mut engine, &store, vec![
            json!({"type": "identify", "userId": "kim", "traits": {"email": "kim@example.com"}}),
            json!({"type": "page", "userId": "kim", "name": "Home"}),
        ]).await;
        assert!(
            members(&store, "Joiners").await.is_empty(),
            "[{kind}] one entry"
        );
        feed(
            &mut engine,
            &store,
            vec![json!({"type": "track", "userId": "kim", "event": "Order Completed"})],
        )
        .await;
        // A membership event is not decided again by segments: the next event is. After
        // a restart, so both entries must be read from the store.
        engine.release();
        feed(
            &mut engine,
            &store,
            vec![json!({"type": "page", "userId": "kim", "name": "Pricing"})],
        )
        .await;
        assert_eq!(
            members(&store, "Joiners").await.len(),
            1,
            "[{kind}] two entries"
        );
        common::drop_pg(pg).await;
    }
}

/// Loading several people at once (as the engine does for a step's people) gives each
/// what reading them one by one gives: their history (with a merged visitor's events),
/// memberships, firings; the same person asked twice comes once, an unknown id not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_people_load_as_each_alone() {
    for (store, _dir, pg) in stores().await {
        let kind = store.kind();
        define(&store, "Buyers", "count(track \"Order Completed\") >= 1").await;
        rapport_app::rules::set_rules(
            &store,
            &json!({"rules": [{"name": "Thanks", "when": "track \"Order Completed\"",
                "then": [{"action": "add_tag", "tag": "buyer"}], "cap": {"max": 1, "per_hours": 24}}]}),
        )
        .await
        .expect("rules");
        let mut engine = Engine::default();
        feed(&mut engine, &store, vec![
            json!({"type": "track", "anonymousId": "v-1", "event": "Order Completed", "properties": {"revenue": 5}}),
            json!({"type": "identify", "userId": "ann", "anonymousId": "v-1", "traits": {"email": "ann@example.com"}}),
            json!({"type": "page", "userId": "ann", "name": "Home"}),
            json!({"type": "identify", "userId": "ben", "traits": {"email": "ben@example.com"}}),
            json!({"type": "track", "userId": "ben", "event": "Order Completed", "properties": {"revenue": 7}}),
            json!({"type": "identify", "userId": "cy", "traits": {"email": "cy@example.com"}}),
        ]).await;
        let id = |e: &'static str| by_email(&store, e);
        let (ann, ben, cy) = (
            id("ann@example.com").await,
            id("ben@example.com").await,
            id("cy@example.com").await,
        );
        let loads = store
            .person_loads(
                vec![ann, ben, cy, ann, 987_654_321],
                PersonReads::Whole {
                    firings_since: 0,
                    membership_events: true,
                },
            )
            .await
            .expect("loads");
        let got: Vec<i64> = loads.iter().map(|l| l.view.id).collect();
        assert_eq!(got, vec![ann, ben, cy], "[{kind}] one each, in order");
        for l in &loads {
            let p = l.view.id;
            let (events, texts) = store.person_activity(p).await.expect("activity");
            let ids = |v: &[rapport_domain::model::EventView]| -> Vec<(i64, String)> {
                v.iter().map(|e| (e.id, e.properties.to_string())).collect()
            };
            assert_eq!(ids(&l.events), ids(&events), "[{kind}] {p}'s events");
            assert_eq!(l.texts, texts, "[{kind}] {p}'s texts");
            assert_eq!(
                l.segments,
                store.profile_segments(p).await.expect("s"),
                "[{kind}] {p}"
            );
            assert_eq!(
                l.scores,
                store.profile_scores(p).await.expect("s"),
                "[{kind}] {p}"
            );
            let mut a = l.firings.clone();
            let mut b = store.firing_times(p, 0).await.expect("f");
            a.sort();
            b.sort();
            assert_eq!(a, b, "[{kind}] {p}'s firings");
            assert_eq!(
                l.view.member_ids,
                store.profile(p).await.expect("p").member_ids,
                "[{kind}]"
            );
        }
        // Ann's history holds the visitor's order; both buyers are in the segment and
        // the rule fired for each.
        assert_eq!(
            loads[0]
                .events
                .iter()
                .filter(|e| e.name.as_deref() == Some("Order Completed"))
                .count(),
            1,
            "[{kind}]"
        );
        assert!(
            loads[0].segments.contains(&"Buyers".to_string()),
            "[{kind}]"
        );
        assert_eq!(loads[1].firings.len(), 1, "[{kind}] ben's firing");
        assert!(
            loads[2].segments.is_empty() && loads[2].firings.is_empty(),
            "[{kind}] cy"
        );
        // Firings before the time asked are left out.
        let later = store
            .person_loads(
                vec![ben],
                PersonReads::Whole {
                    firings_since: now_millis() + 60_000,
                    membership_events: true,
                },
            )
            .await
            .expect("loads");
        assert!(later[0].firings.is_empty(), "[{kind}]");
        common::drop_pg(pg).await;
    }
}

/// The `Segment Entered` events a step writes are decided in that step: a rule on them
/// fires once, with the event's id; each joins the person's history once; and the
/// engine's position passes them, so neither it nor a restarted engine decides them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engines_own_membership_events_are_decided_once() {
    for (store, _dir, pg) in stores().await {
        let kind = store.kind();
        for (name, def) in [
            ("Buyers", "count(track \"Order Completed\") >= 1"),
            // Judged again on each page view (a membership event is not itself judged).
            (
                "Entered one",
                "count(track \"Segment Entered\" where segment = \"Buyers\") >= 1 and count(page) >= 1",
            ),
            (
                "Entered two",
                "count(track \"Segment Entered\" where segment = \"Buyers\") >= 2 and count(page) >= 1",
            ),
        ] {
            define(&store, name, def).await;
        }
        rapport_app::rules::set_rules(
            &store,
            &json!({"rules": [{"name": "Welcome buyer",
                "when": "track \"Segment Entered\" where segment = \"Buyers\"",
                "then": [{"action": "add_tag", "tag": "buyer"}]}]}),
        )
        .await
        .expect("rules");
        let mut engine = Engine::default();
        feed(
            &mut engine,
            &store,
            vec![
                json!({"type": "identify", "userId": "bo", "traits": {"email": "bo@example.com"}}),
                json!({"type": "track", "userId": "bo", "event": "Order Completed"}),
            ],
        )
        .await;
        let entered: Vec<_> = store
            .events_after(0, 100_000)
            .await
            .expect("events")
            .into_iter()
            .filter(|e| e.properties["segment"] == "Buyers")
            .collect();
        assert_eq!(entered.len(), 1, "[{kind}] {entered:?}");
        let firings = store
            .firings(Some("Welcome buyer".into()), 10)
            .await
            .expect("firings");
        assert_eq!(firings.len(), 1, "[{kind}] {firings:?}");
        assert_eq!(firings[0].event_id, entered[0].id, "[{kind}]");
        // The position is past everything, the engine's own events included.
        let newest = store
            .events_after(0, 100_000)
            .await
            .expect("events")
            .last()
            .map(|e| e.id);
        let position = store
            .counters(vec![rapport_app::segments::SEGMENT_CURSOR.to_string()])
            .await
            .expect("counters");
        assert_eq!(Some(position[0]), newest, "[{kind}]");
        // The entry is in bo's history once: one more event counts one entry.
        feed(
            &mut engine,
            &store,
            vec![json!({"type": "page", "userId": "bo", "name": "Home"})],
        )
        .await;
        assert_eq!(members(&store, "Entered one").await.len(), 1, "[{kind}]");
        assert!(
            members(&store, "Entered two").await.is_empty(),
            "[{kind}] one entry counted once"
        );
        // Deciding bo's entry into "Entered one" decided nothing: the position move past
        // it waits (for the next commit, or the next empty read), so ending the burst
        // cost no commit...
        let cursor = || async {
            store
                .counters(vec![rapport_app::segments::SEGMENT_CURSOR.to_string()])
                .await
                .expect("counters")[0]
        };
        let newest_id = || async {
            store
                .events_after(0, 100_000)
                .await
                .expect("events")
                .last()
                .map_or(0, |e| e.id)
        };
        let newest = newest_id().await;
        assert!(cursor().await < newest, "[{kind}] the position move waits");
        // ...and the next empty read (a quiet engine's next poll) writes it.
        let idle = engine.step(&store, 1_000).await.expect("step");
        assert_eq!(idle.events, 0, "[{kind}]");
        assert_eq!(cursor().await, newest, "[{kind}]");
        // The same wait, ended by a shutdown's flush.
        for m in [
            json!({"type": "track", "userId": "cy", "event": "Order Completed"}),
            json!({"type": "page", "userId": "cy", "name": "Home"}),
        ] {
            feed(&mut engine, &store, vec![m]).await;
        }
        let newest = newest_id().await;
        assert!(cursor().await < newest, "[{kind}] the position move waits");
        engine.flush(&store).await.expect("flush");
        assert_eq!(cursor().await, newest, "[{kind}]");
        // A restarted engine finds nothing left to decide.
        let mut fresh = Engine::default();
        assert_eq!(
            fresh.step(&store, 1_000).await.expect("step").events,
            0,
            "[{kind}]"
        );
        let firings = store
            .firings(Some("Welcome buyer".into()), 10)
            .await
            .expect("firings");
        assert_eq!(firings.len(), 2, "[{kind}] bo and cy: {firings:?}");
        common::drop_pg(pg).await;
    }
}

/// Membership events read back exactly as the commit that wrote them reports them — by
/// the log, the person's timeline and a name filter — on both stores (PostgreSQL keeps
/// them as narrow rows shown through the view `events`); a retried commit writes none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_events_read_back_as_written() {
    use rapport_store::{MembershipChange, StepWrites, TimelineFilter};
    for (store, _dir, pg) in stores().await {
        let kind = store.kind();
        send(
            &store,
            vec![json!({"type": "track", "userId": "di", "event": "Order Completed", "properties": {"revenue": 5}})],
        )
        .await;
        let person = store.events_after(0, 10).await.expect("events")[0].profile_id;
        let id = rapport_app::segments::create(&store, "Readers", "count(page) >= 1", "")
            .await
            .expect("segment")
            .id;
        let change = |entered: bool| StepWrites {
            memberships: vec![(
                id,
                MembershipChange {
                    entered: if entered { vec![person] } else { vec![] },
                    exited: if entered { vec![] } else { vec![person] },
                },
            )],
            ..Default::default()
        };
        let at = now_millis();
        let mut written = Vec::new();
        for entered in [true, false] {
            let done = store
                .commit_step(change(entered), at)
                .await
                .expect("commit");
            assert_eq!(done.events.len(), 1, "[{kind}]");
            written.extend(done.events);
            // The same change again (a retried step) is nothing.
            let again = store
                .commit_step(change(entered), at)
                .await
                .expect("commit");
            assert!(again.events.is_empty(), "[{kind}] {:?}", again.events);
        }
        let json = |v: &[rapport_domain::model::EventView]| serde_json::to_value(v).expect("json");
        let logged: Vec<_> = store
            .events_after(0, 100)
            .await
            .expect("events")
            .into_iter()
            .filter(|e| e.source == "segments")
            .collect();
        assert_eq!(json(&logged), json(&written), "[{kind}] the log");
        assert_eq!(
            written[0].message_id,
            format!("segment:{at}:{id}:{person}:1")
        );
        assert_eq!(written[1].name.as_deref(), Some("Segment Exited"));
        assert_eq!(
            written[1].properties,
            json!({"segment": "Readers", "segment_id": id.to_string()})
        );
        let filter = TimelineFilter {
            names: vec!["Segment Exited".into()],
            limit: 10,
            ..Default::default()
        };
        let page = store.timeline(person, &filter).await.expect("timeline");
        assert_eq!(
            json(&page.items),
            json(&written[1..]),
            "[{kind}] the timeline"
        );
        // The order is not among them; a name no membership event has finds only it.
        let filter = TimelineFilter {
            names: vec!["Order Completed".into()],
            limit: 10,
            ..Default::default()
        };
        let page = store.timeline(person, &filter).await.expect("timeline");
        assert_eq!(page.items.len(), 1, "[{kind}]");
        assert_eq!(page.items[0].source, "test", "[{kind}] {:?}", page.items[0]);
        common::drop_pg(pg).await;
    }
}

/// On PostgreSQL a step that writes timeline events takes ingestion's writer lock first,
/// so event ids commit in id order: a follower reading past its position never passes an
/// event whose transaction is still open (which, committing later with a smaller id,
/// would never be decided). Held from outside, the lock holds the step's commit back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_step_waits_for_events_in_flight() {
    for (store, _dir, pg) in stores().await {
        let Some((url, schema)) = pg else {
            continue;
        };
        define(&store, "Buyers", "count(track \"Order Completed\") >= 1").await;
        let mut engine = Engine::default();
        feed(
            &mut engine,
            &store,
            vec![json!({"type": "identify", "userId": "ada"})],
        )
        .await;
        send(
            &store,
            vec![json!({"type": "track", "userId": "ada", "event": "Order Completed"})],
        )
        .await;
        // Another writer's transaction, open, holding the lock.
        let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        let tx = client.transaction().await.expect("begin");
        tx.batch_execute(&format!(
            "SET LOCAL search_path = {schema}; SELECT pg_advisory_xact_lock(hashtext(current_schema()))"
        ))
        .await
        .expect("lock");
        let step = {
            let store = store.clone();
            tokio::spawn(async move {
                let r = engine.step(&store, 1_000).await.expect("step");
                (r.membership_changes, engine)
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(
            !step.is_finished(),
            "the step's commit waits for the writer in flight"
        );
        tx.commit().await.expect("commit");
        let (changes, _) = tokio::time::timeout(std::time::Duration::from_secs(10), step)
            .await
            .expect("the step ends once the lock is free")
            .expect("step task");
        assert_eq!(changes, 1, "ada entered");
        assert_eq!(members(&store, "Buyers").await.len(), 1);
        let _ = rapport_store::postgres::PgStore::drop_schema(&url, &schema).await;
    }
}
