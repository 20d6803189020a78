//! E-mail: sending domains with DKIM keys, templates, transactional sends, the delivery
//! worker (the outbox: rendered, signed and stored before it is sent), tracking of opens
//! and clicks, one-click unsubscribe, suppressions. Each step of a message is an event on
//! the person's timeline (`Email Sent`, `Email Delivered`, `Email Opened`, `Email Link
//! Clicked`, `Email Bounced`, `Unsubscribed`), usable in segments and rules.
//! See docs/email.md.

use crate::changes::{announce, Change};
use rapport_domain::identifier::{normalize_email, IdentityKind};
use rapport_domain::model::{ConsentStatus, Frequency};
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::{now_millis, Millis};
use rapport_domain::IdentityKey;
use rapport_email::address::{self, Candidate, Reason};
use rapport_email::compose::{self, domain_of, Outgoing, Tracking};
use rapport_email::dkim::{Algorithm, DkimKey, Signer};
use rapport_email::imap::MailboxUrl;
use rapport_email::smtp::{Outcome, Relay};
use rapport_email::template::{Compiled, Links, Source};
use rapport_email::token::{Action, Token};
use rapport_store::{
    ConsentInput, DkimKeyRow, DynStore, EmailDomain, EmailMessage, EmailTemplate, Engaged,
    Engagement, StoreError, Suppression,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use uuid::Uuid;

/// The source of the events e-mail writes.
pub mod campaigns;
pub mod mailbox;

pub const SOURCE: &str = "email";
const SETTINGS: &str = "email";
const SECRET: &str = "email.secret";
/// Delivery attempts before a message that keeps failing temporarily is given up.
pub const MAX_ATTEMPTS: i64 = 8;
/// Sends of one message that soft-bounced before its address is suppressed.
pub const SOFT_BOUNCES: i64 = 3;

fn invalid(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// What staff set (`/api/email/settings`). The relay and mailbox URLs hold passwords:
/// they are written, never read back (the API shows them redacted).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EmailSettings {
    pub relay_url: Option<String>,
    /// The public base URL of this server, for tracking and unsubscribe links.
    pub public_url: String,
    /// Marketing sends need e-mail marketing consent `granted`, or only that it is not
    /// `denied` (`not_denied`).
    pub marketing_consent: String,
    /// Rewrite links and add an open pixel.
    pub track: bool,
    /// How many SMTP connections the pool keeps.
    #[schema(minimum = 1, maximum = 64)]
    pub connections: u32,
    /// Opens this soon after delivery are counted as machine opens (a privacy proxy or a
    /// security gateway fetching images on arrival); 0 turns the rule off.
    #[schema(minimum = 0, maximum = 86400)]
    pub machine_open_seconds: u32,
    /// How long a claimed message may stay `sending` before its worker counts as dead
    /// and the message `unknown` (see `deliver_step`).
    #[schema(minimum = 1, maximum = 86400)]
    pub claim_timeout_seconds: u32,
    /// The IMAP mailbox bounces and complaint reports arrive in
    /// (`imap[s]://user:password@host:port/MAILBOX`), polled by `rapport serve`.
    pub bounce_mailbox: Option<String>,
    /// Seconds between two polls of the bounce mailbox.
    #[schema(minimum = 1, maximum = 86400)]
    pub bounce_poll_seconds: u32,
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            relay_url: None,
            public_url: "http://127.0.0.1:8080".into(),
            marketing_consent: "granted".into(),
            track: true,
            connections: 4,
            machine_open_seconds: 60,
            claim_timeout_seconds: 120,
            bounce_mailbox: None,
            bounce_poll_seconds: 60,
        }
    }
}

