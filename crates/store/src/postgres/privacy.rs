//! PostgreSQL side of privacy: the person's records (`to_jsonb` of each row), erasure
//! in one transaction behind the writers' lock, the erased identifiers' hashes and the
//! audit.

use super::{writer_lock, PgStore};
use crate::privacy::{
    person_filter, scrub, scrub_text, unfold_json, AuditEntry, AuditQuery, Erase, ErasureReport,
    PersonSet, PersonSets, PrivacyStore, ANONYMOUS_PEOPLE, EVENT_DERIVED, PERSON_TABLES,
    TOUCHED_EVENTS,
};
use crate::{Result, StoreError};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use tokio_postgres::types::ToSql;

async fn person_sets(c: &impl GenericClient, persons: &[ProfileId]) -> Result<PersonSets> {
    let profiles: Vec<i64> = c
        .query(
            "SELECT id FROM profiles WHERE canonical_id = ANY($1)",
            &[&persons],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let identifiers = c
        .query(
            "SELECT kind, value FROM identities WHERE profile_id = ANY($1)",
            &[&profiles],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(PersonSets {
        profiles,
        identifiers,
    })
}

enum Param {
    Ids(Vec<i64>),
    Texts(Vec<String>),
}

impl Param {
    fn sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Ids(v) => v,
            Param::Texts(v) => v,
        }
    }
}

fn bound(filter: &str, sets: &PersonSets) -> (String, Vec<Param>) {
    let (sql, names) = person_filter(filter, |i, s| match s {
        PersonSet::Profiles => format!("(SELECT unnest(${i}::bigint[]))"),
        _ => format!("(SELECT unnest(${i}::text[]))"),
    });
    let params = names
        .iter()
        .map(|s| match s {
            PersonSet::Profiles => Param::Ids(sets.profiles.clone()),
            other => Param::Texts(sets.strings(*other)),
        })
        .collect();
    (sql, params)
}

/// Events are a view over the stored rows (and the membership events, which hold no
/// personal data); erasure changes the rows.
fn stored(table: &str) -> &str {
    if table == "events" {
        "event_rows"
    } else {
        table
    }
}

/// Takes the person's identifiers out of other people's events that name them (see
/// [`TOUCHED_EVENTS`]) and out of those events' text analyses.
async fn scrub_touched(c: &impl GenericClient, sets: &PersonSets) -> Result<()> {
    let needles = sets.needles();
    let (filter, params) = bound(TOUCHED_EVENTS, sets);
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(Param::sql).collect();
    let rows = c
        .query(
            &format!("SELECT id, properties, context, text FROM event_rows WHERE {filter}"),
            &refs,
        )
        .await?;
    for r in rows {
        let id: i64 = r.get(0);
        let mut p: serde_json::Value = r.get(1);
        let mut x: serde_json::Value = r.get(2);
        let text: Option<String> = r.get(3);
        let mut t = text.clone().unwrap_or_default();
        let changed =
            scrub(&mut p, &needles) | scrub(&mut x, &needles) | scrub_text(&mut t, &needles);
        if changed {
            let t = text.map(|_| t);
            c.execute(
                "UPDATE event_rows SET properties = $2, context = $3, text = $4 WHERE id = $1",
                &[&id, &p, &x, &t],
            )
            .await?;
        }
        if let Some(row) = c
            .query_opt(
                "SELECT entities FROM text_analyses WHERE event_id = $1",
                &[&id],
            )
            .await?
        {
            // Stored as JSON text (0003_text.sql).
            let text: String = row.get(0);
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if scrub(&mut v, &needles) {
                c.execute(
                    "UPDATE text_analyses SET entities = $2 WHERE event_id = $1",
                    &[&id, &v.to_string()],
                )
                .await?;
            }
        }
    }
    Ok(())
}

