//! One message, ready for the relay: MIME (text and HTML alternatives), the standard
//! headers (`Message-ID`, `Date`, `List-Unsubscribe` with RFC 8058 one-click,
//! `Precedence: bulk` for campaigns), links rewritten to signed click URLs, an open pixel,
//! and a DKIM signature per key of the sending domain.

use crate::template::{decode_entities, Rendered};
use crate::token::{Action, Token};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;
use std::time::SystemTime;
use uuid::Uuid;

/// Where tracking URLs point and the key their tokens are signed with.
pub struct Tracking<'a> {
    /// The public base URL of Rapport (`https://crm.example.com`), without a trailing `/`.
    pub base_url: &'a str,
    pub secret: &'a [u8],
    /// Rewrite links and add the open pixel (the unsubscribe link is always there).
    pub track: bool,
}

/// What a message is made of.
pub struct Outgoing<'a> {
    pub id: Uuid,
    pub from: &'a str,
    pub from_name: Option<&'a str>,
    pub to: &'a str,
    pub rendered: &'a Rendered,
    /// A campaign's message (`Precedence: bulk`); transactional ones are not.
    pub bulk: bool,
    /// Marketing messages carry `List-Unsubscribe`; transactional ones need not.
    pub unsubscribe: bool,
    pub date: SystemTime,
    /// An answer in a conversation (a support reply): the headers mail clients thread by.
    pub thread: Option<&'a Thread>,
}

/// What a reply refers to: the message it answers and the conversation before it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Thread {
    /// `<id>` of the message answered.
    pub in_reply_to: String,
    /// `<id>`s of the conversation, oldest first.
    pub references: Vec<String>,
}

/// The message as sent: its bytes, envelope sender (VERP) and the links it holds, in the
/// order click tokens number them.
pub struct Composed {
    pub raw: Vec<u8>,
    pub return_path: String,
    pub links: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ComposeError {
    #[error("from: `{0}` is not an e-mail address")]
    From(String),
    #[error("to: `{0}` is not an e-mail address")]
    To(String),
    #[error("the message could not be built: {0}")]
    Build(String),
}

/// The domain part of an address.
pub fn domain_of(address: &str) -> Option<&str> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
}

/// The unsubscribe URL of a message (the link in its body and its `List-Unsubscribe`).
pub fn unsubscribe_url(t: &Tracking<'_>, id: Uuid) -> String {
    format!(
        "{}/e/u/{}",
        t.base_url,
        Token::new(id, Action::Unsubscribe, 0).sign(t.secret)
    )
}

/// Rewrites `http(s)` links of `<a href>` to click URLs; returns the HTML and the links.
/// One scan over the HTML (it runs for every tracked message).
fn track_links(html: &str, t: &Tracking<'_>, id: Uuid, skip: &str) -> (String, Vec<String>) {
    let mut links: Vec<String> = Vec::new();
    let mut out = String::with_capacity(html.len() + 256);
    let lower = html.to_ascii_lowercase();
    let mut pos = 0;
    while let Some(i) = lower[pos..].find("<a").map(|i| i + pos) {
        let after = lower.as_bytes().get(i + 2).copied().unwrap_or(b'>');
        let tag_end = lower[i..].find('>').map_or(html.len(), |e| e + i);
        let Some((start, end)) = (after.is_ascii_whitespace())
            .then(|| href_span(&lower[i..tag_end]))
            .flatten()
        else {
            out.push_str(&html[pos..i + 2]);
            pos = i + 2;
            continue;
        };
        let (start, end) = (i + start, i + end);
        let url = decode_entities(html[start..end].trim());
        let web = url
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
            || url
                .get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case("https://"));
        out.push_str(&html[pos..start]);
        if !web || url == skip || links.len() >= u16::MAX as usize {
            out.push_str(&html[start..end]);
        } else {
            let n = match links.iter().position(|l| *l == url) {
                Some(n) => n,
                None => {
                    links.push(url);
                    links.len() - 1
                }
            };
            out.push_str(t.base_url);
            out.push_str("/e/c/");
            out.push_str(&Token::new(id, Action::Click, n as u16).sign(t.secret));
        }
        pos = end;
    }
    out.push_str(&html[pos..]);
    (out, links)
}

