//! SQLite side of computed scores and their RFM inputs.

use super::SqliteStore;
use crate::{sql, PurchaseStats, Result, ScoreRow, ScoreStore};
use async_trait::async_trait;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use rusqlite::{params, Connection};

#[async_trait]
impl ScoreStore for SqliteStore {
    async fn replace_scores(&self, names: Vec<String>, rows: Vec<crate::ScoreRow>) -> Result<()> {
        self.write(move |tx| {
            {
                let mut del = tx.prepare_cached("DELETE FROM profile_scores WHERE name = ?1")?;
                for n in &names {
                    del.execute([n])?;
                }
                let mut ins = tx.prepare_cached(
                    "INSERT INTO profile_scores (name, profile_id, value, explanation, computed_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (name, profile_id) DO UPDATE SET value = excluded.value, explanation = excluded.explanation, computed_at = excluded.computed_at",
                )?;
                for r in &rows {
                    ins.execute(params![r.name, r.profile_id, r.value, r.explanation.to_string(), r.computed_at])?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn profile_scores(&self, id: ProfileId) -> Result<Vec<crate::ScoreRow>> {
        self.read(move |c| profile_scores_in(c, id)).await
    }

    async fn scores_of(&self, ids: Vec<ProfileId>) -> Result<Vec<crate::ScoreRow>> {
        self.read(move |c| {
            let mut out = Vec::new();
            for id in ids {
                out.extend(score_values_in(c, id)?);
            }
            Ok(out)
        })
        .await
    }

    async fn purchase_stats(
        &self,
        event: &str,
        prop: &str,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<crate::PurchaseStats>> {
        let event = event.to_string();
        let prop = prop.to_string();
        // Spliced into the SQL as a JSON path: only a plain name may pass.
        crate::scores::check_property(&prop)?;
        self.read(move |c| {
            let sql = format!(
                "SELECT pr.canonical_id, MAX(e.occurred_at),
                    SUM(CASE WHEN e.occurred_at >= ?2 THEN 1 ELSE 0 END),
                    SUM(CASE WHEN e.occurred_at >= ?2 AND json_type(e.properties, '$.{prop}') IN ('integer', 'real')
                        THEN json_extract(e.properties, '$.{prop}') ELSE 0 END),
                    MIN(CASE WHEN e.occurred_at >= ?2 THEN e.occurred_at END)
                 FROM events e JOIN profiles pr ON pr.id = e.profile_id
                 WHERE e.name = ?1 AND e.type = 'track' AND e.occurred_at <= ?3 GROUP BY pr.canonical_id"
            );
            Ok(c.prepare(&sql)?
                .query_map(params![event, since, until], |r| {
                    Ok(PurchaseStats { profile_id: r.get(0)?, last_at: r.get(1)?, count: r.get(2)?, sum: r.get(3)?, first_at: r.get(4)? })
                })?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn score_values(&self, name: &str) -> Result<Vec<(ProfileId, f64)>> {
        let name = name.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(sql::scores::SCORE_VALUES)?
                .query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }
}

pub(super) fn profile_scores_in(c: &Connection, id: ProfileId) -> Result<Vec<ScoreRow>> {
    Ok(c.prepare_cached(sql::scores::PROFILE_SCORES)?
        .query_map([id], |r| {
            let e: String = r.get(3)?;
            Ok(ScoreRow {
                name: r.get(0)?,
                profile_id: r.get(1)?,
                value: r.get(2)?,
                explanation: serde_json::from_str(&e).unwrap_or_default(),
                computed_at: r.get(4)?,
            })
        })?
        .collect::<std::result::Result<_, _>>()?)
}

/// A person's score values, from the index alone (migration 0016): what the real-time
/// engine reads, at every load and after every score run.
pub(super) fn score_values_in(c: &Connection, id: ProfileId) -> Result<Vec<ScoreRow>> {
    Ok(c.prepare_cached(
        "SELECT name, value FROM profile_scores WHERE profile_id = ?1 ORDER BY name",
    )?
    .query_map([id], |r| Ok(ScoreRow::value_only(r.get(0)?, id, r.get(1)?)))?
    .collect::<std::result::Result<_, _>>()?)
}
