//! Customers help customers: questions, answers, comments, votes, accepted answers,
//! reputation, moderation — and ideas with a vote budget and statuses voters hear
//! about. Every post and vote is a timeline event on its author; an answer names the
//! asker (`question_author`), so the relationship graph learns who helps whom
//! (`answered`, and `helpful_answer` once accepted) and evangelist scores count it.

use crate::email::Email;
use rapport_domain::community::{self as rules, IdeaStatus, MAX_POST};
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::{now_millis, Millis};
use rapport_store::{DynStore, Post, PostFilter, PostHit, Standing, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const SETTINGS_KEY: &str = "community";
const CHANNEL: &str = "community";

fn field(e: rapport_domain::FieldError) -> StoreError {
    StoreError::invalid(&e.field, e.reason)
}

/// The community's settings.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommunitySettings {
    /// Votes each person may have on ideas still open, planned or started.
    #[serde(default = "ten")]
    #[schema(minimum = 1, maximum = 1000)]
    pub idea_votes: i64,
    /// Posts text analysis finds spam or toxic wait for a moderator (else they go up
    /// and are only listed for review).
    #[serde(default = "yes")]
    pub hold_flagged: bool,
}

fn ten() -> i64 {
    10
}

fn yes() -> bool {
    true
}

impl Default for CommunitySettings {
    fn default() -> Self {
        CommunitySettings {
            idea_votes: 10,
            hold_flagged: true,
        }
    }
}

pub async fn settings(store: &DynStore) -> Result<CommunitySettings, StoreError> {
    crate::stored_settings(store, SETTINGS_KEY).await
}

pub async fn set_settings(
    store: &DynStore,
    s: CommunitySettings,
) -> Result<CommunitySettings, StoreError> {
    if !(1..=1000).contains(&s.idea_votes) {
        return Err(StoreError::invalid("idea_votes", "from 1 to 1,000"));
    }
    let v = serde_json::to_value(&s).map_err(|e| StoreError::Backend(e.to_string()))?;
    store.set_setting(SETTINGS_KEY, v, now_millis()).await?;
    Ok(s)
}

/// Who is writing or acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in customer (their person id).
    Customer(ProfileId),
    /// A staff member (their e-mail, or an API key's label).
    Staff(String),
}

impl Actor {
    pub(crate) fn profile(&self) -> Option<ProfileId> {
        match self {
            Actor::Customer(p) => Some(*p),
            Actor::Staff(_) => None,
        }
    }
    pub(crate) fn staff(&self) -> Option<String> {
        match self {
            Actor::Staff(s) => Some(s.clone()),
            Actor::Customer(_) => None,
        }
    }
}

fn event(
    profile: ProfileId,
    name: &str,
    id: String,
    at: Millis,
    props: Value,
) -> Result<EventRow, StoreError> {
    crate::timeline::event(profile, CHANNEL, name, &id, at, props)
}

/// A post by id, or `NotFound`; a hidden one only for staff.
pub async fn get(store: &DynStore, id: i64, staff: bool) -> Result<Post, StoreError> {
    match store.post(id).await? {
        Some(p) if staff || !p.hidden => Ok(p),
        _ => Err(StoreError::NotFound(format!("post {id}"))),
    }
}

/// The person a raw profile belongs to now.
async fn person(store: &DynStore, profile: ProfileId) -> Result<ProfileId, StoreError> {
    Ok(store.profile(profile).await?.id)
}

/// How the graph names a person in an event (`kind:value`), e-mail first.
async fn identifier(store: &DynStore, profile: ProfileId) -> Option<String> {
    let p = store.profile(profile).await.ok()?;
    let pick = p
        .identities
        .iter()
        .find(|i| i.kind == rapport_domain::IdentityKind::Email)
        .or_else(|| p.identities.first())?;
    Some(format!("{}:{}", pick.kind.as_str(), pick.value))
}

/// Text analysis's verdict on what someone wrote (None: it can go up).
fn screen(text: &str) -> Option<String> {
    let compound = crate::graph::vader().polarity(text).compound;
    rapport_text::moderation::screen(text, compound).map(str::to_string)
}

