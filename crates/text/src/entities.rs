//! Entities in a text: `@handles`, `#hashtags`, e-mail addresses, wallet addresses,
//! ENS-style names, URLs, and product names from a catalogue the brand maintains.
//! Spans are character (Unicode scalar) offsets, `[start, end)`.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entity {
    /// `mention`, `hashtag`, `email`, `wallet`, `ens`, `url`, `product` or `topic`.
    pub kind: &'static str,
    /// Normalised: handles and hashtags without the sigil and lower-cased, e-mails and
    /// ENS names lower-cased, products as the catalogue spells them.
    pub value: String,
    pub start: usize,
    pub end: usize,
}

/// Product names, and the terms of topics the brand tracks, matched case-insensitively
/// on word boundaries, longest first: a product is found as itself, a topic term as its
/// topic (`kind` `topic`, value the topic's name).
pub struct Catalogue {
    /// Per pattern: entity kind and value.
    entries: Vec<(&'static str, String)>,
    matcher: Option<AhoCorasick>,
}

/// A topic the brand tracks: a name and the words or phrases that signal it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize)]
pub struct TrackedTopic {
    pub name: String,
    pub terms: Vec<String>,
}

impl Catalogue {
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        Self::with_topics(names, &[])
    }

    pub fn with_topics(names: impl IntoIterator<Item = String>, topics: &[TrackedTopic]) -> Self {
        let mut patterns: Vec<String> = Vec::new();
        let mut entries = Vec::new();
        for n in names {
            let n = n.trim();
            if !n.is_empty() {
                patterns.push(n.to_string());
                entries.push(("product", n.to_string()));
            }
        }
        for t in topics {
            for term in &t.terms {
                let term = term.trim();
                if !term.is_empty() {
                    patterns.push(term.to_string());
                    entries.push(("topic", t.name.trim().to_string()));
                }
            }
        }
        let matcher = if patterns.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
                .ok()
        };
        Catalogue { entries, matcher }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every entity, in text order.
pub fn extract(text: &str, catalogue: &Catalogue) -> Vec<Entity> {
    let bytes = text.as_bytes();
    let mut found: Vec<(usize, usize, &'static str, String)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let prev_word = i > 0 && (word_byte(bytes[i - 1]) || bytes[i - 1] == b'.');
        if (b == b'h' || b == b'w') && !prev_word {
            let rest = &text[i..];
            if rest.starts_with("http://")
                || rest.starts_with("https://")
                || rest.starts_with("www.")
            {
                let mut j = i;
                while j < bytes.len()
                    && !bytes[j].is_ascii_whitespace()
                    && bytes[j] != b'"'
                    && bytes[j] != b'<'
                    && bytes[j] != b'>'
                {
                    j += 1;
                }
                while j > i
                    && matches!(
                        bytes[j - 1],
                        b'.' | b',' | b';' | b':' | b'!' | b'?' | b')' | b'\''
                    )
                {
                    j -= 1;
                }
                found.push((i, j, "url", text[i..j].to_string()));
                i = j;
                continue;
            }
        }
        if b == b'0' && !prev_word && bytes.get(i + 1) == Some(&b'x') {
            let j = i
                + 2
                + bytes[i + 2..]
                    .iter()
                    .take_while(|c| c.is_ascii_hexdigit())
                    .count();
            if j - i == 42 && !bytes.get(j).is_some_and(|&c| word_byte(c)) {
                found.push((i, j, "wallet", text[i..j].to_string()));
                i = j;
                continue;
            }
        }
        if (b == b'@' || b == b'#') && !prev_word {
            let start = i + 1;
            let j = start
                + text[start..]
                    .char_indices()
                    .take_while(|(_, c)| {
                        c.is_alphanumeric() || *c == '_' || (b == b'@' && *c == '.')
                    })
                    .map(|(k, c)| k + c.len_utf8())
                    .last()
                    .unwrap_or(0);
            let value = text[start..j].trim_end_matches('.');
            let end = start + value.len();
            let ok = if b == b'@' {
                !value.is_empty() && value.len() <= 64
            } else {
                value.chars().any(char::is_alphabetic)
            };
            if ok {
                let kind = if b == b'@' { "mention" } else { "hashtag" };
                found.push((i, end, kind, value.to_lowercase()));
                i = end.max(i + 1);
                continue;
            }
        }
        i += 1;
    }
    // E-mails and ENS names: whitespace-separated tokens, trimmed of punctuation.
    let mut pos = 0;
    for token in text.split(|c: char| {
        c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '<' | '>' | '"' | '\'')
    }) {
        let start = pos;
        pos += token.len() + 1;
        let t = token.trim_end_matches(['.', '!', '?', ':']);
        if t.is_empty() {
            continue;
        }
        let lower = t.to_ascii_lowercase();
        if let Some((local, domain)) = t.split_once('@') {
            let domain_ok = domain.contains('.')
                && !domain.starts_with('.')
                && domain.split('.').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            let local_ok = !local.is_empty()
                && local
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c));
            if domain_ok && local_ok {
                found.retain(|f| !(f.0 >= start && f.0 < start + t.len()));
                found.push((start, start + t.len(), "email", lower));
            }
        } else if lower.ends_with(".eth")
            && lower.len() > 4
            && lower
                .split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            && !found.iter().any(|f| f.0 <= start && f.1 > start)
        {
            found.push((start, start + t.len(), "ens", lower));
        }
    }
    if let Some(m) = &catalogue.matcher {
        for hit in m.find_iter(text) {
            let (s, e) = (hit.start(), hit.end());
            let bounded =
                (s == 0 || !word_byte(bytes[s - 1])) && (e == bytes.len() || !word_byte(bytes[e]));
            if bounded && !found.iter().any(|f| f.0 < e && s < f.1) {
                let (kind, value) = &catalogue.entries[hit.pattern().as_usize()];
                found.push((s, e, kind, value.clone()));
            }
        }
    }
    found.sort_by_key(|f| f.0);
    found
        .into_iter()
        .map(|(s, e, kind, value)| Entity {
            kind,
            value,
            start: text[..s].chars().count(),
            end: text[..e].chars().count(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str, cat: &Catalogue) -> Vec<(&'static str, String)> {
        extract(text, cat)
            .into_iter()
            .map(|e| (e.kind, e.value))
            .collect()
    }

    #[test]
    fn social_text() {
        let cat = Catalogue::new(["Aurora Headphones".to_string(), "Aurora".to_string()]);
        let text = "Love my aurora headphones! thanks @Rapport_HQ #Music #2024 see https://shop.example/p/1. mail ann@example.com";
        assert_eq!(
            kinds(text, &cat),
            vec![
                ("product", "Aurora Headphones".into()),
                ("mention", "rapport_hq".into()),
                ("hashtag", "music".into()),
                ("url", "https://shop.example/p/1".into()),
                ("email", "ann@example.com".into()),
            ]
        );
    }

    #[test]
    fn wallets_and_ens_with_char_spans() {
        let text = "é send to 0x52908400098527886E0F7030069857D2E4169EE7 or vitalik.eth";
        let e = extract(text, &Catalogue::new([]));
        assert_eq!(e[0].kind, "wallet");
        assert_eq!((e[0].start, e[0].end), (10, 52));
        assert_eq!((e[1].kind, e[1].value.as_str()), ("ens", "vitalik.eth"));
        assert!(extract("0x1234 is short", &Catalogue::new([])).is_empty());
    }

    #[test]
    fn products_need_word_boundaries() {
        let cat = Catalogue::new(["Pulse".to_string()]);
        assert!(kinds("impulse buy", &cat).is_empty());
        assert_eq!(
            kinds("the PULSE is great", &cat),
            vec![("product", "Pulse".into())]
        );
    }
}
