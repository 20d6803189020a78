//! Relationships inferred from events by a background worker (referrers, mentions, replies,
//! answers, follows, wallet transfers, `@handles`): cursor and writes in one transaction.

use super::*;

/// An `identify` message carrying one identifier, with a content id so repeating it
/// changes nothing.
pub(super) fn identify_for(
    k: &IdentityKey,
    at: Millis,
) -> std::result::Result<rapport_domain::Message, FieldError> {
    identify_with(k, at, json!({}), "rel")
}

/// An `identify` of one identifier with the given traits; `tag` keeps content ids of
/// different purposes apart.
pub(super) fn identify_with(
    k: &IdentityKey,
    at: Millis,
    traits: Value,
    tag: &str,
) -> std::result::Result<rapport_domain::Message, FieldError> {
    let mut msg = json!({"type": "identify", "traits": traits});
    match k.kind {
        IdentityKind::UserId => msg["userId"] = json!(k.value),
        IdentityKind::AnonymousId => msg["anonymousId"] = json!(k.value),
        IdentityKind::Email | IdentityKind::Phone | IdentityKind::Wallet => {
            msg["traits"][k.kind.as_str()] = json!(k.value)
        }
        IdentityKind::Social => {
            let (network, handle) = k.value.split_once(':').unwrap_or(("", &k.value));
            msg["traits"]["socials"] = json!({ network: handle });
        }
        IdentityKind::External => {
            let (kind, id) = k.value.split_once(':').unwrap_or(("external", &k.value));
            msg["context"] = json!({"externalIds": [{"id": id, "type": kind}]});
        }
    }
    let id = content_id(tag, &[k.kind.as_str(), &k.value]);
    let batch = BatchContext {
        received_at: at,
        identifiers_suffice: true,
        ..Default::default()
    };
    parse_message(&msg, "", None, &batch, || id)
}

/// E-mail addresses and wallet addresses written in an event's text are mentions of
/// whoever owns them (handles need a network, which `relationship::infer` reads). A
/// bare `0x` address is taken on the event's `chain_id`, else Ethereum mainnet.
pub(super) fn text_mentions(ev: &EventView, hints: &mut Vec<relationship::EdgeHint>) {
    let Some(text) = ev.text.as_deref() else {
        return;
    };
    if !text.contains('@') && !text.contains("0x") {
        return;
    }
    static NONE: std::sync::OnceLock<rapport_text::Catalogue> = std::sync::OnceLock::new();
    let none = NONE.get_or_init(|| rapport_text::Catalogue::new([]));
    let chain = ev
        .properties
        .get("chain_id")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    for e in rapport_text::entities::extract(text, none)
        .into_iter()
        .take(50)
    {
        let key = match e.kind {
            "email" => IdentityKey::parse(IdentityKind::Email, &e.value).ok(),
            "wallet" => {
                IdentityKey::parse(IdentityKind::Wallet, &format!("eip155:{chain}:{}", e.value))
                    .ok()
            }
            _ => None,
        };
        if let Some(other) = key {
            let h = relationship::EdgeHint {
                kind: "mentioned",
                other,
                toward_author: false,
                from: None,
            };
            if !hints.contains(&h) {
                hints.push(h);
            }
        }
    }
}

pub(crate) fn vader() -> &'static rapport_text::Vader {
    static V: std::sync::OnceLock<rapport_text::Vader> = std::sync::OnceLock::new();
    V.get_or_init(rapport_text::Vader::new)
}

/// Name of the inference worker's position in the event log.
pub const INFERENCE_CURSOR: &str = "cursor.graph_inference";

