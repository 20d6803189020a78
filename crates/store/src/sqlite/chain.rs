//! SQLite side of the on-chain data: chains, contracts, logs, holdings, nonces, rewards.

use super::SqliteStore;
use crate::chain::*;
use crate::sql;
use crate::{Result, StoreError};
use async_trait::async_trait;
use rapport_domain::time::Millis;
use rusqlite::{params, OptionalExtension, Transaction};

const CHAIN_COLS: &str = "id, name, rpc_url, confirmations, start_block, batch_blocks, brand_wallets, enabled, cursor_block, cursor_hash, head_block, synced_at, last_error, created_at, updated_at";
const HOLD_COLS: &str = "chain_id, contract, wallet, symbol, standard, balance, amount, token_ids, held_since, from_brand, from_brand_amount, first_received_at, last_activity_at, updated_at";
const LOG_COLS: &str = "chain_id, tx_hash, log_index, block_number, block_hash, contract, standard, from_wallet, to_wallet, value, occurred_at, removed";
const REWARD_COLS: &str = "id, idempotency_key, profile_id, chain_id, contract, wallet, kind, amount, raw_amount, status, tx_hash, raw_tx, nonce, attempts, last_error, source, block_number, created_at, updated_at";

fn list(s: String) -> Vec<String> {
    serde_json::from_str(&s).unwrap_or_default()
}

