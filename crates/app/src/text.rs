//! Text analytics as a capability: a background worker that analyses the text of every
//! event (sentiment, language, intents, entities) after its saved position, storing the
//! results and the new position in one transaction, so it never blocks ingestion and
//! resumes exactly after a restart; and the signals derived per person.

use rapport_domain::model::{TextAnalysisView, TextSignals};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::{now_millis, to_datetime};
use rapport_store::{DynStore, StoreError};
use rapport_text::{Analyzer, TrackedTopic};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Name of the analysis worker's position in the event log.
pub const ANALYSIS_CURSOR: &str = "cursor.text_analysis";

const DAY: i64 = 86_400_000;

/// Settings keys: the brand's lexicon terms (`{"word": valence}`), tracked topics
/// (`[{"name", "terms"}]`) and whether unknown mentioned identifiers become lead profiles.
pub const LEXICON_KEY: &str = "text.lexicon";
pub const TOPICS_KEY: &str = "text.topics";
pub const LEADS_KEY: &str = "text.create_leads";

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The analyzer with the brand's current catalogue, tracked topics and lexicon terms,
/// rebuilt when any of them changes (their version counters move).
pub async fn current_analyzer(store: &DynStore) -> Result<std::sync::Arc<Analyzer>, StoreError> {
    type Cached = Option<((i64, i64), std::sync::Arc<Analyzer>)>;
    static CACHE: std::sync::Mutex<Cached> = std::sync::Mutex::new(None);
    let version = (
        store.counter(rapport_store::CATALOGUE_VERSION).await?,
        store.counter(rapport_store::SETTINGS_VERSION).await?,
    );
    if let Ok(c) = CACHE.lock() {
        if let Some((v, a)) = c.as_ref() {
            if *v == version {
                return Ok(a.clone());
            }
        }
    }
    let names = store.catalogue().await?;
    let topics = tracked_topics(store).await?;
    let terms = lexicon(store).await?;
    let vader = rapport_text::Vader::new().with_terms(terms.iter().map(|(w, v)| (w.as_str(), *v)));
    let a = std::sync::Arc::new(Analyzer::new(
        vader,
        rapport_text::Catalogue::with_topics(names, &topics),
    ));
    if let Ok(mut c) = CACHE.lock() {
        *c = Some((version, a.clone()));
    }
    Ok(a)
}

