//! Rapport's HTTP layer: thin handlers that parse, authorise, call a service and render.
//! Routes are grouped by API area: `segment` (ingestion), `profiles`, `ops`.

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use rapport_app::ingest::Ingestor;
use rapport_app::keys::Keys;
use rapport_store::DynStore;
use std::sync::Arc;
use utoipa::OpenApi;

pub mod auth;
pub mod chain;
pub mod graph;
pub mod ops;
pub mod problem;
pub mod profiles;
pub mod rules;
pub mod scores;
pub mod segments;
pub mod text;
pub mod tracking;
pub mod ui;

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub ingestor: Ingestor,
    pub keys: Arc<Keys>,
    pub graph: Arc<rapport_app::graph::GraphService>,
    /// The hot wallet token rewards are paid from (none until configured).
    pub rewards: Arc<rapport_app::rewards::Rewards>,
    /// The web app's dashboard figures, kept a minute.
    pub ui_cache: Arc<ui::Cache>,
    /// Dropping the last state stops the background workers it started.
    _workers: Arc<tokio::sync::watch::Sender<bool>>,
}

impl AppState {
    /// Starts the ingestion writer for `store` and every background worker (relationship
    /// inference, text analysis, real-time segments, the event number index).
    pub fn new(store: DynStore) -> (AppState, tokio::task::JoinHandle<()>) {
        let (state, writer) = Self::with_workers(store, true, true);
        state.run_segments(
            std::time::Duration::from_secs(15 * 60),
            rapport_app::realtime::DEFAULT_CAPACITY,
        );
        state.run_number_index();
        (state, writer)
    }

    /// As [`new`](Self::new) with only the workers asked for: `false` leaves
    /// relationship inference or text analysis to another process (a worker node), and
    /// is how the benchmarks measure their cost.
    pub fn with_workers(
        store: DynStore,
        inference: bool,
        analysis: bool,
    ) -> (AppState, tokio::task::JoinHandle<()>) {
        let (ingestor, writer) = Ingestor::start(store.clone());
        let keys = Arc::new(Keys::new(store.clone()));
        let graph = Arc::new(rapport_app::graph::GraphService::new(store.clone()));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        if inference {
            tokio::spawn(rapport_app::graph::run_inference(
                store.clone(),
                stopped.clone(),
            ));
        }
        if analysis {
            tokio::spawn(rapport_app::text::run_analysis(store.clone(), stopped));
        }
        (
            AppState {
                store,
                ingestor,
                keys,
                graph,
                rewards: Arc::new(Default::default()),
                ui_cache: Arc::new(Default::default()),
                _workers: Arc::new(stop),
            },
            writer,
        )
    }

    /// Keeps `event_numbers` close behind the event log (SQLite; PostgreSQL keeps it by
    /// trigger). Safe beside other processes doing the same: each step is one write
    /// transaction that reads the position inside it.
    pub fn run_number_index(&self) {
        tokio::spawn(rapport_app::segments::run_number_index(
            self.store.clone(),
            self._workers.subscribe(),
        ));
    }

    /// Keeps segment membership current as events arrive, with a full refresh every
    /// `every`, holding up to `people` people in memory.
    pub fn run_segments(&self, every: std::time::Duration, people: usize) {
        tokio::spawn(rapport_app::realtime::run(
            self.store.clone(),
            every,
            people,
            self._workers.subscribe(),
        ));
        // The dashboard's figures stay warm.
        tokio::spawn(ui::pages::warm(
            self.store.clone(),
            self.ui_cache.clone(),
            self._workers.subscribe(),
        ));
        // Chains are followed and token rewards paid from here too.
        tokio::spawn(rapport_app::chain::run(
            self.store.clone(),
            std::time::Duration::from_secs(2),
            self._workers.subscribe(),
        ));
        tokio::spawn(rapport_app::rewards::run(
            self.store.clone(),
            self.rewards.clone(),
            self._workers.subscribe(),
        ));
        // The webhooks rules ask for go out from here too.
        tokio::spawn(rapport_app::outbound::run(
            self.store.clone(),
            self._workers.subscribe(),
        ));
    }

