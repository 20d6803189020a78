//! The people the engine holds in memory, and when each state is re-read: announcements
//! (standing, scores, retracted history), the TTL check, loads of people not held, eviction.

use super::*;

pub(super) struct Cached {
    pub(super) person: Person,
    /// Raw profiles the state was loaded from.
    pub(super) members: Vec<ProfileId>,
    /// Highest event id in `person.events`: later events are appended, earlier ones are in.
    pub(super) upto: i64,
    /// Recent firings `(rule, at)`, for caps.
    pub(super) fired: Vec<(String, Millis)>,
    /// Indexes (in `Config::segments`) of the segments the person is in.
    pub(super) inside: HashSet<usize>,
    /// What the next evaluation must redo beyond what its event matches.
    pub(super) stale: Stale,
    pub(super) loaded: Instant,
    pub(super) used: u64,
    /// Read ahead of its events in this step (whole, or its standing re-read), not used
    /// yet: what its first event reports.
    pub(super) ahead: Option<Held>,
    /// What changed outside the event stream ([`touched`], [`scores_changed`]): re-read
    /// before the next event, without the history.
    pub(super) recheck: Option<Recheck>,
}

/// What of a held state to re-read (ordered: the standing includes the scores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Recheck {
    Scores,
    Standing,
}

/// What [`Engine::ensure`] did with a person's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Held {
    /// Held and fresh: used as it is.
    Kept,
    /// Held, and its profile re-read (traits and consents replaced).
    Checked,
    /// Read whole from the store.
    Loaded,
}

/// What a person's next evaluation must redo beyond the segments its event can change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Stale {
    #[default]
    Nothing,
    /// These top-level traits changed: the segments that read one of them.
    Traits(BTreeSet<String>),
    /// Consents, identities, scores (or traits, from a rule or offer) changed: the
    /// segments that read the profile.
    Profile,
    /// Just loaded: every segment.
    All,
}

impl Stale {
    /// Both what was stale and `more`.
    pub(super) fn add(&mut self, more: Stale) {
        *self = match (std::mem::take(self), more) {
            (Stale::All, _) | (_, Stale::All) => Stale::All,
            (Stale::Profile, _) | (_, Stale::Profile) => Stale::Profile,
            (Stale::Traits(mut a), Stale::Traits(b)) => {
                a.extend(b);
                Stale::Traits(a)
            }
            (Stale::Traits(a), Stale::Nothing) | (Stale::Nothing, Stale::Traits(a)) => {
                Stale::Traits(a)
            }
            (Stale::Nothing, Stale::Nothing) => Stale::Nothing,
        }
    }
}

/// The top-level keys whose values differ between two trait objects.
pub(super) fn changed_traits(old: &Value, new: &Value) -> BTreeSet<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// What of the profile a definition reads.
#[derive(Debug, Default)]
pub(super) struct ProfileReads {
    /// Top-level trait names.
    pub(super) traits: BTreeSet<String>,
    /// Identities, consents, wallets' tokens or computed scores.
    pub(super) other: bool,
}

impl ProfileReads {
    pub(super) fn of(e: &Expr) -> Self {
        let mut r = Self::default();
        r.add(e);
        r
    }

    pub(super) fn add(&mut self, e: &Expr) {
        match e {
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| self.add(x)),
            Expr::Not(x) => self.add(x),
            Expr::Cond(Cond::Trait { path, .. }) => match path.first() {
                Some(k) => {
                    self.traits.insert(k.clone());
                }
                // Cannot parse; taken as reading the whole profile all the same.
                None => self.other = true,
            },
            Expr::Cond(
                Cond::Has { .. }
                | Cond::Consent { .. }
                | Cond::Token { .. }
                | Cond::Score { .. }
                | Cond::Computed { .. }
                | Cond::Loyalty { .. }
                | Cond::Tier { .. },
            ) => {
                self.other = true;
            }
            Expr::Cond(_) => {}
        }
    }

    pub(super) fn any(&self) -> bool {
        self.other || !self.traits.is_empty()
    }

    /// Whether what is stale may change the answer.
    pub(super) fn affected_by(&self, stale: &Stale) -> bool {
        match stale {
            Stale::Nothing => false,
            Stale::Traits(keys) => self.traits.iter().any(|k| keys.contains(k)),
            Stale::Profile => self.any(),
            Stale::All => true,
        }
    }
}

