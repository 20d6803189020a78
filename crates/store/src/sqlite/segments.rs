//! SQLite side of segments: running compiled definitions, saved segments, membership
//! with timeline events, size history.

use super::{event_view, SqliteStore};
use crate::{
    sql, MembershipChange, Param, Result, SegmentRow, SegmentSize, SegmentStore, StepDone,
    StoreError,
};
use async_trait::async_trait;
use rapport_domain::model::EventView;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::{to_datetime, Millis};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};
use std::collections::HashSet;

const SEGMENT_COLS: &str = sql::segments::SEGMENT_COLUMNS;

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SegmentRow> {
    Ok(SegmentRow {
        id: r.get(0)?,
        name: r.get(1)?,
        definition: r.get(2)?,
        description: r.get(3)?,
        kind: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        refreshed_at: r.get(7)?,
        size: r.get(8)?,
    })
}

pub(super) fn bind(params: &[Param]) -> Vec<SqlValue> {
    params
        .iter()
        .map(|p| match p {
            Param::Text(s) => SqlValue::Text(s.clone()),
            Param::Int(i) => SqlValue::Integer(*i),
            Param::Real(r) => SqlValue::Real(*r),
        })
        .collect()
}

/// Minute buckets keep the size history small under real-time changes.
pub(crate) fn bucket(at: Millis) -> Millis {
    at - at.rem_euclid(60_000)
}

/// The timeline event of an entry or exit; its message id makes a retry a no-op.
/// PostgreSQL stores only its fields and rebuilds the rest in the view `events`
/// (migration postgres/0017), which must match this.
pub(crate) fn membership_event(
    segment_id: i64,
    name: &str,
    person: ProfileId,
    entered: bool,
    at: Millis,
) -> (String, &'static str, String) {
    let what = if entered {
        "Segment Entered"
    } else {
        "Segment Exited"
    };
    // Time first: a step's new ids sort together at the end of the message-id index, so
    // its inserts dirty a page or two there instead of one page per change.
    let message_id = format!("segment:{at}:{segment_id}:{person}:{}", u8::from(entered));
    // The id as a string: an identifier, not a quantity, so no numeric index row (a
    // third of the cost of writing these events on PostgreSQL) is kept for it.
    let props =
        serde_json::json!({"segment": name, "segment_id": segment_id.to_string()}).to_string();
    (message_id, what, props)
}

/// The membership event written with id `id`, as the log returns it.
pub(crate) fn membership_view(
    id: i64,
    segment_id: i64,
    name: &str,
    person: ProfileId,
    entered: bool,
    at: Millis,
) -> EventView {
    let (message_id, what, props) = membership_event(segment_id, name, person, entered, at);
    EventView {
        id,
        message_id,
        profile_id: person,
        kind: "track".into(),
        name: Some(what.into()),
        channel: "rapport".into(),
        source: "segments".into(),
        properties: serde_json::from_str(&props).unwrap_or_default(),
        context: serde_json::json!({}),
        text: None,
        occurred_at: to_datetime(at),
        received_at: to_datetime(at),
    }
}

