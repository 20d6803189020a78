//! Identifiers a person is known by. Each parses into a normalised value that can only
//! hold a valid form, so two spellings of one address are one identity:
//! e-mails lower-cased, phones E.164, wallets CAIP-10 with EIP-55 checksums,
//! social handles `network:handle`.

use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};
use std::fmt;
use std::str::FromStr;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    UserId,
    AnonymousId,
    Email,
    Phone,
    Social,
    Wallet,
    External,
}

impl IdentityKind {
    pub const ALL: [IdentityKind; 7] = [
        IdentityKind::UserId,
        IdentityKind::AnonymousId,
        IdentityKind::Email,
        IdentityKind::Phone,
        IdentityKind::Social,
        IdentityKind::Wallet,
        IdentityKind::External,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::UserId => "user_id",
            IdentityKind::AnonymousId => "anonymous_id",
            IdentityKind::Email => "email",
            IdentityKind::Phone => "phone",
            IdentityKind::Social => "social",
            IdentityKind::Wallet => "wallet",
            IdentityKind::External => "external",
        }
    }

    /// Merge priority when picking which identifier anchors a message: stronger first.
    pub fn strength(self) -> u8 {
        match self {
            IdentityKind::UserId => 0,
            IdentityKind::External => 1,
            IdentityKind::Email => 2,
            IdentityKind::Phone => 3,
            IdentityKind::Wallet => 4,
            IdentityKind::Social => 5,
            IdentityKind::AnonymousId => 6,
        }
    }
}

impl fmt::Display for IdentityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IdentityKind {
    type Err = IdentifierError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IdentityKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| IdentifierError::new("kind", format!("unknown identifier kind '{s}' (expected one of user_id, anonymous_id, email, phone, social, wallet, external)")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct IdentifierError {
    pub kind: String,
    pub reason: String,
}

impl IdentifierError {
    pub fn new(kind: impl Into<String>, reason: impl Into<String>) -> Self {
        IdentifierError {
            kind: kind.into(),
            reason: reason.into(),
        }
    }
}

/// `(kind, value)`: unique across the store, owned by exactly one profile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IdentityKey {
    pub kind: IdentityKind,
    pub value: String,
}

impl fmt::Display for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

const MAX_ID_LEN: usize = 256;

impl IdentityKey {
    /// Parses and normalises a raw value of a known kind.
    pub fn parse(kind: IdentityKind, raw: &str) -> Result<Self, IdentifierError> {
        let value = match kind {
            IdentityKind::UserId | IdentityKind::AnonymousId => plain_id(kind, raw)?,
            // `type:id`: the type names a system (`crm`, `CRM`), the id is its own.
            IdentityKind::External => {
                let v = plain_id(kind, raw)?;
                match v.split_once(':') {
                    Some((ty, id)) => format!("{}:{id}", ty.trim().to_lowercase()),
                    None => v,
                }
            }
            IdentityKind::Email => normalize_email(raw)?,
            IdentityKind::Phone => normalize_phone(raw)?,
            IdentityKind::Wallet => normalize_wallet(raw)?,
            IdentityKind::Social => {
                let (network, handle) = raw.split_once(':').ok_or_else(|| {
                    IdentifierError::new("social", "expected network:handle, e.g. x:alice")
                })?;
                normalize_social(network, handle)?
            }
        };
        Ok(IdentityKey { kind, value })
    }

