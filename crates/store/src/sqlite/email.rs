//! SQLite side of e-mail: domains and keys, templates, the outbox, suppressions.

use super::ingest::insert_events;
use super::SqliteStore;
use crate::{
    AddressFacts, CampaignReport, DkimKeyRow, EmailCampaign, EmailDomain, EmailMessage, EmailStore,
    EmailTemplate, Engaged, Engagement, MessageQuery, Result, StoreError, Suppression,
    VariantReport,
};
use async_trait::async_trait;
use rapport_domain::resolve::EventRow;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

const MSG_COLS: &str = "id, public_id, idempotency_key, kind, template_id, campaign_id, profile_id, to_address, address_reason, from_address, subject, return_path, raw, links, status, attempts, next_at, last_error, created_at, delivered_at, opened_at, clicked_at, unsubscribed_at, variant";
const CAMPAIGN_COLS: &str = "id, name, template_id, from_address, from_name, kind, audience, status, send_at, per_minute, planned, skipped, error, created_at, started_at, finished_at, ab";
const TPL_COLS: &str = "id, name, subject, html, text, created_at, updated_at";

fn message(r: &rusqlite::Row<'_>) -> rusqlite::Result<EmailMessage> {
    let links: String = r.get(13)?;
    Ok(EmailMessage {
        id: r.get(0)?,
        public_id: r.get(1)?,
        idempotency_key: r.get(2)?,
        kind: r.get(3)?,
        template_id: r.get(4)?,
        campaign_id: r.get(5)?,
        profile_id: r.get(6)?,
        to_address: r.get(7)?,
        address_reason: r.get(8)?,
        from_address: r.get(9)?,
        subject: r.get(10)?,
        return_path: r.get(11)?,
        raw: r.get(12)?,
        links: serde_json::from_str(&links).unwrap_or_default(),
        status: r.get(14)?,
        attempts: r.get(15)?,
        next_at: r.get(16)?,
        last_error: r.get(17)?,
        created_at: r.get(18)?,
        delivered_at: r.get(19)?,
        opened_at: r.get(20)?,
        clicked_at: r.get(21)?,
        unsubscribed_at: r.get(22)?,
        variant: r.get(23)?,
    })
}

fn campaign(r: &rusqlite::Row<'_>) -> rusqlite::Result<EmailCampaign> {
    let audience: String = r.get(6)?;
    Ok(EmailCampaign {
        id: r.get(0)?,
        name: r.get(1)?,
        template_id: r.get(2)?,
        from_address: r.get(3)?,
        from_name: r.get(4)?,
        kind: r.get(5)?,
        audience: serde_json::from_str(&audience).unwrap_or_default(),
        status: r.get(7)?,
        send_at: r.get(8)?,
        per_minute: r.get(9)?,
        planned: r.get(10)?,
        skipped: r.get(11)?,
        error: r.get(12)?,
        created_at: r.get(13)?,
        started_at: r.get(14)?,
        finished_at: r.get(15)?,
        ab: r
            .get::<_, Option<String>>(16)?
            .and_then(|s| serde_json::from_str(&s).ok()),
    })
}

