//! Segments as a capability: preview a definition (count and sample) without saving,
//! save and edit segments, refresh their membership with the SQL evaluator (batch), and
//! re-evaluate people in memory as their events arrive (the real-time worker), writing
//! `Segment Entered` / `Segment Exited` events and size history either way.

use rapport_domain::identifier::IdentityKind;
use rapport_domain::model::{ConsentStatus, ProfileView};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::now_millis;
use rapport_segment::eval::{self, Person};
use rapport_segment::{parse, referenced_segments, sql, Expr};
use rapport_store::{DynStore, MembershipChange, PersonReads, SegmentRow, StoreError};
use serde::Serialize;
use std::collections::HashMap;

/// Name of the real-time worker's position in the event log.
pub const SEGMENT_CURSOR: &str = "cursor.segments";
/// Its position among text analyses, which land shortly after their events.
pub const SEGMENT_TEXT_CURSOR: &str = "cursor.segments.texts";

fn invalid(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// How many new events in a second still count as quiet for the number index.
const NUMBERS_QUIET_PER_SEC: i64 = 1_000;
/// How far the number index may fall behind before it runs even under load: segment SQL
/// reads the events past it from their JSON, about 0.4 s per million on the benchmark.
const NUMBERS_MAX_BEHIND: i64 = 1_000_000;

/// Keeps `event_numbers` (the numbers sums and averages read) behind the event log on
/// SQLite, in sorted batches off the ingest path. Each number is a random insert into a
/// large key-ordered table, which cost sustained ingestion a fifth even in batches, so
/// the index runs when ingestion is quiet, or when it is more than
/// `NUMBERS_MAX_BEHIND` events behind. Segment SQL reads the events past it from their
/// JSON, so a lag costs query time, never correctness.
pub async fn run_number_index(store: DynStore, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut seen: Option<i64> = None;
    loop {
        let step = async {
            let (position, last) = store.event_numbers_position().await?;
            let arrived = seen.map_or(0, |s| last - s);
            seen = Some(last);
            let behind = last - position;
            if behind > 0 && (arrived < NUMBERS_QUIET_PER_SEC || behind > NUMBERS_MAX_BEHIND) {
                store.index_event_numbers(100_000).await
            } else {
                Ok(0)
            }
        }
        .await;
        let second = std::time::Duration::from_secs(1);
        if !crate::worker::pause_after("event number index", step, second, second, &mut shutdown)
            .await
        {
            return;
        }
    }
}

/// Runs the number index to the end of the event log (after bulk loads).
pub async fn index_numbers_now(store: &DynStore) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        match store.index_event_numbers(1_000_000).await? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

/// Parses a definition and checks the segments it names exist; errors name the field
/// `definition` and say where (line, column) and what is wrong.
pub async fn check(store: &DynStore, definition: &str) -> Result<Expr, StoreError> {
    if definition.len() > 20_000 {
        return Err(invalid("definition", "longer than 20,000 characters"));
    }
    let e = parse(definition).map_err(|e| invalid("definition", e.to_string()))?;
    for name in referenced_segments(&e) {
        if store.segment_by_name(&name).await?.is_none() {
            return Err(invalid(
                "definition",
                format!("segment '{name}' does not exist"),
            ));
        }
    }
    Ok(e)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SampleMember {
    pub id: ProfileId,
    pub name: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub count: i64,
    pub sample: Vec<SampleMember>,
    /// Server time spent, for the editor's live count.
    pub took_ms: f64,
}

/// Count and a sample of who matches a definition now, without saving anything.
pub async fn preview(
    store: &DynStore,
    definition: &str,
    sample: usize,
) -> Result<Preview, StoreError> {
    let t = std::time::Instant::now();
    let e = check(store, definition).await?;
    let c = sql::compile(&e, store.dialect(), now_millis());
    let (count, ids) = store.segment_matches(c, sample).await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let p = store.profile(id).await?;
        let email = p
            .identities
            .iter()
            .find(|i| i.kind == IdentityKind::Email)
            .map(|i| i.value.clone());
        out.push(SampleMember {
            id,
            name: rapport_domain::traits::display_name(&p.traits),
            email,
        });
    }
    Ok(Preview {
        count,
        sample: out,
        took_ms: t.elapsed().as_secs_f64() * 1000.0,
    })
}

fn check_name(name: &str) -> Result<String, StoreError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) || n.contains('"')
    {
        return Err(invalid(
            "name",
            "must be 1 to 100 characters, without quotes",
        ));
    }
    Ok(n.to_string())
}

