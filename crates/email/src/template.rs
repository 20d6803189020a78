//! Templates: MiniJinja in a sandbox. No loader (a template cannot read a file or another
//! template), no network, a fuel limit on every render, HTML auto-escaped in the HTML
//! part. Variables come from a fixed set of roots (`person`, `traits`, …); a name outside
//! them is an error at save time, with its line and column. A trait a person lacks renders
//! empty (use `default`).

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::Value;

/// The variables a template may read (docs/email.md lists what each holds).
pub const ROOTS: &[&str] = &[
    "person",
    "traits",
    "scores",
    "segments",
    "network",
    "text",
    "data",
    "email",
    "unsubscribe_url",
    "preferences_url",
];

/// A message's own links, which are ours and so are not escaped (escaping would turn
/// their `/` into `&#x2f;`).
pub struct Links<'a> {
    /// One-click unsubscribe from this kind of e-mail.
    pub unsubscribe: &'a str,
    /// The customer portal's preference centre.
    pub preferences: &'a str,
}

/// Instructions one render may run: far above any real e-mail, low enough that a loop
/// over `range(10**9)` stops at once.
const FUEL: u64 = 200_000;

/// What staff write.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Source {
    pub subject: String,
    pub html: String,
    /// Derived from the HTML when absent.
    pub text: Option<String>,
}

