//! The customer portal's rules: sign-in by a single-use e-mail link, customer sessions
//! (apart from staff sessions), which traits customers see and edit, preferences as
//! consent records with source `customer`, and "why am I seeing this". The pages are in
//! `rapport_http::portal`; export and erasure are `crate::privacy`'s.

use crate::email::{Email, SendRequest};
use rand::RngCore;
use rapport_domain::model::{ConsentStatus, ConsentView, Frequency};
use rapport_domain::privacy::hex_sha256;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::now_millis;
use rapport_domain::{IdentityKey, IdentityKind};
use rapport_store::{ConsentInput, DynStore, LinkUse, PortalLink, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A sign-in link works once, for this long.
pub const LINK_MINUTES: i64 = 15;
/// A customer session lasts this long.
pub const SESSION_HOURS: i64 = 12;
/// The template sign-in links are sent with; created on first use, editable by staff.
pub const SIGN_IN_TEMPLATE: &str = "portal-sign-in";
/// The template confirmation links for a second address are sent with.
pub const CONFIRM_TEMPLATE: &str = "portal-confirm-email";
/// The purposes of a portal link.
const SIGN_IN: &str = "sign_in";
const ADD_EMAIL: &str = "add_email";
const SETTINGS_KEY: &str = "portal";

/// What customers may do with a trait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    StaffOnly,
    Visible,
    Editable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PortalSettings {
    pub brand: String,
    /// The accent colour, `#rrggbb`.
    pub color: String,
    pub logo_url: Option<String>,
    /// The sender of sign-in e-mails; absent: `no-reply@` the first sending domain.
    pub from: Option<String>,
    /// Per top-level trait key (a namespace when the trait is an object); keys not
    /// listed are staff-only.
    pub traits: BTreeMap<String, Visibility>,
    /// The channels × purposes of the preference centre.
    pub channels: Vec<String>,
    pub purposes: Vec<String>,
}

impl Default for PortalSettings {
    fn default() -> Self {
        PortalSettings {
            brand: "Rapport".into(),
            color: "#3b5bdb".into(),
            logo_url: None,
            from: None,
            traits: [
                ("name", Visibility::Editable),
                ("first_name", Visibility::Editable),
                ("last_name", Visibility::Editable),
                ("language", Visibility::Editable),
                ("country", Visibility::Visible),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            channels: vec!["email".into()],
            purposes: vec!["marketing".into(), "newsletter".into()],
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::invalid(field, reason)
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

impl PortalSettings {
    pub fn check(&self) -> Result<(), StoreError> {
        if self.brand.trim().is_empty() || self.brand.len() > 100 {
            return Err(invalid("brand", "1 to 100 characters"));
        }
        let hex = self.color.strip_prefix('#').unwrap_or("");
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("color", "a colour as #rrggbb"));
        }
        if let Some(u) = &self.logo_url {
            if !(u.starts_with("https://") || u.starts_with("/"))
                || u.len() > 500
                || u.contains('"')
            {
                return Err(invalid(
                    "logo_url",
                    "an https:// URL or a path on this site",
                ));
            }
        }
        if let Some(k) = self.traits.keys().find(|k| !name_ok(k)) {
            return Err(invalid(
                &format!("traits.{k}"),
                "trait keys are 1-64 of [A-Za-z0-9_.-]",
            ));
        }
        for (field, names) in [("channels", &self.channels), ("purposes", &self.purposes)] {
            if names.is_empty() || names.len() > 20 || !names.iter().all(|n| name_ok(n)) {
                return Err(invalid(field, "1 to 20 names of [A-Za-z0-9_.-]"));
            }
        }
        Ok(())
    }

    pub fn visibility(&self, key: &str) -> Visibility {
        self.traits
            .get(key)
            .copied()
            .unwrap_or(Visibility::StaffOnly)
    }
}

pub async fn settings(store: &DynStore) -> Result<PortalSettings, StoreError> {
    Ok(match store.setting(SETTINGS_KEY).await? {
        Some(v) => serde_json::from_value(v).unwrap_or_default(),
        None => PortalSettings::default(),
    })
}

pub async fn set_settings(store: &DynStore, s: &PortalSettings) -> Result<(), StoreError> {
    s.check()?;
    let v = serde_json::to_value(s).map_err(|e| StoreError::Backend(e.to_string()))?;
    store.set_setting(SETTINGS_KEY, v, now_millis()).await
}

fn token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    rapport_domain::privacy::hex(&b)
}

/// Asks for a sign-in link for `email`. The caller answers the same whether or not the
/// address is known: the work for a known one runs on its own task, so neither the
/// answer nor its timing tells. Errors here are only about the input.
pub fn request_link(
    store: DynStore,
    email: std::sync::Arc<Email>,
    raw: &str,
    base_url: String,
) -> Result<(), StoreError> {
    let key = IdentityKey::parse(IdentityKind::Email, raw)
        .map_err(|e| invalid("email", e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = send_link(&store, &email, &key, &base_url).await {
            tracing::warn!(error = %e, "a portal sign-in link could not be sent");
        }
    });
    Ok(())
}

async fn send_link(
    store: &DynStore,
    email: &Email,
    key: &IdentityKey,
    base_url: &str,
) -> Result<(), StoreError> {
    let Some(person) = store.lookup(key).await? else {
        return Ok(());
    };
    let s = settings(store).await?;
    let template = portal_template(
        email,
        SIGN_IN_TEMPLATE,
        "Your sign-in link",
        "<p>Hello,</p><p>Sign in to see and manage what we know about you:</p>\
         <p><a href=\"{{ data.link }}\">{{ data.link }}</a></p>\
         <p>The link works once, within 15 minutes. If you did not ask for it, ignore this e-mail.</p>",
    )
    .await?;
    let link = new_link(store, SIGN_IN, key, Some(person), base_url).await?;
    send_portal_mail(store, email, &s, &template, key, link).await
}

/// A portal template's name, the template made with this text on first use.
async fn portal_template(
    email: &Email,
    name: &str,
    subject: &str,
    html: &str,
) -> Result<String, StoreError> {
    let src = rapport_email::template::Source {
        subject: subject.into(),
        html: html.into(),
        text: None,
    };
    email.ensure_template(name, src).await?;
    Ok(name.to_string())
}

/// A new single-use link for `purpose` to `key`'s address; its URL.
async fn new_link(
    store: &DynStore,
    purpose: &str,
    key: &IdentityKey,
    person: Option<ProfileId>,
    base_url: &str,
) -> Result<String, StoreError> {
    let t = token();
    let now = now_millis();
    store
        .create_link(PortalLink {
            token_hash: hex_sha256(&t),
            purpose: purpose.into(),
            email: key.value.clone(),
            profile_id: person,
            created_at: now,
            expires_at: now + LINK_MINUTES * 60_000,
            used_at: None,
        })
        .await?;
    Ok(format!(
        "{}/me/link?token={t}",
        base_url.trim_end_matches('/')
    ))
}

/// Sends a portal e-mail (a link) to `key`'s address: transactional, untracked (a
/// tracked link would be rewritten, and these are secrets).
async fn send_portal_mail(
    store: &DynStore,
    email: &Email,
    s: &PortalSettings,
    template: &str,
    key: &IdentityKey,
    link: String,
) -> Result<(), StoreError> {
    let from = match s.from.clone() {
        Some(f) => f,
        None => {
            let d = store.domains().await?;
            let Some(first) = d.first() else {
                return Err(invalid(
                    "from",
                    "no sending domain is set up for the portal's e-mails",
                ));
            };
            format!("no-reply@{}", first.domain)
        }
    };
    email
        .send(SendRequest {
            template: template.into(),
            to: json!(format!("email:{}", key.value)),
            from,
            from_name: Some(s.brand.clone()),
            data: json!({ "link": link }),
            idempotency_key: None,
            kind: Some("transactional".into()),
            not_before: None,
            untracked: true,
            thread: None,
        })
        .await?;
    Ok(())
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    #[error("This sign-in link is not valid. Ask for a new one.")]
    Unknown,
    #[error(
        "This sign-in link has expired: links work for {LINK_MINUTES} minutes. Ask for a new one."
    )]
    Expired,
    #[error("This sign-in link was already used: each link works once. Ask for a new one.")]
    Replayed,
}

