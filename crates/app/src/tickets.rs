//! Support tickets: opened by e-mail (the support mailbox), the API or the app; answered
//! by staff over e-mail with threading headers; a customer's reply — by e-mail, even to a
//! resolved or closed ticket — lands on the same ticket and reopens it. Every step is an
//! event on the person's timeline (`Ticket Opened`, `Ticket Replied`, `Ticket Resolved`,
//! `Ticket Status Changed`), written with the ticket in one transaction.

use crate::email::Email;
use rapport_domain::identifier::{IdentityKey, IdentityKind};
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::ticket::{self, Due, Priority, Sla, Status};
use rapport_domain::time::{now_millis, to_datetime, Millis};
use rapport_email::compose::Thread;
use rapport_email::imap::MailboxUrl;
use rapport_store::{DynStore, StoreError, Ticket, TicketFilter, TicketMessage};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Where support is set up (the settings store).
pub const SETTINGS_KEY: &str = "support";
/// The template staff replies go out with (created on first use; staff may restyle it).
pub const REPLY_TEMPLATE: &str = "support-reply";
const SOURCE: &str = "support";

fn invalid(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::invalid(field, reason)
}

fn field(e: rapport_domain::FieldError) -> StoreError {
    StoreError::invalid(&e.field, e.reason)
}

/// How support is reached: the address customers write to and replies come from, and
/// the IMAP mailbox that address delivers to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupportSettings {
    /// `support@shop.example`: on a sending domain.
    #[serde(default)]
    pub address: Option<String>,
    /// The name replies are signed with ("Shop support").
    #[serde(default)]
    pub name: Option<String>,
    /// `imap[s]://user:password@host:port/MAILBOX`; write-only (shown without password).
    #[serde(default)]
    pub mailbox: Option<String>,
    #[serde(default = "sixty")]
    #[schema(minimum = 1, maximum = 86400)]
    pub poll_seconds: u32,
    /// Service levels by priority (`urgent`, `high`, `normal`, `low`); a priority left
    /// out keeps its default.
    #[serde(default = "default_sla")]
    #[schema(value_type = Object)]
    pub sla: BTreeMap<String, Sla>,
    /// Who handles what: a ticket's `team` is one of these names.
    #[serde(default)]
    pub teams: Vec<Team>,
    /// Replies staff send often, picked by name when replying.
    #[serde(default)]
    pub canned_replies: Vec<CannedReply>,
    /// Opens a ticket for each social post (an event on channel `social`) that text
    /// analysis reads as a complaint, from the moment this is turned on.
    #[serde(default)]
    pub social_complaints: bool,
}

/// A support team and the staff on it (their e-mails).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub name: String,
    #[serde(default)]
    pub members: Vec<String>,
}

/// A reply staff send often. Its body is a template: the person's traits
/// (`{{ traits.firstName }}`, as the brand sends them), `{{ data.number }}`,
/// `{{ data.subject }}` and `{{ data.agent }}` are filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CannedReply {
    pub name: String,
    pub body: String,
}

fn default_sla() -> BTreeMap<String, Sla> {
    Priority::ALL
        .into_iter()
        .map(|p| (p.as_str().to_string(), Sla::default_for(p)))
        .collect()
}

impl SupportSettings {
    /// The policy for a priority (its default when unset or unknown).
    pub fn sla_for(&self, priority: &str) -> Sla {
        self.sla.get(priority).copied().unwrap_or_else(|| {
            Sla::default_for(Priority::parse("priority", priority).unwrap_or(Priority::Normal))
        })
    }

    /// The next promise a ticket owes and when it is due (`None`: it owes none now).
    pub fn due(&self, t: &Ticket) -> Option<(Due, Millis)> {
        let status = Status::parse("status", &t.status).ok()?;
        ticket::next_due(
            &self.sla_for(&t.priority),
            status,
            t.created_at,
            t.first_response_at,
        )
    }
}

fn sixty() -> u32 {
    60
}

impl Default for SupportSettings {
    fn default() -> Self {
        SupportSettings {
            address: None,
            name: None,
            mailbox: None,
            poll_seconds: 60,
            sla: default_sla(),
            teams: Vec::new(),
            canned_replies: Vec::new(),
            social_complaints: false,
        }
    }
}

pub async fn settings(store: &DynStore) -> Result<SupportSettings, StoreError> {
    crate::stored_settings(store, SETTINGS_KEY).await
}