/// One person's copy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// A template error: which part, where, what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{field}: line {line}, column {column}: {message}")]
pub struct TemplateError {
    /// `subject`, `html` or `text`.
    pub field: &'static str,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A template compiled once, rendered for many people.
pub struct Compiled {
    env: Environment<'static>,
    has_text: bool,
    sources: [String; 3],
    /// The [`ROOTS`] the parts read (a sender skips reading what no part uses).
    used: Vec<String>,
}

const PARTS: [&str; 3] = ["subject", "html", "text"];

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn error(field: &'static str, src: &str, e: &minijinja::Error) -> TemplateError {
    let (line, column) = match (e.range(), e.line()) {
        (Some(r), _) => line_col(src, r.start),
        (None, Some(l)) => (l, 1),
        _ => (1, 1),
    };
    let message = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    TemplateError {
        field,
        line,
        column,
        message,
    }
}

impl Compiled {
    /// Compiles the three parts; refuses syntax errors and variables outside [`ROOTS`].
    pub fn new(src: &Source) -> Result<Compiled, TemplateError> {
        let mut env = Environment::new();
        env.set_fuel(Some(FUEL));
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_auto_escape_callback(|name| {
            if name == "html" {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        let sources = [
            src.subject.clone(),
            src.html.clone(),
            src.text.clone().unwrap_or_default(),
        ];
        for (i, part) in PARTS.iter().enumerate() {
            env.add_template_owned(*part, sources[i].clone())
                .map_err(|e| error(PARTS[i], &sources[i], &e))?;
        }
        let mut used = Vec::new();
        for (i, part) in PARTS.iter().enumerate() {
            let t = env
                .get_template(part)
                .map_err(|e| error(PARTS[i], &sources[i], &e))?;
            let names = t.undeclared_variables(false);
            used.extend(
                names
                    .iter()
                    .filter(|v| ROOTS.contains(&v.as_str()))
                    .cloned(),
            );
            let mut unknown: Vec<String> = names
                .into_iter()
                .filter(|v| !ROOTS.contains(&v.as_str()) && env.globals().all(|(g, _)| g != v))
                .collect();
            unknown.sort();
            if let Some(v) = unknown.first() {
                let (line, column) = find_name(&sources[i], v);
                return Err(TemplateError {
                    field: PARTS[i],
                    line,
                    column,
                    message: format!("unknown variable `{v}`: use one of {}", ROOTS.join(", ")),
                });
            }
        }
        Ok(Compiled {
            env,
            has_text: src.text.as_deref().is_some_and(|t| !t.trim().is_empty()),
            sources,
            used,
        })
    }

    /// Whether any part reads this variable.
    pub fn uses(&self, root: &str) -> bool {
        self.used.iter().any(|u| u == root)
    }

    /// Renders every part for `ctx` (an object with the [`ROOTS`] as keys).
    pub fn render(&self, ctx: &Value) -> Result<Rendered, TemplateError> {
        self.render_with(ctx, None)
    }

    /// As [`Compiled::render`], with the message's own [`Links`].
    pub fn render_with(
        &self,
        ctx: &Value,
        links: Option<&Links>,
    ) -> Result<Rendered, TemplateError> {
        let base = minijinja::Value::from_serialize(ctx);
        let ctx = match links {
            Some(l) => minijinja::context! {
                unsubscribe_url => minijinja::Value::from_safe_string(l.unsubscribe.to_string()),
                preferences_url => minijinja::Value::from_safe_string(l.preferences.to_string()),
                ..base
            },
            None => base,
        };
        let part = |i: usize| -> Result<String, TemplateError> {
            self.env
                .get_template(PARTS[i])
                .and_then(|t| t.render(&ctx))
                .map_err(|e| error(PARTS[i], &self.sources[i], &e))
        };
        let subject = part(0)?;
        // A subject is one line: a newline from a variable would start a new header.
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        let html = part(1)?;
        let text = if self.has_text {
            part(2)?
        } else {
            html_to_text(&html)
        };
        Ok(Rendered {
            subject,
            html,
            text,
        })
    }
}

/// Where `name` is first used as a variable in a template source (for the error's place).
fn find_name(src: &str, name: &str) -> (usize, usize) {
    let bytes = src.as_bytes();
    let mut from = 0;
    while let Some(i) = src[from..].find(name).map(|i| i + from) {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + name.len()).copied();
        let word =
            |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        if !word(before) && !after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return line_col(src, i);
        }
        from = i + name.len();
    }
    (1, 1)
}

/// A plain-text part from HTML: block ends become line breaks, links keep their address
/// (`text (url)`), tags go, the common entities are decoded, blank runs collapse. One
/// pass over the bytes: it runs for every message whose template has no text part.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    // The open link's address and where its label starts in `out`.
    let mut link: Option<(String, usize)> = None;
    while let Some(i) = rest.find('<') {
        push_text(&mut out, &rest[..i]);
        rest = &rest[i..];
        let (tag, end) = match rest.find('>') {
            Some(e) => (&rest[1..e], e + 1),
            None => (&rest[1..], rest.len()),
        };
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        rest = &rest[end..];
        match name.as_str() {
            "head" | "style" | "script" | "title" if !closing => {
                let close = format!("</{name}");
                let at = rest.to_ascii_lowercase().find(&close).unwrap_or(rest.len());
                rest = &rest[at..];
                let end = rest.find('>').map_or(rest.len(), |e| e + 1);
                rest = &rest[end..];
            }
            "a" if !closing => link = href(tag).map(|h| (decode_entities(&h), out.len())),
            "a" => {
                if let Some((url, start)) = link.take() {
                    let label = out[start..].trim().to_string();
                    out.truncate(start);
                    if label.is_empty() || label == url {
                        out.push_str(&url);
                    } else {
                        out.push_str(&label);
                        out.push_str(" (");
                        out.push_str(&url);
                        out.push(')');
                    }
                }
            }
            "br" => out.push('\n'),
            "p" | "div" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "li" | "tr" | "table"
            | "blockquote"
                if closing =>
            {
                out.push('\n')
            }
            _ => {}
        }
    }
    push_text(&mut out, rest);
    tidy(&out)
}

/// Text between tags: entities decoded, runs of white space one space.
fn push_text(out: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    let decoded = decode_entities(text);
    for c in decoded.chars() {
        if c.is_whitespace() && c != '\u{a0}' {
            if !out.ends_with([' ', '\n']) && !out.is_empty() {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
}

/// Lines trimmed, at most one blank line in a row, none at the start, one newline at the end.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines() {
        let line = line.trim_matches(|c: char| c == ' ' || c == '\u{a0}');
        if line.is_empty() {
            blank += 1;
            if blank > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    let t = out.trim_end();
    format!("{t}\n")
}

/// The `href` attribute's value of a tag's text.
fn href(tag: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("href").map(|i| i + from) {
        let before_ok = i == 0 || lower.as_bytes()[i - 1].is_ascii_whitespace();
        let after = lower[i + 4..].trim_start();
        if before_ok && after.starts_with('=') {
            let v = tag[tag.len() - after.len() + 1..].trim_start();
            let q = v.chars().next()?;
            return Some(if q == '"' || q == '\'' {
                v[1..].split(q).next().unwrap_or("").to_string()
            } else {
                v.split(|c: char| c.is_whitespace())
                    .next()
                    .unwrap_or("")
                    .to_string()
            });
        }
        from = i + 4;
    }
    None
}

/// The entities MiniJinja's escaping writes, and the common named ones.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        // Bytes, not chars: the first 12 bytes may end inside a character.
        let end = rest.as_bytes()[..rest.len().min(12)]
            .iter()
            .position(|&b| b == b';');
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => {
                    let n = name.strip_prefix('#')?;
                    let code = match n.strip_prefix(['x', 'X']) {
                        Some(h) => u32::from_str_radix(h, 16).ok()?,
                        None => n.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn src(subject: &str, html: &str, text: Option<&str>) -> Source {
        Source {
            subject: subject.into(),
            html: html.into(),
            text: text.map(Into::into),
        }
    }

    #[test]
    fn renders_escapes_and_derives_text() {
        let t = Compiled::new(&src(
            "Hi {{ traits.first_name | default('there') }}\n!",
            "<html><head><title>x</title></head><body><p>Hello {{ traits.first_name }}</p><a href=\"{{ data.url }}\">Shop</a><br>{{ data.raw }}</body></html>",
            None,
        ))
        .unwrap();
        let r = t
            .render(&json!({"traits": {"first_name": "Ann"}, "data": {"url": "https://x.test/a?b=1&c=2", "raw": "<b>&</b>"}}))
            .unwrap();
        assert_eq!(r.subject, "Hi Ann !");
        assert!(
            r.html.contains("&lt;b&gt;&amp;&lt;&#x2f;b&gt;"),
            "{}",
            r.html
        );
        assert_eq!(
            r.text,
            "Hello Ann\nShop (https://x.test/a?b=1&c=2)\n<b>&</b>\n"
        );
        // A missing trait renders empty or its default.
        let r = t.render(&json!({})).unwrap();
        assert_eq!(r.subject, "Hi there !");
        // Our own unsubscribe and preference URLs are not escaped.
        let t = Compiled::new(&src(
            "s",
            "<a href=\"{{ unsubscribe_url }}\">u</a><a href=\"{{ preferences_url }}\">p</a>",
            None,
        ))
        .unwrap();
        let r = t
            .render_with(
                &json!({"unsubscribe_url": "x"}),
                Some(&Links {
                    unsubscribe: "https://c.test/e/u/t",
                    preferences: "https://c.test/me",
                }),
            )
            .unwrap();
        assert_eq!(
            r.html,
            "<a href=\"https://c.test/e/u/t\">u</a><a href=\"https://c.test/me\">p</a>"
        );
        // A text part given is used as is.
        let t = Compiled::new(&src("s", "<p>h</p>", Some("Plain {{ data.n }}"))).unwrap();
        assert_eq!(
            t.render(&json!({"data": {"n": 3}})).unwrap().text,
            "Plain 3"
        );
    }

    #[test]
    fn errors_name_part_line_and_column() {
        let e = Compiled::new(&src("ok", "<p>\n  {{ traits.name </p>", None))
            .err()
            .unwrap();
        assert_eq!(e.field, "html");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("syntax error"), "{e}");
        let e = Compiled::new(&src("Hi {{ nme }}", "<p></p>", None))
            .err()
            .unwrap();
        assert_eq!((e.field, e.line, e.column), ("subject", 1, 7));
        assert!(e.message.contains("unknown variable `nme`"), "{e}");
        let e = Compiled::new(&src(
            "s",
            "x",
            Some("a\n {% for p in people %}{% endfor %}"),
        ))
        .err()
        .unwrap();
        assert_eq!((e.field, e.line, e.column), ("text", 2, 14));
        let t = Compiled::new(&src("{{ traits.a }}", "{{ scores.x }}", None)).unwrap();
        assert!(t.uses("scores") && t.uses("traits") && !t.uses("segments"));
        // Loop variables and set names are not unknown.
        assert!(Compiled::new(&src(
            "s",
            "{% for s in segments %}{{ s }}{% endfor %}{% set x = 1 %}{{ x }}",
            None
        ))
        .is_ok());
    }

    #[test]
    fn runaway_templates_stop() {
        let t = Compiled::new(&src(
            "s",
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            None,
        ))
        .unwrap();
        let e = t.render(&json!({})).err().unwrap();
        assert_eq!(e.field, "html");
        assert!(e.message.contains("fuel"), "{e}");
        // No loader: another template cannot be read.
        let t = Compiled::new(&src("s", "{% include 'subject' %}", None));
        if let Ok(t) = t {
            // The parts are named templates of one environment; including one is harmless,
            // but nothing outside it exists.
            let _ = t.render(&json!({}));
        }
        let t = Compiled::new(&src("s", "{% include '/etc/passwd' %}", None)).unwrap();
        assert!(t.render(&json!({})).is_err());
    }

    proptest::proptest! {
        // Any markup, however broken, becomes text without a panic.
        #[test]
        fn any_html_becomes_text(html in "(<a href='[éx]{0,4}'>|</a>|<br>|<p>|</p>|<style>|</style|&amp;|&#x[0-9a-f]{0,7};|&#[0-9]{0,9};|[é<>x &;#'\"]){0,40}") {
            let t = html_to_text(&html);
            proptest::prop_assert!(t.ends_with('\n'));
        }
    }

    #[test]
    fn links_scripts_and_broken_markup() {
        assert_eq!(
            html_to_text("<A HREF=https://a.test class=x>Go <b>now</b></A> &amp; then"),
            "Go now (https://a.test) & then\n"
        );
        assert_eq!(
            html_to_text("<script>var a = '<p>';</script><p>x</p><a data-href=\"y\">z</a>"),
            "x\nz\n"
        );
        assert_eq!(html_to_text("unclosed <b"), "unclosed\n");
        assert_eq!(html_to_text("<a href=\"ééééé\">x</a>"), "x (ééééé)\n");
        assert_eq!(href("a href = 'q'"), Some("q".into()));
        assert_eq!(href("a nohref=\"q\""), None);
        assert_eq!(href("a"), None);
    }

    #[test]
    fn text_from_html_and_entities() {
        assert_eq!(
            html_to_text("<style>p{}</style><h1>T</h1>\n\n\n<p>a  b</p><div>c</div>"),
            "T\na b\nc\n"
        );
        assert_eq!(
            html_to_text("<a href=\"https://a.test\">https://a.test</a>"),
            "https://a.test\n"
        );
        assert_eq!(
            decode_entities("a&amp;b&#39;&#x2f;&bogus;&"),
            "a&b'/&bogus;&"
        );
        assert_eq!(
            decode_entities("&#xZZ; &nbsp;&quot;&lt;&gt;&apos;"),
            "&#xZZ;  \"<>'"
        );
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(find_name("{{ xname }} {{ name }}", "name"), (1, 16));
    }
}
