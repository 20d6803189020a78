//! PostgreSQL side of the on-chain data: chains, contracts, logs, holdings, nonces, rewards.

use super::{writer_lock, PgStore, Pipeline};
use crate::chain::*;
use crate::sql;
use crate::{Result, StoreError};
use async_trait::async_trait;
use rapport_domain::time::Millis;
use tokio_postgres::{Row, Transaction};

const CHAIN_COLS: &str = "id, name, rpc_url, confirmations, start_block, batch_blocks, brand_wallets, enabled, cursor_block, cursor_hash, head_block, synced_at, last_error, created_at, updated_at";
const HOLD_COLS: &str = "chain_id, contract, wallet, symbol, standard, balance, amount, token_ids, held_since, from_brand, from_brand_amount, first_received_at, last_activity_at, updated_at";
const LOG_COLS: &str = "chain_id, tx_hash, log_index, block_number, block_hash, contract, standard, from_wallet, to_wallet, value, occurred_at, removed";
const REWARD_COLS: &str = "id, idempotency_key, profile_id, chain_id, contract, wallet, kind, amount, raw_amount, status, tx_hash, raw_tx, nonce, attempts, last_error, source, block_number, created_at, updated_at";

fn list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

fn chain(r: &Row) -> ChainRow {
    ChainRow {
        id: r.get(0),
        name: r.get(1),
        rpc_url: r.get(2),
        confirmations: r.get(3),
        start_block: r.get(4),
        batch_blocks: r.get(5),
        brand_wallets: list(r.get(6)),
        enabled: r.get(7),
        cursor_block: r.get(8),
        cursor_hash: r.get(9),
        head_block: r.get(10),
        synced_at: r.get(11),
        last_error: r.get(12),
        created_at: r.get(13),
        updated_at: r.get(14),
    }
}

fn holding(r: &Row) -> HoldingRow {
    HoldingRow {
        chain_id: r.get(0),
        contract: r.get(1),
        wallet: r.get(2),
        symbol: r.get(3),
        standard: r.get(4),
        balance: r.get(5),
        amount: r.get(6),
        token_ids: list(r.get(7)),
        held_since: r.get(8),
        from_brand: r.get(9),
        from_brand_amount: r.get(10),
        first_received_at: r.get(11),
        last_activity_at: r.get(12),
        updated_at: r.get(13),
    }
}

fn log(r: &Row) -> LogRow {
    LogRow {
        chain_id: r.get(0),
        tx_hash: r.get(1),
        log_index: r.get(2),
        block_number: r.get(3),
        block_hash: r.get(4),
        contract: r.get(5),
        standard: r.get(6),
        from_wallet: r.get(7),
        to_wallet: r.get(8),
        value: r.get(9),
        occurred_at: r.get(10),
        removed: r.get(11),
    }
}

fn reward(r: &Row) -> RewardRow {
    RewardRow {
        id: r.get(0),
        idempotency_key: r.get(1),
        profile_id: r.get(2),
        chain_id: r.get(3),
        contract: r.get(4),
        wallet: r.get(5),
        kind: r.get(6),
        amount: r.get(7),
        raw_amount: r.get(8),
        status: r.get(9),
        tx_hash: r.get(10),
        raw_tx: r.get(11),
        nonce: r.get(12),
        attempts: r.get(13),
        last_error: r.get(14),
        source: r.get(15),
        block_number: r.get(16),
        created_at: r.get(17),
        updated_at: r.get(18),
    }
}

