//! Trending terms: what people write about more this week than in the four weeks before.
//! Terms are lower-cased words (stop words, numbers and one-letter words left out) and
//! hashtags; each counts once per text. A term trends when it appears in at least
//! `min_texts` texts this week and its weekly rate rose: the score is
//! `(this week + 1) / (previous four weeks / 4 + 1)`, so new terms need volume to rank.

use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Trend {
    pub term: String,
    pub this_week: usize,
    /// Texts per week in the four weeks before.
    pub weekly_before: f64,
    pub score: f64,
    /// Up to three texts of this week that use the term.
    pub examples: Vec<String>,
}

const STOP: &[&str] = &[
    "the",
    "and",
    "for",
    "are",
    "but",
    "not",
    "you",
    "your",
    "with",
    "this",
    "that",
    "was",
    "were",
    "have",
    "has",
    "had",
    "its",
    "it's",
    "i'm",
    "i've",
    "just",
    "from",
    "they",
    "them",
    "their",
    "what",
    "when",
    "where",
    "which",
    "who",
    "how",
    "all",
    "any",
    "can",
    "could",
    "would",
    "should",
    "will",
    "our",
    "out",
    "get",
    "got",
    "too",
    "very",
    "one",
    "about",
    "there",
    "here",
    "been",
    "being",
    "into",
    "than",
    "then",
    "also",
    "more",
    "some",
    "such",
    "only",
    "own",
    "same",
    "so",
    "an",
    "a",
    "to",
    "of",
    "in",
    "on",
    "at",
    "by",
    "is",
    "be",
    "it",
    "as",
    "or",
    "if",
    "my",
    "me",
    "we",
    "us",
    "he",
    "she",
    "him",
    "her",
    "do",
    "does",
    "did",
    "no",
    "yes",
    "up",
    "down",
    "don't",
    "can't",
    "won't",
    "didn't",
    "doesn't",
    "isn't",
    "im",
    "ive",
    "dont",
    "cant",
    "still",
    "even",
    "again",
    "really",
    "much",
    "many",
    "now",
    "new",
    "https",
    "http",
    "www",
    "his",
    "hers",
    "itself",
    "ours",
    "ourselves",
    "yours",
    "yourself",
    "yourselves",
    "themselves",
    "himself",
    "herself",
    "myself",
    "theirs",
    "whom",
    "whose",
    "why",
    "because",
    "while",
    "until",
    "though",
    "although",
    "since",
    "unless",
    "whether",
    "either",
    "neither",
    "nor",
    "both",
    "each",
    "every",
    "few",
    "most",
    "other",
    "others",
    "another",
    "these",
    "those",
    "am",
    "having",
    "doing",
    "off",
    "over",
    "under",
    "above",
    "below",
    "between",
    "through",
    "during",
    "before",
    "after",
    "against",
    "further",
    "once",
    "ever",
    "never",
    "always",
    "often",
    "sometimes",
    "may",
    "might",
    "must",
    "shall",
    "ought",
    "need",
    "two",
    "three",
    "first",
    "last",
    "next",
    "well",
    "way",
    "like",
    "make",
    "makes",
    "made",
    "take",
    "takes",
    "took",
    "go",
    "goes",
    "going",
    "gone",
    "come",
    "comes",
    "came",
    "give",
    "gives",
    "gave",
    "see",
    "seen",
    "seems",
    "seem",
    "feel",
    "feels",
    "felt",
    "look",
    "looks",
    "thing",
    "things",
    "lot",
    "lots",
    "something",
    "anything",
    "nothing",
    "everything",
    "someone",
    "anyone",
    "everyone",
    "there's",
    "that's",
    "what's",
    "who's",
    "he's",
    "she's",
    "let's",
    "here's",
    "you're",
    "we're",
    "they're",
    "i'd",
    "you'd",
    "he'd",
    "she'd",
    "we'd",
    "they'd",
    "i'll",
    "you'll",
    "he'll",
    "she'll",
    "we'll",
    "they'll",
    "you've",
    "we've",
    "they've",
    "aren't",
    "wasn't",
    "weren't",
    "hasn't",
    "haven't",
    "hadn't",
    "wouldn't",
    "shouldn't",
    "couldn't",
    "mustn't",
    "shan't",
    "mightn't",
    "needn't",
    "ain't",
    "y'all",
    "u",
    "ur",
    "yeah",
    "ok",
    "okay",
    "oh",
    "lol",
    "gets",
    "getting",
    "say",
    "says",
    "said",
    "know",
    "knows",
    "knew",
    "think",
    "thinks",
    "thought",
    "want",
    "wants",
    "wanted",
    "around",
    "away",
    "back",
    "far",
    "little",
    "less",
    "least",
    "enough",
    "quite",
    "rather",
    "almost",
    "already",
    "yet",
    "per",
    "via",
    "etc",
];

/// Distinct terms of one text.
pub fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in text.split_whitespace() {
        if raw.contains("://") || raw.starts_with('@') || raw.contains('@') {
            continue;
        }
        let hashtag = raw.starts_with('#');
        let t: String = raw
            .trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
            .to_lowercase();
        if t.chars().count() < 2 || t.chars().all(|c| c.is_numeric()) || STOP.contains(&t.as_str())
        {
            continue;
        }
        let term = if hashtag { format!("#{t}") } else { t };
        if !out.contains(&term) {
            out.push(term);
        }
    }
    out
}

/// Rising terms of `this_week` against `before` (the four weeks before), best first.
pub fn trending<'a>(
    this_week: impl IntoIterator<Item = &'a str>,
    before: impl IntoIterator<Item = &'a str>,
    min_texts: usize,
    limit: usize,
) -> Vec<Trend> {
    let mut now: HashMap<String, (usize, Vec<String>)> = HashMap::new();
    for text in this_week {
        for t in terms(text) {
            let e = now.entry(t).or_default();
            e.0 += 1;
            if e.1.len() < 3 {
                e.1.push(text.to_string());
            }
        }
    }
    let mut then: HashMap<String, usize> = HashMap::new();
    for text in before {
        for t in terms(text) {
            *then.entry(t).or_default() += 1;
        }
    }
    let mut out: Vec<Trend> = now
        .into_iter()
        .filter(|(_, (n, _))| *n >= min_texts)
        .filter_map(|(term, (n, examples))| {
            let weekly_before = then.get(&term).copied().unwrap_or(0) as f64 / 4.0;
            let score = (n as f64 + 1.0) / (weekly_before + 1.0);
            (n as f64 > weekly_before).then_some(Trend {
                term,
                this_week: n,
                weekly_before,
                score,
                examples,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.this_week.cmp(&a.this_week))
            .then(a.term.cmp(&b.term))
    });
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_skip_stop_words_links_and_handles() {
        assert_eq!(
            terms("The battery is DEAD again, #fail @shop https://x.io 2024"),
            vec!["battery", "dead", "#fail"]
        );
    }

    #[test]
    fn a_rising_term_beats_a_steady_one() {
        let week = [
            "battery died",
            "battery dead again",
            "battery drains fast",
            "shipping was fine",
            "shipping ok",
        ];
        let before = [
            "shipping slow",
            "shipping fine",
            "shipping ok",
            "shipping late",
            "shipping good",
            "shipping fast",
            "shipping meh",
            "shipping!",
        ];
        let t = trending(week, before, 2, 10);
        assert_eq!(t[0].term, "battery");
        assert_eq!(t[0].this_week, 3);
        assert_eq!(t[0].examples.len(), 3);
        assert!(t.iter().all(|x| x.term != "shipping"), "{t:?}");
    }
}
