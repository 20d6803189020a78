//! PostgreSQL side of referrals.

use super::ingest::write_events;
use super::PgStore;
use crate::referrals::{ReferralLeader, ReferralRow, ReferralStore};
use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::Millis;
use tokio_postgres::Row;

const SOURCE: &str = "loyalty";
const COLS: &str = "id, code, referrer_id, referred_id, status, reason, created_at, converted_at";

fn row(r: &Row) -> ReferralRow {
    ReferralRow {
        id: r.get(0),
        code: r.get(1),
        referrer_id: r.get(2),
        referred_id: r.get(3),
        status: r.get(4),
        reason: r.get(5),
        created_at: r.get(6),
        converted_at: r.get(7),
    }
}

#[async_trait]
impl ReferralStore for PgStore {
    async fn referral_code(
        &self,
        profile: ProfileId,
        new_code: String,
        at: Millis,
    ) -> Result<String> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO referral_codes (code, profile_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (profile_id) DO NOTHING",
            &[&new_code, &profile, &at],
        )
        .await?;
        Ok(c.query_one(
            "SELECT code FROM referral_codes WHERE profile_id = $1",
            &[&profile],
        )
        .await?
        .get(0))
    }

    async fn code_owner(&self, code: String) -> Result<Option<ProfileId>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT profile_id FROM referral_codes WHERE code = $1",
                &[&code],
            )
            .await?
            .map(|r| r.get(0)))
    }

    async fn add_referral(
        &self,
        r: ReferralRow,
        events: Vec<EventRow>,
    ) -> Result<(ReferralRow, bool)> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let made = tx
            .query_opt(
                "INSERT INTO referrals (code, referrer_id, referred_id, status, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (referred_id) DO NOTHING RETURNING id",
                &[&r.code, &r.referrer_id, &r.referred_id, &r.status, &r.reason, &r.created_at],
            )
            .await?;
        let Some(made) = made else {
            let had = tx
                .query_one(
                    &format!("SELECT {COLS} FROM referrals WHERE referred_id = $1"),
                    &[&r.referred_id],
                )
                .await?;
            return Ok((row(&had), false));
        };
        let id: i64 = made.get(0);
        let mut events = events;
        crate::common::stamp_events(&mut events, "referral_id", id);
        write_events(&tx, &events, SOURCE).await?;
        tx.commit().await?;
        Ok((ReferralRow { id, ..r }, true))
    }

    async fn referral_of(&self, members: Vec<ProfileId>) -> Result<Option<ReferralRow>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {COLS} FROM referrals WHERE referred_id = ANY($1) ORDER BY id LIMIT 1"
                ),
                &[&members],
            )
            .await?
            .as_ref()
            .map(row))
    }

    async fn convert_referral(&self, id: i64, at: Millis, events: Vec<EventRow>) -> Result<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let n = tx
            .execute(
                "UPDATE referrals SET status = 'converted', converted_at = $2 WHERE id = $1 AND status = 'pending'",
                &[&id, &at],
            )
            .await?;
        if n == 0 {
            return Ok(false);
        }
        write_events(&tx, &events, SOURCE).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn referrals_by(
        &self,
        members: Vec<ProfileId>,
        limit: usize,
    ) -> Result<Vec<ReferralRow>> {
        Ok(self
            .client()
            .await?
            .query(
                &format!("SELECT {COLS} FROM referrals WHERE referrer_id = ANY($1) ORDER BY id DESC LIMIT $2"),
                &[&members, &(limit as i64)],
            )
            .await?
            .iter()
            .map(row)
            .collect())
    }

    async fn referrals(&self, status: Option<String>, limit: usize) -> Result<Vec<ReferralRow>> {
        Ok(self
            .client()
            .await?
            .query(
                &format!("SELECT {COLS} FROM referrals WHERE $1::text IS NULL OR status = $1 ORDER BY id DESC LIMIT $2"),
                &[&status, &(limit as i64)],
            )
            .await?
            .iter()
            .map(row)
            .collect())
    }

    async fn referral_leaders(&self, limit: usize) -> Result<Vec<ReferralLeader>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT referrer_id, count(*), count(*) FILTER (WHERE status = 'converted') AS converted
                 FROM referrals WHERE status <> 'refused' GROUP BY referrer_id
                 ORDER BY converted DESC, count(*) DESC, referrer_id LIMIT $1",
                &[&(limit as i64)],
            )
            .await?
            .iter()
            .map(|r| ReferralLeader {
                referrer_id: r.get(0),
                referrals: r.get(1),
                converted: r.get(2),
            })
            .collect())
    }
}
