//! Sentiment: a faithful port of VADER (Hutto & Gilbert, ICWSM 2014; vaderSentiment
//! 3.3.2), rules and lexicons, so scores match the reference implementation (checked on
//! every labelled text in `../shared/data/sentiment`). Brands may add or override
//! lexicon terms. The port keeps VADER's quirks where they change scores (the `but`
//! rule's first-equal-value lookup, the "so"/"this" emphasis precedence), because
//! matching the validated method beats silently "fixing" it; docs/text.md lists them.

use rustc_hash::FxHashMap;
use serde::Serialize;
use std::borrow::Cow;

const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
const C_INCR: f64 = 0.733;
const N_SCALAR: f64 = -0.74;

const LEXICON: &str = include_str!("../data/vader_lexicon.txt");
const EMOJI_LEXICON: &str = include_str!("../data/emoji_utf8_lexicon.txt");

const NEGATE: [&str; 59] = [
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

fn booster(w: &str) -> Option<f64> {
    Some(match w {
        "absolutely" | "amazingly" | "awfully" | "completely" | "considerable" | "considerably"
        | "decidedly" | "deeply" | "effing" | "enormous" | "enormously" | "entirely"
        | "especially" | "exceptional" | "exceptionally" | "extreme" | "extremely"
        | "fabulously" | "flipping" | "flippin" | "frackin" | "fracking" | "fricking"
        | "frickin" | "frigging" | "friggin" | "fully" | "fuckin" | "fucking" | "fuggin"
        | "fugging" | "greatly" | "hella" | "highly" | "hugely" | "incredible" | "incredibly"
        | "intensely" | "major" | "majorly" | "more" | "most" | "particularly" | "purely"
        | "quite" | "really" | "remarkably" | "so" | "substantially" | "thoroughly" | "total"
        | "totally" | "tremendous" | "tremendously" | "uber" | "unbelievably" | "unusually"
        | "utter" | "utterly" | "very" => B_INCR,
        "almost" | "barely" | "hardly" | "just enough" | "kind of" | "kinda" | "kindof"
        | "kind-of" | "less" | "little" | "marginal" | "marginally" | "occasional"
        | "occasionally" | "partly" | "scarce" | "scarcely" | "slight" | "slightly"
        | "somewhat" | "sort of" | "sorta" | "sortof" | "sort-of" => B_DECR,
        _ => return None,
    })
}

fn special_case(s: &str) -> Option<f64> {
    Some(match s {
        "the shit" | "the bomb" | "to die for" => 3.0,
        "bad ass" | "badass" => 1.5,
        "bus stop" => 0.0,
        "yeah right" => -2.0,
        "kiss of death" => -1.5,
        "beating heart" => 3.5,
        _ => return None,
    })
}

/// VADER's four scores: proportions of negative, neutral and positive text, and the
/// normalised compound in [-1, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scores {
    pub neg: f64,
    pub neu: f64,
    pub pos: f64,
    pub compound: f64,
}

/// `positive` at compound ≥ 0.05, `negative` at ≤ −0.05, else `neutral` (VADER's
/// recommended thresholds).
pub fn label(compound: f64) -> &'static str {
    if compound >= 0.05 {
        "positive"
    } else if compound <= -0.05 {
        "negative"
    } else {
        "neutral"
    }
}

pub struct Vader {
    lexicon: FxHashMap<String, f64>,
    emojis: FxHashMap<char, String>,
}

impl Default for Vader {
    fn default() -> Self {
        Self::new()
    }
}

/// Python's `str.isupper()`: some cased character and no lower-case one.
fn is_upper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() {
            return false;
        }
        if c.is_uppercase() {
            cased = true;
        }
    }
    cased
}

fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

fn negated(w: &str) -> bool {
    NEGATE.contains(&w) || w.contains("n't")
}

