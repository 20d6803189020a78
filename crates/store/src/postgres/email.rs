//! PostgreSQL side of e-mail: domains and keys, templates, the outbox, suppressions.

use super::ingest::{add_events, Pipeline};
use super::{writer_lock, PgStore};
use crate::{
    AddressFacts, CampaignReport, DkimKeyRow, EmailCampaign, EmailDomain, EmailMessage, EmailStore,
    EmailTemplate, Engaged, Engagement, MessageQuery, Result, StoreError, Suppression,
    VariantReport,
};
use async_trait::async_trait;
use deadpool_postgres::Transaction;
use rapport_domain::resolve::EventRow;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;

const MSG_COLS: &str = "id, public_id, idempotency_key, kind, template_id, campaign_id, profile_id, to_address, address_reason, from_address, subject, return_path, raw, links, status, attempts, next_at, last_error, created_at, delivered_at, opened_at, clicked_at, unsubscribed_at, variant";
const CAMPAIGN_COLS: &str = "id, name, template_id, from_address, from_name, kind, audience, status, send_at, per_minute, planned, skipped, error, created_at, started_at, finished_at, ab";
const TPL_COLS: &str = "id, name, subject, html, text, created_at, updated_at";

fn message(r: &tokio_postgres::Row) -> EmailMessage {
    EmailMessage {
        id: r.get(0),
        public_id: r.get(1),
        idempotency_key: r.get(2),
        kind: r.get(3),
        template_id: r.get(4),
        campaign_id: r.get(5),
        profile_id: r.get(6),
        to_address: r.get(7),
        address_reason: r.get(8),
        from_address: r.get(9),
        subject: r.get(10),
        return_path: r.get(11),
        raw: r.get(12),
        links: serde_json::from_str(r.get::<_, &str>(13)).unwrap_or_default(),
        status: r.get(14),
        attempts: r.get(15),
        next_at: r.get(16),
        last_error: r.get(17),
        created_at: r.get(18),
        delivered_at: r.get(19),
        opened_at: r.get(20),
        clicked_at: r.get(21),
        unsubscribed_at: r.get(22),
        variant: r.get(23),
    }
}

fn campaign(r: &tokio_postgres::Row) -> EmailCampaign {
    EmailCampaign {
        id: r.get(0),
        name: r.get(1),
        template_id: r.get(2),
        from_address: r.get(3),
        from_name: r.get(4),
        kind: r.get(5),
        audience: serde_json::from_str(r.get::<_, &str>(6)).unwrap_or_default(),
        status: r.get(7),
        send_at: r.get(8),
        per_minute: r.get(9),
        planned: r.get(10),
        skipped: r.get(11),
        error: r.get(12),
        created_at: r.get(13),
        started_at: r.get(14),
        finished_at: r.get(15),
        ab: r
            .get::<_, Option<&str>>(16)
            .and_then(|s| serde_json::from_str(s).ok()),
    }
}

fn template(r: &tokio_postgres::Row) -> EmailTemplate {
    EmailTemplate {
        id: r.get(0),
        name: r.get(1),
        subject: r.get(2),
        html: r.get(3),
        text: r.get(4),
        created_at: r.get(5),
        updated_at: r.get(6),
    }
}

/// Writes events in a transaction that already holds the writer lock.
async fn events(tx: &Transaction<'_>, rows: &[EventRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut p = Pipeline::default();
    add_events(&mut p, rows, "email");
    p.run(tx).await
}