/// As shown: the mailbox's password replaced.
pub fn shown(s: &SupportSettings) -> SupportSettings {
    SupportSettings {
        mailbox: s.mailbox.as_deref().map(rapport_email::smtp::redact),
        ..s.clone()
    }
}

/// Checks and saves the settings; a mailbox left as shown (`***`) keeps the saved one.
pub async fn set_settings(
    store: &DynStore,
    mut s: SupportSettings,
) -> Result<SupportSettings, StoreError> {
    if let Some(a) = &s.address {
        let a = rapport_domain::identifier::normalize_email(a)
            .map_err(|e| invalid("address", e.to_string()))?;
        let domain = a.rsplit('@').next().unwrap_or_default();
        if !store.domains().await?.iter().any(|d| d.domain == domain) {
            return Err(invalid(
                "address",
                format!("{domain} is not a sending domain: add it with POST /api/email/domains"),
            ));
        }
        s.address = Some(a);
    }
    if s.mailbox.as_deref().is_some_and(|m| m.contains("***")) {
        s.mailbox = settings(store).await?.mailbox;
    }
    if let Some(m) = &s.mailbox {
        MailboxUrl::parse(m).map_err(|e| invalid("mailbox", e.0))?;
    }
    if !(1..=86_400).contains(&s.poll_seconds) {
        return Err(invalid("poll_seconds", "from 1 to 86,400"));
    }
    for (p, sla) in &s.sla {
        Priority::parse(&format!("sla.{p}"), p).map_err(field)?;
        sla.check(&format!("sla.{p}")).map_err(field)?;
    }
    for (p, sla) in default_sla() {
        s.sla.entry(p).or_insert(sla);
    }
    check_teams(&mut s.teams)?;
    check_canned(&s.canned_replies)?;
    let v = serde_json::to_value(&s).map_err(|e| StoreError::Backend(e.to_string()))?;
    store.set_setting(SETTINGS_KEY, v, now_millis()).await?;
    Ok(s)
}

fn check_teams(teams: &mut [Team]) -> Result<(), StoreError> {
    if teams.len() > 100 {
        return Err(invalid("teams", "at most 100"));
    }
    let mut names: Vec<String> = Vec::new();
    for (i, t) in teams.iter_mut().enumerate() {
        t.name = t.name.trim().to_string();
        let lower = t.name.to_lowercase();
        if t.name.is_empty() || t.name.chars().count() > 50 {
            return Err(invalid(&format!("teams[{i}].name"), "1 to 50 characters"));
        }
        if names.contains(&lower) {
            return Err(invalid(
                &format!("teams[{i}].name"),
                format!("`{}` twice", t.name),
            ));
        }
        names.push(lower);
        for (j, m) in t.members.iter_mut().enumerate() {
            *m = rapport_domain::identifier::normalize_email(m)
                .map_err(|e| invalid(&format!("teams[{i}].members[{j}]"), e.to_string()))?;
        }
    }
    Ok(())
}

fn check_canned(canned: &[CannedReply]) -> Result<(), StoreError> {
    if canned.len() > 200 {
        return Err(invalid("canned_replies", "at most 200"));
    }
    for (i, c) in canned.iter().enumerate() {
        let name = c.name.trim();
        if name.is_empty() || name.chars().count() > 80 || name != c.name {
            return Err(invalid(
                &format!("canned_replies[{i}].name"),
                "1 to 80 characters, no spaces around",
            ));
        }
        if canned[..i].iter().any(|o| o.name == c.name) {
            return Err(invalid(
                &format!("canned_replies[{i}].name"),
                format!("`{name}` twice"),
            ));
        }
        let field = format!("canned_replies[{i}].body");
        ticket::body(&field, &c.body).map_err(self::field)?;
        canned_template(&c.body).map_err(|e| {
            invalid(
                &field,
                format!("line {}, column {}: {}", e.line, e.column, e.message),
            )
        })?;
    }
    Ok(())
}

fn canned_template(
    body: &str,
) -> Result<rapport_email::template::Compiled, rapport_email::template::TemplateError> {
    rapport_email::template::Compiled::new(&rapport_email::template::Source {
        subject: String::new(),
        html: String::new(),
        text: Some(body.to_string()),
    })
}