    /// Parses the prefixed form used by the CLI, lookups and edge lists:
    /// `email:a@b.c`, `phone:+1…`, `wallet:eip155:1:0x…`, `social:x:alice`,
    /// `user_id:42`, `anonymous_id:…`, `external:crm:7`. A bare value is a `user_id`.
    pub fn parse_prefixed(s: &str) -> Result<Self, IdentifierError> {
        let s = s.trim();
        if let Some((prefix, rest)) = s.split_once(':') {
            if let Ok(kind) = IdentityKind::from_str(prefix) {
                return IdentityKey::parse(kind, rest);
            }
        }
        IdentityKey::parse(IdentityKind::UserId, s)
    }
}

fn plain_id(kind: IdentityKind, raw: &str) -> Result<String, IdentifierError> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(IdentifierError::new(kind.as_str(), "must not be empty"));
    }
    if v.len() > MAX_ID_LEN {
        return Err(IdentifierError::new(
            kind.as_str(),
            format!("longer than {MAX_ID_LEN} bytes"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(IdentifierError::new(
            kind.as_str(),
            "contains control characters",
        ));
    }
    Ok(v.to_string())
}

/// E-mail addresses are compared case-insensitively (what every mail provider does in
/// practice). One address has one form whatever way it was typed (docs/identity.md):
/// a display name (`Ann Lee <ann@x.com>`) or `mailto:` is dropped; the local part is
/// Unicode NFC and lower-cased; the domain goes through IDNA (UTS 46: case, width,
/// NFC) and is kept as its Unicode form, so `café.fr`, `xn--caf-dma.fr` and `ＣＡＦÉ.fr`
/// are one domain. Plus-addressing and Gmail dots stay distinct: whether `a+x@` reaches
/// `a@` is the mail provider's rule, not a fact Rapport can know.
pub fn normalize_email(raw: &str) -> Result<String, IdentifierError> {
    use unicode_normalization::UnicodeNormalization;
    let v = raw.trim();
    let bad = |why: &str| IdentifierError::new("email", format!("'{v}' {why}"));
    let mut addr = v;
    if let (Some(open), Some(inner)) = (addr.rfind('<'), addr.strip_suffix('>')) {
        addr = inner[open + 1..].trim();
    }
    if let Some(rest) = addr
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("mailto:"))
        .and_then(|_| addr.get(7..))
    {
        addr = rest;
    }
    let (local, domain) = addr
        .rsplit_once('@')
        .ok_or_else(|| bad("is not an e-mail address (no @)"))?;
    // İ lower-cases to i + U+0307 (combining dot above), which no one types; the
    // address a Turkish customer means is the plain i.
    let local: String = if local.is_ascii() {
        // NFC and Unicode case rules change nothing in ASCII: the usual case, kept cheap.
        local.to_ascii_lowercase()
    } else {
        let lower = local
            .nfc()
            .collect::<String>()
            .to_lowercase()
            .replace("i\u{307}", "i");
        lower.nfc().collect()
    };
    let ascii = idna::domain_to_ascii(domain)
        .map_err(|_| bad("has a domain that is not a valid (internationalised) name"))?;
    // The RFC allows dotless domains; customer e-mail never uses them and they are a
    // typical typo ("ann@gmail"), so reject them.
    if !ascii.contains('.') || ascii.starts_with('[') || ascii.ends_with('.') {
        return Err(bad("has no valid domain"));
    }
    email_address::EmailAddress::from_str(&format!("{local}@{ascii}"))
        .map_err(|e| bad(&format!("is not an e-mail address ({e})")))?;
    // Only a name with an A-label has another form to show.
    if !ascii.contains("xn--") {
        return Ok(format!("{local}@{ascii}"));
    }
    let (unicode, r) = idna::domain_to_unicode(&ascii);
    r.map_err(|_| bad("has a domain that is not a valid (internationalised) name"))?;
    Ok(format!("{local}@{unicode}"))
}

/// Phones must carry their country code (`+44…`); stored in E.164.
///
/// An extension stays part of the number (`+14155550102;ext=23`, RFC 3966): a
/// switchboard's extensions are different people, so `ext. 23`, `x23` and `;ext=23`
/// are one identity and the bare number another.
pub fn normalize_phone(raw: &str) -> Result<String, IdentifierError> {
    normalize_phone_in(raw, None)
}

/// As [`normalize_phone`], reading a number without `+` as national to `region` (the
/// brand's default region, `/api/settings/identity`).
pub fn normalize_phone_in(
    raw: &str,
    region: Option<phonenumber::country::Id>,
) -> Result<String, IdentifierError> {
    let v = raw.trim();
    // RFC 3966's `;ext=` is not a form the parser reads: take it off first.
    let (base, rfc_ext) = match v.to_ascii_lowercase().find(";ext=") {
        Some(i) => (&v[..i], Some(v[i + 5..].trim())),
        None => (v, None),
    };
    if let Some(x) = rfc_ext {
        if x.is_empty() || x.len() > 10 || !x.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentifierError::new(
                "phone",
                format!("'{v}' has an extension that is not 1-10 digits"),
            ));
        }
    }
    let num = phonenumber::parse(region, base).map_err(|e| {
        IdentifierError::new(
            "phone",
            format!("'{v}' is not a phone number in international format, e.g. +14155550100 ({e})"),
        )
    })?;
    if !phonenumber::is_valid(&num) {
        return Err(IdentifierError::new(
            "phone",
            format!("'{v}' is not a valid number for its country"),
        ));
    }
    let e164 = num.format().mode(phonenumber::Mode::E164).to_string();
    // The stored form must be a valid number in its own right (lookups parse it again):
    // the parser reads some junk around digits into a "valid" number whose E.164 form
    // is not (found by the `identifier` fuzz target, fuzz/regressions/identifier).
    let stable = phonenumber::parse(None, &e164).is_ok_and(|n| {
        phonenumber::is_valid(&n) && n.format().mode(phonenumber::Mode::E164).to_string() == e164
    });
    if !stable {
        return Err(IdentifierError::new(
            "phone",
            format!("'{v}' is not a valid phone number"),
        ));
    }
    match rfc_ext.or(num.extension().map(|x| x.as_ref())) {
        Some(x) if !x.is_empty() => Ok(format!("{e164};ext={x}")),
        _ => Ok(e164),
    }
}

