//! Segment Tracking API messages (`identify`, `track`, `page`, `screen`, `group`, `alias`),
//! validated into a normalised [`Message`]. Every rejection names the field at fault
//! (`batch[3].traits.email`) so a client can fix its payload.
//!
//! Timestamps follow the Segment spec: the client's `timestamp` is `originalTimestamp`;
//! when the client also sent `sentAt`, the stored time is corrected for its clock skew:
//! `timestamp = receivedAt - (sentAt - originalTimestamp)`.

use crate::blocklist::{DropKind, Dropped};
use crate::identifier::{IdentityKey, IdentityKind, SOCIAL_NETWORKS};
use crate::time::{parse_timestamp, Millis};
use serde_json::{Map, Value};

/// Segment's per-message size limit.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// How far ahead of its arrival an event's time may be (a client clock a little fast);
/// beyond, the arrival time is used.
pub const MAX_AHEAD: Millis = 24 * 3_600_000;
/// Segment's per-request (batch) size limit.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Identify => "identify",
            MessageType::Track => "track",
            MessageType::Page => "page",
            MessageType::Screen => "screen",
            MessageType::Group => "group",
            MessageType::Alias => "alias",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "identify" => MessageType::Identify,
            "track" => MessageType::Track,
            "page" => MessageType::Page,
            "screen" => MessageType::Screen,
            "group" => MessageType::Group,
            "alias" => MessageType::Alias,
            _ => return None,
        })
    }
}

/// A validated message, ready for identity resolution. JSON blobs are serialised here,
/// on the request's thread, so the single writer does as little as possible.
#[derive(Debug, Clone)]
pub struct Message {
    pub message_id: String,
    pub kind: MessageType,
    /// `event` for track, `name` for page/screen, `groupId` for group.
    pub name: Option<String>,
    pub user_id: Option<IdentityKey>,
    pub anonymous_id: Option<IdentityKey>,
    /// alias: the earlier id (a user id or an anonymous id).
    pub previous_id: Option<String>,
    /// Identifiers found in traits, context.traits and context.externalIds.
    pub identifiers: Vec<IdentityKey>,
    /// Traits to merge into the profile (identify traits and context.traits).
    pub traits: Option<Map<String, Value>>,
    pub traits_json: Option<String>,
    /// The campaign that brought this visit, as the person's `first_touch` trait: stored
    /// only when the person has none or an older event's (see `web`).
    pub first_touch_json: Option<String>,
    pub properties_json: String,
    pub context_json: String,
    pub channel: String,
    pub text: Option<String>,
    pub occurred_at: Millis,
    pub received_at: Millis,
    /// Identifiers left out of resolution: invalid (`traits.email: "n/a"`) or blocked
    /// as placeholders. The message is stored all the same; these are reported.
    pub dropped: Vec<Dropped>,
    /// The trust of the key it came with: a browser key's messages may not write into a
    /// person they reach only through a trait identifier (`resolve`).
    pub trust: crate::apikey::Trust,
}

impl Message {
    /// Every identifier of the message, strongest first, without duplicates.
    pub fn keys(&self) -> Vec<IdentityKey> {
        let mut keys: Vec<IdentityKey> = Vec::with_capacity(2 + self.identifiers.len());
        keys.extend(self.user_id.iter().cloned());
        keys.extend(self.anonymous_id.iter().cloned());
        for k in &self.identifiers {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        keys
    }
}

/// Request-level values that apply to every message of a batch.
#[derive(Debug, Clone, Default)]
pub struct BatchContext<'a> {
    pub sent_at: Option<Millis>,
    pub context: Option<&'a Map<String, Value>>,
    pub received_at: Millis,
    /// Bulk imports (CSV rows) may identify a person by e-mail, phone… alone; the
    /// Segment endpoints require `userId` or `anonymousId` as the spec does.
    pub identifiers_suffice: bool,
    /// The HTTP request's client, for `context.ip` (`None`: messages made inside
    /// Rapport, whose context is kept as given).
    pub client: Option<crate::web::Client>,
}

fn obj<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, FieldError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(FieldError::new(
            format!("{path}{key}"),
            "must be a JSON object",
        )),
    }
}

/// Strings or numbers (Segment allows numeric ids); anything else is an error.
/// The anonymous id of a message whose every identifier was dropped: its own, so its
/// event is kept on a profile no one else shares.
pub fn unattributed(message_id: &str) -> IdentityKey {
    let id: String = message_id.chars().take(200).collect();
    IdentityKey {
        kind: IdentityKind::AnonymousId,
        value: format!("unattributed:{id}"),
    }
}

/// A numeric id as text: a whole number is written without a fraction, so `1717.0`
/// (a float in some SDKs' JSON) and `1717` are one id.
fn number_id(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
            format!("{}", f as i64)
        }
        _ => n.to_string(),
    }
}

fn id_string(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, FieldError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(number_id(n))),
        Some(_) => Err(FieldError::new(
            format!("{path}{key}"),
            "must be a string or a number",
        )),
    }
}

fn opt_string(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, FieldError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(FieldError::new(format!("{path}{key}"), "must be a string")),
    }
}