/// Computed and network scores of several people.
pub(super) type ScoresRead = (
    Vec<rapport_store::ScoreRow>,
    Vec<rapport_domain::relationship::GraphScores>,
);

/// These people's computed and network scores, read together.
pub(super) async fn read_scores(
    store: &DynStore,
    ids: Vec<ProfileId>,
) -> Result<ScoresRead, StoreError> {
    tokio::try_join!(store.scores_of(ids.clone()), store.graph_scores(ids))
}

/// People read together, each taken once by an id asked for: their own or one of their
/// profiles'.
pub(super) struct ById {
    pub(super) read: Vec<Option<segments::Loaded>>,
    pub(super) of: HashMap<ProfileId, usize>,
}

impl ById {
    pub(super) fn new(read: Vec<segments::Loaded>) -> Self {
        let mut of = HashMap::new();
        for (i, l) in read.iter().enumerate() {
            of.insert(l.id, i);
            for m in &l.members {
                of.insert(*m, i);
            }
        }
        Self {
            read: read.into_iter().map(Some).collect(),
            of,
        }
    }

    pub(super) fn take(&mut self, id: ProfileId) -> Option<segments::Loaded> {
        self.of.get(&id).and_then(|&i| self.read[i].take())
    }
}

impl Engine {
    /// Acts on the counters [`touched`], [`scores_changed`] and [`reset`] move (a first
    /// step only notes them: it holds nothing).
    pub(super) fn check_generation(&mut self, generation: i64, scores: i64, reset: i64) {
        if self.reset.is_some_and(|r| r != reset) {
            self.drop_all();
        }
        self.reset = Some(reset);
        let mut mark = None;
        if self.scores.is_some_and(|s| s != scores) {
            mark = Some(Recheck::Scores);
        }
        if self.generation.is_some_and(|g| g != generation) {
            mark = Some(Recheck::Standing);
        }
        if mark.is_some() {
            for c in self.people.values_mut() {
                c.recheck = c.recheck.max(mark);
            }
            // For `warm`, the most recently used last (taken first).
            let mut by_use: Vec<(u64, ProfileId)> =
                self.people.iter().map(|(id, c)| (c.used, *id)).collect();
            by_use.sort_unstable();
            self.marked = by_use.into_iter().map(|(_, id)| id).collect();
        }
        self.generation = Some(generation);
        self.scores = Some(scores);
    }

    /// Makes sure `id`'s state is in memory and fresh enough for an event from raw
    /// profile `raw`; says whether it was kept, checked against the profile or loaded.
    pub(super) async fn ensure(
        &mut self,
        store: &DynStore,
        id: ProfileId,
        raw: ProfileId,
        reload: bool,
        views: &HashMap<ProfileId, ProfileView>,
        config: &Config,
    ) -> Result<Held, StoreError> {
        let held = self
            .people
            .get(&id)
            .is_some_and(|c| c.members.contains(&raw));
        self.clock += 1;
        if held {
            let Some(c) = self.people.get_mut(&id) else {
                return Ok(Held::Kept);
            };
            c.used = self.clock;
            if let Some(ahead) = c.ahead.take() {
                return Ok(ahead);
            }
            // A step re-reads what changed for its people before deciding; a state still
            // marked here was missed by that pass: read it whole rather than trust it.
            if c.recheck.is_some() {
                self.load(store, vec![id], config, false).await?;
                return Ok(Held::Loaded);
            }
            if !reload && c.loaded.elapsed() < self.ttl {
                return Ok(Held::Kept);
            }
            // An identify, alias or group may change traits, identities or, by merging,
            // the profiles the person is made of; so may a write that bypassed
            // `touched`, which a state past its TTL is checked for. Re-read the profile,
            // and the whole state only when its profiles or identities changed (a new
            // wallet brings holdings); changed traits or consents redo the segments that
            // read them. The events need no re-read: the engine saw every one in order.
            let read;
            let view = match views.get(&id) {
                Some(v) => v,
                None => {
                    read = store.profile(id).await?;
                    &read
                }
            };
            let (traits, identities, consents) = segments::basics(view);
            if view.member_ids == c.members && identities == c.person.identities {
                if consents != c.person.consents {
                    c.stale.add(Stale::Profile);
                } else if traits != c.person.traits {
                    // Identifies often set traits no segment reads: those redo nothing.
                    c.stale
                        .add(Stale::Traits(changed_traits(&c.person.traits, &traits)));
                }
                c.person.traits = traits;
                c.person.consents = consents;
                c.loaded = Instant::now();
                return Ok(Held::Checked);
            }
        }
        self.load(store, vec![id], config, false).await?;
        Ok(Held::Loaded)
    }

