//! PostgreSQL side of the knowledge base: articles, revisions, tsvector search,
//! deflection.

use super::ingest::write_events;
use super::PgStore;
use crate::kb::{Article, ArticleHit, Deflection, KbStore, Revision};
use crate::sql::kb as q;
use crate::Result;
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::Millis;
use tokio_postgres::Row;

const SOURCE: &str = "kb";

fn article(r: &Row) -> Article {
    Article {
        id: r.get(0),
        title: r.get(1),
        body: r.get(2),
        category: r.get(3),
        status: r.get(4),
        author_profile: r.get(5),
        author_staff: r.get(6),
        helpful_yes: r.get(7),
        helpful_no: r.get(8),
        created_at: r.get(9),
        updated_at: r.get(10),
        published_at: r.get(11),
    }
}

fn revision(r: &Row) -> Revision {
    Revision {
        id: r.get(0),
        article_id: r.get(1),
        title: r.get(2),
        body: r.get(3),
        category: r.get(4),
        status: r.get(5),
        author_profile: r.get(6),
        author_staff: r.get(7),
        note: r.get(8),
        at: r.get(9),
    }
}

async fn add_revision(tx: &Transaction<'_>, v: &Revision) -> Result<i64> {
    Ok(tx
        .query_one(
            &format!("{} RETURNING id", q::INSERT_REVISION),
            &[
                &v.article_id,
                &v.title,
                &v.body,
                &v.category,
                &v.status,
                &v.author_profile,
                &v.author_staff,
                &v.note,
                &v.at,
            ],
        )
        .await?
        .get(0))
}

#[async_trait]
impl KbStore for PgStore {
    async fn add_article(
        &self,
        mut a: Article,
        mut first: Revision,
        mut evs: Vec<EventRow>,
    ) -> Result<Article> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        a.id = tx
            .query_one(
                &format!("{} RETURNING id", q::INSERT_ARTICLE),
                &[
                    &a.title,
                    &a.body,
                    &a.category,
                    &a.status,
                    &a.author_profile,
                    &a.author_staff,
                    &a.created_at,
                    &a.updated_at,
                    &a.published_at,
                ],
            )
            .await?
            .get(0);
        first.article_id = a.id;
        add_revision(&tx, &first).await?;
        crate::common::stamp_events(&mut evs, "article", a.id);
        write_events(&tx, &evs, SOURCE).await?;
        tx.commit().await?;
        Ok(a)
    }

    async fn save_article(
        &self,
        a: Article,
        rev: Option<Revision>,
        evs: Vec<EventRow>,
    ) -> Result<i64> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            q::SAVE_ARTICLE,
            &[
                &a.title,
                &a.body,
                &a.category,
                &a.status,
                &a.author_profile,
                &a.author_staff,
                &a.updated_at,
                &a.published_at,
                &a.id,
            ],
        )
        .await?;
        let id = match rev {
            Some(v) if v.id > 0 => {
                tx.execute(q::DECIDE_REVISION, &[&v.status, &v.author_staff, &v.id])
                    .await?;
                v.id
            }
            Some(v) => add_revision(&tx, &v).await?,
            None => 0,
        };
        write_events(&tx, &evs, SOURCE).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn article(&self, id: i64) -> Result<Option<Article>> {
        let c = self.client().await?;
        Ok(c.query_opt(
            &format!("SELECT {} FROM kb_articles WHERE id = $1", q::COLS),
            &[&id],
        )
        .await?
        .as_ref()
        .map(article))
    }

    async fn articles(
        &self,
        status: Option<String>,
        category: Option<String>,
        limit: usize,
    ) -> Result<Vec<Article>> {
        let c = self.client().await?;
        let limit = limit as i64;
        Ok(c.query(
            &format!(
                "SELECT {} FROM kb_articles WHERE ($1::TEXT IS NULL OR status = $1) AND ($2::TEXT IS NULL OR category = $2)
                 ORDER BY updated_at DESC, id DESC LIMIT $3",
                q::COLS
            ),
            &[&status, &category, &limit],
        )
        .await?
        .iter()
        .map(article)
        .collect())
    }

    async fn revisions(&self, id: i64) -> Result<Vec<Revision>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!(
                "SELECT {} FROM kb_revisions WHERE article_id = $1 ORDER BY id DESC",
                q::REV_COLS
            ),
            &[&id],
        )
        .await?
        .iter()
        .map(revision)
        .collect())
    }

    async fn revision(&self, id: i64) -> Result<Option<Revision>> {
        let c = self.client().await?;
        Ok(c.query_opt(
            &format!("SELECT {} FROM kb_revisions WHERE id = $1", q::REV_COLS),
            &[&id],
        )
        .await?
        .as_ref()
        .map(revision))
    }

    async fn proposed_revisions(&self, limit: usize) -> Result<Vec<Revision>> {
        let c = self.client().await?;
        let limit = limit as i64;
        Ok(c.query(q::PROPOSED_EDITS, &[&limit])
            .await?
            .iter()
            .map(revision)
            .collect())
    }

    async fn helpful(&self, id: i64, yes: bool, evs: Vec<EventRow>) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let (y, n): (i64, i64) = if yes { (1, 0) } else { (0, 1) };
        tx.execute(q::HELPFUL, &[&y, &n, &id]).await?;
        write_events(&tx, &evs, SOURCE).await?;
        tx.commit().await?;
        Ok(())
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
        let tsq = rapport_domain::community::tsquery(&terms, all, prefix);
        let c = self.client().await?;
        let limit = limit as i64;
        Ok(c.query(
            "WITH q AS (SELECT to_tsquery('english', $1) AS q),
             top AS (SELECT a.id, ts_rank(a.tsv, q.q) AS r FROM kb_articles a, q
                     WHERE a.tsv @@ q.q AND a.status = 'published' ORDER BY r DESC, a.id DESC LIMIT $2)
             SELECT a.id, a.title, ts_headline('english', a.body, q.q, 'MaxWords=24, MinWords=10, StartSel=\"\", StopSel=\"\"')
             FROM top JOIN kb_articles a ON a.id = top.id CROSS JOIN q ORDER BY top.r DESC, a.id DESC",
            &[&tsq, &limit],
        )
        .await?
        .iter()
        .map(|r| ArticleHit {
            id: r.get(0),
            title: r.get(1),
            snippet: r.get(2),
        })
        .collect())
    }

    async fn add_deflection(&self, profile: ProfileId, article: i64, at: Millis) -> Result<()> {
        let c = self.client().await?;
        c.execute(q::ADD_DEFLECTION, &[&profile, &article, &at])
            .await?;
        Ok(())
    }

    async fn deflection(&self, since: Millis, now: Millis) -> Result<Deflection> {
        let c = self.client().await?;
        let r = c.query_one(q::DEFLECTION, &[&now, &since]).await?;
        Ok(Deflection {
            suggested_opened: r.get(0),
            tickets_avoided: r.get(1),
        })
    }
}
