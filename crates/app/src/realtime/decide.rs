//! Deciding a step's events: the segments each event can change, the next best offer and
//! the rules, against the person's held state.

use super::*;

/// A segment with what its answer depends on.
pub(super) struct Plan {
    pub(super) row: SegmentRow,
    pub(super) expr: Expr,
    /// Slots (in `Config::selectors`) of the event selectors it reads.
    pub(super) slots: Vec<usize>,
    /// Indexes of the segments it refers to (always earlier ones).
    pub(super) refs: Vec<usize>,
    /// What of the profile it reads (traits, identities, consents, wallets' tokens), so
    /// must be redone when those change.
    pub(super) reads: ProfileReads,
}

/// What a step decides on, read together by [`Store::step_inputs`].
pub(super) struct Decide<'a> {
    pub(super) events: &'a [EventView],
    pub(super) texts: &'a [(i64, ProfileId)],
    /// Raw profile → person.
    pub(super) canonical: HashMap<ProfileId, ProfileId>,
    /// Profiles re-read after an identify, alias or group.
    pub(super) views: HashMap<ProfileId, ProfileView>,
}

/// The segments an event may have changed against one person, in dependency order, noting
/// what changed: those with a selector the event matches (`matched`, by slot; empty for
/// none), those a changed segment refers to, and what the person's state says is stale
/// (all after a load; those reading the profile after a trait or consent change).
/// Windows sliding with time are the batch refresh's job (and each load's).
pub(super) fn evaluate(
    config: &Config,
    id: ProfileId,
    c: &mut Cached,
    matched: &[bool],
    now: Millis,
    membership: &mut BTreeMap<(ProfileId, i64), bool>,
) {
    let stale = std::mem::take(&mut c.stale);
    let mut changed = vec![false; config.segments.len()];
    for (i, plan) in config.segments.iter().enumerate() {
        let needed = plan.reads.affected_by(&stale)
            || plan.slots.iter().any(|&s| matched.get(s) == Some(&true))
            || plan.refs.iter().any(|&j| changed[j]);
        if !needed {
            continue;
        }
        let inside = eval::eval(&plan.expr, &c.person, now);
        if inside == c.inside.contains(&i) {
            continue;
        }
        changed[i] = true;
        membership.insert((id, plan.row.id), inside);
        // Later segments may refer to this one.
        if inside {
            c.inside.insert(i);
            c.person.segments.push(plan.row.name.clone());
        } else {
            c.inside.remove(&i);
            c.person.segments.retain(|s| s != &plan.row.name);
        }
    }
}

/// A state just loaded from the store does not hold this step's decisions yet (they are
/// written at its end): applies them.
pub(super) fn pending(
    config: &Config,
    id: ProfileId,
    c: &mut Cached,
    membership: &BTreeMap<(ProfileId, i64), bool>,
    effects: &Effects,
) {
    for ((_, seg), inside) in membership.range((id, i64::MIN)..=(id, i64::MAX)) {
        let Some(i) = config.segments.iter().position(|p| p.row.id == *seg) else {
            continue;
        };
        let name = &config.segments[i].row.name;
        c.person.segments.retain(|s| s != name);
        c.inside.remove(&i);
        if *inside {
            c.person.segments.push(name.clone());
            c.inside.insert(i);
        }
    }
    effects.apply_pending(id, &mut c.person.traits);
}

