//! The little of the Ethereum ABI Rapport needs: the `Transfer` event shared by ERC-20
//! and ERC-721 (told apart by their number of topics), and the calls a reward makes.

use alloy_primitives::{keccak256, Address, B256, U256};

/// keccak256("Transfer(address,address,uint256)").
pub fn transfer_topic() -> B256 {
    keccak256(b"Transfer(address,address,uint256)")
}

/// A raw log as `eth_getLogs` returns it (hex strings parsed).
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub address: Address,
    pub topics: Vec<B256>,
    pub data: Vec<u8>,
    pub block_number: u64,
    pub block_hash: B256,
    pub tx_hash: B256,
    pub log_index: u64,
    pub removed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standard {
    Erc20,
    Erc721,
}

impl Standard {
    pub fn as_str(self) -> &'static str {
        match self {
            Standard::Erc20 => "erc20",
            Standard::Erc721 => "erc721",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "erc20" => Some(Standard::Erc20),
            "erc721" => Some(Standard::Erc721),
            _ => None,
        }
    }
}

/// A decoded `Transfer`: an ERC-20 amount or an ERC-721 token id in `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    pub standard: Standard,
    pub contract: Address,
    pub from: Address,
    pub to: Address,
    pub value: U256,
}

fn topic_address(t: &B256) -> Option<Address> {
    // An address topic is left-padded with twelve zero bytes.
    t[..12]
        .iter()
        .all(|b| *b == 0)
        .then(|| Address::from_slice(&t[12..]))
}

/// `Transfer(from, to, value)` with three topics is ERC-20 (value in data); with four it
/// is ERC-721 (token id as the last topic). Anything else is not a transfer.
pub fn decode_transfer(log: &Log) -> Option<Transfer> {
    if log.topics.first() != Some(&transfer_topic()) {
        return None;
    }
    match log.topics.len() {
        3 if log.data.len() == 32 => Some(Transfer {
            standard: Standard::Erc20,
            contract: log.address,
            from: topic_address(&log.topics[1])?,
            to: topic_address(&log.topics[2])?,
            value: U256::from_be_slice(&log.data),
        }),
        4 => Some(Transfer {
            standard: Standard::Erc721,
            contract: log.address,
            from: topic_address(&log.topics[1])?,
            to: topic_address(&log.topics[2])?,
            value: U256::from_be_bytes(log.topics[3].0),
        }),
        _ => None,
    }
}

fn selector(sig: &str) -> [u8; 4] {
    let h = keccak256(sig.as_bytes());
    [h[0], h[1], h[2], h[3]]
}

fn word_address(a: &Address) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[12..].copy_from_slice(a.as_slice());
    w
}

/// Calldata of `transfer(address,uint256)` (ERC-20).
pub fn erc20_transfer(to: &Address, value: U256) -> Vec<u8> {
    let mut out = selector("transfer(address,uint256)").to_vec();
    out.extend_from_slice(&word_address(to));
    out.extend_from_slice(&value.to_be_bytes::<32>());
    out
}

/// Calldata of `mint(address,uint256)` (an ERC-20 the brand owns).
pub fn erc20_mint(to: &Address, value: U256) -> Vec<u8> {
    let mut out = selector("mint(address,uint256)").to_vec();
    out.extend_from_slice(&word_address(to));
    out.extend_from_slice(&value.to_be_bytes::<32>());
    out
}

/// Calldata of `mint(address)` (an ERC-721 the brand owns; the contract picks the id).
pub fn erc721_mint(to: &Address) -> Vec<u8> {
    let mut out = selector("mint(address)").to_vec();
    out.extend_from_slice(&word_address(to));
    out
}

/// Calldata of `airdrop(address[],uint256)` (the test token's batch mint).
pub fn airdrop(to: &[Address], value: U256) -> Vec<u8> {
    addresses_and_value("airdrop(address[],uint256)", to, value)
}

/// Calldata of `emitTransfers(address[],uint256)` (the benchmark's log emitter).
pub fn emit_transfers(to: &[Address], value: U256) -> Vec<u8> {
    addresses_and_value("emitTransfers(address[],uint256)", to, value)
}