impl Vader {
    pub fn new() -> Self {
        let mut lexicon = FxHashMap::default();
        for line in LEXICON.trim_end_matches('\n').split('\n') {
            let mut parts = line.trim().split('\t');
            if let (Some(w), Some(v)) = (parts.next(), parts.next()) {
                if let Ok(v) = v.parse::<f64>() {
                    lexicon.insert(w.to_string(), v);
                }
            }
        }
        let mut emojis = FxHashMap::default();
        for line in EMOJI_LEXICON.trim_end_matches('\n').split('\n') {
            let mut parts = line.trim().split('\t');
            if let (Some(e), Some(d)) = (parts.next(), parts.next()) {
                let mut cs = e.chars();
                // VADER looks emojis up one code point at a time.
                if let (Some(c), None) = (cs.next(), cs.next()) {
                    emojis.insert(c, d.to_string());
                }
            }
        }
        Vader { lexicon, emojis }
    }

    /// Adds or overrides lexicon terms (lower-case words, valence about −4..4).
    pub fn with_terms<'a>(mut self, terms: impl IntoIterator<Item = (&'a str, f64)>) -> Self {
        for (w, v) in terms {
            self.lexicon.insert(w.to_lowercase(), v);
        }
        self
    }

    pub fn valence(&self, word: &str) -> Option<f64> {
        self.lexicon.get(word).copied()
    }

    pub fn polarity(&self, text: &str) -> Scores {
        let text: Cow<'_, str> = if text.chars().any(|c| self.emojis.contains_key(&c)) {
            let mut out = String::with_capacity(text.len() + 32);
            let mut prev_space = true;
            for c in text.chars() {
                match self.emojis.get(&c) {
                    Some(d) => {
                        if !prev_space {
                            out.push(' ');
                        }
                        out.push_str(d);
                        prev_space = false;
                    }
                    None => {
                        out.push(c);
                        prev_space = c == ' ';
                    }
                }
            }
            Cow::Owned(out)
        } else {
            Cow::Borrowed(text)
        };
        let text = text.trim();
        let tokens: Vec<&str> = text
            .split_whitespace()
            .map(|t| {
                let s = t.trim_matches(|c: char| c.is_ascii_punctuation());
                if s.chars().count() <= 2 {
                    t
                } else {
                    s
                }
            })
            .collect();
        let upper: Vec<bool> = tokens.iter().map(|t| is_upper(t)).collect();
        let caps = upper.iter().filter(|u| **u).count();
        let cap_diff = caps > 0 && caps < tokens.len();
        let lowers: Vec<Cow<'_, str>> = tokens.iter().map(|t| lower(t)).collect();
        let lw: Vec<&str> = lowers.iter().map(|c| c.as_ref()).collect();
        let mut sentiments: Vec<f64> = Vec::with_capacity(tokens.len());
        for i in 0..tokens.len() {
            if booster(lw[i]).is_some()
                || (i + 1 < tokens.len() && lw[i] == "kind" && lw[i + 1] == "of")
            {
                sentiments.push(0.0);
                continue;
            }
            sentiments.push(self.sentiment_valence(&tokens, &upper, &lw, cap_diff, i));
        }
        but_check(&lw, &mut sentiments);
        score_valence(&sentiments, text)
    }

    fn sentiment_valence(
        &self,
        tokens: &[&str],
        upper: &[bool],
        lw: &[&str],
        cap_diff: bool,
        i: usize,
    ) -> f64 {
        let Some(&base) = self.lexicon.get(lw[i]) else {
            return 0.0;
        };
        let n = tokens.len();
        let in_lex = |w: &str| self.lexicon.contains_key(w);
        let mut valence = base;
        if lw[i] == "no" && i != n - 1 && in_lex(lw[i + 1]) {
            valence = 0.0;
        }
        if (i > 0 && lw[i - 1] == "no")
            || (i > 1 && lw[i - 2] == "no")
            || (i > 2 && lw[i - 3] == "no" && (lw[i - 1] == "or" || lw[i - 1] == "nor"))
        {
            valence = base * N_SCALAR;
        }
        if upper[i] && cap_diff {
            if valence > 0.0 {
                valence += C_INCR;
            } else {
                valence -= C_INCR;
            }
        }
        for start_i in 0..3 {
            if i > start_i && !in_lex(lw[i - (start_i + 1)]) {
                let j = i - (start_i + 1);
                let mut s = scalar_inc_dec(lw[j], upper[j], valence, cap_diff);
                if start_i == 1 && s != 0.0 {
                    s *= 0.95;
                }
                if start_i == 2 && s != 0.0 {
                    s *= 0.9;
                }
                valence += s;
                valence = negation_check(valence, lw, start_i, i);
                if start_i == 2 {
                    valence = special_idioms_check(valence, lw, i);
                }
            }
        }
        least_check(valence, lw, i, &in_lex)
    }
}

