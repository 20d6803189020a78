//! [`InsightStore`] and the shapes it speaks; implemented in `sqlite/insight.rs` and
//! `postgres/insight.rs`: people grouped by one dimension (exact counts, which the app
//! only releases with noise and above a minimum group size), and partners' daily
//! privacy budgets.

use crate::{Compiled, Result};
use async_trait::async_trait;

/// What an audience is broken down by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dimension {
    /// A top-level trait of the person's (canonical) profile, e.g. `country`.
    Trait(String),
    /// The community of the latest graph run.
    Community,
    /// The channel of the person's latest event.
    Channel,
}

impl Dimension {
    /// `traits.<key>`, `country`, `tier`, `community` or `channel`; None otherwise.
    pub fn parse(s: &str) -> Option<Dimension> {
        let key = |k: &str| {
            (!k.is_empty()
                && k.len() <= 64
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .then(|| Dimension::Trait(k.to_string()))
        };
        match s {
            "community" => Some(Dimension::Community),
            "channel" => Some(Dimension::Channel),
            "country" | "tier" => key(s),
            _ => key(s.strip_prefix("traits.")?),
        }
    }

    /// The SQL expression giving a person's group (`p` is their canonical profile).
    pub(crate) fn sql(&self, sqlite: bool) -> String {
        match (self, sqlite) {
            // Keys are checked to [A-Za-z0-9_] by `parse`.
            (Dimension::Trait(k), true) => format!("CAST(json_extract(p.traits, '$.{k}') AS TEXT)"),
            (Dimension::Trait(k), false) => format!("(p.traits ->> '{k}')"),
            (Dimension::Community, true) => {
                "CAST((SELECT g.community FROM graph_scores g WHERE g.profile_id = p.id) AS TEXT)".into()
            }
            (Dimension::Community, false) => {
                "(SELECT g.community::text FROM graph_scores g WHERE g.profile_id = p.id)".into()
            }
            (Dimension::Channel, _) => {
                "(SELECT e.channel FROM events e WHERE e.profile_id = p.id ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1)".into()
            }
        }
    }
}

#[async_trait]
pub trait InsightStore: Send + Sync {
    /// The people `c` selects, counted per group of `by` (None: no value), exactly.
    async fn breakdown(&self, c: Compiled, by: Dimension) -> Result<Vec<(Option<String>, i64)>>;
    /// Spends `epsilon` of key `key_id`'s budget for `day` when what was spent plus
    /// `epsilon` stays within `budget`; returns what is spent after, or None (refused,
    /// nothing spent). Atomic: concurrent queries cannot overspend.
    async fn spend(&self, key_id: i64, day: i64, epsilon: f64, budget: f64) -> Result<Option<f64>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_parse_and_refuse_what_is_not_a_key() {
        assert_eq!(
            Dimension::parse("country"),
            Some(Dimension::Trait("country".into()))
        );
        assert_eq!(
            Dimension::parse("traits.plan_2"),
            Some(Dimension::Trait("plan_2".into()))
        );
        assert_eq!(Dimension::parse("community"), Some(Dimension::Community));
        assert_eq!(Dimension::parse("channel"), Some(Dimension::Channel));
        for bad in ["traits.", "traits.a'b", "traits.a.b", "email", ""] {
            assert_eq!(Dimension::parse(bad), None, "{bad}");
        }
    }
}
