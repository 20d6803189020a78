//! Placeholder identifiers: values a broken SDK, a form default or a test sends for
//! many different people (`anonymousId: "undefined"`, `test@test.com`, the zero
//! wallet). Resolving on them would make strangers one person, so a blocked value is
//! dropped from identity resolution and reported; the message and its event are kept.
//! Built-in values are below; a brand adds its own patterns (`rapport_app::identity`).

use crate::identifier::{IdentityKey, IdentityKind};
use crate::message::{Message, MessageType};
use crate::FieldError;
use serde::{Deserialize, Serialize};

/// Values no one is identified by, compared after trimming, case-insensitively.
pub const PLACEHOLDERS: &[&str] = &[
    "",
    "0",
    "-1",
    "null",
    "nil",
    "none",
    "undefined",
    "nan",
    "unknown",
    "anonymous",
    "anon",
    "guest",
    "n/a",
    "na",
    "test",
    "true",
    "false",
    "[object object]",
    "{}",
    "[]",
    "00000000-0000-0000-0000-000000000000",
];

/// E-mail addresses that forms and tests fill in.
pub const PLACEHOLDER_EMAILS: &[&str] = &[
    "test@test.com",
    "test@example.com",
    "email@example.com",
    "user@example.com",
    "name@example.com",
    "you@example.com",
    "your@email.com",
    "email@email.com",
    "none@none.com",
    "no@email.com",
    "noemail@noemail.com",
];

/// Local parts of addresses that are never one customer's.
const PLACEHOLDER_LOCALS: &[&str] = &[
    "noreply",
    "no-reply",
    "donotreply",
    "do-not-reply",
    "null",
    "undefined",
    "none",
    "nan",
    "unknown",
];

/// Why a built-in rule blocks `key`, if one does.
pub fn builtin(key: &IdentityKey) -> Option<&'static str> {
    // Runs on every identifier of every message: compare without allocating (the
    // placeholders are ASCII; stored e-mails are already lower-case).
    let v = key.value.trim();
    let placeholder = |s: &str| {
        PLACEHOLDERS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(s.trim()))
    };
    match key.kind {
        IdentityKind::UserId | IdentityKind::AnonymousId => {
            placeholder(v).then_some("a placeholder value")
        }
        IdentityKind::External => v
            .split_once(':')
            .is_some_and(|(_, id)| placeholder(id))
            .then_some("a placeholder value"),
        IdentityKind::Social => v
            .split_once(':')
            .is_some_and(|(_, h)| placeholder(h))
            .then_some("a placeholder handle"),
        IdentityKind::Email => {
            let local = v.rsplit_once('@').map(|(l, _)| l).unwrap_or(v);
            (PLACEHOLDER_EMAILS.contains(&v) || PLACEHOLDER_LOCALS.contains(&local))
                .then_some("a placeholder address")
        }
        IdentityKind::Phone => {
            // E.164: the digits after the country code all alike, or a counting run.
            let digits: Vec<u8> = v.bytes().filter(u8::is_ascii_digit).collect();
            let tail = &digits[digits.len().saturating_sub(7)..];
            let alike = tail.len() == 7 && tail.iter().all(|d| *d == tail[0]);
            let counting = v.contains("1234567890") || v.contains("0123456789");
            (alike || counting).then_some("a placeholder number")
        }
        IdentityKind::Wallet => {
            let addr = v.rsplit(':').next().unwrap_or(v);
            let hex = addr.strip_prefix("0x").unwrap_or(addr);
            let zero = !hex.is_empty() && hex.bytes().all(|b| b == b'0');
            // The conventional burn address: tokens sent there belong to no one.
            let burn = hex.eq_ignore_ascii_case("000000000000000000000000000000000000dead");
            (zero || burn).then_some("the zero or burn address, which no one owns")
        }
    }
}

