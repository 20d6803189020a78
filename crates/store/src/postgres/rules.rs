//! PostgreSQL side of decision rules: the firing audit and tasks.

use super::PgStore;
use crate::{sql, RuleStore};
use crate::{Firing, Outbound, Result, Task};
use async_trait::async_trait;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;

const OUT_COLS: &str = "id, rule, profile_id, url, secret, body, attempts, max_attempts, next_at, status, last_error, created_at, delivered_at";

fn outbound(r: &tokio_postgres::Row) -> Outbound {
    Outbound {
        id: r.get(0),
        rule: r.get(1),
        profile_id: r.get(2),
        url: r.get(3),
        secret: r.get(4),
        body: r.get(5),
        attempts: r.get(6),
        max_attempts: r.get(7),
        next_at: r.get(8),
        status: r.get(9),
        last_error: r.get(10),
        created_at: r.get(11),
        delivered_at: r.get(12),
    }
}

pub(super) async fn record_firings(
    tx: &impl deadpool_postgres::GenericClient,
    firings: &[Firing],
) -> Result<()> {
    if firings.is_empty() {
        return Ok(());
    }
    let rules: Vec<&str> = firings.iter().map(|f| f.rule.as_str()).collect();
    let people: Vec<i64> = firings.iter().map(|f| f.profile_id).collect();
    let events: Vec<i64> = firings.iter().map(|f| f.event_id).collect();
    let ats: Vec<i64> = firings.iter().map(|f| f.at).collect();
    let actions: Vec<String> = firings.iter().map(|f| f.actions.to_string()).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO rule_firings (rule, profile_id, event_id, at, actions)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[])",
        )
        .await?;
    tx.execute(&stmt, &[&rules, &people, &events, &ats, &actions])
        .await?;
    Ok(())
}

#[async_trait]
impl RuleStore for PgStore {
    async fn record_firing(&self, f: crate::Firing) -> Result<i64> {
        let c = self.client().await?;
        Ok(c.query_one(
            "INSERT INTO rule_firings (rule, profile_id, event_id, at, actions) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&f.rule, &f.profile_id, &f.event_id, &f.at, &f.actions.to_string()],
        )
        .await?
        .get(0))
    }

    async fn firings(&self, rule: Option<String>, limit: usize) -> Result<Vec<crate::Firing>> {
        let c = self.client().await?;
        Ok(c.query(
            "SELECT id, rule, profile_id, event_id, at, actions FROM rule_firings WHERE $1::text IS NULL OR rule = $1 ORDER BY id DESC LIMIT $2",
            &[&rule, &(limit as i64)],
        )
        .await?
        .iter()
        .map(|r| Firing {
            id: r.get(0),
            rule: r.get(1),
            profile_id: r.get(2),
            event_id: r.get(3),
            at: r.get(4),
            actions: serde_json::from_str(r.get::<_, &str>(5)).unwrap_or_default(),
        })
        .collect())
    }

    async fn firing_times(
        &self,
        profile: ProfileId,
        since: Millis,
    ) -> Result<Vec<(String, Millis)>> {
        let c = self.client().await?;
        // Prepared once per connection: the real-time engine reads it with every load.
        let stmt = c.prepare_cached(sql::rules::FIRING_TIMES).await?;
        Ok(c.query(&stmt, &[&profile, &since])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn create_task(&self, t: crate::Task) -> Result<i64> {
        let c = self.client().await?;
        Ok(c.query_one(
            "INSERT INTO tasks (profile_id, rule, title, body, status, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[&t.profile_id, &t.rule, &t.title, &t.body, &t.status, &t.created_at],
        )
        .await?
        .get(0))
    }

    async fn tasks(&self, limit: usize) -> Result<Vec<crate::Task>> {
        let c = self.client().await?;
        Ok(c.query(sql::rules::TASKS, &[&(limit as i64)])
            .await?
            .iter()
            .map(|r| Task {
                id: r.get(0),
                profile_id: r.get(1),
                rule: r.get(2),
                title: r.get(3),
                body: r.get(4),
                status: r.get(5),
                created_at: r.get(6),
            })
            .collect())
    }

    async fn enqueue(&self, o: crate::Outbound) -> Result<i64> {
        let c = self.client().await?;
        Ok(c.query_one(
            "INSERT INTO outbox (rule, profile_id, url, secret, body, attempts, max_attempts, next_at, status, created_at)
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, 'pending', $8) RETURNING id",
            &[&o.rule, &o.profile_id, &o.url, &o.secret, &o.body, &o.max_attempts, &o.next_at, &o.created_at],
        )
        .await?
        .get(0))
    }

    async fn due_outbound(&self, now: Millis, limit: usize) -> Result<Vec<crate::Outbound>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!("SELECT {OUT_COLS} FROM outbox WHERE status = 'pending' AND next_at <= $1 ORDER BY next_at, id LIMIT $2"),
            &[&now, &(limit as i64)],
        )
        .await?
        .iter()
        .map(outbound)
        .collect())
    }

    async fn update_outbound(&self, o: crate::Outbound) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "UPDATE outbox SET attempts = $2, next_at = $3, status = $4, last_error = $5, delivered_at = $6 WHERE id = $1",
            &[&o.id, &o.attempts, &o.next_at, &o.status, &o.last_error, &o.delivered_at],
        )
        .await?;
        Ok(())
    }

    async fn outbound(&self, status: Option<String>, limit: usize) -> Result<Vec<crate::Outbound>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!("SELECT {OUT_COLS} FROM outbox WHERE $1::text IS NULL OR status = $1 ORDER BY id DESC LIMIT $2"),
            &[&status, &(limit as i64)],
        )
        .await?
        .iter()
        .map(outbound)
        .collect())
    }
}
