//! Storage: one trait per capability (`<cap>.rs`: the trait and the shapes it speaks),
//! each with two real implementations in that capability's own file, SQLite
//! (`sqlite/<cap>.rs`, embedded, the default) and PostgreSQL (`postgres/<cap>.rs`).
//! [`Store`] is their sum, the one handle the app holds. Both backends run versioned
//! migrations on open and tell the same conformance story (`tests/conformance.rs`); SQL
//! they share word for word is in `sql.rs`.
//!
//! Identity resolution runs *inside* the ingest transaction: the store loads a
//! [`Snapshot`](rapport_domain::resolve::Snapshot), the pure resolver plans the writes,
//! and the store applies the plan before committing. A group is therefore atomic, and
//! since one writer runs at a time (a lock in SQLite, an advisory lock in PostgreSQL)
//! resolution always sees the latest state.

use async_trait::async_trait;
use std::sync::Arc;

pub mod chain;
mod common;
pub mod community;
pub mod email;
pub mod events;
pub mod graph;
pub mod ingest;
pub mod insight;
pub mod kb;
pub mod loyalty;
mod overview_sql;
pub mod portal;
pub mod postgres;
pub mod privacy;
pub mod profiles;
pub mod realtime;
pub mod referrals;
pub mod rules;
pub mod scores;
pub mod segments;
pub mod settings;
mod sql;
pub mod sqlite;
pub mod staff;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod tickets;

pub use chain::ChainStore;
pub use community::{CommunityStore, Post, PostFilter, PostHit, Standing};
pub use email::{
    AddressFacts, CampaignReport, DkimKeyRow, EmailCampaign, EmailDomain, EmailMessage, EmailStore,
    EmailTemplate, Engaged, Engagement, MessageQuery, Suppression, VariantReport,
};
pub use events::{Activity, EventStore, TimelineFilter};
pub use graph::{GraphStore, RelScope, ScoreOrder, TouchQuery, GRAPH_VERSION};
pub use ingest::{IngestOutcome, IngestStore, IngestionIssue, SourcedMessages};
pub use insight::{Dimension, InsightStore};
pub use kb::{Article, ArticleHit, Deflection, KbStore, Revision};
pub use loyalty::{
    EntryRow, LedgerWrite, LotRow, LoyaltyStore, LoyaltyTotals, NewLot, Outcome, Redeem,
    Redemption, Reward, TierRow,
};
pub use portal::{LinkUse, PortalLink, PortalStore};
pub use privacy::{AuditEntry, AuditQuery, ErasureReport, PrivacyStore};
pub use profiles::{ConsentInput, Overview, ProfileStore, UnmergeTarget};
pub use realtime::{
    reread_persons, step_profiles, PersonLoad, PersonReads, RealtimeStore, RecentPeople, StepDone,
    StepInputs, StepQuery, StepWrites,
};
pub use referrals::{ReferralLeader, ReferralRow, ReferralStore};
pub use rules::{Firing, Outbound, RuleStore, Task};
pub use scores::{PurchaseStats, ScoreRow, ScoreStore};
pub use segments::{MembershipChange, SegmentRow, SegmentSize, SegmentStore};
pub use settings::{SettingsStore, SETTINGS_VERSION};
pub use staff::{ApiKeyRecord, KeyAccess, StaffStore, UserRow};
pub use text::{TextRow, TextStats, TextStore, CATALOGUE_VERSION};
pub use tickets::{Ticket, TicketFilter, TicketMessage, TicketStore};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Backend(String),
    /// The database refused the data itself (a value it cannot hold, past a size
    /// limit): retrying the same data cannot work, unlike a [`Backend`](Self::Backend)
    /// failure.
    #[error("the database refused the data: {0}")]
    Rejected(String),
    /// A peer the service needs (an EVM node) did not answer; retrying may work.
    #[error("{0}")]
    Unavailable(String),
    /// A heavy read ran past [`heavy_read_timeout`] and was stopped.
    #[error("the query ran longer than {} ms and was stopped: narrow it", heavy_read_timeout().as_millis())]
    TimedOut,
}

/// How long an analytical read (a segment's members, a preview) may run before the
/// database stops it, on both stores: `RAPPORT_QUERY_TIMEOUT_MS`, 30 s by default, or
/// what [`set_heavy_read_timeout`] said last.
pub fn heavy_read_timeout() -> std::time::Duration {
    std::time::Duration::from_millis(timeout_ms().load(std::sync::atomic::Ordering::Relaxed))
}

pub fn set_heavy_read_timeout(d: std::time::Duration) {
    let ms = (d.as_millis() as u64).max(1);
    timeout_ms().store(ms, std::sync::atomic::Ordering::Relaxed);
}

fn timeout_ms() -> &'static std::sync::atomic::AtomicU64 {
    static T: std::sync::OnceLock<std::sync::atomic::AtomicU64> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let ms = std::env::var("RAPPORT_QUERY_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .unwrap_or(30_000);
        std::sync::atomic::AtomicU64::new(ms)
    })
}

