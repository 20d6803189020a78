//! Work done while no events wait: re-reading what announcements marked, and reading ahead
//! the most recently active people after a start.

use super::*;

impl Engine {
    /// While no events wait (`rapport serve` calls it at each idle poll), does for up to
    /// `people` people, together, what their next event would otherwise wait for:
    /// 1. held states marked by [`touched`] or [`scores_changed`] (the 15-minute score
    ///    run and refresh mark everyone) have their standing or scores re-read now;
    /// 2. then the states of the most recently active people not held are read ahead,
    ///    so that after a restart, or after redefined segments or a re-org dropped every
    ///    state, their next event finds them held instead of paying a whole load (1–2
    ///    ms; a held state past its TTL costs a profile re-read). Newest activity first,
    ///    up to nine tenths of the capacity.
    ///
    /// Returns how many people it read, or `None` when nothing is left to do (until
    /// people are marked, or every state dropped, again).
    pub async fn warm(
        &mut self,
        store: &DynStore,
        people: usize,
    ) -> Result<Option<usize>, StoreError> {
        if self.warm.is_none() && self.people.is_empty() {
            return Ok(None);
        }
        // Definitions and counters as a step would see them, so the states read now are
        // not dropped or re-read at the next step for being older than them.
        let names = [SETTINGS_VERSION, GENERATION, SCORES, RESET]
            .map(String::from)
            .to_vec();
        let (counters, stamps) = tokio::try_join!(store.counters(names), store.segment_stamps())?;
        let &[settings_version, generation, scores, reset] = counters.as_slice() else {
            return Err(StoreError::Backend(
                "counters: wrong number of values".into(),
            ));
        };
        self.refresh_config(store, (settings_version, stamps))
            .await?;
        self.check_generation(generation, scores, reset);
        let Some(config) = self.config.take() else {
            return Ok(None);
        };
        let result = self.warm_with(store, people, &config).await;
        self.config = Some(config);
        if result.is_err() {
            // Held states may be part-read: start over.
            self.drop_all();
        }
        result
    }

    pub(super) async fn warm_with(
        &mut self,
        store: &DynStore,
        people: usize,
        config: &Config,
    ) -> Result<Option<usize>, StoreError> {
        let mut standing = Vec::new();
        let mut scores = Vec::new();
        while standing.len() + scores.len() < people.max(1) {
            let Some(id) = self.marked.pop() else {
                break;
            };
            // Re-read already at an event, or gone: nothing to do.
            match self.people.get(&id).and_then(|c| c.recheck) {
                Some(Recheck::Standing) => standing.push(id),
                Some(Recheck::Scores) => scores.push(id),
                None => {}
            }
        }
        if !standing.is_empty() || !scores.is_empty() {
            let n = standing.len() + scores.len();
            if !scores.is_empty() {
                let read = read_scores(store, scores.clone()).await?;
                self.rescore(scores, read);
            }
            if !standing.is_empty() {
                self.recheck(store, standing.clone(), config).await?;
                // Read before any event: nothing of a step to apply at the next one.
                for id in &standing {
                    if let Some(c) = self.people.get_mut(id) {
                        c.ahead = None;
                    }
                }
            }
            store.release_memory().await?;
            return Ok(Some(n));
        }
        let room = (self.capacity * 9 / 10).saturating_sub(self.people.len());
        let Some(before) = self.warm.filter(|_| room > 0 && !config.idle()) else {
            self.warm = None;
            return Ok(None);
        };
        let want = people.min(room).max(1);
        let found = store.recent_people(before, WARM_SCAN).await?;
        let mut ids = Vec::new();
        let mut seen = HashSet::new();
        // Where the next call scans on from: below the last event whose person is taken
        // (or left as held), so people past `want` are found again.
        let mut next = found.next;
        for &(event, id) in &found.people {
            if self.people.contains_key(&id) || !seen.insert(id) {
                continue;
            }
            if ids.len() == want {
                next = Some(event + 1);
                break;
            }
            ids.push(id);
        }
        self.warm = next;
        let n = ids.len();
        if n > 0 {
            self.load(store, ids, config, false).await?;
            // On SQLite the pages those reads cached would be dropped one by one at the
            // next read after a write, in a step: dropped now, while idle.
            store.release_memory().await?;
        }
        Ok(Some(n))
    }

    /// Nothing new was read: what may be left is the position past the engine's own
    /// events, and what deciding them decided. Decisions are written at once. A bare
    /// position move waits for the next step's commit (which writes it anyway), or for
    /// the next empty read, so the poll that ends a burst costs no commit. A restart
    /// before it decides those events again, as after any crash before a commit.
    pub(super) async fn idle(
        &mut self,
        store: &DynStore,
        mut report: StepReport,
    ) -> Result<StepReport, StoreError> {
        let Some(&last) = self.skip.last() else {
            return Ok(report);
        };
        let decided = self.carry.as_ref().is_some_and(decided_anything);
        if !decided && !self.idle_once {
            self.idle_once = true;
            return Ok(report);
        }
        self.flush_position(store, last, &mut report).await?;
        Ok(report)
    }
}
