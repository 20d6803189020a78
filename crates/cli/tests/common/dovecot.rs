//! The IMAP server tests deliver to: Debian's Dovecot on a free port.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A real IMAP server: Debian's Dovecot (`dovecot-imapd`, .ci/run installs it) on a free
/// port with one user `bounces` (password `secret`) and a Maildir in a temporary
/// directory.
pub struct Dovecot {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dovecot {
    pub fn start() -> Dovecot {
        let bin = ["/usr/sbin/dovecot", "/usr/bin/dovecot"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect(
                "Debian's dovecot-imapd is needed (apt-get install dovecot-imapd; .ci/run does it)",
            );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        for sub in ["run", "state", "mail", "home"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("passwd"), "bounces:{PLAIN}secret\n").unwrap();
        // Dovecot's login process runs as `dovenull` and mail as `dovecot`: they need to
        // reach the directory and own the mail.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let chown = Command::new("chown")
            .args([
                "-R",
                "dovecot:dovecot",
                &format!("{d}/mail"),
                &format!("{d}/home"),
            ])
            .status()
            .expect("chown");
        assert!(chown.success());
        let conf = format!(
            "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/log\n\
             ssl = no\ndisable_plaintext_auth = no\nauth_mechanisms = plain login\nmail_location = maildir:{d}/mail/%u\n\
             default_internal_user = dovecot\ndefault_internal_group = dovecot\ndefault_login_user = dovenull\nfirst_valid_uid = 0\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid=dovecot gid=dovecot home={d}/home/%u\n}}\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n"
        );
        let conf_path = dir.path().join("dovecot.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(bin)
            .args(["-F", "-c", conf_path.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .expect("start dovecot");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Dovecot {
                    child,
                    port,
                    _dir: dir,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "dovecot did not listen: {}",
            std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
        );
    }

    pub fn url(&self) -> String {
        format!("imap://bounces:secret@127.0.0.1:{}/INBOX", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("log")).unwrap_or_default()
    }

    /// Delivers a message into the mailbox (IMAP APPEND).
    pub async fn deliver(&self, raw: &str) {
        let url = rapport_email::imap::MailboxUrl::parse(&self.url()).unwrap();
        let mut mb = rapport_email::imap::Mailbox::open(&url)
            .await
            .unwrap_or_else(|e| panic!("{e}: {}", self.log()));
        mb.append("INBOX", raw.as_bytes()).await.expect("append");
        mb.close().await;
    }

    pub async fn unseen(&self) -> usize {
        let url = rapport_email::imap::MailboxUrl::parse(&self.url()).unwrap();
        let mut mb = rapport_email::imap::Mailbox::open(&url)
            .await
            .expect("imap");
        let n = mb.unseen(1000).await.expect("unseen").len();
        mb.close().await;
        n
    }
}
