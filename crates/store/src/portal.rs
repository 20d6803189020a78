//! [`PortalStore`] and the shapes it speaks; implemented in `sqlite/portal.rs` and
//! `postgres/portal.rs`: the customer portal's single-use sign-in links and customer
//! sessions (apart from staff sessions). Only hashes of their tokens are stored.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;

#[derive(Debug, Clone, PartialEq)]
pub struct PortalLink {
    pub token_hash: String,
    /// `sign_in`.
    pub purpose: String,
    pub email: String,
    pub profile_id: Option<ProfileId>,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
}

/// What using a link found.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkUse {
    /// Unused and in time: now marked used.
    Used(PortalLink),
    Unknown,
    Expired,
    /// Used before.
    Replayed,
}

#[async_trait]
pub trait PortalStore: Send + Sync {
    async fn create_link(&self, link: PortalLink) -> Result<()>;
    /// Marks the link used when it is unused and unexpired at `now`, atomically (two
    /// concurrent uses: one wins).
    async fn use_link(&self, token_hash: &str, now: Millis) -> Result<LinkUse>;
    async fn open_customer_session(
        &self,
        token_hash: &str,
        person: ProfileId,
        csrf: &str,
        at: Millis,
        expires_at: Millis,
    ) -> Result<()>;
    /// The session's person and CSRF token while unexpired.
    async fn customer_session(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> Result<Option<(ProfileId, String)>>;
    async fn close_customer_session(&self, token_hash: &str) -> Result<()>;
}
