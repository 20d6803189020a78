//! [`PrivacyStore`] and the shapes it speaks; implemented in `sqlite/privacy.rs` and
//! `postgres/privacy.rs`: everything stored about one person (the export), erasure in
//! one transaction, the hashes of erased identifiers, and the staff access audit.
//!
//! Both the export and erasure walk one list, [`PERSON_TABLES`]: a table that starts
//! holding personal data is added there once and is then exported and erased on both
//! stores (the erasure test searches every table and column, so a table missed here
//! fails it).

use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;

/// One entry of the audit of staff access: who did what to which target, never the
/// personal data itself.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    #[serde(default)]
    pub id: i64,
    pub at: Millis,
    /// `user:ann@brand.example` or `api:rk_ab12`.
    pub who: String,
    /// `profile.view`, `profile.export`, `profile.erase`, `consent.set`, `key.create`, …
    pub action: String,
    /// `person:42`, `key:rk_ab12`, `user:7`.
    pub target: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub target: Option<String>,
    pub action: Option<String>,
    /// Entries strictly older than this id (keyset paging).
    pub before: Option<i64>,
    pub limit: usize,
}

/// What an erasure removed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ErasureReport {
    pub person: ProfileId,
    /// Raw profiles removed.
    pub profiles: usize,
    /// Identifiers removed (and, when asked, remembered by hash only).
    pub identifiers: usize,
    /// Events kept as anonymous aggregates (their properties, context and text gone).
    pub events_anonymised: usize,
    /// Rows removed or cleared per table.
    #[schema(value_type = Object)]
    pub tables: std::collections::BTreeMap<String, usize>,
}

/// How erasure treats a table's rows about the person.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Erase {
    Delete,
    /// `UPDATE … SET <this>`: the row stays as an anonymous aggregate.
    Set(&'static str),
}

/// A table holding rows about a person, the condition that finds them, and what
/// erasure does with them. Conditions use sets each backend binds as a parameter:
/// `{P}` the person's raw profile ids, `{E}` their e-mail addresses, `{W}` wallets,
/// `{V}` every identifier value, `{K}` every identifier as `kind:value`.
pub(crate) struct PersonTable {
    pub table: &'static str,
    pub filter: &'static str,
    pub erase: Erase,
    /// Exported under `records` (events and profiles have their own sections).
    pub export: bool,
    /// Columns never exported (secrets that are the brand's, not the person's).
    pub hidden: &'static [&'static str],
    /// Byte columns that hold text (a message's source), exported as text.
    pub texts: &'static [&'static str],
}

const fn t(table: &'static str, filter: &'static str, erase: Erase) -> PersonTable {
    PersonTable {
        table,
        filter,
        erase,
        export: true,
        hidden: &[],
        texts: &[],
    }
}

