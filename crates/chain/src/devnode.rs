//! A local EVM node for tests and benchmarks: ganache from the npm registry (installed
//! into `tools/evm` by `npm ci` on first use), the repository's Solidity contracts
//! compiled by solc-js, and helpers to deploy and transact with a real signed
//! transaction. Not used by the product itself.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256};
use serde_json::{json, Value};

use crate::rpc::{Receipt, Rpc};
use crate::wallet::{Call, HotWallet};

/// Well-known development keys (Hardhat's first accounts); funded by the node.
pub const KEYS: [&str; 3] = [
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
];

pub const CHAIN_ID: u64 = 31337;

fn tools() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/evm")
}

/// Installs the node tools once (`npm ci`), if they are not there yet.
pub fn ensure_tools() -> Result<PathBuf, String> {
    let dir = tools();
    if !dir.join("node_modules/.bin/ganache").exists() {
        let out = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .map_err(|e| format!("npm could not run: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "npm ci failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(dir)
}

/// A compiled contract.
pub struct Artifact {
    pub abi: Value,
    pub bytecode: Vec<u8>,
}

/// Compiles `contracts/*.sol` with solc-js.
pub fn compile() -> Result<HashMap<String, Artifact>, String> {
    let dir = ensure_tools()?;
    let out = std::process::Command::new("node")
        .arg("compile.js")
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("node could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "solc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: HashMap<String, Value> =
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    v.into_iter()
        .map(|(k, c)| {
            let code = c["bytecode"].as_str().unwrap_or("");
            let bytecode = alloy_primitives::hex::decode(code).map_err(|e| e.to_string())?;
            Ok((
                k,
                Artifact {
                    abi: c["abi"].clone(),
                    bytecode,
                },
            ))
        })
        .collect()
}

/// A running ganache; killed when dropped.
pub struct DevNode {
    child: tokio::process::Child,
    pub url: String,
    pub rpc: Rpc,
}

impl Drop for DevNode {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl DevNode {
    /// Starts a node on a free local port with `KEYS` funded; instant mining.
    pub async fn start() -> Result<DevNode, String> {
        let dir = ensure_tools()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let accounts: Vec<String> = KEYS
            .iter()
            .map(|k| format!("--wallet.accounts={k},0x3635C9ADC5DEA0000000"))
            .collect();
        let child = tokio::process::Command::new("node")
            .arg(dir.join("node_modules/ganache/dist/node/cli.js"))
            .args([
                "--server.host=127.0.0.1",
                &format!("--server.port={port}"),
                &format!("--chain.chainId={CHAIN_ID}"),
                "--miner.blockGasLimit=0x3B9ACA00",
                "--chain.allowUnlimitedContractSize=true",
                "--logging.quiet=true",
            ])
            .args(&accounts)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("ganache could not start: {e}"))?;
        let url = format!("http://127.0.0.1:{port}");
        let rpc = Rpc::new(&url);
        let node = DevNode { child, url, rpc };
        let start = Instant::now();
        while node.rpc.chain_id().await.is_err() {
            if start.elapsed() > Duration::from_secs(60) {
                return Err("ganache did not answer within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(node)
    }

    pub fn wallet(i: usize) -> HotWallet {
        HotWallet::from_hex(KEYS[i]).expect("a development key")
    }

    async fn send(
        &self,
        w: &HotWallet,
        to: Option<Address>,
        data: Vec<u8>,
    ) -> Result<B256, String> {
        let nonce = self
            .rpc
            .nonce(&w.address())
            .await
            .map_err(|e| e.to_string())?;
        let call = Call {
            chain_id: CHAIN_ID,
            nonce,
            to: to.unwrap_or(Address::ZERO),
            data,
            gas_limit: 900_000_000,
            max_fee_per_gas: 20_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
        };
        let (raw, _) = match to {
            Some(_) => w.sign(&call),
            None => w.sign_deploy(&call),
        }
        .map_err(|e| e.to_string())?;
        self.rpc.send_raw(&raw).await.map_err(|e| e.to_string())
    }

    async fn wait(&self, tx: &B256) -> Result<Receipt, String> {
        let start = Instant::now();
        loop {
            if let Some(r) = self.rpc.receipt(tx).await.map_err(|e| e.to_string())? {
                return Ok(r);
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err("no receipt within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Deploys `bytecode ++ args` from wallet `w`; returns the contract address.
    pub async fn deploy(
        &self,
        w: &HotWallet,
        mut code: Vec<u8>,
        args: &[u8],
    ) -> Result<Address, String> {
        code.extend_from_slice(args);
        let tx = self.send(w, None, code).await?;
        self.wait(&tx).await?;
        self.rpc
            .contract_address(&tx)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no contract address".into())
    }

    /// Sends a signed call and waits for its receipt (which must succeed).
    pub async fn transact(
        &self,
        w: &HotWallet,
        to: Address,
        data: Vec<u8>,
    ) -> Result<Receipt, String> {
        let tx = self.send(w, Some(to), data).await?;
        let r = self.wait(&tx).await?;
        if !r.success {
            return Err("the transaction reverted".into());
        }
        Ok(r)
    }

    /// `evm_snapshot`: an id to revert to (which re-orgs what came after).
    pub async fn snapshot(&self) -> Result<String, String> {
        let v = self
            .rpc
            .call("evm_snapshot", json!([]))
            .await
            .map_err(|e| e.to_string())?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub async fn revert(&self, id: &str) -> Result<(), String> {
        let v = self
            .rpc
            .call("evm_revert", json!([id]))
            .await
            .map_err(|e| e.to_string())?;
        if v.as_bool() != Some(true) {
            return Err("evm_revert refused".into());
        }
        Ok(())
    }

    /// Mines `n` empty blocks.
    pub async fn mine(&self, n: u64) -> Result<(), String> {
        for _ in 0..n {
            self.rpc
                .call("evm_mine", json!([]))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// `balanceOf(owner)` of a token, read from the chain.
    pub async fn balance_of(
        &self,
        token: Address,
        owner: Address,
    ) -> Result<alloy_primitives::U256, String> {
        let mut data = alloy_primitives::keccak256(b"balanceOf(address)")[..4].to_vec();
        data.extend_from_slice(&[0u8; 12]);
        data.extend_from_slice(owner.as_slice());
        let out = self
            .rpc
            .eth_call(&token, &data)
            .await
            .map_err(|e| e.to_string())?;
        Ok(alloy_primitives::U256::from_be_slice(&out))
    }
}
