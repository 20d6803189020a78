//! SQLite side of support tickets.

use super::ingest::insert_events;
use super::SqliteStore;
use crate::tickets::{Ticket, TicketFilter, TicketMessage, TicketStore};
use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::EventRow;
use rapport_domain::time::Millis;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

const COLS: &str = "id, profile_id, subject, status, priority, assignee, tags, channel, snooze_until, created_at, updated_at, first_response_at, resolved_at, address, csat, csat_comment, team, origin";
const MSG_COLS: &str = "id, ticket_id, author, staff, body, message_id, email_id, at";
const SOURCE: &str = "support";
/// Tickets with a tag above which the inbox walks the newest tickets rather than
/// fetching all of the tag's (docs/benchmarks.md: 100,000 tickets, a tag on a quarter).
const COMMON_TAG: i64 = 2_000;

fn ticket(r: &Row<'_>) -> rusqlite::Result<Ticket> {
    let tags: String = r.get(6)?;
    Ok(Ticket {
        id: r.get(0)?,
        number: r.get(0)?,
        profile_id: r.get(1)?,
        subject: r.get(2)?,
        status: r.get(3)?,
        priority: r.get(4)?,
        assignee: r.get(5)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        channel: r.get(7)?,
        snooze_until: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        first_response_at: r.get(11)?,
        resolved_at: r.get(12)?,
        address: r.get(13)?,
        csat: r.get(14)?,
        csat_comment: r.get(15)?,
        team: r.get(16)?,
        origin: r.get(17)?,
    })
}

fn message(r: &Row<'_>) -> rusqlite::Result<TicketMessage> {
    Ok(TicketMessage {
        id: r.get(0)?,
        ticket_id: r.get(1)?,
        author: r.get(2)?,
        staff: r.get(3)?,
        body: r.get(4)?,
        message_id: r.get(5)?,
        email_id: r.get(6)?,
        at: r.get(7)?,
    })
}

fn tags_json(t: &Ticket) -> String {
    serde_json::to_string(&t.tags).unwrap_or_else(|_| "[]".into())
}

fn save(tx: &Transaction<'_>, t: &Ticket) -> Result<()> {
    tx.prepare_cached(
        "UPDATE tickets SET subject = ?2, status = ?3, priority = ?4, assignee = ?5, tags = ?6, snooze_until = ?7,
         updated_at = ?8, first_response_at = ?9, resolved_at = ?10, csat = ?11, csat_comment = ?12, team = ?13 WHERE id = ?1",
    )?
    .execute(params![
        t.id,
        t.subject,
        t.status,
        t.priority,
        t.assignee,
        tags_json(t),
        t.snooze_until,
        t.updated_at,
        t.first_response_at,
        t.resolved_at,
        t.csat,
        t.csat_comment,
        t.team
    ])?;
    tag(tx, t)
}

/// The ticket's tags as rows of `ticket_tags`, replaced.
fn tag(tx: &Transaction<'_>, t: &Ticket) -> Result<()> {
    tx.prepare_cached("DELETE FROM ticket_tags WHERE ticket_id = ?1")?
        .execute([t.id])?;
    tx.prepare_cached(
        "INSERT OR IGNORE INTO ticket_tags (tag, ticket_id) SELECT value, ?1 FROM json_each(?2)",
    )?
    .execute(params![t.id, tags_json(t)])?;
    Ok(())
}

fn add(tx: &Transaction<'_>, m: &TicketMessage) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO ticket_messages (ticket_id, author, staff, body, message_id, email_id, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        m.ticket_id,
        m.author,
        m.staff,
        m.body,
        m.message_id,
        m.email_id,
        m.at
    ])?;
    Ok(tx.last_insert_rowid())
}

fn ticket_in(c: &Connection, id: i64) -> Result<Option<Ticket>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLS} FROM tickets WHERE id = ?1"))?
            .query_row([id], ticket)
            .optional()?,
    )
}

fn messages_in(c: &Connection, id: i64) -> Result<Vec<TicketMessage>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {MSG_COLS} FROM ticket_messages WHERE ticket_id = ?1 ORDER BY id"
    ))?
    .query_map([id], message)?
    .collect::<std::result::Result<_, _>>()?)
}

#[async_trait]
impl TicketStore for SqliteStore {
    async fn open_ticket(
        &self,
        mut t: Ticket,
        mut first: TicketMessage,
        mut events: Vec<EventRow>,
    ) -> Result<Ticket> {
        self.write(move |tx| {
            if let Some(o) = &t.origin {
                let had = tx
                    .prepare_cached(&format!("SELECT {COLS} FROM tickets WHERE origin = ?1"))?
                    .query_row([o], ticket)
                    .optional()?;
                if let Some(had) = had {
                    return Ok(had);
                }
            }
            tx.prepare_cached(
                "INSERT INTO tickets (profile_id, subject, status, priority, assignee, tags, channel, snooze_until,
                 created_at, updated_at, first_response_at, resolved_at, address, team, origin)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?
            .execute(params![
                t.profile_id,
                t.subject,
                t.status,
                t.priority,
                t.assignee,
                tags_json(&t),
                t.channel,
                t.snooze_until,
                t.created_at,
                t.updated_at,
                t.first_response_at,
                t.resolved_at,
                t.address,
                t.team,
                t.origin
            ])?;
            t.id = tx.last_insert_rowid();
            t.number = t.id;
            tag(tx, &t)?;
            first.ticket_id = t.id;
            add(tx, &first)?;
            crate::common::stamp_events(&mut events, "ticket", t.id);
            insert_events(tx, &events, SOURCE)?;
            Ok(t)
        })
        .await
    }

