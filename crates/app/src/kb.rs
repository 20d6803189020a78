//! The knowledge base customers help write: staff write and publish articles; a
//! signed-in customer proposes a new article or an edit, which staff accept or reject;
//! every change is a revision (with a diff); readers say whether an article helped;
//! search ranks by relevance in the store's own full-text engine; and the articles the
//! ticket form suggests are counted against the tickets that did not follow.

use crate::community::Actor;
use rapport_domain::community::{self as rules, ArticleStatus, MAX_ARTICLE};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::{now_millis, Millis};
use rapport_store::{Article, ArticleHit, Deflection, DynStore, Revision, StoreError};
use serde::Deserialize;
use serde_json::json;

const CHANNEL: &str = "kb";

fn field(e: rapport_domain::FieldError) -> StoreError {
    StoreError::invalid(&e.field, e.reason)
}

/// An article as the API takes it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArticleInput {
    pub title: String,
    pub body: String,
    #[serde(default)]
    pub category: Option<String>,
    /// draft (default), published or archived; a customer's is always proposed.
    #[serde(default)]
    pub status: Option<String>,
    /// What changed, for the revision history.
    #[serde(default)]
    pub note: Option<String>,
}

struct Checked {
    title: String,
    body: String,
    category: Option<String>,
    note: Option<String>,
}

fn check(a: &ArticleInput) -> Result<Checked, StoreError> {
    let note = match a.note.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => Some(rules::text("note", n, 500).map_err(field)?),
        None => None,
    };
    Ok(Checked {
        title: rules::title("title", &a.title).map_err(field)?,
        body: rules::text("body", &a.body, MAX_ARTICLE).map_err(field)?,
        category: rules::category("category", a.category.as_deref().unwrap_or(""))
            .map_err(field)?,
        note,
    })
}

/// The status staff may set directly (a proposal is reviewed, not set).
fn staff_status(s: Option<&str>) -> Result<ArticleStatus, StoreError> {
    let s = ArticleStatus::parse("status", s.unwrap_or("draft")).map_err(field)?;
    match s {
        ArticleStatus::Draft | ArticleStatus::Published | ArticleStatus::Archived => Ok(s),
        _ => Err(StoreError::invalid(
            "status",
            "draft, published or archived (proposals are reviewed: POST …/review)",
        )),
    }
}

fn revision_of(
    a: &Article,
    status: &str,
    who: &Actor,
    note: Option<String>,
    at: Millis,
) -> Revision {
    Revision {
        id: 0,
        article_id: a.id,
        title: a.title.clone(),
        body: a.body.clone(),
        category: a.category.clone(),
        status: status.into(),
        author_profile: who.profile(),
        author_staff: who.staff(),
        note,
        at,
    }
}

fn event(
    profile: ProfileId,
    name: &str,
    id: String,
    at: Millis,
    props: serde_json::Value,
) -> Result<rapport_domain::resolve::EventRow, StoreError> {
    crate::timeline::event(profile, CHANNEL, name, &id, at, props)
}

/// Staff write an article (draft, or published at once); a customer's is a proposal
/// for review (`Article Proposed` on their timeline).
pub async fn create(
    store: &DynStore,
    who: &Actor,
    input: ArticleInput,
) -> Result<Article, StoreError> {
    let c = check(&input)?;
    let status = match who {
        Actor::Staff(_) => staff_status(input.status.as_deref())?,
        Actor::Customer(_) => ArticleStatus::Proposed,
    };
    let now = now_millis();
    let a = Article {
        id: 0,
        title: c.title,
        body: c.body,
        category: c.category,
        status: status.as_str().into(),
        author_profile: who.profile(),
        author_staff: who.staff(),
        helpful_yes: 0,
        helpful_no: 0,
        created_at: now,
        updated_at: now,
        published_at: (status == ArticleStatus::Published).then_some(now),
    };
    let rev_status = if status == ArticleStatus::Proposed {
        "proposed"
    } else {
        "accepted"
    };
    let first = revision_of(&a, rev_status, who, c.note, now);
    let mut events = Vec::new();
    if let Actor::Customer(p) = who {
        events.push(event(
            *p,
            "Article Proposed",
            format!("kb:proposed:{}", uuid::Uuid::now_v7()),
            now,
            json!({"title": a.title}),
        )?);
    }
    store.add_article(a, first, events).await
}

