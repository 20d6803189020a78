//! One client never fails another's batch: when the database refuses the data of one
//! request committed in a group with others, the requests are retried one by one and
//! only the faulty one fails — as a refusal (400), not "retry later" (which SDKs would
//! do forever). The refusal is the database's own: a trigger that rejects events named
//! `Poison`, on both stores.

use rapport_app::ingest::{IngestError, Ingestor};
use rapport_domain::message::{parse_message, BatchContext};
use rapport_domain::Message;
use serde_json::json;

async fn refuse_poison(dir: Option<&tempfile::TempDir>, pg: Option<&(String, String)>) {
    if let Some(dir) = dir {
        let c = rusqlite::Connection::open(dir.path().join("rapport.db")).expect("sqlite");
        c.execute_batch(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON events WHEN NEW.name = 'Poison'
             BEGIN SELECT RAISE(ABORT, 'poison refused'); END;",
        )
        .expect("trigger");
    }
    if let Some((url, schema)) = pg {
        let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("postgres");
        tokio::spawn(conn);
        c.batch_execute(&format!(
            "SET search_path TO {schema};
             CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.name = 'Poison' THEN
                 RAISE EXCEPTION 'poison refused' USING ERRCODE = '22023';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON event_rows
               FOR EACH ROW EXECUTE FUNCTION refuse_poison();"
        ))
        .await
        .expect("trigger");
    }
}

fn track(user: &str, event: &str, id: &str) -> Message {
    let batch = BatchContext {
        received_at: rapport_domain::time::now_millis(),
        ..Default::default()
    };
    let v = json!({"type": "track", "userId": user, "event": event, "messageId": id});
    parse_message(&v, "", None, &batch, || id.to_string()).expect("valid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_fails_alone() {
    for t in rapport_store::testing::stores().await {
        let kind = t.store.kind();
        refuse_poison(t.dir.as_ref(), t.pg.as_ref()).await;
        let (ingestor, _writer) = Ingestor::start(t.store.clone());
        // 16 clients send clean batches while 2 others send poison among them.
        let mut tasks = Vec::new();
        let refused_groups = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for c in 0..18 {
            let ingestor = ingestor.clone();
            let refused_groups = refused_groups.clone();
            tasks.push(tokio::spawn(async move {
                let mut results = Vec::new();
                for r in 0..25 {
                    let poison = c >= 16;
                    let msgs = || {
                        (0..4)
                            .map(|m| {
                                let id = format!("c{c}-r{r}-m{m}");
                                let event = if poison && m == 3 { "Poison" } else { "Clean" };
                                track(&format!("u{c}"), event, &id)
                            })
                            .collect()
                    };
                    // As the HTTP layer does: a refused group's request goes again alone.
                    let r = match ingestor.submit("test", msgs()).await {
                        Err(IngestError::Refused) => {
                            refused_groups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            ingestor.submit_alone("test", msgs()).await
                        }
                        r => r,
                    };
                    results.push((poison, r));
                }
                results
            }));
        }
        let (mut clean_ok, mut clean_failed, mut poison_refused) = (0, Vec::new(), 0);
        for t in tasks {
            for (poison, r) in t.await.expect("task") {
                match (poison, r) {
                    (false, Ok(())) => clean_ok += 1,
                    (false, Err(e)) => clean_failed.push(e.to_string()),
                    (true, Err(IngestError::Rejected(_))) => poison_refused += 1,
                    (true, other) => panic!("[{kind}] a poison request: {other:?}"),
                }
            }
        }
        assert!(
            clean_failed.is_empty(),
            "[{kind}] clean batches failed: {clean_failed:?}"
        );
        assert_eq!((clean_ok, poison_refused), (400, 50), "[{kind}]");
        // The test met what it is about: groups with poison in them.
        assert!(
            refused_groups.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "[{kind}]"
        );
        // Every clean event stored once; nothing of a refused request.
        let stats = t.store.stats().await.expect("stats");
        assert_eq!(stats.events, 400 * 4, "[{kind}]");
        t.cleanup().await;
    }
}