fn timestamp(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<Millis>, FieldError> {
    match opt_string(m, key, path)? {
        None => Ok(None),
        Some(s) => parse_timestamp(&s).map(Some).ok_or_else(|| {
            FieldError::new(
                format!("{path}{key}"),
                format!("'{s}' is not an ISO-8601 timestamp"),
            )
        }),
    }
}

/// Identifiers that could not be used, collected instead of refusing the message: one
/// bad e-mail must not lose a revenue event (SDKs do not retry a 400).
#[derive(Default)]
struct Drops(Vec<Dropped>);

impl Drops {
    fn add(&mut self, field: impl Into<String>, value: &Value, reason: impl Into<String>) {
        let value = match value {
            Value::String(s) => s.chars().take(200).collect(),
            other => other.to_string().chars().take(200).collect(),
        };
        self.0.push(Dropped {
            field: field.into(),
            value,
            reason: reason.into(),
            kind: DropKind::Invalid,
        });
    }

    /// The identifier `raw` of `kind`, or `None` with the reason noted.
    /// `field` is made only when the identifier is dropped (most are not).
    fn key(
        &mut self,
        kind: IdentityKind,
        raw: &str,
        field: impl FnOnce() -> String,
    ) -> Option<IdentityKey> {
        match IdentityKey::parse(kind, raw) {
            Ok(k) => Some(k),
            Err(e) => {
                self.add(field(), &Value::String(raw.to_string()), e.reason);
                None
            }
        }
    }

    /// `userId`, `anonymousId`: a string or number that is a valid id, else noted.
    fn id(
        &mut self,
        m: &Map<String, Value>,
        name: &str,
        kind: IdentityKind,
        path: &str,
    ) -> Option<IdentityKey> {
        let field = || format!("{path}{name}");
        match id_string(m, name, path) {
            Ok(Some(s)) => self.key(kind, &s, field),
            Ok(None) => None,
            Err(e) => {
                self.add(field(), m.get(name).unwrap_or(&Value::Null), e.reason);
                None
            }
        }
    }
}

/// Collects identifiers from a traits object (identify traits or context.traits); a
/// value that is not a valid identifier is noted in `drops` (the trait itself is kept).
fn identifiers_from_traits(
    traits: &Map<String, Value>,
    path: &str,
    out: &mut Vec<IdentityKey>,
    drops: &mut Drops,
) {
    let mut push = |k: Option<IdentityKey>| {
        if let Some(k) = k {
            if !out.contains(&k) {
                out.push(k);
            }
        }
    };
    // Single-valued and list-valued forms of each identifier trait.
    let forms: [(&[&str], IdentityKind); 3] = [
        (&["email", "emails"], IdentityKind::Email),
        (&["phone", "phones"], IdentityKind::Phone),
        (
            &["wallet", "wallets", "walletAddress", "wallet_address"],
            IdentityKind::Wallet,
        ),
    ];
    for (names, kind) in forms {
        for name in names {
            match traits.get(*name) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.trim().is_empty() => {}
                Some(Value::String(s)) => push(drops.key(kind, s, || format!("{path}{name}"))),
                Some(Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        let field = format!("{path}{name}[{i}]");
                        match item {
                            Value::String(s) => push(drops.key(kind, s, || field)),
                            // wallets: [{"chain": "eip155:137", "address": "0x…"}]
                            Value::Object(o) if kind == IdentityKind::Wallet => {
                                let Some(addr) = o.get("address").and_then(Value::as_str) else {
                                    drops.add(format!("{field}.address"), item, "missing");
                                    continue;
                                };
                                let raw = match o.get("chain").and_then(Value::as_str) {
                                    Some(chain) => format!("{chain}:{addr}"),
                                    None => addr.to_string(),
                                };
                                push(drops.key(kind, &raw, || field))
                            }
                            other => drops.add(field, other, "must be a string"),
                        }
                    }
                }
                Some(other) => drops.add(
                    format!("{path}{name}"),
                    other,
                    "must be a string or a list of strings",
                ),
            }
        }
    }
    for network in SOCIAL_NETWORKS {
        if let Some(Value::String(s)) = traits.get(*network) {
            // A non-string under a network name (e.g. a profile object) is not a handle.
            if !s.trim().is_empty() {
                push(
                    drops.key(IdentityKind::Social, &format!("{network}:{s}"), || {
                        format!("{path}{network}")
                    }),
                );
            }
        }
    }
    for name in ["socials", "social"] {
        match traits.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::Object(o)) => {
                for (network, handle) in o {
                    let field = format!("{path}{name}.{network}");
                    match handle.as_str() {
                        Some(h) => push(drops.key(
                            IdentityKind::Social,
                            &format!("{network}:{h}"),
                            || field,
                        )),
                        None => drops.add(field, handle, "must be a string"),
                    }
                }
            }
            Some(other) => drops.add(format!("{path}{name}"), other, "must be a JSON object"),
        }
    }
}

/// Text fields that carry what a customer wrote, analysed later by the text capability.
const TEXT_FIELDS: [&str; 7] = [
    "text", "body", "comment", "review", "message", "content", "post",
];

