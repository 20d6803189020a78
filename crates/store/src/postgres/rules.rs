//! PostgreSQL side of decision rules: the firing audit and tasks.

use super::PgStore;
use crate::{Firing, Result, Task};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;

impl PgStore {
    pub(super) async fn r_record(&self, f: Firing) -> Result<i64> {
        let c = self.client().await?;
        Ok(c.query_one(
            "INSERT INTO rule_firings (rule, profile_id, event_id, at, actions) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&f.rule, &f.profile_id, &f.event_id, &f.at, &f.actions.to_string()],
        )
        .await?
        .get(0))
    }

    pub(super) async fn r_firings(
        &self,
        rule: Option<String>,
        limit: usize,
    ) -> Result<Vec<Firing>> {
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

    pub(super) async fn r_count(
        &self,
        rule: String,
        profile: ProfileId,
        since: Millis,
    ) -> Result<i64> {
        let c = self.client().await?;
        Ok(c.query_one(
            "SELECT COUNT(*) FROM rule_firings WHERE rule = $1 AND profile_id = $2 AND at >= $3",
            &[&rule, &profile, &since],
        )
        .await?
        .get(0))
    }

    pub(super) async fn r_create_task(&self, t: Task) -> Result<i64> {
        let c = self.client().await?;
        Ok(c.query_one(
            "INSERT INTO tasks (profile_id, rule, title, body, status, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[&t.profile_id, &t.rule, &t.title, &t.body, &t.status, &t.created_at],
        )
        .await?
        .get(0))
    }

    pub(super) async fn r_tasks(&self, limit: usize) -> Result<Vec<Task>> {
        let c = self.client().await?;
        Ok(c.query(
            "SELECT id, profile_id, rule, title, body, status, created_at FROM tasks ORDER BY id DESC LIMIT $1",
            &[&(limit as i64)],
        )
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
}