impl EmailSettings {
    fn check(&self) -> Result<(), StoreError> {
        if let Some(u) = &self.relay_url {
            Relay::new(u, 1).map_err(|e| invalid("relay_url", e.0.clone()))?;
        }
        let u = url::Url::parse(&self.public_url)
            .map_err(|e| invalid("public_url", format!("not a URL: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(invalid("public_url", "must be http:// or https://"));
        }
        if !matches!(self.marketing_consent.as_str(), "granted" | "not_denied") {
            return Err(invalid(
                "marketing_consent",
                "use `granted` or `not_denied`",
            ));
        }
        if self.machine_open_seconds > 86_400 {
            return Err(invalid("machine_open_seconds", "from 0 to 86,400"));
        }
        if !(1..=86_400).contains(&self.claim_timeout_seconds) {
            return Err(invalid("claim_timeout_seconds", "from 1 to 86,400"));
        }
        if !(1..=64).contains(&self.connections) {
            return Err(invalid("connections", "between 1 and 64"));
        }
        if let Some(u) = &self.bounce_mailbox {
            MailboxUrl::parse(u).map_err(|e| invalid("bounce_mailbox", e.0))?;
        }
        if !(1..=86_400).contains(&self.bounce_poll_seconds) {
            return Err(invalid("bounce_poll_seconds", "from 1 to 86,400"));
        }
        Ok(())
    }

    /// As shown: the relay's password replaced.
    pub fn shown(&self) -> EmailSettings {
        EmailSettings {
            relay_url: self.relay_url.as_deref().map(rapport_email::smtp::redact),
            bounce_mailbox: self
                .bounce_mailbox
                .as_deref()
                .map(rapport_email::smtp::redact),
            ..self.clone()
        }
    }
}

/// A transactional or marketing send to one person.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// Template name or id.
    pub template: String,
    /// `email:<address>` or a profile id.
    #[schema(value_type = Object)]
    pub to: Value,
    pub from: String,
    #[serde(default)]
    pub from_name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// `transactional` (default) or `marketing`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Not before this time (a rule's quiet hours); not part of the API.
    #[serde(skip)]
    #[schema(ignore)]
    pub not_before: Option<Millis>,
    /// No open pixel, links left as they are (a sign-in link must not pass through the
    /// click log); not part of the API.
    #[serde(skip)]
    #[schema(ignore)]
    pub untracked: bool,
    /// A reply in a conversation (a support ticket); not part of the API.
    #[serde(skip)]
    #[schema(ignore)]
    pub thread: Option<rapport_email::compose::Thread>,
}

/// The e-mail service: settings, relay and token key loaded once and reloaded on change.
pub struct Email {
    store: DynStore,
    loaded: tokio::sync::OnceCell<()>,
    relay: RwLock<Option<Relay>>,
    settings: RwLock<EmailSettings>,
    secret: RwLock<Vec<u8>>,
    /// When the delivery worker next looks for claims a stopped worker left.
    next_expiry: AtomicI64,
    /// Engagements waiting to be written, each with who waits for the answer: the one
    /// holding `writing` writes all that are waiting in one transaction (group commit:
    /// one commit per burst of opens and clicks, not one each).
    pending: std::sync::Mutex<Vec<(Engaged, Answer)>>,
    writing: tokio::sync::Mutex<()>,
}

/// A write-only setting as given: `null` keeps the stored value, `""` removes it.
fn write_only(given: &mut Option<String>, stored: &Option<String>) {
    match given.as_deref() {
        None => given.clone_from(stored),
        Some("") => *given = None,
        Some(_) => {}
    }
}

/// Where a waiting engagement learns whether its commit succeeded.
type Answer = tokio::sync::oneshot::Sender<Result<(), String>>;

/// A template's variables for one person; scores and segments are read only when the
/// template uses them.
pub(crate) async fn context(
    store: &DynStore,
    prep: &Prepared,
    p: &rapport_domain::model::ProfileView,
    address: &str,
    data: &Value,
) -> Result<Value, StoreError> {
    let scores: serde_json::Map<String, Value> = if prep.compiled.uses("scores") {
        store
            .profile_scores(p.id)
            .await?
            .into_iter()
            .map(|s| (s.name, json!(s.value)))
            .collect()
    } else {
        Default::default()
    };
    let segments = if prep.compiled.uses("segments") {
        store.profile_segments(p.id).await?
    } else {
        Vec::new()
    };
    Ok(context_of(p, address, data, scores, segments))
}

/// The template variables of one person, their scores and segments read already.
pub(crate) fn context_of(
    p: &rapport_domain::model::ProfileView,
    address: &str,
    data: &Value,
    scores: serde_json::Map<String, Value>,
    segments: Vec<String>,
) -> Value {
    json!({
        "person": {"id": p.id, "traits": p.traits, "email": address, "created_at": p.created_at},
        "traits": p.traits,
        "scores": scores,
        "segments": segments,
        "network": p.network,
        "email": address,
        "data": data,
    })
}

/// What every message of one send or campaign shares.
pub(crate) struct Prepared {
    pub(crate) template: EmailTemplate,
    pub(crate) compiled: Compiled,
    from: String,
    from_name: Option<String>,
    kind: String,
    campaign: Option<i64>,
    base_url: String,
    secret: Vec<u8>,
    track: bool,
    /// The A/B variant these messages test (none outside a test).
    pub(crate) variant: Option<i64>,
    /// A reply in a conversation (support): In-Reply-To and References.
    thread: Option<rapport_email::compose::Thread>,
}

/// Who one message goes to.
pub(crate) struct Recipient<'a> {
    pub(crate) person: &'a rapport_domain::model::ProfileView,
    pub(crate) address: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) suppressed: bool,
    /// When the last marketing e-mail went to the person; read only for those who
    /// asked for at most one a week (`Email::last_marketing`).
    pub(crate) last_sent: Option<Millis>,
}

fn event(
    profile: ProfileId,
    name: &str,
    id: &str,
    at: Millis,
    props: Value,
) -> Result<EventRow, StoreError> {
    crate::timeline::event(profile, "email", name, id, at, props)
}

fn props(m: &EmailMessage) -> Value {
    json!({"email_id": m.public_id, "address": m.to_address, "subject": m.subject, "kind": m.kind, "template_id": m.template_id, "campaign_id": m.campaign_id})
}

fn backoff_ms(attempts: i64) -> Millis {
    (30_000i64 << attempts.clamp(0, 10)).min(6 * 3_600_000)
}