/// Wallets are CAIP-10 account ids. A bare EVM address (`0x…`) is taken as Ethereum
/// mainnet (`eip155:1`). EVM addresses get their EIP-55 checksum; a mixed-case input
/// whose checksum is wrong is rejected (it is a typo, not an address).
pub fn normalize_wallet(raw: &str) -> Result<String, IdentifierError> {
    let v = raw.trim();
    let (namespace, reference, address) = if v.starts_with("0x") || v.starts_with("0X") {
        ("eip155", "1", v)
    } else {
        let mut parts = v.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(r), Some(a)) => (n, r, a),
            _ => {
                return Err(IdentifierError::new(
                    "wallet",
                    format!("'{v}' is neither a 0x address nor a CAIP-10 id like eip155:1:0x…"),
                ))
            }
        }
    };
    let ns_ok = (3..=8).contains(&namespace.len())
        && namespace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ns_ok {
        return Err(IdentifierError::new(
            "wallet",
            format!("CAIP-2 namespace '{namespace}' must be 3-8 of [-a-z0-9]"),
        ));
    }
    let ref_ok = (1..=32).contains(&reference.len())
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ref_ok {
        return Err(IdentifierError::new(
            "wallet",
            format!("CAIP-2 reference '{reference}' must be 1-32 of [-_a-zA-Z0-9]"),
        ));
    }
    if namespace == "eip155" {
        // One spelling per chain: `eip155:01` is chain 1.
        let chain: u64 = reference
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| reference.parse().ok())
            .flatten()
            .ok_or_else(|| {
                IdentifierError::new(
                    "wallet",
                    format!("eip155 chain id '{reference}' must be a decimal number"),
                )
            })?;
        let checksummed = eip55_checksum(address)?;
        return Ok(format!("eip155:{chain}:{checksummed}"));
    }
    let addr_ok = (1..=128).contains(&address.len())
        && address
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'%');
    if !addr_ok {
        return Err(IdentifierError::new(
            "wallet",
            format!("account address '{address}' must be 1-128 of [-.%a-zA-Z0-9]"),
        ));
    }
    Ok(format!("{namespace}:{reference}:{address}"))
}

