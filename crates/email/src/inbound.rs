//! A customer's e-mail as support reads it: who wrote, the subject, the Message-IDs it
//! answers, and the new text without the quoted history below it.

use mail_parser::{HeaderValue, MessageParser};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The sender's address, as written.
    pub from: String,
    pub from_name: Option<String>,
    pub subject: String,
    /// `<id>`, when the message has one.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// The text part (or the HTML's text), quoted history taken off.
    pub text: String,
    /// Sent by a machine (an auto-reply, a bounce): not a customer's word.
    pub automatic: bool,
}

fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![format!("<{}>", t.trim_matches(['<', '>']))],
        HeaderValue::TextList(l) => l
            .iter()
            .map(|t| format!("<{}>", t.trim_matches(['<', '>'])))
            .collect(),
        _ => Vec::new(),
    }
}

/// Reads a raw RFC 5322 message; `None` when it has no sender address.
pub fn read(raw: &[u8]) -> Option<Mail> {
    let msg = MessageParser::default().parse(raw)?;
    let from = msg.from()?.first()?;
    let address = from.address()?.trim().to_string();
    if address.is_empty() {
        return None;
    }
    let text = msg
        .body_text(0)
        .map(|t| t.into_owned())
        .or_else(|| msg.body_html(0).map(|h| h.into_owned()))
        .unwrap_or_default();
    let header = |name: &str| msg.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    let automatic = header("Auto-Submitted").is_some_and(|v| v != "no")
        || header("Precedence")
            .is_some_and(|v| matches!(v.as_str(), "bulk" | "junk" | "list" | "auto_reply"))
        || msg.header_raw("X-Autoreply").is_some();
    Some(Mail {
        from: address,
        from_name: from
            .name()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
        subject: msg.subject().unwrap_or_default().trim().to_string(),
        message_id: msg
            .message_id()
            .map(|m| format!("<{}>", m.trim_matches(['<', '>']))),
        in_reply_to: ids(msg.in_reply_to()),
        references: ids(msg.references()),
        text: new_text(&text),
        automatic,
    })
}

/// The part of a reply that is new: up to the quoted history ("On … wrote:", an
/// "Original Message" divider, or the block of `>` lines at the end).
pub fn new_text(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut end = lines.len();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim();
        let wrote = t.starts_with("On ") && t.ends_with("wrote:");
        if wrote
            || t.starts_with("-----Original Message-----")
            || t == "________________________________"
        {
            end = i;
            break;
        }
    }
    while end > 0 {
        let t = lines[end - 1].trim();
        if t.starts_with('>') || t.is_empty() {
            end -= 1;
        } else {
            break;
        }
    }
    let kept = lines[..end].join("\n");
    let kept = kept.trim();
    if kept.is_empty() {
        // All of it was quoted: keep it rather than lose the message.
        text.trim().to_string()
    } else {
        kept.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_read_with_its_thread() {
        let raw = b"From: Ann Lee <Ann@Customer.test>\r\nTo: support@shop.test\r\nSubject: Re: [#12] My order\r\nMessage-ID: <r2@customer.test>\r\nIn-Reply-To: <s1@shop.test>\r\nReferences: <c1@customer.test> <s1@shop.test>\r\n\r\nStill waiting.\r\n\r\nOn Mon, 7 Dec 2026, Support wrote:\r\n> We are on it.\r\n";
        let m = read(raw).unwrap();
        assert_eq!(m.from, "Ann@Customer.test");
        assert_eq!(m.from_name.as_deref(), Some("Ann Lee"));
        assert_eq!(m.subject, "Re: [#12] My order");
        assert_eq!(m.message_id.as_deref(), Some("<r2@customer.test>"));
        assert_eq!(m.in_reply_to, ["<s1@shop.test>"]);
        assert_eq!(m.references, ["<c1@customer.test>", "<s1@shop.test>"]);
        assert_eq!(m.text, "Still waiting.");
        assert!(!m.automatic);
    }

    #[test]
    fn machines_and_senderless_mail_are_told_apart() {
        let auto = b"From: a@b.test\r\nAuto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\nAway.\r\n";
        assert!(read(auto).unwrap().automatic);
        let bulk = b"From: a@b.test\r\nPrecedence: bulk\r\nSubject: News\r\n\r\nx\r\n";
        assert!(read(bulk).unwrap().automatic);
        let human = b"From: a@b.test\r\nAuto-Submitted: no\r\nSubject: Hi\r\n\r\nx\r\n";
        assert!(!read(human).unwrap().automatic);
        assert!(read(b"Subject: nobody\r\n\r\nx\r\n").is_none());
        assert!(read(b"").is_none());
    }

    #[test]
    fn quoted_history_is_taken_off() {
        assert_eq!(new_text("Thanks!\n\n> old\n> older\n"), "Thanks!");
        assert_eq!(
            new_text("Fine.\n-----Original Message-----\nFrom: x"),
            "Fine."
        );
        assert_eq!(
            new_text("a\n> quoted in the middle\nb"),
            "a\n> quoted in the middle\nb"
        );
        assert_eq!(new_text("> only quoted"), "> only quoted");
        assert_eq!(new_text("  "), "");
    }
}
