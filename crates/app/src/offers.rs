//! Next best offer: offers with an eligibility condition (segment language), a priority
//! and a score (weighted conditions, like custom scores). For a person, the eligible
//! offers are ranked by priority, then score; the first is the next best offer. The
//! real-time worker decides on every event and keeps the person's `next_best_offer`
//! trait current, so segments, rules and the timeline see it.

use crate::scores::Term;
use crate::segments::person;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::now_millis;
use rapport_segment::eval::{self, Person};
use rapport_segment::{parse, Expr};
use rapport_store::{DynStore, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const OFFERS_KEY: &str = "offers";
/// The trait the worker keeps current.
pub const TRAIT: &str = "next_best_offer";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Offer {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Who may get it (segment language); everyone when empty.
    #[serde(default)]
    pub eligible: String,
    /// Higher first.
    #[serde(default)]
    pub priority: i64,
    /// Points for conditions that hold, added up.
    #[serde(default)]
    pub score: Vec<Term>,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

pub async fn offers(store: &DynStore) -> Result<Vec<Offer>, StoreError> {
    Ok(store
        .setting(OFFERS_KEY)
        .await?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

async fn checked(store: &DynStore, src: &str, field: String) -> Result<Expr, StoreError> {
    crate::segments::check(store, src)
        .await
        .map_err(|e| match e {
            StoreError::Invalid { reason, .. } => invalid(field, reason),
            other => other,
        })
}

/// Replaces the offers: `{"offers": [{"name", "eligible", "priority", "score": [{"when", "points"}]}]}`.
pub async fn set_offers(store: &DynStore, body: &Value) -> Result<Vec<Offer>, StoreError> {
    let Some(items) = body.get("offers").and_then(Value::as_array) else {
        return Err(invalid("offers", "is required: an array of offers"));
    };
    if items.len() > 200 {
        return Err(invalid("offers", "at most 200 offers"));
    }
    let mut out: Vec<Offer> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let o: Offer = serde_json::from_value(it.clone())
            .map_err(|e| invalid(format!("offers[{i}]"), e.to_string()))?;
        if o.name.trim().is_empty() || o.name.len() > 100 || out.iter().any(|x| x.name == o.name) {
            return Err(invalid(
                format!("offers[{i}].name"),
                "must be a unique name of 1 to 100 characters",
            ));
        }
        if !o.eligible.trim().is_empty() {
            checked(store, &o.eligible, format!("offers[{i}].eligible")).await?;
        }
        for (j, t) in o.score.iter().enumerate() {
            checked(store, &t.when, format!("offers[{i}].score[{j}].when")).await?;
        }
        out.push(o);
    }
    store
        .set_setting(
            OFFERS_KEY,
            serde_json::to_value(&out).unwrap_or_default(),
            now_millis(),
        )
        .await?;
    Ok(out)
}

/// An offer with its conditions parsed once (the real-time engine decides on every event).
pub(crate) struct CompiledOffer {
    offer: Offer,
    /// `None`: everyone; a condition that does not parse holds for nobody.
    eligible: Option<Option<Expr>>,
    terms: Vec<(usize, Option<Expr>)>,
}

impl CompiledOffer {
    /// Gives the conditions' selectors slots in the engine's event index.
    /// The selectors its conditions read from a person's history.
    pub(crate) fn history_selectors(&self) -> Vec<&rapport_segment::ast::EventSel> {
        let eligible = self.eligible.iter().flatten();
        let terms = self.terms.iter().filter_map(|(_, t)| t.as_ref());
        eligible
            .chain(terms)
            .flat_map(rapport_segment::referenced_selectors)
            .collect()
    }

    pub(crate) fn slot(&mut self, table: &mut Vec<rapport_segment::ast::EventSel>) {
        if let Some(Some(e)) = self.eligible.as_mut() {
            rapport_segment::assign_slots(e, table);
        }
        for (_, t) in &mut self.terms {
            if let Some(e) = t.as_mut() {
                rapport_segment::assign_slots(e, table);
            }
        }
    }
}

fn compile(offers: &[Offer]) -> Vec<CompiledOffer> {
    offers
        .iter()
        .map(|o| CompiledOffer {
            offer: o.clone(),
            eligible: (!o.eligible.trim().is_empty()).then(|| parse(&o.eligible).ok()),
            terms: o
                .score
                .iter()
                .enumerate()
                .map(|(i, t)| (i, parse(&t.when).ok()))
                .collect(),
        })
        .collect()
}

/// The saved offers, parsed.
pub(crate) async fn compiled(store: &DynStore) -> Result<Vec<CompiledOffer>, StoreError> {
    Ok(compile(&offers(store).await?))
}

/// Every eligible offer for a person, best first, each with its score and the terms that
/// made it.
pub fn rank(offers: &[Offer], p: &Person, now: i64) -> Vec<Value> {
    rank_compiled(&compile(offers), p, now)
}

fn rank_compiled(offers: &[CompiledOffer], p: &Person, now: i64) -> Vec<Value> {
    let holds = |e: &Option<Expr>| e.as_ref().is_some_and(|e| eval::eval(e, p, now));
    let mut ranked: Vec<(i64, f64, Value)> = offers
        .iter()
        .filter(|c| c.eligible.as_ref().is_none_or(holds))
        .map(|c| {
            let o = &c.offer;
            let terms: Vec<&Term> = c
                .terms
                .iter()
                .filter(|(_, e)| holds(e))
                .map(|(i, _)| &o.score[*i])
                .collect();
            let score: f64 = terms.iter().map(|t| t.points).sum();
            (
                o.priority,
                score,
                json!({"offer": o.name, "description": o.description, "priority": o.priority, "score": score,
                    "why": terms.iter().map(|t| json!({"when": t.when, "points": t.points})).collect::<Vec<_>>()}),
            )
        })
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)));
    ranked.into_iter().map(|r| r.2).collect()
}

/// The next best offer for a person and the other eligible ones.
pub async fn next_best(store: &DynStore, id: ProfileId) -> Result<Value, StoreError> {
    let os = offers(store).await?;
    let p = person(store, id).await?;
    let ranked = rank(&os, &p, now_millis());
    Ok(json!({"profile_id": id, "offer": ranked.first().cloned(), "eligible": ranked}))
}

/// Re-decides for a person whose state changed and keeps the `next_best_offer` trait
/// current (in memory now, in the store at the step's end). Returns whether it moved.
pub(crate) fn decide_in_memory(
    offers: &[CompiledOffer],
    id: ProfileId,
    p: &mut Person,
    now: i64,
    effects: &mut crate::rules::Effects,
) -> bool {
    let best = rank_compiled(offers, p, now)
        .first()
        .map(|v| v["offer"].clone())
        .unwrap_or(Value::Null);
    let current = p.traits.get(TRAIT).cloned().unwrap_or(Value::Null);
    if best == current {
        return false;
    }
    effects.set_trait(id, p, TRAIT, best);
    true
}
