//! The relay: an SMTP server Rapport hands messages to, over pooled connections
//! (lettre's SMTP protocol). `smtp://` upgrades with STARTTLS when the server offers it (`?tls=required`
//! insists, `?tls=none` never tries), `smtps://` is TLS from the start; user and password
//! in the URL authenticate. The URL's password is a secret: [`redact`] is what may be shown.

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::sync::Arc;
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

/// How `smtp://` connections use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartTls {
    Never,
    IfOffered,
    Required,
}

/// `smtp://` connections of Rapport's own: lettre's protocol over sockets with
/// `TCP_NODELAY`. (lettre's pooled transport writes a message and its final dot in two
/// writes on a socket with Nagle's algorithm on, so every message waited for the relay's
/// delayed ACK, ~40 ms: 20 messages/s per connection.)
struct Direct {
    host: String,
    port: u16,
    tls: StartTls,
    credentials: Option<Credentials>,
    hello: ClientId,
    idle: tokio::sync::Mutex<Vec<AsyncSmtpConnection>>,
    max_idle: usize,
}

const TIMEOUT: Duration = Duration::from_secs(30);

fn fail(e: lettre::transport::smtp::Error) -> Outcome {
    if e.is_permanent() {
        Outcome::Permanent(e.to_string())
    } else {
        Outcome::Transient(e.to_string())
    }
}

impl Direct {
    async fn connect(&self) -> Result<AsyncSmtpConnection, Outcome> {
        let tcp = tokio::time::timeout(
            TIMEOUT,
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| Outcome::Transient("connecting timed out".into()))?
        .map_err(|e| Outcome::Transient(format!("connecting: {e}")))?;
        tcp.set_nodelay(true)
            .map_err(|e| Outcome::Transient(e.to_string()))?;
        let mut c = tokio::time::timeout(
            TIMEOUT,
            AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello),
        )
        .await
        .map_err(|_| Outcome::Transient("greeting timed out".into()))?
        .map_err(fail)?;
        let upgrade = match self.tls {
            StartTls::Never => false,
            StartTls::IfOffered => c.can_starttls(),
            StartTls::Required => true,
        };
        if upgrade {
            let params = TlsParameters::new(self.host.clone()).map_err(fail)?;
            c.starttls(params, &self.hello).await.map_err(fail)?;
        }
        if let Some(cr) = &self.credentials {
            c.auth(&[Mechanism::Plain, Mechanism::Login], cr)
                .await
                .map_err(fail)?;
        }
        Ok(c)
    }

    async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Outcome {
        // A pooled connection the relay closed meanwhile fails at once: one more try on
        // a fresh connection.
        for attempt in 0..2 {
            let pooled = self.idle.lock().await.pop();
            let reused = pooled.is_some();
            let mut c = match pooled {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => c,
                    Err(o) => return o,
                },
            };
            match tokio::time::timeout(TIMEOUT * 2, c.send(envelope, raw)).await {
                Ok(Ok(r)) => {
                    if !c.has_broken() {
                        let mut idle = self.idle.lock().await;
                        if idle.len() < self.max_idle {
                            idle.push(c);
                        }
                    }
                    return Outcome::Accepted(r.message().collect::<Vec<_>>().join(" "));
                }
                Ok(Err(e)) if reused && attempt == 0 && !e.is_response() => continue,
                Ok(Err(e)) => return fail(e),
                Err(_) => return Outcome::Transient("the relay did not answer in time".into()),
            }
        }
        Outcome::Transient("the relay closed the connection".into())
    }
}

#[derive(Clone)]
enum Transport {
    Direct(Arc<Direct>),
    /// `smtps://` (TLS from the first byte): lettre's pooled transport.
    Pooled(AsyncSmtpTransport<Tokio1Executor>),
}

/// A relay with its connection pool.
#[derive(Clone)]
pub struct Relay {
    transport: Transport,
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

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
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
        let host = u.host_str().unwrap_or("").to_string();
        if host.is_empty() {
            return Err(RelayError("the URL names no host".into()));
        }
        let shown = redact(url);
        if u.scheme() == "smtps" {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map_err(|e| RelayError(e.to_string()))?
                .timeout(Some(TIMEOUT))
                .pool_config(PoolConfig::new().max_size(pool.max(1)))
                .build();
            return Ok(Relay {
                transport: Transport::Pooled(transport),
                shown,
            });
        }
        let tls = match u
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned())
        {
            None => StartTls::IfOffered,
            Some(v) if v == "none" => StartTls::Never,
            Some(v) if v == "opportunistic" => StartTls::IfOffered,
            Some(v) if v == "required" => StartTls::Required,
            Some(v) => {
                return Err(RelayError(format!(
                    "tls={v}: use none, opportunistic or required"
                )))
            }
        };
        let credentials = (!u.username().is_empty())
            .then(|| Credentials::new(decode(u.username()), decode(u.password().unwrap_or(""))));
        Ok(Relay {
            transport: Transport::Direct(Arc::new(Direct {
                host,
                port: u.port().unwrap_or(587),
                tls,
                credentials,
                hello: ClientId::default(),
                idle: tokio::sync::Mutex::new(Vec::new()),
                max_idle: pool.max(1) as usize,
            })),
            shown,
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
        match &self.transport {
            Transport::Direct(d) => d.send(&envelope, raw).await,
            Transport::Pooled(t) => match t.send_raw(&envelope, raw).await {
                Ok(r) => Outcome::Accepted(r.message().collect::<Vec<_>>().join(" ")),
                Err(e) => fail(e),
            },
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
        assert!(Relay::new("smtp://h:25?tls=maybe", 2).is_err());
        assert_eq!(decode("a%40b"), "a@b");
    }
}