impl Engine {
    pub(super) async fn decide_all(
        &mut self,
        store: &DynStore,
        config: &Config,
        inputs: &Decide<'_>,
        carried: Carry,
        report: &mut StepReport,
        writes: &mut StepWrites,
    ) -> Result<Vec<f64>, StoreError> {
        let now = now_millis();
        let Decide {
            events,
            texts,
            canonical,
            views,
        } = inputs;
        let (events, texts) = (*events, *texts);
        // Held people whose standing may have changed outside the event stream have it
        // re-read together (those found merged join the people loaded whole below).
        let mut recheck: BTreeMap<ProfileId, Recheck> = BTreeMap::new();
        for ev in events {
            let Some(&id) = canonical.get(&ev.profile_id) else {
                continue;
            };
            if let Some(r) = self.people.get(&id).and_then(|c| c.recheck) {
                recheck.insert(id, r);
            }
        }
        let (standing, rescore): (Vec<_>, Vec<_>) = recheck
            .into_iter()
            .partition(|(_, r)| *r == Recheck::Standing);
        let rescore: Vec<ProfileId> = rescore.into_iter().map(|(id, _)| id).collect();
        if !standing.is_empty() {
            let t = Instant::now();
            let ids = standing.into_iter().map(|(id, _)| id).collect();
            self.recheck(store, ids, config).await?;
            report.load_us += t.elapsed().as_secs_f64() * 1e6;
        }
        // People not held are loaded together here rather than one by one as their
        // events come (on PostgreSQL: five statements for all instead of six round
        // trips each).
        let cold: BTreeSet<ProfileId> = events
            .iter()
            .filter_map(|ev| canonical.get(&ev.profile_id).map(|&id| (id, ev.profile_id)))
            .filter(|(id, raw)| !self.people.get(id).is_some_and(|c| c.members.contains(raw)))
            .map(|(id, _)| id)
            .collect();
        if !cold.is_empty() {
            let t = Instant::now();
            self.load(store, cold.into_iter().collect(), config, true)
                .await?;
            report.load_us += t.elapsed().as_secs_f64() * 1e6;
        }
        // Held states past their TTL are checked against their profiles, read together
        // here rather than one read per person as their events come.
        let expired: BTreeSet<ProfileId> = events
            .iter()
            .filter_map(|ev| canonical.get(&ev.profile_id).copied())
            .filter(|id| {
                !views.contains_key(id)
                    && self
                        .people
                        .get(id)
                        .is_some_and(|c| c.loaded.elapsed() >= self.ttl)
            })
            .collect();
        // With the scores of those a score run changed, at once: after a score run most
        // returning people need both.
        let t = Instant::now();
        let (profiles, scores) = tokio::try_join!(
            async {
                if expired.is_empty() {
                    Ok(Vec::new())
                } else {
                    store.profiles(expired.iter().copied().collect()).await
                }
            },
            async {
                if rescore.is_empty() {
                    Ok(None)
                } else {
                    read_scores(store, rescore.clone()).await.map(Some)
                }
            },
        )?;
        if let Some(scores) = scores {
            report.checks += rescore.len();
            self.rescore(rescore, scores);
            report.load_us += t.elapsed().as_secs_f64() * 1e6;
        }
        let read_views;
        let views = if expired.is_empty() {
            views
        } else {
            let mut all = views.clone();
            all.extend(profiles.into_iter().map(|v| (v.id, v)));
            read_views = all;
            &read_views
        };
        // Latest membership per (person, segment) decided in this step (after what the
        // previous one carried: not in the store yet, so applied to states loaded now).
        let (mut membership, mut effects) = carried;
        let mut own = Vec::with_capacity(events.len());
        for ev in events {
            let t = Instant::now();
            if let Some(&id) = canonical.get(&ev.profile_id) {
                self.decide_event(
                    store,
                    config,
                    ev,
                    id,
                    views,
                    now,
                    &mut membership,
                    &mut effects,
                    report,
                    false,
                )
                .await?;
            }
            own.push(t.elapsed().as_secs_f64() * 1e6);
        }
        // A text changes sentiment and complaint conditions: reload, then decide.
        for (_, raw) in texts {
            let Some(&id) = canonical.get(raw) else {
                continue;
            };
            // The texts are in the store, not in the event: a full reload.
            self.people.remove(&id);
            self.ensure(store, id, *raw, false, views, config).await?;
            report.loads += 1;
            if let Some(c) = self.people.get_mut(&id) {
                pending(config, id, c, &membership, &effects);
                c.stale.add(Stale::All);
                evaluate(config, id, c, &[], now, &mut membership);
                if !config.offers.is_empty() {
                    offers::decide_in_memory(&config.offers, id, &mut c.person, now, &mut effects);
                }
            }
        }
        Self::add_decisions((membership, effects), writes);
        Ok(own)
    }