/// A canned reply written out for a ticket: the person's traits and the ticket filled in.
async fn canned(
    store: &DynStore,
    t: &Ticket,
    name: &str,
    agent: &str,
) -> Result<String, StoreError> {
    let s = settings(store).await?;
    let c = s
        .canned_replies
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| invalid("canned", format!("no canned reply named `{name}`")))?;
    let person = store.profile(t.profile_id).await?;
    let ctx = json!({"traits": person.traits, "data": {"number": t.number, "subject": t.subject, "agent": agent}});
    let out = canned_template(&c.body)
        .and_then(|c| c.render(&ctx))
        .map_err(|e| invalid("canned", e.message))?;
    Ok(out.text.trim().to_string())
}

/// A ticket as the API takes it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    /// `email:<address>`, or a profile id.
    #[schema(value_type = Object)]
    pub requester: Value,
    pub subject: String,
    pub body: String,
    /// low, normal (default), high, urgent.
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Who wrote a message on a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Author {
    Customer,
    /// A staff member (their e-mail, or an API key's label).
    Staff(String),
    /// An internal note by a staff member: never sent.
    Note(String),
}

fn event(
    profile: ProfileId,
    name: &str,
    id: String,
    at: Millis,
    props: Value,
) -> Result<EventRow, StoreError> {
    crate::timeline::event(profile, "support", name, &id, at, props)
}

fn tags(t: &[String]) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = Vec::new();
    for (i, x) in t.iter().enumerate() {
        let x = x.trim().to_lowercase();
        if x.is_empty() || x.len() > 50 {
            return Err(invalid(&format!("tags[{i}]"), "1 to 50 characters"));
        }
        if !out.contains(&x) {
            out.push(x);
        }
    }
    if out.len() > 20 {
        return Err(invalid("tags", "at most 20"));
    }
    Ok(out)
}