/// What a new post is made of.
struct Draft<'a> {
    kind: &'a str,
    parent: Option<&'a Post>,
    title: Option<String>,
    body: String,
    status: &'a str,
}

async fn add(
    store: &DynStore,
    who: &Actor,
    d: Draft<'_>,
    name: &str,
    mut props: Value,
) -> Result<Post, StoreError> {
    let now = now_millis();
    let flag = match who {
        Actor::Staff(_) => None,
        Actor::Customer(_) => screen(&format!(
            "{} {}",
            d.title.as_deref().unwrap_or_default(),
            d.body
        )),
    };
    let held = flag.is_some() && settings(store).await?.hold_flagged;
    let p = Post {
        id: 0,
        kind: d.kind.into(),
        parent_id: d.parent.map(|p| p.id),
        profile_id: who.profile(),
        staff: who.staff(),
        title: d.title.clone(),
        body: d.body.clone(),
        status: d.status.into(),
        accepted_id: None,
        score: 0,
        hidden: held,
        locked: false,
        official: false,
        flag,
        duplicate_of: None,
        created_at: now,
        updated_at: now,
    };
    let mut events = Vec::new();
    if let Some(author) = who.profile() {
        // The words are in the event so text analysis reads them like any others.
        props["body"] = json!(d.body);
        if let Some(t) = &d.title {
            props["title"] = json!(t);
        }
        events.push(event(
            author,
            name,
            format!("{}:{}", d.kind, uuid::Uuid::now_v7()),
            now,
            props,
        )?);
    }
    store.add_post(p, events).await
}

/// A customer (or staff) asks.
pub async fn ask(
    store: &DynStore,
    who: &Actor,
    title: &str,
    body: &str,
) -> Result<Post, StoreError> {
    let title = rules::title("title", title).map_err(field)?;
    let body = rules::text("body", body, MAX_POST).map_err(field)?;
    let d = Draft {
        kind: "question",
        parent: None,
        title: Some(title),
        body,
        status: "open",
    };
    add(store, who, d, "Question Asked", json!({})).await
}

/// An open post something may be added under (an answer, a comment).
async fn open_parent(store: &DynStore, id: i64, field: &str) -> Result<Post, StoreError> {
    let p = get(store, id, false).await?;
    if p.locked {
        return Err(StoreError::invalid(
            field,
            format!("post {id} is locked: no new answers or comments"),
        ));
    }
    Ok(p)
}

/// An answer to a question; names the asker so the graph records who helped whom.
pub async fn answer(
    store: &DynStore,
    who: &Actor,
    question: i64,
    body: &str,
) -> Result<Post, StoreError> {
    let body = rules::text("body", body, MAX_POST).map_err(field)?;
    let q = open_parent(store, question, "question").await?;
    if q.kind != "question" {
        return Err(StoreError::invalid(
            "question",
            format!("post {question} is not a question"),
        ));
    }
    let mut props = json!({"question": q.id});
    if let Some(asker) = q.profile_id {
        if Some(person(store, asker).await?) != who.profile() {
            if let Some(i) = identifier(store, asker).await {
                props["question_author"] = json!(i);
            }
        }
    }
    let d = Draft {
        kind: "answer",
        parent: Some(&q),
        title: None,
        body,
        status: "",
    };
    add(store, who, d, "Answer Posted", props).await
}

/// A comment on any visible post.
pub async fn comment(
    store: &DynStore,
    who: &Actor,
    parent: i64,
    body: &str,
) -> Result<Post, StoreError> {
    let body = rules::text("body", body, 2_000).map_err(field)?;
    let p = open_parent(store, parent, "parent").await?;
    let d = Draft {
        kind: "comment",
        parent: Some(&p),
        title: None,
        body,
        status: "",
    };
    add(store, who, d, "Comment Posted", json!({"parent": p.id})).await
}