fn scalar_inc_dec(word_lower: &str, word_upper: bool, valence: f64, cap_diff: bool) -> f64 {
    let Some(mut scalar) = booster(word_lower) else {
        return 0.0;
    };
    if valence < 0.0 {
        scalar *= -1.0;
    }
    if word_upper && cap_diff {
        if valence > 0.0 {
            scalar += C_INCR;
        } else {
            scalar -= C_INCR;
        }
    }
    scalar
}

fn negation_check(valence: f64, lw: &[&str], start_i: usize, i: usize) -> f64 {
    match start_i {
        0 if negated(lw[i - 1]) => valence * N_SCALAR,
        1 => {
            if lw[i - 2] == "never" && (lw[i - 1] == "so" || lw[i - 1] == "this") {
                valence * 1.25
            } else if lw[i - 2] == "without" && lw[i - 1] == "doubt" {
                valence
            } else if negated(lw[i - 2]) {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        2 => {
            // VADER's precedence: (never ∧ (so ∨ this)) ∨ so ∨ this, one word back.
            if (lw[i - 3] == "never" && (lw[i - 2] == "so" || lw[i - 2] == "this"))
                || (lw[i - 1] == "so" || lw[i - 1] == "this")
            {
                valence * 1.25
            } else if lw[i - 3] == "without" && (lw[i - 2] == "doubt" || lw[i - 1] == "doubt") {
                valence
            } else if negated(lw[i - 3]) {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        _ => valence,
    }
}

fn special_idioms_check(mut valence: f64, lw: &[&str], i: usize) -> f64 {
    let onezero = format!("{} {}", lw[i - 1], lw[i]);
    let twoonezero = format!("{} {} {}", lw[i - 2], lw[i - 1], lw[i]);
    let twoone = format!("{} {}", lw[i - 2], lw[i - 1]);
    let threetwoone = format!("{} {} {}", lw[i - 3], lw[i - 2], lw[i - 1]);
    let threetwo = format!("{} {}", lw[i - 3], lw[i - 2]);
    for seq in [&onezero, &twoonezero, &twoone, &threetwoone, &threetwo] {
        if let Some(v) = special_case(seq) {
            valence = v;
            break;
        }
    }
    if lw.len() - 1 > i {
        if let Some(v) = special_case(&format!("{} {}", lw[i], lw[i + 1])) {
            valence = v;
        }
    }
    if lw.len() - 1 > i + 1 {
        if let Some(v) = special_case(&format!("{} {} {}", lw[i], lw[i + 1], lw[i + 2])) {
            valence = v;
        }
    }
    for ngram in [&threetwoone, &threetwo, &twoone] {
        if let Some(b) = booster(ngram) {
            valence += b;
        }
    }
    valence
}

fn least_check(valence: f64, lw: &[&str], i: usize, in_lex: &dyn Fn(&str) -> bool) -> f64 {
    if i > 1 && !in_lex(lw[i - 1]) && lw[i - 1] == "least" {
        if lw[i - 2] != "at" && lw[i - 2] != "very" {
            return valence * N_SCALAR;
        }
    } else if i > 0 && !in_lex(lw[i - 1]) && lw[i - 1] == "least" {
        return valence * N_SCALAR;
    }
    valence
}

/// VADER's contrastive "but": halves what comes before, strengthens what follows. The
/// reference finds each value's *first* equal occurrence (`list.index`), so repeated
/// values are scaled at that index; kept as is to match its scores.
fn but_check(lw: &[&str], sentiments: &mut [f64]) {
    let Some(bi) = lw.iter().position(|w| *w == "but") else {
        return;
    };
    for k in 0..sentiments.len() {
        let v = sentiments[k];
        let si = sentiments.iter().position(|x| *x == v).unwrap_or(k);
        if si < bi {
            sentiments[si] = v * 0.5;
        } else if si > bi {
            sentiments[si] = v * 1.5;
        }
    }
}

fn score_valence(sentiments: &[f64], text: &str) -> Scores {
    if sentiments.is_empty() {
        return Scores {
            neg: 0.0,
            neu: 0.0,
            pos: 0.0,
            compound: 0.0,
        };
    }
    let mut sum: f64 = sentiments.iter().sum();
    let ep = text.matches('!').count().min(4) as f64 * 0.292;
    let qm_count = text.matches('?').count();
    let qm = match qm_count {
        0 | 1 => 0.0,
        2 | 3 => qm_count as f64 * 0.18,
        _ => 0.96,
    };
    let punct = ep + qm;
    if sum > 0.0 {
        sum += punct;
    } else if sum < 0.0 {
        sum -= punct;
    }
    let compound = (sum / (sum * sum + 15.0).sqrt()).clamp(-1.0, 1.0);
    let (mut pos_sum, mut neg_sum, mut neu) = (0.0, 0.0, 0.0);
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu += 1.0;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += punct;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= punct;
    }
    let total = pos_sum + neg_sum.abs() + neu;
    Scores {
        neg: (neg_sum / total).abs(),
        neu: (neu / total).abs(),
        pos: (pos_sum / total).abs(),
        compound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: &Vader, s: &str) -> f64 {
        (v.polarity(s).compound * 10_000.0).round() / 10_000.0
    }

    #[test]
    fn vader_readme_examples() {
        // Values printed by vaderSentiment 3.3.2 for its own README sentences.
        let v = Vader::new();
        assert_eq!(c(&v, "VADER is smart, handsome, and funny."), 0.8316);
        assert_eq!(c(&v, "VADER is smart, handsome, and funny!"), 0.8439);
        assert_eq!(c(&v, "VADER is very smart, handsome, and funny."), 0.8545);
        assert_eq!(c(&v, "VADER is VERY SMART, handsome, and FUNNY."), 0.9227);
        assert_eq!(c(&v, "VADER is VERY SMART, handsome, and FUNNY!!!"), 0.9342);
        assert_eq!(c(&v, "VADER is not smart, handsome, nor funny."), -0.7424);
        assert_eq!(c(&v, "The book was good."), 0.4404);
        assert_eq!(c(&v, "The plot was good, but the characters are uncompelling and the dialog is not great."), -0.7042);
        assert_eq!(c(&v, "Make sure you :) or :D today!"), 0.8633);
        assert_eq!(c(&v, "Catch utf-8 emoji such as 💘 and 💋 and 😁"), 0.875);
        assert_eq!(c(&v, "Not bad at all"), 0.431);
        assert_eq!(c(&v, ""), 0.0);
    }

    #[test]
    fn brand_terms_override_the_lexicon() {
        let v = Vader::new().with_terms([("rapport", 3.0)]);
        assert!(v.polarity("I use Rapport").compound > 0.5);
    }

    #[test]
    fn labels() {
        assert_eq!(label(0.05), "positive");
        assert_eq!(label(-0.05), "negative");
        assert_eq!(label(0.0), "neutral");
    }
}