/// What a used link did.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkDone {
    /// Signed in: the new session's token, for the cookie.
    SignedIn(String),
    /// A second address confirmed and joined to the person, who is signed in too.
    EmailAdded { session: String, email: String },
}

/// Uses a link from an e-mail: a sign-in link opens a customer session for the person
/// the address now belongs to; a confirmation link joins the address to the person who
/// asked (and signs them in). Either way the address is marked verified: its owner
/// opened the link.
pub async fn use_link(
    store: &DynStore,
    ingestor: &crate::ingest::Ingestor,
    link_token: &str,
) -> Result<Result<LinkDone, LinkError>, StoreError> {
    let now = now_millis();
    let link = match store.use_link(&hex_sha256(link_token), now).await? {
        LinkUse::Used(l) => l,
        LinkUse::Unknown => return Ok(Err(LinkError::Unknown)),
        LinkUse::Expired => return Ok(Err(LinkError::Expired)),
        LinkUse::Replayed => return Ok(Err(LinkError::Replayed)),
    };
    let key = IdentityKey {
        kind: IdentityKind::Email,
        value: link.email.clone(),
    };
    let proof = json!({
        "method": "e-mail link", "purpose": link.purpose,
        "sent_at": link.created_at, "confirmed_at": now,
    });
    if link.purpose == ADD_EMAIL {
        // The person who asked, wherever a merge has put them since.
        let Some(asked) = link.profile_id else {
            return Ok(Err(LinkError::Unknown));
        };
        let p = match store.profile(asked).await {
            Ok(p) => p,
            Err(StoreError::NotFound(_)) => return Ok(Err(LinkError::Unknown)),
            Err(e) => return Err(e),
        };
        let Some(anchor) = anchor(&p) else {
            return Ok(Err(LinkError::Unknown));
        };
        let person = crate::profiles::add_proved_identity(
            store,
            ingestor,
            &anchor,
            &key,
            &proof,
            "portal",
            &format!("portal:add-email:{}", &link.token_hash[..16]),
        )
        .await?;
        let session = open_session(store, person).await?;
        return Ok(Ok(LinkDone::EmailAdded {
            session,
            email: link.email,
        }));
    }
    // The address may have moved (a merge) since the link was sent: follow it.
    let Some(person) = store.lookup(&key).await? else {
        return Ok(Err(LinkError::Unknown));
    };
    store.verify_identity(&key, proof.to_string(), now).await?;
    Ok(Ok(LinkDone::SignedIn(open_session(store, person).await?)))
}

