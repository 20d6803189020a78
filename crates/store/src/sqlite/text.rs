//! SQLite side of text analyses.

use super::SqliteStore;
use crate::{sql, Result, TextRow, TextStats, TextStore, CATALOGUE_VERSION};
use async_trait::async_trait;
use rapport_domain::model::{SentimentDay, TextAnalysisView};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::{to_datetime, Millis};
use rusqlite::{params, Connection, OptionalExtension};

const MEMBERS: &str = "SELECT id FROM profiles WHERE canonical_id IN (SELECT canonical_id FROM profiles WHERE id IN (SELECT value FROM json_each(?1)))";

fn day(ms: i64) -> String {
    to_datetime(ms * 86_400_000).format("%Y-%m-%d").to_string()
}

/// Distinct products and tracked topics among an analysis's entities, as (kind, name).
pub(crate) fn tags_of(entities: &serde_json::Value) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for e in entities.as_array().into_iter().flatten() {
        let kind = match e["kind"].as_str() {
            Some("product") => "product",
            Some("topic") => "topic",
            _ => continue,
        };
        if let Some(v) = e["value"].as_str() {
            if !out.iter().any(|x| x.0 == kind && x.1 == v) {
                out.push((kind, v.to_string()));
            }
        }
    }
    out
}

#[async_trait]
impl TextStore for SqliteStore {
    async fn text_candidates(&self, after: i64, span: i64) -> Result<(Vec<crate::TextRow>, i64)> {
        self.read(move |c| {
            let max: i64 = c.query_row(sql::text::LAST_EVENT_ID, [], |r| r.get(0))?;
            let upto = max.min(after.saturating_add(span));
            if upto <= after {
                return Ok((vec![], after));
            }
            let rows = c
                .prepare_cached(sql::text::TEXTS_IN_RANGE)?
                .query_map(params![after, upto], |r| {
                    Ok(TextRow {
                        event_id: r.get(0)?,
                        profile_id: r.get(1)?,
                        occurred_at: r.get(2)?,
                        text: r.get(3)?,
                    })
                })?
                .collect::<std::result::Result<_, _>>()?;
            Ok((rows, upto))
        })
        .await
    }