    /// Reads these people's states whole, together, and holds each under the id asked
    /// for. `fresh`: loaded ahead of their events, so the first event of each applies
    /// the step's decisions so far, as after a load at the event.
    pub(super) async fn load(
        &mut self,
        store: &DynStore,
        ids: Vec<ProfileId>,
        config: &Config,
        fresh: bool,
    ) -> Result<(), StoreError> {
        let since = if config.cap_window > 0 {
            now_millis() - config.cap_window
        } else {
            // No caps: no firings to keep.
            Millis::MAX
        };
        let reads = PersonReads::Whole {
            firings_since: since,
            membership_events: config.membership_history,
        };
        let mut loaded = ById::new(segments::people(store, ids.clone(), reads).await?);
        for id in ids {
            let Some(l) = loaded.take(id) else {
                continue;
            };
            let mut person = l.person;
            person.index = Some(eval::EventIndex::build(&config.selectors, &person.events));
            let inside = config.inside(&person.segments);
            if self.people.len() >= self.capacity && !self.people.contains_key(&id) {
                self.evict();
            }
            self.people.insert(
                id,
                Cached {
                    person,
                    members: l.members,
                    upto: l.upto,
                    fired: l.firings,
                    inside,
                    stale: Stale::All,
                    loaded: Instant::now(),
                    used: self.clock,
                    ahead: fresh.then_some(Held::Loaded),
                    recheck: None,
                },
            );
        }
        Ok(())
    }

    /// Re-reads the standing (profile, memberships, scores, holdings) of these held people
    /// after [`touched`], together, and keeps their history. A person whose profiles
    /// changed (a merge or unmerge) or who is gone is dropped, to be read whole.
    pub(super) async fn recheck(
        &mut self,
        store: &DynStore,
        ids: Vec<ProfileId>,
        config: &Config,
    ) -> Result<(), StoreError> {
        let mut read =
            ById::new(segments::people(store, ids.clone(), PersonReads::Standing).await?);
        for id in ids {
            let fresh = read.take(id);
            let Some(c) = self.people.get_mut(&id) else {
                continue;
            };
            let Some(l) = fresh.filter(|l| l.members == c.members) else {
                self.people.remove(&id);
                continue;
            };
            let now = l.person;
            let was = &c.person;
            let same_members = now.segments.len() == was.segments.len() && {
                let was: HashSet<&String> = was.segments.iter().collect();
                now.segments.iter().all(|s| was.contains(s))
            };
            let stale = if !same_members || now.holdings != was.holdings {
                Stale::All
            } else if now.identities != was.identities
                || now.consents != was.consents
                || now.scores != was.scores
                || now.computed != was.computed
                || now.loyalty != was.loyalty
            {
                Stale::Profile
            } else if now.traits != was.traits {
                Stale::Traits(changed_traits(&was.traits, &now.traits))
            } else {
                Stale::Nothing
            };
            c.stale.add(stale);
            c.inside = config.inside(&now.segments);
            let p = &mut c.person;
            p.traits = now.traits;
            p.identities = now.identities;
            p.consents = now.consents;
            p.scores = now.scores;
            p.computed = now.computed;
            p.holdings = now.holdings;
            p.loyalty = now.loyalty;
            p.segments = now.segments;
            c.loaded = Instant::now();
            c.recheck = None;
            c.ahead = Some(Held::Checked);
        }
        Ok(())
    }

