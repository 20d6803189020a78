//! PostgreSQL side of staff accounts and their sessions (the web app).

use super::PgStore;
use crate::{Result, StoreError};
use rapport_domain::time::Millis;
use tokio_postgres::Row;

const USER_COLS: &str = "id, email, password_hash, role, created_at, last_login_at";

fn user(r: &Row) -> crate::UserRow {
    crate::UserRow {
        id: r.get(0),
        email: r.get(1),
        password_hash: r.get(2),
        role: r.get(3),
        created_at: r.get(4),
        last_login_at: r.get(5),
    }
}

impl PgStore {
    pub(super) async fn u_create(
        &self,
        email: String,
        hash: String,
        role: String,
        at: Millis,
    ) -> Result<crate::UserRow> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!("INSERT INTO users (email, password_hash, role, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO NOTHING RETURNING {USER_COLS}"),
                &[&email, &hash, &role, &at],
            )
            .await?;
        row.map(|r| user(&r)).ok_or_else(|| {
            StoreError::Conflict(format!("a user with e-mail {email} exists already"))
        })
    }

    pub(super) async fn u_list(&self) -> Result<Vec<crate::UserRow>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!("SELECT {USER_COLS} FROM users ORDER BY email"),
            &[],
        )
        .await?
        .iter()
        .map(user)
        .collect())
    }

    pub(super) async fn u_by_email(&self, email: String) -> Result<Option<crate::UserRow>> {
        let c = self.client().await?;
        Ok(c.query_opt(
            &format!("SELECT {USER_COLS} FROM users WHERE email = $1"),
            &[&email],
        )
        .await?
        .map(|r| user(&r)))
    }

    pub(super) async fn u_delete(&self, id: i64) -> Result<()> {
        let c = self.client().await?;
        if c.execute("DELETE FROM users WHERE id = $1", &[&id]).await? == 0 {
            return Err(StoreError::NotFound(format!("user {id}")));
        }
        c.execute("DELETE FROM sessions WHERE user_id = $1", &[&id])
            .await?;
        Ok(())
    }

    pub(super) async fn sess_create(
        &self,
        token: String,
        user_id: i64,
        csrf: String,
        at: Millis,
        expires: Millis,
    ) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[&token, &user_id, &csrf, &at, &expires],
        )
        .await?;
        c.execute(
            "UPDATE users SET last_login_at = $2 WHERE id = $1",
            &[&user_id, &at],
        )
        .await?;
        c.execute("DELETE FROM sessions WHERE expires_at < $1", &[&at])
            .await?;
        Ok(())
    }

    pub(super) async fn sess_get(
        &self,
        token: String,
        now: Millis,
    ) -> Result<Option<(crate::UserRow, String)>> {
        let c = self.client().await?;
        Ok(c.query_opt(
            "SELECT u.id, u.email, u.password_hash, u.role, u.created_at, u.last_login_at, s.csrf
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2",
            &[&token, &now],
        )
        .await?
        .map(|r| (user(&r), r.get(6))))
    }

    pub(super) async fn sess_delete(&self, token: String) -> Result<()> {
        let c = self.client().await?;
        c.execute("DELETE FROM sessions WHERE token_hash = $1", &[&token])
            .await?;
        Ok(())
    }
}
