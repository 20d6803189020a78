//! The store conformance suite: one story through every capability trait, run on each
//! store under test (SQLite always; PostgreSQL with `RAPPORT_TEST_DATABASE_URL`). A new
//! backend, or a new capability's two implementations, must tell this story the same way.

use rapport_domain::apikey::Scope;
use rapport_domain::message::{parse_message, BatchContext, Message};
use rapport_domain::model::ConsentStatus;
use rapport_domain::relationship::RelationshipWrite;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::now_millis;
use rapport_domain::{IdentityKey, IdentityKind};
use rapport_segment::{parse, sql};
use rapport_store::testing::stores;
use rapport_store::{
    AuditEntry, AuditQuery, ConsentInput, Dimension, DynStore, Firing, LinkUse, Outbound,
    PersonReads, PortalLink, RelScope, ScoreRow, SourcedMessages, Task, TimelineFilter,
    UnmergeTarget, GRAPH_VERSION,
};
use serde_json::{json, Value};

fn messages(items: &[Value]) -> Vec<Message> {
    let batch = BatchContext {
        received_at: now_millis(),
        ..Default::default()
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| parse_message(v, "", None, &batch, || format!("gen-{i}")).expect("valid"))
        .collect()
}

async fn ingest(store: &DynStore, items: &[Value]) -> rapport_store::IngestOutcome {
    store
        .ingest(vec![SourcedMessages {
            source: "conformance".into(),
            messages: messages(items),
        }])
        .await
        .expect("ingest")
}

async fn by_email(store: &DynStore, email: &str) -> ProfileId {
    let key = IdentityKey::parse(IdentityKind::Email, email).expect("e-mail");
    store.lookup(&key).await.expect("lookup").expect("known")
}

fn story() -> Vec<Value> {
    vec![
        json!({"type": "identify", "userId": "ann", "messageId": "m1",
               "traits": {"email": "ann@example.com", "name": "Ann"}}),
        json!({"type": "track", "userId": "ann", "messageId": "m2",
               "event": "Order Completed", "properties": {"revenue": 50}}),
        json!({"type": "identify", "userId": "bob", "messageId": "m3",
               "traits": {"email": "bob@example.com", "name": "Bob"}}),
    ]
}