    /// Applies the scores re-read for these held people after [`scores_changed`]; what
    /// changed redoes the segments that read scores. The state is otherwise as held (a
    /// state past its TTL still has its profile checked at its event).
    pub(super) fn rescore(&mut self, ids: Vec<ProfileId>, (computed, graph): ScoresRead) {
        let mut by_id: HashMap<ProfileId, HashMap<String, f64>> = HashMap::new();
        for s in computed {
            by_id
                .entry(s.profile_id)
                .or_default()
                .insert(s.name, s.value);
        }
        let mut graph: HashMap<ProfileId, _> =
            graph.into_iter().map(|g| (g.profile_id, g)).collect();
        for id in ids {
            let Some(c) = self.people.get_mut(&id) else {
                continue;
            };
            let computed = by_id.remove(&id).unwrap_or_default();
            let network = graph.remove(&id).map(segments::network_scores);
            if computed != c.person.computed || network != c.person.scores {
                c.stale.add(Stale::Profile);
                c.person.computed = computed;
                c.person.scores = network;
            }
            c.recheck = None;
        }
    }

    /// Drops the least recently used tenth.
    pub(super) fn evict(&mut self) {
        let mut by_use: Vec<(u64, ProfileId)> =
            self.people.iter().map(|(id, c)| (c.used, *id)).collect();
        by_use.sort_unstable();
        for (_, id) in by_use.iter().take((self.capacity / 10).max(1)) {
            self.people.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(k: &[&str]) -> BTreeSet<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_the_traits_a_segment_reads_make_it_stale() {
        let plan = |src: &str| ProfileReads::of(&rapport_segment::parse(src).expect(src));
        let title = plan("traits.title ~ \"market\" or count(page, 7d) >= 1");
        assert!(title.affected_by(&Stale::Traits(keys(&["title", "plan"]))));
        assert!(!title.affected_by(&Stale::Traits(keys(&["last_seen_plan"]))));
        assert!(title.affected_by(&Stale::Profile));
        let nested = plan("not traits.address.city = \"Paris\"");
        assert!(nested.affected_by(&Stale::Traits(keys(&["address"]))));
        let consent = plan("has email and not consent(email, marketing) = denied");
        assert!(!consent.affected_by(&Stale::Traits(keys(&["title"]))));
        assert!(consent.affected_by(&Stale::Profile));
        let events = plan("count(track \"Order Completed\") >= 2");
        assert!(!events.affected_by(&Stale::Profile));
        assert!(events.affected_by(&Stale::All));
    }

    #[test]
    fn staleness_adds_up() {
        let mut s = Stale::Nothing;
        s.add(Stale::Traits(keys(&["a"])));
        s.add(Stale::Traits(keys(&["b"])));
        assert_eq!(s, Stale::Traits(keys(&["a", "b"])));
        s.add(Stale::Nothing);
        assert_eq!(s, Stale::Traits(keys(&["a", "b"])));
        s.add(Stale::Profile);
        assert_eq!(s, Stale::Profile);
        s.add(Stale::Traits(keys(&["c"])));
        assert_eq!(s, Stale::Profile);
        s.add(Stale::All);
        assert_eq!(s, Stale::All);
    }

    #[test]
    fn changed_traits_are_those_that_differ() {
        let old = json!({"plan": "pro", "title": "CTO", "city": "Oslo"});
        let new = json!({"plan": "free", "title": "CTO", "seen": 1});
        assert_eq!(changed_traits(&old, &new), keys(&["city", "plan", "seen"]));
        assert!(changed_traits(&new, &new).is_empty());
    }
}