/// Segments in an order where each comes after those it refers to; a cycle is an error
/// naming a segment on it.
fn ordered(rows: &[(SegmentRow, Expr)]) -> Result<Vec<usize>, String> {
    let index: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, (r, _))| (r.name.as_str(), i))
        .collect();
    let mut state = vec![0u8; rows.len()];
    let mut out = Vec::new();
    fn visit(
        i: usize,
        rows: &[(SegmentRow, Expr)],
        index: &HashMap<&str, usize>,
        state: &mut [u8],
        out: &mut Vec<usize>,
    ) -> Result<(), String> {
        match state[i] {
            2 => return Ok(()),
            1 => return Err(rows[i].0.name.clone()),
            _ => {}
        }
        state[i] = 1;
        for dep in referenced_segments(&rows[i].1) {
            if let Some(&j) = index.get(dep.as_str()) {
                visit(j, rows, index, state, out)?;
            }
        }
        state[i] = 2;
        out.push(i);
        Ok(())
    }
    for i in 0..rows.len() {
        visit(i, rows, &index, &mut state, &mut out)?;
    }
    Ok(out)
}

/// Every saved segment with its parsed definition, dependencies first.
async fn definitions(store: &DynStore) -> Result<Vec<(SegmentRow, Expr)>, StoreError> {
    in_order(store.segment_definitions().await?)
}