/// A new customer session for `person`; its token, for the cookie.
async fn open_session(store: &DynStore, person: ProfileId) -> Result<String, StoreError> {
    let now = now_millis();
    let session = token();
    store
        .open_customer_session(
            &hex_sha256(&session),
            person,
            &token(),
            now,
            now + SESSION_HOURS * 3_600_000,
        )
        .await?;
    Ok(session)
}

/// The identifier a proved one is joined through: one the person is surely known by.
fn anchor(p: &rapport_domain::model::ProfileView) -> Option<IdentityKey> {
    let rank = |i: &rapport_domain::model::IdentityView| match i.kind {
        IdentityKind::Email if i.verified => 0,
        IdentityKind::Email => 1,
        IdentityKind::UserId => 2,
        IdentityKind::Wallet => 3,
        IdentityKind::Phone => 4,
        IdentityKind::AnonymousId => 5,
        _ => 9,
    };
    p.identities
        .iter()
        .filter(|i| rank(i) < 9)
        .min_by_key(|i| rank(i))
        .map(|i| IdentityKey {
            kind: i.kind,
            value: i.value.clone(),
        })
}

/// Why a wallet cannot sign in.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WalletError {
    #[error(
        "This wallet is not linked to an account yet. Sign in with your e-mail address, then add the wallet from your profile."
    )]
    NotLinked,
}

