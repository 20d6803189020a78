//! Micro-segments: everyone with activity grouped by k-means over their computed and
//! network scores (`rapport_segment::micro`), each group described in words and saved as
//! a segment of kind `micro`. Built on [`crate::scores`] and [`crate::segments`]'s store.

use rapport_domain::resolve::ProfileId;
use rapport_domain::time::now_millis;
use rapport_store::{DynStore, StoreError};
use std::collections::HashMap;

/// The features micro-segments group people by, and the words for standing out on them.
const FEATURES: [rapport_segment::micro::Feature; 6] = [
    rapport_segment::micro::Feature {
        name: "recency_days",
        high: "lapsed buyers",
        low: "recent buyers",
    },
    rapport_segment::micro::Feature {
        name: "purchases",
        high: "frequent buyers",
        low: "",
    },
    rapport_segment::micro::Feature {
        name: "spend",
        high: "big spenders",
        low: "",
    },
    rapport_segment::micro::Feature {
        name: "engagement",
        high: "highly engaged",
        low: "disengaged",
    },
    rapport_segment::micro::Feature {
        name: "influence_pct",
        high: "influential",
        low: "",
    },
    rapport_segment::micro::Feature {
        name: "reach2_log",
        high: "well connected",
        low: "",
    },
];

const MICRO_KEY: &str = "segments.micro";

/// Groups everyone with activity into at most `k` micro-segments (`Micro 1`… by size),
/// each described in words, replacing the previous ones; scores are recomputed first.
/// Returns the groups with their feature means.
pub async fn refresh_micro(
    store: &DynStore,
    k: usize,
) -> Result<Vec<serde_json::Value>, StoreError> {
    crate::scores::recompute(store).await?;
    let mut rows: HashMap<ProfileId, [f64; 6]> = HashMap::new();
    let never = f64::NAN;
    for (slot, name) in [
        (0, "rfm_recency_days"),
        (1, "rfm_frequency"),
        (2, "rfm_monetary"),
        (3, "engagement"),
    ] {
        for (id, v) in store.score_values(name).await? {
            rows.entry(id).or_insert([never, 0.0, 0.0, 0.0, 0.0, 0.0])[slot] = v;
        }
    }
    for g in store
        .top_graph_scores(rapport_store::ScoreOrder::Pagerank, None, 1 << 40)
        .await?
    {
        let r = rows
            .entry(g.profile_id)
            .or_insert([never, 0.0, 0.0, 0.0, 0.0, 0.0]);
        r[4] = g.pagerank_pct;
        r[5] = (1.0 + g.reach2 as f64).ln();
    }
    // Never bought: as lapsed as the most lapsed buyer, and a month more.
    let worst = rows
        .values()
        .map(|r| r[0])
        .filter(|v| !v.is_nan())
        .fold(0.0, f64::max)
        + 30.0;
    let mut ids: Vec<ProfileId> = rows.keys().copied().collect();
    ids.sort_unstable();
    let matrix: Vec<Vec<f64>> = ids
        .iter()
        .map(|id| {
            let mut r = rows[id].to_vec();
            if r[0].is_nan() {
                r[0] = worst;
            }
            r
        })
        .collect();
    let groups = tokio::task::spawn_blocking(move || {
        rapport_segment::micro::cluster(&matrix, &FEATURES, k, 7)
    })
    .await
    .map_err(|e| StoreError::Backend(format!("clustering task: {e}")))?;
    let now = now_millis();
    for old in store.segments().await? {
        if old.kind == "micro" {
            store.delete_segment(old.id).await?;
        }
    }
    let mut out = Vec::new();
    for (n, g) in groups.iter().enumerate() {
        let name = format!("Micro {}", n + 1);
        let row = store
            .create_segment(&name, "", &g.description, "micro", now)
            .await?;
        let members: Vec<ProfileId> = g.members.iter().map(|&i| ids[i]).collect();
        store.set_segment_members(row.id, members, now).await?;
        crate::changes::announce(store, crate::changes::Change::Standing).await?;
        out.push(serde_json::json!({
            "id": row.id, "name": name, "description": g.description, "size": g.size,
            "means": g.means.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<String, serde_json::Value>>(),
            "z": g.z.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<String, serde_json::Value>>(),
        }));
    }
    store
        .set_setting(MICRO_KEY, serde_json::Value::Array(out.clone()), now)
        .await?;
    Ok(out)
}

/// The micro-segments as last computed.
pub async fn micro(store: &DynStore) -> Result<serde_json::Value, StoreError> {
    Ok(store
        .setting(MICRO_KEY)
        .await?
        .unwrap_or_else(|| serde_json::json!([])))
}
