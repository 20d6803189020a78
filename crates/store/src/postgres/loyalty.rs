//! PostgreSQL side of loyalty points. Every write holds the writer lock (as event
//! writers do), so a plan's check of its lots and its writes see no other writer between.

use super::ingest::{add_events, write_events, Pipeline};
use super::PgStore;
use crate::loyalty::{
    EntryRow, LedgerWrite, LotRow, LoyaltyStore, LoyaltyTotals, Outcome, Redemption, Reward,
    TierRow,
};
use crate::Result;
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use rapport_domain::loyalty::{Lot, TierState};
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::Millis;
use tokio_postgres::Row;

const SOURCE: &str = "loyalty";
const LOT_COLS: &str = "id, amount, remaining, earned_at, unlock_at, expires_at, order_ref, profile_id, kind, revenue, reversed_at";
const ENTRY_COLS: &str = "id, profile_id, kind, amount, idempotency_key, at, lot_id, moves, order_ref, reason, source, unrecovered";
const REWARD_COLS: &str = "id, name, description, cost, stock, per_person, tiers, segment, starts_at, ends_at, active, created_at, updated_at,
     (SELECT CASE WHEN EXISTS (SELECT 1 FROM loyalty_codes c WHERE c.reward_id = r.id) THEN (SELECT count(*) FROM loyalty_codes c WHERE c.reward_id = r.id AND c.redemption_id IS NULL) END)";
const REDEMPTION_COLS: &str =
    "id, idempotency_key, profile_id, reward_id, cost, code, entry_id, at";

fn lot(r: &Row) -> LotRow {
    LotRow {
        lot: Lot {
            id: r.get(0),
            amount: r.get(1),
            remaining: r.get(2),
            earned_at: r.get(3),
            unlock_at: r.get(4),
            expires_at: r.get(5),
            order: r.get(6),
        },
        profile_id: r.get(7),
        kind: r.get(8),
        revenue: r.get(9),
        reversed_at: r.get(10),
    }
}

fn entry(r: &Row) -> EntryRow {
    let moves: String = r.get(7);
    EntryRow {
        id: r.get(0),
        profile_id: r.get(1),
        kind: r.get(2),
        amount: r.get(3),
        idempotency_key: r.get(4),
        at: r.get(5),
        lot_id: r.get(6),
        moves: serde_json::from_str(&moves).unwrap_or_default(),
        order: r.get(8),
        reason: r.get(9),
        source: r.get(10),
        unrecovered: r.get(11),
    }
}

fn reward(r: &Row) -> Reward {
    let tiers: String = r.get(6);
    Reward {
        id: r.get(0),
        name: r.get(1),
        description: r.get(2),
        cost: r.get(3),
        stock: r.get(4),
        per_person: r.get(5),
        tiers: serde_json::from_str(&tiers).unwrap_or_default(),
        segment: r.get(7),
        starts_at: r.get(8),
        ends_at: r.get(9),
        active: r.get::<_, i64>(10) != 0,
        created_at: r.get(11),
        updated_at: r.get(12),
        codes_left: r.get(13),
    }
}

fn redemption(r: &Row) -> Redemption {
    Redemption {
        id: r.get(0),
        idempotency_key: r.get(1),
        profile_id: r.get(2),
        reward_id: r.get(3),
        cost: r.get(4),
        code: r.get(5),
        entry_id: r.get(6),
        at: r.get(7),
    }
}

fn tier(r: &Row) -> TierRow {
    TierRow {
        profile_id: r.get(0),
        state: TierState {
            tier: r.get(1),
            since: r.get(2),
            below_since: r.get(3),
        },
        updated_at: r.get(4),
    }
}

async fn entry_by_key(c: &impl GenericClient, key: &str) -> Result<Option<EntryRow>> {
    Ok(c.query_opt(
        &format!("SELECT {ENTRY_COLS} FROM loyalty_entries WHERE idempotency_key = $1"),
        &[&key],
    )
    .await?
    .as_ref()
    .map(entry))
}

