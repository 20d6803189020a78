//! SQLite side of staff accounts, their web sessions and API keys.

use super::SqliteStore;
use crate::{sql, ApiKeyRecord, KeyAccess, Result, StaffStore, StoreError};
use async_trait::async_trait;
use rapport_domain::apikey::Scope;
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

#[async_trait]
impl StaffStore for SqliteStore {
    async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        role: &str,
        at: Millis,
    ) -> Result<crate::UserRow> {
        let email = email.to_string();
        let hash = password_hash.to_string();
        let role = role.to_string();
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

    async fn users(&self) -> Result<Vec<crate::UserRow>> {
        self.read(|c| {
            Ok(
                c.prepare_cached(&format!("SELECT {USER_COLS} FROM users ORDER BY email"))?
                    .query_map([], user)?
                    .collect::<std::result::Result<_, _>>()?,
            )
        })
        .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<crate::UserRow>> {
        let email = email.to_string();
        self.read(move |c| {
            Ok(
                c.prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE email = ?1"))?
                    .query_row([&email], user)
                    .optional()?,
            )
        })
        .await
    }

    async fn delete_user(&self, id: i64) -> Result<()> {
        self.write(move |tx| {
            if tx.execute(sql::staff::DELETE_USER, [id])? == 0 {
                return Err(StoreError::NotFound(format!("user {id}")));
            }
            tx.execute(sql::staff::DELETE_USER_SESSIONS, [id])?;
            Ok(())
        })
        .await
    }

    async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        at: Millis,
        expires: Millis,
    ) -> Result<()> {
        let token = token_hash.to_string();
        let csrf = csrf.to_string();
        self.write(move |tx| {
            tx.execute(
                sql::staff::INSERT_SESSION,
                params![token, user_id, csrf, at, expires],
            )?;
            tx.execute(
                "UPDATE users SET last_login_at = ?2 WHERE id = ?1",
                params![user_id, at],
            )?;
            tx.execute(sql::staff::DELETE_EXPIRED_SESSIONS, [at])?;
            Ok(())
        })
        .await
    }

    async fn session(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> Result<Option<(crate::UserRow, String)>> {
        let token = token_hash.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(sql::staff::SESSION)?
                .query_row(params![token, now], |r| Ok((user(r)?, r.get(6)?)))
                .optional()?)
        })
        .await
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        let token = token_hash.to_string();
        self.write(move |tx| {
            tx.execute(sql::staff::DELETE_SESSION, [token])?;
            Ok(())
        })
        .await
    }

    async fn create_api_key(
        &self,
        prefix: &str,
        hash: &str,
        scope: Scope,
        label: &str,
        access: &KeyAccess,
        at: Millis,
    ) -> Result<ApiKeyRecord> {
        let (prefix, hash, label) = (prefix.to_string(), hash.to_string(), label.to_string());
        let access = access.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO api_keys (prefix, hash, scope, label, created_at, trust, origins) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![prefix, hash, scope.as_str(), label, at, access.trust.as_str(), access.origins_json()],
            )?;
            Ok(ApiKeyRecord { id: tx.last_insert_rowid(), prefix, scope, label, created_at: at, revoked: false, access })
        })
        .await
    }

    async fn set_api_key_access(&self, id: i64, access: &KeyAccess) -> Result<()> {
        let (trust, origins) = (access.trust.as_str(), access.origins_json());
        self.write(move |tx| {
            if tx.execute(sql::staff::SET_API_KEY_ACCESS, params![trust, origins, id])? == 0 {
                return Err(StoreError::NotFound(format!("API key {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        let hash = hash.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(sql::staff::API_KEY_BY_HASH)?
                .query_row([hash], api_key_row)
                .optional()?)
        })
        .await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.read(|c| {
            Ok(c.prepare_cached(sql::staff::API_KEYS)?
                .query_map([], api_key_row)?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn revoke_api_key(&self, id: i64, at: Millis) -> Result<()> {
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, at],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("active API key {id}")));
            }
            Ok(())
        })
        .await
    }
}

pub(super) fn api_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    let scope: String = r.get(2)?;
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        prefix: r.get(1)?,
        scope: Scope::parse(&scope).unwrap_or(Scope::Write),
        label: r.get(3)?,
        created_at: r.get(4)?,
        revoked: r.get::<_, Option<i64>>(5)?.is_some(),
        access: KeyAccess::from_columns(&r.get::<_, String>(6)?, &r.get::<_, String>(7)?),
    })
}
