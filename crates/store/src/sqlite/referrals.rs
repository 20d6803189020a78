//! SQLite side of referrals.

use super::ingest::insert_events;
use super::SqliteStore;
use crate::referrals::{ReferralLeader, ReferralRow, ReferralStore};
use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::Millis;
use rusqlite::{params, OptionalExtension, Row};

const SOURCE: &str = "loyalty";
const COLS: &str = "id, code, referrer_id, referred_id, status, reason, created_at, converted_at";

fn row(r: &Row<'_>) -> rusqlite::Result<ReferralRow> {
    Ok(ReferralRow {
        id: r.get(0)?,
        code: r.get(1)?,
        referrer_id: r.get(2)?,
        referred_id: r.get(3)?,
        status: r.get(4)?,
        reason: r.get(5)?,
        created_at: r.get(6)?,
        converted_at: r.get(7)?,
    })
}

fn ids(members: &[ProfileId]) -> String {
    serde_json::to_string(members).unwrap_or_else(|_| "[]".into())
}

#[async_trait]
impl ReferralStore for SqliteStore {
    async fn referral_code(
        &self,
        profile: ProfileId,
        new_code: String,
        at: Millis,
    ) -> Result<String> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO referral_codes (code, profile_id, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (profile_id) DO NOTHING",
                params![new_code, profile, at],
            )?;
            Ok(tx.query_row(
                "SELECT code FROM referral_codes WHERE profile_id = ?1",
                [profile],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn code_owner(&self, code: String) -> Result<Option<ProfileId>> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT profile_id FROM referral_codes WHERE code = ?1",
                [code],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn add_referral(
        &self,
        r: ReferralRow,
        events: Vec<EventRow>,
    ) -> Result<(ReferralRow, bool)> {
        self.write(move |tx| {
            let had = tx
                .query_row(
                    &format!("SELECT {COLS} FROM referrals WHERE referred_id = ?1"),
                    [r.referred_id],
                    row,
                )
                .optional()?;
            if let Some(had) = had {
                return Ok((had, false));
            }
            tx.execute(
                "INSERT INTO referrals (code, referrer_id, referred_id, status, reason, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![r.code, r.referrer_id, r.referred_id, r.status, r.reason, r.created_at],
            )?;
            let id = tx.last_insert_rowid();
            let mut events = events;
            crate::common::stamp_events(&mut events, "referral_id", id);
            insert_events(tx, &events, SOURCE)?;
            Ok((ReferralRow { id, ..r }, true))
        })
        .await
    }

    async fn referral_of(&self, members: Vec<ProfileId>) -> Result<Option<ReferralRow>> {
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {COLS} FROM referrals WHERE referred_id IN (SELECT value FROM json_each(?1)) ORDER BY id LIMIT 1"),
                [ids(&members)],
                row,
            )
            .optional()?)
        })
        .await
    }

    async fn convert_referral(&self, id: i64, at: Millis, events: Vec<EventRow>) -> Result<bool> {
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE referrals SET status = 'converted', converted_at = ?2 WHERE id = ?1 AND status = 'pending'",
                params![id, at],
            )?;
            if n == 0 {
                return Ok(false);
            }
            insert_events(tx, &events, SOURCE)?;
            Ok(true)
        })
        .await
    }

    async fn referrals_by(
        &self,
        members: Vec<ProfileId>,
        limit: usize,
    ) -> Result<Vec<ReferralRow>> {
        self.read(move |c| {
            let rows = c
                .prepare_cached(&format!("SELECT {COLS} FROM referrals WHERE referrer_id IN (SELECT value FROM json_each(?1)) ORDER BY id DESC LIMIT ?2"))?
                .query_map(params![ids(&members), limit as i64], row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn referrals(&self, status: Option<String>, limit: usize) -> Result<Vec<ReferralRow>> {
        self.read(move |c| {
            let rows = c
                .prepare_cached(&format!("SELECT {COLS} FROM referrals WHERE ?1 IS NULL OR status = ?1 ORDER BY id DESC LIMIT ?2"))?
                .query_map(params![status, limit as i64], row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn referral_leaders(&self, limit: usize) -> Result<Vec<ReferralLeader>> {
        self.read(move |c| {
            let rows = c
                .prepare_cached(
                    "SELECT referrer_id, count(*), sum(CASE WHEN status = 'converted' THEN 1 ELSE 0 END) AS converted
                     FROM referrals WHERE status <> 'refused' GROUP BY referrer_id
                     ORDER BY converted DESC, count(*) DESC, referrer_id LIMIT ?1",
                )?
                .query_map([limit as i64], |r| {
                    Ok(ReferralLeader {
                        referrer_id: r.get(0)?,
                        referrals: r.get(1)?,
                        converted: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }
}