    /// Decides one event of person `id`. `own_event`: a membership event this engine
    /// just wrote, already applied, so only rules see it, and it joins the person's
    /// history without moving the state's position (events the step did not read may
    /// have smaller ids).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn decide_event(
        &mut self,
        store: &DynStore,
        config: &Config,
        ev: &EventView,
        id: ProfileId,
        views: &HashMap<ProfileId, ProfileView>,
        now: Millis,
        membership: &mut BTreeMap<(ProfileId, i64), bool>,
        effects: &mut Effects,
        report: &mut StepReport,
        own_event: bool,
    ) -> Result<(), StoreError> {
        let reload = reloads(ev);
        let tl = Instant::now();
        // A membership event is written with the person's id, itself one of its profiles.
        let held = self
            .ensure(store, id, ev.profile_id, reload, views, config)
            .await?;
        report.load_us += tl.elapsed().as_secs_f64() * 1e6;
        let Some(c) = self.people.get_mut(&id) else {
            return Ok(());
        };
        match held {
            Held::Loaded => report.loads += 1,
            Held::Checked => report.checks += 1,
            Held::Kept => {}
        }
        // A state read now, or with its traits re-read, lacks this step's decisions.
        if held != Held::Kept {
            pending(config, id, c, membership, effects);
        }
        let lite = rules::as_event(ev);
        // Memberships this engine wrote are already applied.
        let decide = ev.source != "segments";
        // Which selectors this event matches, tested once for the index and the plans.
        let matched: Vec<bool> = config
            .selectors
            .iter()
            .map(|s| eval::event_matches(s, &lite))
            .collect();
        if ev.id > c.upto {
            // Kept as a load would read it.
            if config.membership_history || !is_membership(ev) {
                let pos = c.person.events.len() as u32;
                if let Some(ix) = c.person.index.as_mut() {
                    for (list, _) in ix.lists.iter_mut().zip(&matched).filter(|(_, m)| **m) {
                        list.push(pos);
                    }
                }
                c.person.events.push(lite);
            }
            // The ledger's own events carry what changed (lots made, what each holds
            // after): the held points follow without a re-read.
            if ev.source == crate::loyalty::SOURCE {
                if let Some(name) = &ev.name {
                    c.person.loyalty.follow(name, &ev.properties);
                    c.stale.add(Stale::Profile);
                    // Points earned with a step's commit: the tier goes up now.
                    if name == "Points Earned" && !own_event {
                        let settings = effects.loyalty(store).await?.clone();
                        crate::loyalty::after_earning(store, &settings, id).await?;
                    }
                }
            }
            if !own_event {
                c.upto = ev.id;
            }
        }
        // Whether or not the held state already had this event (a person loaded now
        // has it): each is idempotent.
        if !own_event {
            // A token moved: a token-gated tier may be reached or left.
            if config.gated_tiers && ev.source == crate::chain::SOURCE {
                let settings = effects.loyalty(store).await?.clone();
                crate::loyalty::after_earning(store, &settings, id).await?;
            }
            if let Some(r) = &config.referrals {
                if ev.source != crate::loyalty::SOURCE {
                    crate::referrals::follow(store, r, id, ev).await?;
                }
            }
        }
        let patches = effects.patched();
        if decide {
            evaluate(config, id, c, &matched, now, membership);
            if !config.offers.is_empty() {
                offers::decide_in_memory(&config.offers, id, &mut c.person, now, effects);
            }
        }
        if ev.source != rules::SOURCE
            && ev.received_at.timestamp_millis() >= config.rules_saved_at
            && !config.rules.is_empty()
        {
            rules::fire(
                store,
                &config.rules,
                id,
                ev,
                &mut c.person,
                &mut c.fired,
                &matched,
                now,
                effects,
            )
            .await?;
        }
        // A trait an offer or rule set may be in any definition.
        if effects.patched() != patches {
            c.stale.add(Stale::Profile);
            evaluate(config, id, c, &[], now, membership);
        }
        Ok(())
    }
}
