//! Text analytics as a capability: a background worker that analyses the text of every
//! event (sentiment, language, intents, entities) after its saved position, storing the
//! results and the new position in one transaction, so it never blocks ingestion and
//! resumes exactly after a restart; and the signals derived per person.

use rapport_domain::model::{TextAnalysisView, TextSignals};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::{now_millis, to_datetime};
use rapport_store::{DynStore, StoreError};
use rapport_text::Analyzer;
use std::time::Duration;

/// Name of the analysis worker's position in the event log.
pub const ANALYSIS_CURSOR: &str = "cursor.text_analysis";

const DAY: i64 = 86_400_000;

/// The analyzer with the brand's current product catalogue, rebuilt when the catalogue
/// changes (its version counter moves).
pub async fn current_analyzer(store: &DynStore) -> Result<std::sync::Arc<Analyzer>, StoreError> {
    static CACHE: std::sync::Mutex<Option<(i64, std::sync::Arc<Analyzer>)>> =
        std::sync::Mutex::new(None);
    let version = store.counter(rapport_store::CATALOGUE_VERSION).await?;
    if let Ok(c) = CACHE.lock() {
        if let Some((v, a)) = c.as_ref() {
            if *v == version {
                return Ok(a.clone());
            }
        }
    }
    let names = store.catalogue().await?;
    let a = std::sync::Arc::new(Analyzer::new(
        rapport_text::Vader::new(),
        rapport_text::Catalogue::new(names),
    ));
    if let Ok(mut c) = CACHE.lock() {
        *c = Some((version, a.clone()));
    }
    Ok(a)
}

/// Share of voice: per product, texts mentioning it in the last `days`, its share of
/// all product mentions, and their mean sentiment.
pub async fn product_voice(
    store: &DynStore,
    days: i64,
) -> Result<Vec<serde_json::Value>, StoreError> {
    let now = now_millis();
    let rows = store.product_voice(now - days * DAY, now).await?;
    let total: i64 = rows.iter().map(|r| r.1).sum();
    Ok(rows
        .into_iter()
        .map(|(product, mentions, mean)| {
            serde_json::json!({
                "product": product,
                "mentions": mentions,
                "share_of_voice": if total > 0 { mentions as f64 / total as f64 } else { 0.0 },
                "sentiment": mean,
            })
        })
        .collect())
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
        let pause = match analyse_step(&store, 50_000).await {
            Ok(0) => Duration::from_millis(500),
            Ok(_) => Duration::from_millis(100),
            Err(e) => {
                tracing::warn!(error = %e, "text analysis failed; retrying");
                Duration::from_secs(2)
            }
        };
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
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
