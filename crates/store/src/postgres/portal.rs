//! PostgreSQL side of the customer portal: sign-in links and customer sessions.

use super::PgStore;
use crate::portal::{LinkUse, PortalLink, PortalStore};
use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;

#[async_trait]
impl PortalStore for PgStore {
    async fn create_link(&self, l: PortalLink) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO portal_links (token_hash, purpose, email, profile_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&l.token_hash, &l.purpose, &l.email, &l.profile_id, &l.created_at, &l.expires_at],
        )
        .await?;
        Ok(())
    }

    async fn use_link(&self, token_hash: &str, now: Millis) -> Result<LinkUse> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // FOR UPDATE: of two concurrent uses, the second waits and sees it used.
        let row = tx
            .query_opt(
                "SELECT token_hash, purpose, email, profile_id, created_at, expires_at, used_at
                 FROM portal_links WHERE token_hash = $1 FOR UPDATE",
                &[&token_hash],
            )
            .await?;
        let out = match row {
            None => LinkUse::Unknown,
            Some(r) => {
                let mut l = PortalLink {
                    token_hash: r.get(0),
                    purpose: r.get(1),
                    email: r.get(2),
                    profile_id: r.get(3),
                    created_at: r.get(4),
                    expires_at: r.get(5),
                    used_at: r.get(6),
                };
                if l.used_at.is_some() {
                    LinkUse::Replayed
                } else if l.expires_at <= now {
                    LinkUse::Expired
                } else {
                    tx.execute(
                        "UPDATE portal_links SET used_at = $2 WHERE token_hash = $1",
                        &[&token_hash, &now],
                    )
                    .await?;
                    l.used_at = Some(now);
                    LinkUse::Used(l)
                }
            }
        };
        tx.commit().await?;
        Ok(out)
    }

    async fn open_customer_session(
        &self,
        token_hash: &str,
        person: ProfileId,
        csrf: &str,
        at: Millis,
        expires_at: Millis,
    ) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO portal_sessions (token_hash, profile_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[&token_hash, &person, &csrf, &at, &expires_at],
        )
        .await?;
        Ok(())
    }

    async fn customer_session(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> Result<Option<(ProfileId, String)>> {
        let c = self.client().await?;
        Ok(c.query_opt(
            "SELECT profile_id, csrf FROM portal_sessions WHERE token_hash = $1 AND expires_at > $2",
            &[&token_hash, &now],
        )
        .await?
        .map(|r| (r.get(0), r.get(1))))
    }

    async fn close_customer_session(&self, token_hash: &str) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "DELETE FROM portal_sessions WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?;
        Ok(())
    }
}