fn channel_of(
    m: &Map<String, Value>,
    ctx: Option<&Map<String, Value>>,
    kind: MessageType,
) -> String {
    if let Some(c) = m.get("channel").and_then(Value::as_str) {
        return c.to_ascii_lowercase();
    }
    if let Some(c) = ctx.and_then(|c| c.get("channel")).and_then(Value::as_str) {
        return c.to_ascii_lowercase();
    }
    let library = ctx
        .and_then(|c| c.get("library"))
        .and_then(|l| l.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let lib = library.to_ascii_lowercase();
    if lib.contains("ios")
        || lib.contains("android")
        || lib.contains("react-native")
        || lib.contains("flutter")
    {
        return "mobile".into();
    }
    if lib.contains("analytics.js") || lib.contains("browser") || lib.contains("javascript") {
        return "web".into();
    }
    match kind {
        MessageType::Page => "web".into(),
        MessageType::Screen => "mobile".into(),
        _ => "server".into(),
    }
}

/// Validates one message. `path` prefixes field names in errors (`batch[2].`).
/// `default_type` is the endpoint's type (`/v1/track`); inside a batch `type` is required.
pub fn parse_message(
    v: &Value,
    path: &str,
    default_type: Option<MessageType>,
    batch: &BatchContext<'_>,
    gen_id: impl FnOnce() -> String,
) -> Result<Message, FieldError> {
    let m = v.as_object().ok_or_else(|| {
        FieldError::new(
            path.trim_end_matches('.').to_string(),
            "must be a JSON object",
        )
    })?;
    let kind = match m.get("type") {
        Some(Value::String(t)) => MessageType::parse(t).ok_or_else(|| {
            FieldError::new(
                format!("{path}type"),
                format!(
                    "unknown type '{t}' (expected identify, track, page, screen, group or alias)"
                ),
            )
        })?,
        None | Some(Value::Null) => default_type
            .ok_or_else(|| FieldError::new(format!("{path}type"), "required inside a batch"))?,
        Some(_) => return Err(FieldError::new(format!("{path}type"), "must be a string")),
    };
    if let Some(t) = default_type {
        if t != kind {
            return Err(FieldError::new(
                format!("{path}type"),
                format!(
                    "'{}' sent to the /v1/{} endpoint",
                    kind.as_str(),
                    t.as_str()
                ),
            ));
        }
    }

    let mut drops = Drops::default();
    let user_id = drops.id(m, "userId", IdentityKind::UserId, path);
    let mut anonymous_id = drops.id(m, "anonymousId", IdentityKind::AnonymousId, path);
    let previous_id = id_string(m, "previousId", path)?;

    let name = match kind {
        MessageType::Track => Some(
            opt_string(m, "event", path)?
                .filter(|e| !e.is_empty())
                .ok_or_else(|| FieldError::new(format!("{path}event"), "required for track"))?,
        ),
        MessageType::Page | MessageType::Screen => opt_string(m, "name", path)?,
        MessageType::Group => Some(
            id_string(m, "groupId", path)?
                .ok_or_else(|| FieldError::new(format!("{path}groupId"), "required for group"))?,
        ),
        MessageType::Alias => {
            if previous_id.is_none() {
                return Err(FieldError::new(
                    format!("{path}previousId"),
                    "required for alias",
                ));
            }
            if user_id.is_none() {
                return Err(FieldError::new(
                    format!("{path}userId"),
                    "required for alias",
                ));
            }
            None
        }
        MessageType::Identify => None,
    };

    let message_id = match id_string(m, "messageId", path)? {
        Some(id) if id.len() > 256 => {
            return Err(FieldError::new(
                format!("{path}messageId"),
                "longer than 256 bytes",
            ))
        }
        Some(id) => id,
        None => gen_id(),
    };

    // Batch-level context fills keys the message itself does not set.
    let own_ctx = obj(m, "context", path)?;
    let mut merged_ctx: Option<Map<String, Value>> = match (own_ctx, batch.context) {
        (Some(c), Some(b)) => {
            let mut c = c.clone();
            for (k, v) in b {
                c.entry(k.clone()).or_insert_with(|| v.clone());
            }
            Some(c)
        }
        (None, Some(b)) => Some(b.clone()),
        (c, None) => c.cloned(),
    };
    if let Some(client) = &batch.client {
        crate::web::stamp_ip(merged_ctx.get_or_insert_with(Map::new), client);
    }
    let ctx_path = format!("{path}context.");
    let ctx_traits = match &merged_ctx {
        Some(c) => obj(c, "traits", &ctx_path)?,
        None => None,
    };
    let traits = if kind == MessageType::Identify {
        obj(m, "traits", path)?
    } else {
        None
    };
    let properties = match kind {
        MessageType::Track | MessageType::Page | MessageType::Screen => obj(m, "properties", path)?,
        _ => None,
    };

    let mut identifiers = Vec::new();
    if let Some(t) = traits {
        identifiers_from_traits(t, &format!("{path}traits."), &mut identifiers, &mut drops);
    }
    if let Some(t) = ctx_traits {
        identifiers_from_traits(
            t,
            &format!("{ctx_path}traits."),
            &mut identifiers,
            &mut drops,
        );
    }
    if let Some(c) = &merged_ctx {
        match c.get("externalIds") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let field = format!("{ctx_path}externalIds[{i}]");
                    let id = item.get("id").and_then(|v| match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(number_id(n)),
                        _ => None,
                    });
                    let Some(id) = id else {
                        drops.add(format!("{field}.id"), item, "required: a string");
                        continue;
                    };
                    let Some(ty) = item.get("type").and_then(Value::as_str) else {
                        drops.add(format!("{field}.type"), item, "required: a string");
                        continue;
                    };
                    if let Some(k) =
                        drops.key(IdentityKind::External, &format!("{ty}:{id}"), || field)
                    {
                        if !identifiers.contains(&k) {
                            identifiers.push(k);
                        }
                    }
                }
            }
            Some(other) => drops.add(format!("{ctx_path}externalIds"), other, "must be a list"),
        }
    }

    let identified_otherwise = batch.identifiers_suffice && !identifiers.is_empty();
    let id_dropped = drops
        .0
        .iter()
        .any(|d| d.field == format!("{path}userId") || d.field == format!("{path}anonymousId"));
    if user_id.is_none() && anonymous_id.is_none() && !identified_otherwise {
        // A profile row (a CSV import) whose only identifier is bad has nothing to keep:
        // refused, naming that field.
        if batch.identifiers_suffice {
            if let Some(d) = drops.0.first() {
                return Err(FieldError::new(d.field.clone(), d.reason.clone()));
            }
        }
        if !id_dropped {
            return Err(FieldError::new(
                format!("{path}userId"),
                "userId or anonymousId is required",
            ));
        }
        // It named someone, unusably: the event is kept on a profile of its own.
        anonymous_id = Some(unattributed(&message_id));
    }

    // Profile traits: identify traits, then context.traits (which Segment documents as
    // "traits of the current user" on any call).
    let mut profile_traits = match (traits, ctx_traits) {
        (None, None) => None,
        (a, b) => {
            let mut t = Map::new();
            for src in [b, a].into_iter().flatten() {
                for (k, v) in src {
                    t.insert(k.clone(), v.clone());
                }
            }
            if t.is_empty() {
                None
            } else {
                Some(t)
            }
        }
    };

    let original = timestamp(m, "timestamp", path)?;
    let sent_at = timestamp(m, "sentAt", path)?.or(batch.sent_at);
    let corrected = match (original, sent_at) {
        (Some(ts), Some(sent)) => sent
            .checked_sub(ts)
            .and_then(|d| batch.received_at.checked_sub(d)),
        (Some(ts), None) => Some(ts),
        (None, _) => Some(batch.received_at),
    };
    // A time past tomorrow or before 1970 is a broken clock, not an event: the event is
    // kept at its arrival time, and says so (a future time would also outrank every
    // later trait).
    let mut clock_note = None;
    let occurred_at = match corrected {
        Some(t) if (0..=batch.received_at.saturating_add(MAX_AHEAD)).contains(&t) => t,
        _ => {
            clock_note =
                Some(format!(
                "the client's time ({}{}) is before 1970 or more than a day ahead; receivedAt used",
                m.get("timestamp").and_then(Value::as_str).unwrap_or("?"),
                sent_at.map(|_| ", corrected with its sentAt").unwrap_or_default()
            ));
            batch.received_at
        }
    };

    let campaign = merged_ctx.as_ref().and_then(crate::web::campaign);
    let first_touch_json = campaign.as_ref().map(|c| {
        profile_traits.get_or_insert_with(Map::new).insert(
            "last_touch".into(),
            crate::web::last_touch_patch(c, occurred_at),
        );
        crate::web::first_touch(c, occurred_at).to_string()
    });

    let text = properties.and_then(|p| {
        TEXT_FIELDS
            .iter()
            .find_map(|f| p.get(*f).and_then(Value::as_str))
            .map(str::to_string)
    });

    let properties_value: Value = match kind {
        MessageType::Identify => Value::Object(traits.cloned().unwrap_or_default()),
        MessageType::Group => {
            let mut o = Map::new();
            if let Some(t) = obj(m, "traits", path)? {
                o.insert("traits".into(), Value::Object(t.clone()));
            }
            Value::Object(o)
        }
        MessageType::Alias => {
            serde_json::json!({ "previousId": previous_id })
        }
        _ => Value::Object(properties.cloned().unwrap_or_default()),
    };
    // Numbers segments sum must stay exact and sums finite (see `number_field`).
    let prefix = match kind {
        MessageType::Identify => "traits.",
        MessageType::Group => "",
        _ => "properties.",
    };
    let bad_number = number_field(&properties_value, &format!("{path}{prefix}")).or_else(|| {
        ctx_traits.and_then(|t| {
            t.iter()
                .find_map(|(k, x)| number_field(x, &format!("{ctx_path}traits.{k}.")))
        })
    });
    if let Some(field) = bad_number {
        return Err(FieldError::new(
            field,
            "a number must be an integer of at most 64 bits or a decimal up to 10^18 in size; send larger values as strings",
        ));
    }
    let channel = channel_of(m, merged_ctx.as_ref(), kind);
    if let Some(note) = clock_note {
        merged_ctx
            .get_or_insert_with(Map::new)
            .insert("timestamp_fallback".into(), Value::String(note));
    }
    let context_json = match &merged_ctx {
        Some(c) => Value::Object(c.clone()).to_string(),
        None => "{}".to_string(),
    };
    let traits_json = profile_traits
        .as_ref()
        .map(|t| Value::Object(t.clone()).to_string());
    let properties_json = properties_value.to_string();
    // U+0000 cannot be stored by PostgreSQL (text or jsonb) and no customer needs it:
    // refused on both stores alike. The serialised JSON holds it as `\u0000`, so the
    // common case costs a scan of what is about to be stored anyway.
    let stored = [&properties_json, &context_json]
        .into_iter()
        .chain(traits_json.as_ref());
    let names = [&name, &previous_id, &text].into_iter().flatten();
    let keys = user_id.iter().chain(&anonymous_id).chain(&identifiers);
    // (`\\u0000` typed as text also matches: the walk then finds no NUL.)
    let suspect = stored.into_iter().any(|j| j.contains("\\u0000"));
    let certain = names.into_iter().any(|s| s.contains('\0'))
        || keys.into_iter().any(|k| k.value.contains('\0'))
        || message_id.contains('\0');
    if suspect || certain {
        let field =
            nul_field(v, path).or_else(|| certain.then(|| path.trim_end_matches('.').to_string()));
        if let Some(field) = field {
            return Err(FieldError::new(
                field,
                "contains U+0000 (a NUL character), which cannot be stored",
            ));
        }
    }
    let dropped = drops.0;
    Ok(Message {
        dropped,
        trust: Default::default(),
        message_id,
        kind,
        name,
        user_id,
        anonymous_id,
        previous_id,
        identifiers,
        traits: profile_traits,
        traits_json,
        first_touch_json,
        properties_json,
        context_json,
        channel,
        text,
        occurred_at,
        received_at: batch.received_at,
    })
}

