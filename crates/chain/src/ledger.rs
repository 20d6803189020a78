//! Holdings: what each wallet holds of each tracked token, kept by replaying `Transfer`s
//! in chain order. One function moves value forward; a re-org is handled by replaying
//! the surviving transfers of the wallets it touched from zero (see the app's chain
//! worker), so there is no separate "undo" to get wrong.

use std::collections::{BTreeSet, HashMap};

use alloy_primitives::{Address, I256, U256};

use crate::abi::{Standard, Transfer};

/// One wallet's position in one token. `balance` is signed: when a back-fill starts
/// after a token's first block, a wallet may send what Rapport never saw arrive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Holding {
    pub balance: I256,
    /// ERC-721 token ids held now.
    pub token_ids: BTreeSet<U256>,
    /// Since when the balance has been positive without a break (ms), if it is.
    pub held_since: Option<i64>,
    /// Everything received from the brand (its wallets, or mints of its own tokens).
    pub from_brand: U256,
    pub first_received_at: Option<i64>,
    pub last_activity_at: Option<i64>,
}

impl Holding {
    pub fn holds(&self) -> bool {
        self.balance > I256::ZERO
    }
}

/// Holdings keyed by (contract, wallet).
pub type Book = HashMap<(Address, Address), Holding>;

fn signed(v: U256) -> I256 {
    I256::try_from(v).unwrap_or(I256::MAX)
}

/// Moves one transfer's value at time `at` (ms). The zero address is neither credited
/// nor debited (mints and burns). An ERC-721 transfer moves one token id.
pub fn apply(book: &mut Book, t: &Transfer, at: i64, from_brand: bool) {
    let amount = match t.standard {
        Standard::Erc20 => signed(t.value),
        Standard::Erc721 => I256::ONE,
    };
    if !t.from.is_zero() {
        let h = book.entry((t.contract, t.from)).or_default();
        h.balance = h.balance.saturating_sub(amount);
        if t.standard == Standard::Erc721 {
            h.token_ids.remove(&t.value);
        }
        if !h.holds() {
            h.held_since = None;
        }
        h.last_activity_at = Some(at);
    }
    if !t.to.is_zero() {
        let h = book.entry((t.contract, t.to)).or_default();
        let held = h.holds();
        h.balance = h.balance.saturating_add(amount);
        if t.standard == Standard::Erc721 {
            h.token_ids.insert(t.value);
        }
        if !held && h.holds() {
            h.held_since = Some(at);
        }
        if from_brand {
            h.from_brand = h.from_brand.saturating_add(match t.standard {
                Standard::Erc20 => t.value,
                Standard::Erc721 => U256::from(1u64),
            });
        }
        h.first_received_at.get_or_insert(at);
        h.last_activity_at = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(i: u8) -> Address {
        if i == 0 {
            Address::ZERO
        } else {
            Address::repeat_byte(i)
        }
    }

    #[test]
    fn mint_transfer_burn() {
        let c = addr(9);
        let mut b = Book::new();
        let t = |from, to, v: u64| Transfer {
            standard: Standard::Erc20,
            contract: c,
            from: addr(from),
            to: addr(to),
            value: U256::from(v),
        };
        apply(&mut b, &t(0, 1, 100), 10, true);
        apply(&mut b, &t(1, 2, 40), 20, false);
        apply(&mut b, &t(1, 0, 60), 30, false);
        let h1 = &b[&(c, addr(1))];
        assert_eq!(h1.balance, I256::ZERO);
        assert_eq!(h1.held_since, None);
        assert_eq!(h1.from_brand, U256::from(100u64));
        let h2 = &b[&(c, addr(2))];
        assert_eq!(h2.balance, I256::try_from(40).unwrap());
        assert_eq!(h2.held_since, Some(20));
        assert!(!b.contains_key(&(c, Address::ZERO)));
    }

    proptest! {
        /// Conservation (ERC-20 balances add up to mints minus burns), one owner per
        /// token id, and `held_since` set exactly when a balance is positive.
        #[test]
        fn ledger_invariants(ops in proptest::collection::vec((0u8..5, 0u8..5, 0u64..1000, any::<bool>()), 0..200)) {
            let c20 = addr(100);
            let c721 = addr(101);
            let mut b = Book::new();
            let mut minted = I256::ZERO;
            let mut owner: HashMap<U256, Address> = HashMap::new();
            for (i, (from, to, v, nft)) in ops.into_iter().enumerate() {
                if from == to { continue; }
                let at = i as i64;
                if nft {
                    let id = U256::from(v % 20);
                    // Only the current owner (or a mint of an unminted id) can move it.
                    let cur = owner.get(&id).copied().unwrap_or(Address::ZERO);
                    if cur != addr(from) { continue; }
                    apply(&mut b, &Transfer { standard: Standard::Erc721, contract: c721, from: addr(from), to: addr(to), value: id }, at, from == 0);
                    if to == 0 { owner.remove(&id); } else { owner.insert(id, addr(to)); }
                } else {
                    apply(&mut b, &Transfer { standard: Standard::Erc20, contract: c20, from: addr(from), to: addr(to), value: U256::from(v) }, at, from == 0);
                    if from == 0 { minted += I256::try_from(v).unwrap(); }
                    if to == 0 { minted -= I256::try_from(v).unwrap(); }
                }
            }
            let total: I256 = b.iter().filter(|((c, _), _)| *c == c20).fold(I256::ZERO, |s, (_, h)| s + h.balance);
            prop_assert_eq!(total, minted);
            for ((c, w), h) in &b {
                prop_assert_eq!(h.held_since.is_some(), h.holds());
                if *c == c721 {
                    prop_assert_eq!(h.balance, I256::try_from(h.token_ids.len()).unwrap());
                    for id in &h.token_ids { prop_assert_eq!(owner.get(id), Some(w)); }
                }
            }
        }
    }
}
