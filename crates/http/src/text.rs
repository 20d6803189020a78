//! The text analytics API (admin key): analyse texts on demand, each event's stored
//! analysis, daily sentiment series, and per person signals.

use crate::auth::AdminKey;
use crate::problem::{json_body, ApiError, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::Json;
use rapport_domain::model::{SentimentDay, TextAnalysisView, TextSignals};
use rapport_domain::time::now_millis;
use serde_json::Value;
use std::collections::HashMap;

/// The `days` window of a query: 1 to 3650, default 30.
fn days(q: &HashMap<String, String>) -> ApiResult<i64> {
    Ok(crate::problem::query_count(q, "days", 30, 3650)? as i64)
}

/// Analyses `{"text": "…"}` or `{"texts": ["…", …]}` (up to 1,000) without storing.
#[utoipa::path(post, path = "/api/text/analyse", tag = "text",
    request_body(content = Object, description = "`{\"text\": \"Love it!\"}` or `{\"texts\": [...]}`"),
    responses((status = 200, description = "one analysis per text: compound, label, pos/neu/neg, language, intents, entities", body = Vec<Object>), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn analyse(
    State(state): State<AppState>,
    _key: AdminKey,
    body: Bytes,
) -> ApiResult<Json<Vec<Value>>> {
    let v: Value = json_body(&body)?;
    let texts: Vec<String> = match (v.get("text"), v.get("texts")) {
        (Some(Value::String(t)), None) => vec![t.clone()],
        (None, Some(Value::Array(a))) if !a.is_empty() && a.len() <= 1000 => a
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::invalid(&format!("texts[{i}]"), "must be a string"))
            })
            .collect::<ApiResult<_>>()?,
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "texts",
                "must be an array of 1 to 1,000 strings",
            ))
        }
        _ => {
            return Err(ApiError::invalid(
                "text",
                "give `text` (a string) or `texts` (an array), not both",
            ))
        }
    };
    if let Some(i) = texts.iter().position(|t| t.len() > 32 * 1024) {
        return Err(ApiError::invalid(
            &format!("texts[{i}]"),
            "longer than 32 KB",
        ));
    }
    let a = rapport_app::text::current_analyzer(&state.store).await?;
    Ok(Json(
        texts
            .iter()
            .map(|t| serde_json::to_value(a.analyse(t)).unwrap_or_default())
            .collect(),
    ))
}

