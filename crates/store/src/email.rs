//! [`EmailStore`] and the shapes it speaks; implemented in `sqlite/email.rs` and
//! `postgres/email.rs`. A message is rendered, signed and stored before it is sent (the
//! outbox); each change of a message's state is written with its timeline event in one
//! transaction, so the timeline never says more or less than the outbox.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::Millis;

/// One DKIM key of a sending domain. The private key never leaves the server.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct DkimKeyRow {
    /// `ed25519` or `rsa`.
    pub algorithm: String,
    pub selector: String,
    #[serde(skip)]
    pub private_key: String,
    /// The `p=` value of the DNS record.
    pub public_key: String,
}

/// A sending domain and its keys.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct EmailDomain {
    pub domain: String,
    pub keys: Vec<DkimKeyRow>,
    pub created_at: Millis,
}

/// A template as staff saved it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct EmailTemplate {
    pub id: i64,
    pub name: String,
    pub subject: String,
    pub html: String,
    pub text: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// One message to one person, from the moment it was decided.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct EmailMessage {
    pub id: i64,
    /// The id in its Message-ID and tracking tokens (a UUID).
    pub public_id: String,
    pub idempotency_key: Option<String>,
    /// `marketing` or `transactional`.
    pub kind: String,
    pub template_id: Option<i64>,
    pub campaign_id: Option<i64>,
    pub profile_id: ProfileId,
    pub to_address: String,
    /// Why this address (`primary`, `engaged`, `newest`, `given`).
    pub address_reason: String,
    pub from_address: String,
    pub subject: String,
    /// The VERP envelope sender.
    pub return_path: String,
    /// The signed message as handed to the relay.
    #[serde(skip)]
    pub raw: Vec<u8>,
    /// The links click tokens point to, in order.
    pub links: Vec<String>,
    /// `queued`, `delivered` (the relay took it), `failed` (gave up), `bounced`,
    /// `skipped` (suppressed or without consent: nothing was sent).
    pub status: String,
    pub attempts: i64,
    pub next_at: Millis,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub delivered_at: Option<Millis>,
    pub opened_at: Option<Millis>,
    pub clicked_at: Option<Millis>,
    pub unsubscribed_at: Option<Millis>,
    /// The A/B test variant this message tested (none outside a test).
    pub variant: Option<i64>,
}

/// An address Rapport will not send to, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Suppression {
    pub address: String,
    /// `hard_bounce`, `complaint`, `soft_bounces` or `manual`.
    pub reason: String,
    pub detail: Option<String>,
    pub created_at: Millis,
}

/// An A/B test's messages per variant (skipped ones were never sent); `?1` is the
/// campaign (PostgreSQL spells it `$1`).
pub(crate) const VARIANTS: &str = "SELECT variant, COUNT(*), COUNT(opened_at), COUNT(clicked_at) FROM email_messages WHERE campaign_id = ?1 AND variant IS NOT NULL AND status <> 'skipped' GROUP BY variant ORDER BY variant";

/// What is known of one address when choosing where a send goes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AddressFacts {
    pub address: String,
    pub primary: bool,
    pub last_engaged: Option<Millis>,
    pub suppressed: bool,
}

/// A campaign: one template to an audience (a segment evaluated at send time, or a list
/// of people), paced, paused, resumed or cancelled.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct EmailCampaign {
    pub id: i64,
    pub name: String,
    pub template_id: i64,
    pub from_address: String,
    pub from_name: Option<String>,
    /// `marketing` (default) or `transactional`.
    pub kind: String,
    /// `{"segment": NAME_OR_ID}` or `{"profiles": [ID, …]}`.
    #[schema(value_type = Object)]
    pub audience: serde_json::Value,
    /// `draft`, `scheduled`, `planning`, `sending`, `paused`, `done`, `cancelled`, `failed`.
    pub status: String,
    pub send_at: Option<Millis>,
    /// Messages per minute handed to the relay (none: as fast as it takes them).
    pub per_minute: Option<i64>,
    /// Messages made so far, and people skipped (no consent, suppressed, no address).
    pub planned: i64,
    pub skipped: i64,
    pub error: Option<String>,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    /// The A/B test, when the campaign has one: its variants, sample, metric, wait and,
    /// once chosen, the winner (shape: `rapport_app::email::campaigns::AbTest`).
    #[schema(value_type = Option<Object>)]
    pub ab: Option<serde_json::Value>,
}

/// A campaign's report.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, utoipa::ToSchema)]
pub struct CampaignReport {
    /// Messages by status (`queued`, `delivered`, `bounced`, `skipped`, …).
    pub statuses: std::collections::BTreeMap<String, i64>,
    /// Messages opened by a person (machine opens left out), clicked, unsubscribed from.
    pub opened: i64,
    pub clicked: i64,
    pub unsubscribed: i64,
    /// Clicks per link, most clicked first.
    pub links: Vec<(String, i64)>,
    /// Why people were skipped, with counts.
    pub skipped: Vec<(String, i64)>,
    /// An A/B test's sample, per variant.
    pub variants: Vec<VariantReport>,
}

