//! PostgreSQL side of the community: posts, votes, tsvector search.

use super::ingest::write_events;
use super::PgStore;
use crate::community::{CommunityStore, Post, PostFilter, PostHit, Standing};
use crate::sql::community as q;
use crate::Result;
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use rapport_domain::resolve::{EventRow, ProfileId};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

const SOURCE: &str = "community";

fn post(r: &Row) -> Post {
    Post {
        id: r.get(0),
        kind: r.get(1),
        parent_id: r.get(2),
        profile_id: r.get(3),
        staff: r.get(4),
        title: r.get(5),
        body: r.get(6),
        status: r.get(7),
        accepted_id: r.get(8),
        score: r.get(9),
        hidden: r.get(10),
        locked: r.get(11),
        official: r.get(12),
        flag: r.get(13),
        duplicate_of: r.get(14),
        created_at: r.get(15),
        updated_at: r.get(16),
    }
}

async fn save(tx: &Transaction<'_>, p: &Post) -> Result<()> {
    tx.execute(
        q::SAVE_POST,
        &[
            &p.title,
            &p.body,
            &p.status,
            &p.accepted_id,
            &p.hidden,
            &p.locked,
            &p.official,
            &p.flag,
            &p.duplicate_of,
            &p.updated_at,
            &p.parent_id,
            &p.id,
        ],
    )
    .await?;
    Ok(())
}

async fn rescore(tx: &Transaction<'_>, id: i64) -> Result<i64> {
    tx.execute(q::RESCORE, &[&id]).await?;
    Ok(tx
        .query_opt("SELECT score FROM posts WHERE id = $1", &[&id])
        .await?
        .map(|r| r.get(0))
        .unwrap_or(0))
}

