//! [`StaffStore`] and the shapes it speaks; implemented in `sqlite/staff.rs` and
//! `postgres/staff.rs`.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::apikey::{Scope, Trust};
use rapport_domain::time::Millis;

#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: i64,
    pub prefix: String,
    pub scope: Scope,
    pub label: String,
    pub created_at: Millis,
    pub revoked: bool,
    pub access: KeyAccess,
}

/// Where a key may be used from (see [`Trust`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyAccess {
    pub trust: Trust,
    /// Origins (`https://shop.example`) a browser may send the key from; empty: any.
    pub origins: Vec<String>,
}

impl KeyAccess {
    pub(crate) fn origins_json(&self) -> String {
        serde_json::to_string(&self.origins).unwrap_or_else(|_| "[]".into())
    }

    pub(crate) fn from_columns(trust: &str, origins: &str) -> KeyAccess {
        KeyAccess {
            trust: Trust::parse(trust).unwrap_or_default(),
            origins: serde_json::from_str(origins).unwrap_or_default(),
        }
    }
}

/// A staff account of the web app.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    /// Argon2 PHC string; never serialised.
    #[serde(skip)]
    pub password_hash: String,
    /// `admin`, `marketer`, `agent` or `viewer`.
    pub role: String,
    pub created_at: Millis,
    pub last_login_at: Option<Millis>,
}

/// Who may use Rapport: staff accounts, web sessions and API keys.
#[async_trait]
pub trait StaffStore: Send + Sync {
    /// Creates a user; a taken e-mail is a conflict.
    async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        role: &str,
        at: Millis,
    ) -> Result<UserRow>;
    async fn users(&self) -> Result<Vec<UserRow>>;
    async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>>;
    async fn delete_user(&self, id: i64) -> Result<()>;
    async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        at: Millis,
        expires: Millis,
    ) -> Result<()>;
    /// The live session's user and CSRF token (none when unknown or expired).
    async fn session(&self, token_hash: &str, now: Millis) -> Result<Option<(UserRow, String)>>;
    async fn delete_session(&self, token_hash: &str) -> Result<()>;
    async fn create_api_key(
        &self,
        prefix: &str,
        hash: &str,
        scope: Scope,
        label: &str,
        access: &KeyAccess,
        at: Millis,
    ) -> Result<ApiKeyRecord>;
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>>;
    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>>;
    async fn revoke_api_key(&self, id: i64, at: Millis) -> Result<()>;
    /// Changes a key's trust level and origins; an unknown key is not found.
    async fn set_api_key_access(&self, id: i64, access: &KeyAccess) -> Result<()>;
}