/// A brand's pattern: a regular expression over the normalised value, for one kind of
/// identifier or all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockedPattern {
    /// `user_id`, `anonymous_id`, `email`, `phone`, `social`, `wallet` or `external`;
    /// absent: every kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<IdentityKind>,
    /// Rust `regex` syntax, matched against the normalised value (e-mails lower-cased,
    /// phones E.164, wallets `eip155:1:0x…`); anchor it (`^…$`) to match whole values.
    pub pattern: String,
}

/// A value taken out of a message's identity resolution.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Dropped {
    /// The message field it came from, e.g. `batch[2].anonymousId`.
    pub field: String,
    pub value: String,
    pub reason: String,
    pub kind: DropKind,
}

impl Dropped {
    /// The field without the message's place in its request (`batch[3].`, `line 7: `):
    /// what issues are counted under.
    pub fn general_field(&self) -> &str {
        let f = self.field.as_str();
        if f.starts_with("batch[") {
            if let Some(i) = f.find("].") {
                return &f[i + 2..];
            }
        }
        if f.starts_with("line ") {
            if let Some(i) = f.find(": ") {
                return &f[i + 2..];
            }
        }
        f
    }
}

/// Why an identifier was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DropKind {
    /// Not a valid identifier of its kind (`traits.email: "n/a"`).
    Invalid,
    /// A placeholder value (built-in or the brand's pattern).
    Blocked,
    /// Held back from a browser key's unconfirmed link to a known person.
    Unconfirmed,
    /// Past the per-person limit of its kind (`resolve::limit`).
    Limit,
}

impl DropKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DropKind::Invalid => "invalid",
            DropKind::Blocked => "blocked",
            DropKind::Unconfirmed => "unconfirmed",
            DropKind::Limit => "limit",
        }
    }
}

/// The built-in rules plus a brand's patterns, and the brand's default region for
/// national phone numbers.
#[derive(Debug, Clone, Default)]
pub struct Blocklist {
    patterns: Vec<(Option<IdentityKind>, regex::Regex, String)>,
    region: Option<phonenumber::country::Id>,
}

/// A region code (`GB`, `us`) as the phone library names it.
pub fn region(code: &str) -> Result<phonenumber::country::Id, FieldError> {
    code.trim().to_ascii_uppercase().parse().map_err(|_| {
        FieldError::new(
            "default_region",
            format!("'{code}' is not a region code (ISO 3166-1 alpha-2, e.g. GB)"),
        )
    })
}

/// Patterns are matched per identifier on every message: keep them cheap.
const MAX_PATTERNS: usize = 100;
const MAX_PATTERN_LEN: usize = 500;