/// Signs in the person a checked wallet belongs to. Only a wallet verified before (by
/// SIWE) signs in: anyone may name a wallet in a tracking call, so an unverified one
/// on a profile proves nothing about who holds the profile.
pub async fn wallet_sign_in(
    store: &DynStore,
    wallet: &crate::siwe::Checked,
) -> Result<Result<String, WalletError>, StoreError> {
    let Some(person) = store.lookup(&wallet.wallet).await? else {
        return Ok(Err(WalletError::NotLinked));
    };
    let p = store.profile(person).await?;
    let verified = p
        .identities
        .iter()
        .any(|i| i.kind == IdentityKind::Wallet && i.value == wallet.wallet.value && i.verified);
    if !verified {
        return Ok(Err(WalletError::NotLinked));
    }
    Ok(Ok(open_session(store, p.id).await?))
}

/// Joins a checked wallet to the signed-in person, verified.
pub async fn add_wallet(
    store: &DynStore,
    ingestor: &crate::ingest::Ingestor,
    person: ProfileId,
    wallet: &crate::siwe::Checked,
) -> Result<ProfileId, StoreError> {
    let p = store.profile(person).await?;
    let anchor = anchor(&p).ok_or_else(|| invalid("wallet", "no identifier to join it to"))?;
    let nonce = wallet.proof["nonce"].as_str().unwrap_or_default();
    crate::profiles::add_proved_identity(
        store,
        ingestor,
        &anchor,
        &wallet.wallet,
        &wallet.proof,
        "portal",
        &format!("portal:add-wallet:{nonce}"),
    )
    .await
}

/// Sends a confirmation link to a second address the signed-in person gave; the
/// address joins them when the link is used (`use_link`).
pub async fn request_add_email(
    store: &DynStore,
    email: &Email,
    person: ProfileId,
    raw: &str,
    base_url: &str,
) -> Result<String, StoreError> {
    let key = IdentityKey::parse(IdentityKind::Email, raw)
        .map_err(|e| invalid("email", e.to_string()))?;
    let p = store.profile(person).await?;
    if p.identities
        .iter()
        .any(|i| i.kind == IdentityKind::Email && i.value == key.value)
    {
        return Err(invalid("email", format!("{} is already yours", key.value)));
    }
    let s = settings(store).await?;
    let template = portal_template(
        email,
        CONFIRM_TEMPLATE,
        "Confirm your e-mail address",
        "<p>Hello,</p><p>Confirm that this address is yours, to add it to your profile:</p>\
         <p><a href=\"{{ data.link }}\">{{ data.link }}</a></p>\
         <p>The link works once, within 15 minutes. If you did not ask for it, ignore this e-mail.</p>",
    )
    .await?;
    let link = new_link(store, ADD_EMAIL, &key, Some(person), base_url).await?;
    send_portal_mail(store, email, &s, &template, &key, link).await?;
    Ok(key.value)
}

/// The signed-in person and the session's CSRF token.
pub async fn session(
    store: &DynStore,
    token: &str,
) -> Result<Option<(ProfileId, String)>, StoreError> {
    let Some((person, csrf)) = store
        .customer_session(&hex_sha256(token), now_millis())
        .await?
    else {
        return Ok(None);
    };
    // The person may have been merged into another since sign-in.
    Ok(match store.profile(person).await {
        Ok(p) => Some((p.id, csrf)),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e),
    })
}

pub async fn sign_out(store: &DynStore, token: &str) -> Result<(), StoreError> {
    store.close_customer_session(&hex_sha256(token)).await
}

