//! Sign-In with Ethereum (EIP-4361): the message is parsed by the `siwe` crate and its
//! EIP-191 signature checked; the rules a brand needs on top (its domain, the chains it
//! accepts, times) are here, each failing with the message field it is about. Whether
//! the nonce was issued and is unused is the caller's (it is stored).

use alloy_primitives::Address;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum SiweError {
    /// (field, what is wrong)
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
}

fn invalid(field: &'static str, msg: impl Into<String>) -> SiweError {
    SiweError::Invalid(field, msg.into())
}

impl SiweError {
    pub fn field(&self) -> &'static str {
        match self {
            SiweError::Invalid(f, _) => f,
        }
    }
}

/// A checked SIWE message: who signed, on which chain, for which nonce.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub address: Address,
    pub chain_id: u64,
    pub domain: String,
    pub uri: String,
    pub nonce: String,
    pub issued_at: i64,
    pub expires_at: Option<i64>,
}

fn ms(t: &time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Parses and checks a SIWE message and its signature at time `now` (ms).
/// `domain`: the brand's domain the message must name (host[:port], case-insensitive).
/// `chains`: the numeric chain ids accepted (empty: any).
pub fn verify(
    message: &str,
    signature: &str,
    domain: &str,
    chains: &[u64],
    now: i64,
) -> Result<Verified, SiweError> {
    let m: siwe::Message = message.parse().map_err(|e: siwe::ParseError| {
        invalid("message", format!("not an EIP-4361 message: {e}"))
    })?;
    let hex = signature
        .trim()
        .strip_prefix("0x")
        .unwrap_or(signature.trim());
    let bytes = (hex.len() == 130)
        .then(|| {
            (0..65)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .collect::<Option<Vec<u8>>>()
        })
        .flatten()
        .ok_or_else(|| invalid("signature", "must be 65 bytes as 0x-prefixed hex"))?;
    let mut sig = [0u8; 65];
    sig.copy_from_slice(&bytes);
    if !m.domain.as_str().eq_ignore_ascii_case(domain) {
        return Err(invalid(
            "message.domain",
            format!(
                "the message is for '{}', this service is '{domain}'",
                m.domain
            ),
        ));
    }
    if !chains.is_empty() && !chains.contains(&m.chain_id) {
        return Err(invalid(
            "message.chain_id",
            format!(
                "chain {} is not one this brand accepts (eip155:{})",
                m.chain_id,
                chains
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", eip155:")
            ),
        ));
    }
    let issued = ms(m.issued_at.as_ref());
    // A little clock skew is tolerated; a message from the future is not.
    if issued > now + 5 * 60_000 {
        return Err(invalid("message.issued_at", "is in the future"));
    }
    let expires = m.expiration_time.as_ref().map(|t| ms(t.as_ref()));
    if expires.is_some_and(|e| e < now) {
        return Err(invalid(
            "message.expiration_time",
            "the message has expired",
        ));
    }
    if m.not_before.as_ref().is_some_and(|t| ms(t.as_ref()) > now) {
        return Err(invalid(
            "message.not_before",
            "the message is not valid yet",
        ));
    }
    m.verify_eip191(&sig).map_err(|e| {
        invalid(
            "signature",
            format!("does not prove ownership of the message's address ({e})"),
        )
    })?;
    Ok(Verified {
        address: Address::from(m.address),
        chain_id: m.chain_id,
        domain: m.domain.to_string(),
        uri: m.uri.to_string(),
        nonce: m.nonce.clone(),
        issued_at: issued,
        expires_at: expires,
    })
}

/// The text of a SIWE message (what a wallet shows and signs). For tests, the CLI and
/// the connect page's server-side preview.
pub fn message_text(
    domain: &str,
    address: &Address,
    uri: &str,
    chain_id: u64,
    nonce: &str,
    issued_at: &str,
    expiration_time: Option<&str>,
) -> String {
    message_with(
        domain,
        address,
        "Connect this wallet to your profile.",
        uri,
        chain_id,
        nonce,
        issued_at,
        expiration_time,
    )
}

/// As [`message_text`], with the statement (one line, what the signer agrees to).
#[allow(clippy::too_many_arguments)]
pub fn message_with(
    domain: &str,
    address: &Address,
    statement: &str,
    uri: &str,
    chain_id: u64,
    nonce: &str,
    issued_at: &str,
    expiration_time: Option<&str>,
) -> String {
    let mut s = format!(
        "{domain} wants you to sign in with your Ethereum account:\n{}\n\n{statement}\n\nURI: {uri}\nVersion: 1\nChain ID: {chain_id}\nNonce: {nonce}\nIssued At: {issued_at}",
        address.to_checksum(None)
    );
    if let Some(e) = expiration_time {
        s.push_str(&format!("\nExpiration Time: {e}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_signer::SignerSync;
    use alloy_signer_local::PrivateKeySigner;

    const KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    // 2026-11-23T12:00:00Z
    const NOW: i64 = 1_795_435_200_000;

    fn signed(domain: &str, chain: u64, exp: Option<&str>) -> (String, String, Address) {
        let k: PrivateKeySigner = KEY.parse().unwrap();
        let msg = message_text(
            domain,
            &k.address(),
            "https://shop.example/connect",
            chain,
            "abcdef12345678",
            "2026-11-23T11:59:00Z",
            exp,
        );
        let sig = k.sign_message_sync(msg.as_bytes()).unwrap();
        (
            msg,
            format!("0x{}", alloy_primitives::hex::encode(sig.as_bytes())),
            k.address(),
        )
    }

    #[test]
    fn a_real_signature_verifies() {
        let (msg, sig, addr) = signed("shop.example", 1, Some("2026-11-23T12:10:00Z"));
        let v = verify(&msg, &sig, "shop.example", &[1], NOW).unwrap();
        assert_eq!(v.address, addr);
        assert_eq!(v.chain_id, 1);
        assert_eq!(v.nonce, "abcdef12345678");
    }

    #[test]
    fn each_check_names_its_field() {
        let (msg, sig, _) = signed("shop.example", 1, Some("2026-11-23T11:59:30Z"));
        assert_eq!(
            verify(&msg, &sig, "shop.example", &[1], NOW)
                .unwrap_err()
                .field(),
            "message.expiration_time"
        );
        let (msg, sig, _) = signed("evil.example", 1, None);
        assert_eq!(
            verify(&msg, &sig, "shop.example", &[1], NOW)
                .unwrap_err()
                .field(),
            "message.domain"
        );
        let (msg, sig, _) = signed("shop.example", 5, None);
        assert_eq!(
            verify(&msg, &sig, "shop.example", &[1, 137], NOW)
                .unwrap_err()
                .field(),
            "message.chain_id"
        );
        assert!(verify(&msg, &sig, "shop.example", &[], NOW).is_ok());
        // Another message's signature, a tampered message, garbage.
        let (other, _, _) = signed("shop.example", 1, None);
        let tampered = other.replace("Connect this wallet", "Give away this wallet");
        assert_eq!(
            verify(&tampered, &sig, "shop.example", &[], NOW)
                .unwrap_err()
                .field(),
            "signature"
        );
        assert_eq!(
            verify(&msg, "0x1234", "shop.example", &[], NOW)
                .unwrap_err()
                .field(),
            "signature"
        );
        assert_eq!(
            verify("hello", &sig, "shop.example", &[], NOW)
                .unwrap_err()
                .field(),
            "message"
        );
        assert_eq!(
            verify(&msg, &sig, "shop.example", &[], NOW - 3_600_000)
                .unwrap_err()
                .field(),
            "message.issued_at"
        );
    }
}