/// Set when dropped: a heavy read whose caller went away (a client that disconnected)
/// sees it and stops.
pub(crate) struct CancelOnDrop(pub std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl StoreError {
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            // The data broke a rule of the schema (a constraint, a trigger), or a limit.
            Some(C::TooBig | C::TypeMismatch | C::ConstraintViolation) => {
                StoreError::Rejected(e.to_string())
            }
            // Nothing was written; the same request works once space is freed.
            Some(C::DiskFull) => {
                StoreError::Unavailable(format!("the database's disk is full ({e})"))
            }
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // "db error" alone says nothing: keep the server's message.
        match e.as_db_error() {
            // Class 22 (data exception: a NUL, an untranslatable character, a number out
            // of range), 23 (a constraint: but a unique violation may be a race with
            // another process, which a retry resolves) and 54 (program limit: an index row
            // too large) are the data's.
            Some(d)
                if ["22", "23", "54"]
                    .iter()
                    .any(|c| d.code().code().starts_with(c))
                    && d.code().code() != "23505" =>
            {
                StoreError::Rejected(format!("{}: {}", d.code().code(), d.message()))
            }
            // The server is going down or starting up (57P01–57P03), lost the
            // connection (08) or ran out of disk or memory (53): retrying later works.
            Some(d)
                if ["57P", "08", "53"]
                    .iter()
                    .any(|c| d.code().code().starts_with(c)) =>
            {
                StoreError::Unavailable(format!(
                    "the database is unavailable ({}: {})",
                    d.code().code(),
                    d.message()
                ))
            }
            Some(d) => StoreError::Backend(format!("{}: {}", d.code().code(), d.message())),
            // No answer from the server at all: the connection broke.
            None if e.is_closed()
                || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()) =>
            {
                StoreError::Unavailable(format!("the database is unreachable ({e})"))
            }
            None => StoreError::Backend(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        // No connection could be had (the server is down, or every connection stayed
        // busy past the wait): the request may be retried.
        match e {
            deadpool_postgres::PoolError::Backend(pg) => pg.into(),
            other => StoreError::Unavailable(format!("no database connection: {other}")),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub use chain::{ChainBatch, ChainRollback, ChainRow, ContractRow, HoldingRow, LogRow, RewardRow};
pub use rapport_segment::sql::{Compiled, Dialect, Param};

/// The one handle the app holds: every capability's store, and what concerns the
/// database as a whole.
#[async_trait]
pub trait Store:
    IngestStore
    + ProfileStore
    + EventStore
    + SettingsStore
    + GraphStore
    + TextStore
    + SegmentStore
    + ScoreStore
    + RealtimeStore
    + RuleStore
    + ChainStore
    + StaffStore
    + EmailStore
    + PrivacyStore
    + InsightStore
    + PortalStore
    + TicketStore
    + CommunityStore
    + KbStore
    + LoyaltyStore
    + ReferralStore
    + Send
    + Sync
    + 'static
{
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;
    /// Frees the page caches of idle connections after a large read, so the next reads
    /// after a write do not pay for emptying them (SQLite: in WAL mode each read after
    /// another connection's commit drops the cache page by page and unmaps the file; a
    /// no-op elsewhere).
    async fn release_memory(&self) -> Result<()> {
        Ok(())
    }
    /// Refreshes the planner's statistics after a bulk load (the demo, an import), so the
    /// first queries after it are planned on the data as it is (PostgreSQL; a no-op where
    /// the store plans without statistics).
    async fn refresh_statistics(&self) -> Result<()> {
        Ok(())
    }
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store a URL names: `postgres://…` for PostgreSQL, otherwise a SQLite file
/// (`sqlite:///path`, or a data directory holding `rapport.db`).
pub async fn open(database_url: Option<&str>, data_dir: &std::path::Path) -> Result<DynStore> {
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(postgres::PgStore::connect(url).await?))
        }
        Some(url) => {
            let path = url.strip_prefix("sqlite://").ok_or_else(|| {
                StoreError::invalid(
                    "database_url",
                    format!(
                        "unsupported scheme in '{}': use postgres://… or sqlite://…",
                        redact(url)
                    ),
                )
            })?;
            Ok(Arc::new(sqlite::SqliteStore::open(std::path::Path::new(
                path,
            ))?))
        }
        None => {
            std::fs::create_dir_all(data_dir).map_err(|e| {
                StoreError::invalid(
                    "data_dir",
                    format!("cannot create {}: {e}", data_dir.display()),
                )
            })?;
            Ok(Arc::new(sqlite::SqliteStore::open(
                &data_dir.join("rapport.db"),
            )?))
        }
    }
}

/// A database URL with its password hidden, for logs and errors.
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &base[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &base[..s + 3], user, &base[at..]),
                None => base.to_string(),
            }
        }
        _ => base.to_string(),
    };
    // Connection parameters that are secrets (libpq's `password`, `sslpassword`, and
    // anything else naming a password or key) keep their name, not their value.
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if is_secret_param(k) => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

fn is_secret_param(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.contains("token") || k == "sslkey"
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            super::redact("postgres://u@h/db?sslmode=require&password=hunter2&PassWord=x"),
            "postgres://u@h/db?sslmode=require&password=***&PassWord=***"
        );
        assert_eq!(
            super::redact("postgres://u:p@h/db?sslpassword=k"),
            "postgres://u:***@h/db?sslpassword=***"
        );
    }
}
