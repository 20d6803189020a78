//! The SMTP relay tests send to: a real SMTP server (aiosmtpd, from PyPI, in a venv)
//! that writes each accepted message to a folder.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        super::python_venv(
            "email-venv",
            "aiosmtpd, dkim, nacl",
            &["aiosmtpd==1.4.6", "dkimpy==1.1.8", "pynacl==1.5.0"],
        )
    })
    .clone()
}

/// The aiosmtpd relay, killed on drop.
pub struct Sink {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sink {
    pub fn start() -> Sink {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("tempdir");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/email/sink.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start aiosmtpd");
        let mut line = String::new();
        use std::io::BufRead;
        let out = child.stdout.take().expect("stdout");
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("sink ready");
        assert_eq!(line.trim(), "ready");
        Sink { child, port, dir }
    }

    pub fn messages(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        v.sort();
        v
    }

    /// Waits for `n` messages in all.
    pub async fn wait_for(&self, n: usize) -> Vec<PathBuf> {
        for _ in 0..200 {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the relay got {} messages, expected {n}",
            self.messages().len()
        );
    }
}

/// A header of a captured message (the first line that names it).
pub fn header_of(eml: &std::path::Path, name: &str) -> Option<String> {
    let raw = std::fs::read_to_string(eml).unwrap();
    raw.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim().to_string())
}