fn addresses_and_value(sig: &str, to: &[Address], value: U256) -> Vec<u8> {
    let mut out = selector(sig).to_vec();
    out.extend_from_slice(&U256::from(64u64).to_be_bytes::<32>());
    out.extend_from_slice(&value.to_be_bytes::<32>());
    out.extend_from_slice(&U256::from(to.len()).to_be_bytes::<32>());
    for a in to {
        out.extend_from_slice(&word_address(a));
    }
    out
}

/// Constructor arguments `(string, string)` appended to deployment bytecode.
pub fn constructor_two_strings(a: &str, b: &str) -> Vec<u8> {
    fn padded(s: &str) -> Vec<u8> {
        let mut v = U256::from(s.len()).to_be_bytes::<32>().to_vec();
        v.extend_from_slice(s.as_bytes());
        while !v.len().is_multiple_of(32) {
            v.push(0);
        }
        v
    }
    let (pa, pb) = (padded(a), padded(b));
    let mut out = U256::from(64u64).to_be_bytes::<32>().to_vec();
    out.extend_from_slice(&U256::from(64 + pa.len()).to_be_bytes::<32>());
    out.extend(pa);
    out.extend(pb);
    out
}

/// Decimal string of a token amount in whole units (`decimals` places), for display
/// and for the `amount` the segment language compares.
pub fn units(raw: U256, decimals: u8) -> f64 {
    let s = raw.to_string();
    let v: f64 = s.parse().unwrap_or(f64::MAX);
    v / 10f64.powi(decimals as i32)
}

/// Parse a whole-unit amount ("12.5") into raw units with `decimals` places.
pub fn parse_units(s: &str, decimals: u8) -> Option<U256> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > decimals as usize
    {
        return None;
    }
    let digits = format!("{int}{frac:0<width$}", width = decimals as usize);
    U256::from_str_radix(if digits.is_empty() { "0" } else { &digits }, 10).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_is_the_well_known_one() {
        assert_eq!(
            format!("{:x}", transfer_topic()),
            "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
        );
    }

    #[test]
    fn decodes_erc20_and_erc721() {
        let a = Address::repeat_byte(0x11);
        let b = Address::repeat_byte(0x22);
        let c = Address::repeat_byte(0x33);
        let mut log = Log {
            address: c,
            topics: vec![transfer_topic(), a.into_word(), b.into_word()],
            data: U256::from(500u64).to_be_bytes::<32>().to_vec(),
            block_number: 1,
            block_hash: B256::ZERO,
            tx_hash: B256::ZERO,
            log_index: 0,
            removed: false,
        };
        let t = decode_transfer(&log).unwrap();
        assert_eq!(
            (t.standard, t.from, t.to, t.value),
            (Standard::Erc20, a, b, U256::from(500u64))
        );
        log.topics.push(B256::from(U256::from(7u64)));
        log.data.clear();
        let t = decode_transfer(&log).unwrap();
        assert_eq!((t.standard, t.value), (Standard::Erc721, U256::from(7u64)));
        log.topics[0] = B256::ZERO;
        assert!(decode_transfer(&log).is_none());
    }

    #[test]
    fn selectors_and_units() {
        assert_eq!(
            hex(&erc20_transfer(&Address::ZERO, U256::ZERO)[..4]),
            "a9059cbb"
        );
        assert_eq!(
            hex(&erc20_mint(&Address::ZERO, U256::ZERO)[..4]),
            "40c10f19"
        );
        assert_eq!(
            parse_units("12.5", 18),
            Some(U256::from(12_500_000_000_000_000_000u128))
        );
        assert_eq!(parse_units("3", 0), Some(U256::from(3u64)));
        assert_eq!(parse_units("1.5", 0), None);
        assert_eq!(parse_units("-1", 18), None);
        assert_eq!(parse_units("", 18), None);
        assert!((units(U256::from(12_500_000_000_000_000_000u128), 18) - 12.5).abs() < 1e-12);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }
}