#[async_trait]
impl CommunityStore for PgStore {
    async fn add_post(&self, mut p: Post, mut evs: Vec<EventRow>) -> Result<Post> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        p.id = tx
            .query_one(
                &format!("{} RETURNING id", q::INSERT_POST),
                &[
                    &p.kind,
                    &p.parent_id,
                    &p.profile_id,
                    &p.staff,
                    &p.title,
                    &p.body,
                    &p.status,
                    &p.hidden,
                    &p.flag,
                    &p.created_at,
                    &p.updated_at,
                ],
            )
            .await?
            .get(0);
        tx.execute(q::SET_TOPIC, &[&p.id]).await?;
        crate::common::stamp_events(&mut evs, "post", p.id);
        write_events(&tx, &evs, SOURCE).await?;
        tx.commit().await?;
        Ok(p)
    }

    async fn import_posts(&self, posts: Vec<Post>) -> Result<Vec<i64>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let col = |f: &dyn Fn(&Post) -> Option<String>| posts.iter().map(f).collect::<Vec<_>>();
        let kinds = col(&|p| Some(p.kind.clone()));
        let titles = col(&|p| p.title.clone());
        let bodies = col(&|p| Some(p.body.clone()));
        let statuses = col(&|p| Some(p.status.clone()));
        let parents: Vec<Option<i64>> = posts.iter().map(|p| p.parent_id).collect();
        let profiles: Vec<Option<i64>> = posts.iter().map(|p| p.profile_id).collect();
        let times: Vec<i64> = posts.iter().map(|p| p.created_at).collect();
        // One statement for the lot; identities are drawn in the order given, so the
        // sorted ids are the posts' in order.
        let mut ids: Vec<i64> = tx
            .query(
                "INSERT INTO posts (kind, parent_id, profile_id, title, body, status, created_at, updated_at)
                 SELECT k, p, a, t, b, s, at, at FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::BIGINT[])
                   WITH ORDINALITY AS x(k, p, a, t, b, s, at, n) ORDER BY n RETURNING id",
                &[&kinds, &parents, &profiles, &titles, &bodies, &statuses, &times],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        ids.sort_unstable();
        tx.execute(q::SET_IMPORTED_TOPICS, &[]).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn update_post(&self, p: Post, evs: Vec<EventRow>) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        save(&tx, &p).await?;
        write_events(&tx, &evs, SOURCE).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn post(&self, id: i64) -> Result<Option<Post>> {
        let c = self.client().await?;
        Ok(c.query_opt(q::POST, &[&id]).await?.as_ref().map(post))
    }

    async fn posts(&self, f: PostFilter) -> Result<Vec<Post>> {
        let c = self.client().await?;
        let mut sql = format!("SELECT {} FROM posts WHERE TRUE", q::COLS);
        let limit = f.limit as i64;
        let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(k) = &f.kind {
            args.push(k);
            sql.push_str(&format!(" AND kind = ${}", args.len()));
        }
        if let Some(p) = &f.parent {
            args.push(p);
            sql.push_str(&format!(" AND parent_id = ${}", args.len()));
        }
        if let Some(t) = &f.topic {
            args.push(t);
            sql.push_str(&format!(" AND topic_id = ${0} AND id <> ${0}", args.len()));
        }
        if let Some(s) = &f.status {
            args.push(s);
            sql.push_str(&format!(" AND status = ${}", args.len()));
        }
        if let Some(ps) = &f.profiles {
            args.push(ps);
            sql.push_str(&format!(" AND profile_id = ANY(${})", args.len()));
        }
        if !f.with_hidden {
            sql.push_str(" AND NOT hidden");
        }
        if f.flagged {
            sql.push_str(" AND flag IS NOT NULL");
        }
        sql.push_str(if f.top {
            " ORDER BY score DESC, id DESC"
        } else if f.parent.is_some() || f.topic.is_some() {
            " ORDER BY id"
        } else {
            " ORDER BY id DESC"
        });
        args.push(&limit);
        sql.push_str(&format!(" LIMIT ${}", args.len()));
        Ok(c.query(&sql, &args).await?.iter().map(post).collect())
    }

    async fn set_vote(
        &self,
        id: i64,
        voter: ProfileId,
        value: Option<i64>,
        evs: Vec<EventRow>,
    ) -> Result<i64> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        match value {
            Some(v) => {
                let now = rapport_domain::time::now_millis();
                tx.execute(q::UPSERT_VOTE, &[&id, &voter, &v, &now]).await?
            }
            None => tx.execute(q::DELETE_VOTE, &[&id, &voter]).await?,
        };
        let score = rescore(&tx, id).await?;
        write_events(&tx, &evs, SOURCE).await?;
        tx.commit().await?;
        Ok(score)
    }

    async fn votes_by(&self, voters: Vec<ProfileId>, posts: Vec<i64>) -> Result<Vec<(i64, i64)>> {
        let c = self.client().await?;
        Ok(c.query(
            "SELECT post_id, value FROM post_votes WHERE profile_id = ANY($1) AND post_id = ANY($2)",
            &[&voters, &posts],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
    }

    async fn idea_votes_used(&self, voters: Vec<ProfileId>, statuses: Vec<String>) -> Result<i64> {
        let c = self.client().await?;
        Ok(c.query_one(
            "SELECT COUNT(*) FROM post_votes v JOIN posts p ON p.id = v.post_id
             WHERE v.profile_id = ANY($1) AND p.kind = 'idea' AND p.status = ANY($2)",
            &[&voters, &statuses],
        )
        .await?
        .get(0))
    }

    async fn voters(&self, id: i64) -> Result<Vec<ProfileId>> {
        let c = self.client().await?;
        Ok(c.query(q::VOTERS, &[&id])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn merge_posts(&self, from: Post, into: i64, evs: Vec<EventRow>) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        for s in q::MERGE {
            tx.execute(s, &[&from.id, &into]).await?;
        }
        save(&tx, &from).await?;
        rescore(&tx, from.id).await?;
        rescore(&tx, into).await?;
        write_events(&tx, &evs, SOURCE).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn standing(&self, authors: Vec<ProfileId>) -> Result<Standing> {
        let c = self.client().await?;
        let r = c
            .query_one(
                "SELECT
                   (SELECT COUNT(*) FROM post_votes v JOIN posts p ON p.id = v.post_id
                     WHERE p.profile_id = ANY($1) AND v.value > 0),
                   (SELECT COUNT(*) FROM post_votes v JOIN posts p ON p.id = v.post_id
                     WHERE p.profile_id = ANY($1) AND v.value < 0),
                   (SELECT COUNT(*) FROM posts q JOIN posts a ON a.id = q.accepted_id
                     WHERE a.profile_id = ANY($1)),
                   (SELECT COUNT(*) FROM posts a WHERE a.kind = 'answer' AND a.profile_id = ANY($1))",
                &[&authors],
            )
            .await?;
        Ok(Standing {
            up: r.get(0),
            down: r.get(1),
            accepted: r.get(2),
            answers: r.get(3),
        })
    }

    async fn search_posts(
        &self,
        terms: Vec<String>,
        all: bool,
        prefix: bool,
        limit: usize,
    ) -> Result<Vec<PostHit>> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let tsq = rapport_domain::community::tsquery(&terms, all, prefix);
        let c = self.client().await?;
        let limit = limit as i64;
        let window = rapport_domain::community::SEARCH_WINDOW as i64;
        // The newest matches ranked (docs/support.md); the excerpt (ts_headline reads the
        // text again) made for the page only. PostgreSQL finds "the newest" only after
        // reading every match, so the newest 50,000 posts are searched first (an index
        // range ANDed with the text index) and all of them only when those hold less
        // than a page: a common word costs 40 ms instead of 0.8 s, a rare one is cheap.
        let mut hits = Vec::new();
        for recent in [50_000i64, i64::MAX] {
            hits = c
                .query(
                    "WITH q AS (SELECT to_tsquery('english', $1) AS q),
             newest AS (SELECT p.id, p.tsv FROM posts p, q
                        WHERE p.id > (SELECT COALESCE(MAX(id), 0) FROM posts) - $4 AND p.tsv @@ q.q AND NOT p.hidden
                        ORDER BY p.id DESC LIMIT $3),
             top AS (SELECT n.id, ts_rank(n.tsv, q.q) AS r FROM newest n, q ORDER BY r DESC, n.id DESC LIMIT $2)
             SELECT p.id, p.kind, COALESCE(p.topic_id, p.id), COALESCE(t.title, p.title, ''),
                    ts_headline('english', p.body, q.q, 'MaxWords=24, MinWords=10, StartSel=\"\", StopSel=\"\"')
             FROM top JOIN posts p ON p.id = top.id CROSS JOIN q LEFT JOIN posts t ON t.id = p.topic_id
             WHERE t.id IS NULL OR NOT t.hidden ORDER BY top.r DESC, p.id DESC",
                    &[&tsq, &limit, &window, &recent],
                )
                .await?
                .iter()
                .map(|r| PostHit {
                    id: r.get(0),
                    kind: r.get(1),
                    topic: r.get(2),
                    title: r.get(3),
                    snippet: r.get(4),
                })
                .collect::<Vec<_>>();
            if hits.len() as i64 >= limit {
                break;
            }
        }
        Ok(hits)
    }
}