/// Largest decimal (non-integer, or an integer past 64 bits, which JSON parsing turns
/// into a float) a message may hold: sums of many stay far from overflowing, and what
/// needs more (token amounts in wei) is sent as a string.
pub const MAX_DECIMAL: f64 = 1e18;

/// The path of the first number in `v` that is not exact or too large (see
/// [`MAX_DECIMAL`]), `path`-prefixed.
pub fn number_field(v: &Value, path: &str) -> Option<String> {
    match v {
        Value::Number(n) => {
            let ok = n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.abs() <= MAX_DECIMAL);
            (!ok).then(|| path.trim_end_matches('.').to_string())
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| number_field(x, &format!("{}[{i}].", path.trim_end_matches('.')))),
        Value::Object(o) => o
            .iter()
            .find_map(|(k, x)| number_field(x, &format!("{path}{k}."))),
        _ => None,
    }
}

/// The path of the first string (or key) holding U+0000 in `v`, `path`-prefixed.
pub fn nul_field(v: &Value, path: &str) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => Some(path.trim_end_matches('.').to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_field(x, &format!("{}[{i}].", path.trim_end_matches('.')))),
        Value::Object(o) => o.iter().find_map(|(k, x)| {
            let here = format!("{path}{k}");
            if k.contains('\0') {
                Some(here)
            } else {
                nul_field(x, &format!("{here}."))
            }
        }),
        _ => None,
    }
}

