//! SQLite side of the community: posts, votes, FTS5 search.

use super::ingest::insert_events;
use super::SqliteStore;
use crate::community::{CommunityStore, Post, PostFilter, PostHit, Standing};
use crate::sql::community as q;
use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::{EventRow, ProfileId};
use rusqlite::{params, OptionalExtension, Row, Transaction};

const SOURCE: &str = "community";

fn post(r: &Row<'_>) -> rusqlite::Result<Post> {
    Ok(Post {
        id: r.get(0)?,
        kind: r.get(1)?,
        parent_id: r.get(2)?,
        profile_id: r.get(3)?,
        staff: r.get(4)?,
        title: r.get(5)?,
        body: r.get(6)?,
        status: r.get(7)?,
        accepted_id: r.get(8)?,
        score: r.get(9)?,
        hidden: r.get(10)?,
        locked: r.get(11)?,
        official: r.get(12)?,
        flag: r.get(13)?,
        duplicate_of: r.get(14)?,
        created_at: r.get(15)?,
        updated_at: r.get(16)?,
    })
}

fn json_ids<T: serde::Serialize>(ids: &[T]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

fn save(tx: &Transaction<'_>, p: &Post) -> Result<()> {
    tx.prepare_cached(q::SAVE_POST)?.execute(params![
        p.title,
        p.body,
        p.status,
        p.accepted_id,
        p.hidden,
        p.locked,
        p.official,
        p.flag,
        p.duplicate_of,
        p.updated_at,
        p.parent_id,
        p.id
    ])?;
    Ok(())
}

fn rescore(tx: &Transaction<'_>, post: i64) -> Result<i64> {
    tx.prepare_cached(q::RESCORE)?.execute([post])?;
    Ok(tx
        .prepare_cached("SELECT score FROM posts WHERE id = ?1")?
        .query_row([post], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

#[async_trait]
impl CommunityStore for SqliteStore {
    async fn add_post(&self, mut p: Post, mut events: Vec<EventRow>) -> Result<Post> {
        self.write(move |tx| {
            tx.prepare_cached(q::INSERT_POST)?.execute(params![
                p.kind,
                p.parent_id,
                p.profile_id,
                p.staff,
                p.title,
                p.body,
                p.status,
                p.hidden,
                p.flag,
                p.created_at,
                p.updated_at
            ])?;
            p.id = tx.last_insert_rowid();
            tx.prepare_cached(q::SET_TOPIC)?.execute([p.id])?;
            crate::common::stamp_events(&mut events, "post", p.id);
            insert_events(tx, &events, SOURCE)?;
            Ok(p)
        })
        .await
    }

    async fn import_posts(&self, posts: Vec<Post>) -> Result<Vec<i64>> {
        self.write(move |tx| {
            let mut ids = Vec::with_capacity(posts.len());
            let mut st = tx.prepare_cached(q::INSERT_POST)?;
            for p in &posts {
                st.execute(params![
                    p.kind,
                    p.parent_id,
                    p.profile_id,
                    p.staff,
                    p.title,
                    p.body,
                    p.status,
                    p.hidden,
                    p.flag,
                    p.created_at,
                    p.updated_at
                ])?;
                ids.push(tx.last_insert_rowid());
            }
            tx.execute(q::SET_IMPORTED_TOPICS, [])?;
            Ok(ids)
        })
        .await
    }

    async fn update_post(&self, p: Post, events: Vec<EventRow>) -> Result<()> {
        self.write(move |tx| {
            save(tx, &p)?;
            insert_events(tx, &events, SOURCE)
        })
        .await
    }

    async fn post(&self, id: i64) -> Result<Option<Post>> {
        self.read(move |c| {
            Ok(c.prepare_cached(q::POST)?
                .query_row([id], post)
                .optional()?)
        })
        .await
    }

    async fn posts(&self, f: PostFilter) -> Result<Vec<Post>> {
        self.read(move |c| {
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            let mut sql = format!("SELECT {} FROM posts WHERE 1 = 1", q::COLS);
            if let Some(k) = f.kind {
                args.push(k.into());
                sql.push_str(&format!(" AND kind = ?{}", args.len()));
            }
            if let Some(p) = f.parent {
                args.push(p.into());
                sql.push_str(&format!(" AND parent_id = ?{}", args.len()));
            }
            if let Some(t) = f.topic {
                args.push(t.into());
                sql.push_str(&format!(" AND topic_id = ?{0} AND id <> ?{0}", args.len()));
            }
            if let Some(s) = f.status {
                args.push(s.into());
                sql.push_str(&format!(" AND status = ?{}", args.len()));
            }
            if let Some(ps) = f.profiles {
                args.push(json_ids(&ps).into());
                sql.push_str(&format!(
                    " AND profile_id IN (SELECT value FROM json_each(?{}))",
                    args.len()
                ));
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
            args.push((f.limit as i64).into());
            sql.push_str(&format!(" LIMIT ?{}", args.len()));
            Ok(c.prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(args), post)?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn set_vote(
        &self,
        post_id: i64,
        voter: ProfileId,
        value: Option<i64>,
        events: Vec<EventRow>,
    ) -> Result<i64> {
        self.write(move |tx| {
            match value {
                Some(v) => tx.prepare_cached(q::UPSERT_VOTE)?.execute(params![
                    post_id,
                    voter,
                    v,
                    rapport_domain::time::now_millis()
                ])?,
                None => tx
                    .prepare_cached(q::DELETE_VOTE)?
                    .execute(params![post_id, voter])?,
            };
            let score = rescore(tx, post_id)?;
            insert_events(tx, &events, SOURCE)?;
            Ok(score)
        })
        .await
    }

    async fn votes_by(&self, voters: Vec<ProfileId>, posts: Vec<i64>) -> Result<Vec<(i64, i64)>> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT post_id, value FROM post_votes WHERE profile_id IN (SELECT value FROM json_each(?1))
                 AND post_id IN (SELECT value FROM json_each(?2))",
            )?
            .query_map(params![json_ids(&voters), json_ids(&posts)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn idea_votes_used(&self, voters: Vec<ProfileId>, statuses: Vec<String>) -> Result<i64> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT COUNT(*) FROM post_votes v JOIN posts p ON p.id = v.post_id
                 WHERE v.profile_id IN (SELECT value FROM json_each(?1)) AND p.kind = 'idea'
                 AND p.status IN (SELECT value FROM json_each(?2))",
            )?
            .query_row(params![json_ids(&voters), json_ids(&statuses)], |r| {
                r.get(0)
            })?)
        })
        .await
    }

    async fn voters(&self, post_id: i64) -> Result<Vec<ProfileId>> {
        self.read(move |c| {
            Ok(c.prepare_cached(q::VOTERS)?
                .query_map([post_id], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn merge_posts(&self, from: Post, into: i64, events: Vec<EventRow>) -> Result<()> {
        self.write(move |tx| {
            for s in q::MERGE {
                tx.prepare_cached(s)?.execute(params![from.id, into])?;
            }
            save(tx, &from)?;
            rescore(tx, from.id)?;
            rescore(tx, into)?;
            insert_events(tx, &events, SOURCE)
        })
        .await
    }

    async fn standing(&self, authors: Vec<ProfileId>) -> Result<Standing> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT
                   (SELECT COUNT(*) FROM post_votes v JOIN posts p ON p.id = v.post_id
                     WHERE p.profile_id IN (SELECT value FROM json_each(?1)) AND v.value > 0),
                   (SELECT COUNT(*) FROM post_votes v JOIN posts p ON p.id = v.post_id
                     WHERE p.profile_id IN (SELECT value FROM json_each(?1)) AND v.value < 0),
                   (SELECT COUNT(*) FROM posts q JOIN posts a ON a.id = q.accepted_id
                     WHERE a.profile_id IN (SELECT value FROM json_each(?1))),
                   (SELECT COUNT(*) FROM posts a WHERE a.kind = 'answer'
                     AND a.profile_id IN (SELECT value FROM json_each(?1)))",
            )?
            .query_row([json_ids(&authors)], |r| {
                Ok(Standing {
                    up: r.get(0)?,
                    down: r.get(1)?,
                    accepted: r.get(2)?,
                    answers: r.get(3)?,
                })
            })?)
        })
        .await
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
        use rapport_domain::community::{excerpt, fts5_query, SEARCH_WINDOW};
        let m = fts5_query(&terms, all, prefix);
        self.read(move |c| {
            // The newest matches in the index (FTS5 walks them by rowid and stops), ranked
            // by bm25; the excerpt is cut here (FTS5's snippet() needs the match again).
            let hits: Vec<(PostHit, String)> = c
                .prepare_cached(
                    "SELECT p.id, p.kind, COALESCE(p.topic_id, p.id), COALESCE(t.title, p.title, ''), p.body
                     FROM (SELECT rowid AS id, rank AS r FROM posts_fts WHERE posts_fts MATCH ?1
                           ORDER BY rowid DESC LIMIT ?2) s
                     JOIN posts p ON p.id = s.id LEFT JOIN posts t ON t.id = p.topic_id
                     WHERE NOT p.hidden AND (t.id IS NULL OR NOT t.hidden) ORDER BY s.r LIMIT ?3",
                )?
                .query_map(params![m, SEARCH_WINDOW as i64, limit as i64], |r| {
                    Ok((
                        PostHit {
                            id: r.get(0)?,
                            kind: r.get(1)?,
                            topic: r.get(2)?,
                            title: r.get(3)?,
                            snippet: String::new(),
                        },
                        r.get(4)?,
                    ))
                })?
                .collect::<std::result::Result<_, _>>()?;
            Ok(hits
                .into_iter()
                .map(|(h, body)| PostHit {
                    snippet: excerpt(&body, &terms, 24),
                    ..h
                })
                .collect())
        })
        .await
    }
}
