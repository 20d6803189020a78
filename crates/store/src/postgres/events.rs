//! PostgreSQL side of the interaction log: timelines, events by id or name, activity
//! windows.

use super::graph::members;
use super::{canonical_of, event_view, Param, PgStore, EVENT_COLUMNS};
use crate::{common, sql, Activity, EventStore, Result, StoreError, TimelineFilter};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use rapport_domain::model::{EventView, Page};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use tokio_postgres::types::ToSql;

#[async_trait]
impl EventStore for PgStore {
    async fn timeline(&self, id: ProfileId, f: &TimelineFilter) -> Result<Page<EventView>> {
        let c = self.client().await?;
        let cid = canonical_of(&c, id).await?;
        let members: Vec<i64> = c
            .query("SELECT id FROM profiles WHERE canonical_id = $1", &[&cid])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE profile_id = ANY($1)");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(members)];
        for (col, vals) in [
            ("type", &f.types),
            ("channel", &f.channels),
            ("name", &f.names),
        ] {
            if !vals.is_empty() {
                args.push(Box::new(vals.clone()));
                sql.push_str(&format!(" AND {col} = ANY(${})", args.len()));
            }
        }
        if let Some(s) = f.since {
            args.push(Box::new(s));
            sql.push_str(&format!(" AND occurred_at >= ${}", args.len()));
        }
        if let Some(u) = f.until {
            args.push(Box::new(u));
            sql.push_str(&format!(" AND occurred_at < ${}", args.len()));
        }
        if let Some((t, eid)) = f.before {
            args.push(Box::new(t));
            args.push(Box::new(eid));
            sql.push_str(&format!(
                " AND (occurred_at, id) < (${}, ${})",
                args.len() - 1,
                args.len()
            ));
        }
        args.push(Box::new((f.limit + 1) as i64));
        sql.push_str(&format!(
            " ORDER BY occurred_at DESC, id DESC LIMIT ${}",
            args.len()
        ));
        let params: Vec<Param<'_>> = args.iter().map(|a| a.as_ref() as Param<'_>).collect();
        let mut items: Vec<EventView> = c
            .query(&sql, &params)
            .await?
            .iter()
            .map(event_view)
            .collect();
        let next_cursor = common::trim_page(&mut items, f.limit, common::event_cursor);
        Ok(Page { items, next_cursor })
    }

    async fn events_after(&self, after: i64, limit: usize) -> Result<Vec<EventView>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE id > $1 ORDER BY id LIMIT $2"
            ))
            .await?;
        Ok(c.query(&stmt, &[&after, &(limit as i64)])
            .await?
            .iter()
            .map(event_view)
            .collect())
    }

    async fn event(&self, id: i64) -> Result<EventView> {
        let c = self.client().await?;
        c.query_opt(
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"),
            &[&id],
        )
        .await?
        .map(|r| event_view(&r))
        .ok_or_else(|| StoreError::NotFound(format!("event {id}")))
    }

    async fn recent_events(
        &self,
        kind: Option<String>,
        name: Option<String>,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<EventView>> {
        let c = self.client().await?;
        // Written out per case so the (name, type, occurred_at) index serves a name.
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE occurred_at >= $1");
        let limit = limit as i64;
        let mut args: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&since];
        if let Some(n) = &name {
            args.push(n);
            sql.push_str(&format!(" AND name = ${}", args.len()));
        }
        if let Some(k) = &kind {
            args.push(k);
            sql.push_str(&format!(" AND type = ${}", args.len()));
        }
        args.push(&limit);
        sql.push_str(&format!(" ORDER BY occurred_at, id LIMIT ${}", args.len()));
        Ok(c.query(&sql, &args).await?.iter().map(event_view).collect())
    }

    async fn named_events(
        &self,
        people: Vec<ProfileId>,
        names: Vec<String>,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<EventView>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE profile_id IN ({}) AND name = ANY($2)
                 AND occurred_at >= $3 AND occurred_at <= $4 ORDER BY occurred_at, id LIMIT $5",
                members(1)
            ),
            &[&people, &names, &since, &until, &(limit as i64)],
        )
        .await?
        .iter()
        .map(event_view)
        .collect())
    }

    async fn activity(&self, id: ProfileId, since: Millis) -> Result<Activity> {
        let c = self.client().await?;
        let m = members(1);
        let ids = vec![id];
        let active_days: i64 = c
            .query_one(
                &format!("SELECT COUNT(DISTINCT occurred_at / 86400000) FROM events WHERE profile_id IN ({m}) AND occurred_at >= $2"),
                &[&ids, &since],
            )
            .await?
            .get(0);
        let channels = c
            .query(
                &format!(
                    "SELECT channel, COUNT(*) FROM events WHERE profile_id IN ({m}) AND occurred_at >= $2
                     GROUP BY channel ORDER BY COUNT(*) DESC, channel"
                ),
                &[&ids, &since],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok(Activity {
            active_days,
            channels,
        })
    }

    async fn active_days_all(&self, since: Millis) -> Result<Vec<(ProfileId, i64)>> {
        let c = self.client().await?;
        Ok(c.query(sql::events::ACTIVE_DAYS_ALL, &[&since])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }
}