/// The traits a customer may see, with whether each is editable.
pub fn shown_traits(s: &PortalSettings, traits: &Value) -> Vec<(String, Value, bool)> {
    let mut out = Vec::new();
    if let Some(o) = traits.as_object() {
        for (k, v) in o {
            match s.visibility(k) {
                Visibility::StaffOnly => {}
                vis => out.push((k.clone(), v.clone(), vis == Visibility::Editable)),
            }
        }
    }
    // Editable keys the person has no value for yet, to fill in.
    for (k, vis) in &s.traits {
        if *vis == Visibility::Editable && !out.iter().any(|(o, _, _)| o == k) {
            out.push((k.clone(), Value::Null, true));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A customer's edit of their traits: each key must be editable; an empty value
/// removes the trait. Nothing is written when any key is refused.
pub async fn edit_traits(
    store: &DynStore,
    person: ProfileId,
    values: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    let s = settings(store).await?;
    let mut patch = serde_json::Map::new();
    for (k, v) in values {
        if s.visibility(k) != Visibility::Editable {
            return Err(invalid(
                k,
                "this detail cannot be changed here; contact us to change it",
            ));
        }
        if v.chars().count() > 200 {
            return Err(invalid(k, "at most 200 characters"));
        }
        let v = v.trim();
        patch.insert(
            k.clone(),
            if v.is_empty() {
                Value::Null
            } else {
                Value::String(v.into())
            },
        );
    }
    if patch.is_empty() {
        return Ok(());
    }
    crate::profiles::patch_traits(store, person, &Value::Object(patch), now_millis()).await
}

/// One line of the preference centre: a channel × purpose, whether the person wants it,
/// and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub channel: String,
    pub purpose: String,
    pub granted: bool,
    pub frequency: Frequency,
}

/// The frequency a consent shows now: a pause that has run its 30 days is over.
pub fn current_frequency(c: &ConsentView, now: i64) -> Frequency {
    c.frequency.in_force(c.at.timestamp_millis(), now)
}

/// The customer's choices in the preference centre, each recorded as a consent with
/// source `customer` and `proof` (the session and client), when it changes. A
/// channel × purpose the form does not name is denied (an unticked box is not sent).
pub async fn set_preferences(
    store: &DynStore,
    person: ProfileId,
    choices: &[Choice],
    proof: &str,
) -> Result<usize, StoreError> {
    let s = settings(store).await?;
    if let Some(c) = choices
        .iter()
        .find(|c| !s.channels.contains(&c.channel) || !s.purposes.contains(&c.purpose))
    {
        return Err(invalid(
            &format!("pref.{}.{}", c.channel, c.purpose),
            "not a channel and purpose of this preference centre",
        ));
    }
    let current = store.profile(person).await?.consents;
    let now = now_millis();
    let mut changed = 0;
    for channel in &s.channels {
        for purpose in &s.purposes {
            let chosen = choices
                .iter()
                .find(|c| &c.channel == channel && &c.purpose == purpose);
            let status = if chosen.is_some_and(|c| c.granted) {
                ConsentStatus::Granted
            } else {
                ConsentStatus::Denied
            };
            let frequency = chosen.map(|c| c.frequency).unwrap_or_default();
            let has = current
                .iter()
                .find(|c| &c.channel == channel && &c.purpose == purpose);
            if has.is_some_and(|c| c.status == status && current_frequency(c, now) == frequency) {
                continue;
            }
            crate::profiles::set_consent(
                store,
                person,
                &ConsentInput {
                    channel: channel.clone(),
                    purpose: purpose.clone(),
                    status,
                    source: "customer".into(),
                    proof: Some(proof.to_string()),
                    at: now,
                    frequency,
                },
            )
            .await?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// One reason the brand reaches the person, in words.
#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    pub title: String,
    pub detail: String,
}

/// "Why am I seeing this": the segments the person is in (with their description or
/// definition), the scores offers and sends use (with their explanations), and the
/// e-mails the brand sent, each with the campaign and audience that chose them.
pub async fn why(
    store: &DynStore,
    person: ProfileId,
) -> Result<(Vec<Reason>, Vec<Reason>, Vec<Reason>), StoreError> {
    let names = store.profile_segments(person).await?;
    let all = store.segments().await?;
    let segments = names
        .iter()
        .map(|n| {
            let row = all.iter().find(|s| &s.name == n);
            Reason {
                title: n.clone(),
                detail: row
                    .map(|r| {
                        if r.description.trim().is_empty() {
                            format!("Its rule: {}", r.definition)
                        } else {
                            r.description.clone()
                        }
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    let scores = store
        .profile_scores(person)
        .await?
        .into_iter()
        .map(|s| Reason {
            title: format!("{}: {}", s.name, (s.value * 100.0).round() / 100.0),
            detail: explain(&s.explanation),
        })
        .collect();
    let members = store.profile(person).await?.member_ids;
    let campaigns = store.campaigns().await?;
    let emails = store
        .messages(rapport_store::MessageQuery {
            profile: Some(members),
            status: None,
            limit: 50,
        })
        .await?
        .into_iter()
        .filter(|m| m.status != "skipped")
        .map(|m| {
            let why = match m
                .campaign_id
                .and_then(|id| campaigns.iter().find(|c| c.id == id))
            {
                Some(c) => format!(
                    "Sent as part of “{}” to {}.",
                    c.name,
                    audience_words(&c.audience)
                ),
                None => "Sent to you alone, about something you did or asked for.".to_string(),
            };
            Reason {
                title: format!(
                    "{} — {}",
                    rapport_domain::time::to_datetime(m.created_at).format("%Y-%m-%d"),
                    m.subject
                ),
                detail: format!("{why} {}", address_words(&m.address_reason)),
            }
        })
        .collect();
    Ok((segments, scores, emails))
}

fn address_words(reason: &str) -> String {
    match reason {
        "primary" => "It went to the address you chose as primary.".into(),
        "engaged" => "It went to the address you last read our e-mails at.".into(),
        "newest" => "It went to the address you gave us most recently.".into(),
        "given" => "It went to the address it was meant for.".into(),
        other => format!("Address chosen: {other}."),
    }
}

fn audience_words(a: &Value) -> String {
    if let Some(s) = a.get("segment") {
        let s = s
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| s.to_string());
        format!("the people in the segment “{s}”")
    } else if a.get("profiles").is_some() {
        "a list of people chosen by our staff".into()
    } else {
        "a group of customers".into()
    }
}

/// A score's stored explanation in words: its `text`/`summary`, else its parts.
fn explain(e: &Value) -> String {
    for k in ["text", "summary", "reason"] {
        if let Some(s) = e.get(k).and_then(Value::as_str) {
            return s.to_string();
        }
    }
    match e {
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}: {}",
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// How a customer is named in records they made themselves (consents' sources, the
/// erasure audit).
pub fn who(person: ProfileId) -> String {
    format!("customer:person:{person}")
}

/// Makes `address` the person's primary e-mail (sends go there first); the others lose
/// the mark. `address` must be one of theirs.
pub async fn set_primary(
    store: &DynStore,
    person: ProfileId,
    address: &str,
) -> Result<(), StoreError> {
    let a = rapport_domain::identifier::normalize_email(address)
        .map_err(|e| invalid("address", e.to_string()))?;
    let p = store.profile(person).await?;
    let mine: Vec<String> = p
        .identities
        .iter()
        .filter(|i| i.kind == IdentityKind::Email)
        .map(|i| i.value.clone())
        .collect();
    if !mine.contains(&a) {
        return Err(invalid(
            "address",
            format!("{a} is not one of this person's addresses"),
        ));
    }
    let now = now_millis();
    for other in mine.iter().filter(|o| **o != a) {
        store.set_primary(other, false, now).await?;
    }
    store.set_primary(&a, true, now).await?;
    crate::changes::announce(store, crate::changes::Change::Standing).await
}

/// Removes one of the person's identifiers (`kind:value`) at their request: moved off
/// them onto a profile of its own, which is then erased. The last identifier other than
/// anonymous ids cannot go (deleting the account is for that).
pub async fn remove_identity(
    store: &DynStore,
    person: ProfileId,
    identifier: &str,
) -> Result<(), StoreError> {
    let key =
        IdentityKey::parse_prefixed(identifier).map_err(|e| invalid("identity", e.to_string()))?;
    let p = store.profile(person).await?;
    if !p
        .identities
        .iter()
        .any(|i| i.kind == key.kind && i.value == key.value)
    {
        return Err(invalid("identity", "not one of yours"));
    }
    let named = p
        .identities
        .iter()
        .filter(|i| i.kind != IdentityKind::AnonymousId)
        .count();
    if key.kind != IdentityKind::AnonymousId && named <= 1 {
        return Err(invalid(
            "identity",
            "this is the last way we know you; delete your account instead",
        ));
    }
    let now = now_millis();
    let d = crate::profiles::detach(store, person, &key, &who(person), now).await?;
    store
        .erase(vec![d.to_profile], false, &who(person), now)
        .await?;
    crate::changes::announce(store, crate::changes::Change::Retracted).await
}
