//! PostgreSQL side of text analyses.

use super::PgStore;
use crate::sqlite::text::tags_of;
use crate::{sql, TextStore};
use crate::{Result, TextRow, TextStats, CATALOGUE_VERSION};
use async_trait::async_trait;
use rapport_domain::model::{SentimentDay, TextAnalysisView};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::{to_datetime, Millis};

const MEMBERS: &str = "SELECT id FROM profiles WHERE canonical_id IN (SELECT canonical_id FROM profiles WHERE id = ANY($1))";

fn day(ms: i64) -> String {
    to_datetime(ms * 86_400_000).format("%Y-%m-%d").to_string()
}

#[async_trait]
impl TextStore for PgStore {
    async fn text_candidates(&self, after: i64, span: i64) -> Result<(Vec<crate::TextRow>, i64)> {
        let c = self.client().await?;
        let max: i64 = c.query_one(sql::text::LAST_EVENT_ID, &[]).await?.get(0);
        let upto = max.min(after.saturating_add(span));
        if upto <= after {
            return Ok((vec![], after));
        }
        let rows = c
            .query(sql::text::TEXTS_IN_RANGE, &[&after, &upto])
            .await?
            .iter()
            .map(|r| TextRow {
                event_id: r.get(0),
                profile_id: r.get(1),
                occurred_at: r.get(2),
                text: r.get(3),
            })
            .collect();
        Ok((rows, upto))
    }

