//! The bounce mailbox connector: reads the unseen messages of an IMAP mailbox (where an
//! MTA delivers DSNs and feedback loops deliver ARF reports) and marks them seen once
//! handled. `imap://user:password@host:143/INBOX` (STARTTLS is not tried: use
//! `imaps://…:993/…` for TLS).

use async_imap::{Client, Session};
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImapError(pub String);

fn err(what: &str, e: impl std::fmt::Display) -> ImapError {
    ImapError(format!("{what}: {e}"))
}

/// Where the mailbox is.
#[derive(Clone, PartialEq)]
pub struct MailboxUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub user: String,
    password: String,
    pub mailbox: String,
}

impl std::fmt::Debug for MailboxUrl {
    // The password never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}:***@{}:{}/{}",
            if self.tls { "imaps" } else { "imap" },
            self.user,
            self.host,
            self.port,
            self.mailbox
        )
    }
}

impl MailboxUrl {
    /// Checks a mailbox URL: scheme, host, user and password are required; the path is
    /// the mailbox (default `INBOX`).
    pub fn parse(s: &str) -> Result<MailboxUrl, ImapError> {
        let u = url::Url::parse(s).map_err(|e| err("not a URL", e))?;
        let tls = match u.scheme() {
            "imap" => false,
            "imaps" => true,
            other => return Err(ImapError(format!("`{other}`: use imap:// or imaps://"))),
        };
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ImapError("a host is needed".into()))?
            .to_string();
        let decode = |x: &str| {
            url::form_urlencoded::parse(format!("x={x}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let user = decode(u.username());
        let password = u.password().map(decode).unwrap_or_default();
        if user.is_empty() || password.is_empty() {
            return Err(ImapError("a user and a password are needed".into()));
        }
        let mailbox = decode(u.path().trim_start_matches('/'));
        Ok(MailboxUrl {
            tls,
            port: u.port().unwrap_or(if tls { 993 } else { 143 }),
            host,
            user,
            password,
            mailbox: if mailbox.is_empty() {
                "INBOX".into()
            } else {
                mailbox
            },
        })
    }
}

/// A plain or TLS socket, so one session type serves both schemes.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}

/// An open, selected mailbox.
pub struct Mailbox {
    session: Session<Box<dyn Io>>,
}

impl Mailbox {
    /// Connects, signs in and selects the mailbox.
    pub async fn open(url: &MailboxUrl) -> Result<Mailbox, ImapError> {
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| err("connect", e))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if url.tls {
            let mut roots = tokio_rustls::rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            // ring, the provider lettre already links (its post-quantum successor needs
            // aws-lc and a C toolchain).
            #[allow(deprecated)]
            let provider = tokio_rustls::rustls::crypto::ring::default_provider();
            let config =
                tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(provider))
                    .with_safe_default_protocol_versions()
                    .map_err(|e| err("tls", e))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
            let name = rustls_pki_types::ServerName::try_from(url.host.clone())
                .map_err(|e| err("host", e))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| err("tls", e))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let mut client = Client::new(io);
        client
            .read_response()
            .await
            .map_err(|e| err("greeting", e))?
            .ok_or_else(|| ImapError("the server closed before its greeting".into()))?;
        let mut session = client
            .login(&url.user, &url.password)
            .await
            .map_err(|(e, _)| err("login", e))?;
        session
            .select(&url.mailbox)
            .await
            .map_err(|e| err(&format!("select {}", url.mailbox), e))?;
        Ok(Mailbox { session })
    }

    /// Up to `limit` unseen messages, oldest first, as (UID, raw RFC 5322 bytes); they
    /// stay unseen until [`Mailbox::mark_seen`].
    pub async fn unseen(&mut self, limit: usize) -> Result<Vec<(u32, Vec<u8>)>, ImapError> {
        let mut uids: Vec<u32> = self
            .session
            .uid_search("UNSEEN")
            .await
            .map_err(|e| err("search", e))?
            .into_iter()
            .collect();
        uids.sort_unstable();
        uids.truncate(limit);
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(&uids);
        let mut out = Vec::with_capacity(uids.len());
        let mut fetches = self
            .session
            .uid_fetch(&set, "BODY.PEEK[]")
            .await
            .map_err(|e| err("fetch", e))?;
        while let Some(f) = fetches.next().await {
            let f = f.map_err(|e| err("fetch", e))?;
            if let (Some(uid), Some(body)) = (f.uid, f.body()) {
                out.push((uid, body.to_vec()));
            }
        }
        out.sort_by_key(|(u, _)| *u);
        Ok(out)
    }

    /// Flags messages `\Seen`, so the next poll skips them.
    pub async fn mark_seen(&mut self, uids: &[u32]) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        let mut done = self
            .session
            .uid_store(uid_set(uids), "+FLAGS.SILENT (\\Seen)")
            .await
            .map_err(|e| err("store", e))?;
        while let Some(r) = done.next().await {
            r.map_err(|e| err("store", e))?;
        }
        Ok(())
    }

    /// Adds a message to the mailbox (tests and tools deliver reports this way).
    pub async fn append(&mut self, mailbox: &str, raw: &[u8]) -> Result<(), ImapError> {
        self.session
            .append(mailbox, None, None, raw)
            .await
            .map_err(|e| err("append", e))
    }

    pub async fn close(mut self) {
        let _ = self.session.logout().await;
    }
}

/// `1,5,9` — the UIDs as an IMAP sequence set.
fn uid_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = MailboxUrl::parse("imap://bounce%40x:p%40ss@127.0.0.1:1143/Bounces").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.user.as_str()),
            (false, "127.0.0.1", 1143, "bounce@x")
        );
        assert_eq!(
            (u.password.as_str(), u.mailbox.as_str()),
            ("p@ss", "Bounces")
        );
        let s = MailboxUrl::parse("imaps://u:p@mail.example").unwrap();
        assert_eq!((s.tls, s.port, s.mailbox.as_str()), (true, 993, "INBOX"));
        assert_eq!(MailboxUrl::parse("imap://u:p@h").unwrap().port, 143);
        assert!(!format!("{u:?}").contains("p@ss"));
        assert_eq!(format!("{s:?}"), "imaps://u:***@mail.example:993/INBOX");
        for bad in [
            "pop3://u:p@h",
            "imap://h",
            "imap://u@h",
            "nope",
            "imap://u:p@/x",
        ] {
            assert!(MailboxUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(uid_set(&[1, 5, 9]), "1,5,9");
    }
}