/// The brand's own lexicon terms, word → valence.
pub async fn lexicon(store: &DynStore) -> Result<BTreeMap<String, f64>, StoreError> {
    Ok(store
        .setting(LEXICON_KEY)
        .await?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// Replaces the brand's lexicon terms: `{"terms": {"word": valence, …}}`. A term is one
/// word as it appears between spaces (lower-cased on the way in), valence in [-4, 4]
/// like VADER's own; they add to or override VADER's lexicon for texts analysed from now.
pub async fn set_lexicon(
    store: &DynStore,
    body: &serde_json::Value,
) -> Result<BTreeMap<String, f64>, StoreError> {
    let Some(map) = body.get("terms").and_then(|t| t.as_object()) else {
        return Err(invalid(
            "terms",
            "is required: an object of word → valence, e.g. {\"meh\": -1.2}",
        ));
    };
    if map.len() > 10_000 {
        return Err(invalid("terms", "at most 10,000 terms"));
    }
    let mut out = BTreeMap::new();
    for (w, v) in map {
        let field = format!("terms.{w}");
        let word = w.trim().to_lowercase();
        if word.is_empty() || word.chars().count() > 64 || word.chars().any(char::is_whitespace) {
            return Err(invalid(
                field,
                "a term is one word of 1 to 64 characters, without spaces",
            ));
        }
        let Some(v) = v.as_f64().filter(|v| (-4.0..=4.0).contains(v)) else {
            return Err(invalid(field, "valence must be a number from -4 to 4"));
        };
        out.insert(word, v);
    }
    store
        .set_setting(
            LEXICON_KEY,
            serde_json::to_value(&out).unwrap_or_default(),
            now_millis(),
        )
        .await?;
    Ok(out)
}

/// The topics the brand tracks.
pub async fn tracked_topics(store: &DynStore) -> Result<Vec<TrackedTopic>, StoreError> {
    Ok(store
        .setting(TOPICS_KEY)
        .await?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// Replaces the tracked topics: `{"topics": [{"name": "Delivery", "terms": ["courier", …]}]}`.
/// Texts analysed from now on get a `topic` entity for each topic whose term they use.
pub async fn set_tracked_topics(
    store: &DynStore,
    body: &serde_json::Value,
) -> Result<Vec<TrackedTopic>, StoreError> {
    let Some(items) = body.get("topics").and_then(|t| t.as_array()) else {
        return Err(invalid(
            "topics",
            "is required: an array of {\"name\": …, \"terms\": […]}",
        ));
    };
    if items.len() > 500 {
        return Err(invalid("topics", "at most 500 topics"));
    }
    let mut out: Vec<TrackedTopic> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let name = it
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::trim)
            .unwrap_or("");
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(invalid(
                format!("topics[{i}].name"),
                "must be a name of 1 to 100 characters",
            ));
        }
        if out.iter().any(|t| t.name.eq_ignore_ascii_case(name)) {
            return Err(invalid(
                format!("topics[{i}].name"),
                format!("'{name}' appears twice"),
            ));
        }
        let Some(terms) = it
            .get("terms")
            .and_then(|t| t.as_array())
            .filter(|t| !t.is_empty() && t.len() <= 500)
        else {
            return Err(invalid(
                format!("topics[{i}].terms"),
                "must be an array of 1 to 500 words or phrases",
            ));
        };
        let mut ts = Vec::with_capacity(terms.len());
        for (j, t) in terms.iter().enumerate() {
            let t = t.as_str().map(str::trim).unwrap_or("");
            if t.is_empty() || t.chars().count() > 100 || t.chars().any(char::is_control) {
                return Err(invalid(
                    format!("topics[{i}].terms[{j}]"),
                    "must be a word or phrase of 1 to 100 characters",
                ));
            }
            ts.push(t.to_string());
        }
        out.push(TrackedTopic {
            name: name.to_string(),
            terms: ts,
        });
    }
    store
        .set_setting(
            TOPICS_KEY,
            serde_json::to_value(&out).unwrap_or_default(),
            now_millis(),
        )
        .await?;
    Ok(out)
}

/// Whether unknown identifiers mentioned in texts become lead profiles.
pub async fn create_leads(store: &DynStore) -> Result<bool, StoreError> {
    Ok(store
        .setting(LEADS_KEY)
        .await?
        .and_then(|v| v.as_bool())
        .unwrap_or(false))
}

/// Replaces the product catalogue the analysis tags mentions of (the analyzer is rebuilt
/// from it); returns the catalogue as stored, by name.
pub async fn set_catalogue(
    store: &DynStore,
    names: Vec<String>,
) -> Result<Vec<String>, StoreError> {
    if names.len() > 10_000 {
        return Err(StoreError::invalid("products", "at most 10,000 products"));
    }
    let mut clean = Vec::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        let n = n.trim();
        if n.is_empty() || n.len() > 200 || n.chars().any(char::is_control) {
            return Err(StoreError::invalid(
                &format!("products[{i}]"),
                "must be a product name of 1 to 200 characters",
            ));
        }
        clean.push(n.to_string());
    }
    store.set_catalogue(clean, now_millis()).await?;
    store.catalogue().await
}

pub async fn set_create_leads(store: &DynStore, on: bool) -> Result<(), StoreError> {
    store
        .set_setting(LEADS_KEY, serde_json::Value::Bool(on), now_millis())
        .await
}

/// Share of voice: per product (`kind` `product`) or tracked topic (`topic`), texts
/// mentioning it in the last `days`, its share of all such mentions, and their mean
/// sentiment.
pub async fn voice(
    store: &DynStore,
    kind: &str,
    days: i64,
) -> Result<Vec<serde_json::Value>, StoreError> {
    let now = now_millis();
    let rows = store.tag_voice(kind, now - days * DAY, now).await?;
    let total: i64 = rows.iter().map(|r| r.1).sum();
    Ok(rows
        .into_iter()
        .map(|(name, mentions, mean)| {
            serde_json::json!({
                kind: name,
                "mentions": mentions,
                "share_of_voice": if total > 0 { mentions as f64 / total as f64 } else { 0.0 },
                "sentiment": mean,
            })
        })
        .collect())
}

/// Topics found in the texts of the last `days` without any set-up (co-occurring terms
/// grouped by Louvain; `rapport_text::topics`), with sentiment and examples.
pub async fn discover_topics(
    store: &DynStore,
    days: i64,
    limit: usize,
) -> Result<Vec<rapport_text::topics::Topic>, StoreError> {
    let now = now_millis();
    let texts = store
        .texts_between(now - days * DAY, now + 1, 50_000)
        .await?;
    let analyzer = current_analyzer(store).await?;
    tokio::task::spawn_blocking(move || {
        let scored: Vec<(&str, f64)> = texts
            .iter()
            .map(|(_, _, t)| (t.as_str(), analyzer.sentiment(t).compound))
            .collect();
        rapport_text::topics::discover(
            scored,
            rapport_text::topics::Options {
                limit,
                ..Default::default()
            },
        )
    })
    .await
    .map_err(|e| StoreError::Backend(format!("topic task: {e}")))
}