async fn upsert_holdings(tx: &Transaction<'_>, rows: &[HoldingRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&HoldingRow) -> String| rows.iter().map(f).collect::<Vec<_>>();
    let opt = |f: fn(&HoldingRow) -> Option<i64>| rows.iter().map(f).collect::<Vec<_>>();
    tx.execute(
        "INSERT INTO holdings (chain_id, contract, wallet, symbol, standard, balance, amount, token_ids, held_since, from_brand, from_brand_amount, first_received_at, last_activity_at, updated_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::text[], $9::int8[], $10::text[], $11::float8[], $12::int8[], $13::int8[], $14::int8[])
         ON CONFLICT (chain_id, contract, wallet) DO UPDATE SET balance = excluded.balance, amount = excluded.amount,
           token_ids = excluded.token_ids, held_since = excluded.held_since, from_brand = excluded.from_brand,
           from_brand_amount = excluded.from_brand_amount, first_received_at = excluded.first_received_at,
           last_activity_at = excluded.last_activity_at, updated_at = excluded.updated_at, symbol = excluded.symbol",
        &[
            &col(|h| h.chain_id.clone()),
            &col(|h| h.contract.clone()),
            &col(|h| h.wallet.clone()),
            &col(|h| h.symbol.clone()),
            &col(|h| h.standard.clone()),
            &col(|h| h.balance.clone()),
            &rows.iter().map(|h| h.amount).collect::<Vec<_>>(),
            &col(|h| serde_json::to_string(&h.token_ids).unwrap_or_default()),
            &opt(|h| h.held_since),
            &col(|h| h.from_brand.clone()),
            &rows.iter().map(|h| h.from_brand_amount).collect::<Vec<_>>(),
            &opt(|h| h.first_received_at),
            &opt(|h| h.last_activity_at),
            &rows.iter().map(|h| h.updated_at).collect::<Vec<_>>(),
        ],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl ChainStore for PgStore {
    async fn chains(&self) -> Result<Vec<crate::ChainRow>> {
        let c = self.client().await?;
        Ok(
            c.query(&format!("SELECT {CHAIN_COLS} FROM chains ORDER BY id"), &[])
                .await?
                .iter()
                .map(chain)
                .collect(),
        )
    }

    async fn upsert_chain(&self, c: crate::ChainRow) -> Result<()> {
        let r = c;
        let c = self.client().await?;
        c.execute(
            "INSERT INTO chains (id, name, rpc_url, confirmations, start_block, batch_blocks, brand_wallets, enabled, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, rpc_url = excluded.rpc_url, confirmations = excluded.confirmations,
               start_block = excluded.start_block, batch_blocks = excluded.batch_blocks, brand_wallets = excluded.brand_wallets,
               enabled = excluded.enabled, updated_at = excluded.updated_at",
            &[&r.id, &r.name, &r.rpc_url, &r.confirmations, &r.start_block, &r.batch_blocks,
              &serde_json::to_string(&r.brand_wallets).unwrap_or_default(), &r.enabled, &r.updated_at],
        )
        .await?;
        Ok(())
    }

    async fn delete_chain(&self, id: &str) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let n = tx.execute(sql::chain::DELETE_CHAIN, &[&id]).await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("chain {id}")));
        }
        for t in ["chain_contracts", "chain_blocks", "chain_logs", "holdings"] {
            tx.execute(&format!("DELETE FROM {t} WHERE chain_id = $1"), &[&id])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_chain_status(
        &self,
        id: &str,
        head: Option<i64>,
        error: Option<String>,
        at: Millis,
    ) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "UPDATE chains SET head_block = coalesce($2, head_block), last_error = $3, synced_at = $4 WHERE id = $1",
            &[&id, &head, &error, &at],
        )
        .await?;
        Ok(())
    }

    async fn contracts(&self) -> Result<Vec<crate::ContractRow>> {
        let c = self.client().await?;
        Ok(c.query(sql::chain::CONTRACTS, &[])
            .await?
            .iter()
            .map(|r| ContractRow {
                chain_id: r.get(0),
                address: r.get(1),
                standard: r.get(2),
                symbol: r.get(3),
                name: r.get(4),
                decimals: r.get(5),
                brand_owned: r.get(6),
                created_at: r.get(7),
            })
            .collect())
    }

    async fn upsert_contract(&self, c: crate::ContractRow) -> Result<()> {
        let r = c;
        let c = self.client().await?;
        c.execute(
            sql::chain::UPSERT_CONTRACT,
            &[
                &r.chain_id,
                &r.address,
                &r.standard,
                &r.symbol,
                &r.name,
                &r.decimals,
                &r.brand_owned,
                &r.created_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn chain_blocks(&self, chain: &str, limit: usize) -> Result<Vec<(i64, String)>> {
        let c = self.client().await?;
        Ok(
            c.query(sql::chain::CHAIN_BLOCKS, &[&chain, &(limit as i64)])
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
        )
    }

    async fn holdings_get(
        &self,
        chain: &str,
        keys: Vec<(String, String)>,
    ) -> Result<Vec<crate::HoldingRow>> {
        let c = self.client().await?;
        let contracts: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        let wallets: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
        Ok(c.query(
            &format!(
                "SELECT {HOLD_COLS} FROM holdings h WHERE chain_id = $1 AND (contract, wallet) IN
                 (SELECT * FROM UNNEST($2::text[], $3::text[]))"
            ),
            &[&chain, &contracts, &wallets],
        )
        .await?
        .iter()
        .map(holding)
        .collect())
    }

    async fn apply_chain_batch(&self, b: crate::ChainBatch) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Timeline events are written too: follow the writers' order (see `writer_lock`).
        writer_lock(&tx).await?;
        if !b.logs.is_empty() {
            let l = &b.logs;
            let s = |f: fn(&LogRow) -> &str| l.iter().map(f).collect::<Vec<_>>();
            let i = |f: fn(&LogRow) -> i64| l.iter().map(f).collect::<Vec<_>>();
            tx.execute(
                "INSERT INTO chain_logs (chain_id, tx_hash, log_index, block_number, block_hash, contract, standard, from_wallet, to_wallet, value, occurred_at, removed)
                 SELECT c, t, li, bn, bh, ct, st, fw, tw, v, oa, false FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int8[])
                   AS x(c, t, li, bn, bh, ct, st, fw, tw, v, oa)
                 ON CONFLICT (chain_id, tx_hash, log_index) DO UPDATE SET block_number = excluded.block_number,
                   block_hash = excluded.block_hash, occurred_at = excluded.occurred_at, removed = false",
                &[
                    &s(|x| &x.chain_id),
                    &s(|x| &x.tx_hash),
                    &i(|x| x.log_index),
                    &i(|x| x.block_number),
                    &s(|x| &x.block_hash),
                    &s(|x| &x.contract),
                    &s(|x| &x.standard),
                    &s(|x| &x.from_wallet),
                    &s(|x| &x.to_wallet),
                    &s(|x| &x.value),
                    &i(|x| x.occurred_at),
                ],
            )
            .await?;
        }
        upsert_holdings(&tx, &b.holdings).await?;
        if !b.blocks.is_empty() {
            tx.execute(
                "INSERT INTO chain_blocks (chain_id, number, hash, timestamp)
                 SELECT $1, n, h, t FROM UNNEST($2::int8[], $3::text[], $4::int8[]) AS x(n, h, t)
                 ON CONFLICT (chain_id, number) DO UPDATE SET hash = excluded.hash, timestamp = excluded.timestamp",
                &[
                    &b.chain_id,
                    &b.blocks.iter().map(|x| x.0).collect::<Vec<_>>(),
                    &b.blocks.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
                    &b.blocks.iter().map(|x| x.2).collect::<Vec<_>>(),
                ],
            )
            .await?;
        }
        tx.execute(
            sql::chain::FORGET_OLD_BLOCKS,
            &[&b.chain_id, &(b.cursor.0 - 2048)],
        )
        .await?;
        let mut p = Pipeline::default();
        super::add_events_ignoring_known(&mut p, &b.events, "chain");
        p.run(&tx).await?;
        tx.execute(
            "UPDATE chains SET cursor_block = $2, cursor_hash = $3, head_block = $4, synced_at = $5, last_error = NULL WHERE id = $1",
            &[&b.chain_id, &b.cursor.0, &b.cursor.1, &b.head, &b.at],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn chain_logs_after(&self, chain: &str, block: i64) -> Result<Vec<crate::LogRow>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!("SELECT {LOG_COLS} FROM chain_logs WHERE chain_id = $1 AND block_number > $2 AND NOT removed ORDER BY block_number, log_index"),
            &[&chain, &block],
        )
        .await?
        .iter()
        .map(log)
        .collect())
    }

    async fn chain_logs_for(
        &self,
        chain: &str,
        keys: Vec<(String, String)>,
        block: i64,
    ) -> Result<Vec<crate::LogRow>> {
        let c = self.client().await?;
        let contracts: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        let wallets: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
        Ok(c.query(
            &format!(
                "SELECT {LOG_COLS} FROM chain_logs l WHERE chain_id = $1 AND block_number <= $4 AND NOT removed AND (
                   (contract, from_wallet) IN (SELECT * FROM UNNEST($2::text[], $3::text[]))
                   OR (contract, to_wallet) IN (SELECT * FROM UNNEST($2::text[], $3::text[])))
                 ORDER BY block_number, log_index, tx_hash"
            ),
            &[&chain, &contracts, &wallets, &block],
        )
        .await?
        .iter()
        .map(log)
        .collect())
    }

    async fn rollback_chain(&self, r: crate::ChainRollback) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        writer_lock(&tx).await?;
        tx.execute(
            "UPDATE chain_logs SET removed = true WHERE chain_id = $1 AND block_number > $2",
            &[&r.chain_id, &r.ancestor.0],
        )
        .await?;
        tx.execute(
            "DELETE FROM event_rows WHERE message_id = ANY($1)",
            &[&r.retract_message_ids],
        )
        .await?;
        upsert_holdings(&tx, &r.holdings).await?;
        tx.execute(
            sql::chain::FORGET_BLOCKS_AFTER,
            &[&r.chain_id, &r.ancestor.0],
        )
        .await?;
        tx.execute(
            "UPDATE chains SET cursor_block = $2, cursor_hash = $3, synced_at = $4 WHERE id = $1",
            &[&r.chain_id, &r.ancestor.0, &r.ancestor.1, &r.at],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn wallet_holdings(&self, wallets: Vec<String>) -> Result<Vec<crate::HoldingRow>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!("SELECT {HOLD_COLS} FROM holdings WHERE wallet = ANY($1) ORDER BY chain_id, symbol, wallet"),
            &[&wallets],
        )
        .await?
        .iter()
        .map(holding)
        .collect())
    }

    async fn holders(
        &self,
        chain: &str,
        contract: &str,
        limit: usize,
    ) -> Result<Vec<crate::HoldingRow>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!("SELECT {HOLD_COLS} FROM holdings WHERE chain_id = $1 AND contract = $2 AND amount > 0 ORDER BY amount DESC, wallet LIMIT $3"),
            &[&chain, &contract, &(limit as i64)],
        )
        .await?
        .iter()
        .map(holding)
        .collect())
    }

    async fn create_siwe_nonce(&self, nonce: &str, at: Millis, expires: Millis) -> Result<()> {
        let c = self.client().await?;
        c.execute(sql::chain::INSERT_NONCE, &[&nonce, &at, &expires])
            .await?;
        c.execute(sql::chain::DELETE_EXPIRED_NONCES, &[&(at - 86_400_000)])
            .await?;
        Ok(())
    }

    async fn use_siwe_nonce(&self, nonce: &str, at: Millis) -> Result<bool> {
        let c = self.client().await?;
        Ok(c.execute(
            "UPDATE siwe_nonces SET used_at = $2 WHERE nonce = $1 AND used_at IS NULL AND expires_at >= $2",
            &[&nonce, &at],
        )
        .await?
            == 1)
    }

    async fn create_reward(&self, r: crate::RewardRow) -> Result<(crate::RewardRow, bool)> {
        let c = self.client().await?;
        let n = c
            .execute(
                "INSERT INTO rewards (idempotency_key, profile_id, chain_id, contract, wallet, kind, amount, raw_amount, status, attempts, source, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $11) ON CONFLICT (idempotency_key) DO NOTHING",
                &[&r.idempotency_key, &r.profile_id, &r.chain_id, &r.contract, &r.wallet, &r.kind, &r.amount, &r.raw_amount, &r.status, &r.source, &r.created_at],
            )
            .await?;
        let row = c
            .query_one(
                &format!("SELECT {REWARD_COLS} FROM rewards WHERE idempotency_key = $1"),
                &[&r.idempotency_key],
            )
            .await?;
        Ok((reward(&row), n == 1))
    }

    async fn update_reward(&self, r: crate::RewardRow) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "UPDATE rewards SET status = $2, tx_hash = $3, raw_tx = $4, nonce = $5, attempts = $6, last_error = $7, block_number = $8, updated_at = $9 WHERE id = $1",
            &[&r.id, &r.status, &r.tx_hash, &r.raw_tx, &r.nonce, &r.attempts, &r.last_error, &r.block_number, &r.updated_at],
        )
        .await?;
        Ok(())
    }

    async fn rewards(&self, status: Option<String>, limit: usize) -> Result<Vec<crate::RewardRow>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!("SELECT {REWARD_COLS} FROM rewards WHERE $1::text IS NULL OR status = $1 ORDER BY id DESC LIMIT $2"),
            &[&status, &(limit as i64)],
        )
        .await?
        .iter()
        .map(reward)
        .collect())
    }

    async fn reward(&self, id: i64) -> Result<crate::RewardRow> {
        let c = self.client().await?;
        c.query_opt(
            &format!("SELECT {REWARD_COLS} FROM rewards WHERE id = $1"),
            &[&id],
        )
        .await?
        .map(|r| reward(&r))
        .ok_or_else(|| StoreError::NotFound(format!("reward {id}")))
    }
}