/// Why a request body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Past Segment's size limits (413).
    TooLarge(FieldError),
    /// Malformed or invalid (400).
    Invalid(FieldError),
}

impl BodyError {
    pub fn field_error(&self) -> &FieldError {
        match self {
            BodyError::TooLarge(e) | BodyError::Invalid(e) => e,
        }
    }
}

fn new_message_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn json_error(field: &str, e: serde_json::Error) -> BodyError {
    BodyError::Invalid(FieldError::new(field, format!("malformed JSON: {e}")))
}

/// Parses a Segment request body: one message for `/v1/<type>`, or `{"batch": [...]}`
/// for `/v1/batch` and `/v1/import` (`endpoint` = `None`). The whole request is
/// accepted or refused: any invalid message refuses it, naming the field.
pub fn parse_body(
    body: &[u8],
    endpoint: Option<MessageType>,
    received_at: Millis,
    client: Option<crate::web::Client>,
) -> Result<Vec<Message>, BodyError> {
    use serde_json::value::RawValue;
    if body.len() > MAX_BATCH_BYTES {
        return Err(BodyError::TooLarge(FieldError::new(
            "body",
            format!(
                "request is {} bytes; the limit is {} bytes (500 KB)",
                body.len(),
                MAX_BATCH_BYTES
            ),
        )));
    }
    match endpoint {
        Some(kind) => {
            if body.len() > MAX_MESSAGE_BYTES {
                return Err(BodyError::TooLarge(FieldError::new(
                    "body",
                    format!(
                        "message is {} bytes; the limit is {} bytes (32 KB)",
                        body.len(),
                        MAX_MESSAGE_BYTES
                    ),
                )));
            }
            let v: Value = serde_json::from_slice(body).map_err(|e| json_error("body", e))?;
            let batch = BatchContext {
                received_at,
                client,
                ..Default::default()
            };
            Ok(vec![parse_message(
                &v,
                "",
                Some(kind),
                &batch,
                new_message_id,
            )
            .map_err(BodyError::Invalid)?])
        }
        None => {
            #[derive(serde::Deserialize)]
            struct Batch<'a> {
                #[serde(borrow)]
                batch: Option<Vec<&'a RawValue>>,
                #[serde(rename = "sentAt")]
                sent_at: Option<Value>,
                context: Option<Value>,
            }
            let b: Batch<'_> = serde_json::from_slice(body).map_err(|e| json_error("body", e))?;
            let items = b.batch.ok_or_else(|| {
                BodyError::Invalid(FieldError::new("batch", "required: a list of messages"))
            })?;
            let sent_at = match &b.sent_at {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(parse_timestamp(s).ok_or_else(|| {
                    BodyError::Invalid(FieldError::new(
                        "sentAt",
                        format!("'{s}' is not an ISO-8601 timestamp"),
                    ))
                })?),
                Some(_) => {
                    return Err(BodyError::Invalid(FieldError::new(
                        "sentAt",
                        "must be a string",
                    )))
                }
            };
            let context = match &b.context {
                None | Some(Value::Null) => None,
                Some(Value::Object(o)) => Some(o),
                Some(_) => {
                    return Err(BodyError::Invalid(FieldError::new(
                        "context",
                        "must be a JSON object",
                    )))
                }
            };
            let batch = BatchContext {
                sent_at,
                context,
                received_at,
                identifiers_suffice: false,
                client,
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, raw) in items.iter().enumerate() {
                let path = format!("batch[{i}]");
                if raw.get().len() > MAX_MESSAGE_BYTES {
                    return Err(BodyError::TooLarge(FieldError::new(
                        path,
                        format!(
                            "message is {} bytes; the limit is {} bytes (32 KB)",
                            raw.get().len(),
                            MAX_MESSAGE_BYTES
                        ),
                    )));
                }
                let v: Value = serde_json::from_str(raw.get()).map_err(|e| json_error(&path, e))?;
                out.push(
                    parse_message(&v, &format!("{path}."), None, &batch, new_message_id)
                        .map_err(BodyError::Invalid)?,
                );
            }
            Ok(out)
        }
    }
}

