//! Reading the graph around people: ego networks, a pair's relationship, closest people,
//! shortest paths.

use super::*;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EgoNode {
    pub profile_id: ProfileId,
    pub depth: u32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EgoNetwork {
    pub center: ProfileId,
    pub depth: u32,
    pub nodes: Vec<EgoNode>,
    pub edges: Vec<RelationshipView>,
    /// True when `limit` cut the network short.
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PathView {
    pub profiles: Vec<ProfileId>,
    pub edges: Vec<RelationshipView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Close {
    pub profile_id: ProfileId,
    /// Personalised PageRank from the person asked about.
    pub score: f64,
}

impl GraphService {
    /// The people within `depth` hops (1 or 2) and the relationships among them.
    pub async fn ego(&self, id: ProfileId, depth: u32, limit: usize) -> Result<EgoNetwork> {
        if !(1..=2).contains(&depth) {
            return Err(invalid("depth", "must be 1 or 2"));
        }
        let center = self.canonical(id).await?;
        let loaded = self.load().await?;
        let nodes: Vec<EgoNode> = match loaded.node(center) {
            None => vec![EgoNode {
                profile_id: center,
                depth: 0,
            }],
            Some(v) => paths::ego(&loaded.graph, v, depth, limit + 1)
                .into_iter()
                .map(|(n, d)| EgoNode {
                    profile_id: loaded.ids[n as usize],
                    depth: d,
                })
                .collect(),
        };
        let truncated = nodes.len() > limit;
        let nodes: Vec<EgoNode> = nodes.into_iter().take(limit).collect();
        let ids: Vec<ProfileId> = nodes.iter().map(|n| n.profile_id).collect();
        let edges = self
            .store
            .relationships(RelScope::Among(ids), 20_000)
            .await?;
        Ok(EgoNetwork {
            center,
            depth,
            nodes,
            edges,
            truncated,
        })
    }

    /// Every relationship between two people, both directions (the pair-level view).
    pub async fn pair(
        &self,
        a: ProfileId,
        b: ProfileId,
    ) -> Result<(Vec<RelationshipView>, Vec<RelationshipView>)> {
        let (ca, cb) = (self.canonical(a).await?, self.canonical(b).await?);
        let all = self
            .store
            .relationships(RelScope::Among(vec![ca, cb]), 1000)
            .await?;
        let (ab, ba) = all.into_iter().partition(|r| r.source == ca);
        Ok((ab, ba))
    }

    /// "Who is close to this person": personalised PageRank on the undirected view.
    pub async fn close(&self, id: ProfileId, limit: usize) -> Result<Vec<Close>> {
        let center = self.canonical(id).await?;
        let loaded = self.load().await?;
        let Some(v) = loaded.node(center) else {
            return Ok(vec![]);
        };
        let l2 = loaded.clone();
        let ranked = tokio::task::spawn_blocking(move || {
            paths::personalised_pagerank(&l2.graph, v, 0.15, 1e-6, limit)
        })
        .await
        .map_err(|e| GraphError::Compute(e.to_string()))?;
        Ok(ranked
            .into_iter()
            .map(|(n, score)| Close {
                profile_id: loaded.ids[n as usize],
                score,
            })
            .collect())
    }

    /// A shortest chain of relationships between two people (either direction).
    pub async fn path(&self, a: ProfileId, b: ProfileId) -> Result<Option<PathView>> {
        let (ca, cb) = (self.canonical(a).await?, self.canonical(b).await?);
        let loaded = self.load().await?;
        let (Some(na), Some(nb)) = (loaded.node(ca), loaded.node(cb)) else {
            return Ok((ca == cb).then(|| PathView {
                profiles: vec![ca],
                edges: vec![],
            }));
        };
        let Some(p) = paths::shortest_path(&loaded.graph, na, nb, 12) else {
            return Ok(None);
        };
        let profiles: Vec<ProfileId> = p.iter().map(|&n| loaded.ids[n as usize]).collect();
        let among = self
            .store
            .relationships(RelScope::Among(profiles.clone()), 10_000)
            .await?;
        let steps: HashSet<(ProfileId, ProfileId)> = profiles
            .windows(2)
            .flat_map(|w| [(w[0], w[1]), (w[1], w[0])])
            .collect();
        let edges = among
            .into_iter()
            .filter(|r| steps.contains(&(r.source, r.target)))
            .collect();
        Ok(Some(PathView { profiles, edges }))
    }
}
