//! What the app's editors share: condition-and-points rows (offers' scores, custom
//! scores' terms) read from and written to a form, and a store refusal put in the
//! form's words.

use maud::{html, Markup};
use rapport_store::StoreError;
use serde_json::{json, Value};
use std::collections::HashMap;

/// `when<i>` / `points<i>` pairs, `0..n`, as `[{"when", "points"}]`; an empty pair is
/// skipped, half a pair is refused naming the missing field.
pub fn terms(f: &HashMap<String, String>, n: usize) -> Result<Vec<Value>, String> {
    let get = |k: &str| f.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut out = Vec::new();
    for i in 0..n {
        match (get(&format!("when{i}")), get(&format!("points{i}"))) {
            (None, None) => {}
            (Some(w), Some(p)) => {
                let p: f64 = p.parse().map_err(|_| format!("points{i}: a number"))?;
                out.push(json!({"when": w, "points": p}));
            }
            (Some(_), None) => {
                return Err(format!("points{i}: how many points the condition is worth"))
            }
            (None, Some(_)) => return Err(format!("when{i}: the condition the points are for")),
        }
    }
    Ok(out)
}

/// Saved terms back into `when<i>` / `points<i>` fields.
pub fn terms_into(terms: &Value, n: usize, f: &mut HashMap<String, String>) {
    for (i, t) in terms.as_array().into_iter().flatten().take(n).enumerate() {
        f.insert(
            format!("when{i}"),
            t["when"].as_str().unwrap_or_default().to_string(),
        );
        f.insert(format!("points{i}"), t["points"].to_string());
    }
}

/// The `n` condition-and-points rows of a form.
pub fn term_rows(f: &HashMap<String, String>, n: usize) -> Markup {
    let v = |k: &str| f.get(k).cloned().unwrap_or_default();
    html! {
        @for i in 0..n {
            div.row {
                div { label for=(format!("when{i}")) { "Condition " (i + 1) } input id=(format!("when{i}")) name=(format!("when{i}")) value=(v(&format!("when{i}"))); }
                div { label for=(format!("points{i}")) { "Points" } input id=(format!("points{i}")) name=(format!("points{i}")) value=(v(&format!("points{i}"))) inputmode="decimal"; }
            }
        }
    }
}

/// A refusal of a list the form edits one item of (`offers[3].eligible: …`), with the
/// item's index taken off the field (`eligible: …`); other errors as they are.
pub fn refusal(e: StoreError) -> String {
    match e {
        StoreError::Invalid { field, reason } => {
            let field = field
                .split_once("].")
                .map_or(field.clone(), |(_, f)| f.to_string());
            format!("{field}: {reason}")
        }
        e => e.to_string(),
    }
}

/// Form fields from pairs, for the editors' tests.
#[cfg(test)]
pub fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_read_and_write_back() {
        let f = fields(&[
            ("when0", "has email"),
            ("points0", "10"),
            ("when2", "has wallet"),
            ("points2", "2.5"),
        ]);
        let t = Value::Array(terms(&f, 5).unwrap());
        assert_eq!(
            t,
            json!([{"when": "has email", "points": 10.0}, {"when": "has wallet", "points": 2.5}])
        );
        let mut back = HashMap::new();
        terms_into(&t, 5, &mut back);
        assert_eq!(Value::Array(terms(&back, 5).unwrap()), t);
        assert!(terms(&fields(&[("when1", "x")]), 5)
            .unwrap_err()
            .starts_with("points1:"));
        assert!(terms(&fields(&[("points1", "x")]), 5)
            .unwrap_err()
            .starts_with("when1:"));
        assert!(terms(&fields(&[("when0", "x"), ("points0", "many")]), 5)
            .unwrap_err()
            .starts_with("points0:"));
    }

    #[test]
    fn refusals_lose_the_list_index() {
        let e = StoreError::invalid("offers[3].eligible", "bad");
        assert_eq!(refusal(e), "eligible: bad");
        let e = StoreError::invalid("name", "bad");
        assert_eq!(refusal(e), "name: bad");
    }
}
