//! Campaigns: one template to an audience — a segment evaluated when the campaign starts,
//! or a list of people — planned in chunks (each person's message rendered, signed and
//! stored with `Email Sent`, idempotent per campaign × person, so a restart resumes
//! where planning stopped and nobody gets two), paced by `per_minute`, paused, resumed
//! or cancelled, with a report. `rapport serve` runs [`run`].

use super::{context, invalid, Email, Recipient};
use rapport_domain::identifier::IdentityKind;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::{now_millis, parse_timestamp};
use rapport_email::address::{self, Candidate};
use rapport_segment::parser::parse;
use rapport_segment::sql;
use rapport_store::{EmailCampaign, EmailMessage, StoreError};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// People planned per transaction.
const CHUNK: usize = 500;

/// What staff give to make a campaign.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    pub name: String,
    /// Template name or id.
    pub template: String,
    pub from: String,
    #[serde(default)]
    pub from_name: Option<String>,
    /// `marketing` (default: consent needed, unsubscribe headers) or `transactional`.
    #[serde(default)]
    pub kind: Option<String>,
    /// `{"segment": NAME_OR_ID}` or `{"profiles": [ID, …]}`.
    #[schema(value_type = Object)]
    pub audience: Value,
    /// ISO-8601; the campaign starts then (`start: true` without it: now).
    #[serde(default)]
    pub send_at: Option<String>,
    /// Messages per minute handed to the relay.
    #[serde(default)]
    pub per_minute: Option<i64>,
    /// Schedule it now (else it stays a draft until `POST …/start`).
    #[serde(default)]
    pub start: bool,
}

/// The people an audience names now. A segment that no longer parses, or is gone, is an
/// error naming `audience.segment`.
pub async fn audience(email: &Email, a: &Value) -> Result<Vec<ProfileId>, StoreError> {
    let store = email.store();
    if let Some(ids) = a.get("profiles") {
        let ids = ids
            .as_array()
            .filter(|v| !v.is_empty() && v.len() <= 1_000_000)
            .ok_or_else(|| invalid("audience.profiles", "1 to 1,000,000 profile ids"))?;
        let mut out = Vec::with_capacity(ids.len());
        for (i, v) in ids.iter().enumerate() {
            out.push(
                v.as_i64()
                    .ok_or_else(|| invalid(&format!("audience.profiles[{i}]"), "a profile id"))?,
            );
        }
        return Ok(out);
    }
    let seg = match a.get("segment") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(invalid(
                "audience",
                "`{\"segment\": NAME_OR_ID}` or `{\"profiles\": [ID, …]}`",
            ))
        }
    };
    let row = match seg.parse::<i64>() {
        Ok(id) => store.segment(id).await.ok(),
        Err(_) => store.segment_by_name(&seg).await?,
    }
    .ok_or_else(|| invalid("audience.segment", format!("no segment `{seg}`")))?;
    if row.kind == "static" {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = store.segment_member_ids(row.id, after, 10_000).await?;
            let Some(&last) = page.last() else { break };
            after = last;
            out.extend(page);
        }
        return Ok(out);
    }
    let e = parse(&row.definition).map_err(|e| {
        invalid(
            "audience.segment",
            format!("segment `{}` no longer parses: {e}", row.name),
        )
    })?;
    store
        .segment_all_matches(sql::compile(&e, store.dialect(), now_millis()))
        .await
}

/// Checks and saves a campaign (a draft, or scheduled with `start` / `send_at`).
pub async fn create(email: &Email, input: CampaignInput) -> Result<EmailCampaign, StoreError> {
    let name = input.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(invalid("name", "1 to 200 characters"));
    }
    let kind = input.kind.clone().unwrap_or_else(|| "marketing".into());
    if !matches!(kind.as_str(), "marketing" | "transactional") {
        return Err(invalid("kind", "`marketing` or `transactional`"));
    }
    if let Some(r) = input.per_minute {
        if !(1..=1_000_000).contains(&r) {
            return Err(invalid("per_minute", "from 1 to 1,000,000"));
        }
    }
    let send_at = match &input.send_at {
        Some(t) => Some(parse_timestamp(t).ok_or_else(|| invalid("send_at", "an ISO-8601 time"))?),
        None => None,
    };
    // The template, sender and audience are checked now; the audience is evaluated again
    // when the campaign starts.
    let prep = email
        .prepare(
            &input.template,
            &input.from,
            input.from_name.clone(),
            &kind,
            None,
        )
        .await?;
    audience(email, &input.audience).await?;
    let now = now_millis();
    let mut c = EmailCampaign {
        id: 0,
        name: name.to_string(),
        template_id: prep.template.id,
        from_address: input.from.trim().to_string(),
        from_name: input.from_name,
        kind,
        audience: input.audience,
        status: if input.start || send_at.is_some() {
            "scheduled".into()
        } else {
            "draft".into()
        },
        send_at: send_at.or(input.start.then_some(now)),
        per_minute: input.per_minute,
        planned: 0,
        skipped: 0,
        error: None,
        created_at: now,
        started_at: None,
        finished_at: None,
    };
    c.id = email.store().save_campaign(c.clone()).await?;
    Ok(c)
}