    /// Recomputes the graph every `every` while relationships keep changing.
    pub fn schedule_graph(&self, every: std::time::Duration) {
        tokio::spawn(rapport_app::graph::run_schedule(
            self.graph.clone(),
            every,
            self._workers.subscribe(),
        ));
    }
}

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        c.add_security_scheme(
            "write_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        let problem = |what: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(what)
                    .content(
                        "application/problem+json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            )
        };
        // Every error is problem+json; every keyed route can answer 400, 401 and 403.
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                for (code, resp) in op.responses.responses.iter_mut() {
                    if let RefOr::T(r) = resp {
                        if code.starts_with('4') || code.starts_with('5') {
                            if let Some(content) = r.content.shift_remove("application/json") {
                                r.content.insert("application/problem+json".into(), content);
                            }
                        }
                    }
                }
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    let rs = &mut op.responses.responses;
                    rs.entry("400".into())
                        .or_insert_with(|| problem("Invalid request; `field` names what is wrong"));
                    rs.entry("401".into())
                        .or_insert_with(|| problem("Missing or unknown API key"));
                    rs.entry("403".into())
                        .or_insert_with(|| problem("The key's scope does not allow this"));
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Rapport", description = "Self-hosted social CRM. Ingestion speaks the Segment HTTP Tracking API; errors are RFC 9457 problem+json."),
    paths(
        tracking::identify, tracking::track, tracking::page, tracking::screen, tracking::group, tracking::alias,
        tracking::batch, tracking::import, tracking::import_jsonl,
        profiles::search, profiles::lookup, profiles::get, profiles::timeline, profiles::patch_traits,
        profiles::consents, profiles::set_consent, profiles::unmerge, profiles::merge, profiles::conflicts, profiles::merges,
        graph::add, graph::relationships, graph::pair, graph::network, graph::close, graph::social,
        graph::influence, graph::attribution, graph::path, graph::top, graph::communities,
        graph::recompute, graph::latest_run,
        text::analyse, text::event_analysis, text::sentiment, text::signals, text::trends,
        text::set_catalogue, text::catalogue, text::products, text::set_lexicon, text::lexicon,
        text::set_topics, text::topics, text::topic_summary, text::discover_topics,
        text::topic_trends, text::set_settings, text::settings,
        segments::preview, segments::create, segments::list, segments::get, segments::update,
        segments::delete, segments::refresh, segments::members, segments::sizes, segments::of_profile,
        segments::refresh_micro, segments::micro,
        rules::list, rules::set, rules::dry_run, rules::firings, rules::tasks, rules::outbox, rules::retry,
        rules::offers, rules::set_offers, rules::next_best_offer,
        chain::list, chain::add, chain::delete, chain::add_contract, chain::sync, chain::holders,
        chain::of_profile, chain::nonce, chain::verify, chain::reward, chain::rewards_list,
        chain::reward_get, chain::reward_retry,
        scores::list, scores::set_rfm, scores::set_custom, scores::recompute, scores::of_profile,
        ops::healthz, ops::metrics, ops::stats, ops::create_key, ops::list_keys, ops::revoke_key,
    ),
    modifiers(&Security)
)]
pub struct ApiDoc;

async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

async fn not_found(uri: axum::http::Uri) -> problem::ApiError {
    problem::ApiError::NotFound(format!("no route for {}", uri.path()))
}

pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/v1/identify", post(tracking::identify))
        .route("/v1/track", post(tracking::track))
        .route("/v1/page", post(tracking::page))
        .route("/v1/screen", post(tracking::screen))
        .route("/v1/group", post(tracking::group))
        .route("/v1/alias", post(tracking::alias))
        .route("/v1/batch", post(tracking::batch))
        .route("/v1/import", post(tracking::import))
        // Sizes are checked after decompression with a precise error; this only stops
        // absurd uploads early.
        .layer(DefaultBodyLimit::max(8 * 1024 * 1024));
    let bulk = Router::new()
        .route("/api/import/events", post(tracking::import_jsonl))
        .layer(DefaultBodyLimit::max(tracking::MAX_JSONL_BYTES));
    Router::new()
        .merge(v1)
        .merge(bulk)
        .merge(ui::routes())
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi))
        .route("/api/stats", get(ops::stats))
        .route("/api/keys", get(ops::list_keys).post(ops::create_key))
        .route("/api/keys/{id}", axum::routing::delete(ops::revoke_key))
        .route("/api/profiles", get(profiles::search))
        .route("/api/profiles/lookup", get(profiles::lookup))
        .route("/api/profiles/{id}", get(profiles::get))
        .route("/api/profiles/{id}/timeline", get(profiles::timeline))
        .route(
            "/api/profiles/{id}/traits",
            axum::routing::patch(profiles::patch_traits),
        )
        .route(
            "/api/profiles/{id}/consents",
            get(profiles::consents).put(profiles::set_consent),
        )
        .route("/api/profiles/{id}/unmerge", post(profiles::unmerge))
        .route("/api/profiles/{id}/merge", post(profiles::merge))
        .route("/api/relationships", post(graph::add))
        .route(
            "/api/profiles/{id}/relationships",
            get(graph::relationships),
        )
        .route("/api/profiles/{id}/relationships/{other}", get(graph::pair))
        .route("/api/profiles/{id}/network", get(graph::network))
        .route("/api/profiles/{id}/close", get(graph::close))
        .route("/api/profiles/{id}/social", get(graph::social))
        .route("/api/profiles/{id}/influence", get(graph::influence))
        .route("/api/events/{id}/attribution", get(graph::attribution))
        .route("/api/graph/path", get(graph::path))
        .route("/api/graph/top", get(graph::top))
        .route("/api/graph/communities", get(graph::communities))
        .route("/api/graph/recompute", post(graph::recompute))
        .route("/api/graph/runs/latest", get(graph::latest_run))
        .route("/api/text/analyse", post(text::analyse))
        .route("/api/text/sentiment", get(text::sentiment))
        .route("/api/text/trends", get(text::trends))
        .route(
            "/api/text/catalogue",
            get(text::catalogue).put(text::set_catalogue),
        )
        .route("/api/text/products", get(text::products))
        .route("/api/segments/preview", post(segments::preview))
        .route("/api/segments", get(segments::list).post(segments::create))
        .route(
            "/api/segments/{id}",
            get(segments::get)
                .put(segments::update)
                .delete(segments::delete),
        )
        .route("/api/segments/{id}/refresh", post(segments::refresh))
        .route("/api/segments/{id}/members", get(segments::members))
        .route("/api/segments/{id}/sizes", get(segments::sizes))
        .route("/api/profiles/{id}/segments", get(segments::of_profile))
        .route("/api/micro-segments", get(segments::micro))
        .route("/api/micro-segments/refresh", post(segments::refresh_micro))
        .route("/api/rules", get(rules::list).put(rules::set))
        .route("/api/rules/dry-run", post(rules::dry_run))
        .route("/api/rules/firings", get(rules::firings))
        .route("/api/tasks", get(rules::tasks))
        .route("/api/outbox", get(rules::outbox))
        .route("/api/offers", get(rules::offers).put(rules::set_offers))
        .route(
            "/api/profiles/{id}/next-best-offer",
            get(rules::next_best_offer),
        )
        .route("/api/outbox/{id}/retry", post(rules::retry))
        .route("/api/chains", get(chain::list).post(chain::add))
        .route("/api/chains/{chain}", axum::routing::delete(chain::delete))
        .route("/api/chains/{chain}/contracts", post(chain::add_contract))
        .route("/api/chains/{chain}/sync", post(chain::sync))
        .route(
            "/api/chains/{chain}/contracts/{address}/holders",
            get(chain::holders),
        )
        .route("/api/profiles/{id}/holdings", get(chain::of_profile))
        .route("/api/siwe/nonce", get(chain::nonce))
        .route("/api/siwe/verify", post(chain::verify))
        .route("/api/rewards", get(chain::rewards_list).post(chain::reward))
        .route("/api/rewards/{id}", get(chain::reward_get))
        .route("/api/rewards/{id}/retry", post(chain::reward_retry))
        .route("/connect", get(chain::connect_page))
        .route("/api/scores", get(scores::list))
        .route("/api/scores/rfm", put(scores::set_rfm))
        .route("/api/scores/custom", put(scores::set_custom))
        .route("/api/scores/recompute", post(scores::recompute))
        .route("/api/profiles/{id}/scores", get(scores::of_profile))
        .route(
            "/api/text/lexicon",
            get(text::lexicon).put(text::set_lexicon),
        )
        .route("/api/text/topics", get(text::topics).put(text::set_topics))
        .route("/api/text/topics/summary", get(text::topic_summary))
        .route("/api/text/topics/discover", get(text::discover_topics))
        .route("/api/text/trends/topics", get(text::topic_trends))
        .route(
            "/api/text/settings",
            get(text::settings).put(text::set_settings),
        )
        .route("/api/events/{id}/analysis", get(text::event_analysis))
        .route("/api/profiles/{id}/text-signals", get(text::signals))
        .route("/api/conflicts", get(profiles::conflicts))
        .route("/api/merges", get(profiles::merges))
        .fallback(not_found)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