/// In erasure order: rows found through other rows come before those.
pub(crate) const PERSON_TABLES: &[PersonTable] = &[
    t("post_votes", "profile_id IN {P}", Erase::Delete),
    // Others' answers hang on a person's question: the posts stay, their words go.
    PersonTable {
        hidden: &["tsv"],
        ..t(
            "posts",
            "profile_id IN {P}",
            Erase::Set("profile_id = NULL, title = CASE WHEN title IS NULL THEN NULL ELSE '(removed)' END, body = '(removed at the author''s request)'"),
        )
    },
    PersonTable {
        hidden: &["tsv"],
        ..t(
            "kb_articles",
            "author_profile IN {P}",
            Erase::Set("author_profile = NULL"),
        )
    },
    t(
        "kb_revisions",
        "author_profile IN {P}",
        Erase::Set("author_profile = NULL"),
    ),
    t("kb_deflections", "profile_id IN {P}", Erase::Delete),
    t(
        "ticket_messages",
        "ticket_id IN (SELECT id FROM tickets WHERE profile_id IN {P})",
        Erase::Delete,
    ),
    t(
        "ticket_tags",
        "ticket_id IN (SELECT id FROM tickets WHERE profile_id IN {P})",
        Erase::Delete,
    ),
    t("tickets", "profile_id IN {P}", Erase::Delete),
    t("loyalty_redemptions", "profile_id IN {P}", Erase::Delete),
    t("loyalty_entries", "profile_id IN {P}", Erase::Delete),
    t("loyalty_lots", "profile_id IN {P}", Erase::Delete),
    t("loyalty_tiers", "profile_id IN {P}", Erase::Delete),
    t("referral_codes", "profile_id IN {P}", Erase::Delete),
    t(
        "referrals",
        "referrer_id IN {P} OR referred_id IN {P}",
        Erase::Delete,
    ),
    t(
        "email_clicks",
        "message_id IN (SELECT public_id FROM email_messages WHERE profile_id IN {P} OR to_address IN {E})",
        Erase::Delete,
    ),
    PersonTable {
        texts: &["raw"],
        ..t(
            "email_messages",
            "profile_id IN {P} OR to_address IN {E}",
            Erase::Delete,
        )
    },
    t("email_primary", "address IN {E}", Erase::Delete),
    t("email_suppressions", "address IN {E}", Erase::Delete),
    t("consents", "profile_id IN {P}", Erase::Delete),
    PersonTable {
        export: false,
        ..t("event_numbers", "profile_id IN {P}", Erase::Delete)
    },
    PersonTable {
        export: false,
        ..t(
            "events",
            "profile_id IN {P}",
            Erase::Set("message_id = 'erased:' || id, properties = '{}', context = '{}', text = NULL"),
        )
    },
    t("text_analyses", "profile_id IN {P}", Erase::Delete),
    t("text_tags", "profile_id IN {P}", Erase::Delete),
    t(
        "relationships",
        "source_id IN {P} OR target_id IN {P}",
        Erase::Delete,
    ),
    t("touches", "source_id IN {P} OR target_id IN {P}", Erase::Delete),
    t("graph_scores", "profile_id IN {P}", Erase::Delete),
    t("profile_scores", "profile_id IN {P}", Erase::Delete),
    t("segment_members", "profile_id IN {P}", Erase::Delete),
    t("rule_firings", "profile_id IN {P}", Erase::Delete),
    t("tasks", "profile_id IN {P}", Erase::Delete),
    PersonTable {
        hidden: &["secret"],
        ..t("outbox", "profile_id IN {P}", Erase::Delete)
    },
    // Payments stay for the books, without the person's wallet.
    PersonTable {
        hidden: &["raw_tx"],
        ..t(
            "rewards",
            "profile_id IN {P} OR wallet IN {W}",
            Erase::Set("wallet = 'erased', raw_tx = NULL, idempotency_key = 'erased:' || id"),
        )
    },
    t("holdings", "wallet IN {W}", Erase::Delete),
    // Public chain data, but it names the wallet: the copy here goes.
    t(
        "chain_logs",
        "from_wallet IN {W} OR to_wallet IN {W}",
        Erase::Delete,
    ),
    t(
        "conflicts",
        "profile_a IN {P} OR profile_b IN {P} OR identifier IN {K}",
        Erase::Delete,
    ),
    t(
        "detaches",
        "from_profile IN {P} OR to_profile IN {P} OR value IN {V}",
        Erase::Delete,
    ),
    t(
        "merges",
        "survivor_id IN {P} OR merged_id IN {P}",
        Erase::Delete,
    ),
    t(
        "merge_blocks",
        "profile_a IN {P} OR profile_b IN {P}",
        Erase::Delete,
    ),
    PersonTable {
        export: false,
        ..t(
            "ingestion_issues",
            "example_value IN {V}",
            Erase::Set("example_value = '(erased)'"),
        )
    },
    PersonTable {
        hidden: &["token_hash"],
        ..t(
            "portal_links",
            "profile_id IN {P} OR email IN {E}",
            Erase::Delete,
        )
    },
    PersonTable {
        hidden: &["token_hash", "csrf"],
        ..t("portal_sessions", "profile_id IN {P}", Erase::Delete)
    },
    t("identities", "profile_id IN {P}", Erase::Delete),
    PersonTable {
        export: false,
        ..t("profiles", "id IN {P}", Erase::Delete)
    },
];

/// A set a condition names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PersonSet {
    Profiles,
    Emails,
    Wallets,
    Values,
    Keys,
}

/// Splits a condition into its text and the sets it names, in order: each backend
/// puts its own parameter expression where each `{X}` stood.
pub(crate) fn person_filter(
    filter: &str,
    mut param: impl FnMut(usize, PersonSet) -> String,
) -> (String, Vec<PersonSet>) {
    let mut out = String::with_capacity(filter.len() + 32);
    let mut sets = Vec::new();
    let mut rest = filter;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let set = match rest.get(i..i + 3) {
            Some("{P}") => PersonSet::Profiles,
            Some("{E}") => PersonSet::Emails,
            Some("{W}") => PersonSet::Wallets,
            Some("{V}") => PersonSet::Values,
            Some("{K}") => PersonSet::Keys,
            _ => {
                out.push('{');
                rest = &rest[i + 1..];
                continue;
            }
        };
        sets.push(set);
        out.push_str(&param(sets.len(), set));
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    (out, sets)
}