/// One entry in a savepoint: nothing when its key was used, a lot changed, or the
/// redemption is refused.
async fn write_one(tx: &mut Transaction<'_>, w: LedgerWrite) -> Result<Outcome> {
    if let Some(had) = entry_by_key(tx, &w.entry.idempotency_key).await? {
        return Ok(Outcome::Existing(had));
    }
    let lots: Vec<i64> = w.moves.iter().map(|(m, _)| m.lot).collect();
    let held: std::collections::HashMap<i64, i64> = tx
        .query(
            "SELECT id, remaining FROM loyalty_lots WHERE id = ANY($1)",
            &[&lots],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    if w.moves
        .iter()
        .any(|(m, h)| held.get(&m.lot) != Some(h) || m.take > *h)
    {
        return Ok(Outcome::Stale);
    }
    let sp = tx.savepoint("loyalty_write").await?;
    let mut e = w.entry;
    if let Some(r) = &w.redeem {
        if let Some(limit) = r.per_person {
            let had: i64 = sp
                .query_one(
                    "SELECT count(*) FROM loyalty_redemptions WHERE reward_id = $1 AND profile_id = ANY($2)",
                    &[&r.reward_id, &r.members],
                )
                .await?
                .get(0);
            if had >= limit {
                sp.rollback().await?;
                return Ok(Outcome::Refused(format!(
                    "this reward can be redeemed {limit} time(s) per person"
                )));
            }
        }
        let left: Option<Option<i64>> = sp
            .query_opt(
                "UPDATE loyalty_rewards SET stock = stock - 1 WHERE id = $1 AND stock IS NOT NULL RETURNING stock",
                &[&r.reward_id],
            )
            .await?
            .map(|x| x.get(0));
        if left.flatten().is_some_and(|l| l < 0) {
            sp.rollback().await?;
            return Ok(Outcome::Refused("out of stock".into()));
        }
    }
    if let Some(l) = &w.lot {
        e.lot_id = Some(
            sp.query_one(
                "INSERT INTO loyalty_lots (profile_id, kind, amount, remaining, earned_at, unlock_at, expires_at, order_ref, revenue)
                 VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &l.profile_id,
                    &l.kind,
                    &l.amount,
                    &l.earned_at,
                    &l.unlock_at,
                    &l.expires_at,
                    &l.order,
                    &l.revenue,
                ],
            )
            .await?
            .get(0),
        );
    }
    if !w.moves.is_empty() {
        let takes: Vec<i64> = w.moves.iter().map(|(m, _)| m.take).collect();
        sp.execute(
            "UPDATE loyalty_lots l SET remaining = l.remaining - m.take
             FROM unnest($1::bigint[], $2::bigint[]) AS m(id, take) WHERE l.id = m.id",
            &[&lots, &takes],
        )
        .await?;
    }
    if !w.reversed.is_empty() {
        sp.execute(
            "UPDATE loyalty_lots SET reversed_at = $2 WHERE id = ANY($1)",
            &[&w.reversed, &e.at],
        )
        .await?;
    }
    e.moves = w.moves.iter().map(|(m, _)| *m).collect();
    let moves = serde_json::to_string(&e.moves).unwrap_or_else(|_| "[]".into());
    e.id = sp
        .query_one(
            "INSERT INTO loyalty_entries (profile_id, kind, amount, idempotency_key, at, lot_id, moves, order_ref, reason, source, unrecovered)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            &[
                &e.profile_id,
                &e.kind,
                &e.amount,
                &e.idempotency_key,
                &e.at,
                &e.lot_id,
                &moves,
                &e.order,
                &e.reason,
                &e.source,
                &e.unrecovered,
            ],
        )
        .await?
        .get(0);
    let mut given = None;
    if let Some(r) = &w.redeem {
        let cost = -e.amount;
        let rid: i64 = sp
            .query_one(
                "INSERT INTO loyalty_redemptions (idempotency_key, profile_id, reward_id, cost, entry_id, at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[&r.idempotency_key, &e.profile_id, &r.reward_id, &cost, &e.id, &e.at],
            )
            .await?
            .get(0);
        let pooled: bool = sp
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM loyalty_codes WHERE reward_id = $1)",
                &[&r.reward_id],
            )
            .await?
            .get(0);
        let code = if pooled {
            let code: Option<String> = sp
                .query_opt(
                    "UPDATE loyalty_codes SET redemption_id = $2 WHERE id = (
                       SELECT id FROM loyalty_codes WHERE reward_id = $1 AND redemption_id IS NULL ORDER BY id LIMIT 1
                       FOR UPDATE SKIP LOCKED) RETURNING code",
                    &[&r.reward_id, &rid],
                )
                .await?
                .map(|x| x.get(0));
            let Some(code) = code else {
                sp.rollback().await?;
                return Ok(Outcome::Refused("out of stock: no codes left".into()));
            };
            sp.execute(
                "UPDATE loyalty_redemptions SET code = $2 WHERE id = $1",
                &[&rid, &code],
            )
            .await?;
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
    write_events(&sp, &events, SOURCE).await?;
    sp.commit().await?;
    Ok(Outcome::Written(e, given))
}