/// Opens a ticket through the API or the app.
pub async fn open(store: &DynStore, t: NewTicket, channel: &str) -> Result<Ticket, StoreError> {
    let subject = ticket::subject("subject", &t.subject).map_err(field)?;
    let body = ticket::body("body", &t.body).map_err(field)?;
    let priority =
        Priority::parse("priority", t.priority.as_deref().unwrap_or("normal")).map_err(field)?;
    let tags = tags(&t.tags)?;
    let (profile, address) =
        crate::profiles::named(store, &t.requester, "requester", SOURCE).await?;
    opened(
        store, profile, address, subject, body, channel, priority, tags, None, None,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn opened(
    store: &DynStore,
    profile: ProfileId,
    address: Option<String>,
    subject: String,
    body: String,
    channel: &str,
    priority: Priority,
    tags: Vec<String>,
    message_id: Option<String>,
    origin: Option<String>,
) -> Result<Ticket, StoreError> {
    let now = now_millis();
    let mut tags = tags;
    // What the words say, as tags the inbox filters by (staff may take them off).
    let analyzer = crate::text::current_analyzer(store).await?;
    for tag in analyzer.analyse(&format!("{subject}\n{body}")).tags() {
        if tags.len() < 20 && !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    let t = Ticket {
        id: 0,
        number: 0,
        profile_id: profile,
        address,
        subject: subject.clone(),
        status: Status::Open.as_str().into(),
        priority: priority.as_str().into(),
        assignee: None,
        team: None,
        tags,
        channel: channel.into(),
        snooze_until: None,
        created_at: now,
        updated_at: now,
        first_response_at: None,
        resolved_at: None,
        csat: None,
        csat_comment: None,
        origin,
    };
    let first = TicketMessage {
        id: 0,
        ticket_id: 0,
        author: "customer".into(),
        staff: None,
        body: body.clone(),
        message_id,
        email_id: None,
        at: now,
    };
    // The body is in the event so text analysis reads it like any ticket's words.
    let e = event(
        profile,
        "Ticket Opened",
        format!("ticket:opened:{}", uuid::Uuid::now_v7()),
        now,
        json!({"subject": subject, "body": body, "channel": channel, "priority": priority.as_str()}),
    )?;
    store.open_ticket(t, first, vec![e]).await
}

/// A ticket, or `NotFound`.
pub async fn get(store: &DynStore, id: i64) -> Result<Ticket, StoreError> {
    store
        .ticket(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("ticket {id}")))
}

/// A ticket with its messages, read together (at one moment), or
/// `NotFound`.
pub async fn thread(store: &DynStore, id: i64) -> Result<(Ticket, Vec<TicketMessage>), StoreError> {
    store
        .ticket_thread(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("ticket {id}")))
}

/// A reply on a ticket. A customer's reopens it; a staff member's goes out by e-mail
/// (threaded under the customer's last message) and leaves it pending, or `then`;
/// a note is kept on the ticket only.
pub async fn reply(
    store: &DynStore,
    email: &Email,
    id: i64,
    body: &str,
    author: Author,
    then: Option<Status>,
) -> Result<TicketMessage, StoreError> {
    let body = ticket::body("body", body).map_err(field)?;
    add(
        store,
        email,
        get(store, id).await?,
        body,
        author,
        then,
        None,
    )
    .await
}

/// A reply (or note) with one of the support settings' canned replies, written out for
/// the ticket's person; `agent` fills `{{ data.agent }}`.
pub async fn reply_canned(
    store: &DynStore,
    email: &Email,
    id: i64,
    name: &str,
    agent: &str,
    author: Author,
    then: Option<Status>,
) -> Result<TicketMessage, StoreError> {
    let t = get(store, id).await?;
    let text = canned(store, &t, name, agent).await?;
    let body = ticket::body("body", &text).map_err(field)?;
    add(store, email, t, body, author, then, None).await
}

async fn add(
    store: &DynStore,
    email: &Email,
    mut t: Ticket,
    body: String,
    author: Author,
    then: Option<Status>,
    message_id: Option<String>,
) -> Result<TicketMessage, StoreError> {
    let now = now_millis();
    let was = Status::parse("status", &t.status).map_err(field)?;
    let mut m = TicketMessage {
        id: 0,
        ticket_id: t.id,
        author: String::new(),
        staff: None,
        body: body.clone(),
        message_id,
        email_id: None,
        at: now,
    };
    let mut props = json!({"ticket": t.id, "subject": t.subject});
    let status = match &author {
        Author::Customer => {
            m.author = "customer".into();
            props["from"] = json!("customer");
            props["body"] = json!(body);
            if !was.is_active() {
                props["reopened"] = json!(true);
            }
            was.on_customer_reply()
        }
        Author::Staff(who) => {
            m.author = "staff".into();
            m.staff = Some(who.clone());
            props["from"] = json!("staff");
            let sent = send_reply(store, email, &t, &body).await?;
            m.email_id = Some(sent.0);
            m.message_id = Some(sent.1);
            t.first_response_at = t.first_response_at.or(Some(now));
            was.on_staff_reply(then)
        }
        Author::Note(who) => {
            m.author = "note".into();
            m.staff = Some(who.clone());
            then.unwrap_or(was)
        }
    };
    let mut events = Vec::new();
    if m.author != "note" {
        events.push(event(
            t.profile_id,
            "Ticket Replied",
            format!("ticket:{}:reply:{}", t.id, uuid::Uuid::now_v7()),
            now,
            props,
        )?);
    }
    moved(&mut t, was, status, now, &mut events)?;
    t.updated_at = now;
    let rate = matches!(author, Author::Staff(_)) && status == Status::Resolved && was != status;
    let saved = store.add_ticket_message(t.clone(), m, events).await?;
    if rate {
        ask_rating(store, email, &t).await;
    }
    Ok(saved)
}

/// Sets the ticket's status fields for a change from `was` to `now_is`, with its event.
fn moved(
    t: &mut Ticket,
    was: Status,
    now_is: Status,
    at: Millis,
    events: &mut Vec<EventRow>,
) -> Result<(), StoreError> {
    t.status = now_is.as_str().into();
    if now_is != Status::Snoozed {
        t.snooze_until = None;
    }
    if was == now_is {
        return Ok(());
    }
    if now_is == Status::Resolved {
        t.resolved_at = Some(at);
        let hours = (at - t.created_at) as f64 / 3_600_000.0;
        events.push(event(
            t.profile_id,
            "Ticket Resolved",
            format!("ticket:{}:resolved:{at}", t.id),
            at,
            json!({"ticket": t.id, "subject": t.subject, "hours_to_resolve": (hours * 10.0).round() / 10.0}),
        )?);
    } else {
        events.push(event(
            t.profile_id,
            "Ticket Status Changed",
            format!("ticket:{}:status:{}:{at}", t.id, now_is.as_str()),
            at,
            json!({"ticket": t.id, "from": was.as_str(), "to": now_is.as_str()}),
        )?);
    }
    Ok(())
}

/// Where the brand's mail about a ticket goes: the address the customer wrote from, else
/// the person's address as the e-mail capability chooses it.
fn reply_to(t: &Ticket) -> Value {
    match &t.address {
        Some(a) => json!(format!("email:{a}")),
        None => json!(t.profile_id),
    }
}

/// Sends a staff reply: to the address the customer wrote from, from the support
/// address, threaded under the ticket's messages. Returns the e-mail's id and its
/// Message-ID.
async fn send_reply(
    store: &DynStore,
    email: &Email,
    t: &Ticket,
    body: &str,
) -> Result<(String, String), StoreError> {
    let s = settings(store).await?;
    let from = s.address.clone().ok_or_else(|| {
        invalid(
            "address",
            "set the support address first (PUT /api/support/settings)",
        )
    })?;
    let src = rapport_email::template::Source {
        subject: "{{ data.subject }}".into(),
        html: "<div style=\"white-space:pre-wrap\">{{ data.body }}</div>".into(),
        text: Some("{{ data.body }}".into()),
    };
    email.ensure_template(REPLY_TEMPLATE, src).await?;
    let earlier: Vec<String> = store
        .ticket_messages(t.id)
        .await?
        .into_iter()
        .filter_map(|m| m.message_id)
        .collect();
    let thread = earlier.last().map(|last| Thread {
        in_reply_to: last.clone(),
        references: earlier.clone(),
    });
    let m = email
        .send(crate::email::SendRequest {
            template: REPLY_TEMPLATE.into(),
            to: reply_to(t),
            from: from.clone(),
            from_name: s.name.clone(),
            data: json!({"subject": ticket::reply_subject(t.id, &t.subject), "body": body}),
            idempotency_key: None,
            kind: Some("transactional".into()),
            not_before: None,
            untracked: true,
            thread,
        })
        .await?;
    if m.status == "skipped" {
        return Err(invalid(
            "body",
            format!(
                "the reply cannot be e-mailed: {}",
                m.last_error.unwrap_or_default()
            ),
        ));
    }
    let domain = from.rsplit('@').next().unwrap_or_default();
    let uuid =
        uuid::Uuid::parse_str(&m.public_id).map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok((m.public_id.clone(), format!("<{}@{domain}>", uuid.simple())))
}

/// What staff change on a ticket.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    /// A staff member's e-mail; `""` unassigns.
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// One of the support settings' teams; `""` takes it off any team.
    #[serde(default)]
    pub team: Option<String>,
    /// With `status: snoozed`: when it wakes (ISO-8601); a customer's reply wakes it too.
    #[serde(default)]
    pub snooze_until: Option<String>,
}

