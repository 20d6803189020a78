//! Scores: RFM (recency, frequency, monetary) in quintile bands, an engagement score,
//! and custom scores — weighted sums of segment-language conditions — each stored per
//! person with the explanation of its value, and usable in segments as `score.NAME`
//! (a person without a value counts as 0).

use rapport_domain::resolve::ProfileId;
use rapport_domain::time::now_millis;
use rapport_segment::{parse, sql};
use rapport_store::{DynStore, ScoreRow, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

pub const RFM_KEY: &str = "scores.rfm";
pub const CUSTOM_KEY: &str = "scores.custom";
const DAY: i64 = 86_400_000;

/// Score names the built-ins write.
pub const BUILTIN: [&str; 9] = [
    "rfm",
    "rfm_r",
    "rfm_f",
    "rfm_m",
    "rfm_recency_days",
    "rfm_frequency",
    "rfm_monetary",
    "engagement",
    crate::split_loyalty::SCORE,
];

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// What counts as a purchase for RFM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RfmConfig {
    pub event: String,
    pub revenue: String,
    pub window_days: i64,
}

impl Default for RfmConfig {
    fn default() -> Self {
        RfmConfig {
            event: "Order Completed".into(),
            revenue: "revenue".into(),
            window_days: 365,
        }
    }
}

/// One term of a custom score: points when a condition holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Term {
    pub when: String,
    pub points: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustomScore {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub terms: Vec<Term>,
}

pub async fn rfm_config(store: &DynStore) -> Result<RfmConfig, StoreError> {
    Ok(store
        .setting(RFM_KEY)
        .await?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

pub async fn set_rfm_config(store: &DynStore, body: &Value) -> Result<RfmConfig, StoreError> {
    let mut c = rfm_config(store).await?;
    if let Some(v) = body.get("event") {
        c.event = v
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 200)
            .ok_or_else(|| invalid("event", "must be an event name of 1 to 200 characters"))?
            .to_string();
    }
    if let Some(v) = body.get("revenue") {
        c.revenue = v
            .as_str()
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= 64
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
            .ok_or_else(|| {
                invalid(
                    "revenue",
                    "must be a property name of letters, digits and _",
                )
            })?
            .to_string();
    }
    if let Some(v) = body.get("window_days") {
        c.window_days = v
            .as_i64()
            .filter(|d| (1..=3650).contains(d))
            .ok_or_else(|| invalid("window_days", "must be a whole number from 1 to 3650"))?;
    }
    store
        .set_setting(
            RFM_KEY,
            serde_json::to_value(&c).unwrap_or_default(),
            now_millis(),
        )
        .await?;
    Ok(c)
}

pub async fn custom_scores(store: &DynStore) -> Result<Vec<CustomScore>, StoreError> {
    Ok(store
        .setting(CUSTOM_KEY)
        .await?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// Replaces the custom scores: `{"scores": [{"name": "lead_score", "terms": [{"when": "has email", "points": 10}, …]}]}`.
pub async fn set_custom_scores(
    store: &DynStore,
    body: &Value,
) -> Result<Vec<CustomScore>, StoreError> {
    let Some(items) = body.get("scores").and_then(Value::as_array) else {
        return Err(invalid(
            "scores",
            "is required: an array of {name, terms: [{when, points}]}",
        ));
    };
    if items.len() > 100 {
        return Err(invalid("scores", "at most 100 custom scores"));
    }
    let mut out: Vec<CustomScore> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let name = it.get("name").and_then(Value::as_str).unwrap_or("");
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err(invalid(
                format!("scores[{i}].name"),
                "must be 1 to 64 of a-z, 0-9 and _",
            ));
        }
        if BUILTIN.contains(&name) || out.iter().any(|s| s.name == name) {
            return Err(invalid(
                format!("scores[{i}].name"),
                format!("'{name}' is taken"),
            ));
        }
        let Some(terms) = it
            .get("terms")
            .and_then(Value::as_array)
            .filter(|t| !t.is_empty() && t.len() <= 50)
        else {
            return Err(invalid(
                format!("scores[{i}].terms"),
                "must be an array of 1 to 50 {when, points}",
            ));
        };
        let mut ts = Vec::new();
        for (j, t) in terms.iter().enumerate() {
            let when = t.get("when").and_then(Value::as_str).unwrap_or("");
            crate::segments::check(store, when)
                .await
                .map_err(|e| match e {
                    StoreError::Invalid { reason, .. } => {
                        invalid(format!("scores[{i}].terms[{j}].when"), reason)
                    }
                    other => other,
                })?;
            let Some(points) = t
                .get("points")
                .and_then(Value::as_f64)
                .filter(|p| p.is_finite() && p.abs() <= 1e6)
            else {
                return Err(invalid(
                    format!("scores[{i}].terms[{j}].points"),
                    "must be a number from -1000000 to 1000000",
                ));
            };
            ts.push(Term {
                when: when.to_string(),
                points,
            });
        }
        out.push(CustomScore {
            name: name.to_string(),
            description: it
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            terms: ts,
        });
    }
    store
        .set_setting(
            CUSTOM_KEY,
            serde_json::to_value(&out).unwrap_or_default(),
            now_millis(),
        )
        .await?;
    Ok(out)
}

/// Band 1..=5 of each value: 1 + ⌊5 · (values strictly worse) / n⌋, so ties share a band.
fn quintiles(values: &[f64], higher_is_better: bool) -> Vec<i64> {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = values.len().max(1) as f64;
    values
        .iter()
        .map(|&v| {
            let worse = if higher_is_better {
                sorted.partition_point(|&x| x < v)
            } else {
                sorted.len() - sorted.partition_point(|&x| x <= v)
            };
            (1 + (5.0 * worse as f64 / n).floor() as i64).min(5)
        })
        .collect()
}

/// The usual names for RFM cells.
fn rfm_label(r: i64, f: i64) -> &'static str {
    match (r, f) {
        (4..=5, 4..=5) => "champions",
        (3..=5, 3..=5) => "loyal",
        (4..=5, _) => "new or promising",
        (1..=2, 4..=5) => "at risk",
        (1..=2, 1..=2) => "hibernating",
        _ => "needs attention",
    }
}