/// An article, or `NotFound`; only a published one for readers.
pub async fn get(store: &DynStore, id: i64, staff: bool) -> Result<Article, StoreError> {
    match store.article(id).await? {
        Some(a) if staff || a.status == ArticleStatus::Published.as_str() => Ok(a),
        _ => Err(StoreError::NotFound(format!("article {id}"))),
    }
}

/// Staff change an article: a new text is a new accepted revision; publishing stamps
/// the time.
pub async fn update(
    store: &DynStore,
    staff: &str,
    id: i64,
    input: ArticleInput,
) -> Result<Article, StoreError> {
    let c = check(&input)?;
    let mut a = get(store, id, true).await?;
    let status = match input.status.as_deref() {
        None => ArticleStatus::parse("status", &a.status).map_err(field)?,
        Some(s) => staff_status(Some(s))?,
    };
    let now = now_millis();
    let changed = a.title != c.title || a.body != c.body || a.category != c.category;
    a.title = c.title;
    a.body = c.body;
    a.category = c.category;
    a.author_staff = Some(staff.to_string());
    a.updated_at = now;
    set_status(&mut a, status, now);
    let rev =
        changed.then(|| revision_of(&a, "accepted", &Actor::Staff(staff.into()), c.note, now));
    store.save_article(a.clone(), rev, Vec::new()).await?;
    Ok(a)
}

fn set_status(a: &mut Article, s: ArticleStatus, now: Millis) {
    if s == ArticleStatus::Published && a.status != s.as_str() {
        a.published_at = Some(now);
    }
    a.status = s.as_str().into();
}

/// Staff decide a customer's proposed article: published (`Article Published` on the
/// author's timeline) or rejected.
pub async fn review(
    store: &DynStore,
    staff: &str,
    id: i64,
    publish: bool,
) -> Result<Article, StoreError> {
    let mut a = get(store, id, true).await?;
    if a.status != ArticleStatus::Proposed.as_str() {
        return Err(StoreError::invalid(
            "status",
            format!("article {id} is {}, not a proposal", a.status),
        ));
    }
    let now = now_millis();
    let s = if publish {
        ArticleStatus::Published
    } else {
        ArticleStatus::Rejected
    };
    set_status(&mut a, s, now);
    a.updated_at = now;
    a.author_staff = Some(staff.into());
    let first = store
        .revisions(id)
        .await?
        .into_iter()
        .rfind(|r| r.status == "proposed")
        .map(|mut r| {
            r.status = if publish { "accepted" } else { "rejected" }.into();
            r.author_staff = Some(staff.into());
            r
        });
    let events = match (publish, a.author_profile) {
        (true, Some(p)) => vec![event(
            p,
            "Article Published",
            format!("kb:{id}:published:{now}"),
            now,
            json!({"article": id, "title": a.title, "contributed": true}),
        )?],
        _ => Vec::new(),
    };
    store.save_article(a.clone(), first, events).await?;
    Ok(a)
}

/// A signed-in customer proposes an edit to a published article; staff review it.
pub async fn propose_edit(
    store: &DynStore,
    customer: ProfileId,
    id: i64,
    input: ArticleInput,
) -> Result<Revision, StoreError> {
    let c = check(&input)?;
    let a = get(store, id, false).await?;
    let now = now_millis();
    let mut v = revision_of(&a, "proposed", &Actor::Customer(customer), c.note, now);
    v.title = c.title;
    v.body = c.body;
    v.category = c.category;
    if v.title == a.title && v.body == a.body && v.category == a.category {
        return Err(StoreError::invalid("body", "the proposal changes nothing"));
    }
    let e = event(
        customer,
        "Article Edit Proposed",
        format!("kb:{id}:edit:{}", uuid::Uuid::now_v7()),
        now,
        json!({"article": id, "title": a.title}),
    )?;
    // The article stays as it is until staff accept.
    let id = store.save_article(a, Some(v.clone()), vec![e]).await?;
    Ok(Revision { id, ..v })
}

