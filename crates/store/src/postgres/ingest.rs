use super::{
    add_events, add_events_ignoring_known, apply, snapshot, writer_lock, PgStore, Pipeline,
};
use crate::{IngestOutcome, IngestStore, Result, SourcedMessages};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use rapport_domain::resolve;
use rapport_domain::resolve::{max_new_profiles, EventRow};

#[async_trait]
impl IngestStore for PgStore {
    async fn ingest(&self, groups: Vec<SourcedMessages>) -> Result<IngestOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        writer_lock(&tx).await?;
        let mut total = IngestOutcome::default();
        for g in groups {
            let snap = snapshot(&tx, &g.messages).await?;
            let bound = max_new_profiles(&g.messages, &snap.owners) as i64;
            let ids: Vec<i64> = if bound > 0 {
                tx.query(
                    "SELECT nextval('profiles_id_seq') FROM generate_series(1, $1::int8)",
                    &[&bound],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect()
            } else {
                Vec::new()
            };
            let mut ids = ids.into_iter();
            let plan = resolve::resolve_all(snap, &mut ids, g.messages);
            total.add(&apply(&tx, plan, &g.source).await?);
        }
        tx.commit().await?;
        Ok(total)
    }

    async fn insert_events_once(&self, rows: Vec<EventRow>, source: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        writer_lock(&tx).await?;
        let mut p = Pipeline::default();
        add_events_ignoring_known(&mut p, &rows, source);
        p.run(&tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_events_raw(&self, rows: Vec<EventRow>, source: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Event ids commit in order (see `writer_lock`).
        writer_lock(&tx).await?;
        let mut p = Pipeline::default();
        add_events(&mut p, &rows, source);
        p.run(&tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
