//! What comes back: delivery status notifications (RFC 3464) and complaint feedback
//! reports (ARF, RFC 5965), read from a raw RFC 5322 message (mail-parser), and the
//! references that name the message they are about — the VERP return path
//! (`bounce+TOKEN@domain`) a DSN is addressed to, or the returned original's `Message-ID`.

use mail_parser::{MessageParser, MimeHeaders, PartType};

/// What a report says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A DSN for a recipient that failed (`hard`: a 5.x.x status, or failed without one)
    /// or was delayed / failed for now (4.x.x).
    Bounce {
        hard: bool,
        status: String,
        recipient: Option<String>,
        diagnostic: Option<String>,
    },
    /// An ARF report: a recipient marked the message as unwanted.
    Complaint { feedback_type: String },
    /// Anything else (a DSN that says delivered or relayed, a reply, spam).
    Other,
}

/// A report and the references to our message it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub report: Report,
    /// Tokens of `bounce+TOKEN@…` addresses the report was sent to.
    pub verp: Vec<String>,
    /// `Message-ID`s of the original the report returns (without angle brackets).
    pub message_ids: Vec<String>,
}

/// `Name: value` fields of a header-like block (DSN per-message and per-recipient
/// fields, ARF fields), names lower-cased, continuation lines joined.
fn fields(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    out
}

fn field<'a>(fs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// `rfc822; a@b` → `a@b`.
fn typed_value(v: &str) -> String {
    v.split_once(';').map_or(v, |(_, a)| a).trim().to_string()
}