/// Staff accept (the article takes the proposed text) or reject a proposed edit.
pub async fn decide_edit(
    store: &DynStore,
    staff: &str,
    revision: i64,
    accept: bool,
) -> Result<Article, StoreError> {
    let mut v = store
        .revision(revision)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("revision {revision}")))?;
    if v.status != "proposed" {
        return Err(StoreError::invalid(
            "revision",
            format!("revision {revision} is {}, not a proposal", v.status),
        ));
    }
    let mut a = get(store, v.article_id, true).await?;
    let now = now_millis();
    v.status = if accept { "accepted" } else { "rejected" }.into();
    v.author_staff = Some(staff.into());
    let mut events = Vec::new();
    if accept {
        a.title = v.title.clone();
        a.body = v.body.clone();
        a.category = v.category.clone();
        a.updated_at = now;
        if let Some(p) = v.author_profile {
            events.push(event(
                p,
                "Article Edit Accepted",
                format!("kb:rev:{revision}:accepted"),
                now,
                json!({"article": a.id, "title": a.title, "contributed": true}),
            )?);
        }
    }
    store.save_article(a.clone(), Some(v), events).await?;
    Ok(a)
}

/// A revision and what it changed from the text before it (for a proposal: from the
/// article as it stands).
pub async fn diff(store: &DynStore, revision: i64) -> Result<(Revision, String), StoreError> {
    let v = store
        .revision(revision)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("revision {revision}")))?;
    let before = if v.status == "proposed" {
        let a = get(store, v.article_id, true).await?;
        format!("{}\n\n{}\n", a.title, a.body)
    } else {
        store
            .revisions(v.article_id)
            .await?
            .into_iter()
            .find(|r| r.id < v.id && r.status == "accepted")
            .map(|r| format!("{}\n\n{}\n", r.title, r.body))
            .unwrap_or_default()
    };
    let after = format!("{}\n\n{}\n", v.title, v.body);
    let d = rules::diff(&before, &after);
    Ok((v, d))
}

/// "Was this helpful?": counted; `Article Helpful` (or `Article Not Helpful`) on a
/// signed-in reader's timeline.
pub async fn helpful(
    store: &DynStore,
    id: i64,
    yes: bool,
    reader: Option<ProfileId>,
) -> Result<(), StoreError> {
    let a = get(store, id, false).await?;
    let now = now_millis();
    let events = match reader {
        Some(p) => vec![event(
            p,
            if yes {
                "Article Helpful"
            } else {
                "Article Not Helpful"
            },
            format!("kb:{id}:helpful:{p}:{now}"),
            now,
            json!({"article": a.id, "title": a.title}),
        )?],
        None => Vec::new(),
    };
    store.helpful(a.id, yes, events).await
}

/// Published articles for a query, best first: every word first, any word when
/// nothing has them all. `typing` (suggestions): the last word may be unfinished, and
/// only articles with every word are suggested (any word of a half-typed question
/// suggests noise, and costs the most).
pub async fn search(
    store: &DynStore,
    q: &str,
    limit: usize,
    typing: bool,
) -> Result<Vec<ArticleHit>, StoreError> {
    let terms = rules::search_terms(q);
    let hits = store
        .search_articles(terms.clone(), true, typing, limit)
        .await?;
    if !hits.is_empty() || terms.len() < 2 || typing {
        return Ok(hits);
    }
    store.search_articles(terms, false, typing, limit).await
}

/// Published articles that may answer a ticket, best first: its subject and the start
/// of its first message looked up (any of their words, by relevance).
pub async fn for_ticket(
    store: &DynStore,
    subject: &str,
    first: &str,
) -> Result<Vec<ArticleHit>, StoreError> {
    let words: String = first.chars().take(300).collect();
    search(store, &format!("{subject} {words}"), 3, false).await
}

/// A customer opened an article the ticket form suggested.
pub async fn suggested_opened(
    store: &DynStore,
    person: ProfileId,
    article: i64,
) -> Result<(), StoreError> {
    get(store, article, false).await?;
    store.add_deflection(person, article, now_millis()).await
}

/// Deflection over the last `days` days.
pub async fn deflection(store: &DynStore, days: i64) -> Result<Deflection, StoreError> {
    let now = now_millis();
    store
        .deflection(now - days.clamp(1, 3650) * 86_400_000, now)
        .await
}
