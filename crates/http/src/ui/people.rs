//! Find anyone (name, e-mail, phone, handle, wallet; results as you type) and the
//! customer 360 page: identities by kind with verified wallets and holdings, the Four
//! Ps as editable traits, scores with explanations, segments, consents, merge history
//! with unmerge, the ego network drawn, and the timeline with filters and infinite scroll.

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup, PreEscaped};
use rapport_domain::identifier::IdentityKind;
use rapport_domain::time::now_millis;
use rapport_store::{TimelineFilter, UnmergeTarget};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

use super::auth::{Staff, UiError, UiResult};
use super::layout::{self, csrf, page};
use crate::AppState;

fn results(items: &[rapport_domain::model::ProfileSummary]) -> Markup {
    html! {
        @if items.is_empty() { p.empty { "Nobody matches. Try an e-mail, a phone (+…), a handle or a wallet address." } }
        @for p in items {
            a.result href=(format!("/people/{}", p.id)) {
                strong { (p.name.clone().unwrap_or_else(|| format!("Person {}", p.id))) }
                " " span.muted { (p.email.clone().unwrap_or_default()) }
                " " span.badge { "#" (p.id) }
            }
        }
    }
}

pub async fn search_page(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<HashMap<String, String>>,
) -> UiResult<Markup> {
    let query = q.get("q").cloned().unwrap_or_default();
    let found = state
        .store
        .search(
            Some(&query).filter(|s| !s.is_empty()).map(String::as_str),
            25,
            None,
        )
        .await?;
    let ties = state.store.conflicts(1).await?.len();
    Ok(page(
        &staff,
        "People",
        "/people",
        html! {
            @if ties > 0 { p { a href="/people/conflicts" { "Ties to review →" } " " span.small.muted { "people merge protection kept apart" } } }
            div.card {
                label for="q" { "Find anyone: a name, any e-mail, phone, social handle or wallet address" }
                input #q type="search" name="q" value=(query) placeholder="ada@example.com, +33…, x:ada, 0x5aAe…" autocomplete="off" autofocus;
                div #results .results { (results(&found.items)) }
            }
            script { (PreEscaped(r#"
const q = document.getElementById('q'), out = document.getElementById('results'); let t, seq = 0;
q.addEventListener('input', () => { clearTimeout(t); t = setTimeout(async () => {
  const mine = ++seq, v = q.value;
  const r = await fetch('/ui/search?q=' + encodeURIComponent(v));
  if (!r.ok || mine !== seq) return; // an answer to an older query arrived late
  out.innerHTML = await r.text(); out.dataset.q = v;
  history.replaceState(null, '', '/people?q=' + encodeURIComponent(v));
}, 150); });"#)) }
        },
    ))
}

pub async fn search_fragment(
    State(state): State<AppState>,
    _staff: Staff,
    Query(q): Query<HashMap<String, String>>,
) -> UiResult<Html<String>> {
    let query = q.get("q").cloned().unwrap_or_default();
    let found = state
        .store
        .search(
            Some(query.as_str()).filter(|s| !s.trim().is_empty()),
            25,
            None,
        )
        .await?;
    Ok(Html(results(&found.items).into_string()))
}

/// The Four Ps: which traits are personal, profile, preferential or performance facts.
fn four_p(key: &str) -> &'static str {
    const PERSONAL: [&str; 20] = [
        "name",
        "first_name",
        "firstName",
        "last_name",
        "lastName",
        "email",
        "emails",
        "phone",
        "phones",
        "birthday",
        "age",
        "gender",
        "address",
        "city",
        "country",
        "wallet",
        "wallets",
        "socials",
        "twitter",
        "instagram",
    ];
    const PROFILE: [&str; 9] = [
        "title",
        "job_title",
        "company",
        "industry",
        "plan",
        "segment",
        "lifecycle",
        "role",
        "lead",
    ];
    const PREFERENTIAL: [&str; 8] = [
        "interests",
        "language",
        "preferred_channel",
        "favorite_category",
        "favorite_color",
        "newsletter",
        "next_best_offer",
        "tags",
    ];
    if PERSONAL.contains(&key) {
        "Personal"
    } else if PROFILE.contains(&key) {
        "Profile"
    } else if PREFERENTIAL.contains(&key) {
        "Preferential"
    } else {
        "Performance"
    }
}

/// A trait's value as a person reads it: lists joined, objects as `key: value`.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(show).collect::<Vec<_>>().join(", "),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}: {}", show(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// A score's explanation in a sentence (the built-in scores' shapes, a custom score's
/// terms); anything else by its `how`.
fn explain(e: &Value) -> String {
    let n = |k: &str| e[k].as_f64().map_or("?".into(), |v| format!("{v}"));
    if e.get("bands").is_some() {
        return format!(
            "R{} F{} M{} ({}): {} days since the last, {} in all, {} spent",
            e["bands"]["r"],
            e["bands"]["f"],
            e["bands"]["m"],
            e["label"].as_str().unwrap_or(""),
            n("recency_days"),
            n("frequency"),
            n("monetary")
        );
    }
    if e.get("active_days_30d").is_some() {
        return format!(
            "{} active days in the last 30; more active than {}% of active people",
            n("active_days_30d"),
            n("people_less_active_pct")
        );
    }
    if let Some(terms) = e["terms"].as_array() {
        return terms
            .iter()
            .map(|t| {
                let p = t["points"].as_f64().unwrap_or_default();
                format!("{p:+} for {}", show(&t["when"]))
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    e["how"].as_str().map_or_else(|| show(e), str::to_string)
}

async fn timeline_page(
    state: &AppState,
    id: i64,
    q: &HashMap<String, String>,
) -> UiResult<(Vec<rapport_domain::model::EventView>, Option<(i64, i64)>)> {
    let mut f = TimelineFilter {
        limit: 30,
        ..Default::default()
    };
    if let Some(c) = q.get("channel").filter(|c| !c.is_empty()) {
        f.channels = vec![c.clone()];
    }
    if let Some(t) = q.get("type").filter(|c| !c.is_empty()) {
        f.types = vec![t.clone()];
    }
    if let (Some(a), Some(i)) = (
        q.get("before_at").and_then(|v| v.parse().ok()),
        q.get("before_id").and_then(|v| v.parse().ok()),
    ) {
        f.before = Some((a, i));
    }
    let p = state.store.timeline(id, &f).await?;
    let next = p
        .items
        .last()
        .filter(|_| p.next_cursor.is_some())
        .map(|e| (e.occurred_at.timestamp_millis(), e.id));
    Ok((p.items, next))
}

pub async fn timeline_fragment(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> UiResult<Response> {
    let (items, next) = timeline_page(&state, id, &q).await?;
    let body = html! { @for e in &items { (super::timeline::card(e)) } };
    let mut r = Html(body.into_string()).into_response();
    if let Some((a, i)) = next {
        if let Ok(v) = axum::http::HeaderValue::from_str(&format!("{a},{i}")) {
            r.headers_mut().insert("x-next", v);
        }
    }
    Ok(r)
}

pub async fn person(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> UiResult<Response> {
    let p = state.store.profile(id).await?;
    if p.id != id {
        // A merged profile's page is its person's.
        return Ok(Redirect::to(&format!("/people/{}", p.id)).into_response());
    }
    rapport_app::privacy::audit(
        &state.store,
        &format!("ui:{}", staff.user.email),
        "profile.view",
        format!("person:{}", p.id),
        Value::Null,
    )
    .await?;
    let detached = state.store.detaches(p.id).await?;
    let scores = state.store.profile_scores(p.id).await?;
    let segs = state.store.profile_segments(p.id).await?;
    let holdings = rapport_app::chain::profile_holdings(&state.store, p.id).await?;
    let rels = state
        .store
        .relationships(rapport_store::RelScope::Touching(vec![p.id]), 30)
        .await
        .unwrap_or_default();
    let names = super::names::Names::of(
        &state.store,
        rels.iter()
            .flat_map(|r| [r.source, r.target])
            .chain(detached.iter().map(|d| d.to_profile)),
    )
    .await?;
    let (items, next) = timeline_page(&state, p.id, &q).await?;
    // E-mail: the address sends use and why, and the latest messages.
    let email_to = state.email.choose(p.id).await?;
    let email_msgs = state
        .store
        .messages(rapport_store::MessageQuery {
            profile: Some(p.member_ids.clone()),
            status: None,
            limit: 5,
        })
        .await?;
    let name = super::names::label(&p);
    let figures = key_figures(&scores, p.network.as_ref());
    let mut by_kind: BTreeMap<&str, Vec<&rapport_domain::model::IdentityView>> = BTreeMap::new();
    for i in &p.identities {
        by_kind.entry(kind_label(i.kind)).or_default().push(i);
    }
    let mut traits: BTreeMap<&str, Vec<(&String, &Value)>> = BTreeMap::new();
    if let Some(o) = p.traits.as_object() {
        for (k, v) in o {
            traits.entry(four_p(k)).or_default().push((k, v));
        }
    }
    let edit = staff.role.can_edit_people();
    let msg = q.get("msg").cloned();
    let tickets_card = super::tickets::card(&state, &p).await?;
    let loyalty_card = super::loyalty::card(&state, &staff, p.id).await?;
    let body = html! {
        @if let Some(m) = msg { div.ok role="status" { (m) } }
        div.figures {
            @if let Some((address, _)) = &email_to { span.figure { span.muted { "E-mail " } strong { (address) } } }
            @for (label, value) in &figures { span.figure { span.muted { (label) " " } strong { (value) } } }
            @for s in segs.iter().take(4) { " " span.badge { (s) } }
        }
        div.grid.wide-cards {
            div.card {
                h2 { "Identities" }
                @for (kind, ids) in &by_kind {
                    div { strong { (kind) } }
                    ul {
                        @for i in ids {
                            li {
                                code { (i.value) }
                                @if i.kind == IdentityKind::Wallet {
                                    @if i.verified { " " span.badge.verified { "verified" } } @else { " " span.badge.warn { "unverified" } }
                                }
                                " " span.small.muted { (i.source) }
                                @if edit && p.identities.len() > 1 {
                                    form.inline method="post" action=(format!("/people/{}/detach", p.id))
                                        title="Move this identifier to a profile of its own (a recycled number, a shared device)" {
                                        (csrf(&staff))
                                        input type="hidden" name="kind" value=(i.kind.as_str());
                                        input type="hidden" name="value" value=(i.value);
                                        " " button.link.danger type="submit" aria-label=(format!("Detach {}", i.value)) { "Detach" }
                                    }
                                }
                            }
                        }
                    }
                }
                @if let Some(hs) = holdings["holdings"].as_array().filter(|h| !h.is_empty()) {
                    h2 { "Holdings" }
                    table { tr { th { "Token" } th { "Wallet" } th.num { "Amount" } th { "Held since" } }
                        @for h in hs { tr {
                            td { (h["symbol"].as_str().unwrap_or("")) " " span.badge { (h["standard"].as_str().unwrap_or("")) } }
                            td.small { code { (h["wallet"].as_str().unwrap_or("").rsplit(':').next().unwrap_or("")) } }
                            td.num { (h["amount"]) }
                            td.small { (h["held_since"].as_i64().map(|t| rapport_domain::time::to_datetime(t).format("%Y-%m-%d").to_string()).unwrap_or_else(|| "—".into())) }
                        } }
                    }
                }
            }
            div.card {
                h2 { "Traits (the Four Ps)" }
                @for (group, kv) in &traits {
                    div.small.muted { (group) }
                    table { @for (k, v) in kv { tr { td { (k) } td { (show(v)) } } } }
                }
                @if !traits.contains_key("Performance") && !figures.is_empty() {
                    div.small.muted { "Performance" }
                }
                @if !figures.is_empty() {
                    table { @for (label, value) in &figures { tr { td { (label) } td { (value) } } } }
                }
                @if traits.is_empty() { p.empty { "No traits yet." } }
                @if edit {
                    form method="post" action=(format!("/people/{}/traits", p.id)) {
                        (csrf(&staff))
                        div.row {
                            div { label for="trait" { "Trait" } input #trait name="trait" required placeholder="title"; }
                            div { label for="value" { "Value" } input #value name="value" placeholder="Head of Marketing"; }
                        }
                        button type="submit" { "Save trait" }
                    }
                } @else { p.small.muted { "Your role can view but not edit traits." } }
            }
            div.card {
                h2 { "Scores" }
                @if scores.is_empty() { p.empty { "No scores yet: Segments → scores are computed every 15 minutes." } }
                table { @for (i, s) in scores.iter().enumerate() {
                    // The parts of a score (rfm_r, rfm_f…) share its explanation: said once.
                    @let why = explain(&s.explanation);
                    @let again = i > 0 && explain(&scores[i - 1].explanation) == why;
                    tr { td { strong { (s.name) } @if !again { div.small.muted.why { (why) } } } td.num { (format!("{:.0}", s.value)) } }
                } }
                @if let Some(n) = &p.network {
                    h2 { "Network" }
                    p.small { "PageRank percentile " (format!("{:.0}", n.pagerank_pct * 100.0)) " · reach " (n.reach1) " / " (n.reach2) " · community " (n.community) }
                }
                h2 { "Segments" }
                @if segs.is_empty() { p.empty { "In no segment yet." } }
                @for s in &segs { span.chip { (s) } }
                h2 { "Consents" }
                @if p.consents.is_empty() { p.empty { "No consent recorded." } }
                table { @for c in &p.consents { tr { td { (c.channel) " · " (c.purpose) } td { (format!("{:?}", c.status).to_lowercase()) } td.small.muted { (c.source) } } } }
                @if edit {
                    form method="post" action=(format!("/people/{}/consents", p.id)) {
                        (csrf(&staff))
                        div.row {
                            div { label for="channel" { "Channel" } input #channel name="channel" required placeholder="email"; }
                            div { label for="purpose" { "Purpose" } input #purpose name="purpose" required placeholder="marketing"; }
                            div { label for="status" { "Status" } select #status name="status" { option value="granted" { "granted" } option value="denied" { "denied" } } }
                        }
                        button type="submit" { "Record consent" }
                    }
                }
            }
            div.card {
                h2 { "E-mail" }
                @match &email_to {
                    Some((a, why)) => { p { "Sends go to " code { (a) } } p.small.muted { (why.describe()) } }
                    None => { p.empty { "No e-mail address." } }
                }
                @if email_msgs.is_empty() { p.empty { "No message sent yet." } }
                table { @for m in &email_msgs { tr {
                    td.small.wrap { (m.subject) }
                    td { span.badge { (m.status) } }
                    td.small.muted {
                        @if m.clicked_at.is_some() { "clicked" } @else if m.opened_at.is_some() { "opened" } @else { "" }
                        @if m.unsubscribed_at.is_some() { " · unsubscribed" }
                    }
                } } }
            }
            (tickets_card)
            (loyalty_card)
            div.card {
                h2 { "Relationships" }
                (ego_svg(p.id, &rels, &names))
            }
            @if !detached.is_empty() {
                div.card {
                    h2 { "Detached identifiers" }
                    table { @for d in &detached { tr {
                        td.small { (d.at.format("%Y-%m-%d")) }
                        td { code { (d.identifier) } }
                        td.small { "#" (d.from_profile) " → " (names.link(d.to_profile)) }
                        td { @if d.undone_at.is_some() { span.badge { "undone" } } @else if edit {
                            form method="post" action=(format!("/people/{}/detaches/{}/undo", p.id, d.id)) {
                                (csrf(&staff))
                                button type="submit" { "Put back" }
                            }
                        } }
                    } } }
                }
            }
            @if staff.role.can_admin() {
                div.card {
                    h2 { "Privacy" }
                    p { a href=(format!("/people/{}/export", p.id)) download { "Export everything about this person (JSON)" } }
                    form method="post" action=(format!("/people/{}/erase", p.id)) {
                        (csrf(&staff))
                        label { input type="checkbox" name="confirm" value="yes" required; " Erase this person: every identity, trait, consent, text and e-mail, irreversibly" }
                        button.danger type="submit" { "Erase" }
                    }
                    p.small.muted { a href=(format!("/audit?target=person:{}", p.id)) { "Who accessed this person" } }
                }
            }
            div.card {
                h2 { "Merge history" }
                @if p.merges.is_empty() { p.empty { "Never merged." } }
                table { @for m in &p.merges { tr {
                    td.small { (m.at.format("%Y-%m-%d")) } td { "#" (m.merged_id) " into #" (m.survivor_id) } td.small.muted { (m.cause) }
                    td { @if m.undone_at.is_some() { span.badge { "undone" } } @else if edit {
                        form method="post" action=(format!("/people/{}/unmerge", p.id)) {
                            (csrf(&staff)) input type="hidden" name="merge" value=(m.id);
                            button.danger type="submit" { "Unmerge" }
                        }
                    } }
                } } }
            }
            div.card.wide {
                h2 { "Timeline" }
                form.row method="get" {
                    div { label for="channel" { "Channel" } input #channel name="channel" value=(q.get("channel").cloned().unwrap_or_default()) placeholder="web, email, onchain…"; }
                    div { label for="type" { "Type" } select #type name="type" {
                        @for t in ["", "track", "page", "screen", "identify", "group", "alias"] {
                            option value=(t) selected[q.get("type").map(String::as_str) == Some(t)] { (if t.is_empty() { "any" } else { t }) }
                        }
                    } }
                    div { button.secondary type="submit" { "Filter" } }
                }
                @if items.is_empty() { p.empty { "No interactions match." } }
                ul.timeline #timeline data-next=(next.map(|(a, i)| format!("{a},{i}")).unwrap_or_default()) { @for e in &items { (super::timeline::card(e)) } }
                div #more {}
            }
        }
        script { (PreEscaped(format!(r#"
const tl = document.getElementById('timeline'); const sentinel = document.getElementById('more');
const params = new URLSearchParams(location.search); let loading = false;
new IntersectionObserver(async (es) => {{
  if (!es[0].isIntersecting || loading || !tl.dataset.next) return; loading = true;
  const [a, i] = tl.dataset.next.split(','); params.set('before_at', a); params.set('before_id', i);
  const r = await fetch('/ui/people/{}/timeline?' + params.toString());
  if (r.ok) {{ tl.insertAdjacentHTML('beforeend', await r.text()); tl.dataset.next = r.headers.get('x-next') || ''; }}
  loading = false;
}}).observe(sentinel);"#, p.id))) }
    };
    Ok(page(&staff, &name, "/people", body).into_response())
}

fn kind_label(k: IdentityKind) -> &'static str {
    match k {
        IdentityKind::Email => "E-mails",
        IdentityKind::Phone => "Phones",
        IdentityKind::Wallet => "Wallets",
        IdentityKind::Social => "Social handles",
        IdentityKind::UserId => "User ids",
        IdentityKind::AnonymousId => "Devices (anonymous ids)",
        IdentityKind::External => "External ids",
    }
}

/// What the person is worth and how they behave, from their scores (RFM over its
/// window, engagement) and network standing: the Four Ps' Performance, and the 360
/// page's header.
fn key_figures(
    scores: &[rapport_store::ScoreRow],
    network: Option<&rapport_domain::relationship::GraphScores>,
) -> Vec<(&'static str, String)> {
    let get = |n: &str| scores.iter().find(|s| s.name == n).map(|s| s.value);
    let mut out = Vec::new();
    if let Some(m) = get("rfm_monetary") {
        out.push((
            "Revenue (12 months)",
            super::layout::thousands(m.round() as i64),
        ));
    }
    if let Some(f) = get("rfm_frequency") {
        out.push((
            "Orders (12 months)",
            super::layout::thousands(f.round() as i64),
        ));
    }
    if let Some(d) = get("rfm_recency_days") {
        out.push(("Last purchase", format!("{} days ago", d.round() as i64)));
    }
    if let Some(e) = get("engagement") {
        out.push(("Engagement", format!("{:.0} / 100", e)));
    }
    if let Some(n) = network {
        out.push((
            "Influence",
            format!("top {:.0}%", (100.0 - n.pagerank_pct * 100.0).max(1.0)),
        ));
    }
    out
}

/// The ego network as a picture: the person in the middle, the others around, one line
/// per relationship (thicker for heavier).
fn ego_svg(
    me: i64,
    rels: &[rapport_domain::relationship::RelationshipView],
    names: &super::names::Names,
) -> Markup {
    if rels.is_empty() {
        return html! { p.empty { "No relationships yet: they come from referrals, mentions, replies, follows and wallet transfers." } };
    }
    let mut others: Vec<(i64, f64, String)> = Vec::new();
    for r in rels {
        let other = if r.source == me { r.target } else { r.source };
        if let Some(o) = others.iter_mut().find(|o| o.0 == other) {
            o.1 += r.weight;
        } else {
            others.push((other, r.weight, r.kind.clone()));
        }
    }
    let n = others.len().max(1) as f64;
    let max = others.iter().map(|o| o.1).fold(1.0, f64::max);
    let mut s = String::new();
    for (i, (id, w, kind)) in others.iter().enumerate() {
        let a = i as f64 / n * std::f64::consts::TAU;
        let full = names.get(*id);
        // Under the dot, the first name (or the start of the label): the drawing is small.
        let short: String = full
            .split_whitespace()
            .next()
            .unwrap_or("")
            .chars()
            .take(14)
            .collect();
        let (full, short) = (
            maud::html!((full)).into_string(),
            maud::html!((short)).into_string(),
        );
        let (x, y) = (160.0 + 120.0 * a.cos(), 130.0 + 100.0 * a.sin());
        s.push_str(&format!(
            "<line x1='160' y1='130' x2='{x:.1}' y2='{y:.1}' stroke='#9aa6d8' stroke-width='{:.1}'/><a href='/people/{id}'><circle cx='{x:.1}' cy='{y:.1}' r='9' fill='#5b74e0'><title>{full} · {}</title></circle><text x='{x:.1}' y='{:.1}' text-anchor='middle'>{short}</text></a>",
            1.0 + 3.0 * w / max,
            maud::html!((kind)).into_string(),
            y + 21.0
        ));
    }
    s.push_str("<circle cx='160' cy='130' r='13' fill='#1d2330'/>");
    html! { svg viewBox="0 0 320 260" role="group" aria-label="Ego network: the person and the people they are linked to" { (PreEscaped(s)) } }
}

pub async fn set_trait(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_edit_people(), "edit people")?;
    let key = f.get("trait").map(|s| s.trim()).unwrap_or("");
    if key.is_empty()
        || key.len() > 100
        || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(UiError::Invalid(
            "trait: use letters, digits and _ (for example job_title)".into(),
        ));
    }
    let raw = f.get("value").cloned().unwrap_or_default();
    // Numbers and true/false are kept as such; an empty value removes the trait.
    let value = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_str::<Value>(&raw)
            .ok()
            .filter(|v| v.is_number() || v.is_boolean())
            .unwrap_or(Value::String(raw))
    };
    rapport_app::profiles::patch_traits(
        &state.store,
        id,
        &serde_json::json!({ key: value }),
        now_millis(),
    )
    .await?;
    rapport_app::privacy::audit(
        &state.store,
        &format!("ui:{}", staff.user.email),
        "traits.edit",
        format!("person:{id}"),
        serde_json::json!({"keys": [key]}),
    )
    .await?;
    Ok(changed(id, &format!("Saved {key}.")))
}

/// After a staff edit of a person (announced by `rapport_app::profiles`): back to the 360
/// page with `msg`.
fn changed(id: i64, msg: &str) -> Redirect {
    layout::done(&format!("/people/{id}"), msg)
}

/// Records a consent the person gave or withdrew (agents and above), with the staff
/// member as its source.
pub async fn set_consent(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_edit_people(), "record consents")?;
    let field = |k: &str| {
        crate::profiles::consent_name(f.get(k).map(String::as_str).unwrap_or(""))
            .ok_or_else(|| UiError::Invalid(format!("{k}: 1-64 of letters, digits, _ . -")))
    };
    let (channel, purpose) = (field("channel")?, field("purpose")?);
    let status = f
        .get("status")
        .and_then(|s| rapport_domain::model::ConsentStatus::parse(s))
        .ok_or_else(|| UiError::Invalid("status: granted or denied".into()))?;
    rapport_app::profiles::set_consent(
        &state.store,
        id,
        &rapport_store::ConsentInput {
            channel: channel.clone(),
            purpose: purpose.clone(),
            status,
            source: format!("ui:{}", staff.user.email),
            proof: None,
            at: now_millis(),
            frequency: Default::default(),
        },
    )
    .await?;
    rapport_app::privacy::audit(
        &state.store,
        &format!("ui:{}", staff.user.email),
        "consent.set",
        format!("person:{id}"),
        serde_json::json!({"channel": channel, "purpose": purpose, "status": status}),
    )
    .await?;
    Ok(changed(id, &format!("Recorded {channel} · {purpose}.")))
}

pub async fn unmerge(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_edit_people(), "unmerge people")?;
    let merge: i64 = f
        .get("merge")
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| UiError::Invalid("merge: missing".into()))?;
    let m = rapport_app::profiles::unmerge(
        &state.store,
        UnmergeTarget::Merge(merge),
        &format!("ui:{}", staff.user.email),
        now_millis(),
    )
    .await?;
    let msg = format!("Unmerged #{} from #{}.", m.merged_id, m.survivor_id);
    Ok(changed(id, &msg))
}

pub async fn detach(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_edit_people(), "detach identifiers")?;
    let field = |k: &str| {
        f.get(k)
            .cloned()
            .ok_or_else(|| UiError::Invalid(format!("{k}: missing")))
    };
    let kind: IdentityKind =
        field("kind")?
            .parse()
            .map_err(|e: rapport_domain::identifier::IdentifierError| {
                UiError::Invalid(e.to_string())
            })?;
    let key = rapport_domain::IdentityKey::parse(kind, &field("value")?)
        .map_err(|e| UiError::Invalid(e.to_string()))?;
    let d = rapport_app::profiles::detach(
        &state.store,
        id,
        &key,
        &format!("ui:{}", staff.user.email),
        now_millis(),
    )
    .await?;
    let msg = format!("Detached {} to #{}.", d.identifier, d.to_profile);
    Ok(changed(id, &msg))
}

pub async fn undo_detach(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, detach)): Path<(i64, i64)>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_edit_people(), "put identifiers back")?;
    let d = rapport_app::profiles::undo_detach(
        &state.store,
        detach,
        &format!("ui:{}", staff.user.email),
        now_millis(),
    )
    .await?;
    let msg = format!("Put {} back on #{}.", d.identifier, d.from_profile);
    Ok(changed(id, &msg))
}

/// The person's data as a JSON download (admins; audited).
pub async fn export(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    staff.require(staff.role.can_admin(), "export a person's data")?;
    let doc = rapport_app::privacy::export(&state.store, id).await?;
    rapport_app::privacy::audit(
        &state.store,
        &format!("ui:{}", staff.user.email),
        "profile.export",
        format!("person:{}", doc["person"]),
        Value::Null,
    )
    .await?;
    Ok((
        [(
            axum::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"person-{id}.json\""),
        )],
        axum::Json(doc),
    )
        .into_response())
}

/// Erases the person (admins, with the confirmation box ticked).
pub async fn erase(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_admin(), "erase people")?;
    if f.get("confirm").map(String::as_str) != Some("yes") {
        return Err(UiError::Invalid("confirm: tick the box to erase".into()));
    }
    let r = state
        .ingestor
        .erased()
        .erase(id, true, &format!("ui:{}", staff.user.email), now_millis())
        .await?;
    Ok(layout::done(
        "/people",
        &format!(
            "Person #{} erased ({} identifiers).",
            r.person, r.identifiers
        ),
    ))
}

/// The audit of staff access (admins): newest first, by target.
pub async fn audit(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<HashMap<String, String>>,
) -> UiResult<Markup> {
    staff.require(staff.role.can_admin(), "read the audit")?;
    let target = q.get("target").filter(|t| !t.is_empty()).cloned();
    let entries = state
        .store
        .audit_log(rapport_store::AuditQuery {
            target: target.clone(),
            action: None,
            before: None,
            limit: 500,
        })
        .await?;
    Ok(layout::page(
        &staff,
        "Audit",
        "/settings",
        html! {
            div.card.wide {
                h2 { "Who did what" @if let Some(t) = &target { " — " (t) } }
                form method="get" action="/audit" {
                    label for="target" { "Target (person:42, key:rk_…, user:3)" }
                    input #target name="target" value=(target.clone().unwrap_or_default());
                    button type="submit" { "Filter" }
                }
                @if entries.is_empty() { p.empty { "Nothing recorded." } }
                table {
                    tr { th { "When" } th { "Who" } th { "Action" } th { "Target" } th { "Detail" } }
                    @for e in &entries { tr {
                        td.small { (rapport_domain::time::to_datetime(e.at).format("%Y-%m-%d %H:%M:%S")) }
                        td { (e.who) } td { (e.action) } td { (e.target) }
                        td.small.muted { @if !e.detail.is_null() { (e.detail.to_string()) } }
                    } }
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    #[test]
    fn values_and_explanations_read_as_words() {
        assert_eq!(show(&json!(["a@x.io", "b@x.io"])), "a@x.io, b@x.io");
        assert_eq!(show(&json!({"x": "ann", "n": 2})), "n: 2, x: ann");
        assert_eq!(show(&json!(true)), "true");
        let rfm = json!({"recency_days": 4.5, "frequency": 3, "monetary": 120.0,
            "bands": {"r": 5, "f": 3, "m": 4}, "label": "loyal", "how": "…"});
        assert_eq!(
            explain(&rfm),
            "R5 F3 M4 (loyal): 4.5 days since the last, 3 in all, 120 spent"
        );
        let eng = json!({"active_days_30d": 6, "people_less_active_pct": 71.0});
        assert_eq!(
            explain(&eng),
            "6 active days in the last 30; more active than 71% of active people"
        );
        let custom = json!({"terms": [{"when": "has wallet", "points": 10.0}, {"when": "has email", "points": 5}]});
        assert_eq!(explain(&custom), "+10 for has wallet; +5 for has email");
        assert_eq!(explain(&json!({"how": "by hand"})), "by hand");
    }

    #[test]
    fn key_figures_come_from_scores() {
        let row = |n: &str, v: f64| rapport_store::ScoreRow {
            name: n.into(),
            profile_id: 1,
            value: v,
            explanation: serde_json::Value::Null,
            computed_at: 0,
        };
        let f = key_figures(
            &[
                row("rfm_monetary", 1234.4),
                row("rfm_frequency", 3.0),
                row("rfm_recency_days", 12.0),
            ],
            None,
        );
        assert_eq!(
            f,
            vec![
                ("Revenue (12 months)", "1,234".to_string()),
                ("Orders (12 months)", "3".to_string()),
                ("Last purchase", "12 days ago".to_string())
            ]
        );
        assert!(key_figures(&[], None).is_empty());
    }
}
