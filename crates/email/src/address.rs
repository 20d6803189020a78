//! Which of a person's addresses a send goes to: one address per person, by a rule a
//! person can read (docs/email.md, "Which address").

use rapport_domain::time::Millis;

/// One of a person's e-mail addresses and what is known of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub address: String,
    /// The customer chose it as their primary address.
    pub primary: bool,
    /// The last open or click of a message sent to it.
    pub last_engaged: Option<Millis>,
    /// Hard-bounced, complained or suppressed by staff.
    pub suppressed: bool,
    /// When Rapport first saw it.
    pub first_seen: Millis,
}

/// Why an address was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Primary,
    Engaged,
    Newest,
    /// Every address is suppressed: this one is named so the skip can be reported.
    AllSuppressed,
}

impl Reason {
    /// The name the API and stored messages use.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Primary => "primary",
            Reason::Engaged => "engaged",
            Reason::Newest => "newest",
            Reason::AllSuppressed => "all_suppressed",
        }
    }

    /// What staff read.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Primary => "the customer's chosen address",
            Reason::Engaged => "the address they last opened or clicked",
            Reason::Newest => "their newest address",
            Reason::AllSuppressed => "every address is suppressed: nothing is sent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub address: String,
    pub reason: Reason,
}

/// The primary address unless it is suppressed; else the most recently engaged address
/// that is not suppressed; else the newest that is not; else (all suppressed) the newest.
/// Ties go to the address that sorts first, so the choice never flips between two sends.
pub fn choose(candidates: &[Candidate]) -> Option<Choice> {
    let live: Vec<&Candidate> = candidates.iter().filter(|c| !c.suppressed).collect();
    let pick = |c: &Candidate, reason| Choice {
        address: c.address.clone(),
        reason,
    };
    if let Some(c) = live.iter().find(|c| c.primary) {
        return Some(pick(c, Reason::Primary));
    }
    let newest = |cs: &[&Candidate]| {
        cs.iter()
            .copied()
            .max_by(|a, b| {
                a.first_seen
                    .cmp(&b.first_seen)
                    .then_with(|| b.address.cmp(&a.address))
            })
            .cloned()
    };
    let engaged = live
        .iter()
        .copied()
        .filter(|c| c.last_engaged.is_some())
        .max_by(|a, b| {
            a.last_engaged
                .cmp(&b.last_engaged)
                .then_with(|| b.address.cmp(&a.address))
        });
    if let Some(c) = engaged {
        return Some(pick(c, Reason::Engaged));
    }
    if let Some(c) = newest(&live) {
        return Some(pick(&c, Reason::Newest));
    }
    let all: Vec<&Candidate> = candidates.iter().collect();
    newest(&all).map(|c| pick(&c, Reason::AllSuppressed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(
        a: &str,
        primary: bool,
        engaged: Option<Millis>,
        suppressed: bool,
        seen: Millis,
    ) -> Candidate {
        Candidate {
            address: a.into(),
            primary,
            last_engaged: engaged,
            suppressed,
            first_seen: seen,
        }
    }

    fn chosen(cs: &[Candidate]) -> (String, Reason) {
        let ch = choose(cs).unwrap();
        (ch.address, ch.reason)
    }

    #[test]
    fn the_rule_in_order() {
        assert_eq!(choose(&[]), None);
        for r in [
            Reason::Primary,
            Reason::Engaged,
            Reason::Newest,
            Reason::AllSuppressed,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
            assert!(!r.describe().is_empty());
        }
        let a = c("a@x", false, Some(5), false, 1);
        let b = c("b@x", false, Some(9), false, 2);
        let p = c("p@x", true, None, false, 0);
        let n = c("n@x", false, None, false, 30);
        assert_eq!(
            chosen(&[a.clone(), b.clone(), p.clone(), n.clone()]),
            ("p@x".into(), Reason::Primary)
        );
        assert_eq!(
            chosen(&[a.clone(), b.clone(), n.clone()]),
            ("b@x".into(), Reason::Engaged)
        );
        assert_eq!(
            chosen(&[n.clone(), c("m@x", false, None, false, 10)]),
            ("n@x".into(), Reason::Newest)
        );
        // A suppressed primary falls through; a suppressed engaged address too.
        let ps = c("p@x", true, None, true, 0);
        let bs = c("b@x", false, Some(9), true, 2);
        assert_eq!(
            chosen(&[a.clone(), bs.clone(), ps.clone()]),
            ("a@x".into(), Reason::Engaged)
        );
        assert_eq!(
            chosen(&[bs.clone(), ps.clone(), n.clone()]),
            ("n@x".into(), Reason::Newest)
        );
        assert_eq!(chosen(&[bs, ps]), ("b@x".into(), Reason::AllSuppressed));
        // Ties: the first address in order, whatever the input order.
        let t1 = c("t1@x", false, Some(4), false, 3);
        let t2 = c("t2@x", false, Some(4), false, 3);
        assert_eq!(chosen(&[t2.clone(), t1.clone()]).0, "t1@x");
        assert_eq!(chosen(&[t1.clone(), t2.clone()]).0, "t1@x");
        let u1 = c("u1@x", false, None, false, 3);
        let u2 = c("u2@x", false, None, false, 3);
        assert_eq!(chosen(&[u2.clone(), u1.clone()]).0, "u1@x");
        assert_eq!(chosen(&[u1, u2]).0, "u1@x");
    }
}
