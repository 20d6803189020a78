//! Split loyalty: how much a customer's loyalty is shared with competitors, from three
//! signals, each a part in 0..1 combined as independent chances (1 − Π(1 − part)):
//!
//! - **tokens**: holding a competitor's token or NFT — 0.6 (any amount);
//! - **mentions**: texts naming a competitor or its products — 0.15 per text, at most
//!   0.45 (three texts);
//! - **purchase gap**: a repeat buyer whose time since the last order is well past
//!   their own rhythm — from 1.5× their usual interval up, 0.4 at 3× and beyond.
//!
//! The weights are the product's defaults, documented in docs/loyalty.md; the
//! explanation lists each signal with its part, so a reader sees why.

use serde_json::{json, Value};

/// A competitor's token held.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenHeld {
    pub competitor: String,
    pub token: String,
    pub amount: f64,
}

/// A person's purchase rhythm: days since the last order, the usual days between
/// orders, and how many orders that rests on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gap {
    pub days_since: f64,
    pub usual_days: f64,
    pub orders: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    pub tokens: Vec<TokenHeld>,
    /// (competitor, texts naming it)
    pub mentions: Vec<(String, i64)>,
    pub gap: Option<Gap>,
}

pub const TOKEN_PART: f64 = 0.6;
pub const MENTION_PART: f64 = 0.15;
pub const MENTIONS_MAX: f64 = 0.45;
pub const GAP_MAX: f64 = 0.4;

/// The gap's part: none below 1.5× the usual interval (or with fewer than two orders),
/// rising to `GAP_MAX` at 3×.
pub fn gap_part(g: &Gap) -> f64 {
    let rhythm = g.usual_days.is_finite() && g.usual_days > 0.0;
    if g.orders < 2 || !rhythm || !g.days_since.is_finite() {
        return 0.0;
    }
    let r = g.days_since / g.usual_days;
    (((r - 1.5) / 1.5).clamp(0.0, 1.0)) * GAP_MAX
}

/// The score (0..1, three decimals) and its explanation; `None` without any signal.
pub fn score(s: &Signals) -> Option<(f64, Value)> {
    let mut parts: Vec<(f64, Value)> = Vec::new();
    let held: Vec<&TokenHeld> = s.tokens.iter().filter(|t| t.amount > 0.0).collect();
    if !held.is_empty() {
        parts.push((
            TOKEN_PART,
            json!({"signal": "tokens", "part": TOKEN_PART,
                "held": held.iter().map(|t| json!({"competitor": t.competitor, "token": t.token, "amount": t.amount})).collect::<Vec<_>>()}),
        ));
    }
    let texts: i64 = s.mentions.iter().map(|m| m.1.max(0)).sum();
    if texts > 0 {
        let part = (MENTION_PART * texts as f64).min(MENTIONS_MAX);
        parts.push((
            part,
            json!({"signal": "mentions", "part": part, "texts": texts,
                "competitors": s.mentions.iter().filter(|m| m.1 > 0).map(|m| json!({"competitor": m.0, "texts": m.1})).collect::<Vec<_>>()}),
        ));
    }
    if let Some(g) = &s.gap {
        let part = gap_part(g);
        if part > 0.0 {
            parts.push((
                part,
                json!({"signal": "purchase_gap", "part": (part * 1000.0).round() / 1000.0,
                    "days_since_last_order": g.days_since.round(), "usual_days_between_orders": g.usual_days.round(), "orders": g.orders}),
            ));
        }
    }
    if parts.is_empty() {
        return None;
    }
    let stay: f64 = parts.iter().map(|(p, _)| 1.0 - p).product();
    let value = ((1.0 - stay) * 1000.0).round() / 1000.0;
    Some((
        value,
        json!({"signals": parts.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            "how": "1 − Π(1 − part): tokens 0.6; mentions 0.15 a text up to 0.45; a purchase gap from 1.5× the usual interval, 0.4 at 3×"}),
    ))
}

/// Whether `text` names `word` as a whole word (ASCII case folded; `word` lower case).
pub fn names(text: &str, word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    let t = text.to_lowercase();
    let wordish = |c: char| c.is_alphanumeric() || c == '_';
    t.match_indices(word).any(|(i, _)| {
        let before = t[..i].chars().next_back().is_none_or(|c| !wordish(c));
        let after = t[i + word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !wordish(c));
        before && after
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(days_since: f64, usual_days: f64, orders: i64) -> Gap {
        Gap {
            days_since,
            usual_days,
            orders,
        }
    }

    #[test]
    fn no_signal_no_score() {
        assert_eq!(score(&Signals::default()), None);
        let zero = Signals {
            tokens: vec![TokenHeld {
                competitor: "Rival".into(),
                token: "RIV".into(),
                amount: 0.0,
            }],
            mentions: vec![("Rival".into(), 0)],
            gap: Some(gap(10.0, 30.0, 5)),
        };
        assert_eq!(score(&zero), None);
    }

    #[test]
    fn parts_combine_as_independent_chances() {
        let tokens = Signals {
            tokens: vec![TokenHeld {
                competitor: "Rival".into(),
                token: "RIV".into(),
                amount: 2.0,
            }],
            ..Default::default()
        };
        assert_eq!(score(&tokens).map(|s| s.0), Some(0.6));
        let two_texts = Signals {
            mentions: vec![("Rival".into(), 2)],
            ..Default::default()
        };
        assert_eq!(score(&two_texts).map(|s| s.0), Some(0.3));
        let many = Signals {
            mentions: vec![("Rival".into(), 9), ("Other".into(), 1)],
            ..Default::default()
        };
        assert_eq!(score(&many).map(|s| s.0), Some(0.45));
        let all = Signals {
            tokens: tokens.tokens.clone(),
            mentions: vec![("Rival".into(), 2)],
            gap: Some(gap(90.0, 30.0, 4)),
        };
        let (v, why) = score(&all).expect("signals");
        // 1 − 0.4 · 0.7 · 0.6
        assert_eq!(v, 0.832);
        assert_eq!(why["signals"].as_array().map(Vec::len), Some(3));
        assert_eq!(why["signals"][2]["signal"], "purchase_gap");
    }

    #[test]
    fn the_gap_counts_past_one_and_a_half_rhythms() {
        assert_eq!(gap_part(&gap(45.0, 30.0, 3)), 0.0);
        assert!((gap_part(&gap(67.5, 30.0, 3)) - 0.2).abs() < 1e-9);
        assert_eq!(gap_part(&gap(90.0, 30.0, 3)), GAP_MAX);
        assert_eq!(gap_part(&gap(900.0, 30.0, 3)), GAP_MAX);
        assert_eq!(gap_part(&gap(900.0, 30.0, 1)), 0.0, "one order: no rhythm");
        assert_eq!(
            gap_part(&gap(90.0, 30.0, 2)),
            GAP_MAX,
            "two orders make one"
        );
        assert_eq!(gap_part(&gap(900.0, 0.0, 3)), 0.0);
        assert_eq!(gap_part(&gap(f64::NAN, 10.0, 3)), 0.0);
    }

    #[test]
    fn names_whole_words_only() {
        assert!(names("Switched to ACME shoes", "acme"));
        assert!(names("acme!", "acme"));
        assert!(!names("acmeville is nice", "acme"));
        assert!(!names("the nacme", "acme"));
        assert!(names("trying the Run Fast 2", "run fast"));
        assert!(!names("anything", ""));
    }
}
