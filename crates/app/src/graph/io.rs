//! Relationships in and out: explicit ones from the API, edge-list import, GraphML and CSV
//! export.

use super::*;

/// One relationship as a client states it, ends named by identifier.
#[derive(Debug, Clone)]
pub struct EdgeInput {
    pub source: String,
    pub target: String,
    pub kind: String,
    pub weight: Option<f64>,
    pub at: Millis,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AddReport {
    pub relationships: usize,
    pub profiles_created: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportEdgesReport {
    pub lines: usize,
    pub relationships: usize,
    pub profiles_created: usize,
    pub weighted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    GraphMl,
    Csv,
}

pub(super) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl GraphService {
    /// Stores explicit relationships; identifiers nobody owns yet become new profiles.
    pub async fn add(&self, inputs: Vec<EdgeInput>, source: &str) -> Result<AddReport> {
        let mut keys = Vec::with_capacity(inputs.len() * 2);
        let mut kinds = Vec::with_capacity(inputs.len());
        for (i, e) in inputs.iter().enumerate() {
            let key = |field: &str, v: &str| {
                IdentityKey::parse_prefixed(v)
                    .map_err(|err| invalid(&format!("relationships[{i}].{field}"), err.to_string()))
            };
            keys.push(key("source", &e.source)?);
            keys.push(key("target", &e.target)?);
            kinds.push(
                relationship::validate_kind(&e.kind)
                    .map_err(|err| invalid(&format!("relationships[{i}].kind"), err.reason))?,
            );
            if let Some(w) = e.weight {
                if !w.is_finite() || w <= 0.0 {
                    return Err(invalid(
                        &format!("relationships[{i}].weight"),
                        "must be a positive finite number",
                    ));
                }
            }
        }
        let (ids, created) = self.resolve_or_create(keys, source).await?;
        let writes: Vec<RelationshipWrite> = inputs
            .iter()
            .enumerate()
            .filter(|(i, _)| ids[2 * i] != ids[2 * i + 1])
            .map(|(i, e)| RelationshipWrite {
                source: ids[2 * i],
                target: ids[2 * i + 1],
                kind: kinds[i].clone(),
                weight: e.weight.unwrap_or(1.0),
                explicit: true,
                at: e.at,
                sentiment: None,
                event_id: None,
            })
            .collect();
        let n = writes.len();
        for chunk in writes.chunks(100_000) {
            self.store
                .upsert_relationships(chunk.to_vec(), None)
                .await?;
        }
        Ok(AddReport {
            relationships: n,
            profiles_created: created,
        })
    }

    /// The cluster of each identifier, creating a profile (by an `identify` of that
    /// identifier alone, so it is idempotent) for each unknown one.
    pub(super) async fn resolve_or_create(
        &self,
        keys: Vec<IdentityKey>,
        source: &str,
    ) -> Result<(Vec<ProfileId>, usize)> {
        let found = self.store.lookup_many(keys.clone()).await?;
        let mut missing: Vec<IdentityKey> = Vec::new();
        let mut seen = HashSet::new();
        for (k, f) in keys.iter().zip(&found) {
            if f.is_none() && seen.insert(k.clone()) {
                missing.push(k.clone());
            }
        }
        let created = missing.len();
        if !missing.is_empty() {
            let now = rapport_domain::time::now_millis();
            for chunk in missing.chunks(5_000) {
                let messages = chunk
                    .iter()
                    .map(|k| identify_for(k, now))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                self.store
                    .ingest(vec![SourcedMessages {
                        source: source.to_string(),
                        messages,
                    }])
                    .await?;
            }
        }
        let found = if created > 0 {
            self.store.lookup_many(keys.clone()).await?
        } else {
            found
        };
        let ids = found
            .into_iter()
            .zip(&keys)
            .map(|(f, k)| f.ok_or_else(|| GraphError::NotFound(format!("profile for {k}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok((ids, created))
    }

    /// Imports an edge list (`rapport graph import-edges`). The whole file is checked
    /// before anything is written; an error names the line.
    pub async fn import_edges(
        &self,
        text: &str,
        kind: &str,
        source: &str,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<ImportEdgesReport> {
        let kind = relationship::validate_kind(kind)?;
        let lines = rapport_graph::edgelist::parse(text).map_err(|e| GraphError::Invalid {
            field: format!("line {}: {}", e.line, e.field),
            reason: e.reason,
        })?;
        let now = rapport_domain::time::now_millis();
        let mut report = ImportEdgesReport {
            lines: lines.len(),
            weighted: lines.iter().any(|l| l.weight.is_some_and(|w| w != 1.0)),
            ..Default::default()
        };
        for l in &lines {
            for (field, v) in [("source", &l.source), ("target", &l.target)] {
                IdentityKey::parse_prefixed(v).map_err(|e| GraphError::Invalid {
                    field: format!("line {}: {field}", l.line),
                    reason: e.to_string(),
                })?;
            }
        }
        // Moved, not cloned: a 10M-line file is held once.
        let inputs: Vec<EdgeInput> = lines
            .into_iter()
            .map(|l| EdgeInput {
                source: l.source,
                target: l.target,
                kind: kind.clone(),
                weight: l.weight,
                at: now,
            })
            .collect();
        let total = inputs.len() as u64;
        let mut done = 0u64;
        for chunk in inputs.chunks(50_000) {
            let r = self.add(chunk.to_vec(), source).await?;
            report.relationships += r.relationships;
            report.profiles_created += r.profiles_created;
            done += chunk.len() as u64;
            progress(done, total);
        }
        Ok(report)
    }

    /// Writes the graph with every metric: GraphML (nodes and edges), or CSV (the node
    /// table, or with `edges` the edge table). Recomputes first when the stored scores
    /// are older than the relationships. Returns the rows written.
    pub async fn export(
        &self,
        format: ExportFormat,
        edges: bool,
        w: &mut dyn std::io::Write,
    ) -> Result<usize> {
        self.recompute_if_stale().await?;
        let loaded = self.load().await?;
        let names = self.names().await?;
        let name = |id: ProfileId| {
            names
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("profile:{id}"))
        };
        let scores: HashMap<ProfileId, GraphScores> = self
            .store
            .top_graph_scores(ScoreOrder::Pagerank, None, 1 << 40)
            .await?
            .into_iter()
            .map(|s| (s.profile_id, s))
            .collect();
        let io = |e: std::io::Error| GraphError::Compute(format!("writing the export: {e}"));
        let csv_err = |e: csv::Error| GraphError::Compute(format!("writing the export: {e}"));
        match (format, edges) {
            (ExportFormat::Csv, false) => {
                let mut c = csv::Writer::from_writer(w);
                c.write_record([
                    "user_id",
                    "pagerank",
                    "betweenness",
                    "community",
                    "core",
                    "reach1",
                    "reach2",
                ])
                .map_err(csv_err)?;
                for &id in &loaded.ids {
                    let Some(s) = scores.get(&id) else { continue };
                    c.write_record([
                        name(id),
                        s.pagerank.to_string(),
                        s.betweenness.to_string(),
                        s.community.to_string(),
                        s.core.to_string(),
                        s.reach1.to_string(),
                        s.reach2.to_string(),
                    ])
                    .map_err(csv_err)?;
                }
                c.flush().map_err(io)?;
                Ok(loaded.ids.len())
            }
            (ExportFormat::Csv, true) => {
                let rels = self.store.relationships(RelScope::All, 1 << 40).await?;
                let mut c = csv::Writer::from_writer(w);
                c.write_record([
                    "source",
                    "target",
                    "kind",
                    "weight",
                    "count",
                    "first_seen",
                    "last_seen",
                ])
                .map_err(csv_err)?;
                for r in &rels {
                    c.write_record([
                        name(r.source),
                        name(r.target),
                        r.kind.clone(),
                        r.weight.to_string(),
                        r.count.to_string(),
                        r.first_seen.to_rfc3339(),
                        r.last_seen.to_rfc3339(),
                    ])
                    .map_err(csv_err)?;
                }
                c.flush().map_err(io)?;
                Ok(rels.len())
            }
            (ExportFormat::GraphMl, _) => {
                let rels = self.store.relationships(RelScope::All, 1 << 40).await?;
                let mut out = std::io::BufWriter::new(w);
                writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#).map_err(io)?;
                writeln!(out, r#"<graphml xmlns="http://graphml.graphdrawing.org/xmlns" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">"#).map_err(io)?;
                let node_keys = [
                    ("user_id", "string"),
                    ("pagerank", "double"),
                    ("betweenness", "double"),
                    ("community", "long"),
                    ("core", "long"),
                    ("reach1", "long"),
                    ("reach2", "long"),
                    ("evangelist", "double"),
                    ("syndication", "double"),
                ];
                for (k, t) in node_keys {
                    writeln!(
                        out,
                        r#"  <key id="{k}" for="node" attr.name="{k}" attr.type="{t}"/>"#
                    )
                    .map_err(io)?;
                }
                for (k, t) in [("kind", "string"), ("weight", "double"), ("count", "long")] {
                    writeln!(
                        out,
                        r#"  <key id="e_{k}" for="edge" attr.name="{k}" attr.type="{t}"/>"#
                    )
                    .map_err(io)?;
                }
                writeln!(out, r#"  <graph id="rapport" edgedefault="directed">"#).map_err(io)?;
                for &id in &loaded.ids {
                    write!(
                        out,
                        r#"    <node id="p{id}"><data key="user_id">{}</data>"#,
                        xml_escape(&name(id))
                    )
                    .map_err(io)?;
                    if let Some(s) = scores.get(&id) {
                        write!(
                            out,
                            r#"<data key="pagerank">{}</data><data key="betweenness">{}</data><data key="community">{}</data><data key="core">{}</data><data key="reach1">{}</data><data key="reach2">{}</data><data key="evangelist">{}</data><data key="syndication">{}</data>"#,
                            s.pagerank, s.betweenness, s.community, s.core, s.reach1, s.reach2, s.evangelist, s.syndication
                        )
                        .map_err(io)?;
                    }
                    writeln!(out, "</node>").map_err(io)?;
                }
                for r in &rels {
                    writeln!(
                        out,
                        r#"    <edge source="p{}" target="p{}"><data key="e_kind">{}</data><data key="e_weight">{}</data><data key="e_count">{}</data></edge>"#,
                        r.source, r.target, xml_escape(&r.kind), r.weight, r.count
                    )
                    .map_err(io)?;
                }
                writeln!(out, "  </graph>\n</graphml>").map_err(io)?;
                out.flush().map_err(io)?;
                Ok(loaded.ids.len() + rels.len())
            }
        }
    }

    /// How exports name each person: the user id if there is one (bare, as edge lists
    /// write it), else the strongest other identifier in prefixed form.
    pub(super) async fn names(&self) -> Result<HashMap<ProfileId, String>> {
        let rank = |k: IdentityKind| match k {
            IdentityKind::UserId => 0,
            IdentityKind::Email => 1,
            IdentityKind::Social => 2,
            IdentityKind::Wallet => 3,
            IdentityKind::Phone => 4,
            IdentityKind::External => 5,
            IdentityKind::AnonymousId => 6,
        };
        let mut best: HashMap<ProfileId, (u8, String)> = HashMap::new();
        for (id, k) in self.store.all_identifiers().await? {
            let r = rank(k.kind);
            let name = if k.kind == IdentityKind::UserId {
                k.value.clone()
            } else {
                k.to_string()
            };
            match best.get(&id) {
                Some((br, _)) if *br <= r => {}
                _ => {
                    best.insert(id, (r, name));
                }
            }
        }
        Ok(best.into_iter().map(|(id, (_, n))| (id, n)).collect())
    }
}
