//! Support tickets, the pure part: statuses and how replies move them, priorities, the
//! ticket number in a subject (`[#1234]`), the subject of a reply, the Message-IDs a
//! reply refers to, and the limits on what a customer or an agent may write.

use crate::message::FieldError;

/// At most this many characters in a ticket's subject.
pub const MAX_SUBJECT: usize = 300;
/// At most this many characters in one message of a ticket (a long e-mail is cut, with
/// a note, rather than refused: it was already sent).
pub const MAX_BODY: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting on the brand.
    Open,
    /// Waiting on the customer.
    Pending,
    /// Put aside until a date or the customer's next reply.
    Snoozed,
    Resolved,
    Closed,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Open,
        Status::Pending,
        Status::Snoozed,
        Status::Resolved,
        Status::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Pending => "pending",
            Status::Snoozed => "snoozed",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Status, FieldError> {
        Status::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                FieldError::new(
                    field,
                    format!("`{s}`: use open, pending, snoozed, resolved or closed"),
                )
            })
    }

    /// Still needs someone (the brand or the customer).
    pub fn is_active(self) -> bool {
        matches!(self, Status::Open | Status::Pending | Status::Snoozed)
    }

    /// Where a ticket goes when the customer writes: always back to the brand. A reply
    /// to a resolved or closed ticket reopens it — it never starts a new one.
    pub fn on_customer_reply(self) -> Status {
        Status::Open
    }

    /// Where a ticket goes when an agent answers: waiting on the customer, unless the
    /// agent resolved or closed it with the answer.
    pub fn on_staff_reply(self, then: Option<Status>) -> Status {
        then.unwrap_or(Status::Pending)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Priority, FieldError> {
        Priority::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                FieldError::new(field, format!("`{s}`: use low, normal, high or urgent"))
            })
    }
}

/// A service-level policy for one priority: how soon the first staff reply and the
/// resolution are due after a ticket is opened, in minutes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Sla {
    pub first_response_minutes: i64,
    pub resolution_minutes: i64,
}

impl Sla {
    /// The policies a brand starts with: urgent 1 h / 4 h, high 4 h / 1 day, normal
    /// 8 h / 3 days, low 1 day / 7 days.
    pub fn default_for(p: Priority) -> Sla {
        let (f, r) = match p {
            Priority::Urgent => (60, 240),
            Priority::High => (240, 1_440),
            Priority::Normal => (480, 4_320),
            Priority::Low => (1_440, 10_080),
        };
        Sla {
            first_response_minutes: f,
            resolution_minutes: r,
        }
    }

    pub fn check(&self, field: &str) -> Result<(), FieldError> {
        let ok = |m: i64| (1..=525_600).contains(&m);
        if !ok(self.first_response_minutes) || !ok(self.resolution_minutes) {
            return Err(FieldError::new(field, "minutes from 1 to 525,600 (a year)"));
        }
        if self.resolution_minutes < self.first_response_minutes {
            return Err(FieldError::new(
                field,
                "the resolution cannot be due before the first response",
            ));
        }
        Ok(())
    }
}

/// Which promise a deadline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    FirstResponse,
    Resolution,
}

impl Due {
    pub fn as_str(self) -> &'static str {
        match self {
            Due::FirstResponse => "first_response",
            Due::Resolution => "resolution",
        }
    }
}

/// The next promise a ticket has not kept yet, and when it is due: the first response
/// until staff have answered; then the resolution while the ticket waits on the brand
/// (`open`) — a ticket waiting on the customer (`pending`, `snoozed`) or done owes
/// nothing.
pub fn next_due(
    sla: &Sla,
    status: Status,
    created_at: i64,
    first_response_at: Option<i64>,
) -> Option<(Due, i64)> {
    if !status.is_active() {
        return None;
    }
    if first_response_at.is_none() {
        return Some((
            Due::FirstResponse,
            created_at + sla.first_response_minutes * 60_000,
        ));
    }
    (status == Status::Open).then_some((
        Due::Resolution,
        created_at + sla.resolution_minutes * 60_000,
    ))
}