fn chain(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChainRow> {
    Ok(ChainRow {
        id: r.get(0)?,
        name: r.get(1)?,
        rpc_url: r.get(2)?,
        confirmations: r.get(3)?,
        start_block: r.get(4)?,
        batch_blocks: r.get(5)?,
        brand_wallets: list(r.get(6)?),
        enabled: r.get::<_, i64>(7)? != 0,
        cursor_block: r.get(8)?,
        cursor_hash: r.get(9)?,
        head_block: r.get(10)?,
        synced_at: r.get(11)?,
        last_error: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
    })
}

fn holding(r: &rusqlite::Row<'_>) -> rusqlite::Result<HoldingRow> {
    Ok(HoldingRow {
        chain_id: r.get(0)?,
        contract: r.get(1)?,
        wallet: r.get(2)?,
        symbol: r.get(3)?,
        standard: r.get(4)?,
        balance: r.get(5)?,
        amount: r.get(6)?,
        token_ids: list(r.get(7)?),
        held_since: r.get(8)?,
        from_brand: r.get(9)?,
        from_brand_amount: r.get(10)?,
        first_received_at: r.get(11)?,
        last_activity_at: r.get(12)?,
        updated_at: r.get(13)?,
    })
}

fn log(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogRow> {
    Ok(LogRow {
        chain_id: r.get(0)?,
        tx_hash: r.get(1)?,
        log_index: r.get(2)?,
        block_number: r.get(3)?,
        block_hash: r.get(4)?,
        contract: r.get(5)?,
        standard: r.get(6)?,
        from_wallet: r.get(7)?,
        to_wallet: r.get(8)?,
        value: r.get(9)?,
        occurred_at: r.get(10)?,
        removed: r.get::<_, i64>(11)? != 0,
    })
}

fn reward(r: &rusqlite::Row<'_>) -> rusqlite::Result<RewardRow> {
    Ok(RewardRow {
        id: r.get(0)?,
        idempotency_key: r.get(1)?,
        profile_id: r.get(2)?,
        chain_id: r.get(3)?,
        contract: r.get(4)?,
        wallet: r.get(5)?,
        kind: r.get(6)?,
        amount: r.get(7)?,
        raw_amount: r.get(8)?,
        status: r.get(9)?,
        tx_hash: r.get(10)?,
        raw_tx: r.get(11)?,
        nonce: r.get(12)?,
        attempts: r.get(13)?,
        last_error: r.get(14)?,
        source: r.get(15)?,
        block_number: r.get(16)?,
        created_at: r.get(17)?,
        updated_at: r.get(18)?,
    })
}

fn upsert_holdings(tx: &Transaction<'_>, rows: &[HoldingRow]) -> Result<()> {
    let mut st = tx.prepare_cached(&format!(
        "INSERT INTO holdings ({HOLD_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (chain_id, contract, wallet) DO UPDATE SET balance = excluded.balance, amount = excluded.amount,
           token_ids = excluded.token_ids, held_since = excluded.held_since, from_brand = excluded.from_brand,
           from_brand_amount = excluded.from_brand_amount, first_received_at = excluded.first_received_at,
           last_activity_at = excluded.last_activity_at, updated_at = excluded.updated_at, symbol = excluded.symbol"
    ))?;
    for h in rows {
        st.execute(params![
            h.chain_id,
            h.contract,
            h.wallet,
            h.symbol,
            h.standard,
            h.balance,
            h.amount,
            serde_json::to_string(&h.token_ids).unwrap_or_default(),
            h.held_since,
            h.from_brand,
            h.from_brand_amount,
            h.first_received_at,
            h.last_activity_at,
            h.updated_at
        ])?;
    }
    Ok(())
}

#[async_trait]
impl ChainStore for SqliteStore {
    async fn chains(&self) -> Result<Vec<crate::ChainRow>> {
        self.read(|c| {
            Ok(
                c.prepare_cached(&format!("SELECT {CHAIN_COLS} FROM chains ORDER BY id"))?
                    .query_map([], chain)?
                    .collect::<std::result::Result<_, _>>()?,
            )
        })
        .await
    }

    async fn upsert_chain(&self, c: crate::ChainRow) -> Result<()> {
        let r = c;
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO chains (id, name, rpc_url, confirmations, start_block, batch_blocks, brand_wallets, enabled, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, rpc_url = excluded.rpc_url, confirmations = excluded.confirmations,
                   start_block = excluded.start_block, batch_blocks = excluded.batch_blocks, brand_wallets = excluded.brand_wallets,
                   enabled = excluded.enabled, updated_at = excluded.updated_at",
                params![r.id, r.name, r.rpc_url, r.confirmations, r.start_block, r.batch_blocks,
                    serde_json::to_string(&r.brand_wallets).unwrap_or_default(), r.enabled as i64, r.updated_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn delete_chain(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write(move |tx| {
            let n = tx.execute(sql::chain::DELETE_CHAIN, [&id])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("chain {id}")));
            }
            for t in ["chain_contracts", "chain_blocks", "chain_logs", "holdings"] {
                tx.execute(&format!("DELETE FROM {t} WHERE chain_id = ?1"), [&id])?;
            }
            Ok(())
        })
        .await
    }

    async fn set_chain_status(
        &self,
        id: &str,
        head: Option<i64>,
        error: Option<String>,
        at: Millis,
    ) -> Result<()> {
        let id = id.to_string();
        self.write(move |tx| {
            tx.execute(
                "UPDATE chains SET head_block = coalesce(?2, head_block), last_error = ?3, synced_at = ?4 WHERE id = ?1",
                params![id, head, error, at],
            )?;
            Ok(())
        })
        .await
    }

    async fn contracts(&self) -> Result<Vec<crate::ContractRow>> {
        self.read(|c| {
            Ok(c.prepare_cached(sql::chain::CONTRACTS)?
                .query_map([], |r| {
                    Ok(ContractRow {
                        chain_id: r.get(0)?,
                        address: r.get(1)?,
                        standard: r.get(2)?,
                        symbol: r.get(3)?,
                        name: r.get(4)?,
                        decimals: r.get(5)?,
                        brand_owned: r.get::<_, i64>(6)? != 0,
                        created_at: r.get(7)?,
                    })
                })?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn upsert_contract(&self, c: crate::ContractRow) -> Result<()> {
        let r = c;
        self.write(move |tx| {
            tx.execute(
                sql::chain::UPSERT_CONTRACT,
                params![
                    r.chain_id,
                    r.address,
                    r.standard,
                    r.symbol,
                    r.name,
                    r.decimals,
                    r.brand_owned as i64,
                    r.created_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn chain_blocks(&self, chain: &str, limit: usize) -> Result<Vec<(i64, String)>> {
        let chain = chain.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(sql::chain::CHAIN_BLOCKS)?
                .query_map(params![chain, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn holdings_get(
        &self,
        chain: &str,
        keys: Vec<(String, String)>,
    ) -> Result<Vec<crate::HoldingRow>> {
        let chain = chain.to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {HOLD_COLS} FROM holdings WHERE chain_id = ?1 AND contract = ?2 AND wallet = ?3"
            ))?;
            let mut out = Vec::new();
            for (contract, wallet) in &keys {
                if let Some(h) = st.query_row(params![chain, contract, wallet], holding).optional()? {
                    out.push(h);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn apply_chain_batch(&self, b: crate::ChainBatch) -> Result<()> {
        self.write(move |tx| {
            {
                let mut st = tx.prepare_cached(&format!(
                    "INSERT INTO chain_logs ({LOG_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0)
                     ON CONFLICT (chain_id, tx_hash, log_index) DO UPDATE SET block_number = excluded.block_number,
                       block_hash = excluded.block_hash, occurred_at = excluded.occurred_at, removed = 0"
                ))?;
                for l in &b.logs {
                    st.execute(params![l.chain_id, l.tx_hash, l.log_index, l.block_number, l.block_hash, l.contract,
                        l.standard, l.from_wallet, l.to_wallet, l.value, l.occurred_at])?;
                }
            }
            upsert_holdings(tx, &b.holdings)?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT OR REPLACE INTO chain_blocks (chain_id, number, hash, timestamp) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (n, h, t) in &b.blocks {
                    st.execute(params![b.chain_id, n, h, t])?;
                }
                // Only recent hashes are needed to find a fork.
                tx.prepare_cached(sql::chain::FORGET_OLD_BLOCKS)?
                    .execute(params![b.chain_id, b.cursor.0 - 2048])?;
            }
            super::insert_events_ignoring_known(tx, &b.events, "chain")?;
            tx.prepare_cached(
                "UPDATE chains SET cursor_block = ?2, cursor_hash = ?3, head_block = ?4, synced_at = ?5, last_error = NULL WHERE id = ?1",
            )?
            .execute(params![b.chain_id, b.cursor.0, b.cursor.1, b.head, b.at])?;
            Ok(())
        })
        .await
    }

    async fn chain_logs_after(&self, chain: &str, block: i64) -> Result<Vec<crate::LogRow>> {
        let chain = chain.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {LOG_COLS} FROM chain_logs WHERE chain_id = ?1 AND block_number > ?2 AND removed = 0 ORDER BY block_number, log_index"
            ))?
            .query_map(params![chain, block], log)?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn chain_logs_for(
        &self,
        chain: &str,
        keys: Vec<(String, String)>,
        block: i64,
    ) -> Result<Vec<crate::LogRow>> {
        let chain = chain.to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {LOG_COLS} FROM chain_logs WHERE chain_id = ?1 AND contract = ?2 AND (from_wallet = ?3 OR to_wallet = ?3)
                 AND block_number <= ?4 AND removed = 0"
            ))?;
            let mut out: Vec<LogRow> = Vec::new();
            for (contract, wallet) in &keys {
                out.extend(
                    st.query_map(params![chain, contract, wallet, block], log)?
                        .collect::<std::result::Result<Vec<_>, _>>()?,
                );
            }
            out.sort_by(|a, b| (a.block_number, a.log_index, &a.tx_hash).cmp(&(b.block_number, b.log_index, &b.tx_hash)));
            out.dedup_by(|a, b| a.tx_hash == b.tx_hash && a.log_index == b.log_index);
            Ok(out)
        })
        .await
    }

    async fn rollback_chain(&self, r: crate::ChainRollback) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE chain_logs SET removed = 1 WHERE chain_id = ?1 AND block_number > ?2",
                params![r.chain_id, r.ancestor.0],
            )?;
            {
                let mut st = tx.prepare_cached("DELETE FROM events WHERE message_id = ?1")?;
                for m in &r.retract_message_ids {
                    st.execute([m])?;
                }
            }
            upsert_holdings(tx, &r.holdings)?;
            tx.execute(
                sql::chain::FORGET_BLOCKS_AFTER,
                params![r.chain_id, r.ancestor.0],
            )?;
            tx.execute(
                "UPDATE chains SET cursor_block = ?2, cursor_hash = ?3, synced_at = ?4 WHERE id = ?1",
                params![r.chain_id, r.ancestor.0, r.ancestor.1, r.at],
            )?;
            Ok(())
        })
        .await
    }

    async fn wallet_holdings(&self, wallets: Vec<String>) -> Result<Vec<crate::HoldingRow>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {HOLD_COLS} FROM holdings WHERE wallet = ?1 ORDER BY chain_id, symbol"
            ))?;
            let mut out = Vec::new();
            for w in &wallets {
                out.extend(
                    st.query_map([w], holding)?
                        .collect::<std::result::Result<Vec<_>, _>>()?,
                );
            }
            Ok(out)
        })
        .await
    }

    async fn holders(
        &self,
        chain: &str,
        contract: &str,
        limit: usize,
    ) -> Result<Vec<crate::HoldingRow>> {
        let chain = chain.to_string();
        let contract = contract.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {HOLD_COLS} FROM holdings WHERE chain_id = ?1 AND contract = ?2 AND amount > 0 ORDER BY amount DESC, wallet LIMIT ?3"
            ))?
            .query_map(params![chain, contract, limit as i64], holding)?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn create_siwe_nonce(&self, nonce: &str, at: Millis, expires: Millis) -> Result<()> {
        let nonce = nonce.to_string();
        self.write(move |tx| {
            tx.execute(sql::chain::INSERT_NONCE, params![nonce, at, expires])?;
            // Old nonces are of no use to anyone.
            tx.execute(sql::chain::DELETE_EXPIRED_NONCES, [at - 86_400_000])?;
            Ok(())
        })
        .await
    }

    async fn use_siwe_nonce(&self, nonce: &str, at: Millis) -> Result<bool> {
        let nonce = nonce.to_string();
        self.write(move |tx| {
            Ok(tx.execute(
                "UPDATE siwe_nonces SET used_at = ?2 WHERE nonce = ?1 AND used_at IS NULL AND expires_at >= ?2",
                params![nonce, at],
            )? == 1)
        })
        .await
    }

    async fn create_reward(&self, r: crate::RewardRow) -> Result<(crate::RewardRow, bool)> {
        self.write(move |tx| {
            let n = tx.execute(
                "INSERT INTO rewards (idempotency_key, profile_id, chain_id, contract, wallet, kind, amount, raw_amount, status, attempts, source, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11, ?11) ON CONFLICT (idempotency_key) DO NOTHING",
                params![r.idempotency_key, r.profile_id, r.chain_id, r.contract, r.wallet, r.kind, r.amount, r.raw_amount, r.status, r.source, r.created_at],
            )?;
            let row = tx
                .prepare_cached(&format!("SELECT {REWARD_COLS} FROM rewards WHERE idempotency_key = ?1"))?
                .query_row([&r.idempotency_key], reward)?;
            Ok((row, n == 1))
        })
        .await
    }

    async fn update_reward(&self, r: crate::RewardRow) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE rewards SET status = ?2, tx_hash = ?3, raw_tx = ?4, nonce = ?5, attempts = ?6, last_error = ?7, block_number = ?8, updated_at = ?9 WHERE id = ?1",
                params![r.id, r.status, r.tx_hash, r.raw_tx, r.nonce, r.attempts, r.last_error, r.block_number, r.updated_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn rewards(&self, status: Option<String>, limit: usize) -> Result<Vec<crate::RewardRow>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {REWARD_COLS} FROM rewards WHERE ?1 IS NULL OR status = ?1 ORDER BY id DESC LIMIT ?2"
            ))?
            .query_map(params![status, limit as i64], reward)?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn reward(&self, id: i64) -> Result<crate::RewardRow> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {REWARD_COLS} FROM rewards WHERE id = ?1"))?
                .query_row([id], reward)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("reward {id}")))
        })
        .await
    }
}