    async fn save_text_analyses(
        &self,
        rows: Vec<rapport_domain::model::TextAnalysisView>,
        cursor: (String, i64),
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for chunk in rows.chunks(10_000) {
            let f = |k: &str| -> Vec<f64> {
                chunk
                    .iter()
                    .map(|r| r.intents.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0))
                    .collect()
            };
            let ev: Vec<i64> = chunk.iter().map(|r| r.event_id).collect();
            let pr: Vec<i64> = chunk.iter().map(|r| r.profile_id).collect();
            let at: Vec<i64> = chunk
                .iter()
                .map(|r| r.occurred_at.timestamp_millis())
                .collect();
            let cp: Vec<f64> = chunk.iter().map(|r| r.compound).collect();
            let lb: Vec<&str> = chunk.iter().map(|r| r.label.as_str()).collect();
            let lg: Vec<&str> = chunk.iter().map(|r| r.language.as_str()).collect();
            let it: Vec<String> = chunk.iter().map(|r| r.intents.to_string()).collect();
            let en: Vec<String> = chunk.iter().map(|r| r.entities.to_string()).collect();
            tx.execute(
                "INSERT INTO text_analyses (event_id, profile_id, occurred_at, compound, label, language, complaint, churn_risk, intents, entities)
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], $5::text[], $6::text[], $7::float8[], $8::float8[], $9::text[], $10::text[])
                 ON CONFLICT (event_id) DO NOTHING",
                &[&ev, &pr, &at, &cp, &lb, &lg, &f("complaint"), &f("churn_risk"), &it, &en],
            )
            .await?;
        }
        let mut ev = Vec::new();
        let mut kinds = Vec::new();
        let mut pr = Vec::new();
        let mut who = Vec::new();
        let mut at = Vec::new();
        let mut cp = Vec::new();
        for r in &rows {
            for (kind, name) in tags_of(&r.entities) {
                ev.push(r.event_id);
                kinds.push(kind);
                pr.push(name);
                who.push(r.profile_id);
                at.push(r.occurred_at.timestamp_millis());
                cp.push(r.compound);
            }
        }
        if !ev.is_empty() {
            tx.execute(
                "INSERT INTO text_tags (event_id, kind, name, profile_id, occurred_at, compound)
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::float8[]) ON CONFLICT (event_id, kind, name) DO NOTHING",
                &[&ev, &kinds, &pr, &who, &at, &cp],
            )
            .await?;
        }
        tx.execute(sql::settings::SET_COUNTER, &[&cursor.0, &cursor.1])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn text_analysis(
        &self,
        event_id: i64,
    ) -> Result<Option<rapport_domain::model::TextAnalysisView>> {
        let c = self.client().await?;
        Ok(c.query_opt(sql::text::TEXT_ANALYSIS, &[&event_id])
            .await?
            .map(|r| {
                let (i, e): (String, String) = (r.get(6), r.get(7));
                TextAnalysisView {
                    event_id: r.get(0),
                    profile_id: r.get(1),
                    occurred_at: to_datetime(r.get(2)),
                    compound: r.get(3),
                    label: r.get(4),
                    language: r.get(5),
                    intents: serde_json::from_str(&i).unwrap_or_default(),
                    entities: serde_json::from_str(&e).unwrap_or_default(),
                }
            }))
    }

    async fn sentiment_series(
        &self,
        people: Option<Vec<ProfileId>>,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<rapport_domain::model::SentimentDay>> {
        let c = self.client().await?;
        let filter = if people.is_some() {
            format!("AND profile_id IN ({MEMBERS})")
        } else {
            "AND cardinality($1::bigint[]) = 0".into()
        };
        let ids = people.unwrap_or_default();
        let sql = format!(
            "SELECT occurred_at / 86400000, COUNT(*), AVG(compound)::float8, COUNT(*) FILTER (WHERE compound >= 0.05), COUNT(*) FILTER (WHERE compound <= -0.05)
             FROM text_analyses WHERE occurred_at >= $2 AND occurred_at <= $3 {filter}
             GROUP BY 1 ORDER BY 1"
        );
        Ok(c.query(&sql, &[&ids, &since, &until])
            .await?
            .iter()
            .map(|r| SentimentDay {
                day: day(r.get(0)),
                texts: r.get(1),
                mean: r.get(2),
                positive: r.get(3),
                negative: r.get(4),
            })
            .collect())
    }

    async fn text_stats(&self, id: ProfileId, since: Millis) -> Result<crate::TextStats> {
        let c = self.client().await?;
        let r = c
            .query_one(
                &format!("SELECT COUNT(*), AVG(compound)::float8 FROM text_analyses WHERE profile_id IN ({MEMBERS}) AND occurred_at >= $2"),
                &[&vec![id], &since],
            )
            .await?;
        Ok(TextStats {
            texts: r.get(0),
            mean: r.get(1),
        })
    }

    async fn set_catalogue(&self, names: Vec<String>, at: Millis) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM catalogue", &[]).await?;
        tx.execute(
            "INSERT INTO catalogue (name, added_at) SELECT n, $2 FROM UNNEST($1::text[]) AS n ON CONFLICT (name) DO NOTHING",
            &[&names, &at],
        )
        .await?;
        tx.execute(sql::settings::BUMP_COUNTER, &[&CATALOGUE_VERSION])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn catalogue(&self) -> Result<Vec<String>> {
        let c = self.client().await?;
        Ok(c.query(sql::text::CATALOGUE, &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn tag_voice(
        &self,
        kind: &str,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<(String, i64, f64)>> {
        let c = self.client().await?;
        Ok(c.query(
            "SELECT name, COUNT(*), AVG(compound)::float8 FROM text_tags WHERE kind = $1 AND occurred_at >= $2 AND occurred_at <= $3
             GROUP BY name ORDER BY COUNT(*) DESC, name",
            &[&kind, &since, &until],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
    }

    async fn tag_series(
        &self,
        kind: &str,
        name: &str,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<rapport_domain::model::SentimentDay>> {
        let c = self.client().await?;
        Ok(c.query(
            "SELECT occurred_at / 86400000, COUNT(*), AVG(compound)::float8, COUNT(*) FILTER (WHERE compound >= 0.05), COUNT(*) FILTER (WHERE compound <= -0.05)
             FROM text_tags WHERE kind = $1 AND name = $2 AND occurred_at >= $3 AND occurred_at <= $4
             GROUP BY 1 ORDER BY 1",
            &[&kind, &name, &since, &until],
        )
        .await?
        .iter()
        .map(|r| SentimentDay {
            day: day(r.get(0)),
            texts: r.get(1),
            mean: r.get(2),
            positive: r.get(3),
            negative: r.get(4),
        })
        .collect())
    }

    async fn analyses_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, ProfileId)>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql::text::ANALYSES_AFTER).await?;
        Ok(client
            .query(&stmt, &[&after, &(limit as i64)])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn texts_between(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<(i64, Millis, String)>> {
        let c = self.client().await?;
        Ok(
            c.query(sql::text::TEXTS_BETWEEN, &[&since, &until, &(limit as i64)])
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
        )
    }

    async fn texts_mentioning(
        &self,
        words: Vec<String>,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<(ProfileId, String)>> {
        let c = self.client().await?;
        Ok(c
            .query(
                "SELECT pr.canonical_id, e.text FROM events e JOIN profiles pr ON pr.id = e.profile_id
                 WHERE e.occurred_at >= $1 AND e.text IS NOT NULL
                   AND EXISTS (SELECT 1 FROM unnest($2::text[]) w WHERE strpos(lower(e.text), w) > 0)
                 LIMIT $3",
                &[&since, &words, &(limit as i64)],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn last_intent_at(&self, id: ProfileId, intent: &str) -> Result<Option<Millis>> {
        let col = if intent == "complaint" {
            "complaint"
        } else {
            "churn_risk"
        };
        let c = self.client().await?;
        Ok(c.query_one(
            &format!("SELECT MAX(occurred_at) FROM text_analyses WHERE profile_id IN ({MEMBERS}) AND {col} >= 0.5"),
            &[&vec![id]],
        )
        .await?
        .get(0))
    }
}
