//! Outbound delivery of what rules ask for (webhooks): each queued call is POSTed with an
//! HMAC-SHA256 signature of its body, retried with exponential back-off (1 s, 2 s, 4 s…
//! up to an hour) and dead-lettered after its maximum attempts; failures stay visible and
//! can be retried (`/api/outbox`). Secrets are never logged.

use hmac::{Hmac, Mac};
use rapport_domain::time::now_millis;
use rapport_store::{DynStore, Outbound, StoreError};
use sha2::Sha256;
use std::time::Duration;

/// `sha256=<hex>` of the body under the secret, as sent in `X-Rapport-Signature`.
pub fn signature(secret: &str, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC accepts keys of any length; this branch cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn backoff_ms(attempts: i64) -> i64 {
    (1_000i64 << attempts.clamp(0, 12)).min(3_600_000)
}

/// Delivers what is due; returns how many calls were made.
pub async fn deliver_step(store: &DynStore, client: &reqwest::Client) -> Result<usize, StoreError> {
    let due = store.due_outbound(now_millis(), 50).await?;
    let n = due.len();
    for mut o in due {
        let sent = client
            .post(&o.url)
            .header("content-type", "application/json")
            .header("x-rapport-signature", signature(&o.secret, &o.body))
            .header("x-rapport-delivery", o.id.to_string())
            .header("x-rapport-rule", &o.rule)
            .body(o.body.clone())
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        o.attempts += 1;
        let now = now_millis();
        match sent {
            Ok(r) if r.status().is_success() => {
                o.status = "delivered".into();
                o.delivered_at = Some(now);
                o.last_error = None;
            }
            failed => {
                o.last_error = Some(match failed {
                    Ok(r) => format!("HTTP {}", r.status().as_u16()),
                    Err(e) => format!("{}", e.without_url()),
                });
                if o.attempts >= o.max_attempts {
                    o.status = "dead".into();
                    tracing::warn!(delivery = o.id, rule = %o.rule, attempts = o.attempts, "webhook dead-lettered");
                } else {
                    o.next_at = now + backoff_ms(o.attempts - 1);
                }
            }
        }
        store.update_outbound(o).await?;
    }
    Ok(n)
}

/// Makes a dead or failing delivery pending again, with its attempts reset.
pub async fn retry(store: &DynStore, id: i64) -> Result<Outbound, StoreError> {
    let mut o = store
        .outbound(None, 100_000)
        .await?
        .into_iter()
        .find(|o| o.id == id)
        .ok_or_else(|| StoreError::NotFound(format!("delivery {id}")))?;
    if o.status == "delivered" {
        return Err(StoreError::Conflict(format!("delivery {id} was delivered")));
    }
    o.status = "pending".into();
    o.attempts = 0;
    o.next_at = now_millis();
    store.update_outbound(o.clone()).await?;
    Ok(o)
}

/// The delivery worker `rapport serve` runs.
pub async fn run(store: DynStore, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let client = reqwest::Client::new();
    loop {
        let step = deliver_step(&store, &client).await;
        let (idle, busy) = (Duration::from_millis(250), Duration::from_millis(10));
        if !crate::worker::pause_after("outbound delivery", step, idle, busy, &mut shutdown).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(backoff_ms(0), 1_000);
        assert_eq!(backoff_ms(3), 8_000);
        assert_eq!(backoff_ms(40), 3_600_000);
    }
}
