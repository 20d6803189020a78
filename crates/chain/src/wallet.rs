//! The brand's hot wallet: a private key that signs EIP-1559 transactions for token
//! rewards. The key is read from a file or an environment variable, held in memory
//! only, and never printed (`Debug` shows the address).

use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, TxKind, B256, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WalletError {
    #[error("{0}")]
    Key(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

#[derive(Clone)]
pub struct HotWallet {
    signer: PrivateKeySigner,
}

impl std::fmt::Debug for HotWallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HotWallet({})", self.address())
    }
}

/// A transaction to sign: a call of `to` with `data`.
#[derive(Debug, Clone)]
pub struct Call {
    pub chain_id: u64,
    pub nonce: u64,
    pub to: Address,
    pub data: Vec<u8>,
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

impl HotWallet {
    /// From a hex private key (with or without 0x). The error never repeats the input.
    pub fn from_hex(key: &str) -> Result<Self, WalletError> {
        let signer: PrivateKeySigner = key.trim().parse().map_err(|_| {
            WalletError::Key("the hot wallet key is not a 32-byte hex private key".into())
        })?;
        Ok(HotWallet { signer })
    }

    /// `file:/path` (the file holds the hex key) or `env:NAME`.
    pub fn load(spec: &str) -> Result<Self, WalletError> {
        if let Some(path) = spec.strip_prefix("file:") {
            let s = std::fs::read_to_string(path).map_err(|e| {
                WalletError::Key(format!("the hot wallet key file could not be read: {e}"))
            })?;
            Self::from_hex(&s)
        } else if let Some(name) = spec.strip_prefix("env:") {
            let s = std::env::var(name).map_err(|_| {
                WalletError::Key(format!("the environment variable {name} is not set"))
            })?;
            Self::from_hex(&s)
        } else {
            Err(WalletError::Key(
                "the hot wallet key must be given as file:/path or env:NAME, never inline".into(),
            ))
        }
    }

    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The signed transaction's bytes (EIP-2718) and hash.
    pub fn sign(&self, c: &Call) -> Result<(Vec<u8>, B256), WalletError> {
        let tx = TxEip1559 {
            chain_id: c.chain_id,
            nonce: c.nonce,
            gas_limit: c.gas_limit,
            max_fee_per_gas: c.max_fee_per_gas,
            max_priority_fee_per_gas: c.max_priority_fee_per_gas,
            to: TxKind::Call(c.to),
            value: U256::ZERO,
            access_list: Default::default(),
            input: c.data.clone().into(),
        };
        self.sign_tx(tx)
    }

    /// A contract deployment (tests and benchmarks deploy their tokens this way).
    pub fn sign_deploy(&self, c: &Call) -> Result<(Vec<u8>, B256), WalletError> {
        let tx = TxEip1559 {
            chain_id: c.chain_id,
            nonce: c.nonce,
            gas_limit: c.gas_limit,
            max_fee_per_gas: c.max_fee_per_gas,
            max_priority_fee_per_gas: c.max_priority_fee_per_gas,
            to: TxKind::Create,
            value: U256::ZERO,
            access_list: Default::default(),
            input: c.data.clone().into(),
        };
        self.sign_tx(tx)
    }

    fn sign_tx(&self, tx: TxEip1559) -> Result<(Vec<u8>, B256), WalletError> {
        let sig = self
            .signer
            .sign_hash_sync(&tx.signature_hash())
            .map_err(|e| WalletError::Sign(e.to_string()))?;
        let signed = tx.into_signed(sig);
        Ok((signed.encoded_2718(), *signed.hash()))
    }

    /// EIP-191 personal signature (SIWE in tests and the CLI).
    pub fn sign_message(&self, msg: &str) -> Result<String, WalletError> {
        let sig = self
            .signer
            .sign_message_sync(msg.as_bytes())
            .map_err(|e| WalletError::Sign(e.to_string()))?;
        Ok(format!(
            "0x{}",
            alloy_primitives::hex::encode(sig.as_bytes())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_never_shows() {
        let k = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
        let w = HotWallet::from_hex(k).unwrap();
        let dbg = format!("{w:?}");
        assert!(!dbg.contains("59c6995e"), "{dbg}");
        assert_eq!(
            w.address().to_checksum(None),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        );
        let e = HotWallet::from_hex("0xnot-a-key-59c6995e")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("59c6995e"));
        assert!(HotWallet::load(k).is_err(), "inline keys are refused");
    }
}