/// The stored analysis of an event's text (404 while not yet analysed or without text).
#[utoipa::path(get, path = "/api/events/{id}/analysis", tag = "text",
    params(("id" = i64, Path, description = "event id")),
    responses((status = 200, body = TextAnalysisView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn event_analysis(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<TextAnalysisView>> {
    state
        .store
        .text_analysis(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no analysis of event {id}: it has no text, or the analysis worker has not reached it yet")))
}

/// Daily sentiment over the last `days` (default 30): overall, for one person, one
/// product or one tracked topic.
#[utoipa::path(get, path = "/api/text/sentiment", tag = "text",
    params(("profile" = Option<i64>, Query), ("product" = Option<String>, Query), ("topic" = Option<String>, Query, description = "a tracked topic's name"), ("days" = Option<i64>, Query, minimum = 1, maximum = 3650, description = "1-3650, default 30")),
    responses((status = 200, body = Vec<SentimentDay>), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn sentiment(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<SentimentDay>>> {
    let days = days(&q)?;
    let now = now_millis();
    let tagged = match (q.get("product"), q.get("topic")) {
        (Some(p), None) => Some(("product", p)),
        (None, Some(t)) => Some(("topic", t)),
        (None, None) => None,
        _ => {
            return Err(ApiError::invalid(
                "topic",
                "give `product` or `topic`, not both",
            ))
        }
    };
    if let Some((kind, name)) = tagged {
        if q.contains_key("profile") {
            return Err(ApiError::invalid(
                kind,
                format!("`{kind}` and `profile` cannot be combined"),
            ));
        }
        return Ok(Json(
            state
                .store
                .tag_series(kind, name, now - days * 86_400_000, now)
                .await?,
        ));
    }
    let people = match q.get("profile") {
        None => None,
        Some(p) => {
            let id = p
                .parse::<i64>()
                .map_err(|_| ApiError::invalid("profile", "must be a profile id"))?;
            Some(vec![state.store.profile(id).await?.id])
        }
    };
    Ok(Json(
        state
            .store
            .sentiment_series(people, now - days * 86_400_000, now)
            .await?,
    ))
}

/// What a person's texts say: mean sentiment over 30/90 days, last complaint and churn
/// signal, advocacy level — for segments and rules.
#[utoipa::path(get, path = "/api/profiles/{id}/text-signals", tag = "text",
    params(("id" = i64, Path)),
    responses((status = 200, body = TextSignals), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn signals(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<TextSignals>> {
    let id = state.store.profile(id).await?.id;
    Ok(Json(rapport_app::text::signals(&state.store, id).await?))
}

/// Terms rising this week against the four weeks before, with example texts.
#[utoipa::path(get, path = "/api/text/trends", tag = "text",
    params(("min_texts" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "texts this week a term needs, 1-1000, default 3"), ("limit" = Option<usize>, Query, minimum = 1, maximum = 200, description = "1-200, default 20")),
    responses((status = 200, description = "term, this_week, weekly_before, score, examples", body = Vec<Object>), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn trends(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<rapport_text::trends::Trend>>> {
    let num = |k: &str, d: usize, max: usize| crate::problem::query_count(&q, k, d, max);
    let (min_texts, limit) = (num("min_texts", 3, 1000)?, num("limit", 20, 200)?);
    Ok(Json(
        rapport_app::text::trends(&state.store, min_texts, limit).await?,
    ))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct CatalogueBody {
    /// Product names, 1 to 200 characters each, at most 10,000.
    pub products: Vec<String>,
}

/// Replaces the product catalogue entity extraction looks for: `{"products": ["Aurora Headphones", …]}`.
/// Texts analysed from now on are matched against it.
#[utoipa::path(put, path = "/api/text/catalogue", tag = "text",
    request_body = CatalogueBody,
    responses((status = 200, description = "the catalogue as stored", body = Object), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_catalogue(
    State(state): State<AppState>,
    _key: AdminKey,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let b: CatalogueBody = crate::problem::typed_body(&body)?;
    let products = rapport_app::text::set_catalogue(&state.store, b.products).await?;
    Ok(Json(serde_json::json!({ "products": products })))
}

/// The product catalogue.
#[utoipa::path(get, path = "/api/text/catalogue", tag = "text",
    responses((status = 200, body = Object)),
    security(("bearer" = [])))]
pub async fn catalogue(State(state): State<AppState>, _key: AdminKey) -> ApiResult<Json<Value>> {
    Ok(Json(
        serde_json::json!({"products": state.store.catalogue().await?}),
    ))
}

/// Share of voice and sentiment per product over the last `days` (default 30).
#[utoipa::path(get, path = "/api/text/products", tag = "text",
    params(("days" = Option<i64>, Query, minimum = 1, maximum = 3650, description = "1-3650, default 30")),
    responses((status = 200, description = "product, mentions, share_of_voice, sentiment", body = Vec<Object>), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn products(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Value>>> {
    let days = days(&q)?;
    Ok(Json(
        rapport_app::text::voice(&state.store, "product", days).await?,
    ))
}

/// Replaces the brand's lexicon terms: `{"terms": {"meh": -1.2, "rapport": 2.5}}`; they
/// add to or override VADER's lexicon for texts analysed from now on.
#[utoipa::path(put, path = "/api/text/lexicon", tag = "text",
    request_body(content = Object, description = "`{\"terms\": {\"meh\": -1.2}}`: one word each, valence -4..4"),
    responses((status = 200, description = "the terms as stored", body = Object), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_lexicon(
    State(state): State<AppState>,
    _key: AdminKey,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let terms = rapport_app::text::set_lexicon(&state.store, &json_body(&body)?).await?;
    Ok(Json(serde_json::json!({ "terms": terms })))
}

/// The brand's lexicon terms.
#[utoipa::path(get, path = "/api/text/lexicon", tag = "text",
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn lexicon(State(state): State<AppState>, _key: AdminKey) -> ApiResult<Json<Value>> {
    let terms = rapport_app::text::lexicon(&state.store).await?;
    Ok(Json(serde_json::json!({ "terms": terms })))
}

/// Replaces the topics the brand tracks:
/// `{"topics": [{"name": "Delivery", "terms": ["courier", "shipping", "arrived late"]}]}`.
#[utoipa::path(put, path = "/api/text/topics", tag = "text",
    request_body(content = Object, description = "`{\"topics\": [{\"name\": \"Delivery\", \"terms\": [\"courier\"]}]}`"),
    responses((status = 200, description = "the topics as stored", body = Object), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_topics(
    State(state): State<AppState>,
    _key: AdminKey,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let topics = rapport_app::text::set_tracked_topics(&state.store, &json_body(&body)?).await?;
    Ok(Json(serde_json::json!({ "topics": topics })))
}

/// The topics the brand tracks.
#[utoipa::path(get, path = "/api/text/topics", tag = "text",
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn topics(State(state): State<AppState>, _key: AdminKey) -> ApiResult<Json<Value>> {
    let topics = rapport_app::text::tracked_topics(&state.store).await?;
    Ok(Json(serde_json::json!({ "topics": topics })))
}

/// Per tracked topic over the last `days`: texts, share of voice and mean sentiment.
#[utoipa::path(get, path = "/api/text/topics/summary", tag = "text",
    params(("days" = Option<i64>, Query, minimum = 1, maximum = 3650, description = "1-3650, default 30")),
    responses((status = 200, description = "topic, mentions, share_of_voice, sentiment", body = Vec<Object>), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn topic_summary(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Value>>> {
    let days = days(&q)?;
    Ok(Json(
        rapport_app::text::voice(&state.store, "topic", days).await?,
    ))
}

/// Topics found in the last `days` of texts with no set-up: groups of terms written
/// together, each with texts, mean sentiment and examples.
#[utoipa::path(get, path = "/api/text/topics/discover", tag = "text",
    params(("days" = Option<i64>, Query, minimum = 1, maximum = 3650, description = "1-3650, default 30"), ("limit" = Option<usize>, Query, minimum = 1, maximum = 100, description = "1-100, default 20")),
    responses((status = 200, description = "label, terms, texts, sentiment, positive, negative, examples", body = Vec<Object>), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn discover_topics(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<rapport_text::topics::Topic>>> {
    let days = days(&q)?;
    let limit = crate::problem::query_count(&q, "limit", 20, 100)?;
    Ok(Json(
        rapport_app::text::discover_topics(&state.store, days, limit).await?,
    ))
}

/// Tracked topics rising this week against the four weeks before.
#[utoipa::path(get, path = "/api/text/trends/topics", tag = "text",
    responses((status = 200, description = "topic, this_week, weekly_before, score, sentiment", body = Vec<Object>)),
    security(("bearer" = [])))]
pub async fn topic_trends(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(rapport_app::text::rising_topics(&state.store).await?))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct TextSettings {
    /// Make an unknown e-mail, wallet or handle mentioned in a text a new lead profile.
    pub create_leads: bool,
}

/// Text settings: `{"create_leads": true}` makes an unknown e-mail, wallet or handle
/// mentioned in a text a new lead profile.
#[utoipa::path(put, path = "/api/text/settings", tag = "text",
    request_body = TextSettings,
    responses((status = 200, body = Object), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_settings(
    State(state): State<AppState>,
    _key: AdminKey,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let on = crate::problem::typed_body::<TextSettings>(&body)?.create_leads;
    rapport_app::text::set_create_leads(&state.store, on).await?;
    Ok(Json(serde_json::json!({ "create_leads": on })))
}

/// Text settings.
#[utoipa::path(get, path = "/api/text/settings", tag = "text",
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn settings(State(state): State<AppState>, _key: AdminKey) -> ApiResult<Json<Value>> {
    let on = rapport_app::text::create_leads(&state.store).await?;
    Ok(Json(serde_json::json!({ "create_leads": on })))
}
