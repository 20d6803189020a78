//! SQLite side of the customer portal: sign-in links and customer sessions.

use super::SqliteStore;
use crate::portal::{LinkUse, PortalLink, PortalStore};
use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use rusqlite::{params, OptionalExtension};

#[async_trait]
impl PortalStore for SqliteStore {
    async fn create_link(&self, l: PortalLink) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO portal_links (token_hash, purpose, email, profile_id, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![l.token_hash, l.purpose, l.email, l.profile_id, l.created_at, l.expires_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn use_link(&self, token_hash: &str, now: Millis) -> Result<LinkUse> {
        let hash = token_hash.to_string();
        self.write(move |tx| {
            let link = tx
                .query_row(
                    "SELECT token_hash, purpose, email, profile_id, created_at, expires_at, used_at
                     FROM portal_links WHERE token_hash = ?1",
                    [&hash],
                    |r| {
                        Ok(PortalLink {
                            token_hash: r.get(0)?,
                            purpose: r.get(1)?,
                            email: r.get(2)?,
                            profile_id: r.get(3)?,
                            created_at: r.get(4)?,
                            expires_at: r.get(5)?,
                            used_at: r.get(6)?,
                        })
                    },
                )
                .optional()?;
            Ok(match link {
                None => LinkUse::Unknown,
                Some(l) if l.used_at.is_some() => LinkUse::Replayed,
                Some(l) if l.expires_at <= now => LinkUse::Expired,
                Some(mut l) => {
                    tx.execute(
                        "UPDATE portal_links SET used_at = ?2 WHERE token_hash = ?1",
                        params![hash, now],
                    )?;
                    l.used_at = Some(now);
                    LinkUse::Used(l)
                }
            })
        })
        .await
    }

    async fn open_customer_session(
        &self,
        token_hash: &str,
        person: ProfileId,
        csrf: &str,
        at: Millis,
        expires_at: Millis,
    ) -> Result<()> {
        let (hash, csrf) = (token_hash.to_string(), csrf.to_string());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO portal_sessions (token_hash, profile_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![hash, person, csrf, at, expires_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn customer_session(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> Result<Option<(ProfileId, String)>> {
        let hash = token_hash.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT profile_id, csrf FROM portal_sessions WHERE token_hash = ?1 AND expires_at > ?2",
            )?
            .query_row(params![hash, now], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
        })
        .await
    }

    async fn close_customer_session(&self, token_hash: &str) -> Result<()> {
        let hash = token_hash.to_string();
        self.write(move |tx| {
            tx.execute("DELETE FROM portal_sessions WHERE token_hash = ?1", [hash])?;
            Ok(())
        })
        .await
    }
}