pub async fn update(
    store: &DynStore,
    email: &Email,
    id: i64,
    p: Patch,
) -> Result<Ticket, StoreError> {
    let mut t = get(store, id).await?;
    let now = now_millis();
    let was = Status::parse("status", &t.status).map_err(field)?;
    let to = match &p.status {
        Some(s) => Status::parse("status", s).map_err(field)?,
        None => was,
    };
    if let Some(pr) = &p.priority {
        t.priority = Priority::parse("priority", pr)
            .map_err(field)?
            .as_str()
            .into();
    }
    if let Some(a) = &p.assignee {
        t.assignee = match a.trim() {
            "" => None,
            a => Some(
                rapport_domain::identifier::normalize_email(a)
                    .map_err(|e| invalid("assignee", e.to_string()))?,
            ),
        };
    }
    if let Some(ts) = &p.tags {
        t.tags = tags(ts)?;
    }
    if let Some(team) = &p.team {
        t.team = match team.trim() {
            "" => None,
            name => {
                let teams = settings(store).await?.teams;
                let found = teams
                    .iter()
                    .find(|x| x.name.eq_ignore_ascii_case(name))
                    .ok_or_else(|| {
                        let known: Vec<&str> = teams.iter().map(|x| x.name.as_str()).collect();
                        invalid(
                            "team",
                            format!("`{name}` is not a team (teams: {})", known.join(", ")),
                        )
                    })?;
                Some(found.name.clone())
            }
        };
    }
    let mut events = Vec::new();
    moved(&mut t, was, to, now, &mut events)?;
    match (&p.snooze_until, to) {
        (Some(u), Status::Snoozed) => {
            let at = rapport_domain::time::parse_timestamp(u)
                .ok_or_else(|| invalid("snooze_until", "an ISO-8601 time"))?;
            if at <= now {
                return Err(invalid("snooze_until", "a time in the future"));
            }
            t.snooze_until = Some(at);
        }
        (Some(_), _) => return Err(invalid("snooze_until", "only with status snoozed")),
        (None, Status::Snoozed) if t.snooze_until.is_none() => {
            return Err(invalid("snooze_until", "when the ticket wakes up"))
        }
        _ => {}
    }
    t.updated_at = now;
    store.update_ticket(t.clone(), events).await?;
    if to == Status::Resolved && was != Status::Resolved {
        ask_rating(store, email, &t).await;
    }
    Ok(t)
}

