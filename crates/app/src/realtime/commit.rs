//! A step's decisions written in one transaction (`RealtimeStore::commit_step`), and the
//! membership events that commit wrote decided at once rather than read back.

use super::*;

/// Latest membership per (person, segment), and the other writes, decided in a step.
pub(super) type Carry = (BTreeMap<(ProfileId, i64), bool>, Effects);

/// Whether a carry has anything to write.
pub(super) fn decided_anything((membership, effects): &Carry) -> bool {
    !membership.is_empty() || !effects.is_empty()
}

impl Engine {
    /// Writes what is carried with the position past the events left out.
    pub(super) async fn flush_position(
        &mut self,
        store: &DynStore,
        last: i64,
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        let mut writes = StepWrites::default();
        if let Some(carry) = self.carry.take() {
            Self::add_decisions(carry, &mut writes);
        }
        writes.counters.push((SEGMENT_CURSOR.to_string(), last));
        report.firings += writes.firings.len();
        let tw = Instant::now();
        store.commit_step(writes, now_millis()).await?;
        report.write_us = tw.elapsed().as_secs_f64() * 1e6;
        self.skip.clear();
        self.idle_once = false;
        Ok(())
    }

    /// Commits the step's writes, then decides the membership events that commit wrote:
    /// they are already applied, but rules may fire on them and they join each person's
    /// history. What they decided is committed at once, with the position past them,
    /// when nothing else was written since the step's read; otherwise it rides on the
    /// next step's commit, and the next read leaves them out. A step that did not catch up (a full
    /// read: the engine lags) leaves them to be read back in order, as does a skip list
    /// grown past [`MAX_SKIP`], so what the next reads leave out stays small.
    pub(super) async fn commit_and_follow(
        &mut self,
        store: &DynStore,
        config: &Config,
        position: Option<i64>,
        caught_up: bool,
        writes: StepWrites,
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        let tw = Instant::now();
        report.firings = writes.firings.len();
        let done = store.commit_step(writes, now_millis()).await?;
        for (_, c) in &done.memberships {
            report.membership_changes += c.entered.len() + c.exited.len();
        }
        report.write_us = tw.elapsed().as_secs_f64() * 1e6;
        if done.events.is_empty() || !caught_up || self.skip.len() + done.events.len() > MAX_SKIP {
            return Ok(());
        }
        let now = now_millis();
        let mut membership = BTreeMap::new();
        let mut effects = Effects::default();
        let no_views = HashMap::new();
        for ev in &done.events {
            self.decide_event(
                store,
                config,
                ev,
                ev.profile_id,
                &no_views,
                now,
                &mut membership,
                &mut effects,
                report,
                true,
            )
            .await?;
        }
        report.derived = done.events.len();
        let carry = (membership, effects);
        if !decided_anything(&carry) || position.is_none_or(|p| p < done.before) {
            // Events came in since the step's read, so another step follows soon: its
            // commit writes these decisions and moves the position past them (its read
            // takes everything after the position, and leaves them out). Under load, one
            // commit per step, which matters with SQLite's single writer. With nothing
            // decided, only the position is left to move: that waits too (see `idle`).
            self.skip.extend(done.events.iter().map(|e| e.id));
            self.skip.sort_unstable();
            self.carry = Some(carry);
            return Ok(());
        }
        // Quiet: their decisions now, with the position past them (nothing else was
        // written after the step's read).
        let mut follow = StepWrites::default();
        Self::add_decisions(carry, &mut follow);
        if let Some(last) = done.events.last() {
            follow.counters.push((SEGMENT_CURSOR.to_string(), last.id));
        }
        report.firings += follow.firings.len();
        let tw = Instant::now();
        // Membership events this commit writes are read and decided by the next step.
        let more = store.commit_step(follow, now).await?;
        for (_, c) in &more.memberships {
            report.membership_changes += c.entered.len() + c.exited.len();
        }
        report.write_us += tw.elapsed().as_secs_f64() * 1e6;
        Ok(())
    }

    /// Decisions as writes: memberships by segment, then firings, traits and static
    /// memberships.
    pub(super) fn add_decisions((membership, effects): Carry, writes: &mut StepWrites) {
        Self::membership_writes(membership, writes);
        effects.into_writes(writes);
    }

    pub(super) fn membership_writes(
        membership: BTreeMap<(ProfileId, i64), bool>,
        writes: &mut StepWrites,
    ) {
        let mut by_segment: BTreeMap<i64, MembershipChange> = BTreeMap::new();
        for ((id, seg), inside) in membership {
            let m = by_segment.entry(seg).or_default();
            if inside {
                m.entered.push(id);
            } else {
                m.exited.push(id);
            }
        }
        writes.memberships.extend(by_segment);
    }
}
