//! Rapport's HTTP layer: thin handlers that parse, authorise, call a service and render.
//! Routes are grouped by API area, one module each (`tracking` is the Segment ingestion
//! API); `api()` declares each route once.

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use rapport_app::ingest::Ingestor;
use rapport_app::keys::Keys;
use rapport_store::DynStore;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod auth;
pub mod browser;
pub mod chain;
pub mod community;
pub mod community_pages;
pub mod email;
pub mod graph;
pub mod insight;
pub mod kb;
pub mod loyalty;
pub mod ops;
pub mod portal;
pub mod portal_loyalty;
pub mod portal_tickets;
pub mod privacy;
pub mod problem;
pub mod profiles;
pub mod referrals;
pub mod rules;
pub mod scores;
pub mod segments;
pub mod text;
pub mod tickets;
pub mod tracking;
pub mod ui;

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub ingestor: Ingestor,
    pub keys: Arc<Keys>,
    /// Browser write keys' guard: origins, rate limits, bots; the `web` settings.
    pub web: Arc<rapport_app::web::Guard>,
    /// Placeholder identifiers dropped before resolution; the `identity` settings.
    pub identity: Arc<rapport_app::identity::IdentityPolicy>,
    /// Concurrent JSON Lines uploads (each streams in bounded memory).
    pub uploads: Arc<rapport_app::upload::Uploads>,
    /// Failed sign-ins by account and address (the web app's; the portal's later).
    pub sign_ins: Arc<rapport_app::throttle::SignIns>,
    /// Sign-in link requests of the customer portal, by address and client.
    pub portal_links: Arc<rapport_app::throttle::SignIns>,
    pub graph: Arc<rapport_app::graph::GraphService>,
    /// The hot wallet token rewards are paid from (none until configured).
    pub rewards: Arc<rapport_app::rewards::Rewards>,
    /// The web app's dashboard figures, kept a minute.
    pub ui_cache: Arc<ui::Cache>,
    /// E-mail: settings, sends, tracking; its delivery worker runs with the others.
    pub email: Arc<rapport_app::email::Email>,
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
        tokio::spawn(rapport_app::privacy::run_retention(
            state.store.clone(),
            state._workers.subscribe(),
        ));
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
        let web = Arc::new(rapport_app::web::Guard::new(store.clone()));
        let identity = Arc::new(rapport_app::identity::IdentityPolicy::new(store.clone()));
        let graph = Arc::new(rapport_app::graph::GraphService::new(store.clone()));
        let email = Arc::new(rapport_app::email::Email::new(store.clone()));
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
                web,
                identity,
                sign_ins: Arc::new(Default::default()),
                portal_links: Arc::new(Default::default()),
                uploads: Arc::new(Default::default()),
                graph,
                email,
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
        // E-mail is handed to the relay from here too.
        tokio::spawn(rapport_app::email::run(
            self.email.clone(),
            self._workers.subscribe(),
        ));
        tokio::spawn(rapport_app::email::campaigns::run(
            self.email.clone(),
            self._workers.subscribe(),
        ));
        tokio::spawn(rapport_app::email::mailbox::run(
            self.email.clone(),
            self._workers.subscribe(),
        ));
        // Support: the mailbox customers write to, and snoozed tickets woken.
        tokio::spawn(rapport_app::tickets::run(
            self.store.clone(),
            self.email.clone(),
            self._workers.subscribe(),
        ));
        // Expired points written off and tiers looked at again.
        tokio::spawn(rapport_app::loyalty::run(
            self.store.clone(),
            std::time::Duration::from_secs(10),
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

/// The document's frame; the paths come from the routes (`api`).
#[derive(OpenApi)]
#[openapi(info(
    title = "Rapport",
    description = "Self-hosted social CRM. Ingestion speaks the Segment HTTP Tracking API; errors are RFC 9457 problem+json."
))]
pub struct ApiDoc;

