//! Aggregate-only ("black box") audience insight for partners: audience sizes and
//! breakdowns, never a person. Every number is released with Laplace noise
//! (ε-differential privacy: one person changes a count by at most 1) against a daily
//! budget per key, and withheld when the noisy number is below the minimum group size
//! k. Parameters and their reasons: docs/privacy.md.

use rand::Rng;
use rapport_domain::privacy::noisy_count;
use rapport_domain::time::now_millis;
use rapport_segment::sql;
use rapport_store::{Compiled, Dimension, DynStore, StoreError};
use serde::{Deserialize, Serialize};

const SETTINGS_KEY: &str = "insight";
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InsightSettings {
    /// Numbers whose noisy value is below this are withheld (≥ 10; default 50).
    pub min_group: u64,
    /// ε spent by each query (0 < ε ≤ 1; default 0.1: noise of scale 10).
    pub epsilon: f64,
    /// ε a key may spend per day (UTC) (ε ≤ budget ≤ 10; default 1: ten queries).
    pub daily_budget: f64,
}

impl Default for InsightSettings {
    fn default() -> Self {
        InsightSettings {
            min_group: 50,
            epsilon: 0.1,
            daily_budget: 1.0,
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::invalid(field, reason)
}

impl InsightSettings {
    pub fn check(&self) -> Result<(), StoreError> {
        if self.min_group < 10 {
            return Err(invalid("min_group", "must be at least 10"));
        }
        if !(self.epsilon > 0.0 && self.epsilon <= 1.0) {
            return Err(invalid("epsilon", "must be above 0 and at most 1"));
        }
        if !(self.daily_budget >= self.epsilon && self.daily_budget <= 10.0) {
            return Err(invalid(
                "daily_budget",
                "must be at least epsilon and at most 10",
            ));
        }
        Ok(())
    }
}

pub async fn settings(store: &DynStore) -> Result<InsightSettings, StoreError> {
    Ok(match store.setting(SETTINGS_KEY).await? {
        Some(v) => serde_json::from_value(v).unwrap_or_default(),
        None => InsightSettings::default(),
    })
}

pub async fn set_settings(store: &DynStore, s: InsightSettings) -> Result<(), StoreError> {
    s.check()?;
    let v = serde_json::to_value(&s).map_err(|e| StoreError::Backend(e.to_string()))?;
    store.set_setting(SETTINGS_KEY, v, now_millis()).await
}

#[derive(Debug, thiserror::Error)]
pub enum InsightError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key's budget for today is spent; it renews after `retry_after_s`.
    #[error(
        "the daily privacy budget of this key (ε = {budget}) is spent; it renews at 00:00 UTC"
    )]
    BudgetSpent { budget: f64, retry_after_s: u64 },
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Audience {
    /// The noisy count; null when withheld.
    pub count: Option<u64>,
    pub suppressed: bool,
    /// Why a number was withheld.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub epsilon_spent: f64,
    pub budget_left: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Group {
    /// The group's value; null for people without one.
    pub value: Option<String>,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Breakdown {
    pub by: String,
    /// Groups whose noisy count reaches the minimum group size, largest first.
    pub groups: Vec<Group>,
    /// Whether smaller groups were withheld (their values are not shown either).
    pub suppressed: bool,
    pub epsilon_spent: f64,
    pub budget_left: f64,
}

fn everyone() -> Compiled {
    Compiled {
        condition: "1 = 1".into(),
        params: Vec::new(),
        event_sets: 0,
    }
}

async fn compile(store: &DynStore, definition: &str) -> Result<Compiled, StoreError> {
    if definition.trim().is_empty() {
        return Ok(everyone());
    }
    let e = crate::segments::check(store, definition).await?;
    Ok(sql::compile(&e, store.dialect(), now_millis()))
}

/// Spends one query's ε of `key`'s budget for today; returns (spent, left).
async fn spend(
    store: &DynStore,
    key: i64,
    s: &InsightSettings,
) -> Result<(f64, f64), InsightError> {
    let now = now_millis();
    let day = now.div_euclid(DAY_MS);
    match store.spend(key, day, s.epsilon, s.daily_budget).await? {
        Some(spent) => Ok((s.epsilon, (s.daily_budget - spent).max(0.0))),
        None => Err(InsightError::BudgetSpent {
            budget: s.daily_budget,
            retry_after_s: (((day + 1) * DAY_MS - now) / 1000).max(1) as u64,
        }),
    }
}

fn uniform() -> f64 {
    // thread_rng is a CSPRNG (ChaCha), reseeded from the OS.
    rand::thread_rng().gen::<f64>()
}

/// How many people a definition selects, with noise; withheld below k. The definition
/// is checked before any budget is spent; every answered query spends ε.
pub async fn audience(
    store: &DynStore,
    key: i64,
    definition: &str,
) -> Result<Audience, InsightError> {
    let s = settings(store).await?;
    let c = compile(store, definition).await?;
    let (spent, left) = spend(store, key, &s).await?;
    let (exact, _) = store.segment_matches(c, 0).await?;
    let noisy = noisy_count(exact.max(0) as u64, s.epsilon, uniform());
    let suppressed = noisy < s.min_group;
    Ok(Audience {
        count: (!suppressed).then_some(noisy),
        suppressed,
        reason: suppressed.then(|| {
            format!(
                "fewer than {} people: numbers below the minimum group size are withheld",
                s.min_group
            )
        }),
        epsilon_spent: spent,
        budget_left: left,
    })
}

/// The audience broken down by `by` (`traits.<key>`, `country`, `tier`, `community`,
/// `channel`): each person is in one group, so one ε covers all groups (parallel
/// composition); each group's count is noisy and small groups are withheld.
pub async fn breakdown(
    store: &DynStore,
    key: i64,
    definition: &str,
    by: &str,
) -> Result<Breakdown, InsightError> {
    let dim = Dimension::parse(by).ok_or_else(|| {
        invalid(
            "by",
            "must be traits.<key>, country, tier, community or channel",
        )
    })?;
    let s = settings(store).await?;
    let c = compile(store, definition).await?;
    let (spent, left) = spend(store, key, &s).await?;
    let rows = store.breakdown(c, dim).await?;
    let mut groups = Vec::new();
    let mut suppressed = false;
    for (value, exact) in rows {
        let noisy = noisy_count(exact.max(0) as u64, s.epsilon, uniform());
        if noisy < s.min_group {
            suppressed = true;
        } else {
            groups.push(Group {
                value,
                count: noisy,
            });
        }
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
    Ok(Breakdown {
        by: by.to_string(),
        groups,
        suppressed,
        epsilon_spent: spent,
        budget_left: left,
    })
}
