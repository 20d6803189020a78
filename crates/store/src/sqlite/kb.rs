//! SQLite side of the knowledge base: articles, revisions, FTS5 search, deflection.

use super::ingest::insert_events;
use super::SqliteStore;
use crate::kb::{Article, ArticleHit, Deflection, KbStore, Revision};
use crate::sql::kb as q;
use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::Millis;
use rusqlite::{params, OptionalExtension, Row, Transaction};

const SOURCE: &str = "kb";

fn article(r: &Row<'_>) -> rusqlite::Result<Article> {
    Ok(Article {
        id: r.get(0)?,
        title: r.get(1)?,
        body: r.get(2)?,
        category: r.get(3)?,
        status: r.get(4)?,
        author_profile: r.get(5)?,
        author_staff: r.get(6)?,
        helpful_yes: r.get(7)?,
        helpful_no: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        published_at: r.get(11)?,
    })
}

fn revision(r: &Row<'_>) -> rusqlite::Result<Revision> {
    Ok(Revision {
        id: r.get(0)?,
        article_id: r.get(1)?,
        title: r.get(2)?,
        body: r.get(3)?,
        category: r.get(4)?,
        status: r.get(5)?,
        author_profile: r.get(6)?,
        author_staff: r.get(7)?,
        note: r.get(8)?,
        at: r.get(9)?,
    })
}

fn add_revision(tx: &Transaction<'_>, v: &Revision) -> Result<i64> {
    tx.prepare_cached(q::INSERT_REVISION)?.execute(params![
        v.article_id,
        v.title,
        v.body,
        v.category,
        v.status,
        v.author_profile,
        v.author_staff,
        v.note,
        v.at
    ])?;
    Ok(tx.last_insert_rowid())
}

#[async_trait]
impl KbStore for SqliteStore {
    async fn add_article(
        &self,
        mut a: Article,
        mut first: Revision,
        mut events: Vec<EventRow>,
    ) -> Result<Article> {
        self.write(move |tx| {
            tx.prepare_cached(q::INSERT_ARTICLE)?.execute(params![
                a.title,
                a.body,
                a.category,
                a.status,
                a.author_profile,
                a.author_staff,
                a.created_at,
                a.updated_at,
                a.published_at
            ])?;
            a.id = tx.last_insert_rowid();
            first.article_id = a.id;
            add_revision(tx, &first)?;
            crate::common::stamp_events(&mut events, "article", a.id);
            insert_events(tx, &events, SOURCE)?;
            Ok(a)
        })
        .await
    }

    async fn save_article(
        &self,
        a: Article,
        rev: Option<Revision>,
        events: Vec<EventRow>,
    ) -> Result<i64> {
        self.write(move |tx| {
            tx.prepare_cached(q::SAVE_ARTICLE)?.execute(params![
                a.title,
                a.body,
                a.category,
                a.status,
                a.author_profile,
                a.author_staff,
                a.updated_at,
                a.published_at,
                a.id
            ])?;
            let id = match rev {
                Some(v) if v.id > 0 => {
                    tx.prepare_cached(q::DECIDE_REVISION)?.execute(params![
                        v.status,
                        v.author_staff,
                        v.id
                    ])?;
                    v.id
                }
                Some(v) => add_revision(tx, &v)?,
                None => 0,
            };
            insert_events(tx, &events, SOURCE)?;
            Ok(id)
        })
        .await
    }

    async fn article(&self, id: i64) -> Result<Option<Article>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {} FROM kb_articles WHERE id = ?1",
                q::COLS
            ))?
            .query_row([id], article)
            .optional()?)
        })
        .await
    }

    async fn articles(
        &self,
        status: Option<String>,
        category: Option<String>,
        limit: usize,
    ) -> Result<Vec<Article>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {} FROM kb_articles WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR category = ?2)
                 ORDER BY updated_at DESC, id DESC LIMIT ?3",
                q::COLS
            ))?
            .query_map(params![status, category, limit as i64], article)?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn revisions(&self, id: i64) -> Result<Vec<Revision>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {} FROM kb_revisions WHERE article_id = ?1 ORDER BY id DESC",
                q::REV_COLS
            ))?
            .query_map([id], revision)?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn revision(&self, id: i64) -> Result<Option<Revision>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {} FROM kb_revisions WHERE id = ?1",
                q::REV_COLS
            ))?
            .query_row([id], revision)
            .optional()?)
        })
        .await
    }

    async fn proposed_revisions(&self, limit: usize) -> Result<Vec<Revision>> {
        self.read(move |c| {
            Ok(c.prepare_cached(q::PROPOSED_EDITS)?
                .query_map([limit as i64], revision)?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn helpful(&self, id: i64, yes: bool, events: Vec<EventRow>) -> Result<()> {
        self.write(move |tx| {
            let (y, n) = if yes { (1, 0) } else { (0, 1) };
            tx.prepare_cached(q::HELPFUL)?.execute(params![y, n, id])?;
            insert_events(tx, &events, SOURCE)
        })
        .await
    }

    async fn search_articles(
        &self,
        terms: Vec<String>,
        all: bool,
        prefix: bool,
        limit: usize,
    ) -> Result<Vec<ArticleHit>> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let m = rapport_domain::community::fts5_query(&terms, all, prefix);
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT a.id, a.title, snippet(kb_fts, 1, '', '', '…', 14)
                 FROM kb_fts JOIN kb_articles a ON a.id = kb_fts.rowid
                 WHERE kb_fts MATCH ?1 AND a.status = 'published' ORDER BY rank LIMIT ?2",
            )?
            .query_map(params![m, limit as i64], |r| {
                Ok(ArticleHit {
                    id: r.get(0)?,
                    title: r.get(1)?,
                    snippet: r.get(2)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn add_deflection(&self, profile: ProfileId, article: i64, at: Millis) -> Result<()> {
        self.write(move |tx| {
            tx.prepare_cached(q::ADD_DEFLECTION)?
                .execute(params![profile, article, at])?;
            Ok(())
        })
        .await
    }

    async fn deflection(&self, since: Millis, now: Millis) -> Result<Deflection> {
        self.read(move |c| {
            Ok(c.prepare_cached(q::DEFLECTION)?
                .query_row(params![now, since], |r| {
                    Ok(Deflection {
                        suggested_opened: r.get(0)?,
                        tickets_avoided: r.get(1)?,
                    })
                })?)
        })
        .await
    }
}