async fn get(email: &Email, id: i64) -> Result<EmailCampaign, StoreError> {
    email
        .store()
        .campaign(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("campaign {id}")))
}

/// Starts, pauses, resumes or cancels a campaign.
pub async fn act(email: &Email, id: i64, action: &str) -> Result<EmailCampaign, StoreError> {
    let store = email.store();
    let mut c = get(email, id).await?;
    let wrong = |c: &EmailCampaign| {
        StoreError::Conflict(format!("campaign {id} is {}: it cannot {action}", c.status))
    };
    match action {
        "start" => {
            if c.status != "draft" {
                return Err(wrong(&c));
            }
            c.status = "scheduled".into();
            c.send_at = Some(now_millis());
        }
        "pause" => {
            if !matches!(c.status.as_str(), "scheduled" | "planning" | "sending") {
                return Err(wrong(&c));
            }
            c.status = "paused".into();
            store.save_campaign(c.clone()).await?;
            store.move_campaign_messages(id, "queued", "paused").await?;
            return Ok(c);
        }
        "resume" => {
            if c.status != "paused" {
                return Err(wrong(&c));
            }
            store.move_campaign_messages(id, "paused", "queued").await?;
            // Planning picks up past the people already planned.
            c.status = if c.started_at.is_some() {
                "planning"
            } else {
                "scheduled"
            }
            .into();
        }
        "cancel" => {
            if matches!(c.status.as_str(), "done" | "cancelled" | "failed") {
                return Err(wrong(&c));
            }
            c.status = "cancelled".into();
            c.finished_at = Some(now_millis());
            store.save_campaign(c.clone()).await?;
            for from in ["queued", "paused"] {
                store.move_campaign_messages(id, from, "cancelled").await?;
            }
            return Ok(c);
        }
        other => {
            return Err(invalid(
                "action",
                format!("`{other}`: use start, pause, resume or cancel"),
            ))
        }
    }
    store.save_campaign(c.clone()).await?;
    Ok(c)
}

/// A test send of the campaign's message to a staff address (transactional: no consent
/// needed, not counted in the campaign).
pub async fn test_send(email: &Email, id: i64, to: &str) -> Result<EmailMessage, StoreError> {
    let c = get(email, id).await?;
    if !to.starts_with("email:") {
        return Err(invalid("to", "`email:<address>` of the staff member"));
    }
    email
        .send(super::SendRequest {
            template: c.template_id.to_string(),
            to: json!(to),
            from: c.from_address,
            from_name: c.from_name,
            data: json!({}),
            idempotency_key: None,
            kind: Some("transactional".into()),
            not_before: None,
        })
        .await
}

/// Plans what is due and closes what is sent; returns the messages made.
pub async fn step(email: &Email) -> Result<usize, StoreError> {
    let store = email.store();
    let now = now_millis();
    let mut made = 0;
    for mut c in store.campaigns().await? {
        match c.status.as_str() {
            "scheduled" if c.send_at.is_none_or(|t| t <= now) => {
                c.status = "planning".into();
                c.started_at = Some(now);
                store.save_campaign(c.clone()).await?;
                made += plan(email, c).await?;
            }
            "planning" => made += plan(email, c).await?,
            "sending" => {
                let r = store.campaign_report(c.id).await?;
                if !["queued", "paused", "sending"]
                    .iter()
                    .any(|s| r.statuses.contains_key(*s))
                {
                    c.status = "done".into();
                    c.finished_at = Some(now);
                    store.save_campaign(c).await?;
                }
            }
            _ => {}
        }
    }
    Ok(made)
}

