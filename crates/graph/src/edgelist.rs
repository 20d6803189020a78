//! The edge-list format `rapport graph import-edges` reads: one `source target [weight]`
//! per line, whitespace separated; blank lines and `#` comments skipped; CRLF accepted.
//! The first data line is a header, and skipped, when it cannot be an edge: a single
//! field (SNAP files start with the node count), a non-numeric weight column, or the
//! first two fields are column names such as `source target` or `from to`. Anywhere in
//! the file, a line holding one number alone (a node count, or the `-1` end marker some
//! tools write) is skipped too.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeLine {
    pub line: usize,
    pub source: String,
    pub target: String,
    pub weight: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {field}: {reason}")]
pub struct EdgeLineError {
    pub line: usize,
    pub field: &'static str,
    pub reason: String,
}

const HEADER_WORDS: [&str; 12] = [
    "source", "target", "src", "dst", "from", "to", "node1", "node2", "id1", "id2", "u", "v",
];

/// Parses a whole edge list; the first bad line (after the optional header) is an error
/// naming its number, so a caller can refuse the file before writing anything.
pub fn parse(text: &str) -> Result<Vec<EdgeLine>, EdgeLineError> {
    let mut out = Vec::new();
    let mut seen_data = false;
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !line.contains(char::is_whitespace) && line.parse::<f64>().is_ok() {
            continue;
        }
        let first = !seen_data;
        seen_data = true;
        match parse_line(line, line_no) {
            Ok(e) if first && is_header(&e) => continue,
            Ok(e) => out.push(e),
            Err(_) if first => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn is_header(e: &EdgeLine) -> bool {
    let s = e.source.to_ascii_lowercase();
    let t = e.target.to_ascii_lowercase();
    HEADER_WORDS.contains(&s.as_str()) && HEADER_WORDS.contains(&t.as_str())
}

/// One non-blank, non-comment line.
pub fn parse_line(line: &str, line_no: usize) -> Result<EdgeLine, EdgeLineError> {
    let err = |field, reason: &str| EdgeLineError {
        line: line_no,
        field,
        reason: reason.to_string(),
    };
    let mut fields = line.split_whitespace();
    let source = fields
        .next()
        .ok_or_else(|| err("source", "missing"))?
        .to_string();
    let target = fields
        .next()
        .ok_or_else(|| err("target", "missing: expected `source target [weight]`"))?
        .to_string();
    let weight = match fields.next() {
        None => None,
        Some(w) => {
            let w: f64 = w
                .parse()
                .map_err(|_| err("weight", &format!("'{w}' is not a number")))?;
            if !w.is_finite() || w <= 0.0 {
                return Err(err("weight", "must be a positive finite number"));
            }
            Some(w)
        }
    };
    if fields.next().is_some() {
        return Err(err(
            "line",
            "too many fields: expected `source target [weight]`",
        ));
    }
    Ok(EdgeLine {
        line: line_no,
        source,
        target,
        weight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn snap_file_with_count_header_and_crlf() {
        let edges = parse("4039\r\n1 0 1\r\n2 0 1\r\n-1").unwrap();
        assert_eq!(edges.len(), 2);
        assert_eq!(edges[0].source, "1");
        assert_eq!(edges[0].weight, Some(1.0));
        assert_eq!(edges[1].line, 3);
    }

    #[test]
    fn named_header_comments_and_identifiers() {
        let text =
            "# friends\nsource target weight\nemail:a@x.io social:twitter:bob 2.5\n\nalice bob\n";
        let edges = parse(text).unwrap();
        assert_eq!(edges.len(), 2);
        assert_eq!(edges[0].target, "social:twitter:bob");
        assert_eq!(edges[1].weight, None);
        assert!(parse("source target\na b\n").unwrap().len() == 1);
    }

    #[test]
    fn bad_lines_name_the_line_and_field() {
        let e = parse("a b\nc d x\n").unwrap_err();
        assert_eq!((e.line, e.field), (2, "weight"));
        let e = parse("a b\nc\n").unwrap_err();
        assert_eq!((e.line, e.field), (2, "target"));
        let e = parse("a b\na b -1\n").unwrap_err();
        assert_eq!(e.field, "weight");
        let e = parse("a b 1\na b 1 1\n").unwrap_err();
        assert_eq!((e.line, e.field), (2, "line"));
    }

    proptest! {
        #[test]
        fn round_trips_generated_lists(
            edges in proptest::collection::vec(("[a-z0-9_]{1,8}", "[a-z0-9_]{1,8}", proptest::option::of(1u32..1000)), 1..40),
            crlf in any::<bool>(),
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut text = String::from("# generated");
            text.push_str(nl);
            for (s, t, w) in &edges {
                match w {
                    Some(w) => text.push_str(&format!("{s}\t{t} {w}{nl}")),
                    None => text.push_str(&format!("{s} {t}{nl}")),
                }
            }
            let parsed = parse(&text).unwrap();
            // A first line made only of header words is skipped; nothing else is.
            let skipped = usize::from(is_header(&EdgeLine { line: 0, source: edges[0].0.clone(), target: edges[0].1.clone(), weight: None }));
            prop_assert_eq!(parsed.len(), edges.len() - skipped);
            for (p, (s, t, w)) in parsed.iter().zip(edges.iter().skip(skipped)) {
                prop_assert_eq!(&p.source, s);
                prop_assert_eq!(&p.target, t);
                prop_assert_eq!(p.weight, w.map(|w| w as f64));
            }
        }

        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }
    }
}
