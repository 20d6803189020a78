//! SQLite side of loyalty points.

use super::ingest::insert_events;
use super::SqliteStore;
use crate::loyalty::{
    EntryRow, LedgerWrite, LotRow, LoyaltyStore, LoyaltyTotals, Outcome, Redemption, Reward,
    TierRow,
};
use crate::Result;
use async_trait::async_trait;
use rapport_domain::loyalty::{Lot, TierState};
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::Millis;
use rusqlite::{params, OptionalExtension, Row, Transaction};

const SOURCE: &str = "loyalty";
const LOT_COLS: &str = "id, amount, remaining, earned_at, unlock_at, expires_at, order_ref, profile_id, kind, revenue, reversed_at";
const ENTRY_COLS: &str = "id, profile_id, kind, amount, idempotency_key, at, lot_id, moves, order_ref, reason, source, unrecovered";
const REWARD_COLS: &str = "id, name, description, cost, stock, per_person, tiers, segment, starts_at, ends_at, active, created_at, updated_at,
     (SELECT CASE WHEN EXISTS (SELECT 1 FROM loyalty_codes c WHERE c.reward_id = r.id) THEN (SELECT count(*) FROM loyalty_codes c WHERE c.reward_id = r.id AND c.redemption_id IS NULL) END)";
const REDEMPTION_COLS: &str =
    "id, idempotency_key, profile_id, reward_id, cost, code, entry_id, at";

fn ids(members: &[ProfileId]) -> String {
    serde_json::to_string(members).unwrap_or_else(|_| "[]".into())
}

fn lot(r: &Row<'_>) -> rusqlite::Result<LotRow> {
    Ok(LotRow {
        lot: Lot {
            id: r.get(0)?,
            amount: r.get(1)?,
            remaining: r.get(2)?,
            earned_at: r.get(3)?,
            unlock_at: r.get(4)?,
            expires_at: r.get(5)?,
            order: r.get(6)?,
        },
        profile_id: r.get(7)?,
        kind: r.get(8)?,
        revenue: r.get(9)?,
        reversed_at: r.get(10)?,
    })
}

fn entry(r: &Row<'_>) -> rusqlite::Result<EntryRow> {
    let moves: String = r.get(7)?;
    Ok(EntryRow {
        id: r.get(0)?,
        profile_id: r.get(1)?,
        kind: r.get(2)?,
        amount: r.get(3)?,
        idempotency_key: r.get(4)?,
        at: r.get(5)?,
        lot_id: r.get(6)?,
        moves: serde_json::from_str(&moves).unwrap_or_default(),
        order: r.get(8)?,
        reason: r.get(9)?,
        source: r.get(10)?,
        unrecovered: r.get(11)?,
    })
}

fn reward(r: &Row<'_>) -> rusqlite::Result<Reward> {
    let tiers: String = r.get(6)?;
    Ok(Reward {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        cost: r.get(3)?,
        stock: r.get(4)?,
        per_person: r.get(5)?,
        tiers: serde_json::from_str(&tiers).unwrap_or_default(),
        segment: r.get(7)?,
        starts_at: r.get(8)?,
        ends_at: r.get(9)?,
        active: r.get::<_, i64>(10)? != 0,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        codes_left: r.get(13)?,
    })
}

fn redemption(r: &Row<'_>) -> rusqlite::Result<Redemption> {
    Ok(Redemption {
        id: r.get(0)?,
        idempotency_key: r.get(1)?,
        profile_id: r.get(2)?,
        reward_id: r.get(3)?,
        cost: r.get(4)?,
        code: r.get(5)?,
        entry_id: r.get(6)?,
        at: r.get(7)?,
    })
}

fn tier(r: &Row<'_>) -> rusqlite::Result<TierRow> {
    Ok(TierRow {
        profile_id: r.get(0)?,
        state: TierState {
            tier: r.get(1)?,
            since: r.get(2)?,
            below_since: r.get(3)?,
        },
        updated_at: r.get(4)?,
    })
}