/// A customer may change only their own posts; staff any.
async fn owned(store: &DynStore, who: &Actor, p: &Post) -> Result<(), StoreError> {
    match who {
        Actor::Staff(_) => Ok(()),
        Actor::Customer(me) => match p.profile_id {
            Some(a) if person(store, a).await? == *me => Ok(()),
            // Whose it is stays unsaid.
            _ => Err(StoreError::NotFound(format!("post {}", p.id))),
        },
    }
}

/// Edits a post's title (questions and ideas) and text; screened again.
pub async fn edit(
    store: &DynStore,
    who: &Actor,
    id: i64,
    title: Option<&str>,
    body: &str,
) -> Result<Post, StoreError> {
    let mut p = get(store, id, matches!(who, Actor::Staff(_))).await?;
    owned(store, who, &p).await?;
    p.body = rules::text("body", body, MAX_POST).map_err(field)?;
    if let Some(t) = title {
        if p.title.is_some() {
            p.title = Some(rules::title("title", t).map_err(field)?);
        }
    }
    if let Actor::Customer(_) = who {
        p.flag = screen(&format!(
            "{} {}",
            p.title.as_deref().unwrap_or_default(),
            p.body
        ));
        if p.flag.is_some() && settings(store).await?.hold_flagged {
            p.hidden = true;
        }
    }
    p.updated_at = now_millis();
    store.update_post(p.clone(), Vec::new()).await?;
    Ok(p)
}

/// The asker (or staff) accepts an answer: the question is answered, and the helper's
/// timeline gets `Answer Accepted` naming the asker (a `helpful_answer` in the graph).
pub async fn accept(
    store: &DynStore,
    who: &Actor,
    question: i64,
    answer: i64,
) -> Result<Post, StoreError> {
    let mut q = get(store, question, matches!(who, Actor::Staff(_))).await?;
    owned(store, who, &q).await?;
    let a = get(store, answer, true).await?;
    if q.kind != "question" || a.kind != "answer" || a.parent_id != Some(q.id) {
        return Err(StoreError::invalid(
            "answer",
            format!("post {answer} is not an answer to question {question}"),
        ));
    }
    let now = now_millis();
    q.accepted_id = Some(a.id);
    q.status = "answered".into();
    q.updated_at = now;
    let mut events = Vec::new();
    if let Some(helper) = a.profile_id {
        let mut props = json!({"question": q.id, "answer": a.id, "accepted": true});
        if let Some(asker) = q.profile_id {
            if person(store, asker).await? != person(store, helper).await? {
                if let Some(i) = identifier(store, asker).await {
                    props["question_author"] = json!(i);
                }
            }
        }
        events.push(event(
            helper,
            "Answer Accepted",
            format!("answer:{}:accepted:{now}", a.id),
            now,
            props,
        )?);
    }
    store.update_post(q.clone(), events).await?;
    Ok(q)
}

/// A person's vote on a post: 1 or -1 (ideas: 1), or 0 to take it back. Nobody votes on
/// their own post; ideas' votes keep within the budget. Returns the post's new score.
pub async fn vote(
    store: &DynStore,
    voter: ProfileId,
    id: i64,
    value: i64,
) -> Result<i64, StoreError> {
    let p = get(store, id, false).await?;
    let idea = p.kind == "idea";
    if p.kind == "comment" {
        return Err(StoreError::invalid("post", "comments take no votes"));
    }
    let me = store.profile(voter).await?;
    if p.profile_id.is_some_and(|a| me.member_ids.contains(&a)) {
        return Err(StoreError::invalid(
            "post",
            "you cannot vote on your own post",
        ));
    }
    let now = now_millis();
    if value == 0 {
        return store.set_vote(p.id, me.id, None, Vec::new()).await;
    }
    let value = rules::vote("value", value, idea).map_err(field)?;
    if idea {
        let had = store.votes_by(me.member_ids.clone(), vec![p.id]).await?;
        if had.is_empty() {
            let holding: Vec<String> = IdeaStatus::ALL
                .iter()
                .filter(|s| s.holds_votes())
                .map(|s| s.as_str().to_string())
                .collect();
            let used = store
                .idea_votes_used(me.member_ids.clone(), holding)
                .await?;
            rules::within_budget("value", used, settings(store).await?.idea_votes)
                .map_err(field)?;
        }
    }
    let name = if idea { "Idea Voted" } else { "Post Voted" };
    let e = event(
        me.id,
        name,
        format!("vote:{}:{}:{now}", p.id, me.id),
        now,
        json!({"post_kind": p.kind, "value": value, "topic": p.parent_id.unwrap_or(p.id)}),
    )?;
    store.set_vote(p.id, me.id, Some(value), vec![e]).await
}