/// The template the rating request goes out with (made on first use).
pub const RATING_TEMPLATE: &str = "support-rating";

/// After a staff member resolves a ticket: "How did we do?" with five one-click ratings,
/// from the support address. Resolving never fails for it: without a support address
/// nothing is asked, and a send that cannot be made is logged.
async fn ask_rating(store: &DynStore, email: &Email, t: &Ticket) {
    let asked = async {
        let s = settings(store).await?;
        let Some(from) = s.address.clone() else {
            return Ok(());
        };
        let src = rapport_email::template::Source {
            subject: "{{ data.subject }}".into(),
            html: "<p>Your request #{{ data.number }} is resolved. How did we do?</p>\
                   <p>{% for l in data.links %}<a href=\"{{ l.url }}\">{{ l.label }}</a> {% endfor %}</p>\
                   <p>One click is enough; you can add a word after.</p>"
                .into(),
            text: Some(
                "Your request #{{ data.number }} is resolved. How did we do?\n\n\
                 {% for l in data.links %}{{ l.label }}: {{ l.url }}\n{% endfor %}"
                    .into(),
            ),
        };
        email.ensure_template(RATING_TEMPLATE, src).await?;
        let labels = ["1 (bad)", "2", "3", "4", "5 (great)"];
        let mut links = Vec::new();
        for (i, label) in labels.iter().enumerate() {
            links.push(json!({"label": label, "url": email.rating_url(t.id, i as u16 + 1).await?}));
        }
        email
            .send(crate::email::SendRequest {
                template: RATING_TEMPLATE.into(),
                to: reply_to(t),
                from,
                from_name: s.name.clone(),
                data: json!({"subject": ticket::reply_subject(t.id, &t.subject), "number": t.id, "links": links}),
                idempotency_key: Some(format!("ticket:{}:rating:{}", t.id, t.resolved_at.unwrap_or_default())),
                kind: Some("transactional".into()),
                not_before: None,
                untracked: true,
                thread: None,
            })
            .await?;
        Ok::<(), StoreError>(())
    }
    .await;
    if let Err(e) = asked {
        tracing::warn!(ticket = t.id, error = %e, "the rating request was not sent");
    }
}

/// A customer's rating from the link in the rating e-mail (`score` 1–5; a later one
/// replaces it), with an optional comment; `CSAT Given` on their timeline.
pub async fn rate(
    store: &DynStore,
    number: i64,
    score: u16,
    comment: Option<&str>,
) -> Result<Ticket, StoreError> {
    if !(1..=5).contains(&score) {
        return Err(invalid("score", "from 1 to 5"));
    }
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > 2_000) {
        return Err(invalid("comment", "at most 2,000 characters"));
    }
    let mut t = get(store, number).await?;
    let now = now_millis();
    t.csat = Some(i64::from(score));
    if let Some(c) = comment {
        t.csat_comment = Some(c.to_string());
    }
    let e = event(
        t.profile_id,
        "CSAT Given",
        format!("ticket:{}:csat:{now}", t.id),
        now,
        json!({"ticket": t.id, "score": score, "comment": t.csat_comment}),
    )?;
    store.update_ticket(t.clone(), vec![e]).await?;
    Ok(t)
}

