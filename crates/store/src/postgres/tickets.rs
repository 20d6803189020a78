//! PostgreSQL side of support tickets.

use super::ingest::write_events;
use super::PgStore;
use crate::tickets::{Ticket, TicketFilter, TicketMessage, TicketStore};
use crate::Result;
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use rapport_domain::resolve::EventRow;
use rapport_domain::time::Millis;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

const COLS: &str = "id, profile_id, subject, status, priority, assignee, tags, channel, snooze_until, created_at, updated_at, first_response_at, resolved_at, address, csat, csat_comment, team, origin";
const MSG_COLS: &str = "id, ticket_id, author, staff, body, message_id, email_id, at";
const SOURCE: &str = "support";

fn ticket(r: &Row) -> Ticket {
    let tags: String = r.get(6);
    Ticket {
        id: r.get(0),
        number: r.get(0),
        profile_id: r.get(1),
        subject: r.get(2),
        status: r.get(3),
        priority: r.get(4),
        assignee: r.get(5),
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        channel: r.get(7),
        snooze_until: r.get(8),
        created_at: r.get(9),
        updated_at: r.get(10),
        first_response_at: r.get(11),
        resolved_at: r.get(12),
        address: r.get(13),
        csat: r.get(14),
        csat_comment: r.get(15),
        team: r.get(16),
        origin: r.get(17),
    }
}

fn message(r: &Row) -> TicketMessage {
    TicketMessage {
        id: r.get(0),
        ticket_id: r.get(1),
        author: r.get(2),
        staff: r.get(3),
        body: r.get(4),
        message_id: r.get(5),
        email_id: r.get(6),
        at: r.get(7),
    }
}

fn tags_json(t: &Ticket) -> String {
    serde_json::to_string(&t.tags).unwrap_or_else(|_| "[]".into())
}

async fn save(tx: &Transaction<'_>, t: &Ticket) -> Result<()> {
    tx.execute(
        "UPDATE tickets SET subject = $2, status = $3, priority = $4, assignee = $5, tags = $6, snooze_until = $7,
         updated_at = $8, first_response_at = $9, resolved_at = $10, csat = $11, csat_comment = $12, team = $13 WHERE id = $1",
        &[
            &t.id,
            &t.subject,
            &t.status,
            &t.priority,
            &t.assignee,
            &tags_json(t),
            &t.snooze_until,
            &t.updated_at,
            &t.first_response_at,
            &t.resolved_at,
            &t.csat,
            &t.csat_comment,
            &t.team,
        ],
    )
    .await?;
    tag(tx, t).await
}

/// The ticket's tags as rows of `ticket_tags`, replaced.
async fn tag(tx: &Transaction<'_>, t: &Ticket) -> Result<()> {
    tx.execute("DELETE FROM ticket_tags WHERE ticket_id = $1", &[&t.id])
        .await?;
    tx.execute(
        "INSERT INTO ticket_tags (tag, ticket_id) SELECT DISTINCT x, $1::bigint FROM unnest($2::text[]) AS x",
        &[&t.id, &t.tags],
    )
    .await?;
    Ok(())
}

async fn add(tx: &Transaction<'_>, m: &TicketMessage) -> Result<i64> {
    Ok(tx
        .query_one(
            "INSERT INTO ticket_messages (ticket_id, author, staff, body, message_id, email_id, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[
                &m.ticket_id,
                &m.author,
                &m.staff,
                &m.body,
                &m.message_id,
                &m.email_id,
                &m.at,
            ],
        )
        .await?
        .get(0))
}

async fn ticket_in(c: &impl GenericClient, id: i64) -> Result<Option<Ticket>> {
    Ok(
        c.query_opt(&format!("SELECT {COLS} FROM tickets WHERE id = $1"), &[&id])
            .await?
            .as_ref()
            .map(ticket),
    )
}

async fn messages_in(c: &impl GenericClient, id: i64) -> Result<Vec<TicketMessage>> {
    Ok(c.query(
        &format!("SELECT {MSG_COLS} FROM ticket_messages WHERE ticket_id = $1 ORDER BY id"),
        &[&id],
    )
    .await?
    .iter()
    .map(message)
    .collect())
}

