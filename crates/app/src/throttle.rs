//! Sign-in throttling, for staff now and customers' portal later: after a few failed
//! attempts on one account, or from one client address, further attempts wait, the wait
//! doubling with each failure (capped); a success clears the account. What is throttled
//! is the attempt, before the password is checked, so a guesser learns nothing while
//! waiting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before waits begin.
pub const FREE_FAILURES_ACCOUNT: u32 = 5;
pub const FREE_FAILURES_ADDRESS: u32 = 20;
/// The first wait, doubled with each further failure up to [`MAX_WAIT`].
pub const FIRST_WAIT: Duration = Duration::from_secs(1);
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const MEMORY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    until: Instant,
}

/// Failures by account and by address, in memory (one process: a server restart
/// forgets them, which costs a guesser little).
#[derive(Default)]
pub struct SignIns {
    accounts: Mutex<HashMap<String, Record>>,
    addresses: Mutex<HashMap<IpAddr, Record>>,
}

fn wait_for(failures: u32, free: u32) -> Duration {
    if failures < free {
        return Duration::ZERO;
    }
    let doublings = (failures - free).min(20);
    FIRST_WAIT.saturating_mul(1 << doublings).min(MAX_WAIT)
}

fn remaining<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Record>>,
    k: &K,
    now: Instant,
) -> Duration {
    map.lock()
        .ok()
        .and_then(|m| m.get(k).map(|r| r.until.saturating_duration_since(now)))
        .unwrap_or_default()
}

fn fail<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, Record>>, k: K, free: u32, now: Instant) {
    let Ok(mut m) = map.lock() else { return };
    if m.len() > 100_000 {
        m.retain(|_, r| now.duration_since(r.last) < MEMORY);
    }
    let r = m.entry(k).or_insert(Record {
        failures: 0,
        last: now,
        until: now,
    });
    if now.duration_since(r.last) >= MEMORY {
        r.failures = 0;
    }
    r.failures += 1;
    r.last = now;
    r.until = now + wait_for(r.failures, free);
}

impl SignIns {
    /// How long an attempt on `account` from `ip` must wait (zero: go ahead).
    pub fn wait(&self, account: &str, ip: Option<IpAddr>) -> Duration {
        self.wait_at(account, ip, Instant::now())
    }

    fn wait_at(&self, account: &str, ip: Option<IpAddr>, now: Instant) -> Duration {
        let a = remaining(&self.accounts, &normalise(account), now);
        let b = ip
            .map(|ip| remaining(&self.addresses, &ip, now))
            .unwrap_or_default();
        a.max(b)
    }

    pub fn failed(&self, account: &str, ip: Option<IpAddr>) {
        self.failed_at(account, ip, Instant::now())
    }

    fn failed_at(&self, account: &str, ip: Option<IpAddr>, now: Instant) {
        fail(
            &self.accounts,
            normalise(account),
            FREE_FAILURES_ACCOUNT,
            now,
        );
        if let Some(ip) = ip {
            fail(&self.addresses, ip, FREE_FAILURES_ADDRESS, now);
        }
    }

    /// A successful sign-in clears the account (not the address: one success does not
    /// excuse a thousand guesses at other accounts).
    pub fn succeeded(&self, account: &str) {
        if let Ok(mut m) = self.accounts.lock() {
            m.remove(&normalise(account));
        }
    }
}

fn normalise(account: &str) -> String {
    account.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_begin_after_the_free_failures_and_double() {
        assert_eq!(wait_for(4, 5), Duration::ZERO);
        assert_eq!(wait_for(5, 5), Duration::from_secs(1));
        assert_eq!(wait_for(6, 5), Duration::from_secs(2));
        assert_eq!(wait_for(9, 5), Duration::from_secs(16));
        assert_eq!(wait_for(40, 5), MAX_WAIT);
    }

    #[test]
    fn accounts_and_addresses_are_held_apart() {
        let s = SignIns::default();
        let t0 = Instant::now();
        let ip: Option<IpAddr> = "203.0.113.5".parse().ok();
        for _ in 0..FREE_FAILURES_ACCOUNT - 1 {
            s.failed_at("Ann@x.io", ip, t0);
        }
        assert_eq!(s.wait_at("ann@x.io", ip, t0), Duration::ZERO);
        s.failed_at("ann@x.io ", ip, t0);
        assert_eq!(s.wait_at("ANN@x.io", None, t0), Duration::from_secs(1));
        // Another account from another address is not held.
        assert_eq!(
            s.wait_at("bob@x.io", "198.51.100.1".parse().ok(), t0),
            Duration::ZERO
        );
        // Waits run out; a success clears the account.
        assert_eq!(
            s.wait_at("ann@x.io", None, t0 + Duration::from_secs(2)),
            Duration::ZERO
        );
        s.succeeded("ann@x.io");
        s.failed_at("ann@x.io", None, t0);
        assert_eq!(s.wait_at("ann@x.io", None, t0), Duration::ZERO);
        // Many accounts from one address: the address is held.
        for i in 0..FREE_FAILURES_ADDRESS {
            s.failed_at(&format!("user{i}@x.io"), ip, t0);
        }
        assert!(s.wait_at("new@x.io", ip, t0) > Duration::ZERO);
        assert_eq!(
            s.wait_at("new@x.io", "198.51.100.1".parse().ok(), t0),
            Duration::ZERO
        );
        // Old failures are forgotten.
        let later = t0 + MEMORY + Duration::from_secs(1);
        s.failed_at("user0@x.io", None, later);
        assert_eq!(s.wait_at("user0@x.io", None, later), Duration::ZERO);
    }
}
