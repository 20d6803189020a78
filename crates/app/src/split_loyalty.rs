//! Split loyalty made visible (docs/loyalty.md): the brand names its competitors (names,
//! products, token contracts) and each score run counts, per person, the competitor
//! tokens their wallets hold, their texts naming a competitor, and a purchase gap past
//! their own rhythm, into the `split_loyalty` score with its explanation
//! (`rapport_domain::split_loyalty`), usable as `score.split_loyalty` in segments.

use std::collections::HashMap;

use rapport_domain::identifier::{IdentityKey, IdentityKind};
use rapport_domain::resolve::ProfileId;
use rapport_domain::split_loyalty::{self, Gap, Signals, TokenHeld};
use rapport_domain::time::now_millis;
use rapport_store::{DynStore, ScoreRow, StoreError};
use serde::{Deserialize, Serialize};

pub const SETTINGS_KEY: &str = "loyalty.competitors";
/// The score's name.
pub const SCORE: &str = "split_loyalty";
const DAY: i64 = 86_400_000;
/// Texts read per score run at most.
const TEXTS: usize = 200_000;

fn invalid(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::invalid(field, reason)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Competitor {
    pub name: String,
    /// Product names customers may write.
    #[serde(default)]
    pub products: Vec<String>,
    /// Followed token contracts (symbol or address) that are theirs.
    #[serde(default)]
    pub tokens: Vec<String>,
}

/// `GET|PUT /api/loyalty/competitors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Competitors {
    pub competitors: Vec<Competitor>,
    /// How far back texts count.
    pub mention_days: i64,
}

impl Default for Competitors {
    fn default() -> Self {
        Competitors {
            competitors: Vec::new(),
            mention_days: 180,
        }
    }
}

pub async fn settings(store: &DynStore) -> Result<Competitors, StoreError> {
    crate::stored_settings(store, SETTINGS_KEY).await
}

pub async fn set_settings(store: &DynStore, s: Competitors) -> Result<Competitors, StoreError> {
    if s.competitors.len() > 50 {
        return Err(invalid("competitors", "at most 50"));
    }
    if !(1..=3_650).contains(&s.mention_days) {
        return Err(invalid("mention_days", "from 1 to 3650"));
    }
    let word = |f: String, w: &str| -> Result<(), StoreError> {
        let t = w.trim();
        if t.chars().count() < 2 || t.chars().count() > 100 || t != w {
            return Err(invalid(&f, "2 to 100 characters, no surrounding spaces"));
        }
        Ok(())
    };
    for (i, c) in s.competitors.iter().enumerate() {
        word(format!("competitors[{i}].name"), &c.name)?;
        if c.products.len() > 100 || c.tokens.len() > 20 {
            return Err(invalid(
                &format!("competitors[{i}]"),
                "at most 100 products and 20 tokens",
            ));
        }
        for (j, p) in c.products.iter().enumerate() {
            word(format!("competitors[{i}].products[{j}]"), p)?;
        }
        for (j, t) in c.tokens.iter().enumerate() {
            crate::chain::find_contract(store, t.trim(), None)
                .await
                .map_err(|e| {
                    crate::loyalty::renamed(e, &format!("competitors[{i}].tokens[{j}]"))
                })?;
        }
    }
    let v = serde_json::to_value(&s).map_err(|e| StoreError::Backend(e.to_string()))?;
    store.set_setting(SETTINGS_KEY, v, now_millis()).await?;
    Ok(s)
}

/// The score rows of a run: one per person with a signal. `purchase` is the event and
/// window RFM uses (the same orders).
pub async fn compute(
    store: &DynStore,
    purchase: (&str, &str, i64),
    now: i64,
) -> Result<Vec<ScoreRow>, StoreError> {
    let s = settings(store).await?;
    if s.competitors.is_empty() {
        return Ok(Vec::new());
    }
    let mut signals: HashMap<ProfileId, Signals> = HashMap::new();
    // Competitor tokens held.
    let contracts = store.contracts().await?;
    for c in &s.competitors {
        for t in &c.tokens {
            let t = t.trim();
            let Some(k) = contracts
                .iter()
                .find(|k| k.symbol == t || k.address.eq_ignore_ascii_case(t))
            else {
                continue;
            };
            let holders = store.holders(&k.chain_id, &k.address, 1_000_000).await?;
            let held: Vec<_> = holders.into_iter().filter(|h| h.amount > 0.0).collect();
            let keys: Vec<Option<IdentityKey>> = held
                .iter()
                .map(|h| IdentityKey::parse(IdentityKind::Wallet, &h.wallet).ok())
                .collect();
            let found = store
                .lookup_many(keys.iter().flatten().cloned().collect())
                .await?;
            let mut found = found.into_iter();
            let mut raw = Vec::new();
            for (h, k) in held.iter().zip(&keys) {
                if k.is_some() {
                    if let Some(Some(p)) = found.next() {
                        raw.push((p, h));
                    }
                }
            }
            let canonical: HashMap<ProfileId, ProfileId> = store
                .canonical_ids(raw.iter().map(|(p, _)| *p).collect())
                .await?
                .into_iter()
                .collect();
            for (p, h) in raw {
                let person = canonical.get(&p).copied().unwrap_or(p);
                signals.entry(person).or_default().tokens.push(TokenHeld {
                    competitor: c.name.clone(),
                    token: k.symbol.clone(),
                    amount: h.amount,
                });
            }
        }
    }
    // Texts naming a competitor or its products.
    let words: Vec<(usize, String)> = s
        .competitors
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            std::iter::once(c.name.to_lowercase())
                .chain(c.products.iter().map(|p| p.to_lowercase()))
                .map(move |w| (i, w))
        })
        .collect();
    let texts = store
        .texts_mentioning(
            words.iter().map(|(_, w)| w.clone()).collect(),
            now - s.mention_days * DAY,
            TEXTS,
        )
        .await?;
    for (person, text) in texts {
        let mut named = vec![false; s.competitors.len()];
        for (i, w) in &words {
            if !named[*i] && split_loyalty::names(&text, w) {
                named[*i] = true;
            }
        }
        let sig = signals.entry(person).or_default();
        for (i, n) in named.into_iter().enumerate() {
            if n {
                let name = &s.competitors[i].name;
                match sig.mentions.iter_mut().find(|m| &m.0 == name) {
                    Some(m) => m.1 += 1,
                    None => sig.mentions.push((name.clone(), 1)),
                }
            }
        }
    }
    // Purchase gaps, for people with another signal or none: everyone who bought.
    let (event, revenue, window_days) = purchase;
    for p in store
        .purchase_stats(event, revenue, now - window_days * DAY, now)
        .await?
    {
        let Some(first) = p.first_at else {
            continue;
        };
        if p.count < 2 || p.last_at <= first {
            continue;
        }
        let usual = (p.last_at - first) as f64 / DAY as f64 / (p.count - 1) as f64;
        signals.entry(p.profile_id).or_default().gap = Some(Gap {
            days_since: (now - p.last_at) as f64 / DAY as f64,
            usual_days: usual,
            orders: p.count,
        });
    }
    Ok(signals
        .into_iter()
        .filter_map(|(id, sig)| {
            split_loyalty::score(&sig).map(|(value, explanation)| ScoreRow {
                name: SCORE.into(),
                profile_id: id,
                value,
                explanation,
                computed_at: now,
            })
        })
        .collect())
}