/// EIP-55 mixed-case checksum of a 20-byte hex address.
pub fn eip55_checksum(address: &str) -> Result<String, IdentifierError> {
    let hex_part = address
        .strip_prefix("0x")
        .or_else(|| address.strip_prefix("0X"))
        .ok_or_else(|| IdentifierError::new("wallet", format!("'{address}' must start with 0x")))?;
    if hex_part.len() != 40 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(IdentifierError::new(
            "wallet",
            format!("'{address}' must be 0x followed by 40 hex digits"),
        ));
    }
    let lower = hex_part.to_ascii_lowercase();
    let hash = Keccak256::digest(lower.as_bytes());
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
        if c.is_ascii_alphabetic() && nibble >= 8 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    let mixed = hex_part.bytes().any(|b| b.is_ascii_lowercase())
        && hex_part.bytes().any(|b| b.is_ascii_uppercase());
    if mixed && out[2..] != *hex_part {
        return Err(IdentifierError::new(
            "wallet",
            format!("'{address}' has a wrong EIP-55 checksum (expected {out})"),
        ));
    }
    Ok(out)
}

/// Networks whose handles are case-insensitive and which have well-known trait names.
pub const SOCIAL_NETWORKS: &[&str] = &[
    "x",
    "twitter",
    "instagram",
    "facebook",
    "linkedin",
    "github",
    "tiktok",
    "youtube",
    "reddit",
    "discord",
    "telegram",
    "farcaster",
    "mastodon",
    "bluesky",
    "threads",
    "lens",
    "nostr",
];

/// Other names of networks, and the one each is stored under.
const NETWORK_ALIASES: &[(&str, &str)] = &[
    ("twitter", "x"),
    ("bsky", "bluesky"),
    ("ig", "instagram"),
    ("fb", "facebook"),
    ("gh", "github"),
    ("li", "linkedin"),
];

/// `network:handle`, both lower-cased; leading `@`s dropped; a profile URL
/// (`https://x.com/ann`, `bsky.app/profile/ann.bsky.social`) taken for its handle, a
/// Mastodon URL as `user@instance`; other names of a network (`twitter`, `bsky`) are its
/// own (`x`, `bluesky`).
pub fn normalize_social(network: &str, handle: &str) -> Result<String, IdentifierError> {
    let mut network = network.trim().to_ascii_lowercase();
    if let Some((_, to)) = NETWORK_ALIASES.iter().find(|(from, _)| *from == network) {
        network = to.to_string();
    }
    let from_url = handle_from_url(&network, handle.trim());
    let handle = from_url.as_deref().unwrap_or(handle);
    if network.is_empty()
        || network.len() > 32
        || !network
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(IdentifierError::new(
            "social",
            format!("network '{network}' must be 1-32 of [a-z0-9_.-]"),
        ));
    }
    let handle = handle.trim().trim_start_matches('@').to_lowercase();
    if handle.is_empty() || handle.len() > 100 {
        return Err(IdentifierError::new(
            "social",
            "handle must be 1-100 characters",
        ));
    }
    if handle.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(IdentifierError::new(
            "social",
            format!("handle '{handle}' must not contain spaces"),
        ));
    }
    // A '/' left over is neither a handle nor a profile URL we could read; refused, so a
    // stored handle never reads as a URL when parsed again (found by fuzzing).
    if handle.contains('/') {
        return Err(IdentifierError::new(
            "social",
            format!("handle '{handle}' must not contain '/': give the handle or the profile's URL"),
        ));
    }
    Ok(format!("{network}:{handle}"))
}

