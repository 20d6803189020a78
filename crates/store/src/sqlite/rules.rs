//! SQLite side of decision rules: the firing audit and tasks.

use super::SqliteStore;
use crate::{sql, Firing, Outbound, Result, RuleStore, Task};
use async_trait::async_trait;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use rusqlite::{params, Connection, Transaction};

const OUT_COLS: &str = "id, rule, profile_id, url, secret, body, attempts, max_attempts, next_at, status, last_error, created_at, delivered_at";

fn outbound(r: &rusqlite::Row<'_>) -> rusqlite::Result<Outbound> {
    Ok(Outbound {
        id: r.get(0)?,
        rule: r.get(1)?,
        profile_id: r.get(2)?,
        url: r.get(3)?,
        secret: r.get(4)?,
        body: r.get(5)?,
        attempts: r.get(6)?,
        max_attempts: r.get(7)?,
        next_at: r.get(8)?,
        status: r.get(9)?,
        last_error: r.get(10)?,
        created_at: r.get(11)?,
        delivered_at: r.get(12)?,
    })
}

pub(super) fn record_firings(tx: &Transaction<'_>, firings: &[Firing]) -> Result<()> {
    let mut ins = tx.prepare_cached(
        "INSERT INTO rule_firings (rule, profile_id, event_id, at, actions) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for f in firings {
        ins.execute(params![
            f.rule,
            f.profile_id,
            f.event_id,
            f.at,
            f.actions.to_string()
        ])?;
    }
    Ok(())
}

/// A person's firings since a time, `(rule, at)`.
pub(super) fn firing_times_in(
    c: &Connection,
    profile: ProfileId,
    since: Millis,
) -> Result<Vec<(String, Millis)>> {
    Ok(c.prepare_cached(sql::rules::FIRING_TIMES)?
        .query_map(params![profile, since], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?)
}

#[async_trait]
impl RuleStore for SqliteStore {
    async fn record_firing(&self, f: crate::Firing) -> Result<i64> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO rule_firings (rule, profile_id, event_id, at, actions) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![f.rule, f.profile_id, f.event_id, f.at, f.actions.to_string()],
            )?;
            Ok(tx.last_insert_rowid())
        })
        .await
    }

    async fn firings(&self, rule: Option<String>, limit: usize) -> Result<Vec<crate::Firing>> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT id, rule, profile_id, event_id, at, actions FROM rule_firings WHERE ?1 IS NULL OR rule = ?1 ORDER BY id DESC LIMIT ?2",
            )?
            .query_map(params![rule, limit as i64], |r| {
                let a: String = r.get(5)?;
                Ok(Firing {
                    id: r.get(0)?,
                    rule: r.get(1)?,
                    profile_id: r.get(2)?,
                    event_id: r.get(3)?,
                    at: r.get(4)?,
                    actions: serde_json::from_str(&a).unwrap_or_default(),
                })
            })?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn firing_times(
        &self,
        profile: ProfileId,
        since: Millis,
    ) -> Result<Vec<(String, Millis)>> {
        self.read(move |c| firing_times_in(c, profile, since)).await
    }

    async fn create_task(&self, t: crate::Task) -> Result<i64> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO tasks (profile_id, rule, title, body, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![t.profile_id, t.rule, t.title, t.body, t.status, t.created_at],
            )?;
            Ok(tx.last_insert_rowid())
        })
        .await
    }

    async fn tasks(&self, limit: usize) -> Result<Vec<crate::Task>> {
        self.read(move |c| {
            Ok(c.prepare_cached(sql::rules::TASKS)?
                .query_map([limit as i64], |r| {
                    Ok(Task {
                        id: r.get(0)?,
                        profile_id: r.get(1)?,
                        rule: r.get(2)?,
                        title: r.get(3)?,
                        body: r.get(4)?,
                        status: r.get(5)?,
                        created_at: r.get(6)?,
                    })
                })?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn enqueue(&self, o: crate::Outbound) -> Result<i64> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO outbox (rule, profile_id, url, secret, body, attempts, max_attempts, next_at, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, 'pending', ?8)",
                params![o.rule, o.profile_id, o.url, o.secret, o.body, o.max_attempts, o.next_at, o.created_at],
            )?;
            Ok(tx.last_insert_rowid())
        })
        .await
    }

    async fn due_outbound(&self, now: Millis, limit: usize) -> Result<Vec<crate::Outbound>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {OUT_COLS} FROM outbox WHERE status = 'pending' AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2"
            ))?
            .query_map(params![now, limit as i64], outbound)?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn update_outbound(&self, o: crate::Outbound) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE outbox SET attempts = ?2, next_at = ?3, status = ?4, last_error = ?5, delivered_at = ?6 WHERE id = ?1",
                params![o.id, o.attempts, o.next_at, o.status, o.last_error, o.delivered_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn outbound(&self, status: Option<String>, limit: usize) -> Result<Vec<crate::Outbound>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {OUT_COLS} FROM outbox WHERE ?1 IS NULL OR status = ?1 ORDER BY id DESC LIMIT ?2"
            ))?
            .query_map(params![status, limit as i64], outbound)?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }
}
