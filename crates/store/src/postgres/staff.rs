//! PostgreSQL side of staff accounts, their web sessions and API keys.

use super::PgStore;
use crate::{sql, ApiKeyRecord, KeyAccess, Result, StaffStore, StoreError};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use rapport_domain::apikey::Scope;
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

#[async_trait]
impl StaffStore for PgStore {
    async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        role: &str,
        at: Millis,
    ) -> Result<crate::UserRow> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!("INSERT INTO users (email, password_hash, role, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO NOTHING RETURNING {USER_COLS}"),
                &[&email, &password_hash, &role, &at],
            )
            .await?;
        row.map(|r| user(&r)).ok_or_else(|| {
            StoreError::Conflict(format!("a user with e-mail {email} exists already"))
        })
    }

    async fn users(&self) -> Result<Vec<crate::UserRow>> {
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

    async fn user_by_email(&self, email: &str) -> Result<Option<crate::UserRow>> {
        let c = self.client().await?;
        Ok(c.query_opt(
            &format!("SELECT {USER_COLS} FROM users WHERE email = $1"),
            &[&email],
        )
        .await?
        .map(|r| user(&r)))
    }

    async fn delete_user(&self, id: i64) -> Result<()> {
        let c = self.client().await?;
        if c.execute(sql::staff::DELETE_USER, &[&id]).await? == 0 {
            return Err(StoreError::NotFound(format!("user {id}")));
        }
        c.execute(sql::staff::DELETE_USER_SESSIONS, &[&id]).await?;
        Ok(())
    }

    async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        at: Millis,
        expires: Millis,
    ) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            sql::staff::INSERT_SESSION,
            &[&token_hash, &user_id, &csrf, &at, &expires],
        )
        .await?;
        c.execute(
            "UPDATE users SET last_login_at = $2 WHERE id = $1",
            &[&user_id, &at],
        )
        .await?;
        c.execute(sql::staff::DELETE_EXPIRED_SESSIONS, &[&at])
            .await?;
        Ok(())
    }

    async fn session(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> Result<Option<(crate::UserRow, String)>> {
        let c = self.client().await?;
        Ok(c.query_opt(sql::staff::SESSION, &[&token_hash, &now])
            .await?
            .map(|r| (user(&r), r.get(6))))
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        let c = self.client().await?;
        c.execute(sql::staff::DELETE_SESSION, &[&token_hash])
            .await?;
        Ok(())
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
        let c = self.client().await?;
        let r = c
            .query_one(
                "INSERT INTO api_keys (prefix, hash, scope, label, created_at, trust, origins) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[&prefix, &hash, &scope.as_str(), &label, &at, &access.trust.as_str(), &access.origins_json()],
            )
            .await?;
        Ok(ApiKeyRecord {
            id: r.get(0),
            prefix: prefix.into(),
            scope,
            label: label.into(),
            created_at: at,
            revoked: false,
            access: access.clone(),
        })
    }

    async fn set_api_key_access(&self, id: i64, access: &KeyAccess) -> Result<()> {
        let c = self.client().await?;
        let n = c
            .execute(
                sql::staff::SET_API_KEY_ACCESS,
                &[&access.trust.as_str(), &access.origins_json(), &id],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("API key {id}")));
        }
        Ok(())
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        let c = self.client().await?;
        Ok(c.query_opt(sql::staff::API_KEY_BY_HASH, &[&hash])
            .await?
            .map(|r| api_key_row(&r)))
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let c = self.client().await?;
        Ok(c.query(sql::staff::API_KEYS, &[])
            .await?
            .iter()
            .map(api_key_row)
            .collect())
    }

    async fn revoke_api_key(&self, id: i64, at: Millis) -> Result<()> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &at],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("active API key {id}")));
        }
        Ok(())
    }
}

pub(super) fn api_key_row(r: &Row) -> ApiKeyRecord {
    let scope: String = r.get(2);
    ApiKeyRecord {
        id: r.get(0),
        prefix: r.get(1),
        scope: Scope::parse(&scope).unwrap_or(Scope::Write),
        label: r.get(3),
        created_at: r.get(4),
        revoked: r.get::<_, Option<i64>>(5).is_some(),
        access: KeyAccess::from_columns(r.get(6), r.get(7)),
    }
}
