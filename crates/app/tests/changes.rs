//! Every write outside the event stream announces what it changed: each of the app's
//! edit services moves its announcement's stamp (the real-time engine re-reads what it
//! holds when a stamp moves), on SQLite and PostgreSQL.

mod common;

use common::{drop_pg, ingest, stores};
use rapport_app::changes::Change;
use rapport_domain::message::{parse_message, BatchContext};
use rapport_domain::model::ConsentStatus;
use rapport_domain::time::now_millis;
use rapport_store::{ChainRow, ConsentInput, DynStore, UnmergeTarget};
use serde_json::json;

async fn stamp(store: &DynStore, change: Change) -> i64 {
    store.counter(change.counter()).await.expect("counter")
}

/// Runs `write` and says whether it moved `change`'s stamp.
async fn announces<F: std::future::Future<Output = ()>>(
    store: &DynStore,
    change: Change,
    write: F,
) -> bool {
    let before = stamp(store, change).await;
    write.await;
    stamp(store, change).await > before
}

#[tokio::test]
async fn edits_outside_the_event_stream_are_announced() {
    for (store, _dir, pg) in stores().await {
        let kind = store.kind();
        let batch = BatchContext {
            received_at: now_millis(),
            ..Default::default()
        };
        let people = ["ann", "bob"]
            .iter()
            .map(|u| {
                let m = json!({"type": "identify", "userId": u, "traits": {"email": format!("{u}@example.com")}});
                parse_message(&m, "", None, &batch, || format!("id-{u}")).expect("valid")
            })
            .collect();
        ingest(&store, people).await;
        let id = |u: &'static str| {
            let store = store.clone();
            async move {
                let key =
                    rapport_domain::IdentityKey::parse(rapport_domain::IdentityKind::UserId, u)
                        .expect("user id");
                store.lookup(&key).await.expect("lookup").expect("known")
            }
        };
        let (ann, bob) = (id("ann").await, id("bob").await);
        let now = now_millis();
        let standing = Change::Standing;
        assert!(
            announces(&store, standing, async {
                rapport_app::profiles::patch_traits(&store, ann, &json!({"plan": "pro"}), now)
                    .await
                    .expect("traits")
            })
            .await,
            "[{kind}] a trait edit"
        );
        assert!(
            announces(&store, standing, async {
                let consent = ConsentInput {
                    channel: "email".into(),
                    purpose: "marketing".into(),
                    status: ConsentStatus::Denied,
                    source: "test".into(),
                    proof: None,
                    at: now,
                    frequency: Default::default(),
                };
                rapport_app::profiles::set_consent(&store, ann, &consent)
                    .await
                    .expect("consent")
            })
            .await,
            "[{kind}] a consent"
        );
        assert!(
            announces(&store, standing, async {
                rapport_app::profiles::merge(&store, ann, bob, "test", now)
                    .await
                    .expect("merge");
            })
            .await,
            "[{kind}] a merge"
        );
        assert!(
            announces(&store, standing, async {
                rapport_app::profiles::unmerge(
                    &store,
                    UnmergeTarget::MergedProfile(bob),
                    "test",
                    now,
                )
                .await
                .expect("unmerge");
            })
            .await,
            "[{kind}] an unmerge"
        );
        store
            .upsert_chain(ChainRow {
                id: "eip155:31337".into(),
                name: "local".into(),
                rpc_url: "http://127.0.0.1:9".into(),
                confirmations: 0,
                start_block: 0,
                batch_blocks: 100,
                brand_wallets: vec![],
                enabled: false,
                cursor_block: None,
                cursor_hash: None,
                head_block: None,
                synced_at: None,
                last_error: None,
                created_at: now,
                updated_at: now,
            })
            .await
            .expect("chain");
        assert!(
            announces(&store, standing, async {
                rapport_app::chain::delete_chain(&store, "eip155:31337")
                    .await
                    .expect("delete chain")
            })
            .await,
            "[{kind}] a chain's holdings forgotten"
        );
        assert!(
            announces(&store, Change::Scores, async {
                rapport_app::scores::recompute(&store)
                    .await
                    .expect("score run");
            })
            .await,
            "[{kind}] a score run"
        );
        drop_pg(pg).await;
    }
}