impl Blocklist {
    /// Compiles a brand's patterns; an invalid one is an error naming it.
    pub fn new(patterns: &[BlockedPattern]) -> Result<Blocklist, FieldError> {
        if patterns.len() > MAX_PATTERNS {
            return Err(FieldError::new(
                "blocked",
                format!("at most {MAX_PATTERNS} patterns"),
            ));
        }
        let compiled = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let field = format!("blocked[{i}].pattern");
                if p.pattern.len() > MAX_PATTERN_LEN {
                    return Err(FieldError::new(
                        field,
                        format!("longer than {MAX_PATTERN_LEN} bytes"),
                    ));
                }
                regex::RegexBuilder::new(&p.pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map(|re| (p.kind, re, p.pattern.clone()))
                    .map_err(|e| FieldError::new(field, format!("not a regular expression: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Blocklist {
            patterns: compiled,
            region: None,
        })
    }

    /// Phone numbers without `+` are read as national to `region`.
    pub fn with_region(mut self, region: Option<phonenumber::country::Id>) -> Blocklist {
        self.region = region;
        self
    }

    /// Why `key` is blocked, if it is.
    pub fn reason(&self, key: &IdentityKey) -> Option<String> {
        if let Some(r) = builtin(key) {
            return Some(format!("{r}; dropped from identity resolution"));
        }
        self.patterns
            .iter()
            .find(|(kind, re, _)| kind.is_none_or(|k| k == key.kind) && re.is_match(&key.value))
            .map(|(_, _, src)| {
                format!("matches the blocked pattern '{src}'; dropped from identity resolution")
            })
    }

    /// Takes blocked identifiers out of `m` and says which (fields under `path`, e.g.
    /// `batch[2].`). A message left with no identifier at all gets one of its own,
    /// `unattributed:<messageId>`, so its event is kept on a profile no one else shares.
    pub fn screen(&self, m: &mut Message, path: &str) -> Vec<Dropped> {
        // Parsing named fields from the message's own root; give them the caller's.
        for d in &mut m.dropped {
            if !d.field.starts_with(path) {
                d.field = format!("{path}{}", d.field);
            }
        }
        // A national number the parser could not place is one in the brand's region.
        if let Some(region) = self.region {
            let mut recovered = Vec::new();
            m.dropped.retain(|d| {
                let last = d.general_field().rsplit('.').next().unwrap_or("");
                let phone =
                    d.kind == DropKind::Invalid && (last == "phone" || last.starts_with("phones["));
                let parsed = phone
                    .then(|| crate::identifier::normalize_phone_in(&d.value, Some(region)).ok())
                    .flatten();
                match parsed {
                    Some(value) => {
                        recovered.push(IdentityKey {
                            kind: IdentityKind::Phone,
                            value,
                        });
                        false
                    }
                    None => true,
                }
            });
            for k in recovered {
                if !m.identifiers.contains(&k) {
                    m.identifiers.push(k);
                }
            }
        }
        let mut out = Vec::new();
        let mut drop = |field: &str, key: &IdentityKey| -> bool {
            match self.reason(key) {
                Some(reason) => {
                    out.push(Dropped {
                        field: format!("{path}{field}"),
                        value: key.value.clone(),
                        reason,
                        kind: DropKind::Blocked,
                    });
                    true
                }
                None => false,
            }
        };
        if m.user_id.as_ref().is_some_and(|k| drop("userId", k)) {
            m.user_id = None;
        }
        if m.anonymous_id
            .as_ref()
            .is_some_and(|k| drop("anonymousId", k))
        {
            m.anonymous_id = None;
        }
        m.identifiers.retain(|k| !drop(source_field(k.kind), k));
        if m.kind == MessageType::Alias {
            if let Some(p) = &m.previous_id {
                let blocked = [IdentityKind::UserId, IdentityKind::AnonymousId]
                    .into_iter()
                    .filter_map(|kind| IdentityKey::parse(kind, p).ok())
                    .any(|k| drop("previousId", &k));
                if blocked {
                    m.previous_id = None;
                }
            }
        }
        if !out.is_empty() && m.keys().is_empty() {
            m.anonymous_id = Some(crate::message::unattributed(&m.message_id));
        }
        // What parsing dropped comes first, then the placeholders; the message keeps
        // the whole list (the store counts them), the caller reports it.
        m.dropped.extend(out);
        m.dropped.clone()
    }
}

/// Where a message's identifier of this kind comes from (for reports).
pub(crate) fn source_field(kind: IdentityKind) -> &'static str {
    match kind {
        IdentityKind::UserId => "userId",
        IdentityKind::AnonymousId => "anonymousId",
        IdentityKind::Email => "traits.email",
        IdentityKind::Phone => "traits.phone",
        IdentityKind::Wallet => "traits.wallet",
        IdentityKind::Social => "traits.socials",
        IdentityKind::External => "context.externalIds",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse_body;

    fn key(kind: IdentityKind, v: &str) -> IdentityKey {
        IdentityKey::parse(kind, v).unwrap()
    }

    #[test]
    fn builtin_placeholders() {
        use IdentityKind::*;
        for (k, v) in [
            (AnonymousId, "undefined"),
            (AnonymousId, "NULL"),
            (UserId, "0"),
            (UserId, "-1"),
            (UserId, "NaN"),
            (UserId, "unknown"),
            (External, "crm:null"),
            (Email, "test@test.com"),
            (Email, "NoReply@shop.example"),
            (Phone, "+14155555555"),
            (Wallet, "0x0000000000000000000000000000000000000000"),
            (
                Wallet,
                "eip155:8453:0x000000000000000000000000000000000000dEaD",
            ),
            (Social, "x:undefined"),
        ] {
            assert!(builtin(&key(k, v)).is_some(), "{k} {v} should be blocked");
        }
        for (k, v) in [
            (AnonymousId, "a1b2"),
            (UserId, "1717"),
            (UserId, "10"),
            (Email, "ann@example.com"),
            (Email, "test.user@shop.example"),
            (Phone, "+14155550102"),
            (Wallet, "0x52908400098527886E0F7030069857D2E4169EE7"),
            (Social, "x:ann"),
        ] {
            assert!(builtin(&key(k, v)).is_none(), "{k} {v} should pass");
        }
    }

    #[test]
    fn screening_keeps_the_event_and_names_the_field() {
        let body = br#"{"batch": [
            {"type": "track", "anonymousId": "undefined", "event": "Order Completed", "messageId": "m1"},
            {"type": "identify", "anonymousId": "null", "userId": "u1", "traits": {"email": "test@test.com", "name": "Ann"}},
            {"type": "alias", "userId": "u2", "previousId": "undefined"}
        ]}"#;
        let mut msgs = parse_body(body, None, 0, None).unwrap();
        let b = Blocklist::default();
        let d0 = b.screen(&mut msgs[0], "batch[0].");
        assert_eq!(d0[0].field, "batch[0].anonymousId");
        // Nothing left to resolve on: the event gets a profile of its own.
        assert_eq!(
            msgs[0].anonymous_id.as_ref().unwrap().value,
            "unattributed:m1"
        );
        let d1 = b.screen(&mut msgs[1], "batch[1].");
        let fields: Vec<_> = d1.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["batch[1].anonymousId", "batch[1].traits.email"]);
        assert_eq!(msgs[1].keys(), vec![key(IdentityKind::UserId, "u1")]);
        // The trait is still what they sent; only resolution ignores it.
        assert_eq!(msgs[1].traits.as_ref().unwrap()["email"], "test@test.com");
        let d2 = b.screen(&mut msgs[2], "batch[2].");
        assert_eq!(d2[0].field, "batch[2].previousId");
        assert_eq!(msgs[2].previous_id, None);
    }

    #[test]
    fn national_numbers_in_the_default_region() {
        let body = br#"{"type": "identify", "userId": "u", "traits": {"phone": "020 7946 0958", "phones": ["07911 123456"]}}"#;
        let mut m = parse_body(body, Some(MessageType::Identify), 0, None)
            .unwrap()
            .remove(0);
        assert_eq!(m.dropped.len(), 2, "national numbers need a region");
        let mut no_region = m.clone();
        assert_eq!(Blocklist::default().screen(&mut no_region, "").len(), 2);
        let b = Blocklist::default().with_region(Some(region("gb").unwrap()));
        assert!(b.screen(&mut m, "").is_empty());
        let phones: Vec<_> = m.identifiers.iter().map(|k| k.value.as_str()).collect();
        assert_eq!(phones, ["+442079460958", "+447911123456"]);
        assert_eq!(region("XX").unwrap_err().field, "default_region");
    }

    #[test]
    fn brand_patterns() {
        let b = Blocklist::new(&[
            BlockedPattern {
                kind: Some(IdentityKind::Email),
                pattern: "@mailinator\\.com$".into(),
            },
            BlockedPattern {
                kind: None,
                pattern: "^kiosk-".into(),
            },
        ])
        .unwrap();
        assert!(b
            .reason(&key(IdentityKind::Email, "x@mailinator.com"))
            .unwrap()
            .contains("mailinator"));
        assert!(b
            .reason(&key(IdentityKind::AnonymousId, "kiosk-3"))
            .is_some());
        assert!(b.reason(&key(IdentityKind::UserId, "kiosk-3")).is_some());
        assert!(b
            .reason(&key(IdentityKind::UserId, "x@mailinator.com"))
            .is_none());
        let e = Blocklist::new(&[BlockedPattern {
            kind: None,
            pattern: "(".into(),
        }])
        .unwrap_err();
        assert_eq!(e.field, "blocked[0].pattern");
    }
}