fn entry_by_key(tx: &rusqlite::Connection, key: &str) -> Result<Option<EntryRow>> {
    Ok(tx
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLS} FROM loyalty_entries WHERE idempotency_key = ?1"
        ))?
        .query_row([key], entry)
        .optional()?)
}

/// One entry in a savepoint: nothing when its key was used, a lot changed, or the
/// redemption is refused.
fn write_one(tx: &Transaction<'_>, w: LedgerWrite) -> Result<Outcome> {
    tx.execute_batch("SAVEPOINT loyalty_write")?;
    let out = write_in(tx, w);
    match &out {
        Ok(Outcome::Written(..)) => tx.execute_batch("RELEASE loyalty_write")?,
        _ => tx.execute_batch("ROLLBACK TO loyalty_write; RELEASE loyalty_write")?,
    }
    out
}

fn write_in(sp: &Transaction<'_>, w: LedgerWrite) -> Result<Outcome> {
    let tx = sp;
    if let Some(had) = entry_by_key(tx, &w.entry.idempotency_key)? {
        return Ok(Outcome::Existing(had));
    }
    for (m, held) in &w.moves {
        let now: Option<i64> = tx
            .prepare_cached("SELECT remaining FROM loyalty_lots WHERE id = ?1")?
            .query_row([m.lot], |r| r.get(0))
            .optional()?;
        if now != Some(*held) || m.take > *held {
            return Ok(Outcome::Stale);
        }
    }
    let mut e = w.entry;
    if let Some(r) = &w.redeem {
        if let Some(limit) = r.per_person {
            let had: i64 = sp.query_row(
                "SELECT count(*) FROM loyalty_redemptions WHERE reward_id = ?1 AND profile_id IN (SELECT value FROM json_each(?2))",
                params![r.reward_id, ids(&r.members)],
                |x| x.get(0),
            )?;
            if had >= limit {
                return Ok(Outcome::Refused(format!(
                    "this reward can be redeemed {limit} time(s) per person"
                )));
            }
        }
        let took = sp.execute(
            "UPDATE loyalty_rewards SET stock = stock - 1 WHERE id = ?1 AND stock IS NOT NULL",
            [r.reward_id],
        )?;
        if took > 0 {
            let left: i64 = sp.query_row(
                "SELECT stock FROM loyalty_rewards WHERE id = ?1",
                [r.reward_id],
                |x| x.get(0),
            )?;
            if left < 0 {
                return Ok(Outcome::Refused("out of stock".into()));
            }
        }
    }
    if let Some(l) = &w.lot {
        sp.prepare_cached(
            "INSERT INTO loyalty_lots (profile_id, kind, amount, remaining, earned_at, unlock_at, expires_at, order_ref, revenue)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            l.profile_id,
            l.kind,
            l.amount,
            l.earned_at,
            l.unlock_at,
            l.expires_at,
            l.order,
            l.revenue
        ])?;
        e.lot_id = Some(sp.last_insert_rowid());
    }
    for (m, _) in &w.moves {
        sp.prepare_cached("UPDATE loyalty_lots SET remaining = remaining - ?2 WHERE id = ?1")?
            .execute(params![m.lot, m.take])?;
    }
    for l in &w.reversed {
        sp.prepare_cached("UPDATE loyalty_lots SET reversed_at = ?2 WHERE id = ?1")?
            .execute(params![l, e.at])?;
    }
    e.moves = w.moves.iter().map(|(m, _)| *m).collect();
    sp.prepare_cached(
        "INSERT INTO loyalty_entries (profile_id, kind, amount, idempotency_key, at, lot_id, moves, order_ref, reason, source, unrecovered)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        e.profile_id,
        e.kind,
        e.amount,
        e.idempotency_key,
        e.at,
        e.lot_id,
        serde_json::to_string(&e.moves).unwrap_or_else(|_| "[]".into()),
        e.order,
        e.reason,
        e.source,
        e.unrecovered
    ])?;
    e.id = sp.last_insert_rowid();
    let mut given = None;
    if let Some(r) = &w.redeem {
        let cost = -e.amount;
        sp.execute(
            "INSERT INTO loyalty_redemptions (idempotency_key, profile_id, reward_id, cost, entry_id, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![r.idempotency_key, e.profile_id, r.reward_id, cost, e.id, e.at],
        )?;
        let rid = sp.last_insert_rowid();
        let pooled: bool = sp.query_row(
            "SELECT EXISTS (SELECT 1 FROM loyalty_codes WHERE reward_id = ?1)",
            [r.reward_id],
            |x| x.get(0),
        )?;
        let code: Option<String> = if pooled {
            let code: Option<(i64, String)> = sp
                .query_row(
                    "SELECT id, code FROM loyalty_codes WHERE reward_id = ?1 AND redemption_id IS NULL ORDER BY id LIMIT 1",
                    [r.reward_id],
                    |x| Ok((x.get(0)?, x.get(1)?)),
                )
                .optional()?;
            let Some((cid, code)) = code else {
                return Ok(Outcome::Refused("out of stock: no codes left".into()));
            };
            sp.execute(
                "UPDATE loyalty_codes SET redemption_id = ?2 WHERE id = ?1",
                params![cid, rid],
            )?;
            sp.execute(
                "UPDATE loyalty_redemptions SET code = ?2 WHERE id = ?1",
                params![rid, code],
            )?;
            Some(code)
        } else {
            None
        };
        given = Some(Redemption {
            id: rid,
            idempotency_key: r.idempotency_key.clone(),
            profile_id: e.profile_id,
            reward_id: r.reward_id,
            cost,
            code,
            entry_id: e.id,
            at: e.at,
        });
    }
    let mut events: Vec<EventRow> = w.events;
    crate::common::stamp_events(&mut events, "entry", e.id);
    if let Some(lot) = e.lot_id {
        crate::common::stamp_events(&mut events, "lot", lot);
    }
    insert_events(sp, &events, SOURCE)?;
    Ok(Outcome::Written(e, given))
}