#[async_trait]
impl TicketStore for PgStore {
    async fn open_ticket(
        &self,
        mut t: Ticket,
        mut first: TicketMessage,
        mut evs: Vec<EventRow>,
    ) -> Result<Ticket> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        if let Some(o) = &t.origin {
            let had = tx
                .query_opt(
                    &format!("SELECT {COLS} FROM tickets WHERE origin = $1"),
                    &[o],
                )
                .await?;
            if let Some(had) = had {
                return Ok(ticket(&had));
            }
        }
        t.id = tx
            .query_one(
                "INSERT INTO tickets (profile_id, subject, status, priority, assignee, tags, channel, snooze_until,
                 created_at, updated_at, first_response_at, resolved_at, address, team, origin)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
                &[
                    &t.profile_id,
                    &t.subject,
                    &t.status,
                    &t.priority,
                    &t.assignee,
                    &tags_json(&t),
                    &t.channel,
                    &t.snooze_until,
                    &t.created_at,
                    &t.updated_at,
                    &t.first_response_at,
                    &t.resolved_at,
                    &t.address,
                    &t.team,
                    &t.origin,
                ],
            )
            .await?
            .get(0);
        t.number = t.id;
        tag(&tx, &t).await?;
        first.ticket_id = t.id;
        add(&tx, &first).await?;
        crate::common::stamp_events(&mut evs, "ticket", t.id);
        write_events(&tx, &evs, SOURCE).await?;
        tx.commit().await?;
        Ok(t)
    }

    async fn add_ticket_message(
        &self,
        t: Ticket,
        mut m: TicketMessage,
        evs: Vec<EventRow>,
    ) -> Result<TicketMessage> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        m.ticket_id = t.id;
        m.id = add(&tx, &m).await?;
        save(&tx, &t).await?;
        write_events(&tx, &evs, SOURCE).await?;
        tx.commit().await?;
        Ok(m)
    }

    async fn update_ticket(&self, t: Ticket, evs: Vec<EventRow>) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        save(&tx, &t).await?;
        write_events(&tx, &evs, SOURCE).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ticket(&self, id: i64) -> Result<Option<Ticket>> {
        ticket_in(&self.client().await?, id).await
    }

    async fn ticket_messages(&self, id: i64) -> Result<Vec<TicketMessage>> {
        messages_in(&self.client().await?, id).await
    }

    async fn ticket_thread(&self, id: i64) -> Result<Option<(Ticket, Vec<TicketMessage>)>> {
        let mut c = self.client().await?;
        let tx = c
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await?;
        let Some(t) = ticket_in(&tx, id).await? else {
            return Ok(None);
        };
        let messages = messages_in(&tx, id).await?;
        tx.commit().await?;
        Ok(Some((t, messages)))
    }

    async fn ticket_of_message(&self, message_id: &str) -> Result<Option<i64>> {
        let c = self.client().await?;
        Ok(c.query_opt(
            "SELECT ticket_id FROM ticket_messages WHERE message_id = $1",
            &[&message_id],
        )
        .await?
        .map(|r| r.get(0)))
    }

    async fn tickets(&self, f: TicketFilter) -> Result<Vec<Ticket>> {
        let c = self.client().await?;
        let mut sql = format!("SELECT {COLS} FROM tickets WHERE 1 = 1");
        let limit = f.limit as i64;
        let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(s) = &f.status {
            args.push(s);
            sql.push_str(&format!(" AND status = ${}", args.len()));
        }
        if let Some(a) = &f.assignee {
            args.push(a);
            sql.push_str(&format!(" AND assignee = ${}", args.len()));
        }
        if f.unassigned {
            sql.push_str(" AND assignee IS NULL");
        }
        if let Some(team) = &f.team {
            args.push(team);
            sql.push_str(&format!(" AND team = ${}", args.len()));
        }
        if let Some(tag) = &f.tag {
            args.push(tag);
            sql.push_str(&format!(
                " AND id IN (SELECT ticket_id FROM ticket_tags WHERE tag = ${})",
                args.len()
            ));
        }
        if let Some(ps) = &f.profiles {
            args.push(ps);
            sql.push_str(&format!(" AND profile_id = ANY(${})", args.len()));
        }
        args.push(&limit);
        sql.push_str(&format!(
            " ORDER BY updated_at DESC, id DESC LIMIT ${}",
            args.len()
        ));
        Ok(c.query(&sql, &args).await?.iter().map(ticket).collect())
    }

    async fn wake_tickets(&self, now: Millis) -> Result<Vec<Ticket>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!(
                "UPDATE tickets SET status = 'open', snooze_until = NULL, updated_at = $1
                 WHERE status = 'snoozed' AND snooze_until <= $1 RETURNING {COLS}"
            ),
            &[&now],
        )
        .await?
        .iter()
        .map(ticket)
        .collect())
    }
}