#[async_trait]
impl PrivacyStore for PgStore {
    async fn person_records(
        &self,
        person: ProfileId,
    ) -> Result<Vec<(String, Vec<serde_json::Value>)>> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await?;
        let sets = person_sets(&tx, &[person]).await?;
        let mut out = Vec::new();
        for t in PERSON_TABLES.iter().filter(|t| t.export) {
            let (filter, params) = bound(t.filter, &sets);
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(Param::sql).collect();
            let texts: String = t
                .texts
                .iter()
                .map(|c| format!(" || jsonb_build_object('{c}', convert_from(t.{c}, 'UTF8'))"))
                .collect();
            let sql = format!(
                "SELECT to_jsonb(t){texts} FROM {} t WHERE {filter}",
                t.table
            );
            let rows = tx
                .query(&sql, &refs)
                .await?
                .iter()
                .map(|r| unfold_json(r.get(0), t.hidden))
                .collect();
            out.push((t.table.to_string(), rows));
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn erase(
        &self,
        persons: Vec<ProfileId>,
        remember: bool,
        by: &str,
        at: Millis,
    ) -> Result<ErasureReport> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        writer_lock(&tx).await?;
        let sets = person_sets(&tx, &persons).await?;
        let Some(person) = persons
            .first()
            .copied()
            .filter(|_| !sets.profiles.is_empty())
        else {
            return Err(StoreError::NotFound(format!("person {persons:?}")));
        };
        let mut report = ErasureReport {
            person,
            profiles: sets.profiles.len(),
            identifiers: sets.identifiers.len(),
            ..Default::default()
        };
        scrub_touched(&tx, &sets).await?;
        for t in PERSON_TABLES {
            let (filter, params) = bound(t.filter, &sets);
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(Param::sql).collect();
            let table = stored(t.table);
            let sql = match t.erase {
                Erase::Delete => format!("DELETE FROM {table} WHERE {filter}"),
                Erase::Set(set) => format!("UPDATE {table} SET {set} WHERE {filter}"),
            };
            let n = tx.execute(&sql, &refs).await? as usize;
            if t.table == "events" {
                report.events_anonymised = n;
            }
            if n > 0 {
                report.tables.insert(t.table.to_string(), n);
            }
        }
        if remember {
            let hashes = sets.hashes();
            tx.execute(
                "INSERT INTO erased_identifiers (hash, at) SELECT unnest($1::text[]), $2 ON CONFLICT (hash) DO NOTHING",
                &[&hashes, &at],
            )
            .await?;
        }
        let detail = serde_json::json!({
            "profiles": report.profiles,
            "identifiers": report.identifiers,
            "remembered": remember,
        });
        let targets: Vec<String> = persons.iter().map(|p| format!("person:{p}")).collect();
        tx.execute(
            "INSERT INTO audit_log (at, who, action, target, detail) SELECT $1, $2, 'profile.erase', unnest($3::text[]), $4",
            &[&at, &by, &targets, &detail],
        )
        .await?;
        tx.commit().await?;
        Ok(report)
    }

    async fn anonymous_people(&self, before: Millis, limit: usize) -> Result<Vec<ProfileId>> {
        let c = self.client().await?;
        let limit = limit as i64;
        Ok(c.query(ANONYMOUS_PEOPLE, &[&before, &limit])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn expire_events(&self, before: Millis, limit: usize) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        writer_lock(&tx).await?;
        let limit = limit as i64;
        let ids: Vec<i64> = tx
            .query(
                "SELECT id FROM event_rows WHERE occurred_at < $1 LIMIT $2",
                &[&before, &limit],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        tx.execute(
            "INSERT INTO event_aggregates (day, type, name, channel, count)
             SELECT occurred_at / 86400000, type, COALESCE(name, ''), channel, COUNT(*)
             FROM event_rows WHERE id = ANY($1) GROUP BY 1, 2, 3, 4
             ON CONFLICT (day, type, name, channel) DO UPDATE SET count = event_aggregates.count + excluded.count",
            &[&ids],
        )
        .await?;
        for t in EVENT_DERIVED {
            tx.execute(
                &format!("DELETE FROM {t} WHERE event_id = ANY($1)"),
                &[&ids],
            )
            .await?;
        }
        tx.execute("DELETE FROM event_rows WHERE id = ANY($1)", &[&ids])
            .await?;
        tx.commit().await?;
        Ok(ids.len())
    }

    async fn erased_hashes(&self) -> Result<Vec<String>> {
        let c = self.client().await?;
        Ok(c.query("SELECT hash FROM erased_identifiers", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn record_audit(&self, e: AuditEntry) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO audit_log (at, who, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
            &[&e.at, &e.who, &e.action, &e.target, &e.detail],
        )
        .await?;
        Ok(())
    }

    async fn audit_log(&self, q: AuditQuery) -> Result<Vec<AuditEntry>> {
        let c = self.client().await?;
        let limit = q.limit as i64;
        Ok(c.query(
            "SELECT id, at, who, action, target, detail FROM audit_log
             WHERE ($1::text IS NULL OR target = $1) AND ($2::text IS NULL OR action = $2)
               AND ($3::bigint IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
            &[&q.target, &q.action, &q.before, &limit],
        )
        .await?
        .iter()
        .map(|r| AuditEntry {
            id: r.get(0),
            at: r.get(1),
            who: r.get(2),
            action: r.get(3),
            target: r.get(4),
            detail: r.get(5),
        })
        .collect())
    }
}
