//! Topics: groups of terms people write about together, found without labels. The most
//! frequent terms of a window become nodes of a co-occurrence graph (an edge where two
//! terms share texts more than chance, weighted by normalised PMI); Louvain communities
//! of that graph are the topics, named by their most frequent terms. Each text belongs to
//! the topic sharing most terms with it, so every topic has a text count, a mean
//! sentiment and example texts. Pure: the caller supplies `(text, compound)` pairs.

use crate::trends::terms;
use rapport_graph::{community, Graph};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Topic {
    /// The three most frequent terms, joined: a readable name.
    pub label: String,
    /// Member terms, most frequent first.
    pub terms: Vec<String>,
    /// Texts assigned to this topic.
    pub texts: usize,
    /// Mean compound sentiment of those texts.
    pub sentiment: f64,
    pub positive: usize,
    pub negative: usize,
    /// Up to three texts, the most typical (most member terms) first.
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Terms considered: the most frequent this many.
    pub vocabulary: usize,
    /// A term must appear in at least this many texts.
    pub min_df: usize,
    /// Minimum normalised PMI for two terms to be linked.
    pub min_npmi: f64,
    /// Minimum texts two terms share to be linked.
    pub min_pair: usize,
    pub limit: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            vocabulary: 400,
            min_df: 3,
            min_npmi: 0.1,
            min_pair: 2,
            limit: 20,
        }
    }
}

