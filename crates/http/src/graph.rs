//! The relationship graph API (admin key): relationships in, pair-level views, ego
//! networks, closeness, paths, influencers, communities, social value and word-of-mouth
//! attribution, and on-demand recomputation.

use crate::auth::AdminKey;
use crate::problem::{ApiError, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::Json;
use rapport_app::graph::{
    self as g, AddReport, Attribution, Close, EdgeInput, EgoNetwork, GraphError, Influence,
    PathView, SocialView,
};
use rapport_domain::relationship::{GraphRun, GraphScores, RelationshipView};
use rapport_domain::time::{now_millis, parse_timestamp};
use rapport_domain::IdentityKey;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

type Params = Query<HashMap<String, String>>;

impl From<GraphError> for ApiError {
    fn from(e: GraphError) -> Self {
        match e {
            GraphError::Invalid { field, reason } => ApiError::Invalid { field, reason },
            GraphError::NotFound(w) => ApiError::NotFound(format!("{w} not found")),
            GraphError::Store(s) => s.into(),
            GraphError::Compute(c) => ApiError::Internal(c),
        }
    }
}

fn num<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    key: &str,
    default: T,
    ok: impl Fn(&T) -> bool,
    rule: &str,
) -> ApiResult<T> {
    match q.get(key) {
        None => Ok(default),
        Some(s) => match s.parse::<T>() {
            Ok(v) if ok(&v) => Ok(v),
            _ => Err(ApiError::invalid(key, rule.to_string())),
        },
    }
}

/// A person named by profile id or by identifier (`email:…`, bare = user id).
async fn person(state: &AppState, field: &str, v: Option<&String>) -> ApiResult<i64> {
    let v = v.ok_or_else(|| {
        ApiError::invalid(
            field,
            "is required: a profile id or an identifier such as email:ann@example.com",
        )
    })?;
    if let Ok(id) = v.parse::<i64>() {
        return Ok(id);
    }
    let key =
        IdentityKey::parse_prefixed(v).map_err(|e| ApiError::invalid(field, e.to_string()))?;
    state
        .store
        .lookup(&key)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no profile owns {key}")))
}