#[tokio::test]
async fn every_capability_tells_the_same_story_on_every_store() {
    for t in stores().await {
        let store = t.store.clone();
        let kind = store.kind();

        // IngestStore: accepted once, duplicates by message id afterwards.
        let first = ingest(&store, &story()).await;
        assert_eq!((first.accepted, first.duplicates), (3, 0), "[{kind}] first");
        let again = ingest(&store, &story()).await;
        assert_eq!((again.accepted, again.duplicates), (0, 3), "[{kind}] again");

        // ProfileStore: look-up, traits, consents, search, merge and unmerge, counts.
        let ann = by_email(&store, "ann@example.com").await;
        let bob = by_email(&store, "bob@example.com").await;
        assert_ne!(ann, bob, "[{kind}]");
        let now = now_millis();
        store
            .patch_traits(ann, &json!({"plan": "pro"}), now)
            .await
            .expect("patch");
        store
            .set_consent(
                ann,
                &ConsentInput {
                    channel: "email".into(),
                    purpose: "marketing".into(),
                    status: ConsentStatus::Granted,
                    source: "form".into(),
                    proof: Some("ticked".into()),
                    at: now,
                    frequency: rapport_domain::model::Frequency::Weekly,
                },
            )
            .await
            .expect("consent");
        let view = store.profile(ann).await.expect("profile");
        assert_eq!(view.traits["name"], "Ann", "[{kind}]");
        assert_eq!(view.traits["plan"], "pro", "[{kind}]");
        assert_eq!(view.consents.len(), 1, "[{kind}]");
        assert_eq!(view.consents[0].status, ConsentStatus::Granted, "[{kind}]");
        assert_eq!(
            view.consents[0].frequency,
            rapport_domain::model::Frequency::Weekly,
            "[{kind}]"
        );
        let found = store.search(Some("ann"), 10, None).await.expect("search");
        assert_eq!(
            found.items.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![ann],
            "[{kind}]"
        );
        let merged = store.merge(ann, bob, "test", now).await.expect("merge");
        assert_eq!(merged.survivor_id, ann, "[{kind}] the older survives");
        assert_eq!(store.stats().await.expect("stats").profiles, 1, "[{kind}]");
        store
            .unmerge(UnmergeTarget::MergedProfile(bob), "test", now)
            .await
            .expect("unmerge");
        let stats = store.stats().await.expect("stats");
        assert_eq!((stats.profiles, stats.events), (2, 3), "[{kind}]");

        // EventStore: timeline, by id and by name.
        let timeline = store
            .timeline(
                ann,
                &TimelineFilter {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .expect("timeline");
        assert_eq!(timeline.items.len(), 2, "[{kind}] ann's two events");
        let order = store
            .named_events(
                vec![ann],
                vec!["Order Completed".into()],
                0,
                now + 60_000,
                10,
            )
            .await
            .expect("named");
        assert_eq!(order.len(), 1, "[{kind}]");
        let again = store.event(order[0].id).await.expect("event");
        assert_eq!(again.properties["revenue"], 50, "[{kind}]");
        assert_eq!(
            store.events_after(0, 10).await.expect("after").len(),
            3,
            "[{kind}]"
        );

        // SettingsStore: counters and settings.
        store
            .set_counters(vec![
                ("conformance.a".into(), 7),
                ("conformance.b".into(), 9),
            ])
            .await
            .expect("counters");
        assert_eq!(
            store
                .counters(vec!["conformance.b".into(), "never.set".into()])
                .await
                .expect("read"),
            vec![9, 0],
            "[{kind}]"
        );
        store
            .set_setting("conformance", json!({"on": true}), now)
            .await
            .expect("setting");
        assert_eq!(
            store.setting("conformance").await.expect("read"),
            Some(json!({"on": true})),
            "[{kind}]"
        );

        // GraphStore: an explicit relationship bumps the graph version.
        let before = store.counter(GRAPH_VERSION).await.expect("version");
        store
            .upsert_relationships(
                vec![RelationshipWrite {
                    source: ann,
                    target: bob,
                    kind: "follows".into(),
                    weight: 2.0,
                    explicit: true,
                    at: now,
                    sentiment: None,
                    event_id: None,
                }],
                None,
            )
            .await
            .expect("relationship");
        assert!(store.counter(GRAPH_VERSION).await.expect("version") > before);
        let rels = store
            .relationships(RelScope::Touching(vec![bob]), 10)
            .await
            .expect("relationships");
        assert_eq!(rels.len(), 1, "[{kind}]");
        assert_eq!((rels[0].source, rels[0].weight), (ann, 2.0), "[{kind}]");
        assert_eq!(
            store.graph_edges().await.expect("edges"),
            vec![(ann, bob, 2.0)]
        );

        // SegmentStore: compiled SQL, saved segments, memberships and their history.
        let buyers = parse(r#"count(track "Order Completed") >= 1"#).expect("definition");
        let (count, sample) = store
            .segment_matches(sql::compile(&buyers, store.dialect(), now + 1_000), 10)
            .await
            .expect("matches");
        assert_eq!((count, sample), (1, vec![ann]), "[{kind}]");
        let seg = store
            .create_segment("Buyers", "", "who bought", "static", now)
            .await
            .expect("segment");
        let change = store
            .set_segment_members(seg.id, vec![ann], now)
            .await
            .expect("members");
        assert_eq!(change.entered, vec![ann], "[{kind}]");
        assert_eq!(
            store.profile_segments(ann).await.expect("of ann"),
            vec!["Buyers".to_string()],
            "[{kind}]"
        );
        let change = store
            .set_segment_members(seg.id, vec![], now + 1)
            .await
            .expect("members");
        assert_eq!(change.exited, vec![ann], "[{kind}]");
        let sizes = store.segment_sizes(seg.id, 0).await.expect("sizes");
        let last = sizes.last().expect("a size point");
        assert_eq!((last.size, last.exited), (0, 1), "[{kind}] {sizes:?}");

        // ScoreStore.
        store
            .replace_scores(
                vec!["conformance".into()],
                vec![ScoreRow {
                    name: "conformance".into(),
                    profile_id: ann,
                    value: 1.5,
                    explanation: json!({"why": "test"}),
                    computed_at: now,
                }],
            )
            .await
            .expect("scores");
        assert_eq!(
            store.score_values("conformance").await.expect("values"),
            vec![(ann, 1.5)]
        );
        assert_eq!(
            store.profile_scores(ann).await.expect("of ann")[0].explanation,
            json!({"why": "test"})
        );

        // RuleStore: firings, tasks, the outbox.
        store
            .record_firing(Firing {
                id: 0,
                rule: "welcome".into(),
                profile_id: ann,
                event_id: order[0].id,
                at: now,
                actions: json!([]),
            })
            .await
            .expect("firing");
        assert_eq!(
            store.firing_times(ann, now - 1).await.expect("firings"),
            vec![("welcome".to_string(), now)],
            "[{kind}]"
        );
        store
            .create_task(Task {
                id: 0,
                profile_id: ann,
                rule: "welcome".into(),
                title: "Call Ann".into(),
                body: String::new(),
                status: "open".into(),
                created_at: now,
            })
            .await
            .expect("task");
        assert_eq!(store.tasks(10).await.expect("tasks")[0].title, "Call Ann");
        let id = store
            .enqueue(Outbound {
                id: 0,
                rule: "welcome".into(),
                profile_id: ann,
                url: "http://127.0.0.1:9/hook".into(),
                secret: "s3cret".into(),
                body: "{}".into(),
                attempts: 0,
                max_attempts: 3,
                next_at: now,
                status: "pending".into(),
                last_error: None,
                created_at: now,
                delivered_at: None,
            })
            .await
            .expect("enqueue");
        let mut due = store.due_outbound(now, 10).await.expect("due");
        assert_eq!(due.len(), 1, "[{kind}]");
        assert_eq!((due[0].id, due[0].secret.as_str()), (id, "s3cret"));
        let mut done = due.remove(0);
        done.status = "delivered".into();
        done.attempts = 1;
        store.update_outbound(done).await.expect("update");
        assert!(store.due_outbound(now, 10).await.expect("due").is_empty());
        assert_eq!(
            store
                .outbound(Some("delivered".into()), 10)
                .await
                .expect("delivered")
                .len(),
            1,
            "[{kind}]"
        );

        // StaffStore: users, sessions, API keys.
        let user = store
            .create_user("staff@example.com", "hash", "admin", now)
            .await
            .expect("user");
        assert!(store
            .create_user("staff@example.com", "hash", "admin", now)
            .await
            .is_err());
        store
            .create_session("tok", user.id, "csrf", now, now + 60_000)
            .await
            .expect("session");
        let (who, csrf) = store
            .session("tok", now)
            .await
            .expect("session")
            .expect("live");
        assert_eq!(
            (who.email.as_str(), csrf.as_str()),
            ("staff@example.com", "csrf")
        );
        assert!(store
            .session("tok", now + 120_000)
            .await
            .expect("read")
            .is_none());
        store.delete_session("tok").await.expect("delete");
        assert!(store.session("tok", now).await.expect("read").is_none());
        let browser = rapport_store::KeyAccess {
            trust: rapport_domain::apikey::Trust::Browser,
            origins: vec!["https://shop.example".into()],
        };
        let key = store
            .create_api_key("rk_test", "keyhash", Scope::Write, "sdk", &browser, now)
            .await
            .expect("key");
        assert_eq!(key.access, browser);
        let read = store
            .api_key_by_hash("keyhash")
            .await
            .expect("read")
            .expect("known");
        assert_eq!(read.access, browser, "[{kind}] trust and origins stored");
        store
            .set_api_key_access(key.id, &Default::default())
            .await
            .expect("set access");
        assert!(store
            .set_api_key_access(key.id + 1000, &browser)
            .await
            .is_err());
        store.revoke_api_key(key.id, now).await.expect("revoke");
        let read = store
            .api_key_by_hash("keyhash")
            .await
            .expect("read")
            .expect("known");
        assert!(read.revoked, "[{kind}]");
        assert_eq!(
            read.access,
            Default::default(),
            "[{kind}] a server key again"
        );

        // TextStore: the catalogue.
        store
            .set_catalogue(vec!["Widget".into()], now)
            .await
            .expect("catalogue");
        assert_eq!(store.catalogue().await.expect("read"), vec!["Widget"]);

        // ChainStore: SIWE nonces are single use.
        store
            .create_siwe_nonce("n0nce", now, now + 60_000)
            .await
            .expect("nonce");
        assert!(store.use_siwe_nonce("n0nce", now).await.expect("use"));
        assert!(!store.use_siwe_nonce("n0nce", now).await.expect("reuse"));

        // RealtimeStore: the people behind the latest events, and a whole load.
        let recent = store.recent_people(i64::MAX, 10).await.expect("recent");
        let mut people: Vec<ProfileId> = recent.people.iter().map(|p| p.1).collect();
        people.sort_unstable();
        people.dedup();
        assert_eq!(people, vec![ann, bob], "[{kind}]");
        let loads = store
            .person_loads(
                vec![ann],
                PersonReads::Whole {
                    firings_since: 0,
                    membership_events: true,
                },
            )
            .await
            .expect("load");
        assert_eq!(loads.len(), 1, "[{kind}]");
        assert_eq!(loads[0].scores.len(), 1, "[{kind}] the score above");
        assert_eq!(loads[0].firings.len(), 1, "[{kind}] the firing above");

        // IngestStore: the first campaign is kept (an earlier one arriving late replaces
        // it; a later one does not), the last is the latest.
        let visit = |id: &str, ts: &str, source: &str| {
            json!({"type": "page", "anonymousId": "visitor", "messageId": id, "timestamp": ts,
                   "context": {"page": {"search": format!("?utm_source={source}&utm_medium=cpc")}}})
        };
        ingest(
            &store,
            &[
                visit("v2", "2024-02-01T00:00:00Z", "second"),
                visit("v3", "2024-03-01T00:00:00Z", "third"),
            ],
        )
        .await;
        ingest(&store, &[visit("v1", "2024-01-01T00:00:00Z", "first")]).await;
        ingest(&store, &[visit("v4", "2024-04-01T00:00:00Z", "fourth")]).await;
        let visitor = store
            .lookup(&IdentityKey::parse(IdentityKind::AnonymousId, "visitor").expect("id"))
            .await
            .expect("lookup")
            .expect("known");
        let traits = store.profile(visitor).await.expect("profile").traits;
        assert_eq!(
            traits["first_touch"]["source"], "first",
            "[{kind}] {traits}"
        );
        assert_eq!(
            traits["last_touch"]["source"], "fourth",
            "[{kind}] {traits}"
        );
        assert_eq!(traits["last_touch"]["medium"], "cpc", "[{kind}]");

        // PortalStore: a link works once and not after it expires; sessions end.
        let link = |hash: &str, expires_at| PortalLink {
            token_hash: hash.into(),
            purpose: "sign_in".into(),
            email: "ann@example.com".into(),
            profile_id: Some(ann),
            created_at: now,
            expires_at,
            used_at: None,
        };
        store
            .create_link(link("h1", now + 60_000))
            .await
            .expect("link");
        store.create_link(link("h2", now - 1)).await.expect("link");
        assert!(matches!(
            store.use_link("h1", now).await.expect("use"),
            LinkUse::Used(_)
        ));
        assert_eq!(
            store.use_link("h1", now).await.expect("use"),
            LinkUse::Replayed
        );
        assert_eq!(
            store.use_link("h2", now).await.expect("use"),
            LinkUse::Expired
        );
        assert_eq!(
            store.use_link("h3", now).await.expect("use"),
            LinkUse::Unknown
        );
        store
            .open_customer_session("s1", ann, "c1", now, now + 1_000)
            .await
            .expect("session");
        assert_eq!(
            store.customer_session("s1", now).await.expect("s"),
            Some((ann, "c1".to_string()))
        );
        assert_eq!(
            store.customer_session("s1", now + 1_000).await.expect("s"),
            None,
            "[{kind}] expired"
        );
        store.close_customer_session("s1").await.expect("close");
        assert_eq!(store.customer_session("s1", now).await.expect("s"), None);

        // InsightStore: everyone broken down; a budget spent up to its limit, not past.
        let everyone = rapport_store::Compiled {
            condition: "1 = 1".into(),
            params: Vec::new(),
            event_sets: 0,
        };
        let groups = store
            .breakdown(everyone, Dimension::Trait("name".into()))
            .await
            .expect("breakdown");
        let total: i64 = groups.iter().map(|g| g.1).sum();
        assert!(
            total >= 3 && groups.iter().any(|g| g.1 >= 1),
            "[{kind}] {groups:?}"
        );
        assert_eq!(store.spend(7, 1, 0.6, 1.0).await.expect("spend"), Some(0.6));
        assert_eq!(
            store.spend(7, 1, 0.6, 1.0).await.expect("spend"),
            None,
            "[{kind}] over budget"
        );
        assert_eq!(
            store.spend(7, 2, 0.6, 1.0).await.expect("spend"),
            Some(0.6),
            "[{kind}] a new day"
        );

        // PrivacyStore: the audit, a person's records, erasure, retention.
        store
            .record_audit(AuditEntry {
                id: 0,
                at: now,
                who: "api:test".into(),
                action: "profile.view".into(),
                target: format!("person:{ann}"),
                detail: Value::Null,
            })
            .await
            .expect("audit");
        let log = store
            .audit_log(AuditQuery {
                target: Some(format!("person:{ann}")),
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("log");
        assert_eq!(log.len(), 1, "[{kind}] {log:?}");
        let records = store.person_records(bob).await.expect("records");
        assert!(
            records
                .iter()
                .any(|(t, rows)| t == "identities" && !rows.is_empty()),
            "[{kind}]"
        );
        let report = store
            .erase(vec![bob], true, "api:test", now)
            .await
            .expect("erase");
        assert!(
            report.profiles >= 1 && report.identifiers >= 1,
            "[{kind}] {report:?}"
        );
        let bob_key = IdentityKey::parse(IdentityKind::Email, "bob@example.com").expect("e-mail");
        assert_eq!(
            store.lookup(&bob_key).await.expect("lookup"),
            None,
            "[{kind}]"
        );
        assert!(store
            .erased_hashes()
            .await
            .expect("hashes")
            .contains(&rapport_domain::privacy::identifier_hash(&bob_key)));
        assert!(matches!(
            store.erase(vec![bob], true, "api:test", now).await,
            Err(rapport_store::StoreError::NotFound(_))
        ));
        assert!(
            store
                .anonymous_people(i64::MAX, 10)
                .await
                .expect("anon")
                .contains(&visitor),
            "[{kind}]"
        );
        let feb = rapport_domain::time::parse_timestamp("2024-02-15T00:00:00Z").expect("time");
        assert_eq!(
            store.expire_events(feb, 100).await.expect("expire"),
            2,
            "[{kind}] the visits of January and February 1st"
        );
        assert_eq!(
            store.expire_events(feb, 100).await.expect("expire"),
            0,
            "[{kind}]"
        );

        t.cleanup().await;
    }
}

fn ticket(i: i64, tags: &[&str]) -> rapport_store::Ticket {
    rapport_store::Ticket {
        id: 0,
        number: 0,
        profile_id: 1,
        address: None,
        subject: format!("Ticket {i}"),
        status: "closed".into(),
        priority: "normal".into(),
        assignee: None,
        team: None,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        channel: "api".into(),
        snooze_until: None,
        created_at: i,
        updated_at: i,
        first_response_at: None,
        resolved_at: None,
        csat: None,
        csat_comment: None,
        origin: None,
    }
}

/// The inbox's tag filter, a common tag (walked newest first) and a rare one (fetched
/// and sorted) alike, follows tags as they change; a ticket with an origin opens once.
#[tokio::test]
async fn tickets_by_tag_and_origin() {
    for t in stores().await {
        let store = t.store.clone();
        let kind = store.kind();
        let first = |i: i64| rapport_store::TicketMessage {
            id: 0,
            ticket_id: 0,
            author: "customer".into(),
            staff: None,
            body: format!("Message {i}"),
            message_id: None,
            email_id: None,
            at: i,
        };
        let mut rare = Vec::new();
        for i in 1..=2_100 {
            let tags: &[&str] = if i % 700 == 0 {
                &["common", "rare"]
            } else {
                &["common"]
            };
            let opened = store
                .open_ticket(ticket(i, tags), first(i), Vec::new())
                .await
                .expect("open");
            if i % 700 == 0 {
                rare.push(opened);
            }
        }
        let by = |tag: &str, limit: usize| rapport_store::TicketFilter {
            tag: Some(tag.into()),
            limit,
            ..Default::default()
        };
        let numbers =
            |ts: Vec<rapport_store::Ticket>| ts.iter().map(|t| t.created_at).collect::<Vec<_>>();
        assert_eq!(
            numbers(store.tickets(by("common", 3)).await.unwrap()),
            [2_100, 2_099, 2_098],
            "[{kind}] newest first"
        );
        assert_eq!(
            numbers(store.tickets(by("rare", 10)).await.unwrap()),
            [2_100, 1_400, 700],
            "[{kind}]"
        );
        // Tags changed: the filter follows.
        let mut t700 = rare[0].clone();
        t700.tags = vec!["common".into()];
        t700.updated_at = 3_000;
        store.update_ticket(t700, Vec::new()).await.unwrap();
        assert_eq!(
            numbers(store.tickets(by("rare", 10)).await.unwrap()),
            [2_100, 1_400],
            "[{kind}]"
        );
        assert_eq!(
            numbers(store.tickets(by("common", 1)).await.unwrap()),
            [700],
            "[{kind}] moved to the top by its change"
        );
        assert!(store.tickets(by("nothing", 10)).await.unwrap().is_empty());
        // An origin opens one ticket; the second open returns it.
        let mut a = ticket(5_000, &[]);
        a.origin = Some("event:1".into());
        let one = store
            .open_ticket(a.clone(), first(1), Vec::new())
            .await
            .unwrap();
        let two = store.open_ticket(a, first(2), Vec::new()).await.unwrap();
        assert_eq!(one.id, two.id, "[{kind}]");
        assert_eq!(
            store.ticket_messages(one.id).await.unwrap().len(),
            1,
            "[{kind}]"
        );
        t.cleanup().await;
    }
}

fn entry(key: &str, kind: &str, amount: i64, at: i64) -> rapport_store::EntryRow {
    rapport_store::EntryRow {
        id: 0,
        profile_id: 7,
        kind: kind.into(),
        amount,
        idempotency_key: key.into(),
        at,
        lot_id: None,
        moves: Vec::new(),
        order: None,
        reason: None,
        source: "test".into(),
        unrecovered: 0,
    }
}

fn earn(key: &str, amount: i64, at: i64, expires_at: Option<i64>) -> rapport_store::LedgerWrite {
    rapport_store::LedgerWrite {
        entry: entry(key, "earn", amount, at),
        lot: Some(rapport_store::NewLot {
            profile_id: 7,
            kind: "earn".into(),
            amount,
            earned_at: at,
            unlock_at: at,
            expires_at,
            order: Some(format!("order-{key}")),
            revenue: Some(amount as f64 / 10.0),
        }),
        moves: Vec::new(),
        reversed: Vec::new(),
        redeem: None,
        events: Vec::new(),
    }
}

#[tokio::test]
async fn loyalty_ledger_on_every_store() {
    use rapport_domain::loyalty::Move;
    use rapport_store::Outcome;
    for t in stores().await {
        let store = t.store.clone();
        let kind = store.kind();
        let out = store
            .write_entries(vec![
                earn("a", 100, 1_000, Some(5_000)),
                earn("b", 50, 2_000, None),
            ])
            .await
            .unwrap();
        let Outcome::Written(a, None) = &out[0] else {
            panic!("[{kind}] {out:?}")
        };
        assert!(a.lot_id.is_some() && a.id > 0, "[{kind}]");
        let again = store
            .write_entries(vec![earn("a", 100, 1_000, None)])
            .await
            .unwrap();
        assert_eq!(
            again,
            vec![Outcome::Existing(a.clone())],
            "[{kind}] one key, one entry"
        );
        let lots = store.lots(&[7, 8], false).await.unwrap();
        assert_eq!(lots.len(), 2, "[{kind}]");
        let (la, lb) = (lots[0].lot.id, lots[1].lot.id);
        assert_eq!(lots[0].lot.order.as_deref(), Some("order-a"), "[{kind}]");
        // A spend planned against what the lots held; a second plan made from the same
        // read is stale.
        let spend = |key: &str| rapport_store::LedgerWrite {
            entry: entry(key, "spend", -120, 3_000),
            lot: None,
            moves: vec![
                (Move { lot: la, take: 100 }, 100),
                (Move { lot: lb, take: 20 }, 50),
            ],
            reversed: Vec::new(),
            redeem: None,
            events: Vec::new(),
        };
        let out = store
            .write_entries(vec![spend("s1"), spend("s2")])
            .await
            .unwrap();
        assert!(matches!(out[0], Outcome::Written(..)), "[{kind}] {out:?}");
        assert_eq!(out[1], Outcome::Stale, "[{kind}]");
        let lots = store.lots(&[7], false).await.unwrap();
        assert_eq!(lots.len(), 1, "[{kind}] the empty lot is no longer open");
        assert_eq!(lots[0].lot.remaining, 30, "[{kind}]");
        assert_eq!(store.lots(&[7], true).await.unwrap().len(), 2, "[{kind}]");
        let b = store.balance(&[7, 8], 3_000).await.unwrap();
        assert_eq!((b.available, b.pending), (30, 0), "[{kind}]");
        assert_eq!(
            store.balance(&[7], 1_500).await.unwrap().pending,
            30,
            "[{kind}] lot b unlocks at 2,000"
        );
        assert_eq!(
            store.balance(&[8], 3_000).await.unwrap().available,
            0,
            "[{kind}]"
        );
        assert_eq!(
            store.qualifying(&[7], 0).await.unwrap(),
            (150, 15.0),
            "[{kind}]"
        );
        assert_eq!(
            store.qualifying(&[7], 1_500).await.unwrap(),
            (50, 5.0),
            "[{kind}]"
        );
        assert_eq!(
            store.earned_by(&[7], "test", 0).await.unwrap(),
            150,
            "[{kind}]"
        );
        assert_eq!(
            store.earned_by(&[7], "rule:x", 0).await.unwrap(),
            0,
            "[{kind}]"
        );
        // Rewards: stock, a pool of codes, a per-person limit.
        let now = 10_000;
        let rid = store
            .save_catalogue_item(rapport_store::Reward {
                id: 0,
                name: "Mug".into(),
                description: "A mug".into(),
                cost: 10,
                stock: Some(5),
                per_person: Some(2),
                tiers: vec![],
                segment: None,
                starts_at: None,
                ends_at: None,
                active: true,
                codes_left: None,
                created_at: now,
                updated_at: now,
            })
            .await
            .unwrap();
        assert_eq!(
            store
                .add_codes(rid, vec!["C1".into(), "C2".into(), "C1".into()])
                .await
                .unwrap(),
            2,
            "[{kind}] a code once"
        );
        let r = store.catalogue_item_named("Mug").await.unwrap().unwrap();
        assert_eq!(
            (r.id, r.codes_left, r.stock),
            (rid, Some(2), Some(5)),
            "[{kind}]"
        );
        let redeem = |key: &str, held: i64| rapport_store::LedgerWrite {
            entry: entry(&format!("redeem:{key}"), "spend", -10, now),
            lot: None,
            moves: vec![(Move { lot: lb, take: 10 }, held)],
            reversed: Vec::new(),
            redeem: Some(rapport_store::Redeem {
                reward_id: rid,
                idempotency_key: key.into(),
                members: vec![7],
                per_person: Some(2),
            }),
            events: Vec::new(),
        };
        let out = store
            .write_entries(vec![redeem("r1", 30), redeem("r2", 20), redeem("r3", 10)])
            .await
            .unwrap();
        let codes: Vec<_> = out
            .iter()
            .map(|o| match o {
                Outcome::Written(_, Some(r)) => r.code.clone().unwrap_or_default(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(codes[..2], ["C1", "C2"], "[{kind}]");
        assert!(
            matches!(&out[2], Outcome::Refused(r) if r.contains("per person")),
            "[{kind}] {out:?}"
        );
        let r = store.catalogue_item(rid).await.unwrap().unwrap();
        assert_eq!(
            (r.codes_left, r.stock),
            (Some(0), Some(3)),
            "[{kind}] the refused one took nothing"
        );
        assert_eq!(
            store.lots(&[7], false).await.unwrap()[0].lot.remaining,
            10,
            "[{kind}]"
        );
        let red = store.redemption_by_key("r2").await.unwrap().unwrap();
        assert_eq!(
            (red.code.as_deref(), red.cost),
            (Some("C2"), 10),
            "[{kind}]"
        );
        assert_eq!(
            store.redemptions(&[7], 10).await.unwrap().len(),
            2,
            "[{kind}]"
        );
        // Expiry reads what is past its time.
        store
            .write_entries(vec![earn("c", 5, 4_000, Some(6_000))])
            .await
            .unwrap();
        assert!(
            store.expired_lots(5_999, 10).await.unwrap().is_empty(),
            "[{kind}]"
        );
        let exp = store.expired_lots(6_000, 10).await.unwrap();
        assert_eq!(
            exp.iter().map(|l| l.lot.remaining).collect::<Vec<_>>(),
            [5],
            "[{kind}]"
        );
        // A batch as expiry and the engine's steps write them (set-based on PostgreSQL):
        // each write's outcome on its own.
        let lc = exp[0].lot.id;
        let lb_left = store.lots(&[7], false).await.unwrap()[0].lot.remaining;
        let take = |key: &str, lot: i64, take: i64, held: i64| rapport_store::LedgerWrite {
            entry: entry(key, "expire", -take, 6_000),
            lot: None,
            moves: vec![(Move { lot, take }, held)],
            reversed: Vec::new(),
            redeem: None,
            events: Vec::new(),
        };
        let out = store
            .write_entries(vec![
                take("x1", lc, 5, 5),
                earn("a", 100, 1_000, None),
                take("x2", lb, 1, lb_left + 1),
                earn("d", 7, 6_000, None),
            ])
            .await
            .unwrap();
        assert!(
            matches!(&out[0], Outcome::Written(e, None) if e.moves == vec![Move { lot: lc, take: 5 }]),
            "[{kind}] {out:?}"
        );
        assert_eq!(out[1], Outcome::Existing(a.clone()), "[{kind}]");
        assert_eq!(out[2], Outcome::Stale, "[{kind}]");
        let Outcome::Written(d, None) = &out[3] else {
            panic!("[{kind}] {out:?}")
        };
        assert!(
            store.expired_lots(6_000, 10).await.unwrap().is_empty(),
            "[{kind}]"
        );
        assert!(
            store.entry_by_key("x2").await.unwrap().is_none(),
            "[{kind}]"
        );
        assert_eq!(
            store.entry_by_key("d").await.unwrap().as_ref(),
            Some(d),
            "[{kind}] as written"
        );
        let open = store.lots(&[7], false).await.unwrap();
        assert_eq!(
            open.iter()
                .map(|l| (Some(l.lot.id), l.lot.remaining))
                .collect::<Vec<_>>(),
            [(Some(lb), lb_left), (d.lot_id, 7)],
            "[{kind}] the stale write took nothing"
        );
        // History, newest first.
        let h = store.entries(&[7], None, 3).await.unwrap();
        assert_eq!(
            h.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            ["earn", "expire", "earn"],
            "[{kind}]"
        );
        assert_eq!(h[1].moves, vec![Move { lot: lc, take: 5 }], "[{kind}]");
        assert!(
            store.entry_by_key("s2").await.unwrap().is_none(),
            "[{kind}]"
        );
        // Tiers.
        let row = rapport_store::TierRow {
            profile_id: 7,
            state: rapport_domain::loyalty::TierState {
                tier: Some("gold".into()),
                since: 5,
                below_since: Some(9),
            },
            updated_at: 10,
        };
        store.set_tier(row.clone(), Vec::new()).await.unwrap();
        assert_eq!(
            store.tiers(&[7, 8]).await.unwrap(),
            vec![row.clone()],
            "[{kind}]"
        );
        assert_eq!(store.tiered(0, 10).await.unwrap(), vec![row], "[{kind}]");
        assert!(store.tiered(7, 10).await.unwrap().is_empty(), "[{kind}]");
        let totals = store.loyalty_totals(5_000, 0).await.unwrap();
        assert_eq!((totals.outstanding, totals.holders), (17, 1), "[{kind}]");
        assert_eq!(totals.tiers, vec![(Some("gold".into()), 1)], "[{kind}]");
        assert_eq!(totals.daily, vec![(0, 162, 140)], "[{kind}]");
    }
}