/// One step of the inference worker: reads the next events after its saved position,
/// stores the relationships they imply and the new position in one transaction.
/// Returns how many events it read (0 when caught up).
pub async fn infer_step(store: &DynStore, batch: usize) -> Result<usize> {
    let pos = store.counter(INFERENCE_CURSOR).await?;
    let (events, last) = store.relationship_candidates(pos, batch as i64).await?;
    if last == pos {
        return Ok(0);
    }
    let hinted: Vec<(&EventView, Vec<relationship::EdgeHint>)> = events
        .iter()
        .map(|e| {
            let mut hints = relationship::infer(e);
            text_mentions(e, &mut hints);
            (e, hints)
        })
        .filter(|(_, h)| !h.is_empty())
        .collect();
    let mut keys: Vec<IdentityKey> = Vec::new();
    for (_, hints) in &hinted {
        for h in hints {
            keys.push(h.other.clone());
            keys.extend(h.from.iter().cloned());
        }
    }
    keys.sort();
    keys.dedup();
    let mut owners: HashMap<IdentityKey, ProfileId> = if keys.is_empty() {
        HashMap::new()
    } else {
        let found = store.lookup_many(keys.clone()).await?;
        keys.into_iter()
            .zip(found)
            .filter_map(|(k, f)| f.map(|f| (k, f)))
            .collect()
    };
    // Unknown people mentioned in texts become lead profiles when the brand wants.
    let unknown: Vec<&IdentityKey> = hinted
        .iter()
        .flat_map(|(_, hs)| hs.iter())
        .filter(|h| h.kind == "mentioned" && !owners.contains_key(&h.other))
        .map(|h| &h.other)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if !unknown.is_empty() && crate::text::create_leads(store).await? {
        let now = rapport_domain::time::now_millis();
        let leads = unknown
            .iter()
            .map(|k| {
                identify_with(
                    k,
                    now,
                    json!({"lead": true, "lead_source": "mentioned in a text"}),
                    "lead",
                )
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        store
            .ingest(vec![SourcedMessages {
                source: "text-mentions".to_string(),
                messages: leads,
            }])
            .await?;
        let keys: Vec<IdentityKey> = unknown.into_iter().cloned().collect();
        let found = store.lookup_many(keys.clone()).await?;
        owners.extend(
            keys.into_iter()
                .zip(found)
                .filter_map(|(k, f)| f.map(|f| (k, f))),
        );
    }
    let mut writes = Vec::new();
    for (ev, hints) in hinted {
        for h in hints {
            let Some(&other) = owners.get(&h.other) else {
                continue;
            };
            let (source, target) = match (&h.from, h.toward_author) {
                (Some(f), _) => match owners.get(f) {
                    Some(&f) => (f, other),
                    None => continue,
                },
                (None, true) => (other, ev.profile_id),
                (None, false) => (ev.profile_id, other),
            };
            // Someone writing their own address is not a relationship.
            if source == target {
                continue;
            }
            writes.push(RelationshipWrite {
                source,
                target,
                kind: h.kind.to_string(),
                weight: 1.0,
                explicit: false,
                at: ev.occurred_at.timestamp_millis(),
                // A score the sender supplied wins; else the text's own (VADER).
                sentiment: ev
                    .properties
                    .get("sentiment")
                    .and_then(Value::as_f64)
                    .filter(|s| (-1.0..=1.0).contains(s))
                    .or_else(|| ev.text.as_deref().map(|t| vader().polarity(t).compound)),
                event_id: Some(ev.id),
            });
        }
    }
    store
        .upsert_relationships(writes, Some((INFERENCE_CURSOR.to_string(), last)))
        .await?;
    Ok((last - pos) as usize)
}

/// Runs inference until it has read every stored event; returns events read.
pub async fn infer_all(store: &DynStore) -> Result<usize> {
    let mut total = 0;
    loop {
        match infer_step(store, 100_000).await? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

/// Runs the inference worker until `shutdown` fires: catches up after a restart from
/// its saved position, then polls for new events.
pub async fn run_inference(store: DynStore, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        // Large spans and a pause even when behind: each step is one write transaction
        // (one fsync) on the store ingestion also writes to, so fewer, larger steps cost
        // ingestion least; relationships appear within about a second.
        let step = infer_step(&store, 100_000).await;
        let (idle, busy) = (Duration::from_millis(500), Duration::from_millis(200));
        if !crate::worker::pause_after("relationship inference", step, idle, busy, &mut shutdown)
            .await
        {
            return;
        }
    }
}