fn verp_tokens(text: &str, out: &mut Vec<String>) {
    let mut rest = text;
    while let Some(i) = rest.find("bounce+") {
        let tail = &rest[i + 7..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(tail.len());
        if tail[end..].starts_with('@') && end > 0 {
            out.push(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
}

/// Reads one inbound message.
pub fn read(raw: &[u8]) -> Inbound {
    let mut inbound = Inbound {
        report: Report::Other,
        verp: Vec::new(),
        message_ids: Vec::new(),
    };
    let Some(msg) = MessageParser::default().parse(raw) else {
        return inbound;
    };
    for h in [
        "To",
        "Delivered-To",
        "X-Original-To",
        "Envelope-To",
        "Return-Path",
    ] {
        if let Some(v) = msg.header_raw(h) {
            verp_tokens(v, &mut inbound.verp);
        }
    }
    let mut dsn: Option<String> = None;
    let mut arf: Option<String> = None;
    for part in &msg.parts {
        let (ctype, sub) = part
            .content_type()
            .map(|c| {
                (
                    c.ctype().to_ascii_lowercase(),
                    c.subtype().unwrap_or("").to_ascii_lowercase(),
                )
            })
            .unwrap_or_default();
        let text = String::from_utf8_lossy(part.contents()).into_owned();
        match (ctype.as_str(), sub.as_str()) {
            ("message", "delivery-status") | ("message", "global-delivery-status") => {
                dsn = Some(text)
            }
            ("message", "feedback-report") => arf = Some(text),
            ("message", "rfc822") | ("message", "global") | ("text", "rfc822-headers") => {
                let id = match &part.body {
                    PartType::Message(m) => m.message_id().map(str::to_string),
                    _ => MessageParser::default()
                        .parse(text.as_bytes())
                        .and_then(|m| m.message_id().map(str::to_string)),
                };
                if let Some(id) = id {
                    inbound.message_ids.push(id);
                }
                // A returned original carries its own return path too.
                verp_tokens(&text, &mut inbound.verp);
            }
            _ => {}
        }
    }
    if let Some(text) = arf {
        let fs = fields(&text);
        inbound.report = Report::Complaint {
            feedback_type: field(&fs, "feedback-type")
                .unwrap_or("abuse")
                .to_ascii_lowercase(),
        };
    } else if let Some(text) = dsn {
        // Blocks are separated by blank lines: per-message fields, then per recipient.
        let blocks: Vec<Vec<(String, String)>> = text
            .replace("\r\n", "\n")
            .split("\n\n")
            .map(fields)
            .filter(|f| !f.is_empty())
            .collect();
        for b in &blocks {
            let Some(action) = field(b, "action").map(str::to_ascii_lowercase) else {
                continue;
            };
            let status = field(b, "status").unwrap_or("").to_string();
            let hard = match action.as_str() {
                "failed" => !status.starts_with('4'),
                "delayed" => false,
                _ => continue,
            };
            inbound.report = Report::Bounce {
                hard,
                status,
                recipient: field(b, "final-recipient")
                    .or_else(|| field(b, "original-recipient"))
                    .map(typed_value),
                diagnostic: field(b, "diagnostic-code").map(typed_value),
            };
            break;
        }
    }
    inbound.verp.dedup();
    inbound
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3464 appendix C's first example, addressed to a VERP return path.
    const DSN: &str = "Date: Thu, 7 Jul 1994 17:16:05 -0400\r\nFrom: Mail Delivery Subsystem <MAILER-DAEMON@CS.UTK.EDU>\r\nMessage-Id: <199407072116.RAA14128@CS.UTK.EDU>\r\nSubject: Returned mail: Cannot send message for 5 days\r\nTo: bounce+AbC_1-2@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n      boundary=\"RAA14128.773615765/CS.UTK.EDU\"\r\n\r\n--RAA14128.773615765/CS.UTK.EDU\r\n\r\nThe original message was received at Sat, 2 Jul 1994 17:10:28 -0400\r\n\r\n--RAA14128.773615765/CS.UTK.EDU\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; cs.utk.edu\r\n\r\nOriginal-Recipient: rfc822;louisl@larry.slip.umd.edu\r\nFinal-Recipient: rfc822;louisl@larry.slip.umd.edu\r\nAction: failed\r\nStatus: 4.0.0\r\nDiagnostic-Code: smtp; 426 connection timed out\r\nLast-Attempt-Date: Thu, 7 Jul 1994 17:15:49 -0400\r\n\r\n--RAA14128.773615765/CS.UTK.EDU\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <0123abcd@example.com>\r\nFrom: news@example.com\r\nSubject: Hi\r\n\r\nHello\r\n--RAA14128.773615765/CS.UTK.EDU--\r\n";

    #[test]
    fn dsn_soft_then_hard() {
        let i = read(DSN.as_bytes());
        assert_eq!(i.verp, vec!["AbC_1-2"]);
        assert_eq!(i.message_ids, vec!["0123abcd@example.com"]);
        assert_eq!(
            i.report,
            Report::Bounce {
                hard: false,
                status: "4.0.0".into(),
                recipient: Some("louisl@larry.slip.umd.edu".into()),
                diagnostic: Some("426 connection timed out".into()),
            }
        );
        let hard = DSN.replace("Status: 4.0.0", "Status: 5.1.1");
        assert!(matches!(
            read(hard.as_bytes()).report,
            Report::Bounce { hard: true, .. }
        ));
        let delayed = DSN
            .replace("Action: failed", "Action: delayed")
            .replace("Status: 4.0.0", "Status: 5.0.0");
        assert!(matches!(
            read(delayed.as_bytes()).report,
            Report::Bounce { hard: false, .. }
        ));
        let delivered = DSN.replace("Action: failed", "Action: delivered");
        assert_eq!(read(delivered.as_bytes()).report, Report::Other);
        // Headers only (text/rfc822-headers) name the original too.
        let headers = DSN.replace(
            "Content-Type: message/rfc822",
            "Content-Type: text/rfc822-headers",
        );
        assert_eq!(
            read(headers.as_bytes()).message_ids,
            vec!["0123abcd@example.com"]
        );
    }

    /// RFC 5965 appendix B.2's example, shortened.
    const ARF: &str = "From: <abusedesk@example.com>\r\nDate: Thu, 8 Mar 2005 17:40:36 EDT\r\nSubject: FW: Earn money\r\nTo: <abuse@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report;\r\n     boundary=\"part1_13d.2e68ed54_boundary\"\r\n\r\n--part1_13d.2e68ed54_boundary\r\nContent-Type: text/plain; charset=\"US-ASCII\"\r\n\r\nThis is an email abuse report for an email message received from IP\r\n192.0.2.1 on Thu, 8 Mar 2005 14:00:00 EDT.\r\n\r\n--part1_13d.2e68ed54_boundary\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n\r\n--part1_13d.2e68ed54_boundary\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\nReturn-Path: <bounce+Tok@example.com>\r\nFrom: <news@example.com>\r\nMessage-ID: <feed0001@example.com>\r\nSubject: Earn money\r\n\r\nSpam Spam Spam\r\n--part1_13d.2e68ed54_boundary--\r\n";

    #[test]
    fn arf_complaint() {
        let i = read(ARF.as_bytes());
        assert_eq!(
            i.report,
            Report::Complaint {
                feedback_type: "abuse".into()
            }
        );
        assert_eq!(i.message_ids, vec!["feed0001@example.com"]);
        assert_eq!(i.verp, vec!["Tok"]);
        assert_eq!(read(b"not a message at all").report, Report::Other);
        assert_eq!(read(b"").verp, Vec::<String>::new());
    }

    proptest::proptest! {
        // Whatever arrives at the inbound route is read without a panic.
        #[test]
        fn any_message_is_read(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
                               text in "(bounce\\+[a-zé]{0,5}@?|Action: (failed|delayed)|Status: [45].0.0|Content-Type: message/(delivery-status|rfc822)|\r\n|[éx:;@ ]){0,30}") {
            let _ = read(&raw);
            let _ = read(DSN.replace("Action: failed", &text).as_bytes());
            let _ = read(text.as_bytes());
        }
    }

    #[test]
    fn small_parsers() {
        assert_eq!(typed_value("rfc822; a@b.test"), "a@b.test");
        assert_eq!(typed_value("a@b.test"), "a@b.test");
        let f = fields("A: 1\n  more\nB:2\nnot a field\n");
        assert_eq!(
            f,
            vec![("a".into(), "1 more".into()), ("b".into(), "2".into())]
        );
        let mut v = Vec::new();
        verp_tokens("x bounce+@a bounce+ok@b bounce+no", &mut v);
        assert_eq!(v, vec!["ok"]);
    }
}
