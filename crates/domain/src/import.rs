//! CSV profile rows to Segment identify messages: which column goes where (by a
//! `--map` spec or by header name) and one row as a message whose id is derived from
//! its content, so re-importing a file doubles nothing. Pure; reading the file and
//! storing the rows is the application's (`rapport_app::import`).

use crate::message::{parse_message, BatchContext};
use crate::{FieldError, IdentityKind, Message};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// A `--map` spec that cannot be applied to the file's header.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct MappingError(pub String);

/// Where a CSV column goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    UserId,
    AnonymousId,
    /// email, phone or wallet: becomes the trait of that name and an identity.
    Identifier(IdentityKind),
    Social(String),
    External(String),
    Trait(String),
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, String> {
        let s = s.trim();
        let t = match s {
            "user_id" | "userId" => Target::UserId,
            "anonymous_id" | "anonymousId" => Target::AnonymousId,
            "email" => Target::Identifier(IdentityKind::Email),
            "phone" => Target::Identifier(IdentityKind::Phone),
            "wallet" => Target::Identifier(IdentityKind::Wallet),
            _ => {
                if let Some(n) = s.strip_prefix("social:") {
                    Target::Social(n.to_string())
                } else if let Some(n) = s.strip_prefix("external:") {
                    Target::External(n.to_string())
                } else if let Some(n) = s.strip_prefix("traits.") {
                    Target::Trait(n.to_string())
                } else if crate::identifier::SOCIAL_NETWORKS.contains(&s) {
                    Target::Social(s.to_string())
                } else if s.is_empty() {
                    return Err("empty target in --map".into());
                } else {
                    Target::Trait(s.to_string())
                }
            }
        };
        Ok(t)
    }
}

/// `target=Column` pairs, e.g. `email=Email,user_id=Id,social:x=Twitter,traits.title=Job`.
/// Without a spec, columns map by name (case-insensitive): known identifier names to
/// identities, everything else to a trait of the same name.
pub fn mapping(
    spec: Option<&str>,
    headers: &[String],
) -> Result<Vec<(Target, usize)>, MappingError> {
    let find = |col: &str| {
        headers
            .iter()
            .position(|h| h == col)
            .or_else(|| headers.iter().position(|h| h.eq_ignore_ascii_case(col)))
    };
    match spec {
        Some(spec) => spec
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|pair| {
                let (t, col) = pair.split_once('=').ok_or_else(|| {
                    MappingError(format!("--map entry '{pair}' must be target=Column"))
                })?;
                let target = Target::parse(t).map_err(MappingError)?;
                let idx = find(col.trim()).ok_or_else(|| {
                    MappingError(format!(
                        "--map names column '{}', which is not in the header ({})",
                        col.trim(),
                        headers.join(", ")
                    ))
                })?;
                Ok((target, idx))
            })
            .collect(),
        None => Ok(headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let lower = h.trim().to_ascii_lowercase();
                let t = match lower.as_str() {
                    "id" | "user_id" | "userid" => Target::UserId,
                    "anonymous_id" | "anonymousid" => Target::AnonymousId,
                    "email" | "e-mail" => Target::Identifier(IdentityKind::Email),
                    "phone" | "mobile" => Target::Identifier(IdentityKind::Phone),
                    "wallet" | "wallet_address" => Target::Identifier(IdentityKind::Wallet),
                    n if crate::identifier::SOCIAL_NETWORKS.contains(&n) => {
                        Target::Social(n.to_string())
                    }
                    _ => Target::Trait(h.trim().to_string()),
                };
                (t, i)
            })
            .collect()),
    }
}

/// A message id derived from content: re-importing the same rows is idempotent.
pub fn content_id(prefix: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    format!("{prefix}-{}", &hex::encode(h.finalize())[..32])
}

