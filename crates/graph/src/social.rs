//! Social value of a customer beside their value as a buyer, with an explanation a
//! marketer can read. Formulas (docs/graph.md):
//!
//! - **evangelist** = 5·referrals that converted + 1·referrals + 3·answers marked
//!   helpful + 1·answers + 1·positive mentions − 1·negative mentions (at least 0);
//! - **syndication** (value as a connector) = audience × activity × brokerage, where
//!   audience = ln(1 + reach within two hops), activity = share of the last 90 days on
//!   which the person did anything, brokerage = 1 + betweenness percentile (1 to 2).
//!
//! An influencer explanation lists each factor with its value and percentile.

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct SocialInputs {
    pub referrals: u64,
    pub referrals_converted: u64,
    pub answers: u64,
    pub answers_helpful: u64,
    pub mentions_positive: u64,
    pub mentions_negative: u64,
    pub reach2: u64,
    pub active_days_90: u32,
    /// Percentile of betweenness among all people, 0..1.
    pub betweenness_percentile: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Factor {
    pub name: &'static str,
    pub value: f64,
    pub contribution: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SocialValue {
    pub evangelist: f64,
    pub syndication: f64,
    pub evangelist_factors: Vec<Factor>,
    pub syndication_factors: Vec<Factor>,
}

pub fn social_value(i: &SocialInputs) -> SocialValue {
    let terms = [
        ("referrals_converted", i.referrals_converted as f64, 5.0),
        ("referrals", i.referrals as f64, 1.0),
        ("answers_helpful", i.answers_helpful as f64, 3.0),
        ("answers", i.answers as f64, 1.0),
        ("mentions_positive", i.mentions_positive as f64, 1.0),
        ("mentions_negative", i.mentions_negative as f64, -1.0),
    ];
    let evangelist_factors: Vec<Factor> = terms
        .iter()
        .map(|&(name, value, k)| Factor {
            name,
            value,
            contribution: k * value + 0.0, // no "-0" in explanations
        })
        .collect();
    let evangelist = evangelist_factors
        .iter()
        .map(|f| f.contribution)
        .sum::<f64>()
        .max(0.0);
    let audience = (1.0 + i.reach2 as f64).ln();
    let activity = (i.active_days_90.min(90) as f64) / 90.0;
    let brokerage = 1.0 + i.betweenness_percentile.clamp(0.0, 1.0);
    SocialValue {
        evangelist,
        syndication: audience * activity * brokerage,
        evangelist_factors,
        syndication_factors: vec![
            Factor {
                name: "audience",
                value: i.reach2 as f64,
                contribution: audience,
            },
            Factor {
                name: "activity",
                value: i.active_days_90 as f64,
                contribution: activity,
            },
            Factor {
                name: "brokerage",
                value: i.betweenness_percentile,
                contribution: brokerage,
            },
        ],
    }
}

/// Percentile rank (0..1) of each value: the share of values strictly below it.
pub fn percentiles(values: &[f64]) -> Vec<f64> {
    let n = values.len();
    if n == 0 {
        return vec![];
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j < n && values[idx[j]] == values[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..j] {
            out[k] = i as f64 / n as f64;
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evangelist_counts_what_helped_and_never_goes_negative() {
        let v = social_value(&SocialInputs {
            referrals: 4,
            referrals_converted: 2,
            answers_helpful: 1,
            answers: 3,
            mentions_positive: 2,
            ..Default::default()
        });
        assert_eq!(v.evangelist, 10.0 + 4.0 + 3.0 + 3.0 + 2.0);
        let grumpy = social_value(&SocialInputs {
            mentions_negative: 9,
            ..Default::default()
        });
        assert_eq!(grumpy.evangelist, 0.0);
    }

    #[test]
    fn syndication_needs_reach_activity_and_brokerage() {
        let idle = social_value(&SocialInputs {
            reach2: 1000,
            ..Default::default()
        });
        assert_eq!(idle.syndication, 0.0);
        let v = social_value(&SocialInputs {
            reach2: 1000,
            active_days_90: 45,
            betweenness_percentile: 1.0,
            ..Default::default()
        });
        assert!((v.syndication - (1001f64).ln() * 0.5 * 2.0).abs() < 1e-12);
    }

    #[test]
    fn percentiles_share_ties() {
        assert_eq!(
            percentiles(&[3.0, 1.0, 3.0, 2.0]),
            vec![0.5, 0.0, 0.5, 0.25]
        );
    }
}