/// Whether a batch can be written set-based: no redemption or reversal (their checks
/// and pools go entry by entry), keys distinct and no lot moved by two writes, so each
/// write's checks stand on their own. A step's earnings and expiry's write-offs are.
fn plain(writes: &[LedgerWrite]) -> bool {
    let (mut keys, mut lots) = (
        std::collections::HashSet::new(),
        std::collections::HashSet::new(),
    );
    writes.len() > 1
        && writes.iter().all(|w| {
            w.redeem.is_none()
                && w.reversed.is_empty()
                && keys.insert(w.entry.idempotency_key.as_str())
                && w.moves.iter().all(|(m, _)| lots.insert(m.lot))
        })
}

/// A plain batch (see [`plain`]) in a fixed number of round trips: the keys and lots
/// checked with one query each, ids drawn at once, then lots, moves, entries and events
/// as one pipelined statement each. Outcomes as [`write_one`] gives them.
async fn write_plain(tx: &Transaction<'_>, writes: Vec<LedgerWrite>) -> Result<Vec<Outcome>> {
    let keys: Vec<&str> = writes
        .iter()
        .map(|w| w.entry.idempotency_key.as_str())
        .collect();
    let lots: Vec<i64> = writes
        .iter()
        .flat_map(|w| w.moves.iter().map(|(m, _)| m.lot))
        .collect();
    let had_sql =
        format!("SELECT {ENTRY_COLS} FROM loyalty_entries WHERE idempotency_key = ANY($1)");
    let (key_params, lot_params): ([super::Param<'_>; 1], [super::Param<'_>; 1]) =
        ([&keys], [&lots]);
    let (had, held) = tokio::try_join!(
        tx.query(&had_sql, &key_params),
        tx.query(
            "SELECT id, remaining FROM loyalty_lots WHERE id = ANY($1)",
            &lot_params
        ),
    )?;
    let mut had: std::collections::HashMap<String, EntryRow> = had
        .iter()
        .map(entry)
        .map(|e| (e.idempotency_key.clone(), e))
        .collect();
    let held: std::collections::HashMap<i64, i64> =
        held.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut out = Vec::with_capacity(writes.len());
    let mut todo = Vec::new();
    for w in writes {
        if let Some(e) = had.remove(&w.entry.idempotency_key) {
            out.push(Outcome::Existing(e));
        } else if w
            .moves
            .iter()
            .any(|(m, h)| held.get(&m.lot) != Some(h) || m.take > *h)
        {
            out.push(Outcome::Stale);
        } else {
            // A place kept for it, filled once its ids are known.
            out.push(Outcome::Stale);
            todo.push((out.len() - 1, w));
        }
    }
    if todo.is_empty() {
        return Ok(out);
    }
    let new_lots = todo.iter().filter(|(_, w)| w.lot.is_some()).count() as i64;
    let ids = tx
        .query_one(
            "SELECT ARRAY(SELECT nextval('loyalty_lots_id_seq') FROM generate_series(1::int8, $1::int8)),
                    ARRAY(SELECT nextval('loyalty_entries_id_seq') FROM generate_series(1::int8, $2::int8))",
            &[&new_lots, &(todo.len() as i64)],
        )
        .await?;
    let (lot_ids, entry_ids): (Vec<i64>, Vec<i64>) = (ids.get(0), ids.get(1));
    let (mut lot_ids, mut entry_ids) = (lot_ids.into_iter(), entry_ids.into_iter());
    let mut new_lot_rows = Vec::new();
    let (mut moved, mut takes) = (Vec::new(), Vec::new());
    let mut entries = Vec::with_capacity(todo.len());
    let mut events = Vec::new();
    for (at, w) in todo {
        let mut e = w.entry;
        e.id = entry_ids
            .next()
            .ok_or_else(|| crate::StoreError::Backend("too few entry ids".into()))?;
        if let Some(l) = w.lot {
            let id = lot_ids
                .next()
                .ok_or_else(|| crate::StoreError::Backend("too few lot ids".into()))?;
            e.lot_id = Some(id);
            new_lot_rows.push((id, l));
        }
        for (m, _) in &w.moves {
            moved.push(m.lot);
            takes.push(m.take);
        }
        e.moves = w.moves.iter().map(|(m, _)| *m).collect();
        let mut evs = w.events;
        crate::common::stamp_events(&mut evs, "entry", e.id);
        if let Some(lot) = e.lot_id {
            crate::common::stamp_events(&mut evs, "lot", lot);
        }
        events.extend(evs);
        out[at] = Outcome::Written(e.clone(), None);
        entries.push(e);
    }
    let mut p = Pipeline::default();
    if !new_lot_rows.is_empty() {
        let col = |f: fn(&(i64, crate::loyalty::NewLot)) -> i64| {
            new_lot_rows.iter().map(f).collect::<Vec<i64>>()
        };
        p.add(
            "INSERT INTO loyalty_lots (id, profile_id, kind, amount, remaining, earned_at, unlock_at, expires_at, order_ref, revenue)
             SELECT id, p, k, a, a, e, u, x, o, r
             FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::text[], $9::float8[])
               AS t(id, p, k, a, e, u, x, o, r)",
            vec![
                Box::new(col(|(id, _)| *id)),
                Box::new(col(|(_, l)| l.profile_id)),
                Box::new(new_lot_rows.iter().map(|(_, l)| l.kind.as_str()).collect::<Vec<_>>()),
                Box::new(col(|(_, l)| l.amount)),
                Box::new(col(|(_, l)| l.earned_at)),
                Box::new(col(|(_, l)| l.unlock_at)),
                Box::new(new_lot_rows.iter().map(|(_, l)| l.expires_at).collect::<Vec<_>>()),
                Box::new(new_lot_rows.iter().map(|(_, l)| l.order.as_deref()).collect::<Vec<_>>()),
                Box::new(new_lot_rows.iter().map(|(_, l)| l.revenue).collect::<Vec<_>>()),
            ],
        );
    }
    if !moved.is_empty() {
        p.add(
            "UPDATE loyalty_lots l SET remaining = l.remaining - m.take
             FROM unnest($1::bigint[], $2::bigint[]) AS m(id, take) WHERE l.id = m.id",
            vec![Box::new(moved), Box::new(takes)],
        );
    }
    p.add(
        "INSERT INTO loyalty_entries (id, profile_id, kind, amount, idempotency_key, at, lot_id, moves, order_ref, reason, source, unrecovered)
         SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::int8[], $5::text[], $6::int8[], $7::int8[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[])",
        vec![
            Box::new(entries.iter().map(|e| e.id).collect::<Vec<_>>()),
            Box::new(entries.iter().map(|e| e.profile_id).collect::<Vec<_>>()),
            Box::new(entries.iter().map(|e| e.kind.clone()).collect::<Vec<_>>()),
            Box::new(entries.iter().map(|e| e.amount).collect::<Vec<_>>()),
            Box::new(entries.iter().map(|e| e.idempotency_key.clone()).collect::<Vec<_>>()),
            Box::new(entries.iter().map(|e| e.at).collect::<Vec<_>>()),
            Box::new(entries.iter().map(|e| e.lot_id).collect::<Vec<_>>()),
            Box::new(
                entries
                    .iter()
                    .map(|e| serde_json::to_string(&e.moves).unwrap_or_else(|_| "[]".into()))
                    .collect::<Vec<_>>(),
            ),
            Box::new(entries.iter().map(|e| e.order.clone()).collect::<Vec<_>>()),
            Box::new(entries.iter().map(|e| e.reason.clone()).collect::<Vec<_>>()),
            Box::new(entries.iter().map(|e| e.source.clone()).collect::<Vec<_>>()),
            Box::new(entries.iter().map(|e| e.unrecovered).collect::<Vec<_>>()),
        ],
    );
    add_events(&mut p, &events, SOURCE);
    p.run(tx).await?;
    Ok(out)
}