fn row(name: &str, id: ProfileId, value: f64, explanation: Value, at: i64) -> ScoreRow {
    ScoreRow {
        name: name.to_string(),
        profile_id: id,
        value,
        explanation,
        computed_at: at,
    }
}

async fn compute_rfm(store: &DynStore, now: i64) -> Result<Vec<ScoreRow>, StoreError> {
    let c = rfm_config(store).await?;
    let stats = store
        .purchase_stats(&c.event, &c.revenue, now - c.window_days * DAY, now)
        .await?;
    let recency: Vec<f64> = stats
        .iter()
        .map(|s| ((now - s.last_at) as f64 / DAY as f64).max(0.0))
        .collect();
    let freq: Vec<f64> = stats.iter().map(|s| s.count as f64).collect();
    let money: Vec<f64> = stats.iter().map(|s| s.sum).collect();
    let (rb, fb, mb) = (
        quintiles(&recency, false),
        quintiles(&freq, true),
        quintiles(&money, true),
    );
    let mut out = Vec::with_capacity(stats.len() * 7);
    for (k, s) in stats.iter().enumerate() {
        let (r, f, m) = (rb[k], fb[k], mb[k]);
        let why = json!({
            "recency_days": (recency[k] * 10.0).round() / 10.0,
            "frequency": s.count,
            "monetary": s.sum,
            "bands": {"r": r, "f": f, "m": m},
            "label": rfm_label(r, f),
            "event": c.event,
            "revenue_property": c.revenue,
            "window_days": c.window_days,
            "how": "bands 1-5 are quintiles among everyone with such an event; recency: fewer days is better",
        });
        let id = s.profile_id;
        out.push(row(
            "rfm",
            id,
            (r * 100 + f * 10 + m) as f64,
            why.clone(),
            now,
        ));
        out.push(row("rfm_r", id, r as f64, why.clone(), now));
        out.push(row("rfm_f", id, f as f64, why.clone(), now));
        out.push(row("rfm_m", id, m as f64, why.clone(), now));
        out.push(row("rfm_recency_days", id, recency[k], why.clone(), now));
        out.push(row("rfm_frequency", id, s.count as f64, why.clone(), now));
        out.push(row("rfm_monetary", id, s.sum, why, now));
    }
    Ok(out)
}

