//! A/B tests of a campaign: which people are in the test sample, which variant each
//! gets, and the winner. Sample and variant are drawn from a hash of campaign × person,
//! not stored, so planning can stop and resume (or the audience change) and every person
//! keeps the same draw.

use serde::{Deserialize, Serialize};

/// What a winner is chosen by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Messages opened by a person (machine opens left out) per message sent.
    Open,
    /// Messages with a click per message sent.
    Click,
}

/// One variant's test messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tally {
    pub sent: i64,
    pub opened: i64,
    pub clicked: i64,
}

impl Tally {
    /// The metric's rate, 0 when nothing was sent.
    pub fn rate(&self, metric: Metric) -> f64 {
        if self.sent <= 0 {
            return 0.0;
        }
        let hits = match metric {
            Metric::Open => self.opened,
            Metric::Click => self.clicked,
        };
        hits as f64 / self.sent as f64
    }
}

/// A well-mixed 64-bit hash of campaign × person (SplitMix64's finaliser): stable across
/// releases and platforms, unlike the standard library's hasher.
fn draw(campaign: i64, person: i64) -> u64 {
    let mut z = (campaign as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(person as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether the person is in the test sample of `percent` (1–100) of the audience.
pub fn in_sample(campaign: i64, person: i64, percent: u8) -> bool {
    draw(campaign, person) % 100 < u64::from(percent)
}

/// The variant (0-based, of `variants`) a person in the sample gets.
pub fn variant(campaign: i64, person: i64, variants: usize) -> usize {
    // The sample took the low digits; the variant takes independent high bits.
    ((draw(campaign, person) >> 32) % variants.max(1) as u64) as usize
}

/// The winning variant: the highest rate; a tie goes to the earlier variant (the first is
/// the control), and so does a test where nothing was sent.
pub fn winner(tallies: &[Tally], metric: Metric) -> usize {
    let mut best = 0;
    for (i, t) in tallies.iter().enumerate() {
        if t.rate(metric) > tallies[best].rate(metric) {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(sent: i64, opened: i64, clicked: i64) -> Tally {
        Tally {
            sent,
            opened,
            clicked,
        }
    }

    #[test]
    fn rates() {
        assert_eq!(t(10, 4, 1).rate(Metric::Open), 0.4);
        assert_eq!(t(10, 4, 1).rate(Metric::Click), 0.1);
        assert_eq!(t(0, 0, 0).rate(Metric::Open), 0.0);
    }

    #[test]
    fn winner_by_metric_ties_to_the_earlier() {
        let ts = [t(100, 30, 2), t(100, 20, 9), t(100, 30, 1)];
        assert_eq!(winner(&ts, Metric::Open), 0);
        assert_eq!(winner(&ts, Metric::Click), 1);
        assert_eq!(winner(&[t(50, 10, 0), t(100, 30, 0)], Metric::Open), 1);
        assert_eq!(winner(&[], Metric::Open), 0);
        assert_eq!(winner(&[t(0, 0, 0), t(0, 0, 0)], Metric::Click), 0);
    }

    /// The draw is part of the stored campaigns' meaning (a restart must draw every
    /// person alike): these values must never change.
    #[test]
    fn draws_are_fixed_forever() {
        assert_eq!(draw(1, 1), 10_451_216_379_200_822_465);
        assert_eq!(draw(7, 12_345), 2_262_534_019_502_804_546);
        assert_eq!(variant(7, 12_345, 3), 2);
        assert!(in_sample(7, 12_345, 47) && !in_sample(7, 12_345, 46));
    }

    #[test]
    fn sample_and_variants_are_even_and_stable() {
        let people = 0..20_000i64;
        let sampled: Vec<i64> = people.clone().filter(|p| in_sample(7, *p, 20)).collect();
        // 20% of 20,000 = 4,000; a fair draw lands within 3 standard deviations (~170).
        assert!(
            (3_830..=4_170).contains(&sampled.len()),
            "{}",
            sampled.len()
        );
        let mut per = [0usize; 3];
        for p in &sampled {
            per[variant(7, *p, 3)] += 1;
        }
        for n in per {
            assert!((1_180..=1_490).contains(&n), "{per:?}");
        }
        // The same person draws the same; another campaign draws anew.
        assert!(sampled.iter().all(|p| in_sample(7, *p, 20)));
        let other = people.filter(|p| in_sample(8, *p, 20)).count();
        let both = sampled.iter().filter(|p| in_sample(8, **p, 20)).count();
        assert!(both < other / 2, "{both} of {other}");
        assert!((0..1000).all(|p| in_sample(1, p, 100)));
        assert!((0..1000).all(|p| variant(1, p, 1) == 0));
    }
}
