//! Website tracking: the brand's `web` settings and the guard every request made with a
//! browser write key passes — its origin against the key's allow-list, rate limits
//! per key and per client address, and bots dropped. A browser key is public (it is in
//! the page's source), so these are what stop one visitor, or one copied key, from
//! hurting everyone else. Server keys are secrets and pass unchecked.

use crate::metrics::metrics;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rapport_domain::apikey::{normalise_origin, Trust};
use rapport_domain::time::now_millis;
use rapport_domain::web::IpPolicy;
use rapport_domain::FieldError;
use rapport_store::{ApiKeyRecord, DynStore, KeyAccess, StoreError};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// The settings key the web settings are stored under.
pub const SETTINGS_KEY: &str = "web";
/// How long a process keeps the settings before re-reading them (another process may
/// have changed them; this one refreshes at once).
const SETTINGS_TTL: Duration = Duration::from_secs(10);

/// The brand's website-tracking settings (`GET`/`PUT /api/settings/web`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WebSettings {
    /// How much of a client's address its events keep: `full`, `truncate` (IPv4 /24,
    /// IPv6 /48; the default) or `none`.
    #[schema(value_type = String, example = "truncate")]
    pub ip: IpPolicy,
    /// Requests per second one browser key may make, across all its visitors.
    pub rate_per_key: u32,
    /// Requests per second one client address may make with a browser key.
    pub rate_per_address: u32,
    /// Keep events whose user agent is a known bot or crawler (dropped by default).
    pub keep_bots: bool,
    /// Take the client address from the last `X-Forwarded-For` entry: turn on only
    /// behind a reverse proxy that sets it, or clients choose their own address.
    pub trust_forwarded_for: bool,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            ip: IpPolicy::Truncate,
            rate_per_key: 1000,
            rate_per_address: 20,
            keep_bots: false,
            trust_forwarded_for: false,
        }
    }
}