/// The API's routes, each declared once: `routes!` takes a handler's path and method
/// from its `#[utoipa::path]`, so the path served and the path documented cannot drift.
fn api() -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(tracking::identify))
        .routes(routes!(tracking::track))
        .routes(routes!(tracking::page))
        .routes(routes!(tracking::screen))
        .routes(routes!(tracking::group))
        .routes(routes!(tracking::alias))
        .routes(routes!(tracking::batch))
        .routes(routes!(tracking::import))
        .routes(routes!(tracking::identify_short))
        .routes(routes!(tracking::track_short))
        .routes(routes!(tracking::page_short))
        .routes(routes!(tracking::screen_short))
        .routes(routes!(tracking::group_short))
        .routes(routes!(tracking::alias_short))
        .routes(routes!(tracking::batch_short))
        .routes(routes!(browser::sdk_settings))
        .routes(routes!(browser::source_config))
        // Browsers call these from the brand's pages: CORS, preflights included.
        .layer(browser::cors())
        // Sizes are checked after decompression with a precise error; this only stops
        // absurd uploads early.
        .layer(DefaultBodyLimit::max(8 * 1024 * 1024));
    let bulk = OpenApiRouter::new()
        .routes(routes!(tracking::import_jsonl))
        .layer(DefaultBodyLimit::max(tracking::MAX_JSONL_BYTES));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(v1)
        .merge(bulk)
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::stats))
        .routes(routes!(ops::list_keys, ops::create_key))
        .routes(routes!(ops::revoke_key, ops::set_key_access))
        .routes(routes!(browser::web_settings, browser::set_web_settings))
        .routes(routes!(
            tracking::identity_settings,
            tracking::set_identity_settings
        ))
        .routes(routes!(tracking::ingestion_issues))
        .routes(routes!(profiles::search))
        .routes(routes!(profiles::lookup))
        .routes(routes!(profiles::get))
        .routes(routes!(profiles::timeline))
        .routes(routes!(profiles::patch_traits))
        .routes(routes!(profiles::consents, profiles::set_consent))
        .routes(routes!(profiles::unmerge))
        .routes(routes!(profiles::detach))
        .routes(routes!(profiles::undo_detach))
        .routes(routes!(profiles::detaches))
        .routes(routes!(profiles::merge))
        .routes(routes!(privacy::export))
        .routes(routes!(privacy::erase))
        .routes(routes!(privacy::audit_log))
        .routes(routes!(privacy::ad_audience))
        .routes(routes!(privacy::retention, privacy::set_retention))
        .routes(routes!(privacy::run_retention))
        .routes(routes!(insight::audience))
        .routes(routes!(insight::breakdown))
        .routes(routes!(insight::settings, insight::set_settings))
        .routes(routes!(portal::settings, portal::set_settings))
        .routes(routes!(graph::add))
        .routes(routes!(graph::relationships))
        .routes(routes!(graph::pair))
        .routes(routes!(graph::network))
        .routes(routes!(graph::close))
        .routes(routes!(graph::social))
        .routes(routes!(graph::influence))
        .routes(routes!(graph::attribution))
        .routes(routes!(graph::path))
        .routes(routes!(graph::top))
        .routes(routes!(graph::communities))
        .routes(routes!(graph::recompute))
        .routes(routes!(graph::latest_run))
        .routes(routes!(text::analyse))
        .routes(routes!(text::sentiment))
        .routes(routes!(text::trends))
        .routes(routes!(text::catalogue, text::set_catalogue))
        .routes(routes!(text::products))
        .routes(routes!(segments::preview))
        .routes(routes!(segments::list, segments::create))
        .routes(routes!(segments::get, segments::update, segments::delete))
        .routes(routes!(segments::refresh))
        .routes(routes!(segments::members))
        .routes(routes!(segments::sizes))
        .routes(routes!(segments::of_profile))
        .routes(routes!(segments::micro))
        .routes(routes!(segments::refresh_micro))
        .routes(routes!(rules::list, rules::set))
        .routes(routes!(rules::dry_run))
        .routes(routes!(rules::firings))
        .routes(routes!(rules::tasks))
        .routes(routes!(rules::outbox))
        .routes(routes!(rules::offers, rules::set_offers))
        .routes(routes!(rules::next_best_offer))
        .routes(routes!(rules::retry))
        .routes(routes!(chain::list, chain::add))
        .routes(routes!(chain::delete))
        .routes(routes!(chain::add_contract))
        .routes(routes!(chain::sync))
        .routes(routes!(chain::holders))
        .routes(routes!(chain::of_profile))
        .routes(routes!(chain::nonce))
        .routes(routes!(chain::verify))
        .routes(routes!(chain::rewards_list, chain::reward))
        .routes(routes!(chain::reward_get))
        .routes(routes!(chain::reward_retry))
        .routes(routes!(scores::list))
        .routes(routes!(scores::set_rfm))
        .routes(routes!(scores::set_custom))
        .routes(routes!(scores::recompute))
        .routes(routes!(scores::of_profile))
        .routes(routes!(text::lexicon, text::set_lexicon))
        .routes(routes!(text::topics, text::set_topics))
        .routes(routes!(text::topic_summary))
        .routes(routes!(text::discover_topics))
        .routes(routes!(text::topic_trends))
        .routes(routes!(text::settings, text::set_settings))
        .routes(routes!(text::event_analysis))
        .routes(routes!(text::signals))
        .routes(routes!(profiles::conflicts))
        .routes(routes!(profiles::merges))
        .routes(routes!(email::settings, email::set_settings))
        .routes(routes!(email::domains, email::add_domain))
        .routes(routes!(email::templates, email::create_template))
        .routes(routes!(
            email::template,
            email::update_template,
            email::delete_template
        ))
        .routes(routes!(email::preview))
        .routes(routes!(email::send))
        .routes(routes!(email::inbound))
        .routes(routes!(email::list_campaigns, email::create_campaign))
        .routes(routes!(email::campaign))
        .routes(routes!(email::campaign_action))
        .routes(routes!(email::campaign_test))
        .routes(routes!(email::messages))
        .routes(routes!(email::message))
        .routes(routes!(email::suppressions, email::suppress))
        .routes(routes!(email::unsuppress))
        .routes(routes!(email::of_profile))
        .routes(routes!(email::set_primary))
        .routes(routes!(tickets::list, tickets::open))
        .routes(routes!(tickets::get, tickets::update))
        .routes(routes!(tickets::reply))
        .routes(routes!(tickets::of_profile))
        .routes(routes!(tickets::settings, tickets::set_settings))
        .routes(routes!(loyalty::settings, loyalty::set_settings))
        .routes(routes!(loyalty::of_profile))
        .routes(routes!(loyalty::redeem))
        .routes(routes!(loyalty::adjust))
        .routes(routes!(loyalty::convert))
        .routes(routes!(loyalty::competitors, loyalty::set_competitors))
        .routes(routes!(referrals::settings, referrals::set_settings))
        .routes(routes!(referrals::of_profile))
        .routes(routes!(referrals::list))
        .routes(routes!(referrals::leaderboard))
        .routes(routes!(loyalty::rewards, loyalty::add_reward))
        .routes(routes!(loyalty::put_reward))
        .routes(routes!(loyalty::add_codes))
        .routes(routes!(loyalty::summary))
        .routes(routes!(loyalty::expire))
        .routes(routes!(tickets::inbound))
        .routes(routes!(community::ask))
        .routes(routes!(community::suggest))
        .routes(routes!(community::answer))
        .routes(routes!(community::comment))
        .routes(routes!(
            community::get,
            community::moderate,
            community::edit
        ))
        .routes(routes!(community::list))
        .routes(routes!(community::accept))
        .routes(routes!(community::vote))
        .routes(routes!(community::merge))
        .routes(routes!(community::idea_status))
        .routes(routes!(community::reputation))
        .routes(routes!(community::search))
        .routes(routes!(community::settings, community::set_settings))
        .routes(routes!(kb::list, kb::create))
        .routes(routes!(kb::get, kb::update))
        .routes(routes!(kb::review))
        .routes(routes!(kb::propose))
        .routes(routes!(kb::revisions))
        .routes(routes!(kb::revision))
        .routes(routes!(kb::decide))
        .routes(routes!(kb::search))
        .routes(routes!(kb::deflection))
}

async fn not_found(uri: axum::http::Uri) -> problem::ApiError {
    problem::ApiError::NotFound(format!("no route for {}", uri.path()))
}

pub fn router(state: AppState) -> Router {
    // The paths come from the routes; errors and keys are added to every one of them.
    let (api, mut doc) = api().split_for_parts();
    utoipa::Modify::modify(&Security, &mut doc);
    let doc = Arc::new(doc);
    api.merge(ui::routes())
        .merge(portal::routes())
        .merge(community_pages::routes())
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .route("/connect", get(chain::connect_page))
        .route("/r/{code}", get(referrals::link))
        // What e-mail links point to: no key, the signed token is the authority.
        .route("/e/o/{token}", get(email::open))
        .route("/e/c/{token}", get(email::click))
        .route(
            "/e/u/{token}",
            get(email::unsubscribe_page).post(email::unsubscribe),
        )
        .route(
            "/e/r/{token}",
            get(tickets::rating).post(tickets::rating_comment),
        )
        // analytics-js asks with a trailing slash.
        .route(
            "/sourceConfig/",
            get(browser::source_config).layer(browser::cors()),
        )
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
    // The peer's address is the client's (rate limits, `context.ip`).
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