#[async_trait]
impl LoyaltyStore for SqliteStore {
    async fn lots(&self, members: &[ProfileId], every: bool) -> Result<Vec<LotRow>> {
        let m = ids(members);
        self.read(move |c| {
            let open = if every { "" } else { " AND remaining > 0" };
            let rows = c
                .prepare_cached(&format!(
                    "SELECT {LOT_COLS} FROM loyalty_lots WHERE profile_id IN (SELECT value FROM json_each(?1)){open} ORDER BY earned_at, id"
                ))?
                .query_map([m], lot)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn balance(
        &self,
        members: &[ProfileId],
        now: Millis,
    ) -> Result<rapport_domain::loyalty::Balance> {
        let m = ids(members);
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT coalesce(sum(CASE WHEN unlock_at <= ?2 THEN remaining END), 0), coalesce(sum(CASE WHEN unlock_at > ?2 THEN remaining END), 0)
                 FROM loyalty_lots WHERE profile_id IN (SELECT value FROM json_each(?1)) AND remaining > 0 AND (expires_at IS NULL OR expires_at > ?2)",
            )?
            .query_row(params![m, now], |r| {
                Ok(rapport_domain::loyalty::Balance { available: r.get(0)?, pending: r.get(1)? })
            })?)
        })
        .await
    }

    async fn write_entries(&self, writes: Vec<LedgerWrite>) -> Result<Vec<Outcome>> {
        self.write(move |tx| {
            writes
                .into_iter()
                .map(|w| write_one(tx, w))
                .collect::<Result<Vec<_>>>()
        })
        .await
    }

    async fn entry_by_key(&self, key: &str) -> Result<Option<EntryRow>> {
        let key = key.to_string();
        self.read(move |c| entry_by_key(c, &key)).await
    }

    async fn entries(
        &self,
        members: &[ProfileId],
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<EntryRow>> {
        let m = ids(members);
        self.read(move |c| {
            let rows = c
                .prepare_cached(&format!(
                    "SELECT {ENTRY_COLS} FROM loyalty_entries WHERE profile_id IN (SELECT value FROM json_each(?1)) AND id < ?2
                     ORDER BY id DESC LIMIT ?3"
                ))?
                .query_map(params![m, before.unwrap_or(i64::MAX), limit as i64], entry)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn qualifying(&self, members: &[ProfileId], since: Millis) -> Result<(i64, f64)> {
        let m = ids(members);
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT coalesce(sum(amount), 0), coalesce(sum(revenue), 0.0) FROM loyalty_lots
                 WHERE profile_id IN (SELECT value FROM json_each(?1)) AND earned_at >= ?2 AND kind = 'earn' AND reversed_at IS NULL",
            )?
            .query_row(params![m, since], |r| Ok((r.get(0)?, r.get(1)?)))?)
        })
        .await
    }

    async fn earned_by(&self, members: &[ProfileId], source: &str, since: Millis) -> Result<i64> {
        let (m, source) = (ids(members), source.to_string());
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT coalesce(sum(amount), 0) FROM loyalty_entries
                 WHERE profile_id IN (SELECT value FROM json_each(?1)) AND kind = 'earn' AND source = ?2 AND at >= ?3",
            )?
            .query_row(params![m, source, since], |r| r.get(0))?)
        })
        .await
    }

    async fn expired_lots(&self, now: Millis, limit: usize) -> Result<Vec<LotRow>> {
        self.read(move |c| {
            let rows = c
                .prepare_cached(&format!(
                    "SELECT {LOT_COLS} FROM loyalty_lots WHERE expires_at <= ?1 AND remaining > 0 AND expires_at IS NOT NULL
                     ORDER BY expires_at, id LIMIT ?2"
                ))?
                .query_map(params![now, limit as i64], lot)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn tiers(&self, members: &[ProfileId]) -> Result<Vec<TierRow>> {
        let m = ids(members);
        self.read(move |c| {
            let rows = c
                .prepare_cached(
                    "SELECT profile_id, tier, since, below_since, updated_at FROM loyalty_tiers
                     WHERE profile_id IN (SELECT value FROM json_each(?1)) ORDER BY updated_at DESC",
                )?
                .query_map([m], tier)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn set_tier(&self, row: TierRow, events: Vec<EventRow>) -> Result<()> {
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT INTO loyalty_tiers (profile_id, tier, since, below_since, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (profile_id) DO UPDATE SET tier = excluded.tier, since = excluded.since,
                 below_since = excluded.below_since, updated_at = excluded.updated_at",
            )?
            .execute(params![
                row.profile_id,
                row.state.tier,
                row.state.since,
                row.state.below_since,
                row.updated_at
            ])?;
            insert_events(tx, &events, SOURCE)
        })
        .await
    }

    async fn tiered(&self, after: ProfileId, limit: usize) -> Result<Vec<TierRow>> {
        self.read(move |c| {
            let rows = c
                .prepare_cached(
                    "SELECT profile_id, tier, since, below_since, updated_at FROM loyalty_tiers
                     WHERE profile_id > ?1 AND tier IS NOT NULL ORDER BY profile_id LIMIT ?2",
                )?
                .query_map(params![after, limit as i64], tier)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn reward_catalogue(&self) -> Result<Vec<Reward>> {
        self.read(|c| {
            let rows = c
                .prepare_cached(&format!(
                    "SELECT {REWARD_COLS} FROM loyalty_rewards r ORDER BY cost, id"
                ))?
                .query_map([], reward)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn catalogue_item(&self, id: i64) -> Result<Option<Reward>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {REWARD_COLS} FROM loyalty_rewards r WHERE id = ?1"
            ))?
            .query_row([id], reward)
            .optional()?)
        })
        .await
    }

    async fn catalogue_item_named(&self, name: &str) -> Result<Option<Reward>> {
        let name = name.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {REWARD_COLS} FROM loyalty_rewards r WHERE name = ?1"
            ))?
            .query_row([name], reward)
            .optional()?)
        })
        .await
    }

    async fn save_catalogue_item(&self, r: Reward) -> Result<i64> {
        self.write(move |tx| {
            let tiers = serde_json::to_string(&r.tiers).unwrap_or_else(|_| "[]".into());
            let p = params![
                r.name,
                r.description,
                r.cost,
                r.stock,
                r.per_person,
                tiers,
                r.segment,
                r.starts_at,
                r.ends_at,
                i64::from(r.active),
                r.created_at,
                r.updated_at,
                r.id
            ];
            if r.id == 0 {
                tx.execute(
                    "INSERT INTO loyalty_rewards (name, description, cost, stock, per_person, tiers, segment, starts_at, ends_at, active, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    &p[..12],
                )?;
                Ok(tx.last_insert_rowid())
            } else {
                tx.execute(
                    "UPDATE loyalty_rewards SET name = ?1, description = ?2, cost = ?3, stock = ?4, per_person = ?5, tiers = ?6,
                     segment = ?7, starts_at = ?8, ends_at = ?9, active = ?10, updated_at = ?12 WHERE id = ?13",
                    p,
                )?;
                Ok(r.id)
            }
        })
        .await
    }

    async fn add_codes(&self, reward: i64, codes: Vec<String>) -> Result<usize> {
        self.write(move |tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO loyalty_codes (reward_id, code) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?;
            let mut n = 0;
            for c in codes {
                n += st.execute(params![reward, c])?;
            }
            Ok(n)
        })
        .await
    }

    async fn redemption_by_key(&self, key: &str) -> Result<Option<Redemption>> {
        let key = key.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {REDEMPTION_COLS} FROM loyalty_redemptions WHERE idempotency_key = ?1"
            ))?
            .query_row([key], redemption)
            .optional()?)
        })
        .await
    }

    async fn redemptions(&self, members: &[ProfileId], limit: usize) -> Result<Vec<Redemption>> {
        let m = ids(members);
        self.read(move |c| {
            let rows = c
                .prepare_cached(&format!(
                    "SELECT {REDEMPTION_COLS} FROM loyalty_redemptions WHERE profile_id IN (SELECT value FROM json_each(?1))
                     ORDER BY id DESC LIMIT ?2"
                ))?
                .query_map(params![m, limit as i64], redemption)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn loyalty_totals(&self, now: Millis, since: Millis) -> Result<LoyaltyTotals> {
        self.read(move |c| {
            let (outstanding, pending, holders) = c.query_row(
                "SELECT coalesce(sum(remaining), 0), coalesce(sum(CASE WHEN unlock_at > ?1 THEN remaining ELSE 0 END), 0),
                 count(DISTINCT profile_id)
                 FROM loyalty_lots WHERE remaining > 0 AND (expires_at IS NULL OR expires_at > ?1)",
                [now],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let daily = c
                .prepare_cached(
                    "SELECT (at / 86400000) * 86400000 AS day, sum(CASE WHEN kind = 'earn' THEN amount ELSE 0 END),
                     sum(CASE WHEN kind = 'spend' THEN -amount ELSE 0 END)
                     FROM loyalty_entries WHERE at >= ?1 GROUP BY day ORDER BY day",
                )?
                .query_map([since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let tiers = c
                .prepare_cached("SELECT tier, count(*) FROM loyalty_tiers GROUP BY tier ORDER BY tier")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(LoyaltyTotals {
                outstanding,
                pending,
                holders,
                daily,
                tiers,
            })
        })
        .await
    }
}
