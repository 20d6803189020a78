//! SQLite side of staff accounts and their sessions (the web app).

use super::SqliteStore;
use crate::{Result, StoreError};
use rapport_domain::time::Millis;
use rusqlite::{params, OptionalExtension};

const USER_COLS: &str = "id, email, password_hash, role, created_at, last_login_at";

fn user(r: &rusqlite::Row<'_>) -> rusqlite::Result<crate::UserRow> {
    Ok(crate::UserRow {
        id: r.get(0)?,
        email: r.get(1)?,
        password_hash: r.get(2)?,
        role: r.get(3)?,
        created_at: r.get(4)?,
        last_login_at: r.get(5)?,
    })
}

impl SqliteStore {
    pub(super) async fn u_create(
        &self,
        email: String,
        hash: String,
        role: String,
        at: Millis,
    ) -> Result<crate::UserRow> {
        self.write(move |tx| {
            let n = tx.execute(
                "INSERT INTO users (email, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (email) DO NOTHING",
                params![email, hash, role, at],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("a user with e-mail {email} exists already")));
            }
            Ok(tx
                .prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE email = ?1"))?
                .query_row([&email], user)?)
        })
        .await
    }

    pub(super) async fn u_list(&self) -> Result<Vec<crate::UserRow>> {
        self.read(|c| {
            Ok(
                c.prepare_cached(&format!("SELECT {USER_COLS} FROM users ORDER BY email"))?
                    .query_map([], user)?
                    .collect::<std::result::Result<_, _>>()?,
            )
        })
        .await
    }

    pub(super) async fn u_by_email(&self, email: String) -> Result<Option<crate::UserRow>> {
        self.read(move |c| {
            Ok(
                c.prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE email = ?1"))?
                    .query_row([&email], user)
                    .optional()?,
            )
        })
        .await
    }

    pub(super) async fn u_delete(&self, id: i64) -> Result<()> {
        self.write(move |tx| {
            if tx.execute("DELETE FROM users WHERE id = ?1", [id])? == 0 {
                return Err(StoreError::NotFound(format!("user {id}")));
            }
            tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    pub(super) async fn sess_create(
        &self,
        token: String,
        user_id: i64,
        csrf: String,
        at: Millis,
        expires: Millis,
    ) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![token, user_id, csrf, at, expires],
            )?;
            tx.execute("UPDATE users SET last_login_at = ?2 WHERE id = ?1", params![user_id, at])?;
            tx.execute("DELETE FROM sessions WHERE expires_at < ?1", [at])?;
            Ok(())
        })
        .await
    }

    pub(super) async fn sess_get(
        &self,
        token: String,
        now: Millis,
    ) -> Result<Option<(crate::UserRow, String)>> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT u.id, u.email, u.password_hash, u.role, u.created_at, u.last_login_at, s.csrf
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1 AND s.expires_at > ?2",
            )?
            .query_row(params![token, now], |r| Ok((user(r)?, r.get(6)?)))
            .optional()?)
        })
        .await
    }

    pub(super) async fn sess_delete(&self, token: String) -> Result<()> {
        self.write(move |tx| {
            tx.execute("DELETE FROM sessions WHERE token_hash = ?1", [token])?;
            Ok(())
        })
        .await
    }
}