/// Stores explicit relationships: one object or `{"relationships": [...]}`, each
/// `{"source", "target", "kind", "weight"?, "timestamp"?}` with identifiers as ends;
/// unknown identifiers become new profiles.
#[utoipa::path(post, path = "/api/relationships", tag = "graph",
    request_body(content = Object, description = "`{\"source\": \"email:ann@example.com\", \"target\": \"social:x:bob\", \"kind\": \"knows\", \"weight\": 2}` or `{\"relationships\": [...]}`"),
    responses((status = 200, body = AddReport), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn add(
    State(state): State<AppState>,
    key: AdminKey,
    body: Bytes,
) -> ApiResult<Json<AddReport>> {
    let v: Value = crate::problem::json_body(&body)?;
    let items: Vec<Value> = match v.get("relationships") {
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(ApiError::invalid("relationships", "must be an array")),
        None => vec![v],
    };
    if items.is_empty() || items.len() > 10_000 {
        return Err(ApiError::invalid(
            "relationships",
            "must hold 1 to 10,000 relationships",
        ));
    }
    let now = now_millis();
    let mut inputs = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let f = |k: &str| format!("relationships[{i}].{k}");
        let s = |k: &str| -> ApiResult<String> {
            it.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| ApiError::invalid(&f(k), "is required and must be a string"))
        };
        let weight = match it.get("weight") {
            None | Some(Value::Null) => None,
            Some(w) => Some(
                w.as_f64()
                    .ok_or_else(|| ApiError::invalid(&f("weight"), "must be a number"))?,
            ),
        };
        let at = match it.get("timestamp") {
            None | Some(Value::Null) => now,
            Some(t) => t.as_str().and_then(parse_timestamp).ok_or_else(|| {
                ApiError::invalid(&f("timestamp"), "must be an ISO 8601 date-time")
            })?,
        };
        inputs.push(EdgeInput {
            source: s("source")?,
            target: s("target")?,
            kind: s("kind")?,
            weight,
            at,
        });
    }
    Ok(Json(state.graph.add(inputs, &key.who()).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Counterpart {
    pub profile_id: i64,
    /// This person toward the counterpart.
    pub outgoing: Vec<RelationshipView>,
    /// The counterpart toward this person.
    pub incoming: Vec<RelationshipView>,
}

/// Everyone this person is related to, with each direction's kinds, weights, counts,
/// recency and sentiment (A toward B can differ from B toward A).
#[utoipa::path(get, path = "/api/profiles/{id}/relationships", tag = "graph",
    params(("id" = i64, Path), ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1-1000 relationship rows, default 200")),
    responses((status = 200, body = Vec<Counterpart>), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn relationships(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    Query(q): Params,
) -> ApiResult<Json<Vec<Counterpart>>> {
    let limit = num(
        &q,
        "limit",
        200usize,
        |n| (1..=1000).contains(n),
        "must be a whole number from 1 to 1000",
    )?;
    let me = state.store.profile(id).await?.id;
    let rows = state
        .store
        .relationships(rapport_store::RelScope::Touching(vec![me]), limit)
        .await?;
    let mut order: Vec<i64> = Vec::new();
    let mut by: HashMap<i64, Counterpart> = HashMap::new();
    for r in rows {
        let other = if r.source == me { r.target } else { r.source };
        let c = by.entry(other).or_insert_with(|| {
            order.push(other);
            Counterpart {
                profile_id: other,
                outgoing: vec![],
                incoming: vec![],
            }
        });
        if r.source == me {
            c.outgoing.push(r)
        } else {
            c.incoming.push(r)
        }
    }
    Ok(Json(
        order.into_iter().filter_map(|o| by.remove(&o)).collect(),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Pair {
    pub a: i64,
    pub b: i64,
    pub a_to_b: Vec<RelationshipView>,
    pub b_to_a: Vec<RelationshipView>,
}

/// How A relates to B and B to A.
#[utoipa::path(get, path = "/api/profiles/{id}/relationships/{other}", tag = "graph",
    params(("id" = i64, Path), ("other" = i64, Path)),
    responses((status = 200, body = Pair), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn pair(
    State(state): State<AppState>,
    _key: AdminKey,
    path: axum::extract::Path<(String, String)>,
) -> ApiResult<Json<Pair>> {
    let a = path
        .0
         .0
        .parse::<i64>()
        .map_err(|_| ApiError::invalid("id", "must be a whole number"))?;
    let b = path
        .0
         .1
        .parse::<i64>()
        .map_err(|_| ApiError::invalid("other", "must be a whole number"))?;
    let (a_to_b, b_to_a) = state.graph.pair(a, b).await?;
    let (a, b) = (
        state.store.profile(a).await?.id,
        state.store.profile(b).await?.id,
    );
    Ok(Json(Pair {
        a,
        b,
        a_to_b,
        b_to_a,
    }))
}

/// The ego network: people within 1 or 2 hops and the relationships among them.
#[utoipa::path(get, path = "/api/profiles/{id}/network", tag = "graph",
    params(("id" = i64, Path), ("depth" = Option<u32>, Query, minimum = 1, maximum = 2, description = "1 or 2, default 1"), ("limit" = Option<usize>, Query, minimum = 1, maximum = 2000, description = "people, 1-2000, default 200")),
    responses((status = 200, body = EgoNetwork), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn network(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    Query(q): Params,
) -> ApiResult<Json<EgoNetwork>> {
    let depth = num(&q, "depth", 1u32, |d| (1..=2).contains(d), "must be 1 or 2")?;
    let limit = num(
        &q,
        "limit",
        200usize,
        |n| (1..=2000).contains(n),
        "must be a whole number from 1 to 2000",
    )?;
    Ok(Json(state.graph.ego(id, depth, limit).await?))
}

/// Who is close to this person (personalised PageRank).
#[utoipa::path(get, path = "/api/profiles/{id}/close", tag = "graph",
    params(("id" = i64, Path), ("limit" = Option<usize>, Query, minimum = 1, maximum = 200, description = "1-200, default 20")),
    responses((status = 200, body = Vec<Close>), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn close(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    Query(q): Params,
) -> ApiResult<Json<Vec<Close>>> {
    let limit = num(
        &q,
        "limit",
        20usize,
        |n| (1..=200).contains(n),
        "must be a whole number from 1 to 200",
    )?;
    Ok(Json(state.graph.close(id, limit).await?))
}

/// Social value (evangelist, connector), engagement channels and why.
#[utoipa::path(get, path = "/api/profiles/{id}/social", tag = "graph",
    params(("id" = i64, Path)),
    responses((status = 200, body = SocialView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn social(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<SocialView>> {
    Ok(Json(state.graph.social(id).await?))
}

fn conversions(q: &HashMap<String, String>) -> Vec<String> {
    match q.get("conversions") {
        Some(s) if !s.trim().is_empty() => s
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
        _ => g::CONVERSIONS.iter().map(|s| s.to_string()).collect(),
    }
}

/// Conversions this person drove: people they referred, mentioned, replied to or
/// answered who then converted within the window.
#[utoipa::path(get, path = "/api/profiles/{id}/influence", tag = "graph",
    params(("id" = i64, Path), ("window_days" = Option<i64>, Query, description = "1-3650, default 30"),
           ("conversions" = Option<String>, Query, description = "comma-separated event names; default Order Completed, Signed Up, Subscription Started, Checkout Completed, Trial Started, Converted")),
    responses((status = 200, body = Influence), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn influence(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    Query(q): Params,
) -> ApiResult<Json<Influence>> {
    let window = num(
        &q,
        "window_days",
        30i64,
        |_| true,
        "must be a whole number of days",
    )?;
    Ok(Json(
        state.graph.influence(id, window, conversions(&q)).await?,
    ))
}

/// The chain of people and touches that led to a conversion event.
#[utoipa::path(get, path = "/api/events/{id}/attribution", tag = "graph",
    params(("id" = i64, Path, description = "event id"), ("window_days" = Option<i64>, Query, description = "1-3650, default 30"), ("depth" = Option<u32>, Query, description = "1-5 hops, default 3")),
    responses((status = 200, body = Attribution), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn attribution(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    Query(q): Params,
) -> ApiResult<Json<Attribution>> {
    let window = num(
        &q,
        "window_days",
        30i64,
        |_| true,
        "must be a whole number of days",
    )?;
    let depth = num(&q, "depth", 3u32, |_| true, "must be a whole number")?;
    Ok(Json(state.graph.attribution(id, window, depth).await?))
}

/// A shortest chain of relationships between two people.
#[utoipa::path(get, path = "/api/graph/path", tag = "graph",
    params(("from" = String, Query, description = "profile id or identifier"), ("to" = String, Query, description = "profile id or identifier")),
    responses((status = 200, body = PathView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn path(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Params,
) -> ApiResult<Json<PathView>> {
    let a = person(&state, "from", q.get("from")).await?;
    let b = person(&state, "to", q.get("to")).await?;
    state
        .graph
        .path(a, b)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no chain of relationships links these people".into()))
}

/// Top people by influence, brokerage, connector or evangelist value, overall or in a
/// community.
#[utoipa::path(get, path = "/api/graph/top", tag = "graph",
    params(("by" = Option<String>, Query, description = "pagerank (default), betweenness, syndication, evangelist"), ("community" = Option<i64>, Query), ("limit" = Option<usize>, Query, minimum = 1, maximum = 500, description = "1-500, default 20")),
    responses((status = 200, body = Vec<GraphScores>), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn top(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Params,
) -> ApiResult<Json<Vec<GraphScores>>> {
    let by = g::score_order(q.get("by").map_or("pagerank", String::as_str))?;
    let limit = num(
        &q,
        "limit",
        20usize,
        |n| (1..=500).contains(n),
        "must be a whole number from 1 to 500",
    )?;
    let community = match q.get("community") {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid("community", "must be a whole number"))?,
        ),
    };
    Ok(Json(
        state.store.top_graph_scores(by, community, limit).await?,
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CommunityView {
    pub community: i64,
    pub size: i64,
    /// Most influential members first.
    pub top_members: Vec<GraphScores>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Communities {
    pub run: Option<GraphRun>,
    pub communities: Vec<CommunityView>,
}

/// Communities of the latest computation with sizes and top members.
#[utoipa::path(get, path = "/api/graph/communities", tag = "graph",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 200, description = "1-200, default 20"), ("members" = Option<usize>, Query, maximum = 50, description = "top members each, 0-50, default 5")),
    responses((status = 200, body = Communities)),
    security(("bearer" = [])))]
pub async fn communities(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Params,
) -> ApiResult<Json<Communities>> {
    let limit = num(
        &q,
        "limit",
        20usize,
        |n| (1..=200).contains(n),
        "must be a whole number from 1 to 200",
    )?;
    let members = num(
        &q,
        "members",
        5usize,
        |n| *n <= 50,
        "must be a whole number from 0 to 50",
    )?;
    let mut out = Vec::new();
    for (community, size) in state.store.communities(limit).await? {
        let top_members = if members == 0 {
            vec![]
        } else {
            state
                .store
                .top_graph_scores(
                    rapport_store::ScoreOrder::Pagerank,
                    Some(community),
                    members,
                )
                .await?
        };
        out.push(CommunityView {
            community,
            size,
            top_members,
        });
    }
    Ok(Json(Communities {
        run: state.store.latest_graph_run().await?,
        communities: out,
    }))
}

/// How a recomputation finds communities (both optional; none: as the latest run did).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecomputeBody {
    /// `louvain` or `leiden` (every community connected).
    pub communities: Option<String>,
    /// Resolution γ, above 0 (1: modularity; lower: fewer, larger communities).
    pub resolution: Option<f64>,
}

/// Recomputes every network metric now and returns the run (parameters, modularity,
/// error bounds, timings).
#[utoipa::path(post, path = "/api/graph/recompute", tag = "graph",
    request_body(content = Option<RecomputeBody>),
    responses((status = 200, body = GraphRun), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn recompute(
    State(state): State<AppState>,
    _key: AdminKey,
    body: axum::body::Bytes,
) -> ApiResult<Json<GraphRun>> {
    let b: RecomputeBody = if body.iter().all(u8::is_ascii_whitespace) {
        RecomputeBody::default()
    } else {
        crate::problem::typed_body(&body)?
    };
    let method = rapport_app::graph::community_method(b.communities.as_deref(), b.resolution)?;
    Ok(Json(state.graph.recompute(method, &|_, _, _| {}).await?))
}

/// The latest computation.
#[utoipa::path(get, path = "/api/graph/runs/latest", tag = "graph",
    responses((status = 200, body = GraphRun), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn latest_run(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<GraphRun>> {
    state
        .store
        .latest_graph_run()
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound("no graph computation yet: POST /api/graph/recompute".into())
        })
}
