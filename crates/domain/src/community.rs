//! Community Q&A, the knowledge base and ideas, the pure part: what a post, an article
//! or a vote may be, the statuses ideas and articles move through, reputation, the vote
//! budget, the words a search looks for, and the difference between two revisions.

use crate::message::FieldError;

/// At most this many characters in a title (question, idea, article).
pub const MAX_TITLE: usize = 200;
/// At most this many characters in a community post (question, answer, comment, idea).
pub const MAX_POST: usize = 10_000;
/// At most this many characters in an article.
pub const MAX_ARTICLE: usize = 100_000;
/// At most this many characters in a category's name.
pub const MAX_CATEGORY: usize = 60;
/// Words a search looks for, at most.
pub const MAX_TERMS: usize = 12;

/// A title: trimmed, 3 to [`MAX_TITLE`] characters, one line.
pub fn title(field: &str, s: &str) -> Result<String, FieldError> {
    let t = s.trim();
    let n = t.chars().count();
    if n < 3 {
        return Err(FieldError::new(field, "at least 3 characters"));
    }
    if n > MAX_TITLE {
        return Err(FieldError::new(
            field,
            format!("{n} characters: at most {MAX_TITLE}"),
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(FieldError::new(field, "one line, no control characters"));
    }
    Ok(t.to_string())
}

/// A text written by somebody: trimmed, not empty, at most `max` characters, no control
/// characters but line breaks and tabs. It is kept as written and always shown escaped.
pub fn text(field: &str, s: &str, max: usize) -> Result<String, FieldError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    let n = t.chars().count();
    if n > max {
        return Err(FieldError::new(
            field,
            format!("{n} characters: at most {max}"),
        ));
    }
    if t.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(FieldError::new(field, "contains control characters"));
    }
    Ok(t.to_string())
}

/// A category: empty (none) or a short name.
pub fn category(field: &str, s: &str) -> Result<Option<String>, FieldError> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.chars().count() > MAX_CATEGORY || t.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            format!("one line of at most {MAX_CATEGORY} characters"),
        ));
    }
    Ok(Some(t.to_string()))
}

/// A vote on a question or an answer: up (+1) or down (−1); ideas take up-votes only.
pub fn vote(field: &str, v: i64, idea: bool) -> Result<i64, FieldError> {
    match v {
        1 => Ok(1),
        -1 if !idea => Ok(-1),
        -1 => Err(FieldError::new(field, "ideas take up-votes only (1)")),
        _ => Err(FieldError::new(field, format!("{v}: use 1 or -1"))),
    }
}

/// Reputation from what others thought of a person's posts: 10 per up-vote, −2 per
/// down-vote, 15 per accepted answer; never below 0.
pub fn reputation(up: i64, down: i64, accepted: i64) -> i64 {
    (10 * up - 2 * down + 15 * accepted).max(0)
}

/// One more vote on an idea fits a budget of `budget` with `used` already cast on
/// ideas still open, planned or started.
pub fn within_budget(field: &str, used: i64, budget: i64) -> Result<(), FieldError> {
    if used < budget {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "you have used all {budget} of your votes; take one back from another idea first"
            ),
        ))
    }
}

macro_rules! statuses {
    ($(#[$doc:meta])* $name:ident { $($v:ident = $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($v),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }

            pub fn parse(field: &str, s: &str) -> Result<$name, FieldError> {
                $name::ALL.iter().copied().find(|x| x.as_str() == s).ok_or_else(|| {
                    let all: Vec<&str> = $name::ALL.iter().map(|x| x.as_str()).collect();
                    FieldError::new(field, format!("`{s}`: use {}", all.join(", ")))
                })
            }
        }
    };
}

statuses!(
    /// Where an idea stands (Fider's statuses).
    IdeaStatus {
        Open = "open",
        Planned = "planned",
        Started = "started",
        Completed = "completed",
        Declined = "declined",
        Duplicate = "duplicate",
    }
);

impl IdeaStatus {
    /// Votes on it still count against the voter's budget (the idea is not done with).
    pub fn holds_votes(self) -> bool {
        matches!(
            self,
            IdeaStatus::Open | IdeaStatus::Planned | IdeaStatus::Started
        )
    }
}

statuses!(
    /// Where an article stands: staff drafts and publishes; a customer's proposal waits
    /// for review and is published or rejected.
    ArticleStatus {
        Draft = "draft",
        Published = "published",
        Archived = "archived",
        Proposed = "proposed",
        Rejected = "rejected",
    }
);

/// English words too common to look for ("how do I change my card" looks for `change`
/// and `card`): PostgreSQL's `english` configuration drops them itself, FTS5 does not.
const STOP_WORDS: &[&str] = &[
    "a", "about", "am", "an", "and", "are", "as", "at", "be", "but", "by", "can", "could", "did",
    "do", "does", "for", "from", "had", "has", "have", "how", "i", "if", "in", "is", "it", "its",
    "me", "my", "of", "on", "or", "our", "please", "so", "that", "the", "their", "then", "there",
    "this", "to", "was", "we", "what", "when", "where", "which", "who", "why", "will", "with",
    "would", "you", "your",
];