fn segment_name(tx: &Transaction<'_>, id: i64) -> Result<String> {
    tx.query_row("SELECT name FROM segments WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("segment {id}")))
}

/// Adds and removes member rows; returns the real entries and exits (entering who is in,
/// or leaving who is out, is nothing: each write's row count says which).
fn write_members(
    tx: &Transaction<'_>,
    id: i64,
    entered: Vec<ProfileId>,
    exited: Vec<ProfileId>,
    at: Millis,
) -> Result<MembershipChange> {
    let mut ins = tx.prepare_cached(
        "INSERT INTO segment_members (segment_id, profile_id, since) VALUES (?1, ?2, ?3)
         ON CONFLICT (segment_id, profile_id) DO NOTHING",
    )?;
    let mut real = MembershipChange::default();
    for p in entered {
        if ins.execute(params![id, p, at])? == 1 {
            real.entered.push(p);
        }
    }
    let mut del =
        tx.prepare_cached("DELETE FROM segment_members WHERE segment_id = ?1 AND profile_id = ?2")?;
    for p in exited {
        if del.execute(params![id, p])? == 1 {
            real.exited.push(p);
        }
    }
    Ok(real)
}

/// The timeline events and size point of member rows already written.
fn record(
    tx: &Transaction<'_>,
    id: i64,
    name: &str,
    entered: &[ProfileId],
    exited: &[ProfileId],
    at: Millis,
) -> Result<Vec<EventView>> {
    let mut written = Vec::new();
    {
        let mut ev = tx.prepare_cached(
            "INSERT INTO events (message_id, profile_id, type, name, channel, source, properties, context, text, occurred_at, received_at)
             VALUES (?1, ?2, 'track', ?3, 'rapport', 'segments', ?4, '{}', NULL, ?5, ?5) ON CONFLICT (message_id) DO NOTHING",
        )?;
        for (list, entered) in [(entered, true), (exited, false)] {
            for p in list {
                let (mid, what, props) = membership_event(id, name, *p, entered, at);
                if ev.execute(params![mid, p, what, props, at])? == 1 {
                    let event = tx.last_insert_rowid();
                    written.push(membership_view(event, id, name, *p, entered, at));
                }
            }
        }
    }
    // Every change of members passes here with only real entries and exits, so the size
    // follows from the last one; counting a large segment on every real-time step would
    // cost a scan of its members.
    let last: Option<i64> = tx
        .prepare_cached(
            "SELECT size FROM segment_sizes WHERE segment_id = ?1 ORDER BY at DESC LIMIT 1",
        )?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let size: i64 = match last {
        Some(s) => s + entered.len() as i64 - exited.len() as i64,
        None => tx.query_row(
            "SELECT COUNT(*) FROM segment_members WHERE segment_id = ?1",
            [id],
            |r| r.get(0),
        )?,
    };
    tx.execute(
        "INSERT INTO segment_sizes (segment_id, at, size, entered, exited) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (segment_id, at) DO UPDATE SET size = excluded.size,
             entered = segment_sizes.entered + excluded.entered, exited = segment_sizes.exited + excluded.exited",
        params![id, bucket(at), size, entered.len() as i64, exited.len() as i64],
    )?;
    Ok(written)
}

/// Applies entries and exits and records the real ones (entering who is in, or leaving
/// who is out, is nothing: the write itself says which); a segment deleted meanwhile is
/// skipped.
pub(super) fn change_members(
    tx: &Transaction<'_>,
    changes: Vec<(i64, MembershipChange)>,
    at: Millis,
) -> Result<StepDone> {
    let mut out = StepDone::default();
    if changes.is_empty() {
        return Ok(out);
    }
    out.before = tx.query_row(sql::text::LAST_EVENT_ID, [], |r| r.get(0))?;
    for (id, change) in changes {
        let Ok(name) = segment_name(tx, id) else {
            continue;
        };
        let real = write_members(tx, id, change.entered, change.exited, at)?;
        if !real.entered.is_empty() || !real.exited.is_empty() {
            out.events
                .extend(record(tx, id, &name, &real.entered, &real.exited, at)?);
            out.memberships.push((id, real));
        }
    }
    Ok(out)
}

pub(super) fn stamps_in(c: &Connection) -> Result<Vec<(i64, Millis)>> {
    Ok(c.prepare_cached(sql::segments::SEGMENT_STAMPS)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?)
}

/// The event number index's position and the newest event id.
const NUMBERS_POSITION: &str =
    "SELECT IFNULL((SELECT value FROM counters WHERE name = 'event_numbers'), 0),
        (SELECT COALESCE(MAX(id), 0) FROM events)";

/// A person's events and analysed texts `(occurred_at, compound, complaint)`.
type Activity = (Vec<EventView>, Vec<(Millis, f64, f64)>);

/// A person's events (without context, text or message id, which the evaluator does not
/// read: half the cost of a load), the engine's membership events only with `membership`,
/// and analysed texts, oldest first.
pub(super) fn person_activity_in(
    c: &Connection,
    id: ProfileId,
    membership: bool,
) -> Result<Activity> {
    let events = c
        .prepare_cached(if membership {
            "SELECT id, '', profile_id, type, name, channel, source, properties, '{}', NULL, occurred_at, received_at
             FROM events WHERE profile_id IN (SELECT id FROM profiles WHERE canonical_id = ?1) ORDER BY occurred_at, id"
        } else {
            "SELECT id, '', profile_id, type, name, channel, source, properties, '{}', NULL, occurred_at, received_at
             FROM events WHERE profile_id IN (SELECT id FROM profiles WHERE canonical_id = ?1)
               AND NOT (source = 'segments' AND type = 'track' AND name IN ('Segment Entered', 'Segment Exited'))
             ORDER BY occurred_at, id"
        })?
        .query_map([id], event_view)?
        .collect::<std::result::Result<_, _>>()?;
    let texts = c
        .prepare_cached(
            "SELECT occurred_at, compound, complaint FROM text_analyses WHERE profile_id IN (SELECT id FROM profiles WHERE canonical_id = ?1) ORDER BY occurred_at, event_id",
        )?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<std::result::Result<_, _>>()?;
    Ok((events, texts))
}

pub(super) fn profile_segments_in(c: &Connection, id: ProfileId) -> Result<Vec<String>> {
    Ok(c.prepare_cached(sql::segments::PROFILE_SEGMENTS)?
        .query_map([id], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?)
}

#[async_trait]
impl SegmentStore for SqliteStore {
    fn dialect(&self) -> crate::Dialect {
        crate::Dialect::Sqlite
    }

    // Count and sample in one pass (a window count), so the conditions run once.
    async fn segment_matches(
        &self,
        c: crate::Compiled,
        sample: usize,
    ) -> Result<(i64, Vec<ProfileId>)> {
        self.read_heavy(move |conn| {
            let values = bind(&c.params);
            let rows: Vec<(ProfileId, i64)> = conn
                .prepare(&format!(
                    "SELECT p.id, COUNT(*) OVER () FROM profiles p WHERE p.id = p.canonical_id AND {} ORDER BY p.id LIMIT {}",
                    c.condition,
                    sample.max(1)
                ))?
                .query_map(params_from_iter(values.iter()), |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<std::result::Result<_, _>>()?;
            let count = rows.first().map(|r| r.1).unwrap_or(0);
            Ok((count, rows.into_iter().take(sample).map(|r| r.0).collect()))
        })
        .await
    }

    async fn segment_all_matches(&self, c: crate::Compiled) -> Result<Vec<ProfileId>> {
        self.read_heavy(move |conn| {
            let values = bind(&c.params);
            Ok(conn
                .prepare(&format!(
                    "SELECT p.id FROM profiles p WHERE p.id = p.canonical_id AND {} ORDER BY p.id",
                    c.condition
                ))?
                .query_map(params_from_iter(values.iter()), |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn create_segment(
        &self,
        name: &str,
        definition: &str,
        description: &str,
        kind: &str,
        at: Millis,
    ) -> Result<crate::SegmentRow> {
        let name = name.to_string();
        let definition = definition.to_string();
        let description = description.to_string();
        let kind = kind.to_string();
        let id = self
            .write(move |tx| {
                let taken: Option<i64> = tx
                    .query_row("SELECT id FROM segments WHERE name = ?1", [&name], |r| r.get(0))
                    .optional()?;
                if taken.is_some() {
                    return Err(StoreError::Conflict(format!("a segment named '{name}' exists")));
                }
                tx.execute(
                    "INSERT INTO segments (name, definition, description, kind, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                    params![name, definition, description, kind, at],
                )?;
                Ok(tx.last_insert_rowid())
            })
            .await?;
        self.segment(id).await
    }

    async fn update_segment(
        &self,
        id: i64,
        definition: &str,
        description: &str,
        at: Millis,
    ) -> Result<crate::SegmentRow> {
        let definition = definition.to_string();
        let description = description.to_string();
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE segments SET definition = ?2, description = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, definition, description, at],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("segment {id}")));
            }
            Ok(())
        })
        .await?;
        self.segment(id).await
    }

    async fn segments(&self) -> Result<Vec<crate::SegmentRow>> {
        self.read(|c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {SEGMENT_COLS} FROM segments s ORDER BY s.name"
            ))?
            .query_map([], row)?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn segment_definitions(&self) -> Result<Vec<crate::SegmentRow>> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT s.id, s.name, s.definition, s.description, s.kind, s.created_at, s.updated_at, s.refreshed_at, -1 FROM segments s ORDER BY s.name",
            )?
            .query_map([], row)?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn segment(&self, id: i64) -> Result<crate::SegmentRow> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {SEGMENT_COLS} FROM segments s WHERE s.id = ?1"
            ))?
            .query_row([id], row)
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("segment {id}")))
        })
        .await
    }

    async fn segment_by_name(&self, name: &str) -> Result<Option<crate::SegmentRow>> {
        let name = name.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {SEGMENT_COLS} FROM segments s WHERE s.name = ?1"
            ))?
            .query_row([name], row)
            .optional()?)
        })
        .await
    }

    async fn delete_segment(&self, id: i64) -> Result<()> {
        self.write(move |tx| {
            let n = tx.execute(sql::segments::DELETE_SEGMENT, [id])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("segment {id}")));
            }
            tx.execute(sql::segments::DELETE_SEGMENT_MEMBERS, [id])?;
            tx.execute(sql::segments::DELETE_SEGMENT_SIZES, [id])?;
            Ok(())
        })
        .await
    }

    async fn set_segment_members(
        &self,
        id: i64,
        members: Vec<ProfileId>,
        at: Millis,
    ) -> Result<crate::MembershipChange> {
        self.write(move |tx| {
            let name = segment_name(tx, id)?;
            let current: HashSet<ProfileId> = tx
                .prepare_cached(sql::segments::SEGMENT_MEMBERS)?
                .query_map([id], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?;
            let next: HashSet<ProfileId> = members.into_iter().collect();
            let mut entered: Vec<ProfileId> = next.difference(&current).copied().collect();
            let mut exited: Vec<ProfileId> = current.difference(&next).copied().collect();
            entered.sort_unstable();
            exited.sort_unstable();
            let real = write_members(tx, id, entered, exited, at)?;
            record(tx, id, &name, &real.entered, &real.exited, at)?;
            tx.execute(
                "UPDATE segments SET refreshed_at = ?2 WHERE id = ?1",
                params![id, at],
            )?;
            Ok(real)
        })
        .await
    }

    async fn segment_stamps(&self) -> Result<Vec<(i64, Millis)>> {
        self.read(stamps_in).await
    }

    async fn index_event_numbers(&self, max_events: usize) -> Result<usize> {
        let max_events = i64::try_from(max_events).unwrap_or(i64::MAX);
        self.write(move |tx| {
            let (from, last): (i64, i64) =
                tx.query_row(NUMBERS_POSITION, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let to = last.min(from.saturating_add(max_events));
            if to <= from {
                return Ok(0);
            }
            // Sorted by the table's key, the rows go in page by page rather than one
            // random page each.
            tx.prepare_cached(
                "INSERT OR IGNORE INTO event_numbers (name, type, prop, profile_id, occurred_at, event_id, value)
                 SELECT e.name, e.type, j.key, e.profile_id, e.occurred_at, e.id, j.value
                 FROM events e NOT INDEXED, json_each(e.properties) j
                 WHERE e.id > ?1 AND e.id <= ?2 AND e.name IS NOT NULL
                   AND json_type(e.properties) = 'object' AND j.type IN ('integer', 'real')
                 ORDER BY 1, 2, 3, 4, 5, 6",
            )?
            .execute(params![from, to])?;
            tx.prepare_cached(
                "INSERT INTO counters (name, value) VALUES ('event_numbers', ?1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )?
            .execute([to])?;
            Ok(usize::try_from(to - from).unwrap_or(usize::MAX))
        })
        .await
    }

    async fn event_numbers_position(&self) -> Result<(i64, i64)> {
        self.read(|c| Ok(c.query_row(NUMBERS_POSITION, [], |r| Ok((r.get(0)?, r.get(1)?)))?))
            .await
    }

    async fn segment_member_ids(
        &self,
        id: i64,
        after: ProfileId,
        limit: usize,
    ) -> Result<Vec<ProfileId>> {
        self.read(move |c| {
            Ok(c.prepare_cached(sql::segments::SEGMENT_MEMBER_IDS)?
                .query_map(params![id, after, limit as i64], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn segment_sizes(&self, id: i64, since: Millis) -> Result<Vec<crate::SegmentSize>> {
        self.read(move |c| {
            Ok(c.prepare_cached(sql::segments::SEGMENT_SIZES)?
                .query_map(params![id, since], |r| {
                    Ok(SegmentSize {
                        at: r.get(0)?,
                        size: r.get(1)?,
                        entered: r.get(2)?,
                        exited: r.get(3)?,
                    })
                })?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn profile_segments(&self, id: ProfileId) -> Result<Vec<String>> {
        self.read(move |c| profile_segments_in(c, id)).await
    }
}
