//! Events a capability records on a person's timeline beside its own rows (a ticket
//! opened, an e-mail delivered, an answer accepted): a Segment `track` message parsed
//! like any other, so segments, scores and rules read them the same way.

use rapport_domain::message::{parse_message, BatchContext};
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::{to_datetime, Millis};
use rapport_store::StoreError;
use serde_json::{json, Value};

/// A `track` event `name` on `profile`'s timeline, from `channel`, with message id `id`.
pub fn event(
    profile: ProfileId,
    channel: &str,
    name: &str,
    id: &str,
    at: Millis,
    props: Value,
) -> Result<EventRow, StoreError> {
    let msg = json!({"type": "track", "channel": channel, "event": name,
        "userId": format!("rapport-profile-{profile}"), "properties": props,
        "timestamp": to_datetime(at).to_rfc3339()});
    let batch = BatchContext {
        received_at: at,
        ..Default::default()
    };
    let m = parse_message(&msg, "", None, &batch, || id.to_string())
        .map_err(|e| StoreError::invalid(&e.field, e.reason))?;
    Ok(EventRow {
        profile_id: profile,
        message: m,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_a_track_message_on_the_profile() {
        let e = event(7, "support", "Ticket Opened", "t:1", 1_000, json!({"a": 1})).unwrap();
        assert_eq!(e.profile_id, 7);
        assert_eq!(e.message.message_id, "t:1");
        assert_eq!(e.message.name.as_deref(), Some("Ticket Opened"));
        assert_eq!(e.message.channel, "support");
        assert!(e.message.properties_json.contains("\"a\":1"));
        assert!(event(7, "support", "", "t:2", 1_000, json!({})).is_err());
    }
}