/// Segments with their parsed definitions (those that do not parse left out),
/// dependencies first.
pub(crate) fn in_order(rows: Vec<SegmentRow>) -> Result<Vec<(SegmentRow, Expr)>, StoreError> {
    let rows: Vec<(SegmentRow, Expr)> = rows
        .into_iter()
        .filter_map(|r| {
            let e = parse(&r.definition).ok()?;
            Some((r, e))
        })
        .collect();
    let order = ordered(&rows).map_err(|n| {
        invalid(
            "definition",
            format!("segments refer to each other in a cycle through '{n}'"),
        )
    })?;
    let mut slots: Vec<Option<(SegmentRow, Expr)>> = rows.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

/// Saves a segment and computes its members.
pub async fn create(
    store: &DynStore,
    name: &str,
    definition: &str,
    description: &str,
) -> Result<SegmentRow, StoreError> {
    let name = check_name(name)?;
    let e = check(store, definition).await?;
    if referenced_segments(&e).contains(&name) {
        return Err(invalid(
            "definition",
            format!("segment '{name}' cannot refer to itself"),
        ));
    }
    let row = store
        .create_segment(&name, definition, description, "dynamic", now_millis())
        .await?;
    refresh(store, row.id).await?;
    store.segment(row.id).await
}

/// Saves a static segment: no definition; rule actions `add_to_segment` and
/// `remove_from_segment` (or the batch API) change its members.
pub async fn create_static(
    store: &DynStore,
    name: &str,
    description: &str,
) -> Result<SegmentRow, StoreError> {
    let name = check_name(name)?;
    store
        .create_segment(&name, "", description, "static", now_millis())
        .await
}

/// Changes a segment's definition or description and recomputes its members.
pub async fn update(
    store: &DynStore,
    id: i64,
    definition: Option<&str>,
    description: Option<&str>,
) -> Result<SegmentRow, StoreError> {
    let current = store.segment(id).await?;
    let definition = definition.unwrap_or(&current.definition);
    let e = check(store, definition).await?;
    let mut rows = definitions(store).await?;
    for (r, x) in rows.iter_mut() {
        if r.id == id {
            *x = e.clone();
        }
    }
    if let Err(n) = ordered(&rows) {
        return Err(invalid(
            "definition",
            format!("this would make segments refer to each other in a cycle through '{n}'"),
        ));
    }
    store
        .update_segment(
            id,
            definition,
            description.unwrap_or(&current.description),
            now_millis(),
        )
        .await?;
    refresh(store, id).await?;
    store.segment(id).await
}

/// Deletes a segment unless another one refers to it.
pub async fn delete(store: &DynStore, id: i64) -> Result<(), StoreError> {
    let row = store.segment(id).await?;
    for (other, e) in definitions(store).await? {
        if other.id != id && referenced_segments(&e).contains(&row.name) {
            return Err(StoreError::Conflict(format!(
                "segment '{}' refers to '{}': change it first",
                other.name, row.name
            )));
        }
    }
    store.delete_segment(id).await
}

/// Recomputes a segment's members with the SQL evaluator.
pub async fn refresh(store: &DynStore, id: i64) -> Result<MembershipChange, StoreError> {
    let row = store.segment(id).await?;
    if row.kind == "micro" {
        return Err(invalid(
            "id",
            "a micro-segment is recomputed with POST /api/micro-segments/refresh",
        ));
    }
    if row.kind == "static" {
        return Err(invalid(
            "id",
            "a static segment has no definition: rules add and remove its members",
        ));
    }
    let e = parse(&row.definition).map_err(|e| invalid("definition", e.to_string()))?;
    let now = now_millis();
    let members = store
        .segment_all_matches(sql::compile(&e, store.dialect(), now))
        .await?;
    let changed = store.set_segment_members(id, members, now).await?;
    if !changed.entered.is_empty() || !changed.exited.is_empty() {
        crate::changes::announce(store, crate::changes::Change::Standing).await?;
    }
    Ok(changed)
}

/// Recomputes every segment, dependencies first (time windows move even without
/// events, so `serve` runs this periodically).
pub async fn refresh_all(store: &DynStore) -> Result<usize, StoreError> {
    let defs = definitions(store).await?;
    let mut changed = 0;
    for (row, _) in &defs {
        let c = refresh(store, row.id).await?;
        changed += c.entered.len() + c.exited.len();
    }
    // Everyone was read: not left for the next reads after a write to drop (SQLite).
    store.release_memory().await?;
    Ok(changed)
}

/// One person's live state, as the in-memory evaluator reads it.
pub async fn person(store: &DynStore, id: ProfileId) -> Result<Person, StoreError> {
    // Firings are the engine's (caps): none asked for.
    people(
        store,
        vec![id],
        PersonReads::Whole {
            firings_since: i64::MAX,
            membership_events: true,
        },
    )
    .await?
    .into_iter()
    .next()
    .map(|l| l.person)
    .ok_or_else(|| StoreError::NotFound(format!("profile {id}")))
}

/// A person's live state as loaded, with what the real-time engine keeps beside it.
pub(crate) struct Loaded {
    /// The person's (canonical) id.
    pub id: ProfileId,
    pub person: Person,
    /// Raw profiles the state was read from.
    pub members: Vec<ProfileId>,
    /// Highest event id in the state (0 when read without history).
    pub upto: i64,
    /// Rule firings since the time asked.
    pub firings: Vec<(String, i64)>,
}

/// Several people's live state, read together (one per person; unknown ids left out),
/// whole or without their history (`reads`).
pub(crate) async fn people(
    store: &DynStore,
    ids: Vec<ProfileId>,
    reads: PersonReads,
) -> Result<Vec<Loaded>, StoreError> {
    let loads = store.person_loads(ids, reads).await?;
    if loads.is_empty() {
        return Ok(Vec::new());
    }
    let persons: Vec<ProfileId> = loads.iter().map(|l| l.view.id).collect();
    let wallets: Vec<String> = loads.iter().flat_map(|l| wallets_of(&l.view)).collect();
    // The store's profile view leaves network scores to the API layer: read them, and
    // the holdings of everyone's wallets, at once.
    let all_members: Vec<ProfileId> = loads
        .iter()
        .flat_map(|l| l.view.member_ids.iter().copied().chain([l.view.id]))
        .collect();
    let (graph, holdings, lots, tiers) = tokio::try_join!(
        store.graph_scores(persons.clone()),
        async {
            if wallets.is_empty() {
                Ok(Vec::new())
            } else {
                store.wallet_holdings(wallets).await
            }
        },
        store.lots(&all_members, false),
        store.tiers(&persons)
    )?;
    // Loyalty lots by person (a lot is on the raw profile it was earned on); the tier is
    // the one kept on the person's own profile.
    let person_of: HashMap<ProfileId, ProfileId> = loads
        .iter()
        .flat_map(|l| {
            let id = l.view.id;
            l.view
                .member_ids
                .iter()
                .map(move |m| (*m, id))
                .chain([(id, id)])
        })
        .collect();
    let mut loyalty: HashMap<ProfileId, eval::Loyalty> = HashMap::new();
    for l in lots {
        if let Some(p) = person_of.get(&l.profile_id) {
            loyalty.entry(*p).or_default().lots.push(eval::LoyaltyLot {
                id: l.lot.id,
                remaining: l.lot.remaining,
                unlock_at: l.lot.unlock_at,
                expires_at: l.lot.expires_at,
            });
        }
    }
    for t in tiers {
        loyalty.entry(t.profile_id).or_default().tier = t.state.tier;
    }
    let mut graph: HashMap<ProfileId, _> = graph.into_iter().map(|g| (g.profile_id, g)).collect();
    let mut by_wallet: HashMap<String, Vec<eval::Holding>> = HashMap::new();
    for h in holdings {
        by_wallet.entry(h.wallet).or_default().push(eval::Holding {
            symbol: h.symbol,
            contract: h.contract,
            amount: h.amount,
            held_since: h.held_since,
            from_brand: h.from_brand_amount,
        });
    }
    Ok(loads
        .into_iter()
        .map(|l| {
            let upto = l.events.iter().map(|e| e.id).max().unwrap_or(0);
            let (traits, identities, consents) = basics(&l.view);
            let holdings = wallets_of(&l.view)
                .filter_map(|w| by_wallet.get(&w).cloned())
                .flatten()
                .collect();
            let person = Person {
                traits,
                identities,
                consents,
                scores: graph.remove(&l.view.id).map(network_scores),
                events: l
                    .events
                    .into_iter()
                    .map(|e| eval::Event {
                        kind: e.kind,
                        name: e.name,
                        properties: e.properties,
                        at: e.occurred_at.timestamp_millis(),
                        id: e.id,
                    })
                    .collect(),
                texts: l
                    .texts
                    .into_iter()
                    .map(|(at, compound, complaint)| eval::Text {
                        at,
                        compound,
                        complaint,
                    })
                    .collect(),
                segments: l.segments,
                computed: l.scores.into_iter().map(|s| (s.name, s.value)).collect(),
                holdings,
                loyalty: loyalty.remove(&l.view.id).unwrap_or_default(),
                index: None,
            };
            Loaded {
                id: l.view.id,
                person,
                members: l.view.member_ids,
                upto,
                firings: l.firings,
            }
        })
        .collect())
}

fn wallets_of(view: &ProfileView) -> impl Iterator<Item = String> + '_ {
    view.identities
        .iter()
        .filter(|i| i.kind == IdentityKind::Wallet)
        .map(|i| i.value.clone())
}