/// Topics of a set of texts, largest first.
pub fn discover<'a>(texts: impl IntoIterator<Item = (&'a str, f64)>, o: Options) -> Vec<Topic> {
    let docs: Vec<(&str, f64, Vec<String>)> =
        texts.into_iter().map(|(t, c)| (t, c, terms(t))).collect();
    let n_docs = docs.len();
    if n_docs == 0 {
        return vec![];
    }
    let mut df: HashMap<&str, usize> = HashMap::new();
    for (_, _, ts) in &docs {
        for t in ts {
            *df.entry(t.as_str()).or_default() += 1;
        }
    }
    let mut vocab: Vec<(&str, usize)> = df.into_iter().filter(|&(_, n)| n >= o.min_df).collect();
    vocab.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    vocab.truncate(o.vocabulary);
    let index: HashMap<&str, u32> = vocab
        .iter()
        .enumerate()
        .map(|(i, (t, _))| (*t, i as u32))
        .collect();
    // Each text as its vocabulary term ids.
    let ids: Vec<Vec<u32>> = docs
        .iter()
        .map(|(_, _, ts)| {
            let mut v: Vec<u32> = ts
                .iter()
                .filter_map(|t| index.get(t.as_str()).copied())
                .collect();
            v.sort_unstable();
            v
        })
        .collect();
    let mut pairs: HashMap<(u32, u32), usize> = HashMap::new();
    for v in &ids {
        for (k, &a) in v.iter().enumerate() {
            for &b in &v[k + 1..] {
                *pairs.entry((a, b)).or_default() += 1;
            }
        }
    }
    let n = n_docs as f64;
    let mut edges = Vec::new();
    for (&(a, b), &c) in &pairs {
        if c < o.min_pair {
            continue;
        }
        let (pa, pb, pab) = (
            vocab[a as usize].1 as f64 / n,
            vocab[b as usize].1 as f64 / n,
            c as f64 / n,
        );
        // NPMI in [-1, 1]; 1 when the terms always occur together.
        let npmi = if pab >= 1.0 {
            1.0
        } else {
            (pab / (pa * pb)).ln() / -pab.ln()
        };
        if npmi >= o.min_npmi {
            edges.push((a, b, npmi));
        }
    }
    let g = Graph::from_edges(vocab.len(), edges);
    let comm = community::louvain(&g, 7);
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); comm.count];
    for (v, &c) in comm.membership.iter().enumerate() {
        // Terms without any link are not a topic.
        if g.sym.degree(v as u32) > 0 {
            members[c as usize].push(v as u32);
        }
    }
    members.retain(|m| m.len() >= 2);
    for m in &mut members {
        m.sort_by_key(|&t| (std::cmp::Reverse(vocab[t as usize].1), t));
    }
    let mut topic_of_term = vec![usize::MAX; vocab.len()];
    for (k, m) in members.iter().enumerate() {
        for &t in m {
            topic_of_term[t as usize] = k;
        }
    }
    // Assign each text to the topic sharing most terms (ties: the larger topic).
    let mut assigned: Vec<Vec<(usize, usize)>> = vec![Vec::new(); members.len()];
    for (d, v) in ids.iter().enumerate() {
        let mut hits: HashMap<usize, usize> = HashMap::new();
        for &t in v {
            let k = topic_of_term[t as usize];
            if k != usize::MAX {
                *hits.entry(k).or_default() += 1;
            }
        }
        if let Some((k, h)) = hits
            .into_iter()
            .max_by_key(|&(k, h)| (h, std::cmp::Reverse(k)))
        {
            assigned[k].push((d, h));
        }
    }
    let mut out: Vec<Topic> = members
        .iter()
        .zip(assigned)
        .filter(|(_, a)| !a.is_empty())
        .map(|(m, mut a)| {
            let terms: Vec<String> = m.iter().map(|&t| vocab[t as usize].0.to_string()).collect();
            let count = a.len();
            let sum: f64 = a.iter().map(|&(d, _)| docs[d].1).sum();
            let positive = a.iter().filter(|&&(d, _)| docs[d].1 >= 0.05).count();
            let negative = a.iter().filter(|&&(d, _)| docs[d].1 <= -0.05).count();
            a.sort_by_key(|&(d, h)| (std::cmp::Reverse(h), d));
            let mut examples: Vec<String> = Vec::new();
            for &(d, _) in &a {
                if examples.len() == 3 {
                    break;
                }
                if !examples.iter().any(|e| e == docs[d].0) {
                    examples.push(docs[d].0.to_string());
                }
            }
            Topic {
                label: terms
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" · "),
                terms,
                texts: count,
                sentiment: (sum / count as f64 * 10_000.0).round() / 10_000.0,
                positive,
                negative,
                examples,
            }
        })
        .collect();
    out.sort_by(|a, b| b.texts.cmp(&a.texts).then(a.label.cmp(&b.label)));
    out.truncate(o.limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_themes_people_write_about() {
        let mut texts: Vec<(String, f64)> = Vec::new();
        for i in 0..30 {
            texts.push((
                format!("delivery was late again, courier lost parcel {i}"),
                -0.6,
            ));
            texts.push((
                format!("love the battery life and the screen brightness {i}"),
                0.7,
            ));
            texts.push((
                format!("refund still pending, support ticket ignored {i}"),
                -0.4,
            ));
        }
        let topics = discover(
            texts.iter().map(|(t, c)| (t.as_str(), *c)),
            Options::default(),
        );
        assert_eq!(topics.len(), 3, "{topics:#?}");
        let find = |w: &str| {
            topics
                .iter()
                .find(|t| t.terms.iter().any(|x| x == w))
                .unwrap()
        };
        let delivery = find("courier");
        assert!(delivery.terms.contains(&"parcel".to_string()));
        assert!(!delivery.terms.contains(&"battery".to_string()));
        assert_eq!(delivery.texts, 30);
        assert!((delivery.sentiment + 0.6).abs() < 1e-9);
        assert_eq!(delivery.negative, 30);
        assert!(find("battery").sentiment > 0.5);
        assert_eq!(find("refund").examples.len(), 3);
    }

    #[test]
    fn nothing_to_find_in_nothing() {
        assert!(discover(std::iter::empty(), Options::default()).is_empty());
        assert!(discover([("a lone text", 0.0)], Options::default()).is_empty());
    }
}