/// Where the `href` value sits in a lower-cased tag (without its quotes).
fn href_span(tag: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = tag[from..].find("href").map(|i| i + from) {
        let before_ok = tag.as_bytes()[i - 1].is_ascii_whitespace();
        let rest = &tag[i + 4..];
        let eq = rest.len() - rest.trim_start().len();
        if before_ok && rest[eq..].starts_with('=') {
            let v0 = i + 4 + eq + 1;
            let v = &tag[v0..];
            let ws = v.len() - v.trim_start().len();
            let start = v0 + ws;
            return match tag.as_bytes().get(start) {
                Some(&q) if q == b'"' || q == b'\'' => {
                    let len = tag[start + 1..].find(q as char)?;
                    Some((start + 1, start + 1 + len))
                }
                Some(_) => {
                    let len = tag[start..]
                        .find(|c: char| c.is_ascii_whitespace())
                        .unwrap_or(tag.len() - start);
                    Some((start, start + len))
                }
                None => None,
            };
        }
        from = i + 4;
    }
    None
}

fn pixel(html: &str, t: &Tracking<'_>, id: Uuid) -> String {
    let img = format!(
        "<img src=\"{}/e/o/{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;border:0\">",
        t.base_url,
        Token::new(id, Action::Open, 0).sign(t.secret)
    );
    match html.to_ascii_lowercase().rfind("</body>") {
        Some(i) => format!("{}{img}{}", &html[..i], &html[i..]),
        None => format!("{html}{img}"),
    }
}

