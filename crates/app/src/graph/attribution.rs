//! Word-of-mouth attribution: which people's mentions, referrals and shares preceded a
//! conversion, and whom a person influenced.

use super::*;

/// Event names that count as a conversion for attribution and referral value, unless
/// the caller names others.
pub const CONVERSIONS: [&str; 6] = [
    "Order Completed",
    "Signed Up",
    "Subscription Started",
    "Checkout Completed",
    "Trial Started",
    "Converted",
];

/// Touch kinds that carry word of mouth.
pub const WORD_OF_MOUTH: [&str; 5] = [
    "referred",
    "mentioned",
    "replied",
    "answered",
    "helpful_answer",
];

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttributedPerson {
    pub profile_id: ProfileId,
    /// Hops from the converter (1 = touched them directly).
    pub depth: u32,
    /// Share of the conversion: split equally among direct touchers, half of each
    /// person's share passed on to whoever touched them first.
    pub credit: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attribution {
    #[schema(value_type = Object)]
    pub conversion: EventView,
    pub converter: ProfileId,
    pub window_days: i64,
    pub people: Vec<AttributedPerson>,
    /// The touches on the chains, newest first.
    pub touches: Vec<TouchView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DrivenConversion {
    pub touch: TouchView,
    #[schema(value_type = Object)]
    pub conversion: EventView,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Influence {
    pub profile_id: ProfileId,
    pub window_days: i64,
    pub people_touched: usize,
    pub conversions: Vec<DrivenConversion>,
}

impl GraphService {
    /// The chains of people and touches that led to a conversion event.
    pub async fn attribution(
        &self,
        event_id: i64,
        window_days: i64,
        max_depth: u32,
    ) -> Result<Attribution> {
        if !(1..=3650).contains(&window_days) {
            return Err(invalid("window_days", "must be between 1 and 3650"));
        }
        if !(1..=5).contains(&max_depth) {
            return Err(invalid("depth", "must be between 1 and 5"));
        }
        let conversion = self.store.event(event_id).await?;
        let converter = self.canonical(conversion.profile_id).await?;
        let t_conv = conversion.occurred_at.timestamp_millis();
        let since = t_conv - window_days * DAY;
        // `before[p]`: a touch into p counts only if it happened before p acted on.
        let mut before: HashMap<ProfileId, Millis> = HashMap::from([(converter, t_conv)]);
        let mut credit: HashMap<ProfileId, f64> = HashMap::from([(converter, 1.0)]);
        let mut depth_of: HashMap<ProfileId, u32> = HashMap::new();
        let mut frontier = vec![converter];
        let mut chain: Vec<TouchView> = Vec::new();
        for depth in 1..=max_depth {
            if frontier.is_empty() {
                break;
            }
            let touches = self
                .store
                .touches(TouchQuery {
                    targets: Some(frontier.clone()),
                    kinds: WORD_OF_MOUTH.iter().map(|s| s.to_string()).collect(),
                    since: Some(since),
                    until: Some(
                        frontier
                            .iter()
                            .filter_map(|p| before.get(p))
                            .copied()
                            .max()
                            .unwrap_or(t_conv),
                    ),
                    limit: 10_000,
                    ..Default::default()
                })
                .await?;
            let mut next = Vec::new();
            // Each frontier person's credit: half kept, half split among their touchers
            // (all of it at the converter, who did not persuade themselves).
            let mut by_target: HashMap<ProfileId, Vec<&TouchView>> = HashMap::new();
            for t in &touches {
                let ok = before
                    .get(&t.target)
                    .is_some_and(|&b| t.at.timestamp_millis() <= b)
                    && t.source != converter
                    && !depth_of.contains_key(&t.source);
                if ok {
                    by_target.entry(t.target).or_default().push(t);
                }
            }
            for (target, ts) in by_target {
                let sources: Vec<ProfileId> = ts
                    .iter()
                    .map(|t| t.source)
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                let share = credit.get(&target).copied().unwrap_or(0.0);
                let passed = if target == converter {
                    share
                } else {
                    share / 2.0
                };
                if target != converter {
                    credit.insert(target, share - passed);
                } else {
                    credit.insert(target, 0.0);
                }
                for s in &sources {
                    *credit.entry(*s).or_default() += passed / sources.len() as f64;
                    // Their own touchers must come before their first touch here.
                    let first = ts
                        .iter()
                        .filter(|t| t.source == *s)
                        .map(|t| t.at.timestamp_millis())
                        .min()
                        .unwrap_or(t_conv);
                    let e = before.entry(*s).or_insert(first);
                    *e = (*e).min(first);
                    if !depth_of.contains_key(s) {
                        depth_of.insert(*s, depth);
                        next.push(*s);
                    }
                }
                chain.extend(ts.into_iter().cloned());
            }
            frontier = next;
        }
        let mut people: Vec<AttributedPerson> = depth_of
            .into_iter()
            .map(|(p, d)| AttributedPerson {
                profile_id: p,
                depth: d,
                credit: credit.get(&p).copied().unwrap_or(0.0),
            })
            .collect();
        people.sort_by(|a, b| {
            b.credit
                .total_cmp(&a.credit)
                .then(a.profile_id.cmp(&b.profile_id))
        });
        chain.sort_by_key(|t| std::cmp::Reverse(t.at));
        Ok(Attribution {
            conversion,
            converter,
            window_days,
            people,
            touches: chain,
        })
    }

    /// Conversions by people this person touched (referred, mentioned, replied to,
    /// answered) within `window_days` after the touch.
    pub async fn influence(
        &self,
        id: ProfileId,
        window_days: i64,
        names: Vec<String>,
    ) -> Result<Influence> {
        if !(1..=3650).contains(&window_days) {
            return Err(invalid("window_days", "must be between 1 and 3650"));
        }
        let center = self.canonical(id).await?;
        let touches = self
            .store
            .touches(TouchQuery {
                sources: Some(vec![center]),
                kinds: WORD_OF_MOUTH.iter().map(|s| s.to_string()).collect(),
                limit: 100_000,
                ..Default::default()
            })
            .await?;
        let people: Vec<ProfileId> = touches
            .iter()
            .map(|t| t.target)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut conversions = Vec::new();
        if !people.is_empty() {
            let since = touches
                .iter()
                .map(|t| t.at.timestamp_millis())
                .min()
                .unwrap_or(0);
            let events = self
                .store
                .named_events(people.clone(), names, since, i64::MAX, 100_000)
                .await?;
            let mut seen = HashSet::new();
            for ev in events {
                let owner = self.canonical(ev.profile_id).await?;
                let at = ev.occurred_at.timestamp_millis();
                // Credit the latest touch before the conversion, within the window.
                let touch = touches
                    .iter()
                    .filter(|t| {
                        t.target == owner
                            && t.at.timestamp_millis() <= at
                            && at - t.at.timestamp_millis() <= window_days * DAY
                    })
                    .max_by_key(|t| t.at);
                if let Some(t) = touch {
                    if seen.insert(ev.id) {
                        conversions.push(DrivenConversion {
                            touch: t.clone(),
                            conversion: ev,
                        });
                    }
                }
            }
        }
        Ok(Influence {
            profile_id: center,
            window_days,
            people_touched: people.len(),
            conversions,
        })
    }
}
