//! A person's social value (evangelist, connector) with its explanation, from their network
//! scores and what their word of mouth achieved.

use super::*;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InfluenceSource {
    pub profile_id: ProfileId,
    /// Share of this person's PageRank that flows in from `profile_id`.
    pub share: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SocialView {
    pub profile_id: ProfileId,
    pub scores: Option<GraphScores>,
    pub evangelist: f64,
    pub syndication: f64,
    /// Each term of the evangelist formula: name, value, contribution.
    #[schema(value_type = Vec<Object>)]
    pub evangelist_factors: Value,
    /// Audience, activity and brokerage: raw value and factor.
    #[schema(value_type = Vec<Object>)]
    pub syndication_factors: Value,
    /// Events per channel over the last 90 days, most used first.
    #[schema(value_type = Object)]
    pub channels: Value,
    /// Who the PageRank comes from: the in-neighbours contributing most.
    pub influence_sources: Vec<InfluenceSource>,
    /// Plain-language reasons.
    pub why: Vec<String>,
}

pub(super) fn explain(
    scores: Option<&GraphScores>,
    inputs: &social::SocialInputs,
    value: &social::SocialValue,
    channels: &[(String, i64)],
) -> Vec<String> {
    let mut why = Vec::new();
    match scores {
        None => why.push("No network scores yet: this person has no relationships, or the graph has not been computed since they appeared.".into()),
        Some(s) => {
            why.push(format!(
                "Influence (PageRank) {:.3e}: higher than {:.0}% of people; {} direct connections, {} within two hops.",
                s.pagerank, s.pagerank_pct * 100.0, s.reach1, s.reach2
            ));
            if s.betweenness_pct >= 0.9 {
                why.push(format!(
                    "A broker: lies on more shortest paths between others than {:.0}% of people (betweenness {:.3e}).",
                    s.betweenness_pct * 100.0, s.betweenness
                ));
            }
            why.push(format!("Member of community {} (k-core {}).", s.community, s.core));
        }
    }
    if inputs.referrals > 0 {
        why.push(format!(
            "Referred {} people, {} of whom converted.",
            inputs.referrals, inputs.referrals_converted
        ));
    }
    if inputs.answers > 0 {
        why.push(format!(
            "Answered {} questions, {} marked helpful.",
            inputs.answers, inputs.answers_helpful
        ));
    }
    if inputs.mentions_positive + inputs.mentions_negative > 0 {
        why.push(format!(
            "Mentioned others {} times positively and {} times negatively.",
            inputs.mentions_positive, inputs.mentions_negative
        ));
    }
    why.push(format!(
        "Evangelist value {:.1}; connector (syndication) value {:.2} from audience, activity on {} of the last 90 days and brokerage.",
        value.evangelist, value.syndication, inputs.active_days_90
    ));
    if let Some((c, n)) = channels.first() {
        why.push(format!(
            "Engages mostly through {c} ({n} events in 90 days)."
        ));
    }
    why
}

impl GraphService {
    /// Per person (or for one person) counts of what their word of mouth achieved.
    pub(super) async fn contributions(
        &self,
        only: Option<ProfileId>,
    ) -> Result<HashMap<ProfileId, social::SocialInputs>> {
        let touches = self
            .store
            .touches(TouchQuery {
                sources: only.map(|id| vec![id]),
                kinds: WORD_OF_MOUTH.iter().map(|s| s.to_string()).collect(),
                limit: 10_000_000,
                ..Default::default()
            })
            .await?;
        let referred: Vec<&TouchView> = touches.iter().filter(|t| t.kind == "referred").collect();
        let mut first_conversion: HashMap<ProfileId, Millis> = HashMap::new();
        if !referred.is_empty() {
            let people: Vec<ProfileId> = referred
                .iter()
                .map(|t| t.target)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let since = referred
                .iter()
                .map(|t| t.at.timestamp_millis())
                .min()
                .unwrap_or(0);
            let names = CONVERSIONS.iter().map(|s| s.to_string()).collect();
            for ev in self
                .store
                .named_events(people.clone(), names, since, i64::MAX, 10_000_000)
                .await?
            {
                // Events come back on raw profiles; map through the referred people.
                let owner = self.canonical(ev.profile_id).await?;
                let at = ev.occurred_at.timestamp_millis();
                let e = first_conversion.entry(owner).or_insert(at);
                *e = (*e).min(at);
            }
        }
        let mut out: HashMap<ProfileId, social::SocialInputs> = HashMap::new();
        let mut counted: HashSet<(ProfileId, ProfileId)> = HashSet::new();
        for t in &touches {
            let e = out.entry(t.source).or_default();
            match t.kind.as_str() {
                "referred" => {
                    e.referrals += 1;
                    let converted = first_conversion
                        .get(&t.target)
                        .is_some_and(|&c| c >= t.at.timestamp_millis());
                    if converted && counted.insert((t.source, t.target)) {
                        e.referrals_converted += 1;
                    }
                }
                "answered" => e.answers += 1,
                "helpful_answer" => e.answers_helpful += 1,
                _ => match t.sentiment {
                    Some(s) if s >= 0.05 => e.mentions_positive += 1,
                    Some(s) if s <= -0.05 => e.mentions_negative += 1,
                    _ => {}
                },
            }
        }
        Ok(out)
    }

    /// Social value with its explanation.
    pub async fn social(&self, id: ProfileId) -> Result<SocialView> {
        let center = self.canonical(id).await?;
        let now = rapport_domain::time::now_millis();
        let scores = self
            .store
            .graph_scores(vec![center])
            .await?
            .into_iter()
            .next();
        let activity = self.store.activity(center, now - 90 * DAY).await?;
        let mut inputs = self
            .contributions(Some(center))
            .await?
            .remove(&center)
            .unwrap_or_default();
        inputs.active_days_90 = activity.active_days as u32;
        if let Some(s) = &scores {
            inputs.reach2 = s.reach2 as u64;
            inputs.betweenness_percentile = s.betweenness_pct;
        }
        let value = social::social_value(&inputs);
        let mut influence_sources = Vec::new();
        let loaded = self.load().await?;
        if let Some(v) = loaded.node(center) {
            let g = &loaded.graph;
            let ins: Vec<ProfileId> = g
                .inn
                .neighbours(v)
                .iter()
                .map(|&u| loaded.ids[u as usize])
                .collect();
            let pr: HashMap<ProfileId, f64> = self
                .store
                .graph_scores(ins.clone())
                .await?
                .into_iter()
                .map(|s| (s.profile_id, s.pagerank))
                .collect();
            let mut flows: Vec<(ProfileId, f64)> = g
                .inn
                .neighbours(v)
                .iter()
                .map(|&u| {
                    let out: f64 = g
                        .out
                        .weights_of(u)
                        .map_or(g.out.degree(u) as f64, |w| w.iter().sum());
                    let id = loaded.ids[u as usize];
                    (
                        id,
                        0.85 * pr.get(&id).copied().unwrap_or(0.0) * g.weight(u, v) / out,
                    )
                })
                .collect();
            let total: f64 = flows.iter().map(|f| f.1).sum();
            flows.sort_by(|a, b| b.1.total_cmp(&a.1));
            influence_sources = flows
                .into_iter()
                .take(10)
                .map(|(profile_id, f)| InfluenceSource {
                    profile_id,
                    share: if total > 0.0 { f / total } else { 0.0 },
                })
                .collect();
        }
        let why = explain(scores.as_ref(), &inputs, &value, &activity.channels);
        Ok(SocialView {
            profile_id: center,
            scores,
            evangelist: value.evangelist,
            syndication: value.syndication,
            evangelist_factors: serde_json::to_value(&value.evangelist_factors).unwrap_or_default(),
            syndication_factors: serde_json::to_value(&value.syndication_factors)
                .unwrap_or_default(),
            channels: Value::Object(
                activity
                    .channels
                    .iter()
                    .map(|(c, n)| (c.clone(), json!(n)))
                    .collect(),
            ),
            influence_sources,
            why,
        })
    }
}
