//! Segments, rules and offers compiled once per version of their definitions, and which
//! events make the engine reload a person or skip its own membership events.

use super::*;

/// Events that may change the profile itself (traits, identities, merges).
pub(super) const RELOADS: [&str; 3] = ["identify", "alias", "group"];

/// Also any event that set traits on the way: `context.traits`, or a campaign (the
/// person's first and last touch).
pub(super) fn reloads(e: &EventView) -> bool {
    RELOADS.contains(&e.kind.as_str())
        || e.context.get("traits").is_some_and(Value::is_object)
        || rapport_domain::web::may_have_campaign(&e.context)
}

/// A `Segment Entered`/`Exited` event the engine or a batch refresh wrote.
pub(super) fn is_membership(e: &EventView) -> bool {
    e.source == "segments"
        && e.kind == "track"
        && matches!(
            e.name.as_deref(),
            Some("Segment Entered" | "Segment Exited")
        )
}

/// Whether a selector may match a membership event (its property filters aside).
pub(super) fn may_select_membership(s: &EventSel) -> bool {
    s.kind.as_deref().is_none_or(|k| k == "track")
        && s.name
            .as_deref()
            .is_none_or(|n| n == "Segment Entered" || n == "Segment Exited")
}

pub(super) struct Config {
    pub(super) signature: (i64, Vec<(i64, Millis)>),
    pub(super) segments: Vec<Plan>,
    /// Every distinct event selector the segments read, in slot order.
    pub(super) selectors: Vec<EventSel>,
    pub(super) rules: Vec<CompiledRule>,
    pub(super) rules_saved_at: Millis,
    pub(super) offers: Vec<CompiledOffer>,
    /// The longest cap window, how far back firings are loaded.
    pub(super) cap_window: Millis,
    /// Whether a definition, rule condition or offer may read the engine's own
    /// `Segment Entered`/`Exited` events from a person's history; when none does, they
    /// are neither loaded nor kept (after a while they are most of a person's events).
    pub(super) membership_history: bool,
    /// A loyalty tier is reached by holding a token: a person's on-chain events make
    /// the engine look at their tier.
    pub(super) gated_tiers: bool,
    /// The referral programme, when it is on: every event is looked at for a code or a
    /// conversion.
    pub(super) referrals: Option<crate::referrals::ReferralSettings>,
}

impl Config {
    pub(super) fn idle(&self) -> bool {
        self.segments.is_empty()
            && self.rules.is_empty()
            && self.offers.is_empty()
            && !self.gated_tiers
            && self.referrals.is_none()
    }

    /// Indexes of the segments named (through a set: a person may be in a hundred of
    /// two hundred segments).
    pub(super) fn inside(&self, names: &[String]) -> HashSet<usize> {
        let names: HashSet<&str> = names.iter().map(String::as_str).collect();
        self.segments
            .iter()
            .enumerate()
            .filter(|(_, s)| names.contains(s.row.name.as_str()))
            .map(|(i, _)| i)
            .collect()
    }
}

impl Engine {
    /// Re-reads segments, rules and offers when they changed since the last step (the
    /// settings version and every segment's `updated_at`, read per step, say so).
    pub(super) async fn refresh_config(
        &mut self,
        store: &DynStore,
        signature: (i64, Vec<(i64, Millis)>),
    ) -> Result<(), StoreError> {
        if self
            .config
            .as_ref()
            .is_some_and(|c| c.signature == signature)
        {
            return Ok(());
        }
        let rows = store.segment_definitions().await?;
        let ordered = segments::in_order(rows)?;
        let mut segments: Vec<Plan> = Vec::with_capacity(ordered.len());
        let mut table = Vec::new();
        for (row, mut expr) in ordered {
            assign_slots(&mut expr, &mut table);
            let refs = referenced_segments(&expr)
                .iter()
                .filter_map(|n| segments.iter().position(|p| &p.row.name == n))
                .collect();
            let slots = referenced_selectors(&expr)
                .into_iter()
                .filter_map(|s| s.slot.map(|x| x as usize))
                .collect();
            segments.push(Plan {
                reads: ProfileReads::of(&expr),
                row,
                expr,
                slots,
                refs,
            });
        }
        // Rules' and offers' conditions read the same index.
        let (mut rules, rules_saved_at) = rules::compiled(store).await?;
        let mut offers = offers::compiled(store).await?;
        for r in &mut rules {
            r.slot(&mut table);
        }
        for o in &mut offers {
            o.slot(&mut table);
        }
        let membership_history = segments
            .iter()
            .flat_map(|p| referenced_selectors(&p.expr))
            .chain(rules.iter().flat_map(|r| r.history_selectors()))
            .chain(offers.iter().flat_map(|o| o.history_selectors()))
            .any(may_select_membership);
        let cap_window = rules
            .iter()
            .filter_map(|r| r.rule.cap.as_ref())
            .map(|c| c.per_hours * 3_600_000)
            .max()
            .unwrap_or(0);
        self.config = Some(Config {
            signature,
            segments,
            selectors: table,
            rules,
            rules_saved_at,
            offers,
            cap_window,
            membership_history,
            // Loyalty settings are saved like any setting: the version moves with them.
            gated_tiers: crate::loyalty::settings(store).await?.tier_rules().gated(),
            referrals: Some(crate::referrals::settings(store).await?).filter(|r| r.enabled),
        });
        // Memberships of removed or redefined segments are stale in memory.
        self.drop_all();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_events_are_kept_only_for_selectors_that_may_match_them() {
        let sels = |src: &str| {
            let e = rapport_segment::parse(src).expect(src);
            referenced_selectors(&e)
                .into_iter()
                .any(may_select_membership)
        };
        assert!(!sels(
            "count(track \"Order Completed\") >= 1 and count(page) >= 2"
        ));
        assert!(sels("count(track \"Segment Entered\") >= 1"));
        assert!(sels("days_since(track \"Segment Exited\") <= 3"));
        // Any track event, or any event at all, may be one.
        assert!(sels("count(track) >= 10"));
    }
}