    async fn save_text_analyses(
        &self,
        rows: Vec<rapport_domain::model::TextAnalysisView>,
        cursor: (String, i64),
    ) -> Result<()> {
        self.write(move |tx| {
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO text_analyses (event_id, profile_id, occurred_at, compound, label, language, complaint, churn_risk, intents, entities)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (event_id) DO NOTHING",
                )?;
                for r in &rows {
                    let f = |k: &str| r.intents.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
                    st.execute(params![
                        r.event_id, r.profile_id, r.occurred_at.timestamp_millis(), r.compound, r.label, r.language,
                        f("complaint"), f("churn_risk"), r.intents.to_string(), r.entities.to_string()
                    ])?;
                }
            }
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO text_tags (event_id, kind, name, profile_id, occurred_at, compound) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (event_id, kind, name) DO NOTHING",
                )?;
                for r in &rows {
                    for (kind, name) in tags_of(&r.entities) {
                        st.execute(params![r.event_id, kind, name, r.profile_id, r.occurred_at.timestamp_millis(), r.compound])?;
                    }
                }
            }
            tx.execute(
                sql::settings::SET_COUNTER,
                params![cursor.0, cursor.1],
            )?;
            Ok(())
        })
        .await
    }

    async fn text_analysis(
        &self,
        event_id: i64,
    ) -> Result<Option<rapport_domain::model::TextAnalysisView>> {
        self.read(move |c| {
            Ok(c.prepare_cached(sql::text::TEXT_ANALYSIS)?
                .query_row([event_id], |r| {
                    let (i, e): (String, String) = (r.get(6)?, r.get(7)?);
                    Ok(TextAnalysisView {
                        event_id: r.get(0)?,
                        profile_id: r.get(1)?,
                        occurred_at: to_datetime(r.get(2)?),
                        compound: r.get(3)?,
                        label: r.get(4)?,
                        language: r.get(5)?,
                        intents: serde_json::from_str(&i).unwrap_or_default(),
                        entities: serde_json::from_str(&e).unwrap_or_default(),
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn sentiment_series(
        &self,
        people: Option<Vec<ProfileId>>,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<rapport_domain::model::SentimentDay>> {
        self.read(move |c| {
            let filter = if people.is_some() { format!("AND profile_id IN ({MEMBERS})") } else { "AND ?1 IS NULL".into() };
            let sql = format!(
                "SELECT occurred_at / 86400000, COUNT(*), AVG(compound), SUM(compound >= 0.05), SUM(compound <= -0.05)
                 FROM text_analyses WHERE occurred_at >= ?2 AND occurred_at <= ?3 {filter}
                 GROUP BY occurred_at / 86400000 ORDER BY 1"
            );
            let ids = people.map(|p| serde_json::to_string(&p).unwrap_or_default());
            Ok(c.prepare_cached(&sql)?
                .query_map(params![ids, since, until], |r| {
                    Ok(SentimentDay { day: day(r.get(0)?), texts: r.get(1)?, mean: r.get(2)?, positive: r.get(3)?, negative: r.get(4)? })
                })?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn text_stats(&self, id: ProfileId, since: Millis) -> Result<crate::TextStats> {
        self.read(move |c| {
            let ids = serde_json::to_string(&[id]).unwrap_or_default();
            Ok(c.prepare_cached(&format!(
                "SELECT COUNT(*), AVG(compound) FROM text_analyses WHERE profile_id IN ({MEMBERS}) AND occurred_at >= ?2"
            ))?
            .query_row(params![ids, since], |r| Ok(TextStats { texts: r.get(0)?, mean: r.get(1)? }))?)
        })
        .await
    }

    async fn set_catalogue(&self, names: Vec<String>, at: Millis) -> Result<()> {
        self.write(move |tx| {
            tx.execute("DELETE FROM catalogue", [])?;
            let mut st = tx.prepare_cached("INSERT INTO catalogue (name, added_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING")?;
            for n in &names {
                st.execute(params![n, at])?;
            }
            tx.execute(
                sql::settings::BUMP_COUNTER,
                [CATALOGUE_VERSION],
            )?;
            Ok(())
        })
        .await
    }

    async fn catalogue(&self) -> Result<Vec<String>> {
        self.read(|c| {
            Ok(c.prepare_cached(sql::text::CATALOGUE)?
                .query_map([], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn tag_voice(
        &self,
        kind: &str,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<(String, i64, f64)>> {
        let kind = kind.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT name, COUNT(*), AVG(compound) FROM text_tags WHERE kind = ?1 AND occurred_at >= ?2 AND occurred_at <= ?3
                 GROUP BY name ORDER BY COUNT(*) DESC, name",
            )?
            .query_map(params![kind, since, until], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn tag_series(
        &self,
        kind: &str,
        name: &str,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<rapport_domain::model::SentimentDay>> {
        let kind = kind.to_string();
        let name = name.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT occurred_at / 86400000, COUNT(*), AVG(compound), SUM(compound >= 0.05), SUM(compound <= -0.05)
                 FROM text_tags WHERE kind = ?1 AND name = ?2 AND occurred_at >= ?3 AND occurred_at <= ?4
                 GROUP BY occurred_at / 86400000 ORDER BY 1",
            )?
            .query_map(params![kind, name, since, until], |r| {
                Ok(SentimentDay { day: day(r.get(0)?), texts: r.get(1)?, mean: r.get(2)?, positive: r.get(3)?, negative: r.get(4)? })
            })?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn analyses_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, ProfileId)>> {
        self.read(move |c| analyses_after_in(c, after, limit)).await
    }

    async fn texts_between(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<(i64, Millis, String)>> {
        self.read(move |c| {
            Ok(c.prepare_cached(sql::text::TEXTS_BETWEEN)?
                .query_map(params![since, until, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn texts_mentioning(
        &self,
        words: Vec<String>,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<(ProfileId, String)>> {
        let words = serde_json::to_string(&words).unwrap_or_else(|_| "[]".into());
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT pr.canonical_id, e.text FROM events e JOIN profiles pr ON pr.id = e.profile_id
                 WHERE e.occurred_at >= ?1 AND e.text IS NOT NULL
                   AND EXISTS (SELECT 1 FROM json_each(?2) w WHERE instr(lower(e.text), w.value) > 0)
                 LIMIT ?3",
            )?
            .query_map(params![since, words, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn last_intent_at(&self, id: ProfileId, intent: &str) -> Result<Option<Millis>> {
        let col = if intent == "complaint" {
            "complaint"
        } else {
            "churn_risk"
        };
        self.read(move |c| {
            let ids = serde_json::to_string(&[id]).unwrap_or_default();
            Ok(c.prepare_cached(&format!(
                "SELECT MAX(occurred_at) FROM text_analyses WHERE profile_id IN ({MEMBERS}) AND {col} >= 0.5"
            ))?
            .query_row([ids], |r| r.get(0))?)
        })
        .await
    }
}

pub(super) fn analyses_after_in(
    c: &Connection,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, ProfileId)>> {
    Ok(c.prepare_cached(sql::text::ANALYSES_AFTER)?
        .query_map(params![after, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?)
}
