//! [`TicketStore`] and the shapes it speaks; implemented in `sqlite/tickets.rs` and
//! `postgres/tickets.rs`. A ticket's id is the number customers see (`#id`). Each change
//! (a ticket opened, a message added, a status changed) is written with its timeline
//! events in one transaction.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::Millis;

/// A support ticket.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Ticket {
    /// Also its number: customers see `#id` in subjects.
    pub id: i64,
    pub number: i64,
    /// The requester (a raw profile; the person is the one it belongs to now).
    pub profile_id: ProfileId,
    /// The address replies go to (the one the customer wrote from); else the person's.
    pub address: Option<String>,
    pub subject: String,
    /// open, pending, snoozed, resolved, closed.
    pub status: String,
    /// low, normal, high, urgent.
    pub priority: String,
    /// The staff member's e-mail.
    pub assignee: Option<String>,
    /// The team that handles it (one of the support settings' teams).
    pub team: Option<String>,
    pub tags: Vec<String>,
    /// Where it was opened: email, api, portal, social.
    pub channel: String,
    pub snooze_until: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub first_response_at: Option<Millis>,
    pub resolved_at: Option<Millis>,
    /// The customer's satisfaction rating (1–5) after resolution, and their comment.
    pub csat: Option<i64>,
    pub csat_comment: Option<String>,
    /// What opened it when a person did not (`event:<id>`, a social complaint): a ticket
    /// is opened once per origin.
    pub origin: Option<String>,
}

/// One message on a ticket.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct TicketMessage {
    pub id: i64,
    pub ticket_id: i64,
    /// customer, staff, or note (internal, never sent).
    pub author: String,
    /// The staff member who wrote it.
    pub staff: Option<String>,
    pub body: String,
    /// Its RFC 5322 Message-ID (`<…>`), which replies refer to.
    pub message_id: Option<String>,
    /// The e-mail that carried a staff reply (`/api/email/messages/{id}`).
    pub email_id: Option<String>,
    pub at: Millis,
}

/// Which tickets to list, newest change first.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub status: Option<String>,
    /// Assigned to this staff member.
    pub assignee: Option<String>,
    /// Assigned to nobody.
    pub unassigned: bool,
    /// Handled by this team.
    pub team: Option<String>,
    /// Carrying this tag.
    pub tag: Option<String>,
    /// Opened by any of these raw profiles (a person's members).
    pub profiles: Option<Vec<ProfileId>>,
    pub limit: usize,
}

#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Opens a ticket with its first message and events; returns it with its number. A
    /// ticket with an origin already opened is returned as it is, nothing written.
    async fn open_ticket(
        &self,
        t: Ticket,
        first: TicketMessage,
        events: Vec<EventRow>,
    ) -> Result<Ticket>;
    /// Adds a message to `t.id` and saves the ticket as it now stands, with the events.
    async fn add_ticket_message(
        &self,
        t: Ticket,
        m: TicketMessage,
        events: Vec<EventRow>,
    ) -> Result<TicketMessage>;
    /// Saves a ticket's fields (status, priority, assignee, tags, snooze, times).
    async fn update_ticket(&self, t: Ticket, events: Vec<EventRow>) -> Result<()>;
    async fn ticket(&self, id: i64) -> Result<Option<Ticket>>;
    async fn ticket_messages(&self, ticket: i64) -> Result<Vec<TicketMessage>>;
    /// A ticket and its messages, oldest first, as they stood at one moment: read apart, a
    /// reply committed between the reads shows its message beside the ticket's old status.
    async fn ticket_thread(&self, id: i64) -> Result<Option<(Ticket, Vec<TicketMessage>)>>;
    /// The ticket a message with this Message-ID is on.
    async fn ticket_of_message(&self, message_id: &str) -> Result<Option<i64>>;
    async fn tickets(&self, f: TicketFilter) -> Result<Vec<Ticket>>;
    /// Snoozed tickets whose time has come, woken (back to open); returns them.
    async fn wake_tickets(&self, now: Millis) -> Result<Vec<Ticket>>;
}
