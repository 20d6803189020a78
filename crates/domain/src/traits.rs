//! Profile traits: JSON merge patches (RFC 7396), as both stores apply them
//! (`json_patch` in SQLite, `rapport_merge_patch` in PostgreSQL).

use serde_json::{Map, Value};

/// Applies `patch` to `target` per RFC 7396: objects merge recursively, `null` deletes.
pub fn apply_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                apply_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Whether [`compose`] can express `first` then `second` as one patch. It cannot when
/// `second` patches into an object under a key `first` set to a scalar or deleted: a
/// merge patch has no way to say "replace with this object".
pub fn composable(first: &Value, second: &Value) -> bool {
    match (first, second) {
        (Value::Object(a), Value::Object(b)) => b.iter().all(|(k, v)| match (a.get(k), v) {
            (Some(x @ Value::Object(_)), Value::Object(_)) => composable(x, v),
            (Some(_), Value::Object(_)) => false,
            _ => true,
        }),
        _ => true,
    }
}

/// Composes two patches into one with the same effect as applying `first` then
/// `second`, provided [`composable`] holds. Unlike [`apply_patch`], `null`s are kept so
/// they still delete downstream.
pub fn compose(first: &mut Value, second: &Value) {
    match (first, second) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match (a.get_mut(k), v) {
                    (Some(existing @ Value::Object(_)), Value::Object(_)) => compose(existing, v),
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (first, second) => *first = second.clone(),
    }
}

/// Whether a serialised patch is an object with no `null` and no object values, so
/// applying it is a shallow key overwrite.
pub fn is_flat_patch(json: &str) -> bool {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(o)) => o.values().all(|v| !v.is_null() && !v.is_object()),
        _ => false,
    }
}

/// A person's traits across merged raw profiles: applied oldest update first, so the
/// most recent value of each key wins.
pub fn merged_view(mut members: Vec<(Value, i64)>) -> Value {
    members.sort_by_key(|(_, at)| *at);
    let mut out = Value::Object(Map::new());
    for (t, _) in members {
        if let Value::Object(o) = t {
            for (k, v) in o {
                if let Value::Object(m) = &mut out {
                    // The first campaign of the person is the earliest of its profiles'.
                    if k == "first_touch" && touch_at(m.get(&k)) <= touch_at(Some(&v)) {
                        continue;
                    }
                    m.insert(k, v);
                }
            }
        }
    }
    out
}

/// When a `first_touch` value happened; values without a time rank last.
fn touch_at(v: Option<&Value>) -> i64 {
    match v {
        None => i64::MAX,
        Some(v) => v.get("at").and_then(Value::as_i64).unwrap_or(i64::MAX - 1),
    }
}

/// A display name from the usual trait spellings.
pub fn display_name(traits: &Value) -> Option<String> {
    if let Some(n) = traits.get("name").and_then(Value::as_str) {
        return Some(n.to_string());
    }
    let first = traits
        .get("firstName")
        .or_else(|| traits.get("first_name"))
        .and_then(Value::as_str);
    let last = traits
        .get("lastName")
        .or_else(|| traits.get("last_name"))
        .and_then(Value::as_str);
    match (first, last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(f), None) => Some(f.to_string()),
        (None, Some(l)) => Some(l.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn rfc7396_examples() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        apply_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
    }

    #[test]
    fn the_earliest_first_touch_of_merged_profiles_wins() {
        let a = json!({"first_touch": {"source": "a", "at": 5}, "name": "Ann"});
        let b = json!({"first_touch": {"source": "b", "at": 9}, "name": "Annie"});
        let c = json!({"first_touch": {"source": "c"}});
        let v = merged_view(vec![(b.clone(), 2), (a.clone(), 1), (c.clone(), 3)]);
        assert_eq!(v["first_touch"]["source"], "a");
        assert_eq!(v["name"], "Annie");
        let v = merged_view(vec![(a, 3), (b, 1)]);
        assert_eq!(v["first_touch"]["source"], "a");
        // A value without a time still shows when it is the only one.
        let v = merged_view(vec![(c, 1), (json!({"x": 1}), 2)]);
        assert_eq!(v["first_touch"]["source"], "c");
    }

    #[test]
    fn flat_patches() {
        assert!(is_flat_patch(r#"{"a": 1, "b": [1, {"x": null}]}"#));
        assert!(!is_flat_patch(r#"{"a": null}"#));
        assert!(!is_flat_patch(r#"{"a": {"b": 1}}"#));
        assert!(!is_flat_patch("[1]"));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0i32..5).prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            proptest::collection::btree_map("[abc]", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        })
    }

    fn arb_obj() -> impl Strategy<Value = Value> {
        proptest::collection::btree_map("[abc]", arb_json(), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    proptest! {
        #[test]
        fn compose_equals_sequential_application(p0 in arb_obj(), p1 in arb_obj(), p2 in arb_obj()) {
            // Stored traits are objects without nulls: what patches leave behind.
            let mut t = Value::Object(Map::new());
            apply_patch(&mut t, &p0);
            let mut seq = t.clone();
            apply_patch(&mut seq, &p1);
            apply_patch(&mut seq, &p2);
            let mut c = p1.clone();
            if composable(&p1, &p2) {
                compose(&mut c, &p2);
                let mut once = t.clone();
                apply_patch(&mut once, &c);
                prop_assert_eq!(seq, once);
            }
        }
    }
}
