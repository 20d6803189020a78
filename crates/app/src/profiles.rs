//! Edits to a person made outside the event stream — traits, consents, merges,
//! unmerges and detached identifiers — by the API and the web app alike. Each write is announced
//! ([`crate::changes`]) so the real-time engine re-reads the people it holds.

use crate::changes::{announce, Change};
use rapport_domain::identifier::{IdentityKey, IdentityKind};
use rapport_domain::message::{parse_message, BatchContext};
use rapport_domain::model::{DetachView, MergeView};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use rapport_store::{ConsentInput, DynStore, StoreError, UnmergeTarget};
use serde_json::json;

/// The person with this e-mail address, made as an identify would make them when nobody
/// has it yet (a first transactional e-mail, a first support ticket); `name` becomes the
/// new person's name trait.
/// The person a request names in `field`: `email:<address>` (made a person if new,
/// with the address returned) or a profile id.
pub async fn named(
    store: &DynStore,
    r: &serde_json::Value,
    field: &str,
    source: &str,
) -> Result<(ProfileId, Option<String>), StoreError> {
    let text = match r {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => {
            return Err(StoreError::invalid(
                field,
                "`email:<address>` or a profile id",
            ))
        }
    };
    if let Ok(id) = text.parse::<ProfileId>() {
        return match store.profile(id).await {
            Ok(p) => Ok((p.id, None)),
            Err(StoreError::NotFound(_)) => {
                Err(StoreError::invalid(field, format!("no person {id}")))
            }
            Err(e) => Err(e),
        };
    }
    let raw = text.strip_prefix("email:").unwrap_or(&text);
    let key = IdentityKey::parse(rapport_domain::IdentityKind::Email, raw)
        .map_err(|e| StoreError::invalid(field, e.to_string()))?;
    let id = person_for_email(store, &key, None, source).await?;
    Ok((id, Some(key.value)))
}

pub async fn person_for_email(
    store: &DynStore,
    key: &IdentityKey,
    name: Option<&str>,
    source: &str,
) -> Result<ProfileId, StoreError> {
    if let Some(id) = store.lookup(key).await? {
        return Ok(id);
    }
    let mut msg = json!({"type": "identify", "traits": {"email": key.value}});
    if let Some(n) = name.map(str::trim).filter(|n| !n.is_empty()) {
        msg["traits"]["name"] = json!(n);
    }
    let batch = BatchContext {
        received_at: rapport_domain::time::now_millis(),
        identifiers_suffice: true,
        ..Default::default()
    };
    let m = parse_message(&msg, "", None, &batch, || {
        format!("{source}:new:{}", key.value)
    })
    .map_err(|e| StoreError::invalid(&e.field, e.to_string()))?;
    store
        .ingest(vec![rapport_store::SourcedMessages {
            source: source.into(),
            messages: vec![m],
        }])
        .await?;
    store
        .lookup(key)
        .await?
        .ok_or_else(|| StoreError::Backend("the new person was not found".into()))
}

/// Applies a JSON merge patch (RFC 7396) to a person's traits.
pub async fn patch_traits(
    store: &DynStore,
    id: ProfileId,
    patch: &serde_json::Value,
    at: Millis,
) -> Result<(), StoreError> {
    store.patch_traits(id, patch, at).await?;
    announce(store, Change::Standing).await
}

/// Records a consent decision (kept as history; the latest per channel × purpose counts).
pub async fn set_consent(
    store: &DynStore,
    id: ProfileId,
    consent: &ConsentInput,
) -> Result<(), StoreError> {
    store.set_consent(id, consent).await?;
    announce(store, Change::Standing).await
}

/// Merges two people by hand (overriding merge protection); the older profile survives.
pub async fn merge(
    store: &DynStore,
    a: ProfileId,
    b: ProfileId,
    by: &str,
    at: Millis,
) -> Result<MergeView, StoreError> {
    let m = store.merge(a, b, by, at).await?;
    announce(store, Change::Standing).await?;
    Ok(m)
}

/// Undoes a merge; the pair is then protected from automatic re-merging.
pub async fn unmerge(
    store: &DynStore,
    target: UnmergeTarget,
    by: &str,
    at: Millis,
) -> Result<MergeView, StoreError> {
    let m = store.unmerge(target, by, at).await?;
    announce(store, Change::Standing).await?;
    Ok(m)
}

/// Moves one identifier off a person onto a profile of its own (a recycled phone number,
/// a shared kiosk); recorded, reversible, and the two are kept from re-merging
/// automatically.
pub async fn detach(
    store: &DynStore,
    person: ProfileId,
    key: &rapport_domain::IdentityKey,
    by: &str,
    at: Millis,
) -> Result<DetachView, StoreError> {
    let d = store.detach(person, key, by, at).await?;
    announce(store, Change::Standing).await?;
    Ok(d)
}

/// Puts a detached identifier back where it was.
pub async fn undo_detach(
    store: &DynStore,
    id: i64,
    by: &str,
    at: Millis,
) -> Result<DetachView, StoreError> {
    let d = store.undo_detach(id, by, at).await?;
    announce(store, Change::Standing).await?;
    Ok(d)
}

/// Joins an identifier whose ownership was just proved (a SIWE signature, a
/// confirmation link) to `anchor`'s person, through ingestion so identity resolution
/// applies as for any message, and marks it verified with `proof`. Returns the person
/// it now belongs to.
pub async fn add_proved_identity(
    store: &DynStore,
    ingestor: &crate::ingest::Ingestor,
    anchor: &IdentityKey,
    proved: &IdentityKey,
    proof: &serde_json::Value,
    source: &str,
    message_id: &str,
) -> Result<ProfileId, StoreError> {
    let mut msg = json!({"type": "identify", "messageId": message_id, "traits": {}});
    for k in [anchor, proved] {
        let list = match k.kind {
            IdentityKind::UserId => {
                msg["userId"] = json!(k.value);
                continue;
            }
            IdentityKind::AnonymousId => {
                msg["anonymousId"] = json!(k.value);
                continue;
            }
            IdentityKind::Email => "emails",
            IdentityKind::Phone => "phones",
            IdentityKind::Wallet => "wallets",
            IdentityKind::Social | IdentityKind::External => {
                return Err(StoreError::invalid(
                    "identity",
                    "only e-mail, phone, wallet and user ids can be joined this way",
                ))
            }
        };
        match msg["traits"][list].as_array_mut() {
            Some(a) => a.push(json!(k.value)),
            None => msg["traits"][list] = json!([k.value]),
        }
    }
    let batch = BatchContext {
        received_at: rapport_domain::time::now_millis(),
        identifiers_suffice: true,
        ..Default::default()
    };
    let m = parse_message(&msg, "", None, &batch, || message_id.to_string())
        .map_err(|e| StoreError::invalid(&e.field, e.to_string()))?;
    // One message: committed alone, so no other request's data can spoil it.
    ingestor
        .submit_alone(source, vec![m])
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    store
        .verify_identity(proved, proof.to_string(), batch.received_at)
        .await?;
    announce(store, Change::Standing).await?;
    store
        .lookup(proved)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("identity {proved}")))
}