/// The ticket number a subject carries as `[#1234]` (the first such tag).
pub fn number_in_subject(subject: &str) -> Option<i64> {
    let mut rest = subject;
    while let Some(i) = rest.find("[#") {
        let after = &rest[i + 2..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && after[digits.len()..].starts_with(']') && digits.len() <= 12 {
            return digits.parse().ok();
        }
        rest = after;
    }
    None
}

/// The subject of a reply on ticket `number`: one `Re:`, one `[#number]`, the rest as
/// the customer wrote it.
pub fn reply_subject(number: i64, subject: &str) -> String {
    let tag = format!("[#{number}]");
    let mut s = subject.trim();
    loop {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("re:") || lower.starts_with("aw:") || lower.starts_with("sv:") {
            s = s[3..].trim_start();
        } else if lower.starts_with("fwd:") {
            s = s[4..].trim_start();
        } else {
            break;
        }
    }
    let s = s.replace(&tag, "");
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.is_empty() {
        format!("Re: {tag}")
    } else {
        format!("Re: {tag} {s}")
    }
}

/// The Message-IDs an e-mail refers to, nearest first: `In-Reply-To`, then `References`
/// from its end (the thread's newest message last there). Each as `<id>`.
pub fn referred_ids(in_reply_to: &[String], references: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in in_reply_to.iter().chain(references.iter().rev()) {
        let id = normalize_message_id(id);
        if !id.is_empty() && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// A Message-ID as `<local@domain>` (brackets added if the parser took them off).
pub fn normalize_message_id(id: &str) -> String {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    if id.is_empty() {
        String::new()
    } else {
        format!("<{id}>")
    }
}

/// A subject as stored: trimmed, one line, within [`MAX_SUBJECT`]; empty is refused.
pub fn subject(field: &str, s: &str) -> Result<String, FieldError> {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.is_empty() {
        return Err(FieldError::new(field, "a subject is required"));
    }
    if s.chars().count() > MAX_SUBJECT {
        return Err(FieldError::new(
            field,
            format!("at most {MAX_SUBJECT} characters"),
        ));
    }
    Ok(s)
}

/// A message body typed through the API or the app: within [`MAX_BODY`]; empty refused.
pub fn body(field: &str, s: &str) -> Result<String, FieldError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(FieldError::new(field, "the message is empty"));
    }
    if s.chars().count() > MAX_BODY {
        return Err(FieldError::new(
            field,
            format!("at most {MAX_BODY} characters"),
        ));
    }
    Ok(s.to_string())
}

/// A body that arrived by e-mail: kept, cut at [`MAX_BODY`] with a note.
pub fn body_received(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= MAX_BODY {
        return s.to_string();
    }
    let cut: String = s.chars().take(MAX_BODY).collect();
    format!("{cut}\n[… cut at {MAX_BODY} characters]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers_are_read_from_subjects() {
        assert_eq!(number_in_subject("Re: [#1234] My order"), Some(1234));
        assert_eq!(number_in_subject("[#7]"), Some(7));
        assert_eq!(number_in_subject("Re: [#x] and [#42] too"), Some(42));
        assert_eq!(number_in_subject("#1234 no brackets"), None);
        assert_eq!(number_in_subject("[#] [#12"), None);
        assert_eq!(number_in_subject("[#1234567890123]"), None);
    }

    #[test]
    fn reply_subjects_have_one_re_and_one_tag() {
        assert_eq!(reply_subject(12, "My order"), "Re: [#12] My order");
        assert_eq!(
            reply_subject(12, "Re: RE: [#12] My order"),
            "Re: [#12] My order"
        );
        assert_eq!(
            reply_subject(12, "AW: Fwd: My  order"),
            "Re: [#12] My order"
        );
        assert_eq!(reply_subject(3, "  "), "Re: [#3]");
        assert_eq!(number_in_subject(&reply_subject(99, "x [#98]")), Some(99));
    }

    #[test]
    fn replies_move_tickets() {
        for s in Status::ALL {
            assert_eq!(s.on_customer_reply(), Status::Open, "{s:?}");
            assert_eq!(s.on_staff_reply(None), Status::Pending);
            assert_eq!(s.on_staff_reply(Some(Status::Resolved)), Status::Resolved);
        }
        assert!(Status::Snoozed.is_active() && !Status::Resolved.is_active());
        assert!(!Status::Closed.is_active() && Status::Open.is_active());
        assert!(Status::Pending.is_active());
    }

    #[test]
    fn statuses_and_priorities_parse_or_name_the_field() {
        for s in Status::ALL {
            assert_eq!(Status::parse("status", s.as_str()).unwrap(), s);
        }
        assert_eq!(Status::parse("status", "done").unwrap_err().field, "status");
        for p in Priority::ALL {
            assert_eq!(Priority::parse("priority", p.as_str()).unwrap(), p);
        }
        assert_eq!(
            Priority::parse("priority", "asap").unwrap_err().field,
            "priority"
        );
        assert!(Priority::Urgent > Priority::High && Priority::Low < Priority::Normal);
    }

    #[test]
    fn deadlines_follow_who_is_waiting() {
        let sla = Sla {
            first_response_minutes: 60,
            resolution_minutes: 240,
        };
        let h = 3_600_000;
        assert_eq!(
            next_due(&sla, Status::Open, 0, None),
            Some((Due::FirstResponse, h))
        );
        // Waiting on the customer still owes the first answer if there was none.
        assert_eq!(
            next_due(&sla, Status::Pending, 0, None),
            Some((Due::FirstResponse, h))
        );
        assert_eq!(
            next_due(&sla, Status::Open, 0, Some(5)),
            Some((Due::Resolution, 4 * h))
        );
        assert_eq!(next_due(&sla, Status::Pending, 0, Some(5)), None);
        assert_eq!(next_due(&sla, Status::Snoozed, 0, Some(5)), None);
        assert_eq!(next_due(&sla, Status::Resolved, 0, None), None);
        assert_eq!(next_due(&sla, Status::Closed, 0, None), None);
        assert_eq!(Due::FirstResponse.as_str(), "first_response");
        assert_eq!(Due::Resolution.as_str(), "resolution");
    }

    #[test]
    fn policies_are_checked() {
        for p in Priority::ALL {
            Sla::default_for(p).check("sla").unwrap();
        }
        assert!(
            Sla::default_for(Priority::Urgent).first_response_minutes
                < Sla::default_for(Priority::Low).first_response_minutes
        );
        let bad = |f, r| {
            Sla {
                first_response_minutes: f,
                resolution_minutes: r,
            }
            .check("sla.high")
            .unwrap_err()
            .field
        };
        assert_eq!(bad(0, 10), "sla.high");
        assert_eq!(bad(10, 5), "sla.high");
        assert_eq!(bad(10, 525_601), "sla.high");
        assert!(Sla {
            first_response_minutes: 1,
            resolution_minutes: 1
        }
        .check("x")
        .is_ok());
        assert!(Sla {
            first_response_minutes: 525_600,
            resolution_minutes: 525_600
        }
        .check("x")
        .is_ok());
    }

    #[test]
    fn message_ids_nearest_first() {
        let ids = referred_ids(
            &["<c@x>".into()],
            &["<a@x>".into(), "b@x".into(), "<c@x>".into()],
        );
        assert_eq!(ids, ["<c@x>", "<b@x>", "<a@x>"]);
        assert_eq!(normalize_message_id("  "), "");
        assert!(referred_ids(&[" ".into()], &[]).is_empty());
    }

    #[test]
    fn subjects_and_bodies_are_checked() {
        assert_eq!(subject("subject", " My \n order ").unwrap(), "My order");
        assert_eq!(subject("subject", " ").unwrap_err().field, "subject");
        assert!(subject("subject", &"x".repeat(MAX_SUBJECT + 1)).is_err());
        assert!(subject("subject", &"x".repeat(MAX_SUBJECT)).is_ok());
        assert_eq!(body("body", "\n").unwrap_err().field, "body");
        assert!(body("body", &"é".repeat(MAX_BODY)).is_ok());
        assert!(body("body", &"é".repeat(MAX_BODY + 1)).is_err());
        assert_eq!(body_received(" hi "), "hi");
        let long = body_received(&"a".repeat(MAX_BODY + 5));
        assert!(long.starts_with(&"a".repeat(MAX_BODY)) && long.ends_with("characters]"));
        assert_eq!(body_received(&"a".repeat(MAX_BODY)).len(), MAX_BODY);
    }

    proptest! {
        #[test]
        fn a_reply_subject_carries_its_number(n in 0i64..1_000_000_000, s in ".{0,80}") {
            let r = reply_subject(n, &s);
            prop_assert_eq!(number_in_subject(&r), Some(n));
            prop_assert!(r.starts_with("Re: [#"));
            // Replying to the reply changes nothing.
            prop_assert_eq!(reply_subject(n, &r), r);
        }

        #[test]
        fn number_reading_never_panics(s in ".{0,200}") {
            let _ = number_in_subject(&s);
        }
    }
}
