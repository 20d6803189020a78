//! The dashboard and a page per capability: rules and offers, network, insights,
//! on-chain, settings (users and API keys).

use axum::extract::{Path, State};
use axum::response::Redirect;
use axum::Form;
use maud::{html, Markup};
use rapport_domain::apikey::{Scope, Trust};
use rapport_domain::time::{now_millis, to_datetime};
use rapport_store::ScoreOrder;
use std::collections::HashMap;

use super::auth::{Staff, UiError, UiResult};
use super::charts;
use super::layout::thousands;
use super::layout::{csrf, page};
use super::names::Names;
use crate::AppState;

const DAY: i64 = 86_400_000;

fn pct(a: i64, b: i64) -> String {
    if b == 0 {
        "—".into()
    } else {
        format!("{:.0}%", a as f64 * 100.0 / b as f64)
    }
}

pub async fn dashboard(State(state): State<AppState>, staff: Staff) -> UiResult<Markup> {
    let o = overview(&state.store, &state.ui_cache).await?;
    let segs = state.store.segments().await?;
    let mut top_segs: Vec<_> = segs.iter().collect();
    top_segs.sort_by_key(|s| std::cmp::Reverse(s.size));
    let influencers = state
        .store
        .top_graph_scores(ScoreOrder::Pagerank, None, 5)
        .await?;
    let names = Names::of(&state.store, influencers.iter().map(|g| g.profile_id)).await?;
    let sentiment = sentiment(&state.store, &state.ui_cache, 30).await?;
    let topics = trends(&state).await?;
    let days: Vec<(String, f64)> = o
        .events_per_day
        .iter()
        .map(|(d, n)| (to_datetime(d * DAY).format("%m-%d").to_string(), *n as f64))
        .collect();
    let channels: Vec<(String, f64)> = o
        .channels
        .iter()
        .take(8)
        .map(|(c, n)| (c.clone(), *n as f64))
        .collect();
    let sent: Vec<(String, f64)> = sentiment
        .iter()
        .map(|d| (d.day[5..].to_string(), d.mean))
        .collect();
    let anonymous = o.people - o.identified;
    Ok(page(
        &staff,
        "Dashboard",
        "/",
        html! {
            @if o.people == 0 {
                div.empty { "No data yet. Send events to " code { "POST /v1/track" } " with a write key, import a file with "
                    code { "rapport import" } ", or start with " code { "rapport serve --demo" } "." }
            }
            div.grid {
                div.card { div.muted { "People" } div.kpi { (thousands(o.people)) } a href="/people" { "Find someone →" } }
                div.card { div.muted { "Identified · anonymous" } div.kpi { (thousands(o.identified)) " " small { "· " (thousands(anonymous)) } }
                    div.small.muted { (pct(o.identified, o.people)) " identified" } }
                div.card { div.muted { "New this week" } div.kpi { (thousands(o.new_this_week)) } }
                div.card { div.muted { "Web2 only · web3 only · both" } div.kpi { (thousands(o.web2_only)) " " small { "· " (thousands(o.web3_only)) " · " (thousands(o.both)) } }
                    a href="/onchain" { "On-chain →" } }
                div.card.wide { (charts::bars(&days, "events", "Events per day (last 30 days)")) }
                div.card.wide { (charts::bars(&channels, "events", "Channel mix (30 days)")) }
                div.card {
                    h2 { "Top segments" }
                    @if top_segs.is_empty() { p.empty { "No segments yet. " a href="/segments" { "Create one" } "." } }
                    table { @for s in top_segs.iter().take(6) { tr { td { a href=(format!("/segments/{}", s.id)) { (s.name) } } td.num { (thousands(s.size)) } } } }
                }
                div.card.wide { (charts::line(&sent, -1.0, 1.0, "mean sentiment", "Sentiment per day (VADER compound, 30 days)")) a href="/insights" { "Insights →" } }
                div.card {
                    h2 { "Trending topics" }
                    @if topics.is_empty() { p.empty { "Nothing rising this week." } }
                    @for t in topics.iter().take(6) { span.chip title=(format!("{} texts this week", t.this_week)) { (t.term) } }
                }
                div.card.half {
                    h2 { "Top influencers" }
                    @if influencers.is_empty() { p.empty { "The network is computed from relationships every 15 minutes." } }
                    table { @for g in &influencers { tr { td { (names.link(g.profile_id)) }
                        td.num { (format!("{:.0}", g.pagerank_pct * 100.0)) "th pct" } td.num { (g.reach2) " reach" } } } }
                    a href="/network" { "Network →" }
                }
            }
        },
    ))
}

