//! Ethereum JSON-RPC over HTTP: the connector to any EVM chain. Only the calls Rapport
//! makes, with JSON-RPC batches where one round trip can carry many (block headers).
//! Errors never carry the node's URL, which often holds a provider's API key.

use alloy_primitives::{Address, B256};
use serde_json::{json, Value};
use thiserror::Error;

use crate::abi::Log;

#[derive(Debug, Error)]
pub enum RpcError {
    #[error("the node could not be reached: {0}")]
    Transport(String),
    #[error("the node answered error {code}: {message}")]
    Node { code: i64, message: String },
    #[error("the node's answer could not be read: {0}")]
    Decode(String),
}

pub type Result<T> = std::result::Result<T, RpcError>;

#[derive(Clone)]
pub struct Rpc {
    url: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rpc(…)")
    }
}

/// What Rapport reads of a block header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub number: u64,
    pub hash: B256,
    pub parent_hash: B256,
    /// Seconds since the epoch.
    pub timestamp: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub success: bool,
    pub block_number: u64,
    pub block_hash: B256,
    pub gas_used: u64,
}

fn decode_err(what: &str) -> RpcError {
    RpcError::Decode(what.to_string())
}

pub fn quantity(v: &Value) -> Result<u64> {
    let s = v
        .as_str()
        .ok_or_else(|| decode_err("a quantity is not a string"))?;
    u64::from_str_radix(s.trim_start_matches("0x"), 16)
        .map_err(|_| decode_err("a quantity is not hex"))
}

fn hash(v: &Value) -> Result<B256> {
    v.as_str()
        .and_then(|s| s.parse::<B256>().ok())
        .ok_or_else(|| decode_err("a hash is not 32 bytes of hex"))
}

fn bytes(v: &Value) -> Result<Vec<u8>> {
    let s = v
        .as_str()
        .ok_or_else(|| decode_err("data is not a string"))?;
    alloy_primitives::hex::decode(s).map_err(|_| decode_err("data is not hex"))
}

fn hex_q(n: u64) -> String {
    format!("0x{n:x}")
}

fn parse_log(v: &Value) -> Result<Log> {
    Ok(Log {
        address: v["address"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| decode_err("a log's address"))?,
        topics: v["topics"]
            .as_array()
            .ok_or_else(|| decode_err("a log's topics"))?
            .iter()
            .map(hash)
            .collect::<Result<_>>()?,
        data: bytes(&v["data"])?,
        block_number: quantity(&v["blockNumber"])?,
        block_hash: hash(&v["blockHash"])?,
        tx_hash: hash(&v["transactionHash"])?,
        log_index: quantity(&v["logIndex"])?,
        removed: v["removed"].as_bool().unwrap_or(false),
    })
}

fn parse_header(v: &Value) -> Result<Header> {
    Ok(Header {
        number: quantity(&v["number"])?,
        hash: hash(&v["hash"])?,
        parent_hash: hash(&v["parentHash"])?,
        timestamp: quantity(&v["timestamp"])?,
    })
}

impl Rpc {
    pub fn new(url: &str) -> Self {
        Rpc {
            url: url.to_string(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
        }
    }

    async fn post(&self, body: Value) -> Result<Value> {
        let resp = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| RpcError::Transport(e.without_url().to_string()))?;
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .map_err(|e| RpcError::Transport(format!("HTTP {status}: {}", e.without_url())))?;
        Ok(v)
    }

    fn result(mut v: Value) -> Result<Value> {
        if let Some(e) = v.get("error") {
            return Err(RpcError::Node {
                code: e["code"].as_i64().unwrap_or(0),
                message: e["message"].as_str().unwrap_or("").to_string(),
            });
        }
        Ok(v["result"].take())
    }

