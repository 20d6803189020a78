//! Announcements of what changed outside the event stream.
//!
//! A write that does not go through ingestion (a trait edit, a merge, a score run, a
//! batch refresh, a chain re-org) says here what kind of thing it changed; followers —
//! today the real-time engine — read the announcements and re-read what they hold.
//! Writers never call a follower, so no service reaches into another's state and the
//! modules' imports form no circle.
//!
//! Announcements are stamps in named counters of the store, not an in-process channel:
//! `rapport serve` may run as several processes over one PostgreSQL (API nodes beside a
//! worker), and a counter is seen by all of them, survives a restart, and costs the
//! follower nothing extra (it reads the counters with each step's inputs).

use rapport_store::{DynStore, StoreError};

/// What kind of thing changed, for everyone it may concern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// People's standing — profile, traits, consents, identities, memberships, scores or
    /// holdings — changed; their history did not.
    Standing,
    /// Computed or network scores changed, and nothing else (the score and graph runs).
    Scores,
    /// Events left people's history (a chain re-org retracted them).
    Retracted,
}

impl Change {
    pub const ALL: [Change; 3] = [Change::Standing, Change::Scores, Change::Retracted];

    /// The store counter that carries this announcement's latest stamp.
    pub const fn counter(self) -> &'static str {
        match self {
            Change::Standing => "people.generation",
            Change::Scores => "people.scores",
            Change::Retracted => "people.reset",
        }
    }
}

/// Announces a change: stamps its counter with the current time (nanoseconds), so a
/// follower that saw an older stamp knows to re-read.
pub async fn announce(store: &DynStore, change: Change) -> Result<(), StoreError> {
    store.set_counter(change.counter(), stamp()).await
}

fn stamp() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::Change;

    #[test]
    fn each_change_has_its_own_counter() {
        let mut names: Vec<_> = Change::ALL.iter().map(|c| c.counter()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Change::ALL.len());
    }
}