/// Keeps the dashboard's costly figures computed, so even the first visit after a
/// start or a quiet hour is served from the cache.
pub async fn warm(
    store: rapport_store::DynStore,
    cache: std::sync::Arc<super::Cache>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let _ = overview(&store, &cache).await;
        let _ = sentiment(&store, &cache, 30).await;
        let _ = sentiment(&store, &cache, 90).await;
        let _ = trends_in(&store, &cache).await;
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// People and events in the last 30 days (cached).
async fn overview(
    store: &rapport_store::DynStore,
    cache: &std::sync::Arc<super::Cache>,
) -> UiResult<rapport_store::Overview> {
    let store = store.clone();
    cached_in(cache, "overview", move || async move {
        let now = now_millis();
        let o = store.overview(now - 30 * DAY, now - 7 * DAY).await?;
        Ok(serde_json::to_value(o).unwrap_or_default())
    })
    .await
}

/// Mean sentiment per day over the last `days` (cached; 30 or 90).
async fn sentiment(
    store: &rapport_store::DynStore,
    cache: &std::sync::Arc<super::Cache>,
    days: i64,
) -> UiResult<Vec<rapport_domain::model::SentimentDay>> {
    let store = store.clone();
    let key = if days == 30 {
        "sentiment30"
    } else {
        "sentiment90"
    };
    cached_in(cache, key, move || async move {
        let now = now_millis();
        let s = store.sentiment_series(None, now - days * DAY, now).await?;
        Ok(serde_json::to_value(s).unwrap_or_default())
    })
    .await
}

/// A cached figure, read back into its type.
async fn cached_in<T, F, Fut>(
    cache: &std::sync::Arc<super::Cache>,
    key: &'static str,
    compute: F,
) -> UiResult<T>
where
    T: serde::de::DeserializeOwned,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<serde_json::Value, rapport_store::StoreError>>
        + Send
        + 'static,
{
    let v = cache.get(key, compute).await?;
    serde_json::from_value((*v).clone()).map_err(|e| UiError::Internal(e.to_string()))
}

/// Rising terms this week (cached: they read five weeks of texts).
async fn trends(state: &AppState) -> UiResult<Vec<TrendRow>> {
    trends_in(&state.store, &state.ui_cache).await
}

async fn trends_in(
    store: &rapport_store::DynStore,
    cache: &std::sync::Arc<super::Cache>,
) -> UiResult<Vec<TrendRow>> {
    let store = store.clone();
    cached_in(cache, "trends", move || async move {
        let t = rapport_app::text::trends(&store, 3, 15).await?;
        Ok(serde_json::json!(t
            .iter()
            .map(
                |t| serde_json::json!({"term": t.term, "this_week": t.this_week,
            "weekly_before": t.weekly_before, "examples": t.examples})
            )
            .collect::<Vec<_>>()))
    })
    .await
}

#[derive(serde::Deserialize)]
struct TrendRow {
    term: String,
    this_week: usize,
    weekly_before: f64,
    examples: Vec<String>,
}

pub async fn rules(State(state): State<AppState>, staff: Staff) -> UiResult<Markup> {
    let rules = rapport_app::rules::rules(&state.store).await?;
    let firings = state.store.firings(None, 1000).await?;
    let offers = rapport_app::offers::offers(&state.store).await?;
    let tasks = state.store.tasks(10).await?;
    let deliveries = state.store.outbound(None, 20).await?;
    let names = Names::of(
        &state.store,
        tasks
            .iter()
            .map(|t| t.profile_id)
            .chain(deliveries.iter().map(|d| d.profile_id))
            .chain(firings.iter().take(10).map(|f| f.profile_id)),
    )
    .await?;
    let mut count: HashMap<&str, usize> = HashMap::new();
    for f in &firings {
        *count.entry(f.rule.as_str()).or_default() += 1;
    }
    let market = staff.role.can_market();
    Ok(page(
        &staff,
        "Rules & offers",
        "/rules",
        html! {
            div.grid {
                div.card.wide {
                    h2 { "Rules" }
                    @if rules.is_empty() { p.empty { "No rules yet: build one with New rule (or PUT /api/rules, docs/rules.md); a dry run shows what would fire." } }
                    @if market { p { a href="/rules/new" { "New rule →" } } }
                    table { tr { th { "Name" } th { "When" } th { "Where" } th { "Then" } th.num { "Firings (last 1,000)" } th { "" } }
                        @for r in &rules { tr {
                            td { (r.name) } td.small { code { (r.when) } } td.small { @if let Some(c) = &r.condition { code { (c) } } }
                            td.small { @for a in &r.then { span.chip { (a.get("action").and_then(|v| v.as_str()).unwrap_or("")) } } }
                            td.num { (count.get(r.name.as_str()).copied().unwrap_or(0)) }
                            td { @if r.dry_run && r.enabled { span.badge title="Shadow mode: firings are recorded, nothing is done" { "shadow" } " " }
                                @if !r.enabled { span.badge { "off" } } @else if market {
                                form method="post" action="/rules/dry-run" {
                                    (csrf(&staff)) input type="hidden" name="rule" value=(r.name);
                                    button.secondary type="submit" { "Dry run (7 days)" }
                                }
                            }
                            @if market { a.small href=(format!("/rules/new?name={}", super::layout::urlencode(&r.name))) { "Edit" } } }
                        } }
                    }
                }
                div.card.wide {
                    h2 { "Offers" }
                    @if offers.is_empty() { p.empty { "No offers yet: add one below (or PUT /api/offers)." } }
                    table {
                        @if !offers.is_empty() { tr { th { "Offer" } th.num { "Priority" } th { "Eligible" } th { "Description" } } }
                        @for o in &offers { tr {
                        td { @if market { a href=(format!("/offers/new?name={}", super::layout::urlencode(&o.name))) { (o.name) } } @else { (o.name) } }
                        td.num { (o.priority) } td.small { code { (o.eligible) } } td.small.muted { (o.description) } } } }
                    @if market { p { a href="/offers/new" { "New offer →" } } }
                }
                div.card.wide {
                    h2 { "Webhook deliveries" }
                    @if deliveries.is_empty() { p.empty { "No webhook called yet: a rule's webhook action queues one per firing." } }
                    table {
                        @if !deliveries.is_empty() { tr { th { "Rule" } th { "Person" } th { "To" } th { "State" } th.num { "Attempts" } th { "Last error" } th { "" } } }
                        @for d in &deliveries { tr {
                            td.small { (d.rule) } td { (names.link(d.profile_id)) } td.small { code { (d.url) } }
                            td { span.badge { (d.status) } } td.num { (d.attempts) "/" (d.max_attempts) }
                            td.small.muted { (d.last_error.clone().unwrap_or_default()) }
                            td { @if d.status != "delivered" && staff.role.can_admin() {
                                form method="post" action=(format!("/outbox/{}/retry", d.id)) {
                                    (csrf(&staff)) button.secondary type="submit" { "Send again" }
                                }
                            } }
                        } }
                    }
                }
                div.card.wide {
                    h2 { "Latest firings" }
                    @if firings.is_empty() { p.empty { "No rule has fired yet: rules act on events received after they are saved." } }
                    table {
                        @if !firings.is_empty() { tr { th { "When" } th { "Rule" } th { "Person" } th { "What it did" } } }
                        @for f in firings.iter().take(10) { tr {
                            td.small.muted { (super::layout::when(to_datetime(f.at))) } td.small { (f.rule) }
                            td { (names.link(f.profile_id)) }
                            td.small { @for a in f.actions.as_array().into_iter().flatten() {
                                span.chip { (a["action"].as_str().unwrap_or("")) @if a["dry_run"] == true { " (would)" } @else if a.get("skipped").is_some() { " (skipped)" } } " "
                            } }
                        } }
                    }
                }
                div.card.wide {
                    h2 { "Latest tasks" }
                    @if tasks.is_empty() { p.empty { "No tasks opened by rules: a rule's task action opens one for staff." } }
                    table {
                        @if !tasks.is_empty() { tr { th { "When" } th { "Person" } th { "Task" } th { "Rule" } } }
                        @for t in &tasks { tr { td.small.muted { (super::layout::when(to_datetime(t.created_at))) } td { (names.link(t.profile_id)) } td { (t.title) } td.small.muted { (t.rule) } } }
                    }
                }
            }
        },
    ))
}

pub async fn network(State(state): State<AppState>, staff: Staff) -> UiResult<Markup> {
    let infl = state
        .store
        .top_graph_scores(ScoreOrder::Pagerank, None, 15)
        .await?;
    let conn = state
        .store
        .top_graph_scores(ScoreOrder::Betweenness, None, 15)
        .await?;
    let comms = state.store.communities(12).await?;
    let run = state.store.latest_graph_run().await?;
    let method = run.as_ref().map(|r| {
        let m = rapport_app::graph::method_of(&r.summary);
        let q = r.summary["communities"]["modularity"]
            .as_f64()
            .unwrap_or(0.0);
        (m.algorithm.name(), m.resolution, q)
    });
    let names = Names::of(
        &state.store,
        infl.iter().chain(conn.iter()).map(|g| g.profile_id),
    )
    .await?;
    let bars: Vec<(String, f64)> = comms
        .iter()
        .map(|(c, n)| (format!("#{c}"), *n as f64))
        .collect();
    let table = |rows: &[rapport_domain::relationship::GraphScores], what: &str| {
        html! {
            @if rows.is_empty() { p.empty { "Not computed yet: relationships come from events; the graph is recomputed every 15 minutes." } }
            table { tr { th { "Person" } th.num title="Percentile among everyone in the graph" { (what) " pct" } th.num title="People within two hops" { "Reach" } th.num { "Comm." } }
                @for g in rows { tr { td { (names.link(g.profile_id)) }
                    td.num { (format!("{:.0}", if what == "PageRank" { g.pagerank_pct } else { g.betweenness_pct } * 100.0)) }
                    td.num { (g.reach2) } td.num { (g.community) } } } }
        }
    };
    Ok(page(
        &staff,
        "Network",
        "/network",
        html! {
            div.grid {
                @if staff.role.can_market() {
                    div.card.wide {
                        form.inline method="post" action="/network/recompute" {
                            (csrf(&staff))
                            label { "Communities by " select name="communities" style="width:auto;display:inline-block" {
                                @for a in ["louvain", "leiden"] {
                                    option value=(a) selected[method.as_ref().is_some_and(|m| m.0 == a)] { (a) }
                                }
                            } }
                            " "
                            label title="1: modularity; lower gives fewer, larger communities" { "resolution "
                                input type="number" name="resolution" step="0.05" min="0.05" max="100"
                                    value=(method.as_ref().map_or(1.0, |m| m.1)) style="width:5em";
                            }
                            " "
                            button.secondary type="submit" { "Recompute the network now" }
                        }
                        " " span.small.muted { "Relationships are inferred from events and scored every 15 minutes by the server." }
                    }
                }
                div.card.half { h2 { "Influencers" } (table(&infl, "PageRank")) }
                div.card.half { h2 { "Connectors" } (table(&conn, "Betweenness")) }
                div.card.wide {
                    (charts::bars(&bars, "people", "Largest communities"))
                    @if let Some((a, r, q)) = &method {
                        p.small.muted { "Found by " (a) " at resolution " (r) ", modularity " (format!("{q:.3}")) "." }
                    }
                }
            }
        },
    ))
}

pub async fn insights(State(state): State<AppState>, staff: Staff) -> UiResult<Markup> {
    let series = sentiment(&state.store, &state.ui_cache, 90).await?;
    let trends = trends(&state).await?;
    let points: Vec<(String, f64)> = series
        .iter()
        .map(|d| (d.day[5..].to_string(), d.mean))
        .collect();
    let volume: Vec<(String, f64)> = series
        .iter()
        .map(|d| (d.day[5..].to_string(), d.texts as f64))
        .collect();
    Ok(page(
        &staff,
        "Insights",
        "/insights",
        html! {
            div.grid {
                div.card.wide { (charts::line(&points, -1.0, 1.0, "mean sentiment", "Sentiment per day (90 days)")) }
                div.card.wide { (charts::bars(&volume, "texts", "Texts per day")) }
                div.card.wide {
                    h2 { "Rising terms this week, with example texts" }
                    @if trends.is_empty() { p.empty { "Nothing rising this week." } }
                    table { tr { th { "Term" } th.num { "This week" } th.num { "Weekly before" } th { "Examples" } }
                        @for t in &trends { tr { td { strong { (t.term) } } td.num { (t.this_week) } td.num { (format!("{:.1}", t.weekly_before)) }
                            td.small { @for e in t.examples.iter().take(2) { div { "“" (e.chars().take(140).collect::<String>()) "”" } } } } } }
                }
            }
        },
    ))
}

pub async fn onchain(State(state): State<AppState>, staff: Staff) -> UiResult<Markup> {
    let chains = state.store.chains().await?;
    let contracts = state.store.contracts().await?;
    let rewards = state.store.rewards(None, 15).await?;
    let names = Names::of(&state.store, rewards.iter().map(|r| r.profile_id)).await?;
    Ok(page(
        &staff,
        "On-chain",
        "/onchain",
        html! {
            div.grid {
                div.card.wide {
                    h2 { "Chains" }
                    @if chains.is_empty() { p.empty { "No chain is configured. Add one with POST /api/chains or "
                        code { "rapport chain add --id eip155:1 --rpc-url …" } " (docs/web3.md)." } }
                    table { tr { th { "Chain" } th.num { "Synced to" } th.num { "Head" } th.num { "Lag" } th { "Last error" } }
                        @for c in &chains { tr { td { (c.name) " " span.badge { (c.id) } } td.num { (c.cursor_block.map(|b| b.to_string()).unwrap_or_else(|| "—".into())) }
                            td.num { (c.head_block.map(|b| b.to_string()).unwrap_or_else(|| "—".into())) }
                            td.num { (match (c.head_block, c.cursor_block) { (Some(h), Some(b)) => (h - b).to_string(), _ => "—".into() }) }
                            td.small { (c.last_error.clone().unwrap_or_default()) } } } }
                }
                div.card {
                    h2 { "Tokens followed" }
                    @if contracts.is_empty() { p.empty { "No token contract followed yet." } }
                    table { @for c in &contracts { tr { td { (c.symbol) " " span.badge { (c.standard) } } td.small { code { (c.address) } } } } }
                }
                div.card {
                    h2 { "Latest token rewards" }
                    @if rewards.is_empty() { p.empty { "No rewards sent yet." } }
                    table { @for r in &rewards { tr { td { (names.link(r.profile_id)) } td.num { (r.amount) } td { span.badge { (r.status) } } } } }
                }
                @if staff.role.can_admin() {
                    div.card {
                        h2 { "Add a chain" }
                        form method="post" action="/onchain/chains" {
                            (csrf(&staff))
                            label for="chain-id" { "Chain (CAIP-2)" } input #chain-id name="id" required placeholder="eip155:1";
                            label for="chain-name" { "Name" } input #chain-name name="name" placeholder="Ethereum";
                            label for="rpc" { "Node URL (JSON-RPC; kept secret)" } input #rpc name="rpc_url" type="password" required autocomplete="off";
                            label for="confirmations" { "Confirmations" } input #confirmations name="confirmations" inputmode="numeric" placeholder="12";
                            button type="submit" { "Add chain" }
                        }
                    }
                    @if !chains.is_empty() {
                        div.card {
                            h2 { "Follow a token" }
                            form method="post" action="/onchain/tokens" {
                                (csrf(&staff))
                                label for="t-chain" { "Chain" }
                                select #t-chain name="chain" { @for c in &chains { option value=(c.id) { (c.name) " (" (c.id) ")" } } }
                                label for="t-address" { "Contract address" } input #t-address name="address" required placeholder="0x…";
                                label for="t-standard" { "Standard" } select #t-standard name="standard" { option value="erc20" { "ERC-20" } option value="erc721" { "ERC-721" } }
                                label for="t-symbol" { "Symbol" } input #t-symbol name="symbol" required placeholder="LOYAL";
                                label { input type="checkbox" name="brand_owned" value="yes"; " The brand's own token" }
                                button type="submit" { "Follow token" }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// Adds a chain from the On-chain page (admins), as `POST /api/chains` does: the node
/// is asked which chain it serves; a refusal is shown naming the field.
pub async fn add_chain(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_admin(), "add chains")?;
    let get = |k: &str| {
        f.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let confirmations = match get("confirmations") {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| UiError::Invalid("confirmations: a whole number of blocks".into()))?,
        ),
    };
    rapport_app::chain::add_chain(
        &state.store,
        rapport_app::chain::ChainInput {
            id: get("id").unwrap_or_default(),
            name: get("name"),
            rpc_url: get("rpc_url").unwrap_or_default(),
            confirmations,
            start_block: None,
            batch_blocks: None,
            brand_wallets: Vec::new(),
            enabled: None,
        },
    )
    .await?;
    Ok(Redirect::to("/onchain"))
}

/// Follows a token contract from the On-chain page (admins), as the API does.
pub async fn add_token(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_admin(), "follow tokens")?;
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    rapport_app::chain::add_contract(
        &state.store,
        &get("chain"),
        rapport_app::chain::ContractInput {
            address: get("address"),
            standard: get("standard"),
            symbol: get("symbol"),
            name: None,
            decimals: None,
            brand_owned: f.contains_key("brand_owned"),
        },
    )
    .await?;
    Ok(Redirect::to("/onchain"))
}

/// Sends a webhook delivery again (admins), as `POST /api/outbox/{id}/retry` does.
pub async fn retry_delivery(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_admin(), "send webhooks again")?;
    rapport_app::outbound::retry(&state.store, id).await?;
    Ok(Redirect::to("/rules"))
}

/// Recomputes the relationship graph now (marketers and admins; `serve` does it every
/// 15 minutes).
pub async fn recompute_graph(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "recompute the network")?;
    // A recompute already running, or the store failing, is said on the error page.
    let said = |e: rapport_app::graph::GraphError| UiError::Invalid(e.to_string());
    let resolution = match f.get("resolution").map(|r| r.trim()) {
        None | Some("") => None,
        Some(r) => Some(r.parse::<f64>().map_err(|_| {
            UiError::Invalid("resolution: must be a number above 0 and at most 100".into())
        })?),
    };
    let method =
        rapport_app::graph::community_method(f.get("communities").map(String::as_str), resolution)
            .map_err(said)?;
    rapport_app::graph::infer_all(&state.store)
        .await
        .map_err(said)?;
    state
        .graph
        .recompute(method, &|_, _, _| {})
        .await
        .map_err(said)?;
    Ok(Redirect::to("/network"))
}

pub async fn settings(State(state): State<AppState>, staff: Staff) -> UiResult<Markup> {
    let admin = staff.role.can_admin();
    let users = if admin {
        state.store.users().await?
    } else {
        Vec::new()
    };
    let keys = if admin {
        state.store.api_keys().await?
    } else {
        Vec::new()
    };
    let web = state.web.settings().await?;
    Ok(page(
        &staff,
        "Settings",
        "/settings",
        html! {
            @if !admin { p.empty { "Users and API keys are managed by admins." } }
            @if admin {
                div.grid {
                    div.card {
                        h2 { "Privacy" }
                        p { a href="/audit" { "The audit of staff access" } ": who opened, exported, erased or changed which person, keys and users." }
                        p { "Customers manage their own data at " a href="/me" { "/me" } " (see docs/privacy.md)." }
                    }
                    div.card {
                        h2 { "Users" }
                        table { tr { th { "E-mail" } th { "Role" } th { "Last sign-in" } }
                            @for u in &users { tr { td { (u.email) } td { span.badge { (u.role) } } td.small { (u.last_login_at.map(|t| to_datetime(t).format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "never".into())) } } } }
                        form method="post" action="/settings/users" {
                            (csrf(&staff))
                            label for="new-email" { "E-mail" } input #new-email type="email" name="email" required;
                            label for="new-password" { "Password (10+ characters)" } input #new-password type="password" name="password" required minlength="10";
                            label for="new-role" { "Role" } select #new-role name="role" { @for r in ["viewer", "agent", "marketer", "admin", "insight"] { option value=(r) { (r) } } }
                            button type="submit" { "Create user" }
                        }
                    }
                    div.card {
                        h2 { "API keys" }
                        table { tr { th { "Prefix" } th { "Scope" } th { "Trust" } th { "Label" } }
                            @for k in &keys { tr {
                                td { code { (k.prefix) } }
                                td { (k.scope.as_str()) }
                                td { (k.access.trust.as_str()) }
                                td { (k.label) @if k.revoked { " " span.badge { "revoked" } } }
                            }
                            @if k.access.trust == Trust::Browser && !k.revoked { tr { td colspan="4" {
                                form.inline method="post" action=(format!("/settings/keys/{}/origins", k.id)) {
                                    (csrf(&staff))
                                    label for=(format!("origins-{}", k.id)) { "Origins allowed to use " code { (k.prefix) } " (one per line; none: any)" }
                                    textarea id=(format!("origins-{}", k.id)) name="origins" rows="2" { (k.access.origins.join("\n")) }
                                    button type="submit" { "Save origins" }
                                }
                            } } }
                            } }
                        form method="post" action="/settings/keys" {
                            (csrf(&staff))
                            label for="key-label" { "Label" } input #key-label name="label" placeholder="website tracking";
                            label for="key-scope" { "Scope" } select #key-scope name="scope" {
                                option value="browser" { "browser (public, for web pages)" }
                                option value="write" { "write (secret, for servers)" }
                                option value="admin" { "admin" }
                            }
                            label for="key-origins" { "For a browser key: origins allowed (one per line, e.g. https://shop.example)" }
                            textarea #key-origins name="origins" rows="2" {}
                            button type="submit" { "Create key" }
                        }
                    }
                    div.card {
                        h2 { "Website tracking" }
                        p.small { "Applies to browser keys. Install " code { "@segment/analytics-next" } " or " code { "@rudderstack/analytics-js" } " and point them here: see the README, \"Track your website\"." }
                        form method="post" action="/settings/web" {
                            (csrf(&staff))
                            label for="web-ip" { "Client addresses on events" }
                            select #web-ip name="ip" {
                                @for (v, t) in [("truncate", "truncated (IPv4 /24, IPv6 /48)"), ("full", "kept whole"), ("none", "not kept")] {
                                    option value=(v) selected[serde_json::to_value(web.ip).ok().and_then(|x| x.as_str().map(str::to_string)).as_deref() == Some(v)] { (t) }
                                }
                            }
                            label for="web-key" { "Requests per second per browser key" }
                            input #web-key type="number" name="rate_per_key" min="1" value=(web.rate_per_key);
                            label for="web-address" { "Requests per second per visitor address" }
                            input #web-address type="number" name="rate_per_address" min="1" value=(web.rate_per_address);
                            label.check { input type="checkbox" name="keep_bots" value="true" checked[web.keep_bots]; "Keep events from bots and crawlers" }
                            label.check { input type="checkbox" name="trust_forwarded_for" value="true" checked[web.trust_forwarded_for]; "Behind a reverse proxy: take the address from X-Forwarded-For" }
                            button type="submit" { "Save" }
                        }
                    }
                }
            }
        },
    ))
}

pub async fn create_user(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_admin(), "manage users")?;
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let u = rapport_app::users::create(&state.store, get("email"), get("password"), get("role"))
        .await?;
    rapport_app::privacy::audit(
        &state.store,
        &format!("ui:{}", staff.user.email),
        "user.create",
        format!("user:{}", u.id),
        serde_json::json!({"role": u.role}),
    )
    .await?;
    Ok(Redirect::to("/settings"))
}

pub async fn create_key(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Markup> {
    staff.check(&f)?;
    staff.require(staff.role.can_admin(), "manage API keys")?;
    let (scope, trust) = match f.get("scope").map(String::as_str) {
        Some("admin") => (Scope::Admin, Trust::Server),
        Some("write") => (Scope::Write, Trust::Server),
        Some("browser") => (Scope::Write, Trust::Browser),
        _ => {
            return Err(UiError::Invalid(
                "scope: must be browser, write or admin".into(),
            ))
        }
    };
    let label = f.get("label").cloned().unwrap_or_default();
    let origins = if trust == Trust::Browser {
        lines(f.get("origins"))
    } else {
        Vec::new()
    };
    let access = rapport_app::web::key_access(Some(trust), Some(origins))
        .map_err(|e| UiError::Invalid(e.to_string()))?;
    let k = rapport_app::keys::create(&state.store, scope, &label, &access).await?;
    rapport_app::privacy::audit(
        &state.store,
        &format!("ui:{}", staff.user.email),
        "key.create",
        format!("key:{}", k.record.prefix),
        serde_json::json!({"scope": scope.as_str()}),
    )
    .await?;
    Ok(page(
        &staff,
        "New API key",
        "/settings",
        html! {
            div.ok { "Copy this key now: it is shown only once." }
            p { code { (k.secret) } }
            a href="/settings" { "Back to settings" }
        },
    ))
}

/// The non-empty lines of a text area.
fn lines(v: Option<&String>) -> Vec<String> {
    v.map(|s| {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

pub async fn set_key_origins(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_admin(), "manage API keys")?;
    let access = rapport_app::web::key_access(Some(Trust::Browser), Some(lines(f.get("origins"))))
        .map_err(|e| UiError::Invalid(e.to_string()))?;
    state.keys.set_access(id, &access).await?;
    Ok(Redirect::to("/settings"))
}

pub async fn set_web(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_admin(), "change website tracking")?;
    let rate = |k: &str| -> UiResult<u32> {
        f.get(k)
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| UiError::Invalid(format!("{k}: a whole number of requests per second")))
    };
    let ip = serde_json::from_value(serde_json::Value::String(
        f.get("ip").cloned().unwrap_or_default(),
    ))
    .map_err(|_| UiError::Invalid("ip: full, truncate or none".into()))?;
    let w = rapport_app::web::WebSettings {
        ip,
        rate_per_key: rate("rate_per_key")?,
        rate_per_address: rate("rate_per_address")?,
        keep_bots: f.contains_key("keep_bots"),
        trust_forwarded_for: f.contains_key("trust_forwarded_for"),
    };
    state.web.set_settings(w).await.map_err(|e| match e {
        rapport_app::web::WebError::Invalid(f) => UiError::Invalid(f.to_string()),
        rapport_app::web::WebError::Store(s) => s.into(),
    })?;
    Ok(Redirect::to("/settings"))
}

/// What a rule would have done over the last 7 days, doing nothing.
pub async fn dry_run(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Markup> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "run rules")?;
    let name = f.get("rule").cloned().unwrap_or_default();
    let rule = rapport_app::rules::rules(&state.store)
        .await?
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| UiError::NotFound(format!("rule '{name}' not found")))?;
    let v = rapport_app::rules::dry_run(
        &state.store,
        &serde_json::to_value(&rule).unwrap_or_default(),
        7,
    )
    .await?;
    let names = Names::of(
        &state.store,
        v["firings"]
            .as_array()
            .into_iter()
            .flatten()
            .take(50)
            .filter_map(|f| f["profile_id"].as_i64()),
    )
    .await?;
    Ok(page(
        &staff,
        &format!("Dry run: {name}"),
        "/rules",
        dry_run_results(&v, &names),
    ))
}

/// What a dry run found: counts, and who would have been acted on.
pub(crate) fn dry_run_results(v: &serde_json::Value, names: &Names) -> Markup {
    html! {
        div.grid {
            div.card { div.muted { "Matching events (7 days)" } div.kpi { (v["matching_events"]) } }
            div.card { div.muted { "Would fire" } div.kpi { (v["would_fire"]) } }
            div.card { div.muted { "Would not (condition, consent or cap)" } div.kpi { (v["would_not"]) } }
            div.card.wide {
                p.muted { "Nothing was changed. People are judged on their state now." }
                table { tr { th { "Person" } th { "Event" } }
                    @for fr in v["firings"].as_array().into_iter().flatten().take(50) {
                        tr { td { (names.link(fr["profile_id"].as_i64().unwrap_or_default())) } td { "#" (fr["event_id"]) } }
                    }
                }
                a href="/rules" { "Back to rules" }
            }
        }
    }
}