/// Makes the messages of a planning campaign, a chunk per transaction, past the people
/// it already has; stops when the campaign is paused or cancelled meanwhile.
async fn plan(email: &Email, mut c: EmailCampaign) -> Result<usize, StoreError> {
    let store = email.store();
    let people = match audience(email, &c.audience).await {
        Ok(p) => p,
        Err(StoreError::Invalid { field, reason }) => {
            c.status = "failed".into();
            c.error = Some(format!("{field}: {reason}"));
            c.finished_at = Some(now_millis());
            store.save_campaign(c).await?;
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let prep = match email
        .prepare(
            &c.template_id.to_string(),
            &c.from_address,
            c.from_name.clone(),
            &c.kind,
            Some(c.id),
        )
        .await
    {
        Ok(p) => p,
        Err(StoreError::Invalid { field, reason }) => {
            c.status = "failed".into();
            c.error = Some(format!("{field}: {reason}"));
            store.save_campaign(c).await?;
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let done: HashSet<ProfileId> = store.campaign_people(c.id).await?.into_iter().collect();
    let mut seen = HashSet::new();
    let todo: Vec<ProfileId> = people
        .into_iter()
        .filter(|p| !done.contains(p) && seen.insert(*p))
        .collect();
    let start = c.started_at.unwrap_or_else(now_millis);
    let mut index = done.len() as i64;
    let mut made = 0;
    let data = json!({});
    for chunk in todo.chunks(CHUNK) {
        // Paused or cancelled while planning: stop here; resuming plans the rest.
        if get(email, c.id).await?.status != "planning" {
            return Ok(made);
        }
        let persons = store.profiles(chunk.to_vec()).await?;
        let addresses: Vec<String> = persons
            .iter()
            .flat_map(|p| p.identities.iter())
            .filter(|i| i.kind == IdentityKind::Email)
            .map(|i| i.value.clone())
            .collect();
        let facts: HashMap<String, rapport_store::AddressFacts> = store
            .address_facts(addresses)
            .await?
            .into_iter()
            .map(|f| (f.address.clone(), f))
            .collect();
        let mut batch = Vec::with_capacity(persons.len());
        for p in &persons {
            let candidates: Vec<Candidate> = p
                .identities
                .iter()
                .filter(|i| i.kind == IdentityKind::Email)
                .map(|i| {
                    let f = facts.get(&i.value);
                    Candidate {
                        address: i.value.clone(),
                        primary: f.is_some_and(|f| f.primary),
                        last_engaged: f.and_then(|f| f.last_engaged),
                        suppressed: f.is_some_and(|f| f.suppressed),
                        first_seen: i.first_seen.timestamp_millis(),
                    }
                })
                .collect();
            let key = Some(format!("campaign:{}:{}", c.id, p.id));
            let Some(choice) = address::choose(&candidates) else {
                let mut m = skipped(&c, p.id, "no e-mail address");
                m.idempotency_key = key;
                batch.push((m, Vec::new()));
                continue;
            };
            let reason = choice.reason.as_str();
            let ctx = context(store, &prep, p, &choice.address, &data).await?;
            let next_at = c
                .per_minute
                .map_or(start, |r| start + index * 60_000 / r.max(1));
            let made_one = email.make(
                &prep,
                Recipient {
                    person: p,
                    address: &choice.address,
                    reason,
                    suppressed: candidates.iter().all(|x| x.suppressed),
                },
                &ctx,
                key,
                next_at,
            );
            match made_one {
                Ok(m) => {
                    if m.0.status != "skipped" {
                        index += 1;
                    }
                    batch.push(m);
                }
                // One person's data that does not render is that person's skip.
                Err(StoreError::Invalid { field, reason }) => {
                    let mut m = skipped(&c, p.id, &format!("{field}: {reason}"));
                    m.idempotency_key = Some(format!("campaign:{}:{}", c.id, p.id));
                    batch.push((m, Vec::new()));
                }
                Err(e) => return Err(e),
            }
        }
        let stored = store.queue(batch).await?;
        for m in &stored {
            if m.status == "skipped" {
                c.skipped += 1;
            } else {
                c.planned += 1;
                made += 1;
            }
        }
        store.save_campaign(c.clone()).await?;
    }
    c.status = "sending".into();
    store.save_campaign(c).await?;
    Ok(made)
}

fn skipped(c: &EmailCampaign, profile: ProfileId, why: &str) -> EmailMessage {
    let now = now_millis();
    EmailMessage {
        id: 0,
        public_id: uuid::Uuid::now_v7().to_string(),
        idempotency_key: None,
        kind: c.kind.clone(),
        template_id: Some(c.template_id),
        campaign_id: Some(c.id),
        profile_id: profile,
        to_address: String::new(),
        address_reason: String::new(),
        from_address: c.from_address.clone(),
        subject: String::new(),
        return_path: String::new(),
        raw: Vec::new(),
        links: Vec::new(),
        status: "skipped".into(),
        attempts: 0,
        next_at: now,
        last_error: Some(why.into()),
        created_at: now,
        delivered_at: None,
        opened_at: None,
        clicked_at: None,
        unsubscribed_at: None,
    }
}

/// The campaign worker `rapport serve` runs.
pub async fn run(email: Arc<Email>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let step = step(&email).await;
        let idle = Duration::from_millis(500);
        if !crate::worker::pause_after("e-mail campaigns", step, idle, idle, &mut shutdown).await {
            return;
        }
    }
}

/// A campaign with its report, as the API shows it.
pub async fn view(email: &Email, id: i64) -> Result<Value, StoreError> {
    let c = get(email, id).await?;
    let r = email.store().campaign_report(id).await?;
    Ok(json!({"campaign": c, "report": r}))
}