/// The person's sets, read inside the erasure or export transaction.
#[derive(Debug, Clone, Default)]
pub(crate) struct PersonSets {
    pub profiles: Vec<i64>,
    /// `(kind, value)` of every identifier.
    pub identifiers: Vec<(String, String)>,
}

impl PersonSets {
    pub fn strings(&self, set: PersonSet) -> Vec<String> {
        let of = |kind: &str| {
            self.identifiers
                .iter()
                .filter(|(k, _)| k == kind)
                .map(|(_, v)| v.clone())
                .collect()
        };
        match set {
            PersonSet::Profiles => self.profiles.iter().map(|p| p.to_string()).collect(),
            PersonSet::Emails => of("email"),
            PersonSet::Wallets => of("wallet"),
            PersonSet::Values => self.identifiers.iter().map(|(_, v)| v.clone()).collect(),
            PersonSet::Keys => self
                .identifiers
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect(),
        }
    }

    /// The identifiers' hashes, as erasure remembers them.
    pub fn hashes(&self) -> Vec<String> {
        self.identifiers
            .iter()
            .map(|(k, v)| rapport_domain::privacy::hex_sha256(&format!("{k}:{v}")))
            .collect()
    }
}

/// Other people's events that name the person (a referral, a mention, a reply) are
/// found through the relationships inferred from them; the person's identifiers are
/// replaced in their properties, context and text before those relationships go.
pub(crate) const TOUCHED_EVENTS: &str = "id IN (SELECT event_id FROM touches WHERE source_id IN {P} OR target_id IN {P}) AND profile_id NOT IN {P}";

/// Replaces every occurrence of `needles` in the strings (and keys) of `v`; true when
/// anything changed.
pub(crate) fn scrub(v: &mut serde_json::Value, needles: &[String]) -> bool {
    use serde_json::Value;
    match v {
        Value::String(s) => scrub_text(s, needles),
        Value::Array(a) => a.iter_mut().fold(false, |c, x| scrub(x, needles) | c),
        Value::Object(o) => {
            let mut changed = false;
            let old = std::mem::take(o);
            for (mut k, mut x) in old {
                changed |= scrub_text(&mut k, needles);
                changed |= scrub(&mut x, needles);
                o.insert(k, x);
            }
            changed
        }
        _ => false,
    }
}

pub(crate) fn scrub_text(s: &mut String, needles: &[String]) -> bool {
    let mut changed = false;
    for n in needles.iter().filter(|n| !n.is_empty()) {
        // Wallets are compared without case (addresses are written in either).
        let lower = s.to_lowercase();
        let n_lower = n.to_lowercase();
        if lower.contains(&n_lower) && lower.len() == s.len() {
            let mut out = String::with_capacity(s.len());
            let mut rest_start = 0;
            for (i, _) in lower.match_indices(&n_lower) {
                out.push_str(&s[rest_start..i]);
                out.push_str("[erased]");
                rest_start = i + n_lower.len();
            }
            out.push_str(&s[rest_start..]);
            *s = out;
            changed = true;
        } else if s.contains(n.as_str()) {
            *s = s.replace(n.as_str(), "[erased]");
            changed = true;
        }
    }
    changed
}

impl PersonSets {
    /// What is scrubbed from other people's rows: each identifier value, with the
    /// address alone for wallets (`eip155:1:0xAb…` is written `0xAb…` in events).
    pub fn needles(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (kind, v) in &self.identifiers {
            out.push(v.clone());
            if kind == "wallet" {
                if let Some(addr) = v.rsplit(':').next() {
                    out.push(addr.to_string());
                }
            }
        }
        // Longest first: a value inside another is replaced after it.
        out.sort_by_key(|n| std::cmp::Reverse(n.len()));
        out.dedup();
        out
    }
}

/// People whose raw profiles hold no identifier but anonymous ids, none updated since
/// `?1`/`$1` (the same text on both stores; see `PrivacyStore::anonymous_people`).
pub(crate) const ANONYMOUS_PEOPLE: &str = "SELECT p.id FROM profiles p
    WHERE p.id = p.canonical_id AND p.updated_at < $1
      AND NOT EXISTS (SELECT 1 FROM profiles m JOIN identities i ON i.profile_id = m.id
                      WHERE m.canonical_id = p.id AND i.kind <> 'anonymous_id')
      AND NOT EXISTS (SELECT 1 FROM profiles m WHERE m.canonical_id = p.id AND m.updated_at >= $1)
    ORDER BY p.id LIMIT $2";

