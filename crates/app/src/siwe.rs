//! Verified wallet ownership with Sign-In with Ethereum (EIP-4361). A nonce is issued,
//! the wallet signs a message naming it, and the signature, domain, chain, times and
//! nonce are checked (a nonce works once). The wallet then joins the profile named by
//! `link_to` through the normal ingestion path (so identity resolution applies) and is
//! marked verified, with the signed message kept as proof.

use rand::distributions::Alphanumeric;
use rand::Rng;
use rapport_chain::parse_caip2;
use rapport_domain::identifier::{IdentityKey, IdentityKind};
use rapport_domain::message::{parse_message, BatchContext};
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

/// Checks a signed SIWE message for `domain` (host[:port]) and links the wallet.
pub async fn verify(
    store: &DynStore,
    ingestor: &Ingestor,
    input: VerifyInput,
    domain: &str,
) -> Result<Value, StoreError> {
    let link = link_key(&input.link_to)?;
    let chains: Vec<u64> = store
        .chains()
        .await?
        .iter()
        .filter_map(|c| parse_caip2(&c.id))
        .collect();
    let now = now_millis();
    let v = rapport_chain::siwe::verify(&input.message, &input.signature, domain, &chains, now)
        .map_err(|e| {
            let rapport_chain::siwe::SiweError::Invalid(field, reason) = e;
            invalid(field, reason)
        })?;
    if !store.use_siwe_nonce(&v.nonce, now).await? {
        return Err(invalid(
            "message.nonce",
            "was not issued by this service, has expired or was already used: ask GET /api/siwe/nonce for a new one",
        ));
    }
    let wallet = rapport_chain::caip10(&format!("eip155:{}", v.chain_id), &v.address);
    let wallet_key = IdentityKey::parse(IdentityKind::Wallet, &wallet)
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    let mut traits = json!({"wallet": wallet});
    let mut msg = json!({"type": "identify", "messageId": format!("siwe:{}", v.nonce)});
    match link.kind {
        IdentityKind::Email => traits["email"] = json!(link.value),
        _ => msg["userId"] = json!(link.value),
    }
    msg["traits"] = traits;
    let batch = BatchContext {
        received_at: now,
        identifiers_suffice: true,
        ..Default::default()
    };
    let m = parse_message(&msg, "", None, &batch, || format!("siwe:{}", v.nonce))
        .map_err(|e| invalid(&e.field, e.to_string()))?;
    // One message: committed alone, so no other request's data can spoil it.
    ingestor
        .submit_alone("siwe", vec![m])
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    let proof = json!({
        "method": "siwe", "domain": v.domain, "uri": v.uri, "chain_id": v.chain_id,
        "nonce": v.nonce, "issued_at": v.issued_at, "verified_at": now,
        "message": input.message, "signature": input.signature,
    });
    store
        .verify_identity(&wallet_key, proof.to_string(), now)
        .await?;
    crate::changes::announce(store, crate::changes::Change::Standing).await?;
    let profile = store
        .lookup(&wallet_key)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("identity {wallet_key}")))?;
    Ok(json!({
        "profile_id": profile,
        "wallet": wallet,
        "address": v.address.to_checksum(None),
        "chain_id": format!("eip155:{}", v.chain_id),
        "verified": true,
    }))
}
