//! What each fuzz target checks, as plain functions: `cargo fuzz run <target>` feeds
//! them generated inputs, and `tests/corpus.rs` replays the kept corpora under
//! `cargo test`, so a finding once fixed stays fixed. A check fails by panicking.
//!
//! Beyond "never panics", each checks a property a user relies on: a normalised
//! identifier parses back to itself; an accepted segment compiles for both stores and
//! evaluates; an accepted edge list has no empty endpoints or odd weights.

use rapport_domain::message::{parse_body, parse_line, MessageType};
use rapport_domain::{IdentityKey, IdentityKind};
use serde_json::json;

const NOW: i64 = 1_795_435_200_000;

/// A Segment request body; the first byte picks the route (`/v1/batch` or one type).
pub fn message(data: &[u8]) {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    let endpoint = match route % 7 {
        0 => None,
        1 => Some(MessageType::Identify),
        2 => Some(MessageType::Track),
        3 => Some(MessageType::Page),
        4 => Some(MessageType::Screen),
        5 => Some(MessageType::Group),
        _ => Some(MessageType::Alias),
    };
    if let Ok(messages) = parse_body(body, endpoint, NOW, None) {
        for m in &messages {
            // What is stored must be JSON a reader can parse back, at a sane time.
            for j in [
                Some(&m.properties_json),
                Some(&m.context_json),
                m.traits_json.as_ref(),
            ]
            .into_iter()
            .flatten()
            {
                assert!(serde_json::from_str::<serde_json::Value>(j).is_ok(), "{j}");
            }
            assert!(m.occurred_at >= 0, "stored before 1970: {}", m.occurred_at);
        }
    }
}

/// One JSON Lines import record.
pub fn jsonl_line(data: &[u8]) {
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = parse_line(line, 1, NOW);
    }
}

/// A segment definition: parsed, then compiled for both stores and evaluated.
pub fn segment(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut expr) = rapport_segment::parse(src) else {
        return;
    };
    use rapport_segment::sql::{compile, Dialect};
    for d in [Dialect::Sqlite, Dialect::Postgres] {
        let c = compile(&expr, d, NOW);
        assert!(!c.condition.is_empty());
    }
    let person = rapport_segment::eval::Person {
        traits: json!({"plan": "pro", "age": 30, "tags": ["a"]}),
        ..Default::default()
    };
    let _ = rapport_segment::eval::eval(&expr, &person, NOW);
    let mut table = Vec::new();
    rapport_segment::assign_slots(&mut expr, &mut table);
    let _ = rapport_segment::eval::eval(&expr, &person, NOW);
}

/// An identifier of the kind the first byte picks: a normalised value must parse back
/// to itself, bare and prefixed (lookups and edge lists use the prefixed form).
pub fn identifier(data: &[u8]) {
    let Some((&k, raw)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(raw) else {
        return;
    };
    let kind = IdentityKind::ALL[k as usize % IdentityKind::ALL.len()];
    let Ok(key) = IdentityKey::parse(kind, raw) else {
        return;
    };
    let again = IdentityKey::parse(kind, &key.value).unwrap_or_else(|e| {
        panic!(
            "{kind} {:?} normalised to {:?}, refused: {e}",
            raw, key.value
        )
    });
    assert_eq!(again, key, "{kind} {raw:?} is not stable");
    let prefixed = IdentityKey::parse_prefixed(&format!("{kind}:{}", key.value))
        .unwrap_or_else(|e| panic!("prefixed {kind}:{} refused: {e}", key.value));
    assert_eq!(prefixed, key, "prefixed {kind}:{} differs", key.value);
}

/// A CSV profile import, read and mapped as `rapport import profiles` does.
pub fn import_csv(data: &[u8]) {
    use rapport_domain::import::{mapping, row_message};
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(data);
    let Ok(headers) = rdr.headers() else {
        return;
    };
    let headers: Vec<String> = headers.iter().map(str::to_string).collect();
    let Ok(map) = mapping(None, &headers) else {
        return;
    };
    let mut record = csv::StringRecord::new();
    while let Ok(true) = rdr.read_record(&mut record) {
        let fields: Vec<&str> = record.iter().collect();
        let _ = row_message(&map, &fields, NOW);
    }
}

/// A relationship edge list.
pub fn edgelist(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(lines) = rapport_graph::edgelist::parse(text) {
        for l in lines {
            assert!(!l.source.is_empty() && !l.target.is_empty(), "{l:?}");
            if let Some(w) = l.weight {
                assert!(w.is_finite(), "{l:?}");
            }
        }
    }
}

/// A Sign-In with Ethereum message (the signature is random, so this checks parsing
/// and the field rules up to the signature check).
pub fn siwe(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sig = format!("0x{}", "1b".repeat(65));
    let _ = rapport_chain::siwe::verify(text, &sig, "shop.example", &[1, 8453], NOW);
}

/// E-mail: an inbound report (DSN / ARF, `POST /api/email/inbound`), and text staff or
/// data put in a template: compiled, rendered, and turned into the text part.
pub fn email(data: &[u8]) {
    let _ = rapport_email::bounce::read(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let plain = rapport_email::template::html_to_text(text);
    assert!(plain.ends_with('\n'), "{plain:?}");
    let src = rapport_email::template::Source {
        subject: text.lines().next().unwrap_or("").to_string(),
        html: text.to_string(),
        text: None,
    };
    match rapport_email::template::Compiled::new(&src) {
        Ok(t) => {
            let _ = t.render_with(
                &serde_json::json!({"traits": {"name": "Ann"}, "data": {"x": "<b>é</b>"}}),
                Some(&rapport_email::template::Links {
                    unsubscribe: "https://c/e/u/t",
                    preferences: "https://c/me",
                }),
            );
        }
        Err(e) => assert!(e.line >= 1 && e.column >= 1, "{e:?}"),
    }
}