fn header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// Builds one message, unsigned: the outbox keeps it so, and delivery signs it
/// ([`crate::dkim::sign`]) when it goes out.
pub fn compose(o: &Outgoing<'_>, t: &Tracking<'_>) -> Result<Composed, ComposeError> {
    let from_addr: lettre::Address = o
        .from
        .parse()
        .map_err(|_| ComposeError::From(o.from.into()))?;
    let to_addr: lettre::Address = o.to.parse().map_err(|_| ComposeError::To(o.to.into()))?;
    let domain = from_addr.domain().to_string();
    let unsubscribe = unsubscribe_url(t, o.id);
    let (html, links) = if t.track {
        let (h, l) = track_links(&o.rendered.html, t, o.id, &unsubscribe);
        (pixel(&h, t, o.id), l)
    } else {
        (o.rendered.html.clone(), Vec::new())
    };
    let return_path = format!(
        "bounce+{}@{domain}",
        Token::new(o.id, Action::Bounce, 0).sign(t.secret)
    );
    let mut b = Message::builder()
        .from(Mailbox::new(o.from_name.map(str::to_string), from_addr))
        .to(Mailbox::new(None, to_addr))
        .subject(o.rendered.subject.clone())
        .date(o.date)
        .message_id(Some(format!("<{}@{domain}>", o.id.simple())));
    if o.unsubscribe {
        b = b
            .raw_header(header("List-Unsubscribe", format!("<{unsubscribe}>")))
            .raw_header(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".into(),
            ));
    }
    if o.bulk {
        b = b.raw_header(header("Precedence", "bulk".into()));
    }
    if let Some(t) = o.thread {
        b = b
            .in_reply_to(t.in_reply_to.clone())
            .references(t.references.join(" "));
    }
    let m = b
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(o.rendered.text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html),
                ),
        )
        .map_err(|e| ComposeError::Build(e.to_string()))?;
    let raw = m.formatted();
    Ok(Composed {
        raw,
        return_path,
        links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dkim::{Algorithm, DkimKey};

    fn rendered(html: &str) -> Rendered {
        Rendered {
            subject: "Hello".into(),
            html: html.into(),
            text: "Hello\n".into(),
        }
    }

    #[test]
    fn headers_links_pixel_signature() {
        let t = Tracking {
            base_url: "https://crm.test",
            secret: b"s",
            track: true,
        };
        let id = Uuid::from_u128(42);
        let r = rendered("<html><body><a href=\"https://shop.test/a?x=1&amp;y=2\">A</a> <a href='https://shop.test/b'>B</a> <a href=\"https://shop.test/a?x=1&amp;y=2\">A again</a> <a href=\"mailto:x@y.test\">m</a></body></html>");
        let k = DkimKey::generate(Algorithm::Ed25519, "sel").unwrap();
        let o = Outgoing {
            id,
            from: "news@example.com",
            from_name: Some("Example News"),
            to: "ann@customer.test",
            rendered: &r,
            bulk: true,
            unsubscribe: true,
            date: SystemTime::UNIX_EPOCH,
            thread: None,
        };
        let c = compose(&o, &t).unwrap();
        let signed = crate::dkim::sign(&[k.signer("example.com").unwrap()], &c.raw).unwrap();
        let text = String::from_utf8_lossy(&signed).to_string();
        assert_eq!(
            c.links,
            vec!["https://shop.test/a?x=1&y=2", "https://shop.test/b"]
        );
        assert!(
            text.contains("List-Unsubscribe: <https://crm.test/e/u/"),
            "{text}"
        );
        assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(text.contains("Precedence: bulk"));
        assert!(text.contains("Message-ID: <0000000000000000000000000000002a@example.com>"));
        assert!(
            text.contains("DKIM-Signature: v=1; a=ed25519-sha256"),
            "{text}"
        );
        assert!(
            text.contains("From: \"Example News\" <news@example.com>"),
            "{text}"
        );
        assert!(!text.contains("shop.test"), "links are rewritten: {text}");
        assert!(text.contains("mailto:x@y.test"));
        assert!(c.return_path.starts_with("bounce+") && c.return_path.ends_with("@example.com"));
        // Each click URL's token names its link; the unsubscribe link is left alone.
        let unsub = unsubscribe_url(&t, id);
        let (h, l) = track_links(
            &format!("{}<a href=\"{unsub}\">u</a>", r.html),
            &t,
            id,
            &unsub,
        );
        assert_eq!(l, c.links);
        let click = Token::new(id, Action::Click, 1).sign(b"s");
        assert!(
            h.contains(&format!("<a href='https://crm.test/e/c/{click}'>B</a>")),
            "{h}"
        );
        assert!(h.contains(&format!("<a href=\"{unsub}\">u</a>")), "{h}");
        // Unquoted and upper-case attributes, an anchor without href, `<abbr>`.
        let (h, l) = track_links(
            "<A class=x HREF=https://u.test/q>x</A><a name=top>t</a><abbr>a</abbr>",
            &t,
            id,
            "",
        );
        assert_eq!(l, vec!["https://u.test/q"]);
        assert!(
            h.starts_with("<A class=x HREF=https://crm.test/e/c/")
                && h.ends_with("<a name=top>t</a><abbr>a</abbr>"),
            "{h}"
        );
        assert_eq!(href_span(" href='x' "), Some((7, 8)));
        let (h, l) = track_links("<a href=\"ééééé\">é</a>", &t, id, "");
        assert!(l.is_empty() && h == "<a href=\"ééééé\">é</a>");
        assert_eq!(href_span(" xhref=\"x\""), None);
        // Transactional: no list headers, no bulk; an untracked message keeps its links.
        let o = Outgoing {
            bulk: false,
            unsubscribe: false,
            ..o
        };
        let t = Tracking { track: false, ..t };
        let c = compose(&o, &t).unwrap();
        let text = String::from_utf8_lossy(&c.raw).to_string();
        assert!(!text.contains("List-Unsubscribe") && !text.contains("Precedence"));
        assert!(c.links.is_empty() && !text.contains("DKIM-Signature"));
        // A support reply carries the headers mail clients thread by.
        let thread = Thread {
            in_reply_to: "<c2@customer.test>".into(),
            references: vec!["<c1@customer.test>".into(), "<c2@customer.test>".into()],
        };
        let replied = Outgoing {
            thread: Some(&thread),
            ..o
        };
        let text = String::from_utf8_lossy(&compose(&replied, &t).unwrap().raw).to_string();
        assert!(text.contains("In-Reply-To: <c2@customer.test>"), "{text}");
        assert!(
            text.contains("References: <c1@customer.test> <c2@customer.test>"),
            "{text}"
        );
        let bad = Outgoing {
            from: "no at sign",
            ..o
        };
        assert_eq!(
            compose(&bad, &t).err(),
            Some(ComposeError::From("no at sign".into()))
        );
        assert_eq!(domain_of("a@b.test"), Some("b.test"));
        assert_eq!(domain_of("a@"), None);
    }

    proptest::proptest! {
        // Whatever HTML a template produces, link tracking does not panic.
        #[test]
        fn any_html_is_tracked_without_panic(html in "(<a href=\"[éa-z:/.]{0,12}\">|<A HREF=x>|</a>|<a|href=|[éx<> '\"=]){0,40}") {
            let t = Tracking { base_url: "https://c", secret: b"s", track: true };
            let (out, links) = track_links(&html, &t, Uuid::nil(), "");
            proptest::prop_assert!(links.is_empty() || out.contains("https://c/e/c/"));
        }
    }

    #[test]
    fn pixel_goes_before_body_end() {
        let t = Tracking {
            base_url: "https://c",
            secret: b"s",
            track: true,
        };
        assert!(pixel("<p>x</p></BODY>", &t, Uuid::nil()).ends_with("</BODY>"));
        assert!(pixel("<p>x</p>", &t, Uuid::nil()).starts_with("<p>x</p><img"));
    }
}