/// Engagement 0..100: the share of active people with fewer active days in the last 30
/// days, so 100 is the most engaged.
async fn compute_engagement(store: &DynStore, now: i64) -> Result<Vec<ScoreRow>, StoreError> {
    let days = store.active_days_all(now - 30 * DAY).await?;
    let values: Vec<f64> = days.iter().map(|d| d.1 as f64).collect();
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    let n = values.len().max(1) as f64;
    Ok(days
        .iter()
        .zip(&values)
        .map(|((id, d), v)| {
            let below = sorted.partition_point(|x| x < v) as f64;
            let pct = (100.0 * below / n).round();
            row(
                "engagement",
                *id,
                pct,
                json!({"active_days_30d": d, "people_less_active_pct": pct, "how": "share of active people with fewer active days in the last 30 days"}),
                now,
            )
        })
        .collect())
}

async fn compute_custom(
    store: &DynStore,
    s: &CustomScore,
    now: i64,
) -> Result<Vec<ScoreRow>, StoreError> {
    let mut acc: HashMap<ProfileId, (f64, Vec<Value>)> = HashMap::new();
    for t in &s.terms {
        let e = parse(&t.when).map_err(|e| invalid("when", e.to_string()))?;
        for id in store
            .segment_all_matches(sql::compile(&e, store.dialect(), now))
            .await?
        {
            let a = acc.entry(id).or_default();
            a.0 += t.points;
            a.1.push(json!({"when": t.when, "points": t.points}));
        }
    }
    Ok(acc
        .into_iter()
        .map(|(id, (v, terms))| {
            row(
                &s.name,
                id,
                v,
                json!({"terms": terms, "how": "sum of the points of the terms that hold"}),
                now,
            )
        })
        .collect())
}

/// Recomputes every score; returns the number of values stored.
pub async fn recompute(store: &DynStore) -> Result<usize, StoreError> {
    let now = now_millis();
    let mut rows = compute_rfm(store, now).await?;
    rows.extend(compute_engagement(store, now).await?);
    let rfm = rfm_config(store).await?;
    rows.extend(
        crate::split_loyalty::compute(store, (&rfm.event, &rfm.revenue, rfm.window_days), now)
            .await?,
    );
    let mut names: Vec<String> = BUILTIN.iter().map(|s| s.to_string()).collect();
    for s in custom_scores(store).await? {
        rows.extend(compute_custom(store, &s, now).await?);
        names.push(s.name.clone());
    }
    let n = rows.len();
    store.replace_scores(names, rows).await?;
    crate::changes::announce(store, crate::changes::Change::Scores).await?;
    // Everyone was read: not left for the next reads after a write to drop (SQLite).
    store.release_memory().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quintile_bands() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quintiles(&v, true), vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        assert_eq!(quintiles(&v, false), vec![5, 5, 4, 4, 3, 3, 2, 2, 1, 1]);
        assert_eq!(quintiles(&[3.0, 3.0, 3.0], true), vec![1, 1, 1]);
        assert_eq!(rfm_label(5, 5), "champions");
        assert_eq!(rfm_label(1, 5), "at risk");
    }
}