/// The words a search looks for: letters and digits, lower-cased, common English words
/// left out (unless nothing else is left), at most [`MAX_TERMS`] of at most 40
/// characters. Nothing of the query's own syntax survives, so the terms can go into
/// FTS5 or tsquery syntax as they are.
pub fn search_terms(q: &str) -> Vec<String> {
    let all = words(q);
    let content: Vec<String> = all
        .iter()
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .cloned()
        .collect();
    if content.is_empty() {
        all
    } else {
        content
    }
}

fn words(q: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in q.split(|c: char| !c.is_alphanumeric()) {
        if w.is_empty() {
            continue;
        }
        let w: String = w.to_lowercase().chars().take(40).collect();
        if !out.contains(&w) {
            out.push(w);
        }
        if out.len() == MAX_TERMS {
            break;
        }
    }
    out
}

/// A word still being typed is looked for by its first five letters at most: the index
/// holds stems ("subscription" is `subscript`), which a longer half-word ("subscripti")
/// would miss.
pub const PREFIX_LETTERS: usize = 5;

fn typed(t: &str) -> String {
    t.chars().take(PREFIX_LETTERS).collect()
}

/// The terms as an SQLite FTS5 query: each quoted; all of them (`and`) or any; the last
/// one a prefix when the person is still typing it.
pub fn fts5_query(terms: &[String], all: bool, prefix_last: bool) -> String {
    let parts: Vec<String> = terms
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if prefix_last && i + 1 == terms.len() {
                format!("\"{}\"*", typed(t))
            } else {
                format!("\"{t}\"")
            }
        })
        .collect();
    parts.join(if all { " AND " } else { " OR " })
}

/// The terms as a PostgreSQL tsquery (for `to_tsquery`), in the same sense.
pub fn tsquery(terms: &[String], all: bool, prefix_last: bool) -> String {
    let parts: Vec<String> = terms
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if prefix_last && i + 1 == terms.len() {
                format!("'{}':*", typed(t))
            } else {
                format!("'{t}'")
            }
        })
        .collect();
    parts.join(if all { " & " } else { " | " })
}

/// How many of the newest matching posts a community search ranks: relevance among the
/// latest thousand, so a word found in a hundred thousand old posts costs no more than a
/// rare one (docs/support.md).
pub const SEARCH_WINDOW: usize = 1_000;

/// Up to `words` words of `text` around the first word that starts with one of the
/// `terms` (the text's start when none does), with `…` where it was cut.
pub fn excerpt(text: &str, terms: &[String], words: usize) -> String {
    let all: Vec<&str> = text.split_whitespace().collect();
    let hit = all
        .iter()
        .position(|w| {
            let w = w.to_lowercase();
            let w = w.trim_start_matches(|c: char| !c.is_alphanumeric());
            terms.iter().any(|t| w.starts_with(t.as_str()))
        })
        .unwrap_or(0);
    let start = hit.saturating_sub(words / 3);
    let end = (start + words).min(all.len());
    let mut s = all[start..end].join(" ");
    if start > 0 {
        s.insert_str(0, "… ");
    }
    if end < all.len() {
        s.push_str(" …");
    }
    s
}

