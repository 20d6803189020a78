//! SQLite side of the interaction log: timelines, events by id or name, activity windows.

use super::graph::{ids_json, members};
use super::profiles::canonical_of;
use super::{event_view, placeholders, SqliteStore, EVENT_COLUMNS};
use crate::{common, sql, Activity, EventStore, Result, StoreError, TimelineFilter};
use async_trait::async_trait;
use rapport_domain::model::{EventView, Page};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

#[async_trait]
impl EventStore for SqliteStore {
    async fn timeline(&self, id: ProfileId, filter: &TimelineFilter) -> Result<Page<EventView>> {
        let f = filter.clone();
        self.read(move |c| timeline_sync(c, id, &f)).await
    }

    async fn events_after(&self, after: i64, limit: usize) -> Result<Vec<EventView>> {
        self.read(move |c| events_after_in(c, after, limit)).await
    }

    async fn event(&self, id: i64) -> Result<EventView> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"))?
                .query_row([id], event_view)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("event {id}")))
        })
        .await
    }

    async fn recent_events(
        &self,
        kind: Option<String>,
        name: Option<String>,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<EventView>> {
        self.read(move |c| {
            // Written out per case so the (name, type, occurred_at) index serves a name.
            let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE occurred_at >= ?1");
            let mut args: Vec<rusqlite::types::Value> = vec![since.into()];
            if let Some(n) = name {
                args.push(n.into());
                sql.push_str(&format!(" AND name = ?{}", args.len()));
            }
            if let Some(k) = kind {
                args.push(k.into());
                sql.push_str(&format!(" AND type = ?{}", args.len()));
            }
            args.push((limit as i64).into());
            sql.push_str(&format!(" ORDER BY occurred_at, id LIMIT ?{}", args.len()));
            Ok(c.prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(args), event_view)?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn named_events(
        &self,
        people: Vec<ProfileId>,
        names: Vec<String>,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<EventView>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE profile_id IN ({}) AND name IN (SELECT value FROM json_each(?2))
                 AND occurred_at >= ?3 AND occurred_at <= ?4 ORDER BY occurred_at, id LIMIT ?5",
                members(1)
            ))?
            .query_map(
                params![ids_json(&people), serde_json::to_string(&names).unwrap_or_default(), since, until, limit as i64],
                event_view,
            )?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn activity(&self, id: ProfileId, since: Millis) -> Result<Activity> {
        self.read(move |c| {
            let m = members(1);
            let ids = ids_json(&[id]);
            let active_days: i64 = c
                .prepare_cached(&format!(
                    "SELECT COUNT(DISTINCT occurred_at / 86400000) FROM events WHERE profile_id IN ({m}) AND occurred_at >= ?2"
                ))?
                .query_row(params![ids, since], |r| r.get(0))?;
            let channels = c
                .prepare_cached(&format!(
                    "SELECT channel, COUNT(*) FROM events WHERE profile_id IN ({m}) AND occurred_at >= ?2
                     GROUP BY channel ORDER BY COUNT(*) DESC, channel"
                ))?
                .query_map(params![ids, since], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<std::result::Result<_, _>>()?;
            Ok(Activity { active_days, channels })
        })
        .await
    }

    async fn active_days_all(&self, since: Millis) -> Result<Vec<(ProfileId, i64)>> {
        self.read(move |c| {
            Ok(c.prepare_cached(sql::events::ACTIVE_DAYS_ALL)?
                .query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }
}

/// Events in id order after `after`.
pub(super) fn events_after_in(c: &Connection, after: i64, limit: usize) -> Result<Vec<EventView>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE id > ?1 ORDER BY id LIMIT ?2"
    ))?
    .query_map(params![after, limit as i64], event_view)?
    .collect::<std::result::Result<_, _>>()?)
}

pub(super) fn timeline_sync(
    conn: &Connection,
    id: ProfileId,
    f: &TimelineFilter,
) -> Result<Page<EventView>> {
    let c = canonical_of(conn, id)?;
    let mut sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE profile_id IN (SELECT id FROM profiles WHERE canonical_id = ?)"
    );
    let mut args: Vec<rusqlite::types::Value> = vec![c.into()];
    let mut any_of = |sql: &mut String, col: &str, vals: &[String]| {
        if !vals.is_empty() {
            sql.push_str(&format!(" AND {col} IN ({})", placeholders(vals.len())));
            args.extend(vals.iter().map(|v| rusqlite::types::Value::from(v.clone())));
        }
    };
    any_of(&mut sql, "type", &f.types);
    any_of(&mut sql, "channel", &f.channels);
    any_of(&mut sql, "name", &f.names);
    if let Some(s) = f.since {
        sql.push_str(" AND occurred_at >= ?");
        args.push(s.into());
    }
    if let Some(u) = f.until {
        sql.push_str(" AND occurred_at < ?");
        args.push(u.into());
    }
    if let Some((t, eid)) = f.before {
        sql.push_str(" AND (occurred_at < ? OR (occurred_at = ? AND id < ?))");
        args.extend([t.into(), t.into(), eid.into()]);
    }
    sql.push_str(" ORDER BY occurred_at DESC, id DESC LIMIT ?");
    args.push(((f.limit + 1) as i64).into());
    let mut items = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(args), event_view)?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let next_cursor = common::trim_page(&mut items, f.limit, common::event_cursor);
    Ok(Page { items, next_cursor })
}
