//! Rapport's web3 side. Pure modules (`abi`, `ledger`, `siwe`) hold the rules; `rpc`
//! and `wallet` are the connector at the edge: Ethereum JSON-RPC over HTTP and the
//! brand's hot wallet that signs transactions.

pub mod abi;
pub mod devnode;
pub mod ledger;
pub mod rpc;
pub mod siwe;
pub mod wallet;

pub use alloy_primitives::{hex, Address, B256, I256, U256};

/// A CAIP-2 chain id for an EVM chain (`eip155:<n>`) and its numeric id.
pub fn parse_caip2(s: &str) -> Option<u64> {
    let n = s.strip_prefix("eip155:")?;
    if n.is_empty() || n.len() > 19 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok().filter(|n| *n > 0)
}

/// A wallet as Rapport stores it: CAIP-10 with the EIP-55 checksummed address, the same
/// form `rapport_domain::identifier` gives wallet identities, so holdings join them.
pub fn caip10(chain: &str, a: &Address) -> String {
    format!("{chain}:{}", a.to_checksum(None))
}

/// The address of a CAIP-10 wallet (`eip155:1:0x…`), the inverse of [`caip10`].
pub fn address_of(wallet: &str) -> Option<Address> {
    wallet.rsplit(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caip2() {
        assert_eq!(parse_caip2("eip155:1"), Some(1));
        assert_eq!(parse_caip2("eip155:31337"), Some(31337));
        assert_eq!(parse_caip2("eip155:"), None);
        assert_eq!(parse_caip2("eip155:0"), None);
        assert_eq!(parse_caip2("cosmos:hub"), None);
        assert_eq!(parse_caip2("eip155:1x"), None);
    }

    #[test]
    fn caip10_round_trip() {
        let a = Address::repeat_byte(0xab);
        assert_eq!(address_of(&caip10("eip155:137", &a)), Some(a));
        assert_eq!(address_of("eip155:1:nope"), None);
    }
}