/// What staff may change on a post.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Moderation {
    pub hidden: Option<bool>,
    pub locked: Option<bool>,
    pub official: Option<bool>,
    /// The review is done: the flag is cleared (publish with `hidden: false`).
    #[serde(default)]
    pub reviewed: bool,
}

pub async fn moderate(store: &DynStore, id: i64, m: Moderation) -> Result<Post, StoreError> {
    let mut p = get(store, id, true).await?;
    if let Some(h) = m.hidden {
        p.hidden = h;
    }
    if let Some(l) = m.locked {
        p.locked = l;
    }
    if let Some(o) = m.official {
        if o && p.kind != "answer" {
            return Err(StoreError::invalid(
                "official",
                "only answers are marked official",
            ));
        }
        p.official = o;
    }
    if m.reviewed {
        p.flag = None;
    }
    p.updated_at = now_millis();
    store.update_post(p.clone(), Vec::new()).await?;
    Ok(p)
}

/// Merges a duplicate question or idea into another of the same kind: its answers,
/// comments and votes move (a voter of both keeps one vote); the duplicate is marked
/// and hidden (a question) or set `duplicate` (an idea).
pub async fn merge(store: &DynStore, from: i64, into: i64) -> Result<Post, StoreError> {
    if from == into {
        return Err(StoreError::invalid(
            "into",
            "a post cannot be merged into itself",
        ));
    }
    let mut f = get(store, from, true).await?;
    let t = get(store, into, true).await?;
    if !matches!(f.kind.as_str(), "question" | "idea") || f.kind != t.kind {
        return Err(StoreError::invalid(
            "into",
            format!("post {into} is not a {} like post {from}", f.kind),
        ));
    }
    f.duplicate_of = Some(t.id);
    if f.kind == "idea" {
        f.status = IdeaStatus::Duplicate.as_str().into();
    } else {
        f.hidden = true;
    }
    f.updated_at = now_millis();
    store.merge_posts(f, t.id, Vec::new()).await?;
    get(store, t.id, true).await
}

/// A customer (or staff) suggests an idea.
pub async fn suggest(
    store: &DynStore,
    who: &Actor,
    title: &str,
    body: &str,
) -> Result<Post, StoreError> {
    let title = rules::title("title", title).map_err(field)?;
    let body = rules::text("body", body, MAX_POST).map_err(field)?;
    let d = Draft {
        kind: "idea",
        parent: None,
        title: Some(title),
        body,
        status: IdeaStatus::Open.as_str(),
    };
    add(store, who, d, "Idea Submitted", json!({})).await
}

/// The template voters hear from when an idea's status changes (made on first use).
pub const IDEA_TEMPLATE: &str = "idea-status";

