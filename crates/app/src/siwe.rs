//! Verified wallet ownership with Sign-In with Ethereum (EIP-4361). A nonce is issued,
//! the wallet signs a message naming it, and the signature, domain, chain, times and
//! nonce are checked (a nonce works once). The wallet then joins the profile named by
//! `link_to` through the normal ingestion path (so identity resolution applies) and is
//! marked verified, with the signed message kept as proof.

use rand::distributions::Alphanumeric;
use rand::Rng;
use rapport_chain::parse_caip2;
use rapport_domain::identifier::{IdentityKey, IdentityKind};
use rapport_domain::time::{now_millis, to_datetime};
use rapport_store::{DynStore, StoreError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::ingest::Ingestor;

/// How long an issued nonce can be used.
const NONCE_TTL_MS: i64 = 10 * 60_000;

fn invalid(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::invalid(field, reason)
}

/// Issues a single-use nonce.
pub async fn nonce(store: &DynStore) -> Result<Value, StoreError> {
    let nonce: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(17)
        .map(char::from)
        .collect();
    let now = now_millis();
    store
        .create_siwe_nonce(&nonce, now, now + NONCE_TTL_MS)
        .await?;
    Ok(json!({"nonce": nonce, "expires_at": to_datetime(now + NONCE_TTL_MS)}))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyInput {
    /// The EIP-4361 message as the wallet signed it.
    pub message: String,
    /// The EIP-191 signature, 0x-prefixed hex.
    pub signature: String,
    /// The profile the wallet joins: `email:<address>` or `user_id:<id>`.
    pub link_to: String,
}

fn link_key(link_to: &str) -> Result<IdentityKey, StoreError> {
    let (kind, value) = link_to
        .split_once(':')
        .ok_or_else(|| invalid("link_to", "must be email:<address> or user_id:<id>"))?;
    let kind = match kind {
        "email" => IdentityKind::Email,
        "user_id" => IdentityKind::UserId,
        _ => {
            return Err(invalid(
                "link_to",
                "must be email:<address> or user_id:<id>",
            ))
        }
    };
    IdentityKey::parse(kind, value).map_err(|e| invalid("link_to", e.to_string()))
}

/// A wallet whose signature, message and nonce were checked.
pub struct Checked {
    pub wallet: IdentityKey,
    /// The address, EIP-55 checksummed.
    pub address: String,
    /// `eip155:<id>`.
    pub chain_id: String,
    /// What `verify_identity` keeps: the message, its signature and what was checked.
    pub proof: Value,
}

/// Checks a signed SIWE message for `domain` (host[:port]) against the chains set up
/// and spends its nonce.
pub async fn check(
    store: &DynStore,
    message: &str,
    signature: &str,
    domain: &str,
) -> Result<Checked, StoreError> {
    let chains: Vec<u64> = store
        .chains()
        .await?
        .iter()
        .filter_map(|c| parse_caip2(&c.id))
        .collect();
    let now = now_millis();
    let v = rapport_chain::siwe::verify(message, signature, domain, &chains, now).map_err(|e| {
        let rapport_chain::siwe::SiweError::Invalid(field, reason) = e;
        invalid(field, reason)
    })?;
    if !store.use_siwe_nonce(&v.nonce, now).await? {
        return Err(invalid(
            "message.nonce",
            "was not issued by this service, has expired or was already used: ask for a new one",
        ));
    }
    let wallet = rapport_chain::caip10(&format!("eip155:{}", v.chain_id), &v.address);
    let key = IdentityKey::parse(IdentityKind::Wallet, &wallet)
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(Checked {
        wallet: key,
        address: v.address.to_checksum(None),
        chain_id: format!("eip155:{}", v.chain_id),
        proof: json!({
            "method": "siwe", "domain": v.domain, "uri": v.uri, "chain_id": v.chain_id,
            "nonce": v.nonce, "issued_at": v.issued_at, "verified_at": now,
            "message": message, "signature": signature,
        }),
    })
}

/// Checks a signed SIWE message for `domain` (host[:port]) and links the wallet.
pub async fn verify(
    store: &DynStore,
    ingestor: &Ingestor,
    input: VerifyInput,
    domain: &str,
) -> Result<Value, StoreError> {
    let link = link_key(&input.link_to)?;
    let c = check(store, &input.message, &input.signature, domain).await?;
    let nonce = c.proof["nonce"].as_str().unwrap_or_default().to_string();
    let profile = crate::profiles::add_proved_identity(
        store,
        ingestor,
        &link,
        &c.wallet,
        &c.proof,
        "siwe",
        &format!("siwe:{nonce}"),
    )
    .await?;
    Ok(json!({
        "profile_id": profile,
        "wallet": c.wallet.value,
        "address": c.address,
        "chain_id": c.chain_id,
        "verified": true,
    }))
}

/// A fresh SIWE message for `address` on `chain_id` with a new nonce, for a page that
/// shows it to sign (the portal, where no script may build it).
pub async fn message(
    store: &DynStore,
    domain: &str,
    uri: &str,
    address: &str,
    chain_id: u64,
    statement: &str,
) -> Result<String, StoreError> {
    let a: rapport_chain::Address = address
        .trim()
        .parse()
        .map_err(|_| invalid("address", "an Ethereum address, 0x and 40 hex digits"))?;
    let n = nonce(store).await?;
    let now = now_millis();
    let fmt = |ms: i64| to_datetime(ms).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    Ok(rapport_chain::siwe::message_with(
        domain,
        &a,
        statement,
        uri,
        chain_id,
        n["nonce"].as_str().unwrap_or_default(),
        &fmt(now),
        Some(&fmt(now + NONCE_TTL_MS)),
    ))
}
