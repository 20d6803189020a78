//! The page shell: navigation, the signed-in user, sign-out, and the stylesheet.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use maud::{html, Markup, DOCTYPE};

use super::auth::Staff;

/// 12345 → "12,345".
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// How long ago `at` was, in words ("just now", "5 minutes ago", "3 days ago",
/// "in 2 hours"), against `now`.
pub fn ago(at: i64, now: i64) -> String {
    let d = now - at;
    let (future, d) = (d < 0, d.abs() / 1000);
    let (n, unit) = match d {
        0..=59 => return "just now".into(),
        60..=3_599 => (d / 60, "minute"),
        3_600..=86_399 => (d / 3_600, "hour"),
        86_400..=2_591_999 => (d / 86_400, "day"),
        2_592_000..=31_535_999 => (d / 2_592_000, "month"),
        _ => (d / 31_536_000, "year"),
    };
    let s = if n == 1 { "" } else { "s" };
    if future {
        format!("in {n} {unit}{s}")
    } else {
        format!("{n} {unit}{s} ago")
    }
}

/// A moment shown both ways: relative in the text, absolute (UTC) on hover and for
/// machines.
pub fn when(at: chrono::DateTime<chrono::Utc>) -> Markup {
    let abs = at.format("%Y-%m-%d %H:%M UTC").to_string();
    html! { time datetime=(at.to_rfc3339()) title=(abs) { (ago(at.timestamp_millis(), rapport_domain::time::now_millis())) } }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const NAV: [(&str, &str); 13] = [
    ("/", "Dashboard"),
    ("/people", "People"),
    ("/support", "Support"),
    ("/community-desk", "Community"),
    ("/loyalty", "Loyalty"),
    ("/segments", "Segments"),
    ("/rules", "Rules & offers"),
    ("/network", "Network"),
    ("/insights", "Insights"),
    ("/audience", "Audience"),
    ("/onchain", "On-chain"),
    ("/email", "E-mail"),
    ("/settings", "Settings"),
];

/// A page for a signed-in user; `active` is the nav entry's path.
pub fn page(staff: &Staff, title: &str, active: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf" content=(staff.csrf);
                title { (title) " · Rapport" }
                link rel="stylesheet" href="/ui/app.css";
            }
            body {
                header.top {
                    a.brand href="/" title="Press / to find someone" { "Rapport" }
                    nav {
                        @for (href, label) in NAV.iter().filter(|(h, _)| staff.role.can_see_people() || *h == "/audience") {
                            a href=(href) class=@if *href == active { "active" } { (label) }
                        }
                    }
                    div.who {
                        span { (staff.user.email) " · " span.role { (staff.role.as_str()) } }
                        form method="post" action="/logout" {
                            input type="hidden" name="_csrf" value=(staff.csrf);
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    // A page under a section (a person, a segment, an editor) says where it is.
                    @if let Some((href, label)) = NAV.iter().find(|(h, l)| *h == active && !title.starts_with(*l) && *h != "/") {
                        nav.crumbs aria-label="Breadcrumb" { a href=(href) { (label) } " › " span aria-current="page" { (title) } }
                    }
                    h1 { (title) } (body)
                }
                @if staff.role.can_see_people() { script { (maud::PreEscaped(SEARCH_KEY)) } }
            }
        }
    }
}

/// `/` anywhere but in a field: the people search (focused where it is on the page).
const SEARCH_KEY: &str = r#"document.addEventListener("keydown",function(e){var t=document.activeElement&&document.activeElement.tagName;if(e.key!=="/"||e.ctrlKey||e.metaKey||e.altKey||/^(INPUT|TEXTAREA|SELECT)$/.test(t))return;e.preventDefault();var q=document.getElementById("q");if(q){q.focus();}else{location.href="/people";}});"#;

/// A page without navigation (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Rapport" }
                link rel="stylesheet" href="/ui/app.css";
            }
            body { (body) }
        }
    }
}

/// Back to `path` after a change, with what was done shown there (`?msg=`).
pub fn done(path: &str, msg: &str) -> axum::response::Redirect {
    axum::response::Redirect::to(&format!("{path}?msg={}", urlencode(msg)))
}