/// Staff move an idea (open, planned, started, completed, declined); each voter is
/// told by e-mail from the support address (when there is one), and `Idea Status
/// Changed` goes on the author's and each voter's timeline. Returns how many were told.
pub async fn set_idea_status(
    store: &DynStore,
    email: &Email,
    id: i64,
    status: &str,
    note: Option<&str>,
) -> Result<(Post, usize), StoreError> {
    let s = IdeaStatus::parse("status", status).map_err(field)?;
    if s == IdeaStatus::Duplicate {
        return Err(StoreError::invalid(
            "status",
            "merge the idea into the one it repeats (POST /api/community/posts/{id}/merge)",
        ));
    }
    let note = match note.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => Some(rules::text("note", n, 2_000).map_err(field)?),
        None => None,
    };
    let mut p = get(store, id, true).await?;
    if p.kind != "idea" {
        return Err(StoreError::invalid(
            "status",
            format!("post {id} is not an idea"),
        ));
    }
    if p.status == s.as_str() {
        return Ok((p, 0));
    }
    let now = now_millis();
    p.status = s.as_str().into();
    p.updated_at = now;
    let voters = store.voters(p.id).await?;
    let mut people: Vec<ProfileId> = voters.clone();
    if let Some(a) = p.profile_id {
        people.push(a);
    }
    people.sort_unstable();
    people.dedup();
    let props = json!({"idea": p.id, "title": p.title, "status": s.as_str(), "note": note});
    let events = people
        .iter()
        .map(|v| {
            event(
                *v,
                "Idea Status Changed",
                format!("idea:{}:{}:{v}:{now}", p.id, s.as_str()),
                now,
                props.clone(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    store.update_post(p.clone(), events).await?;
    let told = tell_voters(store, email, &p, &voters, note.as_deref()).await;
    Ok((p, told))
}

async fn tell_voters(
    store: &DynStore,
    email: &Email,
    p: &Post,
    voters: &[ProfileId],
    note: Option<&str>,
) -> usize {
    let sent = async {
        let s = crate::tickets::settings(store).await?;
        let Some(from) = s.address.clone() else {
            return Ok(0);
        };
        let src = rapport_email::template::Source {
            subject: "Your idea is {{ data.status }}: {{ data.title }}".into(),
            html: "<p>An idea you voted for, <strong>{{ data.title }}</strong>, is now \
                   <strong>{{ data.status }}</strong>.</p>{% if data.note %}<p>{{ data.note }}</p>{% endif %}"
                .into(),
            text: Some(
                "An idea you voted for, \"{{ data.title }}\", is now {{ data.status }}.\n\n{% if data.note %}{{ data.note }}\n{% endif %}"
                    .into(),
            ),
        };
        email.ensure_template(IDEA_TEMPLATE, src).await?;
        let mut n = 0;
        for v in voters {
            let r = email
                .send(crate::email::SendRequest {
                    template: IDEA_TEMPLATE.into(),
                    to: json!(v),
                    from: from.clone(),
                    from_name: s.name.clone(),
                    data: json!({"title": p.title, "status": p.status, "note": note}),
                    idempotency_key: Some(format!("idea:{}:{}:{v}", p.id, p.status)),
                    kind: Some("transactional".into()),
                    not_before: None,
                    untracked: false,
                    thread: None,
                })
                .await;
            match r {
                Ok(_) => n += 1,
                Err(e) => tracing::warn!(idea = p.id, voter = v, error = %e, "a voter was not told"),
            }
        }
        Ok::<usize, StoreError>(n)
    }
    .await;
    sent.unwrap_or_else(|e| {
        tracing::warn!(idea = p.id, error = %e, "voters were not told");
        0
    })
}

/// A person's reputation and what it is made of.
pub async fn reputation(
    store: &DynStore,
    person: ProfileId,
) -> Result<(i64, Standing), StoreError> {
    let p = store.profile(person).await?;
    let s = store.standing(p.member_ids).await?;
    Ok((rules::reputation(s.up, s.down, s.accepted), s))
}

/// Visible posts for a search: every word first, any word when nothing has them all.
pub async fn search(store: &DynStore, q: &str, limit: usize) -> Result<Vec<PostHit>, StoreError> {
    let terms = rules::search_terms(q);
    let hits = store
        .search_posts(terms.clone(), true, false, limit)
        .await?;
    if !hits.is_empty() || terms.len() < 2 {
        return Ok(hits);
    }
    store.search_posts(terms, false, false, limit).await
}

/// Lists posts (see [`PostFilter`]).
pub async fn list(store: &DynStore, f: PostFilter) -> Result<Vec<Post>, StoreError> {
    store.posts(f).await
}