#[async_trait]
impl EmailStore for PgStore {
    async fn add_domain(&self, d: EmailDomain) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let n = tx
            .execute(
                "INSERT INTO email_domains (domain, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&d.domain, &d.created_at],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "the domain {} is set up already",
                d.domain
            )));
        }
        for k in &d.keys {
            tx.execute(
                "INSERT INTO email_keys (domain, selector, algorithm, private_key, public_key) VALUES ($1, $2, $3, $4, $5)",
                &[&d.domain, &k.selector, &k.algorithm, &k.private_key, &k.public_key],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn domains(&self) -> Result<Vec<EmailDomain>> {
        let c = self.client().await?;
        let mut out: Vec<EmailDomain> = c
            .query(
                "SELECT domain, created_at FROM email_domains ORDER BY domain",
                &[],
            )
            .await?
            .iter()
            .map(|r| EmailDomain {
                domain: r.get(0),
                keys: Vec::new(),
                created_at: r.get(1),
            })
            .collect();
        let keys = c
            .query(
                "SELECT domain, algorithm, selector, private_key, public_key FROM email_keys ORDER BY domain, algorithm, selector",
                &[],
            )
            .await?;
        for r in &keys {
            let domain: &str = r.get(0);
            if let Some(d) = out.iter_mut().find(|d| d.domain == domain) {
                d.keys.push(DkimKeyRow {
                    algorithm: r.get(1),
                    selector: r.get(2),
                    private_key: r.get(3),
                    public_key: r.get(4),
                });
            }
        }
        Ok(out)
    }

    async fn save_template(&self, t: EmailTemplate) -> Result<i64> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let taken = tx
            .query_opt(
                "SELECT id FROM email_templates WHERE name = $1 AND id <> $2",
                &[&t.name, &t.id],
            )
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!(
                "a template named '{}' exists",
                t.name
            )));
        }
        let id = if t.id == 0 {
            tx.query_one(
                "INSERT INTO email_templates (name, subject, html, text, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
                &[&t.name, &t.subject, &t.html, &t.text, &t.updated_at],
            )
            .await?
            .get(0)
        } else {
            let n = tx
                .execute(
                    "UPDATE email_templates SET name = $2, subject = $3, html = $4, text = $5, updated_at = $6 WHERE id = $1",
                    &[&t.id, &t.name, &t.subject, &t.html, &t.text, &t.updated_at],
                )
                .await?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("template {}", t.id)));
            }
            t.id
        };
        tx.commit().await?;
        Ok(id)
    }

    async fn templates(&self) -> Result<Vec<EmailTemplate>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!("SELECT {TPL_COLS} FROM email_templates ORDER BY name"),
            &[],
        )
        .await?
        .iter()
        .map(template)
        .collect())
    }

    async fn template(&self, id_or_name: &str) -> Result<Option<EmailTemplate>> {
        let c = self.client().await?;
        let id: i64 = id_or_name.parse().unwrap_or(-1);
        Ok(c.query_opt(
            &format!("SELECT {TPL_COLS} FROM email_templates WHERE id = $1 OR name = $2 ORDER BY id = $1 DESC LIMIT 1"),
            &[&id, &id_or_name],
        )
        .await?
        .as_ref()
        .map(template))
    }

    async fn delete_template(&self, id: i64) -> Result<()> {
        let c = self.client().await?;
        if c.execute("DELETE FROM email_templates WHERE id = $1", &[&id])
            .await?
            == 0
        {
            return Err(StoreError::NotFound(format!("template {id}")));
        }
        Ok(())
    }

    async fn queue(&self, msgs: Vec<(EmailMessage, Vec<EventRow>)>) -> Result<Vec<EmailMessage>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        writer_lock(&tx).await?;
        // One statement for the whole batch (a campaign queues 500 at a time): the
        // columns as arrays, unnested.
        macro_rules! col {
            ($f:expr) => {
                msgs.iter().map($f).collect::<Vec<_>>()
            };
        }
        let links = col!(|(m, _)| serde_json::to_string(&m.links).unwrap_or_default());
        let inserted = tx
            .query(
                "INSERT INTO email_messages (public_id, idempotency_key, kind, template_id, campaign_id, profile_id, to_address, address_reason, from_address, subject, return_path, raw, links, status, attempts, next_at, last_error, created_at, delivered_at, variant)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[], $13::text[], $14::text[], $15::int8[], $16::int8[], $17::text[], $18::int8[], $19::int8[], $20::int8[])
                 ON CONFLICT (idempotency_key) DO NOTHING RETURNING public_id, id",
                &[
                    &col!(|(m, _)| m.public_id.as_str()),
                    &col!(|(m, _)| m.idempotency_key.as_deref()),
                    &col!(|(m, _)| m.kind.as_str()),
                    &col!(|(m, _)| m.template_id),
                    &col!(|(m, _)| m.campaign_id),
                    &col!(|(m, _)| m.profile_id),
                    &col!(|(m, _)| m.to_address.as_str()),
                    &col!(|(m, _)| m.address_reason.as_str()),
                    &col!(|(m, _)| m.from_address.as_str()),
                    &col!(|(m, _)| m.subject.as_str()),
                    &col!(|(m, _)| m.return_path.as_str()),
                    &col!(|(m, _)| m.raw.as_slice()),
                    &links,
                    &col!(|(m, _)| m.status.as_str()),
                    &col!(|(m, _)| m.attempts),
                    &col!(|(m, _)| m.next_at),
                    &col!(|(m, _)| m.last_error.as_deref()),
                    &col!(|(m, _)| m.created_at),
                    &col!(|(m, _)| m.delivered_at),
                    &col!(|(m, _)| m.variant),
                ],
            )
            .await?;
        let ids: std::collections::HashMap<String, i64> = inserted
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
            .collect();
        let known = tx
            .prepare_cached(&format!(
                "SELECT {MSG_COLS} FROM email_messages WHERE idempotency_key = $1"
            ))
            .await?;
        let mut out = Vec::with_capacity(msgs.len());
        let mut rows = Vec::new();
        for (mut m, evs) in msgs {
            match ids.get(&m.public_id) {
                Some(id) => {
                    m.id = *id;
                    rows.extend(evs);
                    out.push(m);
                }
                // Its idempotency key was taken: the stored message stands in for it.
                None => {
                    let r = tx.query_one(&known, &[&m.idempotency_key]).await?;
                    out.push(message(&r));
                }
            }
        }
        events(&tx, &rows).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn update_messages(&self, ms: Vec<(EmailMessage, Vec<EventRow>)>) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let evs: Vec<EventRow> = ms.iter().flat_map(|(_, e)| e.iter().cloned()).collect();
        if !evs.is_empty() {
            writer_lock(&tx).await?;
        }
        let up = tx
            .prepare_cached(
                "UPDATE email_messages SET status = $2, attempts = $3, next_at = $4, last_error = $5, delivered_at = $6 WHERE id = $1",
            )
            .await?;
        for (m, _) in &ms {
            tx.execute(
                &up,
                &[
                    &m.id,
                    &m.status,
                    &m.attempts,
                    &m.next_at,
                    &m.last_error,
                    &m.delivered_at,
                ],
            )
            .await?;
        }
        events(&tx, &evs).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim(&self, now: Millis, limit: usize) -> Result<Vec<EmailMessage>> {
        let c = self.client().await?;
        let mut ms: Vec<EmailMessage> = c
            .query(
                &format!(
                    "UPDATE email_messages SET status = 'sending', next_at = $1
                     WHERE id IN (SELECT id FROM email_messages WHERE status = 'queued' AND next_at <= $1
                                  ORDER BY next_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
                     RETURNING {MSG_COLS}"
                ),
                &[&now, &(limit as i64)],
            )
            .await?
            .iter()
            .map(message)
            .collect();
        ms.sort_by_key(|m| m.id);
        Ok(ms)
    }

    async fn expire_claims(&self, before: Millis) -> Result<i64> {
        let c = self.client().await?;
        Ok(c.execute(
            "UPDATE email_messages SET status = 'unknown', last_error = 'interrupted while the relay had it; not sent again (it may have arrived)'
             WHERE status = 'sending' AND next_at < $1",
            &[&before],
        )
        .await? as i64)
    }

    async fn message(&self, public_id: &str) -> Result<Option<EmailMessage>> {
        let c = self.client().await?;
        Ok(c.query_opt(
            &format!("SELECT {MSG_COLS} FROM email_messages WHERE public_id = $1"),
            &[&public_id],
        )
        .await?
        .as_ref()
        .map(message))
    }

    async fn messages(&self, q: MessageQuery) -> Result<Vec<EmailMessage>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!(
                "SELECT {MSG_COLS} FROM email_messages
                 WHERE ($1::bigint[] IS NULL OR profile_id = ANY($1))
                   AND ($2::text IS NULL OR status = $2)
                 ORDER BY id DESC LIMIT $3"
            ),
            &[&q.profile, &q.status, &(q.limit as i64)],
        )
        .await?
        .iter()
        .map(message)
        .collect())
    }

    async fn engage(&self, items: Vec<Engaged>) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        writer_lock(&tx).await?;
        let mut events_of = Vec::with_capacity(items.len());
        for e in items {
            let sql = match &e.what {
                Engagement::Open => "UPDATE email_messages SET opened_at = COALESCE(opened_at, $2) WHERE public_id = $1",
                Engagement::Click(_) => "UPDATE email_messages SET clicked_at = COALESCE(clicked_at, $2) WHERE public_id = $1",
                Engagement::Unsubscribe => "UPDATE email_messages SET unsubscribed_at = COALESCE(unsubscribed_at, $2) WHERE public_id = $1",
            };
            let st = tx.prepare_cached(sql).await?;
            tx.execute(&st, &[&e.message, &e.at]).await?;
            if let Engagement::Click(url) = &e.what {
                let st = tx
                    .prepare_cached("INSERT INTO email_clicks (campaign_id, message_id, url, at) VALUES ($1, $2, $3, $4)")
                    .await?;
                tx.execute(&st, &[&e.campaign, &e.message, url, &e.at])
                    .await?;
            }
            events_of.push(e.event);
        }
        events(&tx, &events_of).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn save_campaign(&self, c: EmailCampaign) -> Result<i64> {
        let mut cl = self.client().await?;
        let tx = cl.transaction().await?;
        if tx
            .query_opt(
                "SELECT id FROM email_campaigns WHERE name = $1 AND id <> $2",
                &[&c.name, &c.id],
            )
            .await?
            .is_some()
        {
            return Err(StoreError::Conflict(format!(
                "a campaign named '{}' exists",
                c.name
            )));
        }
        let audience = c.audience.to_string();
        let ab = c.ab.as_ref().map(|v| v.to_string());
        let id = if c.id == 0 {
            tx.query_one(
                "INSERT INTO email_campaigns (name, template_id, from_address, from_name, kind, audience, status, send_at, per_minute, planned, skipped, error, created_at, started_at, finished_at, ab)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
                &[&c.name, &c.template_id, &c.from_address, &c.from_name, &c.kind, &audience, &c.status, &c.send_at, &c.per_minute, &c.planned, &c.skipped, &c.error, &c.created_at, &c.started_at, &c.finished_at, &ab],
            )
            .await?
            .get(0)
        } else {
            tx.execute(
                "UPDATE email_campaigns SET name = $2, template_id = $3, from_address = $4, from_name = $5, kind = $6, audience = $7, status = $8, send_at = $9, per_minute = $10, planned = $11, skipped = $12, error = $13, started_at = $14, finished_at = $15, ab = $16 WHERE id = $1",
                &[&c.id, &c.name, &c.template_id, &c.from_address, &c.from_name, &c.kind, &audience, &c.status, &c.send_at, &c.per_minute, &c.planned, &c.skipped, &c.error, &c.started_at, &c.finished_at, &ab],
            )
            .await?;
            c.id
        };
        tx.commit().await?;
        Ok(id)
    }

    async fn campaigns(&self) -> Result<Vec<EmailCampaign>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!("SELECT {CAMPAIGN_COLS} FROM email_campaigns ORDER BY id DESC"),
            &[],
        )
        .await?
        .iter()
        .map(campaign)
        .collect())
    }

    async fn campaign(&self, id: i64) -> Result<Option<EmailCampaign>> {
        let c = self.client().await?;
        Ok(c.query_opt(
            &format!("SELECT {CAMPAIGN_COLS} FROM email_campaigns WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(campaign))
    }

    async fn campaign_people(&self, id: i64) -> Result<Vec<ProfileId>> {
        let c = self.client().await?;
        Ok(c.query(
            "SELECT profile_id FROM email_messages WHERE campaign_id = $1",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
    }

    async fn move_campaign_messages(&self, id: i64, from: &str, to: &str) -> Result<i64> {
        let c = self.client().await?;
        Ok(c.execute(
            "UPDATE email_messages SET status = $3 WHERE campaign_id = $1 AND status = $2",
            &[&id, &from, &to],
        )
        .await? as i64)
    }

    async fn campaign_report(&self, id: i64) -> Result<CampaignReport> {
        let c = self.client().await?;
        let mut r = CampaignReport::default();
        for row in c
            .query("SELECT status, COUNT(*) FROM email_messages WHERE campaign_id = $1 GROUP BY status", &[&id])
            .await?
        {
            r.statuses.insert(row.get(0), row.get(1));
        }
        let row = c
            .query_one(
                "SELECT COUNT(opened_at), COUNT(clicked_at), COUNT(unsubscribed_at) FROM email_messages WHERE campaign_id = $1",
                &[&id],
            )
            .await?;
        (r.opened, r.clicked, r.unsubscribed) = (row.get(0), row.get(1), row.get(2));
        r.links = c
            .query("SELECT url, COUNT(*) AS n FROM email_clicks WHERE campaign_id = $1 GROUP BY url ORDER BY n DESC, url", &[&id])
            .await?
            .iter()
            .map(|x| (x.get(0), x.get(1)))
            .collect();
        r.skipped = c
            .query("SELECT COALESCE(last_error, ''), COUNT(*) AS n FROM email_messages WHERE campaign_id = $1 AND status = 'skipped' GROUP BY 1 ORDER BY n DESC", &[&id])
            .await?
            .iter()
            .map(|x| (x.get(0), x.get(1)))
            .collect();
        r.variants = c
            .query(&crate::email::VARIANTS.replace("?1", "$1"), &[&id])
            .await?
            .iter()
            .map(|x| VariantReport {
                variant: x.get(0),
                sent: x.get(1),
                opened: x.get(2),
                clicked: x.get(3),
            })
            .collect();
        Ok(r)
    }

    async fn suppress(&self, s: Suppression) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO email_suppressions (address, reason, detail, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (address) DO UPDATE SET reason = excluded.reason, detail = excluded.detail, created_at = excluded.created_at",
            &[&s.address, &s.reason, &s.detail, &s.created_at],
        )
        .await?;
        Ok(())
    }

    async fn unsuppress(&self, address: &str) -> Result<bool> {
        let c = self.client().await?;
        Ok(c.execute(
            "DELETE FROM email_suppressions WHERE address = $1",
            &[&address],
        )
        .await?
            > 0)
    }

    async fn suppressions(&self, limit: usize) -> Result<Vec<Suppression>> {
        let c = self.client().await?;
        Ok(c.query(
            "SELECT address, reason, detail, created_at FROM email_suppressions ORDER BY created_at DESC, address LIMIT $1",
            &[&(limit as i64)],
        )
        .await?
        .iter()
        .map(|r| Suppression {
            address: r.get(0),
            reason: r.get(1),
            detail: r.get(2),
            created_at: r.get(3),
        })
        .collect())
    }

    async fn set_primary(&self, address: &str, primary: bool, at: Millis) -> Result<()> {
        let c = self.client().await?;
        if primary {
            c.execute(
                "INSERT INTO email_primary (address, chosen_at) VALUES ($1, $2)
                 ON CONFLICT (address) DO UPDATE SET chosen_at = excluded.chosen_at",
                &[&address, &at],
            )
            .await?;
        } else {
            c.execute("DELETE FROM email_primary WHERE address = $1", &[&address])
                .await?;
        }
        Ok(())
    }

    async fn address_facts(&self, addresses: Vec<String>) -> Result<Vec<AddressFacts>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT a.address,
                        EXISTS (SELECT 1 FROM email_primary p WHERE p.address = a.address),
                        (SELECT MAX(COALESCE(m.clicked_at, m.opened_at)) FROM email_messages m WHERE m.to_address = a.address),
                        EXISTS (SELECT 1 FROM email_suppressions s WHERE s.address = a.address)
                 FROM UNNEST($1::text[]) WITH ORDINALITY AS a(address, n) ORDER BY a.n",
                &[&addresses],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| AddressFacts {
                address: r.get(0),
                primary: r.get(1),
                last_engaged: r.get(2),
                suppressed: r.get(3),
            })
            .collect())
    }
}
