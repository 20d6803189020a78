//! Intents a marketer or support team acts on: complaint, question, praise, purchase
//! intent and churn risk, each with a confidence in [0, 1]. Rules over cue phrases,
//! punctuation and the sentiment score (docs/text.md lists them); transparent and fast,
//! and good enough to route — not a trained classifier.

pub const INTENTS: [&str; 5] = [
    "complaint",
    "question",
    "praise",
    "purchase_intent",
    "churn_risk",
];

const COMPLAINT: &[&str] = &[
    "broken",
    "doesn't work",
    "does not work",
    "not working",
    "stopped working",
    "refund",
    "terrible",
    "worst",
    "disappointed",
    "disappointing",
    "problem",
    "issue",
    "late",
    "never arrived",
    "didn't arrive",
    "damaged",
    "defective",
    "faulty",
    "waiting",
    "still waiting",
    "overcharged",
    "charged twice",
    "rude",
    "unacceptable",
    "awful",
    "useless",
    "scam",
    "complaint",
    "poor quality",
    "no response",
    "crash",
    "crashes",
    "bug",
];
const QUESTION_STARTS: &[&str] = &[
    "how", "what", "why", "when", "where", "who", "which", "can", "could", "does", "do", "is",
    "are", "will", "would", "should", "anyone", "any",
];
const PRAISE: &[&str] = &[
    "love",
    "loving",
    "great",
    "amazing",
    "awesome",
    "thank",
    "thanks",
    "best",
    "recommend",
    "excellent",
    "perfect",
    "fantastic",
    "brilliant",
    "impressed",
    "happy",
    "wonderful",
    "superb",
    "kudos",
    "well done",
];
const PURCHASE: &[&str] = &[
    "want to buy",
    "going to buy",
    "gonna buy",
    "where can i buy",
    "where to buy",
    "how much",
    "price",
    "pricing",
    "discount",
    "coupon",
    "promo code",
    "in stock",
    "pre-order",
    "preorder",
    "add to cart",
    "checkout",
    "ship to",
    "shipping to",
    "available in",
    "order one",
    "buy one",
    "take my money",
    "need one",
    "wishlist",
    "interested in buying",
    "quote",
];
const CHURN: &[&str] = &[
    "cancel",
    "cancelling",
    "canceling",
    "cancelled my",
    "unsubscribe",
    "switch to",
    "switching to",
    "moving to",
    "leaving",
    "close my account",
    "delete my account",
    "not renewing",
    "won't renew",
    "competitor",
    "done with",
    "never again",
    "last time",
    "going elsewhere",
    "taking my business",
    "alternative to",
    "goodbye",
];

const LISTS: [&[&str]; 4] = [COMPLAINT, PRAISE, PURCHASE, CHURN];

/// One automaton over every cue phrase: a single pass over the text.
fn matcher() -> &'static (aho_corasick::AhoCorasick, Vec<usize>) {
    static M: std::sync::OnceLock<(aho_corasick::AhoCorasick, Vec<usize>)> =
        std::sync::OnceLock::new();
    M.get_or_init(|| {
        let mut pats = Vec::new();
        let mut list = Vec::new();
        for (k, l) in LISTS.iter().enumerate() {
            for p in l.iter() {
                pats.push(*p);
                list.push(k);
            }
        }
        let ac = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&pats)
            .expect("cue phrases build an automaton");
        (ac, list)
    })
}

/// Distinct cue phrases of each list found on word boundaries.
fn hits(text: &str) -> [usize; 4] {
    let (ac, list) = matcher();
    let b = text.as_bytes();
    let mut seen: Vec<usize> = Vec::new();
    let mut out = [0usize; 4];
    for m in ac.find_overlapping_iter(text) {
        let (s, e) = (m.start(), m.end());
        let bounded = (s == 0 || !b[s - 1].is_ascii_alphanumeric())
            && (e == b.len() || !b[e].is_ascii_alphanumeric());
        let id = m.pattern().as_usize();
        if bounded && !seen.contains(&id) {
            seen.push(id);
            out[list[id]] += 1;
        }
    }
    out
}

fn squash(x: f64) -> f64 {
    (x.clamp(0.0, 1.0) * 1000.0).round() / 1000.0
}

/// Confidence per intent; `compound` is the text's sentiment.
pub fn intents(text: &str, compound: f64) -> Vec<(&'static str, f64)> {
    let trimmed = text.trim();
    let first = trimmed
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let first = first.as_str();
    let [c, p, b, ch] = hits(text).map(|n| n as f64);
    let question_mark = trimmed.contains('?');
    let question = if question_mark && QUESTION_STARTS.contains(&first) {
        0.95
    } else if question_mark {
        0.8
    } else if QUESTION_STARTS.contains(&first) && trimmed.split_whitespace().count() > 2 {
        0.5
    } else {
        0.0
    };
    let neg = (-compound).max(0.0);
    let pos = compound.max(0.0);
    let complaint = if c > 0.0 || compound <= -0.5 {
        0.35 * c.min(2.0) + 0.6 * neg
    } else {
        0.0
    };
    let praise = if p > 0.0 && compound >= 0.3 {
        0.3 + 0.2 * p.min(2.0) + 0.3 * pos
    } else {
        0.0
    };
    let purchase = if b > 0.0 {
        0.5 + 0.2 * b.min(2.0) + 0.1 * pos
    } else {
        0.0
    };
    let churn = if ch > 0.0 {
        0.45 + 0.2 * ch.min(2.0) + 0.3 * neg
    } else {
        0.0
    };
    vec![
        ("complaint", squash(complaint)),
        ("question", squash(question)),
        ("praise", squash(praise)),
        ("purchase_intent", squash(purchase)),
        ("churn_risk", squash(churn)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(text: &str, compound: f64) -> &'static str {
        let v = intents(text, compound);
        v.iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|x| x.0)
            .unwrap()
    }

    #[test]
    fn each_intent_on_a_typical_text() {
        assert_eq!(
            top(
                "My headphones stopped working after two days, I want a refund",
                -0.6
            ),
            "complaint"
        );
        assert_eq!(top("How do I reset my password?", 0.0), "question");
        assert_eq!(top("Love it, thanks so much team!", 0.9), "praise");
        assert_eq!(
            top("Where can I buy the pro version, is it in stock", 0.0),
            "purchase_intent"
        );
        assert_eq!(
            top(
                "I'm cancelling my subscription and switching to a competitor",
                -0.3
            ),
            "churn_risk"
        );
    }

    #[test]
    fn cues_need_word_boundaries_and_quiet_text_has_none() {
        assert!(intents("the issuer was fine", 0.2)
            .iter()
            .all(|x| x.1 == 0.0));
        assert!(intents("Ordered a mug.", 0.0).iter().all(|x| x.1 == 0.0));
    }
}