fn template(r: &rusqlite::Row<'_>) -> rusqlite::Result<EmailTemplate> {
    Ok(EmailTemplate {
        id: r.get(0)?,
        name: r.get(1)?,
        subject: r.get(2)?,
        html: r.get(3)?,
        text: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

fn by_key(tx: &Transaction<'_>, key: &str) -> Result<Option<EmailMessage>> {
    Ok(tx
        .prepare_cached(&format!(
            "SELECT {MSG_COLS} FROM email_messages WHERE idempotency_key = ?1"
        ))?
        .query_row([key], message)
        .optional()?)
}

fn domains_in(c: &Connection) -> Result<Vec<EmailDomain>> {
    let mut out: Vec<EmailDomain> = c
        .prepare_cached("SELECT domain, created_at FROM email_domains ORDER BY domain")?
        .query_map([], |r| {
            Ok(EmailDomain {
                domain: r.get(0)?,
                keys: Vec::new(),
                created_at: r.get(1)?,
            })
        })?
        .collect::<std::result::Result<_, _>>()?;
    let mut keys = c.prepare_cached(
        "SELECT algorithm, selector, private_key, public_key FROM email_keys WHERE domain = ?1 ORDER BY algorithm, selector",
    )?;
    for d in &mut out {
        d.keys = keys
            .query_map([&d.domain], |r| {
                Ok(DkimKeyRow {
                    algorithm: r.get(0)?,
                    selector: r.get(1)?,
                    private_key: r.get(2)?,
                    public_key: r.get(3)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
    }
    Ok(out)
}

#[async_trait]
impl EmailStore for SqliteStore {
    async fn add_domain(&self, d: EmailDomain) -> Result<()> {
        self.write(move |tx| {
            let known: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM email_domains WHERE domain = ?1",
                    [&d.domain],
                    |r| r.get(0),
                )
                .optional()?;
            if known.is_some() {
                return Err(StoreError::Conflict(format!(
                    "the domain {} is set up already",
                    d.domain
                )));
            }
            tx.execute(
                "INSERT INTO email_domains (domain, created_at) VALUES (?1, ?2)",
                params![d.domain, d.created_at],
            )?;
            for k in &d.keys {
                tx.execute(
                    "INSERT INTO email_keys (domain, selector, algorithm, private_key, public_key) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![d.domain, k.selector, k.algorithm, k.private_key, k.public_key],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn domains(&self) -> Result<Vec<EmailDomain>> {
        self.read(domains_in).await
    }

    async fn save_template(&self, t: EmailTemplate) -> Result<i64> {
        self.write(move |tx| {
            let taken: Option<i64> = tx
                .query_row(
                    "SELECT id FROM email_templates WHERE name = ?1 AND id <> ?2",
                    params![t.name, t.id],
                    |r| r.get(0),
                )
                .optional()?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!(
                    "a template named '{}' exists",
                    t.name
                )));
            }
            if t.id == 0 {
                tx.execute(
                    "INSERT INTO email_templates (name, subject, html, text, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                    params![t.name, t.subject, t.html, t.text, t.updated_at],
                )?;
                return Ok(tx.last_insert_rowid());
            }
            let n = tx.execute(
                "UPDATE email_templates SET name = ?2, subject = ?3, html = ?4, text = ?5, updated_at = ?6 WHERE id = ?1",
                params![t.id, t.name, t.subject, t.html, t.text, t.updated_at],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("template {}", t.id)));
            }
            Ok(t.id)
        })
        .await
    }

    async fn templates(&self) -> Result<Vec<EmailTemplate>> {
        self.read(|c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {TPL_COLS} FROM email_templates ORDER BY name"
            ))?
            .query_map([], template)?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn template(&self, id_or_name: &str) -> Result<Option<EmailTemplate>> {
        let key = id_or_name.to_string();
        self.read(move |c| {
            let id: i64 = key.parse().unwrap_or(-1);
            Ok(c.prepare_cached(&format!(
                "SELECT {TPL_COLS} FROM email_templates WHERE id = ?1 OR name = ?2 ORDER BY id = ?1 DESC LIMIT 1"
            ))?
            .query_row(params![id, key], template)
            .optional()?)
        })
        .await
    }

    async fn delete_template(&self, id: i64) -> Result<()> {
        self.write(move |tx| {
            if tx.execute("DELETE FROM email_templates WHERE id = ?1", [id])? == 0 {
                return Err(StoreError::NotFound(format!("template {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn queue(&self, msgs: Vec<(EmailMessage, Vec<EventRow>)>) -> Result<Vec<EmailMessage>> {
        self.write(move |tx| {
            let mut out = Vec::with_capacity(msgs.len());
            let mut ins = tx.prepare_cached(
                "INSERT INTO email_messages (public_id, idempotency_key, kind, template_id, campaign_id, profile_id, to_address, address_reason, from_address, subject, return_path, raw, links, status, attempts, next_at, last_error, created_at, delivered_at, variant)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
            )?;
            let mut events = Vec::new();
            for (mut m, evs) in msgs {
                if let Some(known) = m.idempotency_key.as_deref().map(|k| by_key(tx, k)).transpose()?.flatten() {
                    out.push(known);
                    continue;
                }
                ins.execute(params![
                    m.public_id, m.idempotency_key, m.kind, m.template_id, m.campaign_id, m.profile_id,
                    m.to_address, m.address_reason, m.from_address, m.subject, m.return_path, m.raw,
                    serde_json::to_string(&m.links).unwrap_or_default(), m.status, m.attempts, m.next_at,
                    m.last_error, m.created_at, m.delivered_at, m.variant
                ])?;
                m.id = tx.last_insert_rowid();
                events.extend(evs);
                out.push(m);
            }
            insert_events(tx, &events, "email")?;
            Ok(out)
        })
        .await
    }

    async fn update_messages(&self, ms: Vec<(EmailMessage, Vec<EventRow>)>) -> Result<()> {
        self.write(move |tx| {
            let mut up = tx.prepare_cached(
                "UPDATE email_messages SET status = ?2, attempts = ?3, next_at = ?4, last_error = ?5, delivered_at = ?6 WHERE id = ?1",
            )?;
            let mut events = Vec::new();
            for (m, evs) in ms {
                up.execute(params![m.id, m.status, m.attempts, m.next_at, m.last_error, m.delivered_at])?;
                events.extend(evs);
            }
            insert_events(tx, &events, "email")
        })
        .await
    }

    async fn claim(&self, now: Millis, limit: usize) -> Result<Vec<EmailMessage>> {
        self.write(move |tx| {
            let mut ms: Vec<EmailMessage> = tx
                .prepare_cached(&format!(
                    "SELECT {MSG_COLS} FROM email_messages WHERE status = 'queued' AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2"
                ))?
                .query_map(params![now, limit as i64], message)?
                .collect::<std::result::Result<_, _>>()?;
            let mut up = tx.prepare_cached(
                "UPDATE email_messages SET status = 'sending', next_at = ?2 WHERE id = ?1",
            )?;
            for m in &mut ms {
                up.execute(params![m.id, now])?;
                m.status = "sending".into();
                m.next_at = now;
            }
            Ok(ms)
        })
        .await
    }

    async fn expire_claims(&self, before: Millis) -> Result<i64> {
        self.write(move |tx| {
            Ok(tx.execute(
                "UPDATE email_messages SET status = 'unknown', last_error = 'interrupted while the relay had it; not sent again (it may have arrived)'
                 WHERE status = 'sending' AND next_at < ?1",
                [before],
            )? as i64)
        })
        .await
    }

    async fn message(&self, public_id: &str) -> Result<Option<EmailMessage>> {
        let id = public_id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {MSG_COLS} FROM email_messages WHERE public_id = ?1"
            ))?
            .query_row([id], message)
            .optional()?)
        })
        .await
    }

    async fn messages(&self, q: MessageQuery) -> Result<Vec<EmailMessage>> {
        self.read(move |c| {
            let people = q
                .profile
                .as_ref()
                .map(|p| serde_json::to_string(p).unwrap_or_default());
            Ok(c.prepare_cached(&format!(
                "SELECT {MSG_COLS} FROM email_messages
                 WHERE (?1 IS NULL OR profile_id IN (SELECT value FROM json_each(?1)))
                   AND (?2 IS NULL OR status = ?2)
                 ORDER BY id DESC LIMIT ?3"
            ))?
            .query_map(params![people, q.status, q.limit as i64], message)?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn engage(&self, items: Vec<Engaged>) -> Result<()> {
        self.write(move |tx| {
            let mut events = Vec::with_capacity(items.len());
            for e in items {
                let col = match &e.what {
                    Engagement::Open => "opened_at",
                    Engagement::Click(_) => "clicked_at",
                    Engagement::Unsubscribe => "unsubscribed_at",
                };
                tx.prepare_cached(&format!(
                    "UPDATE email_messages SET {col} = COALESCE({col}, ?2) WHERE public_id = ?1"
                ))?
                .execute(params![e.message, e.at])?;
                if let Engagement::Click(url) = &e.what {
                    tx.prepare_cached(
                        "INSERT INTO email_clicks (campaign_id, message_id, url, at) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![e.campaign, e.message, url, e.at])?;
                }
                events.push(e.event);
            }
            insert_events(tx, &events, "email")
        })
        .await
    }

    async fn save_campaign(&self, c: EmailCampaign) -> Result<i64> {
        self.write(move |tx| {
            let taken: Option<i64> = tx
                .query_row(
                    "SELECT id FROM email_campaigns WHERE name = ?1 AND id <> ?2",
                    params![c.name, c.id],
                    |r| r.get(0),
                )
                .optional()?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!("a campaign named '{}' exists", c.name)));
            }
            let audience = c.audience.to_string();
        let ab = c.ab.as_ref().map(|v| v.to_string());
            if c.id == 0 {
                tx.execute(
                    "INSERT INTO email_campaigns (name, template_id, from_address, from_name, kind, audience, status, send_at, per_minute, planned, skipped, error, created_at, started_at, finished_at, ab)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                    params![c.name, c.template_id, c.from_address, c.from_name, c.kind, audience, c.status, c.send_at, c.per_minute, c.planned, c.skipped, c.error, c.created_at, c.started_at, c.finished_at, ab],
                )?;
                return Ok(tx.last_insert_rowid());
            }
            tx.execute(
                "UPDATE email_campaigns SET name = ?2, template_id = ?3, from_address = ?4, from_name = ?5, kind = ?6, audience = ?7, status = ?8, send_at = ?9, per_minute = ?10, planned = ?11, skipped = ?12, error = ?13, started_at = ?14, finished_at = ?15, ab = ?16 WHERE id = ?1",
                params![c.id, c.name, c.template_id, c.from_address, c.from_name, c.kind, audience, c.status, c.send_at, c.per_minute, c.planned, c.skipped, c.error, c.started_at, c.finished_at, ab],
            )?;
            Ok(c.id)
        })
        .await
    }

    async fn campaigns(&self) -> Result<Vec<EmailCampaign>> {
        self.read(|c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {CAMPAIGN_COLS} FROM email_campaigns ORDER BY id DESC"
            ))?
            .query_map([], campaign)?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn campaign(&self, id: i64) -> Result<Option<EmailCampaign>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {CAMPAIGN_COLS} FROM email_campaigns WHERE id = ?1"
            ))?
            .query_row([id], campaign)
            .optional()?)
        })
        .await
    }

    async fn campaign_people(&self, id: i64) -> Result<Vec<ProfileId>> {
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT profile_id FROM email_messages WHERE campaign_id = ?1")?
                    .query_map([id], |r| r.get(0))?
                    .collect::<std::result::Result<_, _>>()?,
            )
        })
        .await
    }

    async fn move_campaign_messages(&self, id: i64, from: &str, to: &str) -> Result<i64> {
        let (from, to) = (from.to_string(), to.to_string());
        self.write(move |tx| {
            Ok(tx.execute(
                "UPDATE email_messages SET status = ?3 WHERE campaign_id = ?1 AND status = ?2",
                params![id, from, to],
            )? as i64)
        })
        .await
    }

    async fn campaign_report(&self, id: i64) -> Result<CampaignReport> {
        self.read(move |c| {
            let mut r = CampaignReport::default();
            for row in c
                .prepare_cached("SELECT status, COUNT(*) FROM email_messages WHERE campaign_id = ?1 GROUP BY status")?
                .query_map([id], |x| Ok((x.get::<_, String>(0)?, x.get::<_, i64>(1)?)))?
            {
                let (k, n) = row?;
                r.statuses.insert(k, n);
            }
            (r.opened, r.clicked, r.unsubscribed) = c
                .prepare_cached(
                    "SELECT COUNT(opened_at), COUNT(clicked_at), COUNT(unsubscribed_at) FROM email_messages WHERE campaign_id = ?1",
                )?
                .query_row([id], |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?)))?;
            r.links = c
                .prepare_cached("SELECT url, COUNT(*) AS n FROM email_clicks WHERE campaign_id = ?1 GROUP BY url ORDER BY n DESC, url")?
                .query_map([id], |x| Ok((x.get(0)?, x.get(1)?)))?
                .collect::<std::result::Result<_, _>>()?;
            r.skipped = c
                .prepare_cached("SELECT COALESCE(last_error, ''), COUNT(*) AS n FROM email_messages WHERE campaign_id = ?1 AND status = 'skipped' GROUP BY 1 ORDER BY n DESC")?
                .query_map([id], |x| Ok((x.get(0)?, x.get(1)?)))?
                .collect::<std::result::Result<_, _>>()?;
            r.variants = c
                .prepare_cached(crate::email::VARIANTS)?
                .query_map([id], |x| {
                    Ok(VariantReport {
                        variant: x.get(0)?,
                        sent: x.get(1)?,
                        opened: x.get(2)?,
                        clicked: x.get(3)?,
                    })
                })?
                .collect::<std::result::Result<_, _>>()?;
            Ok(r)
        })
        .await
    }

    async fn suppress(&self, s: Suppression) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO email_suppressions (address, reason, detail, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (address) DO UPDATE SET reason = excluded.reason, detail = excluded.detail, created_at = excluded.created_at",
                params![s.address, s.reason, s.detail, s.created_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn unsuppress(&self, address: &str) -> Result<bool> {
        let a = address.to_string();
        self.write(move |tx| {
            Ok(tx.execute("DELETE FROM email_suppressions WHERE address = ?1", [a])? > 0)
        })
        .await
    }

    async fn suppressions(&self, limit: usize) -> Result<Vec<Suppression>> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT address, reason, detail, created_at FROM email_suppressions ORDER BY created_at DESC, address LIMIT ?1",
            )?
            .query_map([limit as i64], |r| {
                Ok(Suppression {
                    address: r.get(0)?,
                    reason: r.get(1)?,
                    detail: r.get(2)?,
                    created_at: r.get(3)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn set_primary(&self, address: &str, primary: bool, at: Millis) -> Result<()> {
        let a = address.to_string();
        self.write(move |tx| {
            if primary {
                tx.execute(
                    "INSERT INTO email_primary (address, chosen_at) VALUES (?1, ?2)
                     ON CONFLICT (address) DO UPDATE SET chosen_at = excluded.chosen_at",
                    params![a, at],
                )?;
            } else {
                tx.execute("DELETE FROM email_primary WHERE address = ?1", [a])?;
            }
            Ok(())
        })
        .await
    }

    async fn address_facts(&self, addresses: Vec<String>) -> Result<Vec<AddressFacts>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM email_primary WHERE address = ?1),
                        (SELECT MAX(COALESCE(clicked_at, opened_at)) FROM email_messages WHERE to_address = ?1),
                        EXISTS (SELECT 1 FROM email_suppressions WHERE address = ?1)",
            )?;
            addresses
                .into_iter()
                .map(|a| {
                    let (primary, last_engaged, suppressed) =
                        stmt.query_row([&a], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    Ok(AddressFacts {
                        address: a,
                        primary,
                        last_engaged,
                        suppressed,
                    })
                })
                .collect()
        })
        .await
    }
}
