//! Relationships between people: the records the store keeps, and the rules that infer
//! them from events (docs/graph.md lists the properties read).
//!
//! A relationship is directed and typed: `(source, kind, target)` with a weight, a count
//! of observations, first/last seen and, once text analytics has scored the events, the
//! average sentiment of the source toward the target. Explicit relationships (API,
//! import) carry the weight they were given; inferred ones count their observations.

use crate::identifier::{IdentityKey, IdentityKind};
use crate::message::FieldError;
use crate::model::EventView;
use crate::resolve::ProfileId;
use crate::time::Millis;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Kinds the product infers; explicit relationships may use any valid kind.
pub const INFERRED_KINDS: [&str; 7] = [
    "referred",
    "mentioned",
    "replied",
    "answered",
    "helpful_answer",
    "transferred",
    "follows",
];

/// A relationship kind: lower-case letters, digits and `_`, 1–32 bytes.
pub fn validate_kind(s: &str) -> Result<String, FieldError> {
    let k = s.trim();
    let ok = !k.is_empty()
        && k.len() <= 32
        && k.starts_with(|c: char| c.is_ascii_lowercase())
        && k.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(k.to_string())
    } else {
        Err(FieldError::new(
            "kind",
            format!("'{s}' is not a relationship kind: use 1-32 lower-case letters, digits or '_', starting with a letter"),
        ))
    }
}

/// One observation or assertion of a relationship, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationshipWrite {
    pub source: ProfileId,
    pub target: ProfileId,
    pub kind: String,
    pub weight: f64,
    /// Explicit: `weight` replaces the stored one. Inferred: it adds to it, and the
    /// observation is kept as a touch (for attribution) when `event_id` is set.
    pub explicit: bool,
    pub at: Millis,
    pub sentiment: Option<f64>,
    pub event_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct RelationshipView {
    pub source: ProfileId,
    pub target: ProfileId,
    pub kind: String,
    pub weight: f64,
    pub count: i64,
    pub explicit: bool,
    /// Mean sentiment of the source's texts toward the target, when scored.
    pub sentiment: Option<f64>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// An inferred observation of one person acting toward another, kept for attribution.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct TouchView {
    pub source: ProfileId,
    pub target: ProfileId,
    pub kind: String,
    pub event_id: Option<i64>,
    pub at: DateTime<Utc>,
    pub sentiment: Option<f64>,
}

/// A person's network metrics from the latest graph computation (docs/graph.md).
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema, PartialEq)]
pub struct GraphScores {
    pub profile_id: ProfileId,
    /// Standard PageRank (damping 0.85), summing to 1 over everyone.
    pub pagerank: f64,
    /// Betweenness normalised by (n-1)(n-2); sampled on large graphs.
    pub betweenness: f64,
    /// Louvain community, 0 the largest.
    pub community: i64,
    /// k-core number in the undirected view.
    pub core: i64,
    /// Distinct people one hop away.
    pub reach1: i64,
    /// Distinct people within two hops.
    pub reach2: i64,
    pub evangelist: f64,
    pub syndication: f64,
    /// Share of people with a lower PageRank (0..1).
    pub pagerank_pct: f64,
    /// Share of people with a lower betweenness (0..1).
    pub betweenness_pct: f64,
}

/// One graph computation: when, on which version of the relationships, with which
/// parameters and global results (modularity, error bounds…).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GraphRun {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub graph_version: i64,
    #[schema(value_type = Object)]
    pub summary: Value,
}

/// Relationship writes with the same `(source, target, kind)` folded into one row:
/// explicit weights replace (the last one wins), inferred ones add up.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeRow {
    pub source: ProfileId,
    pub target: ProfileId,
    pub kind: String,
    pub weight: f64,
    pub count: i64,
    pub explicit: bool,
    pub sentiment_sum: f64,
    pub sentiment_n: i64,
    pub first_seen: Millis,
    pub last_seen: Millis,
}

pub fn fold_writes(writes: &[RelationshipWrite]) -> Vec<EdgeRow> {
    let mut index: std::collections::HashMap<(ProfileId, ProfileId, &str), usize> =
        std::collections::HashMap::new();
    let mut rows: Vec<EdgeRow> = Vec::new();
    for w in writes {
        if w.source == w.target {
            continue;
        }
        let (ss, sn) = w.sentiment.map_or((0.0, 0), |s| (s, 1));
        match index.get(&(w.source, w.target, w.kind.as_str())) {
            Some(&i) => {
                let r = &mut rows[i];
                if w.explicit {
                    r.weight = w.weight;
                    r.explicit = true;
                } else if !r.explicit {
                    r.weight += w.weight;
                }
                r.count += 1;
                r.sentiment_sum += ss;
                r.sentiment_n += sn;
                r.first_seen = r.first_seen.min(w.at);
                r.last_seen = r.last_seen.max(w.at);
            }
            None => {
                index.insert((w.source, w.target, w.kind.as_str()), rows.len());
                rows.push(EdgeRow {
                    source: w.source,
                    target: w.target,
                    kind: w.kind.clone(),
                    weight: w.weight,
                    count: 1,
                    explicit: w.explicit,
                    sentiment_sum: ss,
                    sentiment_n: sn,
                    first_seen: w.at,
                    last_seen: w.at,
                });
            }
        }
    }
    rows
}

