//! Bulk import: profiles from CSV (RFC 4180) and events from JSON Lines. Every row goes
//! through the same validation and identity resolution as the Segment API. A bad row
//! is rejected with its line number and reason and stores nothing; good rows are
//! committed in chunks. Each row's message id is derived from its content, so
//! re-running an import does not double anything.

use rapport_domain::message::{parse_line, parse_message, BatchContext};
use rapport_domain::time::now_millis;
use rapport_domain::{FieldError, IdentityKind, Message};
use rapport_store::{DynStore, IngestOutcome, SourcedMessages, StoreError};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::io::BufRead;
use std::str::FromStr;

const CHUNK: usize = 2_000;
/// Rejected rows listed in a summary; the count covers all of them.
const MAX_LISTED: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Mapping(String),
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Rejected {
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ImportSummary {
    pub rows: usize,
    pub imported: usize,
    pub duplicates: usize,
    pub profiles_created: usize,
    pub identities_created: usize,
    pub merged: usize,
    pub conflicts: usize,
    pub rejected_count: usize,
    pub rejected: Vec<Rejected>,
}

impl ImportSummary {
    fn add(&mut self, o: &IngestOutcome) {
        self.imported += o.accepted;
        self.duplicates += o.duplicates;
        self.profiles_created += o.profiles_created;
        self.identities_created += o.identities_created;
        self.merged += o.merges;
        self.conflicts += o.conflicts;
    }

    fn reject(&mut self, line: usize, reason: String) {
        self.rejected_count += 1;
        if self.rejected.len() < MAX_LISTED {
            self.rejected.push(Rejected { line, reason });
        }
    }
}

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
    fn parse(s: &str) -> Result<Target, String> {
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
                } else if rapport_domain::identifier::SOCIAL_NETWORKS.contains(&s) {
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
) -> Result<Vec<(Target, usize)>, ImportError> {
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
                    ImportError::Mapping(format!("--map entry '{pair}' must be target=Column"))
                })?;
                let target = Target::parse(t).map_err(ImportError::Mapping)?;
                let idx = find(col.trim()).ok_or_else(|| {
                    ImportError::Mapping(format!(
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
                    n if rapport_domain::identifier::SOCIAL_NETWORKS.contains(&n) => {
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
    record: &csv::StringRecord,
    received_at: i64,
) -> Result<Message, FieldError> {
    let mut msg = Map::new();
    let mut traits = Map::new();
    let mut socials = Map::new();
    let mut external = Vec::new();
    msg.insert("type".into(), json!("identify"));
    for (target, idx) in map {
        let v = record.get(*idx).unwrap_or("").trim();
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
    let fields: Vec<&str> = record.iter().collect();
    let id = content_id("csv", &fields);
    let batch = BatchContext {
        received_at,
        identifiers_suffice: true,
        ..Default::default()
    };
    parse_message(&Value::Object(msg), "", None, &batch, || id)
}

async fn flush(
    store: &DynStore,
    source: &str,
    buf: &mut Vec<Message>,
    summary: &mut ImportSummary,
) -> Result<(), ImportError> {
    if buf.is_empty() {
        return Ok(());
    }
    let messages = std::mem::take(buf);
    let o = store
        .ingest(vec![SourcedMessages {
            source: source.to_string(),
            messages,
        }])
        .await?;
    summary.add(&o);
    Ok(())
}

/// Imports profiles from CSV. `progress` is called with bytes read so far.
pub async fn import_csv(
    store: &DynStore,
    input: impl std::io::Read,
    map_spec: Option<&str>,
    source: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ImportSummary, ImportError> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers: Vec<String> = rdr.headers()?.iter().map(str::to_string).collect();
    let map = mapping(map_spec, &headers)?;
    let mut summary = ImportSummary::default();
    let mut buf = Vec::with_capacity(CHUNK);
    let now = now_millis();
    let mut record = csv::StringRecord::new();
    loop {
        // The file line of the next record (the reader counts lines already ended).
        let line = rdr.position().line() as usize + 1;
        match rdr.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                summary.rows += 1;
                summary.reject(line, format!("unreadable CSV record: {e}"));
                continue;
            }
        }
        summary.rows += 1;
        match row_message(&map, &record, now) {
            Ok(m) => buf.push(m),
            Err(e) => summary.reject(
                line,
                format!("{}: {}", column_of(&e.field, &map, &headers), e.reason),
            ),
        }
        if buf.len() >= CHUNK {
            flush(store, source, &mut buf, &mut summary).await?;
            progress(rdr.position().byte());
        }
    }
    flush(store, source, &mut buf, &mut summary).await?;
    progress(rdr.position().byte());
    store.refresh_statistics().await?;
    Ok(summary)
}

/// Names the CSV column behind a field path such as `traits.email`.
fn column_of(field: &str, map: &[(Target, usize)], headers: &[String]) -> String {
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

/// Imports Segment messages, one JSON object per line.
pub async fn import_jsonl(
    store: &DynStore,
    input: impl BufRead,
    source: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ImportSummary, ImportError> {
    let mut summary = ImportSummary::default();
    let mut buf = Vec::with_capacity(CHUNK);
    let now = now_millis();
    let mut bytes = 0u64;
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        bytes += line.len() as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        summary.rows += 1;
        match parse_line(&line, i + 1, now) {
            Ok(mut m) => {
                // Lines without a messageId get one from their content, so a re-run of
                // the same file is idempotent.
                if !line.contains("\"messageId\"") {
                    m.message_id = content_id("jsonl", &[&line]);
                }
                buf.push(m)
            }
            Err(e) => summary.reject(i + 1, format!("{}: {}", e.field, e.reason)),
        }
        if buf.len() >= CHUNK {
            flush(store, source, &mut buf, &mut summary).await?;
            progress(bytes);
        }
    }
    flush(store, source, &mut buf, &mut summary).await?;
    progress(bytes);
    store.refresh_statistics().await?;
    Ok(summary)
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::parse(s)
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
        let rec = csv::StringRecord::from(vec!["Ann@X.io", "Ann"]);
        let msg = row_message(&m, &rec, 0).unwrap();
        assert_eq!(msg.identifiers[0].to_string(), "email:ann@x.io");
        let again = row_message(&m, &rec, 0).unwrap();
        assert_eq!(
            msg.message_id, again.message_id,
            "content-derived ids make re-imports idempotent"
        );
        let bad = csv::StringRecord::from(vec!["not-an-email", "Bob"]);
        let e = row_message(&m, &bad, 0).unwrap_err();
        assert_eq!(column_of(&e.field, &m, &headers), "column 'Email'");
        let none = csv::StringRecord::from(vec!["", "Nobody"]);
        assert!(
            row_message(&m, &none, 0).is_err(),
            "a row with no identifier is rejected"
        );
    }
}
