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
    /// Aggregate audience insight only (partners, advertisers): noisy counts above a
    /// minimum group size, never a person (docs/privacy.md).
    Insight,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Write => "write",
            Scope::Admin => "admin",
            Scope::Insight => "insight",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            "insight" => Some(Scope::Insight),
            _ => None,
        }
    }
}

/// How far a key is trusted. A server key is a secret kept on the brand's servers; a
/// browser key ships in web pages, so anyone can read it: it is held to its origins,
/// rate-limited per client, and its bot traffic is dropped (docs/ingestion.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    #[default]
    Server,
    Browser,
}

impl Trust {
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Server => "server",
            Trust::Browser => "browser",
        }
    }

    pub fn parse(s: &str) -> Option<Trust> {
        match s {
            "server" => Some(Trust::Server),
            "browser" => Some(Trust::Browser),
            _ => None,
        }
    }
}

/// An origin as browsers send it (`https://shop.example`, `http://localhost:8080`):
/// scheme, host (lower-cased, IDN as ASCII) and any non-default port, no path. `None` when it is not one.
pub fn normalise_origin(s: &str) -> Option<String> {
    let u = url::Url::parse(s.trim()).ok()?;
    let bare = u.path() == "/" && u.query().is_none() && u.fragment().is_none();
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() || !bare {
        return None;
    }
    // Browsers send the ASCII form without a default port, as this does.
    Some(u.origin().ascii_serialization())
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
        Scope::Insight => "i",
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
    fn origins_are_normalised_or_refused() {
        assert_eq!(
            normalise_origin("https://Shop.Example/").as_deref(),
            Some("https://shop.example")
        );
        assert_eq!(
            normalise_origin("http://localhost:8080").as_deref(),
            Some("http://localhost:8080")
        );
        assert_eq!(
            normalise_origin("http://[::1]:3000").as_deref(),
            Some("http://[::1]:3000")
        );
        assert_eq!(
            normalise_origin("https://shop.example:443").as_deref(),
            Some("https://shop.example")
        );
        assert_eq!(
            normalise_origin("https://bücher.example").as_deref(),
            Some("https://xn--bcher-kva.example")
        );
        for bad in [
            "shop.example",
            "ftp://x",
            "https://",
            "https://a/b",
            "https://a:99999",
            "https://a:x",
            "https://a b",
            "https://a/?q",
        ] {
            assert_eq!(normalise_origin(bad), None, "{bad}");
        }
        assert_eq!(Trust::parse("browser"), Some(Trust::Browser));
        assert_eq!(Trust::parse(Trust::Server.as_str()), Some(Trust::Server));
        assert_eq!(Trust::parse("x"), None);
    }

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