/// Tracked topics rising this week against the four weeks before (same score as terms).
pub async fn rising_topics(store: &DynStore) -> Result<Vec<serde_json::Value>, StoreError> {
    let now = now_millis();
    let week = store.tag_voice("topic", now - 7 * DAY, now).await?;
    let before: HashMap<String, i64> = store
        .tag_voice("topic", now - 35 * DAY, now - 7 * DAY)
        .await?
        .into_iter()
        .map(|(n, c, _)| (n, c))
        .collect();
    let mut out: Vec<(f64, serde_json::Value)> = week
        .into_iter()
        .map(|(name, n, mean)| {
            let weekly = *before.get(&name).unwrap_or(&0) as f64 / 4.0;
            let score = (n as f64 + 1.0) / (weekly + 1.0);
            (
                score,
                serde_json::json!({"topic": name, "this_week": n, "weekly_before": weekly, "score": score, "sentiment": mean}),
            )
        })
        .collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(out.into_iter().map(|(_, v)| v).collect())
}

/// Analyses the texts of the next `span` events; returns how many events it covered.
pub async fn analyse_step(store: &DynStore, span: i64) -> Result<usize, StoreError> {
    let pos = store.counter(ANALYSIS_CURSOR).await?;
    let (rows, upto) = store.text_candidates(pos, span).await?;
    if upto == pos {
        return Ok(0);
    }
    let current = current_analyzer(store).await?;
    let analyses = tokio::task::spawn_blocking(move || {
        rows.into_iter()
            .map(|r| {
                let a = current.analyse(&r.text);
                TextAnalysisView {
                    event_id: r.event_id,
                    profile_id: r.profile_id,
                    occurred_at: to_datetime(r.occurred_at),
                    compound: a.compound,
                    label: a.label.to_string(),
                    language: a.language,
                    intents: serde_json::to_value(&a.intents).unwrap_or_default(),
                    entities: serde_json::to_value(&a.entities).unwrap_or_default(),
                }
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| StoreError::Backend(format!("text analysis task: {e}")))?;
    store
        .save_text_analyses(analyses, (ANALYSIS_CURSOR.to_string(), upto))
        .await?;
    Ok((upto - pos) as usize)
}

/// Analyses until every stored event's text is done.
pub async fn analyse_all(store: &DynStore) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        match analyse_step(store, 50_000).await? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

/// The worker loop `rapport serve` runs until `shutdown` fires.
pub async fn run_analysis(store: DynStore, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let step = analyse_step(&store, 50_000).await;
        let (idle, busy) = (Duration::from_millis(500), Duration::from_millis(100));
        if !crate::worker::pause_after("text analysis", step, idle, busy, &mut shutdown).await {
            return;
        }
    }
}

/// Signals from what a person wrote: mean sentiment over 30 and 90 days, the latest
/// complaint and churn-risk texts, and an advocacy level.
pub async fn signals(store: &DynStore, id: ProfileId) -> Result<TextSignals, StoreError> {
    let now = now_millis();
    let s30 = store.text_stats(id, now - 30 * DAY).await?;
    let s90 = store.text_stats(id, now - 90 * DAY).await?;
    let advocacy = match (s90.texts, s90.mean) {
        (0, _) | (_, None) => "unknown",
        (n, Some(m)) if n >= 3 && m >= 0.5 => "advocate",
        (_, Some(m)) if m >= 0.05 => "promoter",
        (_, Some(m)) if m <= -0.05 => "detractor",
        _ => "neutral",
    };
    Ok(TextSignals {
        texts_30d: s30.texts,
        sentiment_30d: s30.mean,
        texts_90d: s90.texts,
        sentiment_90d: s90.mean,
        last_complaint_at: store
            .last_intent_at(id, "complaint")
            .await?
            .map(to_datetime),
        last_churn_risk_at: store
            .last_intent_at(id, "churn_risk")
            .await?
            .map(to_datetime),
        advocacy: advocacy.to_string(),
    })
}

/// Terms rising this week against the four weeks before, with example texts.
pub async fn trends(
    store: &DynStore,
    min_texts: usize,
    limit: usize,
) -> Result<Vec<rapport_text::trends::Trend>, StoreError> {
    let now = now_millis();
    let week = store.texts_between(now - 7 * DAY, now + 1, 100_000).await?;
    let before = store
        .texts_between(now - 35 * DAY, now - 7 * DAY, 400_000)
        .await?;
    tokio::task::spawn_blocking(move || {
        rapport_text::trends::trending(
            week.iter().map(|(_, _, t)| t.as_str()),
            before.iter().map(|(_, _, t)| t.as_str()),
            min_texts,
            limit,
        )
    })
    .await
    .map_err(|e| StoreError::Backend(format!("trend task: {e}")))
}
