//! Staff accounts of the web app: roles, Argon2 password hashes, sessions. A session
//! token is 32 random bytes shown to the browser once (in its cookie); only its SHA-256
//! is stored, with a CSRF token every form must echo.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::RngCore;
use rapport_domain::time::now_millis;
use rapport_store::{DynStore, StoreError, UserRow};
use sha2::{Digest, Sha256};

/// What each role may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Partners' and analysts' accounts: aggregate audience insight only, never a
    /// person (the web app lets them open nothing else).
    Insight,
    Viewer,
    Agent,
    Marketer,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "insight" => Some(Role::Insight),
            "viewer" => Some(Role::Viewer),
            "agent" => Some(Role::Agent),
            "marketer" => Some(Role::Marketer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Insight => "insight",
            Role::Viewer => "viewer",
            Role::Agent => "agent",
            Role::Marketer => "marketer",
            Role::Admin => "admin",
        }
    }
    /// See people at all (everyone but insight accounts).
    pub fn can_see_people(self) -> bool {
        self >= Role::Viewer
    }
    /// Edit people: traits, consents, merges (support agents and up).
    pub fn can_edit_people(self) -> bool {
        self >= Role::Agent
    }
    /// Tickets answered, assigned and closed (support agents and admins; marketers read).
    pub fn can_support(self) -> bool {
        matches!(self, Role::Agent | Role::Admin)
    }
    /// Segments, rules, offers, scores (marketers and admins).
    pub fn can_market(self) -> bool {
        self >= Role::Marketer
    }
    /// API keys, users, chains (admins).
    pub fn can_admin(self) -> bool {
        self == Role::Admin
    }
}

pub const SESSION_DAYS: i64 = 7;

fn invalid(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::invalid(field, reason)
}

pub fn hash_password(password: &str) -> Result<String, StoreError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Backend(format!("password hashing: {e}")))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Creates an account (e-mail lower-cased; password at least 10 characters).
pub async fn create(
    store: &DynStore,
    email: &str,
    password: &str,
    role: &str,
) -> Result<UserRow, StoreError> {
    let email = email.trim().to_ascii_lowercase();
    if !email.contains('@') || email.len() > 254 {
        return Err(invalid("email", "must be an e-mail address"));
    }
    if password.chars().count() < 10 {
        return Err(invalid("password", "must be at least 10 characters"));
    }
    if Role::parse(role).is_none() {
        return Err(invalid(
            "role",
            "must be admin, marketer, agent, viewer or insight",
        ));
    }
    let hash = hash_password(password)?;
    store.create_user(&email, &hash, role, now_millis()).await
}

/// A new session for valid credentials: (user, session token, CSRF token). The same
/// answer for an unknown e-mail and a wrong password.
pub async fn login(
    store: &DynStore,
    email: &str,
    password: &str,
) -> Result<Option<(UserRow, String, String)>, StoreError> {
    let email = email.trim().to_ascii_lowercase();
    let Some(user) = store.user_by_email(&email).await? else {
        // Spend the same time as a real check, so e-mails cannot be probed by timing.
        let _ = verify_password(
            password,
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
        );
        return Ok(None);
    };
    if !verify_password(password, &user.password_hash) {
        return Ok(None);
    }
    let (token, csrf) = (random_token(), random_token());
    let now = now_millis();
    store
        .create_session(
            &token_hash(&token),
            user.id,
            &csrf,
            now,
            now + SESSION_DAYS * 86_400_000,
        )
        .await?;
    Ok(Some((user, token, csrf)))
}

/// The signed-in user behind a session token, with the session's CSRF token.
pub async fn session(
    store: &DynStore,
    token: &str,
) -> Result<Option<(UserRow, Role, String)>, StoreError> {
    Ok(store
        .session(&token_hash(token), now_millis())
        .await?
        .and_then(|(u, csrf)| Role::parse(&u.role).map(|r| (u, r, csrf))))
}

pub async fn logout(store: &DynStore, token: &str) -> Result<(), StoreError> {
    store.delete_session(&token_hash(token)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_roles() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(Role::Admin.can_admin() && !Role::Marketer.can_admin());
        assert!(Role::Viewer.can_see_people() && !Role::Insight.can_see_people());
        assert!(!Role::Insight.can_edit_people() && !Role::Insight.can_market());
        assert_eq!(Role::parse("insight"), Some(Role::Insight));
        assert!(Role::Agent.can_edit_people() && !Role::Viewer.can_edit_people());
        assert!(!Role::Agent.can_market() && Role::Marketer.can_market());
    }
}