impl WebSettings {
    fn validate(&self) -> Result<(), FieldError> {
        for (field, v) in [
            ("rate_per_key", self.rate_per_key),
            ("rate_per_address", self.rate_per_address),
        ] {
            if !(1..=1_000_000).contains(&v) {
                return Err(FieldError::new(
                    field,
                    format!("{v} is out of range: 1 to 1000000 requests per second"),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{0}")]
    Invalid(FieldError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a browser request was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The page's origin is not on the key's allow-list (403).
    Origin(String),
    /// Past a rate limit (429); try again after this long.
    RateLimited {
        who: &'static str,
        retry_after: Duration,
    },
    /// A bot's user agent: answered 200 (so it does not retry) and not stored.
    Bot,
}

/// What the HTTP layer knows about a request.
pub struct Request<'a> {
    pub origin: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
}

struct Limits {
    quota: (u32, u32),
    per_key: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    checks: u32,
}

impl Limits {
    fn new(per_key: u32, per_address: u32) -> Limits {
        // A second's worth of requests may come at once (a page load sends several).
        let quota =
            |n: u32| Quota::per_second(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        Limits {
            quota: (per_key, per_address),
            per_key: RateLimiter::keyed(quota(per_key)),
            per_address: RateLimiter::keyed(quota(per_address)),
            checks: 0,
        }
    }
}

/// The guard, one per process: settings kept [`SETTINGS_TTL`], limiters in memory.
pub struct Guard {
    store: DynStore,
    settings: RwLock<Option<(WebSettings, Instant)>>,
    limits: Mutex<Limits>,
    bots: isbot::Bots,
}

impl Guard {
    pub fn new(store: DynStore) -> Guard {
        let d = WebSettings::default();
        Guard {
            store,
            settings: RwLock::new(None),
            limits: Mutex::new(Limits::new(d.rate_per_key, d.rate_per_address)),
            bots: {
                let mut b = isbot::Bots::default();
                // Android apps send through OkHttp: its user agent is an app's, not a bot's.
                b.remove(&["okhttp"]);
                b
            },
        }
    }

    /// The current settings (defaults where never set).
    pub async fn settings(&self) -> Result<WebSettings, StoreError> {
        if let Ok(s) = self.settings.read() {
            if let Some((w, at)) = s.as_ref() {
                if at.elapsed() < SETTINGS_TTL {
                    return Ok(w.clone());
                }
            }
        }
        let w = load(&self.store).await?;
        self.remember(&w);
        Ok(w)
    }

    fn remember(&self, w: &WebSettings) {
        if let Ok(mut s) = self.settings.write() {
            *s = Some((w.clone(), Instant::now()));
        }
    }

    /// Validates and stores new settings; this process uses them at once.
    pub async fn set_settings(&self, w: WebSettings) -> Result<WebSettings, WebError> {
        w.validate().map_err(WebError::Invalid)?;
        let value = serde_json::to_value(&w).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.store
            .set_setting(SETTINGS_KEY, value, now_millis())
            .await?;
        self.remember(&w);
        Ok(w)
    }

    /// Checks a request made with `key`. Server keys always pass.
    pub fn check(
        &self,
        key: &ApiKeyRecord,
        req: &Request<'_>,
        settings: &WebSettings,
    ) -> Result<(), Refusal> {
        if key.access.trust != Trust::Browser {
            return Ok(());
        }
        let refused = |r: Refusal, reason: &str| {
            metrics().events_rejected.with_label_values(&[reason]).inc();
            Err(r)
        };
        if !key.access.origins.is_empty() {
            let origin = req.origin.and_then(normalise_origin);
            if !origin
                .as_ref()
                .is_some_and(|o| key.access.origins.contains(o))
            {
                let shown = req.origin.unwrap_or("(none)").chars().take(200).collect();
                return refused(Refusal::Origin(shown), "origin");
            }
        }
        if !settings.keep_bots && req.user_agent.is_some_and(|ua| self.bots.is_bot(ua)) {
            return refused(Refusal::Bot, "bot");
        }
        let Ok(mut limits) = self.limits.lock() else {
            return Ok(());
        };
        let quota = (settings.rate_per_key, settings.rate_per_address);
        if limits.quota != quota {
            *limits = Limits::new(quota.0, quota.1);
        }
        // Forget idle clients now and then, so memory follows the active ones.
        limits.checks = limits.checks.wrapping_add(1);
        if limits.checks % 4096 == 0 {
            limits.per_address.retain_recent();
            limits.per_address.shrink_to_fit();
        }
        let now = DefaultClock::default().now();
        let by_address = req.ip.map(|ip| limits.per_address.check_key(&ip));
        let limited = match by_address {
            Some(Err(wait)) => Some(("address", wait)),
            _ => limits
                .per_key
                .check_key(&key.prefix)
                .err()
                .map(|w| ("key", w)),
        };
        if let Some((who, wait)) = limited {
            let retry_after = wait.wait_time_from(now);
            return refused(Refusal::RateLimited { who, retry_after }, "rate_limited");
        }
        Ok(())
    }
}

/// The stored settings, defaults for what was never set.
pub async fn load(store: &DynStore) -> Result<WebSettings, StoreError> {
    Ok(store
        .setting(SETTINGS_KEY)
        .await?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// Validates a key's trust level and origins into what is stored: origins normalised
/// (`https://Shop.example/` → `https://shop.example`), duplicates dropped, a field path
/// in the error for the first bad one.
pub fn key_access(
    trust: Option<Trust>,
    origins: Option<Vec<String>>,
) -> Result<KeyAccess, FieldError> {
    let mut out: Vec<String> = Vec::new();
    let origins = origins.unwrap_or_default();
    if origins.len() > 100 {
        return Err(FieldError::new("origins", "at most 100 origins per key"));
    }
    for (i, o) in origins.iter().enumerate() {
        let n = normalise_origin(o).ok_or_else(|| {
            FieldError::new(
                format!("origins[{i}]"),
                format!("'{o}' is not an origin: scheme and host, e.g. https://shop.example"),
            )
        })?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(KeyAccess {
        trust: trust.unwrap_or_default(),
        origins: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(trust: Trust, origins: &[&str]) -> ApiKeyRecord {
        ApiKeyRecord {
            id: 1,
            prefix: "rk_w_abc".into(),
            scope: rapport_domain::apikey::Scope::Write,
            label: String::new(),
            created_at: 0,
            revoked: false,
            access: KeyAccess {
                trust,
                origins: origins.iter().map(|s| s.to_string()).collect(),
            },
        }
    }

    fn guard() -> (Guard, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            rapport_store::sqlite::SqliteStore::open(&dir.path().join("db.sqlite")).expect("store");
        (Guard::new(std::sync::Arc::new(store)), dir)
    }

    const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";

    fn req<'a>(origin: Option<&'a str>, ip: &str, ua: &'a str) -> Request<'a> {
        Request {
            origin,
            ip: ip.parse().ok(),
            user_agent: Some(ua),
        }
    }

    #[test]
    fn origins_bots_and_rates_hold_browser_keys_only() {
        let (g, _dir) = guard();
        let s = WebSettings {
            rate_per_address: 3,
            ..Default::default()
        };
        let browser = key(Trust::Browser, &["https://shop.example"]);
        let server = key(Trust::Server, &["https://shop.example"]);
        let ok = req(Some("https://SHOP.example"), "203.0.113.1", CHROME);
        assert_eq!(g.check(&browser, &ok, &s), Ok(()));
        let other = req(Some("https://evil.example"), "203.0.113.1", CHROME);
        assert_eq!(
            g.check(&browser, &other, &s),
            Err(Refusal::Origin("https://evil.example".into()))
        );
        let none = req(None, "203.0.113.1", CHROME);
        assert!(matches!(
            g.check(&browser, &none, &s),
            Err(Refusal::Origin(_))
        ));
        assert_eq!(g.check(&server, &other, &s), Ok(()));
        let bot = req(
            Some("https://shop.example"),
            "203.0.113.9",
            "Googlebot/2.1 (+http://www.google.com/bot.html)",
        );
        assert_eq!(g.check(&browser, &bot, &s), Err(Refusal::Bot));
        let app = req(None, "203.0.113.8", "okhttp/4.12.0");
        let any_origin = key(Trust::Browser, &[]);
        assert_eq!(
            g.check(&any_origin, &app, &s),
            Ok(()),
            "an Android app is no bot"
        );
        let keep = WebSettings {
            keep_bots: true,
            ..s.clone()
        };
        assert_eq!(g.check(&browser, &bot, &keep), Ok(()));
        // Three a second from one address (one already used above), then 429.
        assert_eq!(g.check(&browser, &ok, &s), Ok(()));
        assert_eq!(g.check(&browser, &ok, &s), Ok(()));
        match g.check(&browser, &ok, &s) {
            Err(Refusal::RateLimited {
                who: "address",
                retry_after,
            }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1))
            }
            other => panic!("{other:?}"),
        }
        // Another address is not held back by the first; the server key never is.
        assert_eq!(
            g.check(
                &browser,
                &req(Some("https://shop.example"), "203.0.113.2", CHROME),
                &s
            ),
            Ok(())
        );
        for _ in 0..10 {
            assert_eq!(g.check(&server, &ok, &s), Ok(()));
        }
        // Per key: across addresses.
        let tight = WebSettings {
            rate_per_key: 2,
            rate_per_address: 100,
            ..s
        };
        let any = key(Trust::Browser, &[]);
        assert_eq!(
            g.check(&any, &req(None, "198.51.100.1", CHROME), &tight),
            Ok(())
        );
        assert_eq!(
            g.check(&any, &req(None, "198.51.100.2", CHROME), &tight),
            Ok(())
        );
        assert!(matches!(
            g.check(&any, &req(None, "198.51.100.3", CHROME), &tight),
            Err(Refusal::RateLimited { who: "key", .. })
        ));
    }

    #[test]
    fn settings_are_validated_and_kept() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (g, _dir) = guard();
            assert_eq!(g.settings().await.unwrap(), WebSettings::default());
            let bad = WebSettings {
                rate_per_address: 0,
                ..Default::default()
            };
            match g.set_settings(bad).await {
                Err(WebError::Invalid(e)) => assert_eq!(e.field, "rate_per_address"),
                other => panic!("{other:?}"),
            }
            let w = WebSettings {
                ip: IpPolicy::None,
                keep_bots: true,
                ..Default::default()
            };
            g.set_settings(w.clone()).await.unwrap();
            assert_eq!(g.settings().await.unwrap(), w);
            assert_eq!(load(&g.store).await.unwrap(), w);
        });
    }

    #[test]
    fn key_access_normalises_origins() {
        let a = key_access(
            Some(Trust::Browser),
            Some(vec![
                "https://Shop.example/".into(),
                "https://shop.example".into(),
                "http://localhost:3000".into(),
            ]),
        )
        .unwrap();
        assert_eq!(
            a.origins,
            vec!["https://shop.example", "http://localhost:3000"]
        );
        assert_eq!(a.trust, Trust::Browser);
        let e = key_access(
            None,
            Some(vec!["https://a.example".into(), "shop.example".into()]),
        )
        .unwrap_err();
        assert_eq!(e.field, "origins[1]");
        assert_eq!(key_access(None, None).unwrap(), KeyAccess::default());
    }
}