/// Parses one JSON Lines record (a Segment message with its `type`), for bulk imports.
pub fn parse_line(line: &str, line_no: usize, received_at: Millis) -> Result<Message, FieldError> {
    if line.len() > MAX_MESSAGE_BYTES {
        return Err(FieldError::new(
            format!("line {line_no}"),
            format!(
                "message is {} bytes; the limit is {} bytes (32 KB)",
                line.len(),
                MAX_MESSAGE_BYTES
            ),
        ));
    }
    let v: Value = serde_json::from_str(line)
        .map_err(|e| FieldError::new(format!("line {line_no}"), format!("malformed JSON: {e}")))?;
    let batch = BatchContext {
        received_at,
        ..Default::default()
    };
    parse_message(
        &v,
        &format!("line {line_no}: "),
        None,
        &batch,
        new_message_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(received_at: Millis) -> BatchContext<'static> {
        BatchContext {
            received_at,
            ..Default::default()
        }
    }

    #[test]
    fn identify_collects_identifiers() {
        let v = json!({
            "type": "identify", "userId": 42, "messageId": "m1",
            "traits": {"email": "Ann@Example.com", "phone": "+44 20 7946 0958",
                       "twitter": "@Ann", "wallets": ["0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"],
                       "name": "Ann"},
            "context": {"traits": {"emails": ["ann.work@corp.io"]}, "externalIds": [{"id": "7", "type": "zendesk"}]}
        });
        let m = parse_message(&v, "", None, &ctx(0), || "x".into()).unwrap();
        assert_eq!(m.user_id.unwrap().value, "42");
        let keys: Vec<String> = m.identifiers.iter().map(|k| k.to_string()).collect();
        assert_eq!(
            keys,
            [
                "email:ann@example.com",
                "phone:+442079460958",
                "wallet:eip155:1:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                "social:x:ann",
                "email:ann.work@corp.io",
                "external:zendesk:7"
            ]
        );
        assert_eq!(m.traits.unwrap()["name"], "Ann");
    }

    #[test]
    fn errors_name_the_field() {
        // A bad identifier does not refuse the message: it is dropped, naming the field.
        let v = json!({"type": "identify", "userId": "u", "traits": {"email": "nope", "phones": [5], "socials": "x"}, "context": {"externalIds": [{"id": "7"}]}});
        let m = parse_message(&v, "batch[3].", None, &ctx(0), || "x".into()).unwrap();
        let fields: Vec<_> = m.dropped.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "batch[3].traits.email",
                "batch[3].traits.phones[0]",
                "batch[3].traits.socials",
                "batch[3].context.externalIds[0].type"
            ]
        );
        assert_eq!(
            m.traits.unwrap()["email"],
            "nope",
            "the trait is kept as sent"
        );
        // An unusable userId keeps the event on a profile of its own.
        let v = json!({"type": "track", "event": "Order Completed", "userId": "a\u{7}b", "messageId": "m9"});
        let m = parse_message(&v, "", None, &ctx(0), || "x".into()).unwrap();
        assert_eq!(m.dropped[0].field, "userId");
        assert_eq!(m.keys(), vec![unattributed("m9")]);
        let v = json!({"type": "track", "userId": "u"});
        let e = parse_message(&v, "", None, &ctx(0), || "x".into()).unwrap_err();
        assert_eq!(e.field, "event");
        let v = json!({"type": "track", "event": "E"});
        let e = parse_message(&v, "", None, &ctx(0), || "x".into()).unwrap_err();
        assert_eq!(e.field, "userId");
        let v = json!({"type": "track", "event": "E", "userId": "u", "properties": [1]});
        let e = parse_message(&v, "", None, &ctx(0), || "x".into()).unwrap_err();
        assert_eq!(e.field, "properties");
        let v = json!({"event": "E", "userId": "u"});
        let e = parse_message(&v, "batch[0].", None, &ctx(0), || "x".into()).unwrap_err();
        assert_eq!(e.field, "batch[0].type");
        let v = json!({"type": "track", "event": "E", "userId": "u", "timestamp": "soon"});
        let e = parse_message(&v, "", None, &ctx(0), || "x".into()).unwrap_err();
        assert_eq!(e.field, "timestamp");
    }

    #[test]
    fn clock_skew_is_corrected_with_sent_at() {
        // Client clock is 1 hour ahead: it says the event happened at 10:00 and was sent
        // at 10:05; we received it at 9:05 our time, so it happened at 9:00.
        let v = json!({"type": "track", "event": "E", "userId": "u",
            "timestamp": "2024-01-01T10:00:00Z", "sentAt": "2024-01-01T10:05:00Z"});
        let received = parse_timestamp("2024-01-01T09:05:00Z").unwrap();
        let m = parse_message(&v, "", None, &ctx(received), || "x".into()).unwrap();
        assert_eq!(
            m.occurred_at,
            parse_timestamp("2024-01-01T09:00:00Z").unwrap()
        );
        // Without sentAt the client's timestamp is trusted (historical imports).
        let v = json!({"type": "track", "event": "E", "userId": "u", "timestamp": "2020-01-01T00:00:00Z"});
        let m = parse_message(&v, "", None, &ctx(received), || "x".into()).unwrap();
        assert_eq!(
            m.occurred_at,
            parse_timestamp("2020-01-01T00:00:00Z").unwrap()
        );
        // Without a timestamp the event happened when received.
        let v = json!({"type": "track", "event": "E", "userId": "u"});
        let m = parse_message(&v, "", None, &ctx(received), || "x".into()).unwrap();
        assert_eq!(m.occurred_at, received);
    }

    #[test]
    fn browser_requests_stamp_the_address_and_the_campaign() {
        let client = crate::web::Client {
            ip: "203.0.113.77".parse().ok(),
            policy: crate::web::IpPolicy::Truncate,
        };
        let body = br#"{"type": "page", "anonymousId": "a", "timestamp": "2024-01-01T00:00:00Z",
            "context": {"page": {"url": "https://shop.example/?utm_source=news&utm_medium=email"}}}"#;
        let received = parse_timestamp("2024-01-01T00:00:05Z").unwrap();
        let m = parse_body(body, Some(MessageType::Page), received, Some(client)).unwrap();
        let ctx: Value = serde_json::from_str(&m[0].context_json).unwrap();
        assert_eq!(ctx["ip"], "203.0.113.0");
        let at = parse_timestamp("2024-01-01T00:00:00Z").unwrap();
        let traits = m[0].traits.as_ref().unwrap();
        assert_eq!(traits["last_touch"]["source"], "news");
        assert_eq!(traits["last_touch"]["name"], Value::Null);
        assert_eq!(traits["last_touch"]["at"], at);
        let first: Value = serde_json::from_str(m[0].first_touch_json.as_deref().unwrap()).unwrap();
        assert_eq!(
            first,
            json!({"source": "news", "medium": "email", "at": at})
        );
        // Without a campaign or a client, nothing is added.
        let m = parse_body(
            br#"{"type": "page", "anonymousId": "a"}"#,
            Some(MessageType::Page),
            0,
            None,
        )
        .unwrap();
        assert_eq!(m[0].context_json, "{}");
        assert!(m[0].traits.is_none() && m[0].first_touch_json.is_none());
    }

    #[test]
    fn nul_characters_are_refused_naming_the_field() {
        let cases = [
            (
                json!({"type": "track", "userId": "u", "event": "e", "properties": {"r": "a\u{0}b"}}),
                "properties.r",
            ),
            (
                json!({"type": "track", "userId": "u", "event": "e\u{0}"}),
                "event",
            ),
            (
                json!({"type": "track", "userId": "u", "event": "e", "context": {"page": {"tags": ["x", "\u{0}"]}}}),
                "context.page.tags[1]",
            ),
            (
                json!({"type": "identify", "userId": "u", "traits": {"n\u{0}": 1}}),
                "traits.n\u{0}",
            ),
            (
                json!({"type": "track", "userId": "u", "event": "e", "properties": {"text": "hi\u{0}"}}),
                "properties.text",
            ),
        ];
        for (v, field) in cases {
            let e = parse_message(&v, "batch[0].", None, &ctx(0), || "x".into()).unwrap_err();
            assert_eq!(e.field, format!("batch[0].{field}"), "{v}");
        }
        // A backslash followed by u0000 is text, not a NUL.
        let v =
            json!({"type": "track", "userId": "u", "event": "e", "properties": {"r": "\\u0000"}});
        assert!(parse_message(&v, "", None, &ctx(0), || "x".into()).is_ok());
    }

    #[test]
    fn broken_clocks_fall_back_to_the_arrival_time_and_say_so() {
        let received = parse_timestamp("2026-12-06T12:00:00Z").unwrap();
        let at = |v: Value| {
            let m = parse_message(&v, "", None, &ctx(received), || "x".into()).unwrap();
            let ctx: Value = serde_json::from_str(&m.context_json).unwrap();
            (m.occurred_at, ctx.get("timestamp_fallback").is_some())
        };
        // The year 9999 corrected by a sentAt in the year 1: not year +12025.
        let v = json!({"type": "track", "userId": "u", "event": "e",
            "timestamp": "9999-12-31T00:00:00Z", "sentAt": "0001-01-01T00:00:00Z"});
        assert_eq!(at(v), (received, true));
        // 2099 without sentAt.
        let v = json!({"type": "track", "userId": "u", "event": "e", "timestamp": "2099-01-01T00:00:00Z"});
        assert_eq!(at(v), (received, true));
        // Before 1970.
        let v = json!({"type": "track", "userId": "u", "event": "e", "timestamp": "1969-07-20T20:17:00Z"});
        assert_eq!(at(v), (received, true));
        // An hour fast, or a historical import: kept.
        let v = json!({"type": "track", "userId": "u", "event": "e", "timestamp": "2026-12-06T13:00:00Z"});
        assert_eq!(at(v), (received + 3_600_000, false));
        let v = json!({"type": "track", "userId": "u", "event": "e", "timestamp": "2001-01-01T00:00:00Z"});
        assert!(!at(v).1);
        // Exactly a day ahead is allowed; a millisecond more is not.
        let ahead = |ms: i64| {
            json!({"type": "track", "userId": "u", "event": "e",
            "timestamp": crate::time::to_datetime(received + ms).to_rfc3339()})
        };
        assert_eq!(at(ahead(MAX_AHEAD)), (received + MAX_AHEAD, false));
        assert_eq!(at(ahead(MAX_AHEAD + 1)), (received, true));
    }

    #[test]
    fn numbers_stay_exact_and_sums_finite() {
        let refused = |v: Value| {
            parse_message(&v, "", None, &ctx(0), || "x".into())
                .err()
                .map(|e| e.field)
        };
        let big: Value = serde_json::from_str("123456789012345678901234567890123456789").unwrap();
        let v = json!({"type": "track", "userId": "u", "event": "e", "properties": {"n": big}});
        assert_eq!(refused(v).as_deref(), Some("properties.n"));
        let v = json!({"type": "track", "userId": "u", "event": "e", "properties": {"a": [1, {"x": 1.7e308}]}});
        assert_eq!(refused(v).as_deref(), Some("properties.a[1].x"));
        let v = json!({"type": "identify", "userId": "u", "traits": {"ltv": -2e19}});
        assert_eq!(refused(v).as_deref(), Some("traits.ltv"));
        let v = json!({"type": "page", "userId": "u", "context": {"traits": {"score": 1e300}}});
        assert_eq!(refused(v).as_deref(), Some("context.traits.score"));
        // 64-bit integers, and decimals up to 10^18, are fine.
        let v = json!({"type": "track", "userId": "u", "event": "e",
            "properties": {"a": u64::MAX, "b": i64::MIN, "c": 1e18, "d": -0.5, "wei": "123456789012345678901234567890"}});
        assert_eq!(refused(v), None);
    }

    #[test]
    fn channel_and_text() {
        let v = json!({"type": "track", "event": "Review", "anonymousId": "a",
            "properties": {"review": "Great!"}, "context": {"library": {"name": "analytics-ios"}}});
        let m = parse_message(&v, "", None, &ctx(0), || "gen".into()).unwrap();
        assert_eq!(m.channel, "mobile");
        assert_eq!(m.text.as_deref(), Some("Great!"));
        assert_eq!(m.message_id, "gen");
    }

    #[test]
    fn batch_bodies() {
        let body = br#"{"batch": [{"type": "track", "event": "A", "userId": "u", "timestamp": "2024-01-01T00:00:00Z"}], "sentAt": "2024-01-01T00:00:10Z"}"#;
        let msgs = parse_body(
            body,
            None,
            parse_timestamp("2024-01-01T00:01:10Z").unwrap(),
            None,
        )
        .unwrap();
        // client clock 60 s behind: corrected by sentAt at the batch level
        assert_eq!(
            msgs[0].occurred_at,
            parse_timestamp("2024-01-01T00:01:00Z").unwrap()
        );
        assert!(!msgs[0].message_id.is_empty());
        let e = parse_body(b"{not json", None, 0, None).unwrap_err();
        assert_eq!(e.field_error().field, "body");
        let e = parse_body(
            br#"{"batch": [{"type": "track", "userId": "u"}]}"#,
            None,
            0,
            None,
        )
        .unwrap_err();
        assert_eq!(e.field_error().field, "batch[0].event");
        let big = format!(
            r#"{{"batch": [{{"type": "track", "event": "A", "userId": "u", "properties": {{"x": "{}"}}}}]}}"#,
            "a".repeat(40_000)
        );
        assert!(matches!(
            parse_body(big.as_bytes(), None, 0, None),
            Err(BodyError::TooLarge(_))
        ));
        let huge = vec![b' '; MAX_BATCH_BYTES + 1];
        assert!(matches!(
            parse_body(&huge, None, 0, None),
            Err(BodyError::TooLarge(_))
        ));
    }

    #[test]
    fn endpoint_type_must_match() {
        let v = json!({"type": "identify", "userId": "u"});
        let e =
            parse_message(&v, "", Some(MessageType::Track), &ctx(0), || "x".into()).unwrap_err();
        assert_eq!(e.field, "type");
        let v = json!({"userId": "u", "event": "E"});
        assert!(parse_message(&v, "", Some(MessageType::Track), &ctx(0), || "x".into()).is_ok());
    }
}