    async fn add_ticket_message(
        &self,
        t: Ticket,
        mut m: TicketMessage,
        events: Vec<EventRow>,
    ) -> Result<TicketMessage> {
        self.write(move |tx| {
            m.ticket_id = t.id;
            m.id = add(tx, &m)?;
            save(tx, &t)?;
            insert_events(tx, &events, SOURCE)?;
            Ok(m)
        })
        .await
    }

    async fn update_ticket(&self, t: Ticket, events: Vec<EventRow>) -> Result<()> {
        self.write(move |tx| {
            save(tx, &t)?;
            insert_events(tx, &events, SOURCE)
        })
        .await
    }

    async fn ticket(&self, id: i64) -> Result<Option<Ticket>> {
        self.read(move |c| ticket_in(c, id)).await
    }

    async fn ticket_messages(&self, id: i64) -> Result<Vec<TicketMessage>> {
        self.read(move |c| messages_in(c, id)).await
    }

    async fn ticket_thread(&self, id: i64) -> Result<Option<(Ticket, Vec<TicketMessage>)>> {
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let Some(t) = ticket_in(&tx, id)? else {
                return Ok(None);
            };
            Ok(Some((t, messages_in(&tx, id)?)))
        })
        .await
    }

    async fn ticket_of_message(&self, message_id: &str) -> Result<Option<i64>> {
        let mid = message_id.to_string();
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT ticket_id FROM ticket_messages WHERE message_id = ?1")?
                    .query_row([mid], |r| r.get(0))
                    .optional()?,
            )
        })
        .await
    }

    async fn tickets(&self, f: TicketFilter) -> Result<Vec<Ticket>> {
        self.read(move |c| {
            let mut sql = format!("SELECT {COLS} FROM tickets WHERE 1 = 1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(s) = f.status {
                args.push(s.into());
                sql.push_str(&format!(" AND status = ?{}", args.len()));
            }
            if let Some(a) = f.assignee {
                args.push(a.into());
                sql.push_str(&format!(" AND assignee = ?{}", args.len()));
            }
            if f.unassigned {
                sql.push_str(" AND assignee IS NULL");
            }
            if let Some(team) = f.team {
                args.push(team.into());
                sql.push_str(&format!(" AND team = ?{}", args.len()));
            }
            if let Some(tag) = f.tag {
                // A common tag: walk the newest tickets and keep those with it (a few
                // hundred rows read); a rare one: fetch its tickets and sort them. The
                // planner cannot tell them apart (no per-value statistics), so it is told.
                let n: i64 = c
                    .prepare_cached("SELECT count(*) FROM ticket_tags WHERE tag = ?1")?
                    .query_row([&tag], |r| r.get(0))?;
                args.push(tag.into());
                sql.push_str(&if n > COMMON_TAG {
                    format!(
                        " AND EXISTS (SELECT 1 FROM ticket_tags x WHERE x.tag = ?{} AND x.ticket_id = tickets.id)",
                        args.len()
                    )
                } else {
                    format!(
                        " AND id IN (SELECT ticket_id FROM ticket_tags WHERE tag = ?{})",
                        args.len()
                    )
                });
            }
            if let Some(ps) = f.profiles {
                args.push(serde_json::to_string(&ps).unwrap_or_default().into());
                sql.push_str(&format!(
                    " AND profile_id IN (SELECT value FROM json_each(?{}))",
                    args.len()
                ));
            }
            args.push((f.limit as i64).into());
            sql.push_str(&format!(
                " ORDER BY updated_at DESC, id DESC LIMIT ?{}",
                args.len()
            ));
            Ok(c.prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(args), ticket)?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn wake_tickets(&self, now: Millis) -> Result<Vec<Ticket>> {
        self.write(move |tx| {
            let due: Vec<Ticket> = tx
                .prepare_cached(&format!(
                    "SELECT {COLS} FROM tickets WHERE status = 'snoozed' AND snooze_until <= ?1"
                ))?
                .query_map([now], ticket)?
                .collect::<std::result::Result<_, _>>()?;
            tx.prepare_cached(
                "UPDATE tickets SET status = 'open', snooze_until = NULL, updated_at = ?1
                 WHERE status = 'snoozed' AND snooze_until <= ?1",
            )?
            .execute([now])?;
            Ok(due)
        })
        .await
    }
}
