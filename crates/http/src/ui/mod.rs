//! The staff web app, server-rendered by this binary (maud templates, SVG charts, a few
//! lines of inline script for live search, live segment counts and infinite scroll; no
//! build step). Sign-in with roles (`users`), sessions in a secure cookie, a CSRF token
//! on every form, and a role check on every page and action.

use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

pub mod audience;
pub mod auth;
pub mod charts;
pub mod community;
pub mod conflicts;
pub mod email;
pub mod forms;
pub mod layout;
pub mod loyalty;
pub mod names;
pub mod offer_editor;
pub mod pages;
pub mod people;
pub mod rule_builder;
pub mod score_editor;
pub mod segments;
pub mod tickets;
pub mod timeline;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/", get(pages::dashboard))
        .route("/people", get(people::search_page))
        .route("/ui/search", get(people::search_fragment))
        .route("/support", get(tickets::inbox))
        .route("/support/new", get(tickets::new_page).post(tickets::create))
        .route("/support/{id}", get(tickets::ticket))
        .route("/support/{id}/reply", post(tickets::reply))
        .route("/support/{id}/update", post(tickets::update))
        .route("/loyalty", get(loyalty::page))
        .route("/loyalty/rewards", post(loyalty::add_reward))
        .route("/loyalty/codes", post(loyalty::add_codes))
        .route("/people/{id}/points", post(loyalty::adjust))
        .route("/community-desk", get(community::page))
        .route("/community-desk/articles", post(community::create_article))
        .route(
            "/community-desk/articles/{id}",
            get(community::article).post(community::save_article),
        )
        .route(
            "/community-desk/articles/{id}/review",
            post(community::review),
        )
        .route("/community-desk/revisions/{id}", post(community::decide))
        .route("/community-desk/posts/{id}", post(community::moderate))
        .route("/community-desk/ideas/{id}", post(community::idea))
        .route("/people/conflicts", get(conflicts::page))
        .route("/people/conflicts/merge", post(conflicts::merge))
        .route("/people/{id}", get(people::person))
        .route("/people/{id}/traits", post(people::set_trait))
        .route("/people/{id}/unmerge", post(people::unmerge))
        .route("/people/{id}/detach", post(people::detach))
        .route(
            "/people/{id}/detaches/{detach}/undo",
            post(people::undo_detach),
        )
        .route("/people/{id}/consents", post(people::set_consent))
        .route("/people/{id}/export", get(people::export))
        .route("/people/{id}/erase", post(people::erase))
        .route("/audit", get(people::audit))
        .route("/ui/people/{id}/timeline", get(people::timeline_fragment))
        .route("/segments", get(segments::list).post(segments::save))
        .route(
            "/segments/{id}",
            get(segments::detail).post(segments::update),
        )
        .route("/segments/{id}/delete", post(segments::delete))
        .route("/ui/segments/preview", post(segments::preview))
        .route("/rules", get(pages::rules))
        .route("/rules/dry-run", post(pages::dry_run))
        .route(
            "/offers/new",
            get(offer_editor::new_page).post(offer_editor::submit),
        )
        .route("/offers/delete", post(offer_editor::delete))
        .route(
            "/scores",
            get(score_editor::page).post(score_editor::submit),
        )
        .route("/scores/delete", post(score_editor::delete))
        .route("/scores/recompute", post(score_editor::recompute))
        .route(
            "/rules/new",
            get(rule_builder::new_page).post(rule_builder::submit),
        )
        .route("/network", get(pages::network))
        .route("/insights", get(pages::insights))
        .route("/audience", get(audience::page).post(audience::ask))
        .route("/onchain", get(pages::onchain))
        .route("/onchain/chains", post(pages::add_chain))
        .route("/onchain/tokens", post(pages::add_token))
        .route("/network/recompute", post(pages::recompute_graph))
        .route("/outbox/{id}/retry", post(pages::retry_delivery))
        .route("/email", get(email::email))
        .route("/email/templates", post(email::save_template))
        .route(
            "/email/templates/{id}",
            get(email::template).post(email::update_template),
        )
        .route("/email/campaigns", post(email::save_campaign))
        .route("/email/campaigns/{id}", get(email::campaign))
        .route(
            "/email/campaigns/{id}/actions",
            post(email::campaign_action),
        )
        .route("/settings", get(pages::settings))
        .route("/settings/users", post(pages::create_user))
        .route("/settings/keys", post(pages::create_key))
        .route("/settings/keys/{id}/origins", post(pages::set_key_origins))
        .route("/settings/web", post(pages::set_web))
        .route("/ui/app.css", get(layout::css))
}

/// Dashboard figures that are costly to compute (a scan of recent events, trending
/// terms over five weeks of texts) and need not be to-the-second: kept for a minute and
/// refreshed in the background while the last value is served (stale-while-revalidate).
#[derive(Default)]
pub struct Cache {
    entries: std::sync::Mutex<std::collections::HashMap<&'static str, Entry>>,
}

struct Entry {
    at: std::time::Instant,
    value: std::sync::Arc<serde_json::Value>,
    refreshing: bool,
}

const FRESH: std::time::Duration = std::time::Duration::from_secs(60);

impl Cache {
    /// The cached value of `key`, or `compute`'s (awaited the first time only).
    pub async fn get<F, Fut>(
        self: &std::sync::Arc<Self>,
        key: &'static str,
        compute: F,
    ) -> Result<std::sync::Arc<serde_json::Value>, rapport_store::StoreError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<serde_json::Value, rapport_store::StoreError>>
            + Send
            + 'static,
    {
        let stale = {
            let mut g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            match g.get_mut(key) {
                Some(e) if e.at.elapsed() < FRESH => return Ok(e.value.clone()),
                Some(e) => {
                    let v = e.value.clone();
                    let start = !e.refreshing;
                    e.refreshing = true;
                    Some((v, start))
                }
                None => None,
            }
        };
        match stale {
            Some((v, start)) => {
                if start {
                    let me = self.clone();
                    tokio::spawn(async move {
                        let r = compute().await;
                        let mut g = me.entries.lock().unwrap_or_else(|e| e.into_inner());
                        match r {
                            Ok(v) => {
                                g.insert(
                                    key,
                                    Entry {
                                        at: std::time::Instant::now(),
                                        value: std::sync::Arc::new(v),
                                        refreshing: false,
                                    },
                                );
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, key, "dashboard refresh failed");
                                if let Some(en) = g.get_mut(key) {
                                    en.refreshing = false;
                                }
                            }
                        }
                    });
                }
                Ok(v)
            }
            None => {
                let v = std::sync::Arc::new(compute().await?);
                let mut g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
                g.insert(
                    key,
                    Entry {
                        at: std::time::Instant::now(),
                        value: v.clone(),
                        refreshing: false,
                    },
                );
                Ok(v)
            }
        }
    }
}