/// What is derived from an event and goes with it when it expires.
pub(crate) const EVENT_DERIVED: &[&str] =
    &["event_numbers", "text_analyses", "text_tags", "touches"];

/// SQLite keeps JSON in text columns; the export shows it as JSON.
pub(crate) fn unfold_json(mut row: serde_json::Value, hidden: &[&str]) -> serde_json::Value {
    if let serde_json::Value::Object(map) = &mut row {
        for h in hidden {
            map.remove(*h);
        }
        for v in map.values_mut() {
            if let serde_json::Value::String(s) = v {
                if s.starts_with('{') || s.starts_with('[') {
                    if let Ok(parsed) = serde_json::from_str(s) {
                        *v = parsed;
                    }
                }
            }
        }
    }
    row
}

/// What is stored about people beyond their events and profile rows, erasure, and the
/// audit of staff access.
#[async_trait]
pub trait PrivacyStore: Send + Sync {
    /// Every row about `person` (every raw profile of theirs) in the tables of
    /// [`PERSON_TABLES`] marked for export, by table name.
    async fn person_records(
        &self,
        person: ProfileId,
    ) -> Result<Vec<(String, Vec<serde_json::Value>)>>;
    /// Erases `persons` (every raw profile of each) in one transaction: every table of
    /// [`PERSON_TABLES`], the identifiers' hashes remembered when `remember` (so they
    /// do not come back), and an audit entry per person by `by`. `NotFound` when none
    /// exists. On SQLite the deleted content is overwritten (`secure_delete`) and the WAL
    /// checkpointed and truncated.
    async fn erase(
        &self,
        persons: Vec<ProfileId>,
        remember: bool,
        by: &str,
        at: Millis,
    ) -> Result<ErasureReport>;
    /// People (canonical ids) whose every raw profile has no identifier but anonymous
    /// ids and was last updated before `before`; at most `limit`.
    async fn anonymous_people(&self, before: Millis, limit: usize) -> Result<Vec<ProfileId>>;
    /// Deletes at most `limit` events that happened before `before` (with what was
    /// derived from them), adding them to the daily counts of `event_aggregates` first;
    /// returns how many. One transaction.
    async fn expire_events(&self, before: Millis, limit: usize) -> Result<usize>;
    /// Hashes of erased identifiers (see `rapport_domain::privacy::identifier_hash`).
    async fn erased_hashes(&self) -> Result<Vec<String>>;
    async fn record_audit(&self, entry: AuditEntry) -> Result<()>;
    /// Newest first.
    async fn audit_log(&self, q: AuditQuery) -> Result<Vec<AuditEntry>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_name_their_sets_in_order() {
        let (sql, sets) = person_filter("a IN {P} OR b IN {E} OR c = '{}'", |i, s| {
            format!("${i}{s:?}")
        });
        assert_eq!(sql, "a IN $1Profiles OR b IN $2Emails OR c = '{}'");
        assert_eq!(sets, vec![PersonSet::Profiles, PersonSet::Emails]);
    }

    #[test]
    fn every_table_is_named_once() {
        let mut names: Vec<_> = PERSON_TABLES.iter().map(|t| t.table).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn scrubbing_replaces_values_keys_and_any_case_addresses() {
        let needles = vec!["ann@x.io".to_string(), "0xAbC".to_string()];
        let mut v = serde_json::json!({"referrer": "email:ann@x.io", "ann@x.io": 1, "w": ["to 0xabc!"], "n": 3});
        assert!(scrub(&mut v, &needles));
        assert_eq!(
            v,
            serde_json::json!({"referrer": "email:[erased]", "[erased]": 1, "w": ["to [erased]!"], "n": 3})
        );
        let mut clean = serde_json::json!({"a": "nothing here"});
        assert!(!scrub(&mut clean, &needles));
        let sets = PersonSets {
            profiles: vec![1],
            identifiers: vec![
                ("wallet".into(), "eip155:1:0xAbC".into()),
                ("email".into(), "a@b".into()),
            ],
        };
        assert_eq!(sets.needles(), vec!["eip155:1:0xAbC", "0xAbC", "a@b"]);
    }

    #[test]
    fn json_text_is_unfolded_and_secrets_hidden() {
        let row = serde_json::json!({"a": "{\"x\":1}", "b": "{not json", "secret": "s"});
        let out = unfold_json(row, &["secret"]);
        assert_eq!(out, serde_json::json!({"a": {"x": 1}, "b": "{not json"}));
    }
}