/// A customer's e-mail to support: a reply on the ticket it answers (by its
/// `In-Reply-To` / `References`, else the `[#number]` of its subject when the sender is
/// the ticket's person), else a new ticket. Machine mail (auto-replies) is left alone.
/// Returns what was done.
pub async fn receive(store: &DynStore, email: &Email, raw: &[u8]) -> Result<Value, StoreError> {
    let Some(mail) = rapport_email::inbound::read(raw) else {
        return Ok(json!({"done": "ignored", "why": "no sender"}));
    };
    if mail.automatic {
        return Ok(json!({"done": "ignored", "why": "automatic"}));
    }
    let key = match IdentityKey::parse(IdentityKind::Email, &mail.from) {
        Ok(k) => k,
        Err(_) => return Ok(json!({"done": "ignored", "why": "sender is not an address"})),
    };
    // The same message read twice (a poll interrupted before it flagged it) is one.
    if let Some(mid) = &mail.message_id {
        if let Some(t) = store.ticket_of_message(mid).await? {
            return Ok(json!({"done": "duplicate", "ticket": t}));
        }
    }
    let person =
        crate::profiles::person_for_email(store, &key, mail.from_name.as_deref(), SOURCE).await?;
    let body = ticket::body_received(&mail.text);
    let body = if body.is_empty() {
        "(empty message)".to_string()
    } else {
        body
    };
    let mut found = None;
    for id in ticket::referred_ids(&mail.in_reply_to, &mail.references) {
        if let Some(t) = store.ticket_of_message(&id).await? {
            found = Some(t);
            break;
        }
    }
    if found.is_none() {
        if let Some(n) = ticket::number_in_subject(&mail.subject) {
            // Only its own person may reply by number: a subject is easy to forge.
            if let Some(t) = store.ticket(n).await? {
                if store.profile(t.profile_id).await?.id == store.profile(person).await?.id {
                    found = Some(t.id);
                }
            }
        }
    }
    if let Some(id) = found {
        let t = get(store, id).await?;
        add(
            store,
            email,
            t,
            body,
            Author::Customer,
            None,
            mail.message_id,
        )
        .await?;
        return Ok(json!({"done": "replied", "ticket": id}));
    }
    // A mail's subject is what it is: cut to the limit, never refused.
    let cut: String = mail.subject.chars().take(ticket::MAX_SUBJECT).collect();
    let subject = ticket::subject("subject", &cut).unwrap_or_else(|_| "(no subject)".into());
    let t = opened(
        store,
        person,
        Some(key.value),
        subject,
        body,
        "email",
        Priority::Normal,
        Vec::new(),
        mail.message_id,
        None,
    )
    .await?;
    Ok(json!({"done": "opened", "ticket": t.id}))
}

/// Where the social-complaints step has read up to (an event id among analysed texts).
pub const SOCIAL_CURSOR: &str = "cursor.support.social";

/// Opens a ticket for each social post analysed since the last step that reads as a
/// complaint, when the brand has turned it on (else only moves past them: turning it
/// on never opens tickets for old posts). Each post opens one ticket at most, also when
/// a step is repeated after a crash. Returns how many were opened.
pub async fn social_step(store: &DynStore) -> Result<usize, StoreError> {
    let pos = store.counter(SOCIAL_CURSOR).await?;
    let rows = store.analyses_after(pos, 500).await?;
    let Some(&(last, _)) = rows.last() else {
        return Ok(0);
    };
    let mut opened_now = 0;
    if settings(store).await?.social_complaints {
        for (id, profile) in rows {
            let complaint = store
                .text_analysis(id)
                .await?
                .and_then(|a| a.intents.get("complaint").and_then(Value::as_f64))
                .is_some_and(|c| c >= rapport_text::INTENT_TAG_AT);
            if !complaint {
                continue;
            }
            let e = store.event(id).await?;
            let Some(text) = e.text.as_deref().filter(|_| e.channel == "social") else {
                continue;
            };
            // Whatever the post holds, the subject is one short line: a step that failed
            // on one post would stop every later one.
            let network: String = e.properties["network"]
                .as_str()
                .unwrap_or("social")
                .chars()
                .take(40)
                .collect();
            let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = line.chars().take(80).collect();
            let ellipsis = if short.len() < line.len() { "…" } else { "" };
            let subject = ticket::subject("subject", &format!("On {network}: {short}{ellipsis}"))
                .unwrap_or_else(|_| "A social post".into());
            opened(
                store,
                profile,
                None,
                subject,
                ticket::body_received(text),
                "social",
                Priority::Normal,
                Vec::new(),
                None,
                Some(format!("event:{id}")),
            )
            .await?;
            opened_now += 1;
        }
    }
    store.set_counter(SOCIAL_CURSOR, last).await?;
    Ok(opened_now)
}

/// Messages read per poll (the rest wait for the next).
const PER_POLL: usize = 100;

/// One poll of the support mailbox: each unseen message is received, then flagged seen
/// (after it was handled: a crash in between reads it again, and the Message-ID check
/// makes that harmless). Returns how many were read.
pub async fn poll_mailbox(store: &DynStore, email: &Email) -> Result<usize, StoreError> {
    let Some(url) = settings(store).await?.mailbox else {
        return Ok(0);
    };
    crate::email::mailbox::read_unseen(&url, "mailbox", PER_POLL, |raw| async move {
        receive(store, email, &raw).await.map(|_| ())
    })
    .await
}

