//! The relay: an SMTP server Rapport hands messages to, over pooled connections
//! (lettre). `smtp://` upgrades with STARTTLS when the server offers it (`?tls=required`
//! insists, `?tls=none` never tries), `smtps://` is TLS from the start; user and password
//! in the URL authenticate. The URL's password is a secret: [`redact`] is what may be shown.

use lettre::address::Envelope;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

/// What the relay said to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the relay took it.
    Accepted(String),
    /// 4xx, a timeout or a connection failure: try again later.
    Transient(String),
    /// 5xx: it will never take it (a bounce).
    Permanent(String),
}

#[derive(Debug, thiserror::Error)]
#[error("smtp_url: {0}")]
pub struct RelayError(pub String);

/// A relay with its connection pool.
#[derive(Clone)]
pub struct Relay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    shown: String,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Relay({})", self.shown)
    }
}

/// The URL without its password.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(not a URL)".into(),
    }
}

impl Relay {
    /// Checks and loads a relay URL (nothing is connected until the first send).
    pub fn new(url: &str, pool: u32) -> Result<Relay, RelayError> {
        let u = url::Url::parse(url).map_err(|e| RelayError(format!("{e}")))?;
        if !matches!(u.scheme(), "smtp" | "smtps") {
            return Err(RelayError(format!(
                "`{}` is not smtp:// or smtps://",
                u.scheme()
            )));
        }
        if u.host_str().unwrap_or("").is_empty() {
            return Err(RelayError("the URL names no host".into()));
        }
        // STARTTLS when offered, unless the URL says otherwise.
        let mut full = u.clone();
        if u.scheme() == "smtp" && !u.query_pairs().any(|(k, _)| k == "tls") {
            full.query_pairs_mut().append_pair("tls", "opportunistic");
        }
        if u.query_pairs().any(|(k, v)| k == "tls" && v == "none") {
            full.set_query(None);
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(full.as_str())
            .map_err(|e| RelayError(e.to_string()))?
            .timeout(Some(Duration::from_secs(30)))
            .pool_config(PoolConfig::new().max_size(pool.max(1)))
            .build();
        Ok(Relay {
            transport,
            shown: redact(url),
        })
    }

    /// The URL as it may be shown.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Hands one message to the relay.
    pub async fn send(&self, return_path: &str, to: &str, raw: &[u8]) -> Outcome {
        let (from, to) = match (return_path.parse(), to.parse()) {
            (Ok(f), Ok(t)) => (f, t),
            _ => return Outcome::Permanent(format!("invalid envelope address {to}")),
        };
        let envelope = match Envelope::new(Some(from), vec![to]) {
            Ok(e) => e,
            Err(e) => return Outcome::Permanent(e.to_string()),
        };
        match self.transport.send_raw(&envelope, raw).await {
            Ok(r) => Outcome::Accepted(r.message().collect::<Vec<_>>().join(" ")),
            Err(e) if e.is_permanent() => Outcome::Permanent(e.to_string()),
            Err(e) => Outcome::Transient(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls() {
        assert_eq!(redact("smtp://u:secret@h:25"), "smtp://u:***@h:25");
        assert_eq!(redact("smtp://h:25"), "smtp://h:25");
        assert_eq!(redact("::"), "(not a URL)");
        assert!(Relay::new("http://h", 1).is_err());
        assert!(Relay::new("nope", 1).is_err());
        let r = Relay::new("smtp://u:secret@127.0.0.1:9", 1).unwrap();
        assert!(!format!("{r:?}").contains("secret"));
        assert_eq!(r.shown(), "smtp://u:***@127.0.0.1:9");
        // Nothing listens on port 9: a transient failure, to retry.
        assert!(matches!(
            r.send("a@b.test", "c@d.test", b"x").await,
            Outcome::Transient(_)
        ));
        assert!(matches!(
            r.send("bad", "c@d.test", b"x").await,
            Outcome::Permanent(_)
        ));
        assert!(Relay::new("smtps://h:465", 2).is_ok());
        assert!(Relay::new("smtp://h:25?tls=none", 2).is_ok());
    }
}