/// One CSV record as an identify message.
pub fn row_message(
    map: &[(Target, usize)],
    fields: &[&str],
    received_at: i64,
) -> Result<Message, FieldError> {
    let mut msg = Map::new();
    let mut traits = Map::new();
    let mut socials = Map::new();
    let mut external = Vec::new();
    msg.insert("type".into(), json!("identify"));
    for (target, idx) in map {
        let v = fields.get(*idx).copied().unwrap_or("").trim();
        if v.is_empty() {
            continue;
        }
        match target {
            Target::UserId => {
                msg.insert("userId".into(), json!(v));
            }
            Target::AnonymousId => {
                msg.insert("anonymousId".into(), json!(v));
            }
            Target::Identifier(k) => {
                traits.insert(k.as_str().into(), json!(v));
            }
            Target::Social(n) => {
                socials.insert(n.clone(), json!(v));
            }
            Target::External(t) => external.push(json!({"id": v, "type": t})),
            Target::Trait(n) => {
                traits.insert(n.clone(), json!(v));
            }
        }
    }
    let has_identifier = msg.contains_key("userId")
        || msg.contains_key("anonymousId")
        || !external.is_empty()
        || !socials.is_empty()
        || ["email", "phone", "wallet"].iter().any(|k| {
            traits.contains_key(*k)
                && map
                    .iter()
                    .any(|(t, _)| matches!(t, Target::Identifier(i) if i.as_str() == *k))
        });
    if !has_identifier {
        return Err(FieldError::new("row", "has no identifier: map a user_id, anonymous_id, email, phone, wallet, social or external column"));
    }
    if !socials.is_empty() {
        traits.insert("socials".into(), Value::Object(socials));
    }
    msg.insert("traits".into(), Value::Object(traits));
    if !external.is_empty() {
        msg.insert("context".into(), json!({"externalIds": external}));
    }
    let id = content_id("csv", fields);
    let batch = BatchContext {
        received_at,
        identifiers_suffice: true,
        ..Default::default()
    };
    parse_message(&Value::Object(msg), "", None, &batch, || id)
}

/// Names the CSV column behind a field path such as `traits.email`.
pub fn column_of(field: &str, map: &[(Target, usize)], headers: &[String]) -> String {
    let key = field.rsplit('.').next().unwrap_or(field);
    let hit = map.iter().find(|(t, _)| match t {
        Target::UserId => key == "userId",
        Target::AnonymousId => key == "anonymousId",
        Target::Identifier(k) => key == k.as_str(),
        Target::Social(n) => key == n.as_str(),
        Target::Trait(n) => key == n.as_str(),
        Target::External(_) => field.contains("externalIds"),
    });
    match hit {
        Some((_, i)) => format!(
            "column '{}'",
            headers.get(*i).map(String::as_str).unwrap_or("?")
        ),
        None => field.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_by_spec_and_by_name() {
        let headers: Vec<String> = ["Id", "Email", "Twitter", "Title"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let m = mapping(
            Some("user_id=Id,email=Email,social:x=Twitter,traits.title=Title"),
            &headers,
        )
        .unwrap();
        assert_eq!(m[2], (Target::Social("x".into()), 2));
        let auto = mapping(None, &headers).unwrap();
        assert_eq!(auto[0].0, Target::UserId);
        assert_eq!(auto[2].0, Target::Social("twitter".into()));
        assert_eq!(auto[3].0, Target::Trait("Title".into()));
        assert!(mapping(Some("email=Nope"), &headers).is_err());
    }

    #[test]
    fn rows_become_identify_messages() {
        let headers: Vec<String> = ["Email", "Name"].iter().map(|s| s.to_string()).collect();
        let m = mapping(None, &headers).unwrap();
        let rec = ["Ann@X.io", "Ann"];
        let msg = row_message(&m, &rec, 0).unwrap();
        assert_eq!(msg.identifiers[0].to_string(), "email:ann@x.io");
        let again = row_message(&m, &rec, 0).unwrap();
        assert_eq!(
            msg.message_id, again.message_id,
            "content-derived ids make re-imports idempotent"
        );
        let bad = ["not-an-email", "Bob"];
        let e = row_message(&m, &bad, 0).unwrap_err();
        assert_eq!(column_of(&e.field, &m, &headers), "column 'Email'");
        let none = ["", "Nobody"];
        assert!(
            row_message(&m, &none, 0).is_err(),
            "a row with no identifier is rejected"
        );
    }
}