#[async_trait]
impl LoyaltyStore for PgStore {
    async fn lots(&self, members: &[ProfileId], every: bool) -> Result<Vec<LotRow>> {
        let open = if every { "" } else { " AND remaining > 0" };
        Ok(self
            .client()
            .await?
            .query(
                &format!("SELECT {LOT_COLS} FROM loyalty_lots WHERE profile_id = ANY($1){open} ORDER BY earned_at, id"),
                &[&members],
            )
            .await?
            .iter()
            .map(lot)
            .collect())
    }

    async fn balance(
        &self,
        members: &[ProfileId],
        now: Millis,
    ) -> Result<rapport_domain::loyalty::Balance> {
        let r = self
            .client()
            .await?
            .query_one(
                "SELECT coalesce(sum(remaining) FILTER (WHERE unlock_at <= $2), 0)::bigint, coalesce(sum(remaining) FILTER (WHERE unlock_at > $2), 0)::bigint
                 FROM loyalty_lots WHERE profile_id = ANY($1) AND remaining > 0 AND (expires_at IS NULL OR expires_at > $2)",
                &[&members, &now],
            )
            .await?;
        Ok(rapport_domain::loyalty::Balance {
            available: r.get(0),
            pending: r.get(1),
        })
    }

    async fn write_entries(&self, writes: Vec<LedgerWrite>) -> Result<Vec<Outcome>> {
        let mut c = self.client().await?;
        let mut tx = c.transaction().await?;
        super::writer_lock(&tx).await?;
        let out = if plain(&writes) {
            write_plain(&tx, writes).await?
        } else {
            let mut out = Vec::with_capacity(writes.len());
            for w in writes {
                out.push(write_one(&mut tx, w).await?);
            }
            out
        };
        tx.commit().await?;
        Ok(out)
    }