/// What changed from one revision to the next, as a unified line diff.
pub fn diff(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(2)
        .header("before", "after")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_texts_are_checked_and_trimmed() {
        assert_eq!(
            title("title", "  How do I pay?  ").unwrap(),
            "How do I pay?"
        );
        assert_eq!(title("title", "abc").unwrap(), "abc");
        assert!(title("title", "ab")
            .unwrap_err()
            .reason
            .contains("at least 3"));
        assert!(title("title", &"x".repeat(MAX_TITLE)).is_ok());
        let e = title("title", &"x".repeat(MAX_TITLE + 1)).unwrap_err();
        assert_eq!(e.field, "title");
        assert!(e.reason.contains("201"));
        assert!(title("title", "one\ntwo").is_err());
        assert_eq!(text("body", " a\n\tb ", 10).unwrap(), "a\n\tb");
        assert!(text("body", "   ", 10).is_err());
        assert!(text("body", &"é".repeat(10), 10).is_ok());
        assert!(text("body", &"é".repeat(11), 10)
            .unwrap_err()
            .reason
            .contains("11 characters"));
        assert!(text("body", "a\u{0}b", 10).is_err());
        assert_eq!(text("body", "a\r\nb", 10).unwrap(), "a\r\nb");
    }

    #[test]
    fn categories_may_be_empty() {
        assert_eq!(category("category", "  ").unwrap(), None);
        assert_eq!(
            category("category", " Billing ").unwrap().as_deref(),
            Some("Billing")
        );
        assert!(category("category", &"x".repeat(MAX_CATEGORY)).is_ok());
        assert!(category("category", &"x".repeat(MAX_CATEGORY + 1)).is_err());
        assert!(category("category", "a\tb").is_err());
    }

    #[test]
    fn votes_are_up_or_down_and_ideas_take_up_votes() {
        assert_eq!(vote("value", 1, false).unwrap(), 1);
        assert_eq!(vote("value", -1, false).unwrap(), -1);
        assert_eq!(vote("value", 1, true).unwrap(), 1);
        assert!(vote("value", -1, true)
            .unwrap_err()
            .reason
            .contains("up-votes"));
        assert!(vote("value", 2, false).is_err());
        assert!(vote("value", 0, true).is_err());
    }

    #[test]
    fn reputation_weighs_votes_and_accepted_answers() {
        assert_eq!(reputation(0, 0, 0), 0);
        assert_eq!(reputation(3, 1, 2), 30 - 2 + 30);
        assert_eq!(reputation(0, 4, 0), 0);
        assert_eq!(reputation(1, 4, 0), 2);
    }

    #[test]
    fn the_vote_budget_holds() {
        assert!(within_budget("value", 9, 10).is_ok());
        let e = within_budget("value", 10, 10).unwrap_err();
        assert!(e.reason.contains("all 10"));
        assert!(within_budget("value", 0, 0).is_err());
    }

    #[test]
    fn statuses_parse_and_say_what_they_hold() {
        for s in IdeaStatus::ALL {
            assert_eq!(IdeaStatus::parse("status", s.as_str()).unwrap(), *s);
        }
        let e = IdeaStatus::parse("status", "done").unwrap_err();
        assert!(e.reason.contains("planned") && e.reason.contains("duplicate"));
        let holding: Vec<_> = IdeaStatus::ALL.iter().filter(|s| s.holds_votes()).collect();
        assert_eq!(
            holding,
            [
                &IdeaStatus::Open,
                &IdeaStatus::Planned,
                &IdeaStatus::Started
            ]
        );
        for s in ArticleStatus::ALL {
            assert_eq!(ArticleStatus::parse("status", s.as_str()).unwrap(), *s);
        }
        assert!(ArticleStatus::parse("status", "live").is_err());
    }

    #[test]
    fn search_terms_keep_words_only() {
        assert_eq!(
            search_terms("How do I reset my PASSWORD? \"x\" OR y* -z"),
            ["reset", "password", "x", "y", "z"]
        );
        assert_eq!(search_terms("change my addr"), ["change", "addr"]);
        assert_eq!(search_terms("how do I"), ["how", "do", "i"]);
        assert_eq!(search_terms("  "), Vec::<String>::new());
        assert_eq!(search_terms("a a A"), ["a"]);
        assert_eq!(search_terms("Straße café"), ["straße", "café"]);
        let many = (0..20)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(search_terms(&many).len(), MAX_TERMS);
        assert_eq!(search_terms(&"a".repeat(50))[0].len(), 40);
    }

    #[test]
    fn queries_are_built_from_terms() {
        let t = search_terms("refund card");
        assert_eq!(fts5_query(&t, true, false), "\"refund\" AND \"card\"");
        assert_eq!(fts5_query(&t, false, true), "\"refund\" OR \"card\"*");
        assert_eq!(tsquery(&t, true, true), "'refund' & 'card':*");
        assert_eq!(tsquery(&t, false, false), "'refund' | 'card'");
        assert_eq!(fts5_query(&[], true, true), "");
        let t = search_terms("cancel subscripti");
        assert_eq!(fts5_query(&t, true, true), "\"cancel\" AND \"subsc\"*");
        assert_eq!(fts5_query(&t, true, false), "\"cancel\" AND \"subscripti\"");
        assert_eq!(tsquery(&t, true, true), "'cancel' & 'subsc':*");
    }

    #[test]
    fn an_excerpt_is_taken_around_the_first_match() {
        let t = "one two three four five six seven eight nine ten Refunds eleven twelve thirteen";
        let terms = search_terms("refund");
        assert_eq!(
            excerpt(t, &terms, 6),
            "… nine ten Refunds eleven twelve thirteen"
        );
        assert_eq!(excerpt(t, &terms, 100), t);
        assert_eq!(excerpt(t, &search_terms("zzz"), 3), "one two three …");
        assert_eq!(excerpt("(refund) a b c", &terms, 2), "(refund) a …");
        assert_eq!(excerpt("", &terms, 5), "");
    }

    #[test]
    fn a_diff_shows_lines_removed_and_added() {
        let d = diff("one\ntwo\nthree\n", "one\n2\nthree\n");
        assert!(d.contains("-two\n") && d.contains("+2\n"), "{d}");
        assert!(d.contains("--- before") && d.contains("+++ after"), "{d}");
        assert_eq!(diff("same\n", "same\n"), "");
    }
}
