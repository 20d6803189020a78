//! API keys. Only a SHA-256 hash is stored; the secret is shown once, at creation.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Ingest only (the Segment write key). Cannot read anything.
    Write,
    /// Everything, including reading profiles.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// A fresh key: the secret to hand out, its hash to store, and a short public prefix
/// that identifies it in logs and audit records without revealing it.
pub struct NewKey {
    pub secret: String,
    pub hash: String,
    pub prefix: String,
}

pub fn generate(scope: Scope) -> NewKey {
    let mut bytes = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut bytes);
    let tag = match scope {
        Scope::Write => "w",
        Scope::Admin => "a",
    };
    let secret = format!("rk_{tag}_{}", hex::encode(bytes));
    NewKey {
        hash: hash(&secret),
        prefix: secret[..10].to_string(),
        secret,
    }
}

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_hash_stably() {
        let a = generate(Scope::Admin);
        let b = generate(Scope::Admin);
        assert_ne!(a.secret, b.secret);
        assert_eq!(hash(&a.secret), a.hash);
        assert!(a.secret.starts_with("rk_a_"));
        assert!(
            !a.secret.contains(':'),
            "must fit in a Basic-auth user name"
        );
    }
}
