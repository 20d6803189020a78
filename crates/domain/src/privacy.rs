//! Privacy rules: how an erased person's identifiers are remembered without keeping
//! them (a unsalted SHA-256 of `kind:value`, so the same identifier arriving later
//! is recognised and nothing readable stays), and the noise that keeps aggregate
//! answers from revealing one person (Laplace mechanism).

use crate::IdentityKey;
use sha2::{Digest, Sha256};

/// The hash an erased identifier is remembered by: hex SHA-256 of `kind:value` (the
/// normalised value, so every spelling that resolves to it matches).
pub fn identifier_hash(key: &IdentityKey) -> String {
    hex_sha256(&key.to_string())
}

pub fn hex_sha256(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// Lower-case hex of `bytes` (hashes, random tokens). Runs for every identifier of
/// every message once someone is erased: no allocation per byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// A Laplace(0, `scale`) draw from `u`, a uniform number in (0, 1): the inverse CDF.
/// Kept apart from the random source so it is tested exactly.
pub fn laplace(u: f64, scale: f64) -> f64 {
    let u = u.clamp(f64::EPSILON, 1.0 - f64::EPSILON) - 0.5;
    let magnitude = -scale * (1.0 - 2.0 * u.abs()).ln();
    if u < 0.0 {
        -magnitude
    } else {
        magnitude
    }
}

/// A count released with ε-differential privacy (a count changes by at most 1 when one
/// person is added or removed, so the scale is 1/ε), rounded and never below zero.
pub fn noisy_count(count: u64, epsilon: f64, u: f64) -> u64 {
    let noisy = count as f64 + laplace(u, 1.0 / epsilon);
    noisy.round().max(0.0) as u64
}

/// An advertising platform that takes hashed customer lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdPlatform {
    /// Meta Custom Audiences.
    Meta,
    /// Google Customer Match.
    Google,
}

impl AdPlatform {
    pub fn parse(s: &str) -> Option<AdPlatform> {
        match s {
            "meta" => Some(AdPlatform::Meta),
            "google" => Some(AdPlatform::Google),
            _ => None,
        }
    }

    /// The CSV header row each platform's upload expects for hashed columns.
    pub fn header(self) -> &'static str {
        match self {
            AdPlatform::Meta => "email,phone",
            AdPlatform::Google => "Email,Phone",
        }
    }

    /// A stored (already lower-cased) address normalised as the platform hashes it:
    /// trimmed and lower-cased; Google also drops the dots of gmail.com and
    /// googlemail.com user names.
    pub fn email(self, address: &str) -> String {
        let a = address.trim().to_lowercase();
        if self == AdPlatform::Google {
            if let Some((user, domain)) = a.rsplit_once('@') {
                if domain == "gmail.com" || domain == "googlemail.com" {
                    return format!("{}@{domain}", user.replace('.', ""));
                }
            }
        }
        a
    }

    /// A stored E.164 number (`+447911123456`, maybe with `;ext=`) as the platform
    /// hashes it: Meta digits only with the country code, Google E.164 with `+`.
    pub fn phone(self, e164: &str) -> String {
        let main = e164.split(';').next().unwrap_or("");
        let digits: String = main.chars().filter(char::is_ascii_digit).collect();
        match self {
            AdPlatform::Meta => digits,
            AdPlatform::Google => format!("+{digits}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ad_platforms_normalise_as_documented() {
        use AdPlatform::*;
        assert_eq!(Google.email(" A.n.n@Gmail.com "), "ann@gmail.com");
        assert_eq!(Meta.email(" A.n.n@Gmail.com "), "a.n.n@gmail.com");
        assert_eq!(Google.email("a.b@example.com"), "a.b@example.com");
        assert_eq!(Meta.phone("+44 7911 123456;ext=2"), "447911123456");
        assert_eq!(Google.phone("+447911123456"), "+447911123456");
        assert_eq!(AdPlatform::parse("meta"), Some(Meta));
        assert_eq!(AdPlatform::parse("google"), Some(Google));
        assert_eq!(AdPlatform::parse("tiktok"), None);
        assert_ne!(Meta.header(), Google.header());
        // The documented example of both platforms: SHA-256 of the normalised value.
        assert_eq!(
            hex_sha256(&Meta.email("Test@Example.com")),
            "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
        );
    }

    use super::*;

    #[test]
    fn hashes_are_of_the_normalised_key() {
        let a = IdentityKey::parse(crate::IdentityKind::Email, "Ann@Example.com").unwrap();
        let b = IdentityKey::parse(crate::IdentityKind::Email, "ann@example.com").unwrap();
        assert_eq!(identifier_hash(&a), identifier_hash(&b));
        assert_eq!(identifier_hash(&a).len(), 64);
        assert_eq!(
            hex_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn laplace_is_symmetric_and_scaled() {
        assert_eq!(laplace(0.5, 2.0), 0.0);
        let lo = laplace(0.25, 2.0);
        let hi = laplace(0.75, 2.0);
        assert!((lo + hi).abs() < 1e-12 && lo < 0.0);
        // F(x) = 1 - exp(-x/b)/2 for x >= 0: at u = 0.75, x = b ln 2.
        assert!((hi - 2.0 * std::f64::consts::LN_2).abs() < 1e-12);
        assert!(laplace(0.0, 1.0).is_finite() && laplace(1.0, 1.0).is_finite());
    }

    #[test]
    fn noisy_counts_round_and_stay_non_negative() {
        assert_eq!(noisy_count(100, 1.0, 0.5), 100);
        assert_eq!(noisy_count(0, 0.1, 0.0001), 0);
        assert_eq!(noisy_count(100, 1.0, 0.75), 101);
        // Scale 1/ε: ε = 0.5 doubles the noise (2 ln 2 ≈ 1.39 at u = 0.75).
        assert_eq!(noisy_count(100, 0.5, 0.75), 101);
        assert_eq!(noisy_count(100, 0.25, 0.75), 103);
    }
}