/// A hidden CSRF field for a form.
pub fn csrf(staff: &Staff) -> Markup {
    html! { input type="hidden" name="_csrf" value=(staff.csrf); }
}

pub async fn css() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], CSS)
}

const CSS: &str = r#"
:root { --ink:#1d2330; --muted:#5b6372; --line:#e3e6eb; --bg:#f5f6f8; --accent:#3451d1; --ok:#17612e; --bad:#8a1c1c; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif; color:var(--ink); background:var(--bg); }
a { color:var(--accent); text-decoration:none; } a:hover { text-decoration:underline; }
/* Links inside running text are underlined: colour alone does not tell them apart. */
p a, li a, .small a, .crumbs a { text-decoration:underline; }
fieldset { border:1px solid var(--line); border-radius:8px; padding:.4rem 1rem .2rem; margin:.8rem 0; } legend { font-weight:600; padding:0 .3rem; }
nav.tabs { display:flex; gap:.3rem; flex-wrap:wrap; margin:0 0 .8rem; align-items:center; }
nav.tabs a { padding:.3rem .7rem; border-radius:6px; color:var(--muted); }
nav.tabs a[aria-current=page] { background:#e8ecfb; color:var(--accent); font-weight:600; }
a.button, nav.tabs a.button { display:inline-block; padding:.35rem .8rem; border-radius:8px; background:var(--accent); color:#fff; font-weight:600; }
article.message { border-left:3px solid var(--line); padding:.3rem .8rem; margin:.6rem 0; }
article.message.staff { border-color:var(--accent); } article.message.note { border-color:#c9a227; background:#fffbea; }
article.message .body { white-space:pre-wrap; overflow-wrap:anywhere; margin-top:.2rem; }
.crumbs { font-size:.85rem; color:var(--muted); margin:-.4rem 0 .2rem; }
header.top { display:flex; align-items:center; gap:1.5rem; background:#fff; border-bottom:1px solid var(--line); padding:.6rem 1.5rem; position:sticky; top:0; z-index:5; }
.brand { font-weight:700; font-size:1.15rem; color:var(--ink); }
header nav { display:flex; gap:.2rem; flex:1; flex-wrap:wrap; }
header nav a { padding:.35rem .7rem; border-radius:6px; color:var(--muted); }
header nav a.active { background:#eef1fc; color:var(--accent); font-weight:600; }
.who { display:flex; gap:.8rem; align-items:center; color:var(--muted); font-size:.9rem; }
.role { background:#eef1fc; color:var(--accent); border-radius:10px; padding:0 .5rem; }
main { max-width:1200px; margin:0 auto; padding:1.2rem 1.5rem 3rem; }
main.narrow { max-width:26rem; margin-top:4rem; background:#fff; border-radius:12px; padding:2rem; box-shadow:0 2px 12px rgba(0,0,0,.06); }
h1 { font-size:1.5rem; margin:.4rem 0 1rem; } h2 { font-size:1.1rem; margin:0 0 .6rem; }
.grid { display:grid; grid-template-columns:repeat(auto-fit,minmax(260px,1fr)); gap:1rem; }
.card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:1rem 1.2rem; min-width:0; overflow-x:auto; }
.card.wide { grid-column:1/-1; }
.grid.wide-cards { grid-template-columns:repeat(auto-fit,minmax(340px,1fr)); }
.quote { font-style:italic; } details pre { white-space:pre-wrap; overflow-wrap:anywhere; margin:.2rem 0; }
@media (min-width: 900px) { .card.half { grid-column:span 2; } }
.figures { display:flex; flex-wrap:wrap; gap:.4rem 1.2rem; align-items:center; margin:0 0 1rem; }
.figure strong { font-size:1.05rem; }
.kpi { font-size:1.8rem; font-weight:700; } .kpi small { font-size:.85rem; color:var(--muted); font-weight:400; }
.muted { color:var(--muted); } .small { font-size:.85rem; }
table { width:100%; border-collapse:collapse; table-layout:auto; } td { overflow-wrap:anywhere; } th, td:first-child { white-space:nowrap; }
code { overflow-wrap:anywhere; } th,td { text-align:left; padding:.4rem .5rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:.8rem; text-transform:uppercase; letter-spacing:.03em; color:var(--muted); }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
label { display:block; font-weight:600; margin:.7rem 0 .25rem; }
input, select, textarea { font:inherit; padding:.5rem .6rem; border:1px solid #c8ccd4; border-radius:8px; width:100%; background:#fff; }
input[type=checkbox] { width:auto; margin:0 .4rem 0 0; vertical-align:middle; }
label.check { font-weight:400; }
textarea { min-height:7rem; font-family:ui-monospace,Menlo,monospace; font-size:.9rem; }
button { font:inherit; font-weight:600; padding:.5rem 1rem; border:0; border-radius:8px; background:var(--accent); color:#fff; cursor:pointer; margin-top:.7rem; }
button.secondary { background:#fff; color:var(--accent); border:1px solid var(--accent); }
button.danger { background:#fff; color:var(--bad); border:1px solid var(--bad); }
button.link { background:none; color:var(--accent); padding:0; margin:0; font-weight:400; }
button.link.danger { border:none; color:var(--bad); }
form.inline { display:inline; margin:0; }
.row { display:flex; gap:.6rem; align-items:end; } .row > * { flex:1; }
.error { background:#fdecec; color:var(--bad); border-radius:8px; padding:.6rem .8rem; margin:.6rem 0; white-space:pre-wrap; }
.ok { background:#e5f6ea; color:var(--ok); border-radius:8px; padding:.6rem .8rem; margin:.6rem 0; }
.empty { color:var(--muted); background:#fafbfc; border:1px dashed var(--line); border-radius:8px; padding:1rem; }
.badge { display:inline-block; font-size:.75rem; padding:0 .45rem; border-radius:10px; background:#eef0f3; color:var(--muted); }
.badge.late { background:#fdecec; color:var(--bad); } .badge.verified { background:#e5f6ea; color:var(--ok); } .badge.warn { background:#fff4e0; color:#7a4a00; }
.chip { display:inline-block; padding:.1rem .55rem; margin:.1rem; border-radius:12px; background:#eef1fc; color:var(--accent); font-size:.85rem; white-space:nowrap; }
td button, td .badge, td time { white-space:nowrap; }
.why, td.wrap { white-space:normal; }
figure.chart { margin:0; } figure.chart figcaption { font-weight:600; margin-bottom:.3rem; }
svg { width:100%; height:auto; } svg .grid { stroke:#eceef2; } svg .axis { stroke:#9aa1ad; }
svg .bar { fill:#5b74e0; } svg .line { fill:none; stroke:#3451d1; stroke-width:2; } svg .dot { fill:#3451d1; }
svg text { font-size:11px; fill:#5b6372; } svg .ylab { text-anchor:end; } svg .xlab { text-anchor:middle; } svg .unit { text-anchor:middle; font-weight:600; }
.timeline li { list-style:none; border-left:2px solid var(--line); padding:.2rem 0 .6rem .8rem; margin-left:.3rem; }
.timeline { padding:0; } .timeline .when { color:var(--muted); font-size:.85rem; }
.results a.result { display:block; padding:.5rem .7rem; border-bottom:1px solid var(--line); background:#fff; }
.login h1 { margin-top:0; }
code { background:#f0f2f5; padding:0 .3rem; border-radius:4px; font-size:.85em; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_read_relative() {
        let now = 1_000_000_000_000;
        assert_eq!(ago(now - 10_000, now), "just now");
        assert_eq!(ago(now - 60_000, now), "1 minute ago");
        assert_eq!(ago(now - 5 * 60_000, now), "5 minutes ago");
        assert_eq!(ago(now - 3 * 3_600_000, now), "3 hours ago");
        assert_eq!(ago(now - 86_400_000, now), "1 day ago");
        assert_eq!(ago(now - 40 * 86_400_000, now), "1 month ago");
        assert_eq!(ago(now - 800 * 86_400_000, now), "2 years ago");
        assert_eq!(ago(now + 2 * 3_600_000, now), "in 2 hours");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(-12345), "-12,345");
    }
}