/// What an event says about a relationship with another person, before that person
/// is looked up.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeHint {
    pub kind: &'static str,
    /// The other person.
    pub other: IdentityKey,
    /// True when the edge runs from the other person to the event's author
    /// (a referral: the referrer referred the author).
    pub toward_author: bool,
    /// For a transfer between two third parties' wallets: the source wallet (the
    /// event's author is then not an end of the edge).
    pub from: Option<IdentityKey>,
}

/// Top-level `properties` keys [`infer`] reads. Stores use them to skip, cheaply,
/// events that cannot imply a relationship (the other case being `@` in the text).
pub const HINT_KEYS: [&str; 11] = [
    "referrer",
    "referred_by",
    "referrer_id",
    "mentions",
    "in_reply_to",
    "reply_to",
    "question_author",
    "followee",
    "follows",
    "from",
    "network",
];

/// Networks whose name as an event channel tells which network an `@handle` is on.
const SOCIAL_CHANNELS: [&str; 12] = [
    "x",
    "twitter",
    "instagram",
    "tiktok",
    "facebook",
    "linkedin",
    "reddit",
    "mastodon",
    "bluesky",
    "discord",
    "telegram",
    "youtube",
];

/// Relationship hints in an event. Reads `properties`:
/// `referrer`/`referred_by` (referred, toward the author), `mentions` (array),
/// `in_reply_to`/`reply_to` (replied), `question_author` (answered, plus
/// `helpful_answer` when `helpful` or `accepted` is true), `followee`/`follows`
/// (follows), `from`+`to` wallets (transferred), and `@handles` in the event text when
/// `properties.network` or the channel names a social network.
pub fn infer(ev: &EventView) -> Vec<EdgeHint> {
    let mut out = Vec::new();
    let p = &ev.properties;
    let Some(props) = p.as_object() else {
        return out;
    };
    let network = props
        .get("network")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .or_else(|| {
            let c = ev.channel.to_ascii_lowercase();
            SOCIAL_CHANNELS.contains(&c.as_str()).then_some(c)
        });
    let ident = |v: &Value| -> Option<IdentityKey> {
        let s = v.as_str()?;
        match (s.strip_prefix('@'), &network) {
            (Some(h), Some(n)) => {
                IdentityKey::parse(IdentityKind::Social, &format!("{n}:{h}")).ok()
            }
            (Some(_), None) => None,
            (None, _) => IdentityKey::parse_prefixed(s).ok(),
        }
    };
    let mut push = |kind: &'static str, other: Option<IdentityKey>, toward_author: bool| {
        if let Some(other) = other {
            let h = EdgeHint {
                kind,
                other,
                toward_author,
                from: None,
            };
            if !out.contains(&h) {
                out.push(h);
            }
        }
    };
    // On pages and screens Segment's `properties.referrer` is the previous URL, not a
    // person; elsewhere a URL there is not a person either.
    let is_view = ev.kind == "page" || ev.kind == "screen";
    for key in ["referrer", "referred_by", "referrer_id"] {
        if key == "referrer" && is_view {
            continue;
        }
        if let Some(v) = props.get(key) {
            let url = v
                .as_str()
                .is_some_and(|s| s.contains("://") || s.starts_with("www."));
            if !url {
                push("referred", ident(v), true);
            }
        }
    }
    if let Some(Value::Array(ms)) = props.get("mentions") {
        for m in ms.iter().take(50) {
            push("mentioned", ident(m), false);
        }
    }
    for key in ["in_reply_to", "reply_to"] {
        if let Some(v) = props.get(key) {
            push("replied", ident(v), false);
        }
    }
    if let Some(v) = props.get("question_author") {
        push("answered", ident(v), false);
        let helpful = |k: &str| props.get(k).and_then(Value::as_bool).unwrap_or(false);
        if helpful("helpful") || helpful("accepted") {
            push("helpful_answer", ident(v), false);
        }
    }
    for key in ["followee", "follows"] {
        if let Some(v) = props.get(key) {
            push("follows", ident(v), false);
        }
    }
    if let Some(n) = &network {
        if let Some(text) = &ev.text {
            for h in handles(text).into_iter().take(50) {
                push(
                    "mentioned",
                    IdentityKey::parse(IdentityKind::Social, &format!("{n}:{h}")).ok(),
                    false,
                );
            }
        }
    }
    // A transfer between two customers is seen from both ends (Token Sent and Token
    // Received); only the receiving side's event makes the edge, so it counts once.
    let sent_side = props.get("direction").and_then(Value::as_str) == Some("out");
    if let (Some(from), Some(to), false) = (props.get("from"), props.get("to"), sent_side) {
        let wallet = |v: &Value| {
            let s = v.as_str()?;
            let s = s.strip_prefix("wallet:").unwrap_or(s);
            let chain = props.get("chain_id").and_then(Value::as_u64);
            match chain {
                Some(c) if !s.contains(':') => {
                    IdentityKey::parse(IdentityKind::Wallet, &format!("eip155:{c}:{s}")).ok()
                }
                _ => IdentityKey::parse(IdentityKind::Wallet, s).ok(),
            }
        };
        if let (Some(f), Some(t)) = (wallet(from), wallet(to)) {
            out.push(EdgeHint {
                kind: "transferred",
                other: t,
                toward_author: false,
                from: Some(f),
            });
        }
    }
    out
}

