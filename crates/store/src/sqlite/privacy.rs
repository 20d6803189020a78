//! SQLite side of privacy: the person's records, erasure (with `secure_delete` on every
//! connection, so deleted content is overwritten, and the WAL truncated after), the
//! erased identifiers' hashes and the audit.

use super::SqliteStore;
use crate::privacy::{
    person_filter, scrub, scrub_text, unfold_json, AuditEntry, AuditQuery, Erase, ErasureReport,
    PersonSet, PersonSets, PrivacyStore, ANONYMOUS_PEOPLE, EVENT_DERIVED, PERSON_TABLES,
    TOUCHED_EVENTS,
};
use crate::{Result, StoreError};
use async_trait::async_trait;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

fn person_sets(c: &Connection, persons: &[ProfileId]) -> Result<PersonSets> {
    let profiles: Vec<i64> = c
        .prepare_cached(
            "SELECT id FROM profiles WHERE canonical_id IN (SELECT value FROM json_each(?1))",
        )?
        .query_map([json_ids(persons)], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let identifiers = c
        .prepare_cached(
            "SELECT kind, value FROM identities WHERE profile_id IN (SELECT value FROM json_each(?1))",
        )?
        .query_map([json_ids(&profiles)], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(PersonSets {
        profiles,
        identifiers,
    })
}

fn json_ids(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// The condition's SQL and its parameters (each set as a JSON array).
fn bound(filter: &str, sets: &PersonSets) -> (String, Vec<String>) {
    let (sql, names) = person_filter(filter, |i, _| {
        format!("(SELECT value FROM json_each(?{i}))")
    });
    let values = names
        .iter()
        .map(|s| match s {
            PersonSet::Profiles => json_ids(&sets.profiles),
            other => serde_json::to_string(&sets.strings(*other)).unwrap_or_else(|_| "[]".into()),
        })
        .collect();
    (sql, values)
}

fn columns(c: &Connection, table: &str) -> Result<Vec<String>> {
    Ok(
        c.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?,
    )
}

/// Takes the person's identifiers out of other people's events that name them (see
/// [`TOUCHED_EVENTS`]) and out of those events' text analyses.
fn scrub_touched(c: &Connection, sets: &PersonSets) -> Result<()> {
    let needles = sets.needles();
    let (filter, values) = bound(TOUCHED_EVENTS, sets);
    let rows: Vec<(i64, String, String, Option<String>)> = c
        .prepare(&format!(
            "SELECT id, properties, context, text FROM events WHERE {filter}"
        ))?
        .query_map(params_from_iter(values.iter()), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, props, ctx, text) in rows {
        let mut p: serde_json::Value = serde_json::from_str(&props).unwrap_or_default();
        let mut x: serde_json::Value = serde_json::from_str(&ctx).unwrap_or_default();
        let mut t = text.unwrap_or_default();
        let changed =
            scrub(&mut p, &needles) | scrub(&mut x, &needles) | scrub_text(&mut t, &needles);
        if changed {
            c.execute(
                "UPDATE events SET properties = ?2, context = ?3, text = CASE WHEN text IS NULL THEN NULL ELSE ?4 END WHERE id = ?1",
                params![id, p.to_string(), x.to_string(), t],
            )?;
        }
        let entities: Option<String> = c
            .query_row(
                "SELECT entities FROM text_analyses WHERE event_id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(e) = entities {
            let mut v: serde_json::Value = serde_json::from_str(&e).unwrap_or_default();
            if scrub(&mut v, &needles) {
                c.execute(
                    "UPDATE text_analyses SET entities = ?2 WHERE event_id = ?1",
                    params![id, v.to_string()],
                )?;
            }
        }
    }
    Ok(())
}

#[async_trait]
impl PrivacyStore for SqliteStore {
    async fn person_records(
        &self,
        person: ProfileId,
    ) -> Result<Vec<(String, Vec<serde_json::Value>)>> {
        self.read(move |c| {
            let sets = person_sets(c, &[person])?;
            let mut out = Vec::new();
            for t in PERSON_TABLES.iter().filter(|t| t.export) {
                let cols = columns(c, t.table)?;
                let object = cols
                    .iter()
                    .map(|col| {
                        if t.texts.contains(&col.as_str()) {
                            format!("'{col}', CAST(\"{col}\" AS TEXT)")
                        } else {
                            format!("'{col}', \"{col}\"")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let (filter, values) = bound(t.filter, &sets);
                let sql = format!(
                    "SELECT json_object({object}) FROM {} WHERE {filter}",
                    t.table
                );
                let rows = c
                    .prepare(&sql)?
                    .query_map(params_from_iter(values.iter()), |r| r.get::<_, String>(0))?
                    .map(|r| {
                        let text = r?;
                        let v = serde_json::from_str(&text)
                            .map_err(|e| StoreError::Backend(e.to_string()))?;
                        Ok(unfold_json(v, t.hidden))
                    })
                    .collect::<Result<Vec<_>>>()?;
                out.push((t.table.to_string(), rows));
            }
            Ok(out)
        })
        .await
    }

    async fn erase(
        &self,
        persons: Vec<ProfileId>,
        remember: bool,
        by: &str,
        at: Millis,
    ) -> Result<ErasureReport> {
        let by = by.to_string();
        let report = self
            .write_cached(true, move |tx, _| {
                let sets = person_sets(tx, &persons)?;
                let Some(person) = persons.first().copied().filter(|_| !sets.profiles.is_empty()) else {
                    return Err(StoreError::NotFound(format!("person {persons:?}")));
                };
                let mut report = ErasureReport {
                    person,
                    profiles: sets.profiles.len(),
                    identifiers: sets.identifiers.len(),
                    ..Default::default()
                };
                scrub_touched(tx, &sets)?;
                for t in PERSON_TABLES {
                    let (filter, values) = bound(t.filter, &sets);
                    let sql = match t.erase {
                        Erase::Delete => format!("DELETE FROM {} WHERE {filter}", t.table),
                        Erase::Set(set) => {
                            format!("UPDATE {} SET {set} WHERE {filter}", t.table)
                        }
                    };
                    let n = tx.execute(&sql, params_from_iter(values.iter()))?;
                    if t.table == "events" {
                        report.events_anonymised = n;
                    }
                    if n > 0 {
                        report.tables.insert(t.table.to_string(), n);
                    }
                }
                if remember {
                    let mut add = tx.prepare_cached(
                        "INSERT INTO erased_identifiers (hash, at) VALUES (?1, ?2) ON CONFLICT (hash) DO NOTHING",
                    )?;
                    for h in sets.hashes() {
                        add.execute(params![h, at])?;
                    }
                }
                let detail = serde_json::json!({
                    "profiles": report.profiles,
                    "identifiers": report.identifiers,
                    "remembered": remember,
                });
                let mut audit = tx.prepare_cached(
                    "INSERT INTO audit_log (at, who, action, target, detail) VALUES (?1, ?2, 'profile.erase', ?3, ?4)",
                )?;
                for p in &persons {
                    audit.execute(params![at, by, format!("person:{p}"), detail.to_string()])?;
                }
                Ok(report)
            })
            .await?;
        self.truncate_wal().await?;
        Ok(report)
    }

    async fn anonymous_people(&self, before: Millis, limit: usize) -> Result<Vec<ProfileId>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&ANONYMOUS_PEOPLE.replace('$', "?"))?
                .query_map(params![before, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn expire_events(&self, before: Millis, limit: usize) -> Result<usize> {
        self.write(move |tx| {
            tx.execute_batch("CREATE TEMP TABLE IF NOT EXISTS expiring (id INTEGER PRIMARY KEY); DELETE FROM expiring;")?;
            let n = tx.execute(
                "INSERT INTO expiring SELECT id FROM events WHERE occurred_at < ?1 LIMIT ?2",
                params![before, limit as i64],
            )?;
            if n == 0 {
                return Ok(0);
            }
            tx.execute(
                "INSERT INTO event_aggregates (day, type, name, channel, count)
                 SELECT occurred_at / 86400000, type, COALESCE(name, ''), channel, COUNT(*)
                 FROM events WHERE id IN (SELECT id FROM expiring) GROUP BY 1, 2, 3, 4
                 ON CONFLICT (day, type, name, channel) DO UPDATE SET count = count + excluded.count",
                [],
            )?;
            for t in EVENT_DERIVED {
                tx.execute(&format!("DELETE FROM {t} WHERE event_id IN (SELECT id FROM expiring)"), [])?;
            }
            tx.execute("DELETE FROM events WHERE id IN (SELECT id FROM expiring)", [])?;
            tx.execute("DELETE FROM expiring", [])?;
            Ok(n)
        })
        .await
    }

    async fn erased_hashes(&self) -> Result<Vec<String>> {
        self.read(|c| {
            Ok(c.prepare_cached("SELECT hash FROM erased_identifiers")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn record_audit(&self, e: AuditEntry) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO audit_log (at, who, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.at, e.who, e.action, e.target, e.detail.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    async fn audit_log(&self, q: AuditQuery) -> Result<Vec<AuditEntry>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, at, who, action, target, detail FROM audit_log
                 WHERE (?1 IS NULL OR target = ?1) AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR id < ?3)
                 ORDER BY id DESC LIMIT ?4",
            )?;
            let rows = stmt
                .query_map(
                    params![q.target, q.action, q.before, q.limit as i64],
                    |r| {
                        let detail: String = r.get(5)?;
                        Ok(AuditEntry {
                            id: r.get(0)?,
                            at: r.get(1)?,
                            who: r.get(2)?,
                            action: r.get(3)?,
                            target: r.get(4)?,
                            detail: serde_json::from_str(&detail).unwrap_or_default(),
                        })
                    },
                )?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }
}