/// Traits, identities `(kind, value)` and latest consents from a profile view.
pub(crate) type Basics = (
    serde_json::Value,
    Vec<(String, String)>,
    HashMap<(String, String), String>,
);

/// A person's network scores as the evaluator reads them (`graph.<name>`).
pub(crate) fn network_scores(g: rapport_domain::relationship::GraphScores) -> HashMap<String, f64> {
    HashMap::from([
        ("pagerank".to_string(), g.pagerank),
        ("pagerank_pct".to_string(), g.pagerank_pct),
        ("betweenness".to_string(), g.betweenness),
        ("betweenness_pct".to_string(), g.betweenness_pct),
        ("community".to_string(), g.community as f64),
        ("core".to_string(), g.core as f64),
        ("reach1".to_string(), g.reach1 as f64),
        ("reach2".to_string(), g.reach2 as f64),
        ("evangelist".to_string(), g.evangelist),
        ("syndication".to_string(), g.syndication),
    ])
}

pub(crate) fn basics(view: &ProfileView) -> Basics {
    let identities = view
        .identities
        .iter()
        .map(|i| (i.kind.as_str().to_string(), i.value.clone()))
        .collect();
    let consents = view
        .consents
        .iter()
        .map(|c| {
            let status = match c.status {
                ConsentStatus::Granted => "granted",
                ConsentStatus::Denied => "denied",
            };
            ((c.channel.clone(), c.purpose.clone()), status.to_string())
        })
        .collect();
    (view.traits.clone(), identities, consents)
}