/// `@handle` tokens of a text (letters, digits, `_` and `.`; e-mail addresses skipped).
pub fn handles(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'@'
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'.'))
        {
            let start = i + 1;
            let mut j = start;
            while j < bytes.len()
                && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_' || bytes[j] == b'.')
            {
                j += 1;
            }
            let h = text[start..j].trim_end_matches('.');
            if !h.is_empty() && !out.contains(&h) {
                out.push(h);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn event(channel: &str, properties: Value, text: Option<&str>) -> EventView {
        let t = Utc.timestamp_millis_opt(0).unwrap();
        EventView {
            id: 1,
            message_id: "m".into(),
            profile_id: 1,
            kind: "track".into(),
            name: Some("Posted".into()),
            channel: channel.into(),
            source: "test".into(),
            properties,
            context: json!({}),
            text: text.map(str::to_string),
            occurred_at: t,
            received_at: t,
        }
    }

    #[test]
    fn referral_mentions_replies_and_answers() {
        let ev = event(
            "server",
            json!({"referrer": "email:Ann@Example.com", "mentions": ["bob", "email:c@x.io"], "in_reply_to": "user_id:dan",
                   "question_author": "erin", "accepted": true}),
            None,
        );
        let h = infer(&ev);
        let kinds: Vec<_> = h
            .iter()
            .map(|h| (h.kind, h.other.to_string(), h.toward_author))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("referred", "email:ann@example.com".to_string(), true),
                ("mentioned", "user_id:bob".to_string(), false),
                ("mentioned", "email:c@x.io".to_string(), false),
                ("replied", "user_id:dan".to_string(), false),
                ("answered", "user_id:erin".to_string(), false),
                ("helpful_answer", "user_id:erin".to_string(), false),
            ]
        );
    }

    #[test]
    fn a_referrer_url_is_not_a_person() {
        let mut page = event("web", json!({"referrer": "ann"}), None);
        page.kind = "page".into();
        assert!(infer(&page).is_empty());
        assert!(infer(&event(
            "web",
            json!({"referrer": "https://www.google.com/"}),
            None
        ))
        .is_empty());
        assert_eq!(
            infer(&event("web", json!({"referrer_id": "ann"}), None)).len(),
            1
        );
    }

    #[test]
    fn handles_in_social_text_need_a_network() {
        let ev = event(
            "twitter",
            json!({}),
            Some("Loving it @Alice_B and @bob.! mail me at c@d.io"),
        );
        let h = infer(&ev);
        let others: Vec<_> = h.iter().map(|h| h.other.to_string()).collect();
        assert_eq!(others, vec!["social:x:alice_b", "social:x:bob"]);
        assert!(infer(&event("web", json!({}), Some("hi @alice"))).is_empty());
    }

    #[test]
    fn wallet_transfers_with_a_chain_id() {
        let ev = event(
            "web3",
            json!({"from": "0x52908400098527886e0f7030069857d2e4169ee7", "to": "0x8617e340b3d01fa5f11f306f4090fd50e238070d", "chain_id": 1}),
            None,
        );
        let h = infer(&ev);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].kind, "transferred");
        assert!(h[0]
            .from
            .as_ref()
            .unwrap()
            .value
            .starts_with("eip155:1:0x5290"));
    }

    #[test]
    fn folding_replaces_explicit_weights_and_adds_inferred_ones() {
        let w = |kind: &str, weight: f64, explicit: bool, at: Millis| RelationshipWrite {
            source: 1,
            target: 2,
            kind: kind.into(),
            weight,
            explicit,
            at,
            sentiment: Some(0.5),
            event_id: None,
        };
        let rows = fold_writes(&[
            w("knows", 2.0, true, 10),
            w("knows", 3.0, true, 5),
            w("mentioned", 1.0, false, 7),
            w("mentioned", 1.0, false, 9),
        ]);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (
                rows[0].weight,
                rows[0].count,
                rows[0].first_seen,
                rows[0].last_seen
            ),
            (3.0, 2, 5, 10)
        );
        assert_eq!(
            (rows[1].weight, rows[1].count, rows[1].sentiment_n),
            (2.0, 2, 2)
        );
    }

    #[test]
    fn kinds_are_validated() {
        assert_eq!(validate_kind(" knows ").unwrap(), "knows");
        assert!(validate_kind("Knows").is_err());
        assert!(validate_kind("").is_err());
        assert!(validate_kind("a-b").is_err());
    }
}