impl Email {
    /// The service over `store`; settings are read at first use.
    pub fn new(store: DynStore) -> Email {
        Email {
            store,
            loaded: tokio::sync::OnceCell::new(),
            relay: RwLock::new(None),
            settings: RwLock::new(EmailSettings::default()),
            secret: RwLock::new(Vec::new()),
            next_expiry: AtomicI64::new(0),
            pending: std::sync::Mutex::new(Vec::new()),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Records an engagement with its event, together with any others that arrive
    /// meanwhile; answers once it is committed.
    async fn engage(
        &self,
        m: &EmailMessage,
        what: Engagement,
        at: Millis,
        event: EventRow,
    ) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let item = Engaged {
            message: m.public_id.clone(),
            campaign: m.campaign_id,
            what,
            at,
            event,
        };
        self.pending
            .lock()
            .map_err(|_| StoreError::Backend("engagement queue poisoned".into()))?
            .push((item, tx));
        {
            let _turn = self.writing.lock().await;
            let batch = std::mem::take(
                &mut *self
                    .pending
                    .lock()
                    .map_err(|_| StoreError::Backend("engagement queue poisoned".into()))?,
            );
            // Empty when an earlier writer took this one along.
            if !batch.is_empty() {
                let (items, waiting): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                let r = self.store.engage(items).await.map_err(|e| e.to_string());
                for w in waiting {
                    let _ = w.send(r.clone());
                }
            }
        }
        rx.await
            .map_err(|_| StoreError::Backend("engagement writer gone".into()))?
            .map_err(StoreError::Backend)
    }

    /// Reads the settings and the token key (made on first start) once.
    async fn ready(&self) -> Result<(), StoreError> {
        self.loaded
            .get_or_try_init(|| async {
                let settings: EmailSettings = match self.store.setting(SETTINGS).await? {
                    Some(v) => serde_json::from_value(v).unwrap_or_default(),
                    None => EmailSettings::default(),
                };
                let stored = self
                    .store
                    .setting(SECRET)
                    .await?
                    .and_then(|v| v.as_str().and_then(|s| hex::decode(s).ok()));
                let secret = match stored {
                    Some(s) if s.len() >= 32 => s,
                    _ => {
                        let s: [u8; 32] = rand::random();
                        self.store
                            .set_setting(SECRET, json!(hex::encode(s)), now_millis())
                            .await?;
                        s.to_vec()
                    }
                };
                let relay = settings
                    .relay_url
                    .as_deref()
                    .and_then(|u| Relay::new(u, settings.connections).ok());
                if let Ok(mut r) = self.relay.write() {
                    *r = relay;
                }
                if let Ok(mut w) = self.settings.write() {
                    *w = settings;
                }
                if let Ok(mut w) = self.secret.write() {
                    *w = secret;
                }
                Ok::<(), StoreError>(())
            })
            .await
            .map(|_| ())
    }

    /// What `rapport serve` is started with: a relay URL (replaces the stored one) and
    /// the public URL links point to (kept when staff set one).
    /// `listen_url` is the fallback public URL, used while none was ever set.
    pub async fn start(
        &self,
        smtp_url: Option<&str>,
        public_url: Option<&str>,
        listen_url: &str,
    ) -> Result<(), StoreError> {
        self.ready().await?;
        let mut s = self.settings();
        if let Some(u) = smtp_url {
            s.relay_url = Some(u.to_string());
        }
        if let Some(u) = public_url {
            s.public_url = u.trim_end_matches('/').to_string();
        } else if s.public_url == EmailSettings::default().public_url {
            s.public_url = listen_url.to_string();
        }
        if s != self.settings() {
            self.set_settings(s).await?;
        }
        Ok(())
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// The settings as they are (call after [`Email::start`] or any other method).
    pub fn settings(&self) -> EmailSettings {
        self.settings.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// The settings as the API shows them.
    pub async fn shown_settings(&self) -> Result<EmailSettings, StoreError> {
        self.ready().await?;
        Ok(self.settings().shown())
    }

    /// Replaces the settings; a `relay_url` or `bounce_mailbox` of `null` keeps the
    /// stored one (they are write-only), an empty string removes it.
    pub async fn set_settings(&self, mut s: EmailSettings) -> Result<EmailSettings, StoreError> {
        self.ready().await?;
        let old = self.settings();
        write_only(&mut s.relay_url, &old.relay_url);
        write_only(&mut s.bounce_mailbox, &old.bounce_mailbox);
        s.check()?;
        self.store
            .set_setting(
                SETTINGS,
                serde_json::to_value(&s).unwrap_or_default(),
                now_millis(),
            )
            .await?;
        let relay = match &s.relay_url {
            Some(u) => {
                Some(Relay::new(u, s.connections).map_err(|e| invalid("relay_url", e.0.clone()))?)
            }
            None => None,
        };
        if let Ok(mut r) = self.relay.write() {
            *r = relay;
        }
        if let Ok(mut w) = self.settings.write() {
            *w = s.clone();
        }
        Ok(s.shown())
    }

    fn secret(&self) -> Vec<u8> {
        self.secret.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// The signed link that records `score` (1–5) for ticket `number` (`/e/r/{token}`):
    /// only Rapport can make one, so a rating is the customer's who got the e-mail.
    pub async fn rating_url(&self, number: i64, score: u16) -> Result<String, StoreError> {
        self.ready().await?;
        let t = Token::new(Uuid::from_u128(number as u128), Action::Rate, score);
        Ok(format!(
            "{}/e/r/{}",
            self.settings().public_url.trim_end_matches('/'),
            t.sign(&self.secret())
        ))
    }

    /// The ticket number and score a rating link names, if it is one of ours.
    pub async fn rating_of(&self, token: &str) -> Result<Option<(i64, u16)>, StoreError> {
        self.ready().await?;
        Ok(Token::verify(token, &self.secret())
            .filter(|t| t.action == Action::Rate)
            .and_then(|t| i64::try_from(t.message.as_u128()).ok().map(|n| (n, t.link))))
    }

    /// Sets up a sending domain with an Ed25519 and an RSA-2048 key (`keys` can name
    /// one: Ed25519 alone signs ~20× faster, but receivers that do not check Ed25519 yet
    /// then see an unsigned message).
    pub async fn add_domain(
        &self,
        domain: &str,
        keys: Option<&[String]>,
    ) -> Result<EmailDomain, StoreError> {
        let algs: Vec<Algorithm> = match keys {
            None => vec![Algorithm::Ed25519, Algorithm::Rsa],
            Some(ks) => {
                let mut v = Vec::new();
                for (i, k) in ks.iter().enumerate() {
                    let a = Algorithm::parse(k)
                        .ok_or_else(|| invalid(&format!("keys[{i}]"), "`ed25519` or `rsa`"))?;
                    if !v.contains(&a) {
                        v.push(a);
                    }
                }
                if v.is_empty() {
                    return Err(invalid("keys", "at least one of `ed25519`, `rsa`"));
                }
                v
            }
        };
        let d = normalize_email(&format!("postmaster@{domain}"))
            .ok()
            .and_then(|a| domain_of(&a).map(str::to_string))
            .filter(|d| d.contains('.') && !domain.contains('@'))
            .ok_or_else(|| invalid("domain", format!("`{domain}` is not a domain name")))?;
        let stamp = chrono_stamp(now_millis());
        let mut keys = Vec::new();
        for alg in algs {
            let selector = format!("rapport-{}-{stamp}", alg.as_str());
            let k = tokio::task::spawn_blocking(move || DkimKey::generate(alg, &selector))
                .await
                .map_err(|e| StoreError::Backend(e.to_string()))?
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            keys.push(DkimKeyRow {
                algorithm: alg.as_str().into(),
                selector: k.selector,
                private_key: k.private_key,
                public_key: k.public_key,
            });
        }
        let row = EmailDomain {
            domain: d,
            keys,
            created_at: now_millis(),
        };
        self.store.add_domain(row.clone()).await?;
        Ok(row)
    }

    /// A template Rapport itself sends with (the portal's links, support replies),
    /// saved with this text on first use; staff may restyle it since.
    pub async fn ensure_template(
        &self,
        name: &str,
        src: rapport_email::template::Source,
    ) -> Result<(), StoreError> {
        if self.store.template(name).await?.is_none() {
            self.save_template(0, name, src).await?;
        }
        Ok(())
    }

    /// Saves a template after compiling it (syntax and variables checked).
    pub async fn save_template(
        &self,
        id: i64,
        name: &str,
        src: Source,
    ) -> Result<EmailTemplate, StoreError> {
        if name.trim().is_empty() || name.len() > 200 {
            return Err(invalid("name", "1 to 200 characters"));
        }
        if name.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("name", "a name cannot be all digits (ids are)"));
        }
        if src.subject.trim().is_empty() {
            return Err(invalid("subject", "a subject is required"));
        }
        Compiled::new(&src).map_err(|e| {
            invalid(
                e.field,
                format!("line {}, column {}: {}", e.line, e.column, e.message),
            )
        })?;
        let now = now_millis();
        let mut t = EmailTemplate {
            id,
            name: name.trim().to_string(),
            subject: src.subject,
            html: src.html,
            text: src.text.filter(|t| !t.trim().is_empty()),
            created_at: now,
            updated_at: now,
        };
        t.id = self.store.save_template(t.clone()).await?;
        Ok(t)
    }

    /// A template rendered for a person, as they would receive it.
    pub async fn preview(
        &self,
        template: &str,
        profile: ProfileId,
        data: &Value,
    ) -> Result<Value, StoreError> {
        self.ready().await?;
        let t = self.template(template).await?;
        let compiled = compile(&t)?;
        let address = self
            .choose(profile)
            .await?
            .map(|(a, _)| a)
            .unwrap_or_default();
        let p = self.store.profile(profile).await?;
        let prep = Prepared {
            compiled,
            template: t,
            from: String::new(),
            from_name: None,
            kind: "transactional".into(),
            campaign: None,
            base_url: String::new(),
            secret: Vec::new(),
            track: false,
            variant: None,
            thread: None,
        };
        let ctx = context(&self.store, &prep, &p, &address, data).await?;
        let compiled = &prep.compiled;
        // A preview's unsubscribe link leads nowhere (no message exists).
        let unsubscribe = compose::unsubscribe_url(
            &Tracking {
                base_url: self.settings().public_url.trim_end_matches('/'),
                secret: &[],
                track: false,
            },
            Uuid::nil(),
        );
        let preferences = format!("{}/me", self.settings().public_url.trim_end_matches('/'));
        let r = compiled
            .render_with(
                &ctx,
                Some(&Links {
                    unsubscribe: &unsubscribe,
                    preferences: &preferences,
                }),
            )
            .map_err(render_error)?;
        Ok(json!({"to": address, "subject": r.subject, "html": r.html, "text": r.text}))
    }

    async fn template(&self, key: &str) -> Result<EmailTemplate, StoreError> {
        self.store
            .template(key)
            .await?
            .ok_or_else(|| invalid("template", format!("no template `{key}`")))
    }

    /// The address a send to this person uses, and why.
    pub async fn choose(&self, profile: ProfileId) -> Result<Option<(String, Reason)>, StoreError> {
        let p = self.store.profile(profile).await?;
        let emails: Vec<_> = p
            .identities
            .iter()
            .filter(|i| i.kind == IdentityKind::Email)
            .collect();
        let facts = self
            .store
            .address_facts(emails.iter().map(|i| i.value.clone()).collect())
            .await?;
        let candidates: Vec<Candidate> = emails
            .iter()
            .zip(facts)
            .map(|(i, f)| Candidate {
                address: i.value.clone(),
                primary: f.primary,
                last_engaged: f.last_engaged,
                suppressed: f.suppressed,
                first_seen: i.first_seen.timestamp_millis(),
            })
            .collect();
        Ok(address::choose(&candidates).map(|c| (c.address, c.reason)))
    }

    /// When the last marketing e-mail (not a skipped one) went to a person who asked for
    /// at most one a week; `None` for everyone else, without a query.
    pub(crate) async fn last_marketing(
        &self,
        p: &rapport_domain::model::ProfileView,
    ) -> Result<Option<Millis>, StoreError> {
        if marketing_frequency(p).map(|(f, _)| f) != Some(Frequency::Weekly) {
            return Ok(None);
        }
        Ok(self
            .store
            .messages(rapport_store::MessageQuery {
                profile: Some(p.member_ids.clone()),
                status: None,
                limit: 200,
            })
            .await?
            .into_iter()
            .filter(|m| m.kind == "marketing" && m.status != "skipped")
            .map(|m| m.created_at)
            .max())
    }

    /// Whether a person's consents allow a marketing e-mail under the settings.
    fn consented(&self, p: &rapport_domain::model::ProfileView) -> bool {
        let latest = marketing_consent(p);
        match self.settings().marketing_consent.as_str() {
            "not_denied" => latest != Some(ConsentStatus::Denied),
            _ => latest == Some(ConsentStatus::Granted),
        }
    }

    /// One send: checks, chooses the address, renders, signs and stores it for the
    /// delivery worker. A person without consent or whose address is suppressed gets a
    /// `skipped` message (stored and listed; nothing is sent).
    pub async fn send(&self, req: SendRequest) -> Result<EmailMessage, StoreError> {
        self.ready().await?;
        let kind = req.kind.clone().unwrap_or_else(|| "transactional".into());
        if !matches!(kind.as_str(), "transactional" | "marketing") {
            return Err(invalid("kind", "use `transactional` or `marketing`"));
        }
        if let Some(k) = &req.idempotency_key {
            if k.is_empty() || k.len() > 200 {
                return Err(invalid("idempotency_key", "1 to 200 characters"));
            }
        }
        if !req.data.is_null() && !req.data.is_object() {
            return Err(invalid("data", "an object"));
        }
        let mut prep = self
            .prepare(&req.template, &req.from, req.from_name.clone(), &kind, None)
            .await?;
        prep.track &= !req.untracked;
        prep.thread = req.thread.clone();
        let (profile, address, reason) = self.recipient(&req.to, &kind).await?;
        let p = self.store.profile(profile).await?;
        let suppressed = self
            .store
            .address_facts(vec![address.clone()])
            .await?
            .first()
            .is_some_and(|f| f.suppressed);
        let now = now_millis();
        let ctx = context(&self.store, &prep, &p, &address, &req.data).await?;
        let made = self.make(
            &prep,
            Recipient {
                person: &p,
                address: &address,
                reason: &reason,
                suppressed,
                last_sent: self.last_marketing(&p).await?,
            },
            &ctx,
            req.idempotency_key.clone(),
            req.not_before.unwrap_or(now).max(now),
        )?;
        Ok(self.store.queue(vec![made]).await?.remove(0))
    }

    /// Loads what every message of a send or a campaign shares: the template compiled,
    /// the sending domain's keys, the tracking settings.
    pub(crate) async fn prepare(
        &self,
        template: &str,
        from: &str,
        from_name: Option<String>,
        kind: &str,
        campaign: Option<i64>,
    ) -> Result<Prepared, StoreError> {
        self.ready().await?;
        let from = normalize_email(from).map_err(|e| invalid("from", e.to_string()))?;
        let from_domain = domain_of(&from).unwrap_or_default().to_string();
        // The message is signed when it goes out (`deliver_step`); the domain must exist now.
        self.store
            .domains()
            .await?
            .into_iter()
            .find(|d| d.domain == from_domain)
            .ok_or_else(|| {
                invalid(
                    "from",
                    format!("{from_domain} is not a sending domain: add it with POST /api/email/domains"),
                )
            })?;
        let t = self.template(template).await?;
        let compiled = compile(&t)?;
        let settings = self.settings();
        Ok(Prepared {
            compiled,
            template: t,
            from,
            from_name,
            kind: kind.to_string(),
            campaign,
            base_url: settings.public_url.trim_end_matches('/').to_string(),
            secret: self.secret(),
            track: settings.track,
            variant: None,
            thread: None,
        })
    }

    /// One person's message, rendered, signed and ready to store with its `Email Sent`
    /// event; or a `skipped` one (no event) when suppressed or without needed consent.
    pub(crate) fn make(
        &self,
        prep: &Prepared,
        r: Recipient<'_>,
        ctx: &Value,
        idempotency_key: Option<String>,
        next_at: Millis,
    ) -> Result<(EmailMessage, Vec<EventRow>), StoreError> {
        let now = now_millis();
        let id = Uuid::now_v7();
        let mut m = EmailMessage {
            id: 0,
            public_id: id.to_string(),
            idempotency_key,
            kind: prep.kind.clone(),
            template_id: Some(prep.template.id),
            campaign_id: prep.campaign,
            profile_id: r.person.id,
            to_address: r.address.to_string(),
            address_reason: r.reason.to_string(),
            from_address: prep.from.clone(),
            subject: String::new(),
            return_path: String::new(),
            raw: Vec::new(),
            links: Vec::new(),
            status: "queued".into(),
            attempts: 0,
            next_at,
            last_error: None,
            created_at: now,
            delivered_at: None,
            opened_at: None,
            clicked_at: None,
            unsubscribed_at: None,
            variant: prep.variant,
        };
        let skip = if r.suppressed {
            Some("the address is suppressed".to_string())
        } else if prep.kind == "marketing" && !self.consented(r.person) {
            Some("no e-mail marketing consent".to_string())
        } else if prep.kind == "marketing" {
            marketing_frequency(r.person).and_then(|(f, at)| f.allows(at, r.last_sent, now).err())
        } else {
            None
        };
        if let Some(why) = skip {
            m.status = "skipped".into();
            m.last_error = Some(why);
            m.subject = prep.template.subject.clone();
            return Ok((m, Vec::new()));
        }
        let tracking = Tracking {
            base_url: &prep.base_url,
            secret: &prep.secret,
            track: prep.track,
        };
        let unsubscribe = compose::unsubscribe_url(&tracking, id);
        let preferences = format!("{}/me", prep.base_url);
        let rendered = prep
            .compiled
            .render_with(
                ctx,
                Some(&Links {
                    unsubscribe: &unsubscribe,
                    preferences: &preferences,
                }),
            )
            .map_err(render_error)?;
        let composed = compose::compose(
            &Outgoing {
                id,
                from: &prep.from,
                from_name: prep.from_name.as_deref(),
                to: r.address,
                rendered: &rendered,
                bulk: prep.campaign.is_some(),
                unsubscribe: prep.kind == "marketing",
                date: std::time::SystemTime::now(),
                thread: prep.thread.as_ref(),
            },
            &tracking,
        )
        .map_err(|e| match e {
            compose::ComposeError::From(_) => invalid("from", e.to_string()),
            compose::ComposeError::To(_) => invalid("to", e.to_string()),
            compose::ComposeError::Build(_) => StoreError::Backend(e.to_string()),
        })?;
        m.subject = rendered.subject;
        m.return_path = composed.return_path;
        m.raw = composed.raw;
        m.links = composed.links;
        let mut p = props(&m);
        p["template"] = json!(prep.template.name);
        let sent = event(
            m.profile_id,
            "Email Sent",
            &format!("email:{id}:sent"),
            now,
            p,
        )?;
        Ok((m, vec![sent]))
    }

    /// Who `to` names and the address to use: `email:<address>` (the person owning it,
    /// made for a transactional send when unknown) or a profile id (the address rule).
    async fn recipient(
        &self,
        to: &Value,
        kind: &str,
    ) -> Result<(ProfileId, String, String), StoreError> {
        let text = match to {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => return Err(invalid("to", "`email:<address>` or a profile id")),
        };
        if let Ok(id) = text.parse::<ProfileId>() {
            let p = match self.store.profile(id).await {
                Ok(p) => p,
                Err(StoreError::NotFound(_)) => {
                    return Err(invalid("to", format!("no person {id}")))
                }
                Err(e) => return Err(e),
            };
            let (address, reason) = self
                .choose(p.id)
                .await?
                .ok_or_else(|| invalid("to", format!("person {id} has no e-mail address")))?;
            return Ok((p.id, address, reason.as_str().to_string()));
        }
        let raw = text.strip_prefix("email:").unwrap_or(&text);
        let key = IdentityKey::parse(IdentityKind::Email, raw)
            .map_err(|e| invalid("to", e.to_string()))?;
        if let Some(id) = self.store.lookup(&key).await? {
            return Ok((id, key.value, "given".into()));
        }
        if kind == "marketing" {
            return Err(invalid(
                "to",
                format!("nobody has the address {}", key.value),
            ));
        }
        // A transactional send may be the first word to a new customer (a sign-up
        // confirmation): the person is made as an identify would make them.
        let id = crate::profiles::person_for_email(&self.store, &key, None, SOURCE).await?;
        Ok((id, key.value, "given".into()))
    }

    /// Hands what is due to the relay; returns how many messages were tried. Messages are
    /// claimed (`sending`) in one transaction before any is sent, and their outcomes
    /// saved together after: a worker killed in between leaves them `sending`, and the
    /// next step marks claims older than `claim_timeout_seconds` `unknown` — the relay may
    /// have them, so they are never sent twice (docs/email.md, "Delivery").
    pub async fn deliver_step(&self) -> Result<usize, StoreError> {
        self.ready().await?;
        let Some(relay) = self.relay.read().ok().and_then(|r| r.clone()) else {
            return Ok(0);
        };
        let now = now_millis();
        // Stale claims are looked for every half timeout, not on every poll: the check is
        // a write.
        let timeout = i64::from(self.settings().claim_timeout_seconds) * 1000;
        if now >= self.next_expiry.load(Ordering::Relaxed) {
            self.next_expiry.store(now + timeout / 2, Ordering::Relaxed);
            let expired = self.store.expire_claims(now - timeout).await?;
            if expired > 0 {
                tracing::warn!(
                    messages = expired,
                    "e-mail claims of a stopped worker marked unknown"
                );
            }
        }
        let n = self.settings().connections as usize;
        // A worker killed mid-step leaves what it claimed `unknown`: it claims only what
        // it sends at once, one message per connection.
        let due = self.store.claim(now, n).await?;
        let count = due.len();
        if count == 0 {
            return Ok(0);
        }
        // DKIM signatures are made as each message goes out (so a key added or changed
        // since planning is the one used), on the blocking pool: one core each.
        let keys: HashMap<String, Arc<Vec<Signer>>> = self
            .store
            .domains()
            .await?
            .iter()
            .map(|d| Ok((d.domain.clone(), Arc::new(signers(d)?))))
            .collect::<Result<_, StoreError>>()?;
        let mut jobs = tokio::task::JoinSet::new();
        let mut queue = due.into_iter();
        let mut done = Vec::with_capacity(count);
        // Up to `connections` messages in flight.
        loop {
            while jobs.len() < n {
                let Some(m) = queue.next() else { break };
                let relay = relay.clone();
                let signers = domain_of(&m.from_address).and_then(|d| keys.get(d).cloned());
                jobs.spawn(async move {
                    let mut m = m;
                    let Some(signers) = signers else {
                        let why = format!(
                            "no DKIM keys for {}: its sending domain is gone",
                            m.from_address
                        );
                        return (m, Outcome::Transient(why));
                    };
                    // Settling writes the status, not the bytes: they move to the signer.
                    let raw = std::mem::take(&mut m.raw);
                    let signed = tokio::task::spawn_blocking(move || {
                        rapport_email::dkim::sign(&signers, &raw)
                    })
                    .await;
                    let outcome = match signed {
                        Ok(Ok(raw)) => relay.send(&m.return_path, &m.to_address, &raw).await,
                        Ok(Err(e)) => Outcome::Transient(format!("DKIM: {e}")),
                        Err(e) => Outcome::Transient(format!("DKIM: {e}")),
                    };
                    (m, outcome)
                });
            }
            let Some(finished) = jobs.join_next().await else {
                break;
            };
            done.push(finished.map_err(|e| StoreError::Backend(e.to_string()))?);
        }
        let mut settled = Vec::with_capacity(done.len());
        for (m, outcome) in done {
            settled.push(self.settle(m, outcome).await?);
        }
        self.store.update_messages(settled).await?;
        Ok(count)
    }

    async fn settle(
        &self,
        mut m: EmailMessage,
        outcome: Outcome,
    ) -> Result<(EmailMessage, Vec<EventRow>), StoreError> {
        let now = now_millis();
        m.attempts += 1;
        let mut events = Vec::new();
        match outcome {
            Outcome::Accepted(_) => {
                m.status = "delivered".into();
                m.delivered_at = Some(now);
                m.last_error = None;
                events.push(event(
                    m.profile_id,
                    "Email Delivered",
                    &format!("email:{}:delivered", m.public_id),
                    now,
                    props(&m),
                )?);
            }
            Outcome::Transient(e) => {
                m.last_error = Some(e);
                if m.attempts >= MAX_ATTEMPTS {
                    m.status = "failed".into();
                    tracing::warn!(email = %m.public_id, attempts = m.attempts, "e-mail given up after temporary failures");
                } else {
                    m.status = "queued".into();
                    m.next_at = now + backoff_ms(m.attempts - 1);
                }
            }
            Outcome::Permanent(e) => {
                m.status = "bounced".into();
                m.last_error = Some(e.clone());
                let mut p = props(&m);
                p["type"] = json!("hard");
                p["reason"] = json!(e);
                events.push(event(
                    m.profile_id,
                    "Email Bounced",
                    &format!("email:{}:bounced", m.public_id),
                    now,
                    p,
                )?);
                self.store
                    .suppress(Suppression {
                        address: m.to_address.clone(),
                        reason: "hard_bounce".into(),
                        detail: m.last_error.clone(),
                        created_at: now,
                    })
                    .await?;
            }
        }
        Ok((m, events))
    }

    /// Verifies a tracking token of the given action; the message it names.
    /// The signed tracking token of a message's open pixel, click on link `link`, or
    /// unsubscribe (what its links carry; tools and benchmarks build URLs with it).
    pub async fn token(
        &self,
        public_id: &str,
        action: Action,
        link: u16,
    ) -> Result<String, StoreError> {
        self.ready().await?;
        let id = Uuid::try_parse(public_id).map_err(|e| invalid("id", e.to_string()))?;
        Ok(Token::new(id, action, link).sign(&self.secret()))
    }

    pub async fn message_for(
        &self,
        token: &str,
        action: Action,
    ) -> Result<Option<(EmailMessage, Token)>, StoreError> {
        self.ready().await?;
        let Some(t) = Token::verify(token, &self.secret()).filter(|t| t.action == action) else {
            return Ok(None);
        };
        Ok(self
            .store
            .message(&t.message.to_string())
            .await?
            .map(|m| (m, t)))
    }

    /// An open pixel was fetched. Opens soon after delivery (`machine_open_seconds`), or
    /// by a known prefetching gateway, are machine opens: recorded with `machine: true`,
    /// but not counted as engagement.
    pub async fn opened(&self, token: &str, user_agent: &str) -> Result<bool, StoreError> {
        let Some((m, _)) = self.message_for(token, Action::Open).await? else {
            return Ok(false);
        };
        let now = now_millis();
        let window = i64::from(self.settings().machine_open_seconds) * 1000;
        let machine = m.delivered_at.is_some_and(|d| now - d < window) || machine_agent(user_agent);
        let mut p = props(&m);
        p["machine"] = json!(machine);
        let e = event(
            m.profile_id,
            "Email Opened",
            &format!("email:{}:open:{}", m.public_id, Uuid::now_v7()),
            now,
            p,
        )?;
        if machine {
            self.store.insert_events_raw(vec![e], SOURCE).await?;
        } else {
            self.engage(&m, Engagement::Open, now, e).await?;
        }
        Ok(true)
    }

    /// A tracked link was followed: the URL it stands for (only one the message holds).
    pub async fn clicked(&self, token: &str) -> Result<Option<String>, StoreError> {
        let Some((m, t)) = self.message_for(token, Action::Click).await? else {
            return Ok(None);
        };
        let Some(url) = m.links.get(t.link as usize).cloned() else {
            return Ok(None);
        };
        let now = now_millis();
        let mut p = props(&m);
        p["url"] = json!(url);
        p["link"] = json!(t.link);
        let e = event(
            m.profile_id,
            "Email Link Clicked",
            &format!("email:{}:click:{}", m.public_id, Uuid::now_v7()),
            now,
            p,
        )?;
        self.engage(&m, Engagement::Click(url.clone()), now, e)
            .await?;
        Ok(Some(url))
    }

    /// One-click unsubscribe (RFC 8058): e-mail marketing consent denied, with its proof.
    /// Repeating it changes nothing.
    pub async fn unsubscribe(&self, token: &str) -> Result<Option<EmailMessage>, StoreError> {
        let Some((m, _)) = self.message_for(token, Action::Unsubscribe).await? else {
            return Ok(None);
        };
        let p = self.store.profile(m.profile_id).await?;
        if marketing_consent(&p) == Some(ConsentStatus::Denied) {
            return Ok(Some(m));
        }
        let now = now_millis();
        let proof = json!({"email_id": m.public_id, "address": m.to_address, "campaign_id": m.campaign_id, "at": now, "method": "list-unsubscribe"});
        deny_marketing(&self.store, m.profile_id, "unsubscribe", &proof, now).await?;
        let e = event(
            m.profile_id,
            "Unsubscribed",
            &format!("email:{}:unsubscribed", m.public_id),
            now,
            props(&m),
        )?;
        self.engage(&m, Engagement::Unsubscribe, now, e).await?;
        Ok(Some(m))
    }

    /// A report that came back (a DSN or an ARF complaint, raw RFC 5322): finds the
    /// message it is about (VERP token, else the original's Message-ID) and acts on it —
    /// a hard bounce suppresses the address; a soft one queues the message again with
    /// back-off until [`SOFT_BOUNCES`] attempts, then suppresses; a complaint suppresses
    /// and records e-mail marketing consent as denied. Returns what was found and done.
    pub async fn inbound(&self, raw: &[u8]) -> Result<Value, StoreError> {
        self.ready().await?;
        let r = rapport_email::bounce::read(raw);
        let secret = self.secret();
        let mut ids: Vec<Uuid> = r
            .verp
            .iter()
            .filter_map(|t| Token::verify(t, &secret))
            .filter(|t| t.action == Action::Bounce)
            .map(|t| t.message)
            .collect();
        ids.extend(r.message_ids.iter().filter_map(|m| {
            m.split_once('@')
                .and_then(|(local, _)| Uuid::try_parse(local).ok())
        }));
        let mut found = None;
        for id in ids {
            if let Some(m) = self.store.message(&id.to_string()).await? {
                found = Some(m);
                break;
            }
        }
        let kind = match &r.report {
            rapport_email::bounce::Report::Bounce { hard: true, .. } => "hard_bounce",
            rapport_email::bounce::Report::Bounce { hard: false, .. } => "soft_bounce",
            rapport_email::bounce::Report::Complaint { .. } => "complaint",
            rapport_email::bounce::Report::Other => "other",
        };
        let Some(mut m) = found else {
            return Ok(json!({"report": kind, "message": null}));
        };
        let now = now_millis();
        let mut p = props(&m);
        let event_id = format!("email:{}:{kind}:{}", m.public_id, Uuid::now_v7());
        match r.report {
            rapport_email::bounce::Report::Bounce {
                hard,
                status,
                diagnostic,
                ..
            } => {
                p["type"] = json!(if hard { "hard" } else { "soft" });
                p["status"] = json!(status);
                p["reason"] = json!(diagnostic);
                let e = event(m.profile_id, "Email Bounced", &event_id, now, p)?;
                m.last_error = Some(
                    format!("{status} {}", diagnostic.unwrap_or_default())
                        .trim()
                        .to_string(),
                );
                let give_up = hard || m.attempts >= SOFT_BOUNCES;
                if give_up {
                    m.status = "bounced".into();
                    self.store
                        .suppress(Suppression {
                            address: m.to_address.clone(),
                            reason: if hard { "hard_bounce" } else { "soft_bounces" }.into(),
                            detail: m.last_error.clone(),
                            created_at: now,
                        })
                        .await?;
                } else {
                    m.status = "queued".into();
                    m.next_at = now + backoff_ms(m.attempts);
                }
                self.store.update_message(m.clone(), vec![e]).await?;
            }
            rapport_email::bounce::Report::Complaint { feedback_type } => {
                p["feedback_type"] = json!(feedback_type);
                let e = event(m.profile_id, "Email Complained", &event_id, now, p)?;
                self.store
                    .suppress(Suppression {
                        address: m.to_address.clone(),
                        reason: "complaint".into(),
                        detail: Some(feedback_type.clone()),
                        created_at: now,
                    })
                    .await?;
                let proof = json!({"email_id": m.public_id, "address": m.to_address, "feedback_type": feedback_type, "at": now, "method": "complaint"});
                deny_marketing(&self.store, m.profile_id, "complaint", &proof, now).await?;
                self.store.insert_events_raw(vec![e], SOURCE).await?;
            }
            rapport_email::bounce::Report::Other => {}
        }
        Ok(json!({"report": kind, "message": m.public_id, "address": m.to_address}))
    }

    /// Adds a suppression by hand (staff), announced like any edit to a person.
    pub async fn suppress(
        &self,
        address: &str,
        detail: Option<String>,
    ) -> Result<Suppression, StoreError> {
        let a = normalize_email(address).map_err(|e| invalid("address", e.to_string()))?;
        let s = Suppression {
            address: a,
            reason: "manual".into(),
            detail,
            created_at: now_millis(),
        };
        self.store.suppress(s.clone()).await?;
        announce(&self.store, Change::Standing).await?;
        Ok(s)
    }
}

/// How often the person's latest e-mail marketing consent lets the brand write, and
/// when that was chosen.
fn marketing_frequency(p: &rapport_domain::model::ProfileView) -> Option<(Frequency, Millis)> {
    latest_marketing(p).map(|c| (c.frequency, c.at.timestamp_millis()))
}

/// The person's latest e-mail marketing consent, if any was recorded.
fn marketing_consent(p: &rapport_domain::model::ProfileView) -> Option<ConsentStatus> {
    latest_marketing(p).map(|c| c.status)
}

fn latest_marketing(
    p: &rapport_domain::model::ProfileView,
) -> Option<&rapport_domain::model::ConsentView> {
    p.consents
        .iter()
        .filter(|c| c.channel == "email" && c.purpose == "marketing")
        .max_by_key(|c| c.at)
}

/// Records e-mail marketing consent as denied (an unsubscribe or a complaint), with
/// its proof; announced like any consent edit.
async fn deny_marketing(
    store: &DynStore,
    profile: ProfileId,
    source: &str,
    proof: &Value,
    at: Millis,
) -> Result<(), StoreError> {
    crate::profiles::set_consent(
        store,
        profile,
        &ConsentInput {
            channel: "email".into(),
            purpose: "marketing".into(),
            status: ConsentStatus::Denied,
            source: source.into(),
            proof: Some(proof.to_string()),
            at,
            frequency: Default::default(),
        },
    )
    .await
}

fn compile(t: &EmailTemplate) -> Result<Compiled, StoreError> {
    Compiled::new(&Source {
        subject: t.subject.clone(),
        html: t.html.clone(),
        text: t.text.clone(),
    })
    .map_err(|e| {
        invalid(
            &format!("template.{}", e.field),
            format!("line {}, column {}: {}", e.line, e.column, e.message),
        )
    })
}

fn render_error(e: rapport_email::template::TemplateError) -> StoreError {
    invalid(
        &format!("template.{}", e.field),
        format!("line {}, column {}: {}", e.line, e.column, e.message),
    )
}

fn signers(d: &EmailDomain) -> Result<Vec<Signer>, StoreError> {
    d.keys
        .iter()
        .filter_map(|k| {
            Algorithm::parse(&k.algorithm).map(|alg| DkimKey {
                algorithm: alg,
                selector: k.selector.clone(),
                private_key: k.private_key.clone(),
                public_key: k.public_key.clone(),
            })
        })
        .map(|k| {
            k.signer(&d.domain)
                .map_err(|e| StoreError::Backend(e.to_string()))
        })
        .collect()
}

/// Mail security gateways and privacy proxies that fetch every image on arrival.
fn machine_agent(ua: &str) -> bool {
    const PREFETCHERS: &[&str] = &[
        "Barracuda",
        "Mimecast",
        "Proofpoint",
        "YahooMailProxy",
        "Symantec",
        "Trend Micro",
    ];
    PREFETCHERS.iter().any(|p| ua.contains(p))
}

/// `YYYYMMDD` of a time, for key selectors (a new key gets a new name).
fn chrono_stamp(at: Millis) -> String {
    rapport_domain::time::to_datetime(at)
        .format("%Y%m%d")
        .to_string()
}

/// The delivery worker `rapport serve` runs.
pub async fn run(email: Arc<Email>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let step = email.deliver_step().await;
        let (idle, busy) = (Duration::from_millis(200), Duration::from_millis(0));
        if !crate::worker::pause_after("e-mail delivery", step, idle, busy, &mut shutdown).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_rules() {
        assert_eq!(chrono_stamp(0), "19700101");
        assert_eq!(chrono_stamp(1_796_515_200_000), "20261206");
        assert_eq!(chrono_stamp(951_782_400_000), "20000229");
        assert_eq!(backoff_ms(0), 30_000);
        assert_eq!(backoff_ms(1), 60_000);
        assert_eq!(backoff_ms(50), 6 * 3_600_000);
        assert!(machine_agent("Mozilla/5.0 (Barracuda)"));
        assert!(!machine_agent("Mozilla/5.0 (Macintosh)"));
        let mut s = EmailSettings::default();
        assert!(s.check().is_ok());
        s.relay_url = Some("smtp://u:pw@h:25".into());
        assert_eq!(s.shown().relay_url.as_deref(), Some("smtp://u:***@h:25"));
        for (bad, field) in [
            (
                EmailSettings {
                    relay_url: Some("http://x".into()),
                    ..Default::default()
                },
                "relay_url",
            ),
            (
                EmailSettings {
                    public_url: "ftp://x".into(),
                    ..Default::default()
                },
                "public_url",
            ),
            (
                EmailSettings {
                    public_url: "nope".into(),
                    ..Default::default()
                },
                "public_url",
            ),
            (
                EmailSettings {
                    marketing_consent: "maybe".into(),
                    ..Default::default()
                },
                "marketing_consent",
            ),
            (
                EmailSettings {
                    connections: 0,
                    ..Default::default()
                },
                "connections",
            ),
            (
                EmailSettings {
                    machine_open_seconds: 86_401,
                    ..Default::default()
                },
                "machine_open_seconds",
            ),
            (
                EmailSettings {
                    claim_timeout_seconds: 0,
                    ..Default::default()
                },
                "claim_timeout_seconds",
            ),
        ] {
            match bad.check() {
                Err(StoreError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
    }
}