    pub async fn call(&self, method: &str, params: Value) -> Result<Value> {
        Self::result(
            self.post(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
                .await?,
        )
    }

    /// Several calls in one JSON-RPC batch; results in the order of `calls`.
    pub async fn batch(&self, calls: &[(&str, Value)]) -> Result<Vec<Result<Value>>> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let body: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (m, p))| json!({"jsonrpc": "2.0", "id": i, "method": m, "params": p}))
            .collect();
        let v = self.post(Value::Array(body)).await?;
        let arr = match v {
            Value::Array(a) => a,
            // A node that refuses batches answers with one error object.
            other => {
                return Err(Self::result(other)
                    .err()
                    .unwrap_or_else(|| decode_err("batch")))
            }
        };
        let mut out: Vec<Option<Result<Value>>> = (0..calls.len()).map(|_| None).collect();
        for item in arr {
            let id = item["id"].as_u64().map(|i| i as usize);
            if let Some(slot) = id.and_then(|i| out.get_mut(i)) {
                *slot = Some(Self::result(item));
            }
        }
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(decode_err("a batch answer is missing"))))
            .collect())
    }

    pub async fn chain_id(&self) -> Result<u64> {
        quantity(&self.call("eth_chainId", json!([])).await?)
    }

    pub async fn block_number(&self) -> Result<u64> {
        quantity(&self.call("eth_blockNumber", json!([])).await?)
    }

    /// `Transfer`-shaped logs (`topic0`) of `contracts` in blocks `from..=to`.
    pub async fn get_logs(
        &self,
        from: u64,
        to: u64,
        contracts: &[Address],
        topic0: B256,
    ) -> Result<Vec<Log>> {
        let v = self
            .call(
                "eth_getLogs",
                json!([{"fromBlock": hex_q(from), "toBlock": hex_q(to), "address": contracts, "topics": [topic0]}]),
            )
            .await?;
        v.as_array()
            .ok_or_else(|| decode_err("eth_getLogs did not answer a list"))?
            .iter()
            .map(parse_log)
            .collect()
    }

    /// Headers of the given blocks in one batch (`None`: the node has no such block).
    pub async fn headers(&self, numbers: &[u64]) -> Result<Vec<Option<Header>>> {
        let calls: Vec<(&str, Value)> = numbers
            .iter()
            .map(|n| ("eth_getBlockByNumber", json!([hex_q(*n), false])))
            .collect();
        let mut out = Vec::with_capacity(numbers.len());
        // Batches of a few hundred keep each answer small.
        for chunk in calls.chunks(500) {
            for r in self.batch(chunk).await? {
                let v = r?;
                out.push(if v.is_null() {
                    None
                } else {
                    Some(parse_header(&v)?)
                });
            }
        }
        Ok(out)
    }

    pub async fn nonce(&self, a: &Address) -> Result<u64> {
        quantity(
            &self
                .call("eth_getTransactionCount", json!([a, "pending"]))
                .await?,
        )
    }

    /// (max fee per gas, max priority fee per gas) for an EIP-1559 transaction: twice
    /// the latest base fee plus the tip, as wallets do.
    pub async fn fees(&self) -> Result<(u128, u128)> {
        let r = self
            .batch(&[
                ("eth_getBlockByNumber", json!(["latest", false])),
                ("eth_maxPriorityFeePerGas", json!([])),
            ])
            .await?;
        let mut it = r.into_iter();
        let block = it.next().ok_or_else(|| decode_err("fees"))??;
        let base = quantity(&block["baseFeePerGas"]).unwrap_or(1_000_000_000) as u128;
        let tip = it
            .next()
            .and_then(|r| r.ok())
            .and_then(|v| quantity(&v).ok())
            .unwrap_or(1_000_000_000) as u128;
        Ok((2 * base + tip, tip))
    }

    pub async fn estimate_gas(&self, from: &Address, to: &Address, data: &[u8]) -> Result<u64> {
        quantity(
            &self
                .call(
                    "eth_estimateGas",
                    json!([{"from": from, "to": to, "data": format!("0x{}", alloy_primitives::hex::encode(data))}]),
                )
                .await?,
        )
    }

    pub async fn send_raw(&self, raw: &[u8]) -> Result<B256> {
        hash(
            &self
                .call(
                    "eth_sendRawTransaction",
                    json!([format!("0x{}", alloy_primitives::hex::encode(raw))]),
                )
                .await?,
        )
    }

    pub async fn receipt(&self, tx: &B256) -> Result<Option<Receipt>> {
        let v = self.call("eth_getTransactionReceipt", json!([tx])).await?;
        if v.is_null() {
            return Ok(None);
        }
        Ok(Some(Receipt {
            success: quantity(&v["status"])? == 1,
            block_number: quantity(&v["blockNumber"])?,
            block_hash: hash(&v["blockHash"])?,
            gas_used: quantity(&v["gasUsed"]).unwrap_or(0),
        }))
    }

    /// The deployed contract's address from a receipt (`contractAddress`).
    pub async fn contract_address(&self, tx: &B256) -> Result<Option<Address>> {
        let v = self.call("eth_getTransactionReceipt", json!([tx])).await?;
        Ok(v["contractAddress"].as_str().and_then(|s| s.parse().ok()))
    }

    /// `eth_call` returning the raw bytes.
    pub async fn eth_call(&self, to: &Address, data: &[u8]) -> Result<Vec<u8>> {
        bytes(
            &self
                .call(
                    "eth_call",
                    json!([{"to": to, "data": format!("0x{}", alloy_primitives::hex::encode(data))}, "latest"]),
                )
                .await?,
        )
    }
}