    async fn entry_by_key(&self, key: &str) -> Result<Option<EntryRow>> {
        entry_by_key(&self.client().await?, key).await
    }

    async fn entries(
        &self,
        members: &[ProfileId],
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<EntryRow>> {
        Ok(self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {ENTRY_COLS} FROM loyalty_entries WHERE profile_id = ANY($1) AND id < $2 ORDER BY id DESC LIMIT $3"
                ),
                &[&members, &before.unwrap_or(i64::MAX), &(limit as i64)],
            )
            .await?
            .iter()
            .map(entry)
            .collect())
    }

    async fn qualifying(&self, members: &[ProfileId], since: Millis) -> Result<(i64, f64)> {
        let r = self
            .client()
            .await?
            .query_one(
                "SELECT coalesce(sum(amount), 0)::bigint, coalesce(sum(revenue), 0)::float8 FROM loyalty_lots
                 WHERE profile_id = ANY($1) AND earned_at >= $2 AND kind = 'earn' AND reversed_at IS NULL",
                &[&members, &since],
            )
            .await?;
        Ok((r.get(0), r.get(1)))
    }

    async fn earned_by(&self, members: &[ProfileId], source: &str, since: Millis) -> Result<i64> {
        Ok(self
            .client()
            .await?
            .query_one(
                "SELECT coalesce(sum(amount), 0)::bigint FROM loyalty_entries
                 WHERE profile_id = ANY($1) AND kind = 'earn' AND source = $2 AND at >= $3",
                &[&members, &source, &since],
            )
            .await?
            .get(0))
    }

    async fn expired_lots(&self, now: Millis, limit: usize) -> Result<Vec<LotRow>> {
        Ok(self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {LOT_COLS} FROM loyalty_lots WHERE expires_at <= $1 AND remaining > 0 AND expires_at IS NOT NULL
                     ORDER BY expires_at, id LIMIT $2"
                ),
                &[&now, &(limit as i64)],
            )
            .await?
            .iter()
            .map(lot)
            .collect())
    }

    async fn tiers(&self, members: &[ProfileId]) -> Result<Vec<TierRow>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT profile_id, tier, since, below_since, updated_at FROM loyalty_tiers
                 WHERE profile_id = ANY($1) ORDER BY updated_at DESC",
                &[&members],
            )
            .await?
            .iter()
            .map(tier)
            .collect())
    }

    async fn set_tier(&self, row: TierRow, events: Vec<EventRow>) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO loyalty_tiers (profile_id, tier, since, below_since, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (profile_id) DO UPDATE SET tier = excluded.tier, since = excluded.since,
             below_since = excluded.below_since, updated_at = excluded.updated_at",
            &[
                &row.profile_id,
                &row.state.tier,
                &row.state.since,
                &row.state.below_since,
                &row.updated_at,
            ],
        )
        .await?;
        write_events(&tx, &events, SOURCE).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn tiered(&self, after: ProfileId, limit: usize) -> Result<Vec<TierRow>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT profile_id, tier, since, below_since, updated_at FROM loyalty_tiers
                 WHERE profile_id > $1 AND tier IS NOT NULL ORDER BY profile_id LIMIT $2",
                &[&after, &(limit as i64)],
            )
            .await?
            .iter()
            .map(tier)
            .collect())
    }

    async fn reward_catalogue(&self) -> Result<Vec<Reward>> {
        Ok(self
            .client()
            .await?
            .query(
                &format!("SELECT {REWARD_COLS} FROM loyalty_rewards r ORDER BY cost, id"),
                &[],
            )
            .await?
            .iter()
            .map(reward)
            .collect())
    }

    async fn catalogue_item(&self, id: i64) -> Result<Option<Reward>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                &format!("SELECT {REWARD_COLS} FROM loyalty_rewards r WHERE id = $1"),
                &[&id],
            )
            .await?
            .as_ref()
            .map(reward))
    }

    async fn catalogue_item_named(&self, name: &str) -> Result<Option<Reward>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                &format!("SELECT {REWARD_COLS} FROM loyalty_rewards r WHERE name = $1"),
                &[&name],
            )
            .await?
            .as_ref()
            .map(reward))
    }

    async fn save_catalogue_item(&self, r: Reward) -> Result<i64> {
        let tiers = serde_json::to_string(&r.tiers).unwrap_or_else(|_| "[]".into());
        let active = i64::from(r.active);
        let c = self.client().await?;
        if r.id == 0 {
            Ok(c.query_one(
                "INSERT INTO loyalty_rewards (name, description, cost, stock, per_person, tiers, segment, starts_at, ends_at, active, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
                &[&r.name, &r.description, &r.cost, &r.stock, &r.per_person, &tiers, &r.segment, &r.starts_at, &r.ends_at, &active, &r.created_at, &r.updated_at],
            )
            .await?
            .get(0))
        } else {
            c.execute(
                "UPDATE loyalty_rewards SET name = $1, description = $2, cost = $3, stock = $4, per_person = $5, tiers = $6,
                 segment = $7, starts_at = $8, ends_at = $9, active = $10, updated_at = $11 WHERE id = $12",
                &[&r.name, &r.description, &r.cost, &r.stock, &r.per_person, &tiers, &r.segment, &r.starts_at, &r.ends_at, &active, &r.updated_at, &r.id],
            )
            .await?;
            Ok(r.id)
        }
    }

    async fn add_codes(&self, reward: i64, codes: Vec<String>) -> Result<usize> {
        Ok(self
            .client()
            .await?
            .execute(
                "INSERT INTO loyalty_codes (reward_id, code) SELECT $1, x FROM unnest($2::text[]) AS x ON CONFLICT DO NOTHING",
                &[&reward, &codes],
            )
            .await? as usize)
    }

    async fn redemption_by_key(&self, key: &str) -> Result<Option<Redemption>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {REDEMPTION_COLS} FROM loyalty_redemptions WHERE idempotency_key = $1"
                ),
                &[&key],
            )
            .await?
            .as_ref()
            .map(redemption))
    }

    async fn redemptions(&self, members: &[ProfileId], limit: usize) -> Result<Vec<Redemption>> {
        Ok(self
            .client()
            .await?
            .query(
                &format!("SELECT {REDEMPTION_COLS} FROM loyalty_redemptions WHERE profile_id = ANY($1) ORDER BY id DESC LIMIT $2"),
                &[&members, &(limit as i64)],
            )
            .await?
            .iter()
            .map(redemption)
            .collect())
    }

    async fn loyalty_totals(&self, now: Millis, since: Millis) -> Result<LoyaltyTotals> {
        let c = self.client().await?;
        let r = c
            .query_one(
                "SELECT coalesce(sum(remaining), 0)::bigint, coalesce(sum(CASE WHEN unlock_at > $1 THEN remaining ELSE 0 END), 0)::bigint,
                 count(DISTINCT profile_id)
                 FROM loyalty_lots WHERE remaining > 0 AND (expires_at IS NULL OR expires_at > $1)",
                &[&now],
            )
            .await?;
        let daily = c
            .query(
                "SELECT (at / 86400000) * 86400000 AS day, sum(CASE WHEN kind = 'earn' THEN amount ELSE 0 END)::bigint,
                 sum(CASE WHEN kind = 'spend' THEN -amount ELSE 0 END)::bigint
                 FROM loyalty_entries WHERE at >= $1 GROUP BY day ORDER BY day",
                &[&since],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let tiers = c
            .query(
                "SELECT tier, count(*) FROM loyalty_tiers GROUP BY tier ORDER BY tier",
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok(LoyaltyTotals {
            outstanding: r.get(0),
            pending: r.get(1),
            holders: r.get(2),
            daily,
            tiers,
        })
    }
}
