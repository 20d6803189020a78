//! DKIM keys per sending domain: generated here (Ed25519, RFC 8463, and RSA-2048), shown
//! as the DNS TXT record to publish, and used to sign every message (relaxed/relaxed, over
//! the headers RFC 6376 and RFC 8058 ask to protect).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Ed25519,
    Rsa,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Rsa => "rsa",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        match s {
            "ed25519" => Some(Algorithm::Ed25519),
            "rsa" => Some(Algorithm::Rsa),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("could not generate the key: {0}")]
    Generate(String),
    #[error("the stored {0} key does not load")]
    Key(&'static str),
}

/// One signing key of a domain. `private_key` is a secret: never logged or shown
/// (its `Debug` leaves it out).
#[derive(Clone)]
pub struct DkimKey {
    pub algorithm: Algorithm,
    pub selector: String,
    /// Ed25519: the 32-byte seed in base64; RSA: PKCS#1 PEM (what lettre loads).
    pub private_key: String,
    /// The `p=` value: the raw Ed25519 public key, or the RSA SubjectPublicKeyInfo, in base64.
    pub public_key: String,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("algorithm", &self.algorithm)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl DkimKey {
    /// A new key named `selector`.
    pub fn generate(algorithm: Algorithm, selector: &str) -> Result<DkimKey, DkimError> {
        let mut rng = rand::rngs::OsRng;
        let (private_key, public_key) = match algorithm {
            Algorithm::Ed25519 => {
                let k = ed25519_dalek::SigningKey::generate(&mut rng);
                (
                    STANDARD.encode(k.to_bytes()),
                    STANDARD.encode(k.verifying_key().to_bytes()),
                )
            }
            Algorithm::Rsa => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                use rsa::pkcs8::EncodePublicKey;
                let k = rsa::RsaPrivateKey::new(&mut rng, 2048)
                    .map_err(|e| DkimError::Generate(e.to_string()))?;
                let pem = k
                    .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
                    .map_err(|e| DkimError::Generate(e.to_string()))?;
                let spki = k
                    .to_public_key()
                    .to_public_key_der()
                    .map_err(|e| DkimError::Generate(e.to_string()))?;
                (pem.to_string(), STANDARD.encode(spki.as_bytes()))
            }
        };
        Ok(DkimKey {
            algorithm,
            selector: selector.to_string(),
            private_key,
            public_key,
        })
    }

    /// Where the record goes: `<selector>._domainkey.<domain>`.
    pub fn dns_name(&self, domain: &str) -> String {
        format!("{}._domainkey.{domain}", self.selector)
    }

    /// The TXT value to publish.
    pub fn dns_txt(&self) -> String {
        format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm.as_str(),
            self.public_key
        )
    }

    /// The loaded signing configuration for `domain`; load once, sign many.
    pub fn signer(&self, domain: &str) -> Result<Signer, DkimError> {
        let bad = |_| DkimError::Key(self.algorithm.as_str());
        Ok(match self.algorithm {
            Algorithm::Ed25519 => {
                let seed = STANDARD
                    .decode(&self.private_key)
                    .map_err(|_| DkimError::Key("ed25519"))?;
                let public = STANDARD
                    .decode(&self.public_key)
                    .map_err(|_| DkimError::Key("ed25519"))?;
                let key = Ed25519Key::from_seed_and_public_key(&seed, &public).map_err(bad)?;
                Signer::Ed25519(Box::new(configure(
                    DkimSigner::from_key(key),
                    domain,
                    &self.selector,
                )))
            }
            Algorithm::Rsa => {
                use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
                let k = rsa::RsaPrivateKey::from_pkcs1_pem(&self.private_key)
                    .map_err(|_| DkimError::Key("rsa"))?;
                let der = k.to_pkcs1_der().map_err(|_| DkimError::Key("rsa"))?;
                let der = rustls_pki_types::PrivateKeyDer::Pkcs1(der.as_bytes().to_vec().into());
                let key = RsaKey::<Sha256>::from_key_der(der).map_err(bad)?;
                Signer::Rsa(Box::new(configure(
                    DkimSigner::from_key(key),
                    domain,
                    &self.selector,
                )))
            }
        })
    }
}

fn configure<K: mail_auth::common::crypto::SigningKey<Hasher = Sha256>>(
    s: DkimSigner<K, mail_auth::dkim::NeedDomain>,
    domain: &str,
    selector: &str,
) -> DkimSigner<K, Done> {
    s.domain(domain)
        .selector(selector)
        .headers(SIGNED.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

/// The headers each signature covers. RFC 8058 §3.1 asks that `List-Unsubscribe` and
/// `List-Unsubscribe-Post` be covered; a header a message lacks counts as empty, which
/// also stops anyone adding it later.
const SIGNED: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// A loaded key for one domain.
pub enum Signer {
    Ed25519(Box<DkimSigner<Ed25519Key, Done>>),
    Rsa(Box<DkimSigner<RsaKey<Sha256>, Done>>),
}

impl Signer {
    /// The `DKIM-Signature` header (with its CRLF) for a finished message.
    pub fn header(&self, message: &[u8]) -> Result<String, DkimError> {
        let sig = match self {
            Signer::Ed25519(s) => s.sign(message),
            Signer::Rsa(s) => s.sign(message),
        }
        .map_err(|e| DkimError::Generate(e.to_string()))?;
        Ok(sig.to_header())
    }
}

/// The message with a `DKIM-Signature` header per signer prepended. Each signature
/// covers the message as built; none covers another.
pub fn sign(signers: &[Signer], message: &[u8]) -> Result<Vec<u8>, DkimError> {
    let mut raw = Vec::with_capacity(message.len() + 600 * signers.len());
    for s in signers {
        raw.extend_from_slice(s.header(message)?.as_bytes());
    }
    raw.extend_from_slice(message);
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_secrets() {
        let k = DkimKey::generate(Algorithm::Ed25519, "s1").unwrap();
        assert_eq!(k.dns_name("example.com"), "s1._domainkey.example.com");
        assert!(k.dns_txt().starts_with("v=DKIM1; k=ed25519; p="));
        assert_eq!(STANDARD.decode(&k.public_key).unwrap().len(), 32);
        assert!(!format!("{k:?}").contains(&k.private_key));
        assert!(k.signer("example.com").is_ok());
        let bad = DkimKey {
            private_key: "not base64!".into(),
            ..k.clone()
        };
        assert!(bad.signer("example.com").is_err());
        assert_eq!(Algorithm::parse("rsa"), Some(Algorithm::Rsa));
        assert_eq!(Algorithm::parse("ed25519"), Some(Algorithm::Ed25519));
        assert_eq!(Algorithm::parse("dsa"), None);
        assert_eq!(Algorithm::Rsa.as_str(), "rsa");
    }
}
