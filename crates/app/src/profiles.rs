//! Edits to a person made outside the event stream — traits, consents, merges,
//! unmerges and detached identifiers — by the API and the web app alike. Each write is announced
//! ([`crate::changes`]) so the real-time engine re-reads the people it holds.

use crate::changes::{announce, Change};
use rapport_domain::model::{DetachView, MergeView};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use rapport_store::{ConsentInput, DynStore, StoreError, UnmergeTarget};

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