/// Wakes snoozed tickets whose time has come, each with its event.
pub async fn wake(store: &DynStore) -> Result<usize, StoreError> {
    let now = now_millis();
    let woken = store.wake_tickets(now).await?;
    let mut events = Vec::new();
    for t in &woken {
        events.push(event(
            t.profile_id,
            "Ticket Status Changed",
            format!("ticket:{}:woke:{now}", t.id),
            now,
            json!({"ticket": t.id, "from": "snoozed", "to": "open"}),
        )?);
    }
    if !events.is_empty() {
        store.insert_events_raw(events, SOURCE).await?;
    }
    Ok(woken.len())
}

/// Active tickets whose next promise is due before `until` (overdue ones included),
/// soonest first, with what is due and when.
pub async fn breaching(
    store: &DynStore,
    until: Millis,
) -> Result<Vec<(Ticket, Due, Millis)>, StoreError> {
    let s = settings(store).await?;
    let mut out = Vec::new();
    for status in ["open", "pending", "snoozed"] {
        let f = TicketFilter {
            status: Some(status.into()),
            limit: 5_000,
            ..Default::default()
        };
        for t in store.tickets(f).await? {
            if let Some((due, at)) = s.due(&t) {
                if at <= until {
                    out.push((t, due, at));
                }
            }
        }
    }
    out.sort_by_key(|(t, _, at)| (*at, t.id));
    Ok(out)
}

/// Records `SLA Breached` on the timeline for each promise broken (once per ticket and
/// promise: the event's id says which). Returns how many were new or seen again.
pub async fn sla_step(store: &DynStore) -> Result<usize, StoreError> {
    let now = now_millis();
    let late = breaching(store, now).await?;
    let mut events = Vec::with_capacity(late.len());
    for (t, due, at) in &late {
        events.push(event(
            t.profile_id,
            "SLA Breached",
            format!("ticket:{}:sla:{}", t.id, due.as_str()),
            now,
            json!({"ticket": t.id, "subject": t.subject, "promise": due.as_str(), "due_at": to_datetime(*at).to_rfc3339(), "priority": t.priority, "assignee": t.assignee}),
        )?);
    }
    if !events.is_empty() {
        store.insert_events_once(events, SOURCE).await?;
    }
    Ok(0)
}

/// The support worker `rapport serve` runs: the mailbox polled every `poll_seconds`,
/// snoozed tickets woken, broken service levels recorded every minute.
pub async fn run(
    store: DynStore,
    email: Arc<Email>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut last: Option<std::time::Instant> = None;
    let mut last_sla: Option<std::time::Instant> = None;
    loop {
        let every = Duration::from_secs(u64::from(
            settings(&store)
                .await
                .map(|s| s.poll_seconds)
                .unwrap_or(60)
                .max(1),
        ));
        let step = async {
            let woken = wake(&store).await? + social_step(&store).await?;
            if last_sla.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                last_sla = Some(std::time::Instant::now());
                sla_step(&store).await?;
            }
            let read = if last.is_none_or(|t| t.elapsed() >= every) {
                last = Some(std::time::Instant::now());
                poll_mailbox(&store, &email).await?
            } else {
                0
            };
            Ok::<usize, StoreError>(woken + read)
        }
        .await;
        let second = Duration::from_secs(1);
        if !crate::worker::pause_after("support", step, second, second, &mut shutdown).await {
            return;
        }
    }
}

/// Lists tickets for the inbox.
pub async fn list(store: &DynStore, f: TicketFilter) -> Result<Vec<Ticket>, StoreError> {
    if let Some(s) = &f.status {
        Status::parse("status", s).map_err(field)?;
    }
    store.tickets(f).await
}

/// A person's tickets (every raw profile of theirs), the person as already read.
pub async fn of_person(
    store: &DynStore,
    p: &rapport_domain::model::ProfileView,
    limit: usize,
) -> Result<Vec<Ticket>, StoreError> {
    let mut ids = p.member_ids.clone();
    if !ids.contains(&p.id) {
        ids.push(p.id);
    }
    store
        .tickets(TicketFilter {
            profiles: Some(ids),
            limit,
            ..Default::default()
        })
        .await
}