/// The handle in a profile URL, if `handle` is one (with or without its scheme).
fn handle_from_url(network: &str, handle: &str) -> Option<String> {
    let lower = handle.to_ascii_lowercase();
    let with_scheme = if lower.starts_with("http://") || lower.starts_with("https://") {
        handle.to_string()
    } else if handle.contains('/') && !handle.starts_with('@') {
        format!("https://{handle}")
    } else {
        return None;
    };
    let url = url::Url::parse(&with_scheme).ok()?;
    let host = url.host_str()?.trim_start_matches("www.").to_string();
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    // bsky.app/profile/<handle>, linkedin.com/in/<handle>: the segment after the marker.
    let user = match segments.as_slice() {
        ["profile", h, ..] | ["in", h, ..] | ["u", h, ..] | ["user", h, ..] => *h,
        [h, ..] => *h,
        [] => return None,
    };
    let user = user.trim_start_matches('@');
    if network == "mastodon" && !user.contains('@') {
        return Some(format!("{user}@{host}"));
    }
    Some(user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails_are_lowercased_and_validated() {
        assert_eq!(
            normalize_email("  Ann.Lee@Example.COM ").unwrap(),
            "ann.lee@example.com"
        );
        assert!(normalize_email("ann@").is_err());
        assert!(normalize_email("ann@gmail").is_err());
        assert!(normalize_email("not an email").is_err());
    }

    #[test]
    fn emails_have_one_form_however_typed() {
        let one = |a: &str| normalize_email(a).unwrap();
        // Display names and mailto: are dropped.
        assert_eq!(one("Ann Lee <AnnLee@Gmail.com>"), "annlee@gmail.com");
        assert_eq!(one("\"Lee, Ann\" <annlee@gmail.com>"), "annlee@gmail.com");
        assert_eq!(one("mailto:annlee@gmail.com"), "annlee@gmail.com");
        // Unicode: NFD and NFC are one; İ lower-cases to a plain i, and what is stored
        // parses back to itself.
        assert_eq!(one("jose\u{301}@x.com"), one("jos\u{e9}@x.com"));
        let inci = one("İNCİ@s2.com");
        assert_eq!(inci, "inci@s2.com");
        assert_eq!(one(&inci), inci);
        // IDN: U-label, A-label and full-width are one domain, kept readable.
        assert_eq!(one("ann@café.fr"), "ann@café.fr");
        assert_eq!(one("ann@xn--caf-dma.fr"), "ann@café.fr");
        assert_eq!(one("ann@ＣＡＦÉ．fr"), "ann@café.fr");
        // Plus-addressing and dots stay distinct (docs/identity.md).
        assert_ne!(one("ann+x@gmail.com"), one("ann@gmail.com"));
        assert_ne!(one("a.nn@gmail.com"), one("ann@gmail.com"));
        assert!(normalize_email("Ann <>").is_err());
        assert!(normalize_email("ann@-bad-.com").is_err());
    }

    #[test]
    fn one_canonical_form_each() {
        let one = |k: IdentityKind, v: &str| IdentityKey::parse(k, v).unwrap().value;
        use IdentityKind::*;
        // Extensions: kept, in every spelling; the base number is another identity.
        assert_eq!(one(Phone, "+1 415 555 0102 ext. 23"), "+14155550102;ext=23");
        assert_eq!(one(Phone, "+14155550102;ext=23"), "+14155550102;ext=23");
        assert_eq!(one(Phone, "+1 415 555 0102 x23"), "+14155550102;ext=23");
        assert_eq!(one(Phone, "+14155550102"), "+14155550102");
        assert!(IdentityKey::parse(Phone, "+14155550102;ext=").is_err());
        // Found by fuzzing: read as +375800692, which is not itself valid.
        assert!(IdentityKey::parse(Phone, "]!d$!+3758088006z2").is_err());
        assert_eq!(
            one(
                Wallet,
                "eip155:01:0x52908400098527886E0F7030069857D2E4169EE7"
            ),
            one(Wallet, "0x52908400098527886E0F7030069857D2E4169EE7")
        );
        for h in [
            "x:@@Ann",
            "twitter:ann",
            "x:https://x.com/ann?s=20",
            "x:x.com/Ann/",
        ] {
            assert_eq!(one(Social, h), "x:ann", "{h}");
        }
        assert_eq!(
            one(Social, "bsky:https://bsky.app/profile/ann.bsky.social"),
            "bluesky:ann.bsky.social"
        );
        assert_eq!(
            one(Social, "mastodon:https://mastodon.social/@ann"),
            "mastodon:ann@mastodon.social"
        );
        assert_eq!(
            one(Social, "linkedin:https://www.linkedin.com/in/ann-lee/"),
            "linkedin:ann-lee"
        );
        assert_eq!(one(External, "CRM:Ab7"), "crm:Ab7");
        // Found by fuzzing: `@r///l` was stored as `r///l`, which then read as a URL.
        assert!(IdentityKey::parse(Social, "w:@r///l~.|").is_err());
    }

    #[test]
    fn phones_become_e164() {
        assert_eq!(
            normalize_phone("+44 20 7946 0958").unwrap(),
            "+442079460958"
        );
        assert_eq!(
            normalize_phone("+1 (415) 555-2671").unwrap(),
            "+14155552671"
        );
        assert!(normalize_phone("555-2671").is_err());
        assert!(normalize_phone("+1 000").is_err());
    }

    #[test]
    fn wallets_get_eip55_checksums() {
        // Test vectors from EIP-55.
        for addr in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            assert_eq!(eip55_checksum(&addr.to_lowercase()).unwrap(), addr);
            assert_eq!(normalize_wallet(addr).unwrap(), format!("eip155:1:{addr}"));
        }
        assert_eq!(
            normalize_wallet("eip155:137:0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED").unwrap(),
            "eip155:137:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        );
        // Mixed case with one letter flipped: a typo.
        assert!(normalize_wallet("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD").is_err());
        assert!(normalize_wallet("0x1234").is_err());
        assert!(
            normalize_wallet("eip155:mainnet:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").is_err()
        );
        assert_eq!(
            normalize_wallet("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp:7S3P4HxJpyyigGzodYwHtCxZyUQe9JiBMHyRWXArAaKv").unwrap(),
            "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp:7S3P4HxJpyyigGzodYwHtCxZyUQe9JiBMHyRWXArAaKv"
        );
    }

    #[test]
    fn social_handles() {
        assert_eq!(normalize_social("Twitter", "@Alice").unwrap(), "x:alice");
        assert_eq!(
            normalize_social("mastodon", "bob@mastodon.social").unwrap(),
            "mastodon:bob@mastodon.social"
        );
        assert!(normalize_social("x", "two words").is_err());
        assert!(normalize_social("", "a").is_err());
    }

    #[test]
    fn prefixed_forms() {
        let k = IdentityKey::parse_prefixed("email:A@B.co").unwrap();
        assert_eq!(k.to_string(), "email:a@b.co");
        let k = IdentityKey::parse_prefixed("social:twitter:@Bob").unwrap();
        assert_eq!(k.to_string(), "social:x:bob");
        let k = IdentityKey::parse_prefixed("42").unwrap();
        assert_eq!(k.kind, IdentityKind::UserId);
        let k = IdentityKey::parse_prefixed("wallet:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
            .unwrap();
        assert_eq!(
            k.value,
            "eip155:1:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        );
    }

    proptest! {
        // Normalisation is idempotent: a stored value parses to itself.
        #[test]
        fn email_normalisation_is_idempotent(local in "[a-zA-Z0-9._%+-]{1,20}", domain in "[a-zA-Z0-9-]{1,15}\\.[a-zA-Z]{2,6}") {
            let raw = format!("{local}@{domain}");
            if let Ok(n) = normalize_email(&raw) {
                prop_assert_eq!(normalize_email(&n).unwrap(), n);
            }
        }

        #[test]
        fn wallet_checksum_roundtrips(bytes in proptest::collection::vec(any::<u8>(), 20)) {
            let lower = format!("0x{}", hex::encode(&bytes));
            let c = eip55_checksum(&lower).unwrap();
            prop_assert_eq!(c.to_lowercase(), lower.clone());
            prop_assert_eq!(eip55_checksum(&c).unwrap(), c.clone());
            prop_assert_eq!(eip55_checksum(&lower.to_uppercase().replacen("0X", "0x", 1)).unwrap(), c);
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,80}") {
            for k in IdentityKind::ALL {
                let _ = IdentityKey::parse(k, &s);
            }
            let _ = IdentityKey::parse_prefixed(&s);
        }
    }
}