/// One A/B variant's test messages: sent (not skipped), opened by a person, clicked.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, utoipa::ToSchema)]
pub struct VariantReport {
    pub variant: i64,
    pub sent: i64,
    pub opened: i64,
    pub clicked: i64,
}

/// What a person did with a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Engagement {
    Open,
    Click(String),
    Unsubscribe,
}

/// One engagement to record with its timeline event.
#[derive(Debug, Clone)]
pub struct Engaged {
    /// The message's public id.
    pub message: String,
    pub campaign: Option<i64>,
    pub what: Engagement,
    pub at: Millis,
    pub event: EventRow,
}

/// Which messages to list.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    pub profile: Option<Vec<ProfileId>>,
    pub status: Option<String>,
    pub limit: usize,
}

/// E-mail: sending domains and keys, templates, the outbox of messages with their
/// engagement, suppressions and primary addresses.
#[async_trait]
pub trait EmailStore: Send + Sync {
    /// Adds a domain with its keys; `Conflict` when it exists.
    async fn add_domain(&self, d: EmailDomain) -> Result<()>;
    async fn domains(&self) -> Result<Vec<EmailDomain>>;
    /// Inserts (`id` 0) or updates a template; returns its id. `Conflict` on a taken name.
    async fn save_template(&self, t: EmailTemplate) -> Result<i64>;
    async fn templates(&self) -> Result<Vec<EmailTemplate>>;
    /// By id (digits) or name.
    async fn template(&self, id_or_name: &str) -> Result<Option<EmailTemplate>>;
    async fn delete_template(&self, id: i64) -> Result<()>;
    /// Stores messages with their timeline events in one transaction. A message whose
    /// idempotency key is already stored is not stored again: the stored one is returned
    /// in its place (and its event is not written).
    async fn queue(&self, msgs: Vec<(EmailMessage, Vec<EventRow>)>) -> Result<Vec<EmailMessage>>;
    /// Saves a message's status, attempts, next time, error and delivery time, with the
    /// events the change makes, in one transaction.
    async fn update_message(&self, m: EmailMessage, events: Vec<EventRow>) -> Result<()> {
        self.update_messages(vec![(m, events)]).await
    }
    /// As [`EmailStore::update_message`] for many messages, in one transaction.
    async fn update_messages(&self, ms: Vec<(EmailMessage, Vec<EventRow>)>) -> Result<()>;
    /// Claims up to `limit` queued messages due by `now` for sending: marks them `sending`
    /// (with `next_at` = the claim time) in one transaction and returns them. Two workers
    /// never claim the same message.
    async fn claim(&self, now: Millis, limit: usize) -> Result<Vec<EmailMessage>>;
    /// Messages claimed before `before` and never settled (their worker died while the
    /// relay had them) become `unknown`: they may have arrived, so they are not sent
    /// again. Returns how many.
    async fn expire_claims(&self, before: Millis) -> Result<i64>;
    async fn message(&self, public_id: &str) -> Result<Option<EmailMessage>>;
    /// Newest first.
    async fn messages(&self, q: MessageQuery) -> Result<Vec<EmailMessage>>;
    /// Records opens, clicks and unsubscribes with their events, in one transaction (the
    /// tracking endpoints commit together what arrived together); a message keeps the
    /// first time of each, and every click is counted per link.
    async fn engage(&self, items: Vec<Engaged>) -> Result<()>;
    /// Inserts (`id` 0) or saves a campaign; returns its id. `Conflict` on a taken name.
    async fn save_campaign(&self, c: EmailCampaign) -> Result<i64>;
    /// Newest first.
    async fn campaigns(&self) -> Result<Vec<EmailCampaign>>;
    async fn campaign(&self, id: i64) -> Result<Option<EmailCampaign>>;
    /// The people a campaign already has a message for (planning resumes past them).
    async fn campaign_people(&self, id: i64) -> Result<Vec<ProfileId>>;
    /// Moves a campaign's messages from one status to another (pause, resume, cancel);
    /// returns how many moved.
    async fn move_campaign_messages(&self, id: i64, from: &str, to: &str) -> Result<i64>;
    async fn campaign_report(&self, id: i64) -> Result<CampaignReport>;
    /// Adds or replaces a suppression.
    async fn suppress(&self, s: Suppression) -> Result<()>;
    /// Removes one; false when the address was not suppressed.
    async fn unsuppress(&self, address: &str) -> Result<bool>;
    async fn suppressions(&self, limit: usize) -> Result<Vec<Suppression>>;
    /// Marks an address as its owner's chosen primary address (or clears it).
    async fn set_primary(&self, address: &str, primary: bool, at: Millis) -> Result<()>;
    /// What is known of each address, in order.
    async fn address_facts(&self, addresses: Vec<String>) -> Result<Vec<AddressFacts>>;
}
