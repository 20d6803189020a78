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

/// Per top-level trait key, the event time (ms) of the value a profile holds: a value
/// is replaced only by one at least as recent, so a late batch (a mobile SDK flushing
/// hours later) never overwrites newer values, and one message's keys do not carry
/// another's older keys along (docs/identity.md, "Traits").
pub type TraitTimes = Map<String, Value>;

fn time_of(times: &TraitTimes, key: &str) -> Option<i64> {
    times.get(key).and_then(Value::as_i64)
}

/// The part of `patch` that is at least as recent as what is stored: keys whose time in
/// `times` is not older than the stored key's (`stored`; a key never set is older than
/// anything). A key missing from `times` is as recent as the newest (admin edits).
pub fn fresh_patch(
    stored: &TraitTimes,
    patch: &Map<String, Value>,
    times: &TraitTimes,
) -> Map<String, Value> {
    patch
        .iter()
        .filter(|(k, _)| match (time_of(times, k), time_of(stored, k)) {
            (Some(t), Some(s)) => t >= s,
            _ => true,
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The stored times after [`fresh_patch`]'s keys were written: per key, the later.
pub fn later_times(stored: &mut TraitTimes, times: &TraitTimes) {
    for (k, v) in times {
        let Some(t) = v.as_i64() else { continue };
        if time_of(stored, k).is_none_or(|s| s <= t) {
            stored.insert(k.clone(), Value::from(t));
        }
    }
}

/// A person's traits across merged raw profiles `(traits, times, updated_at)`: each
/// top-level key takes the value of the member that set it last (by the key's time, else
/// the member's `traits_updated_at`; ties to the later member in the list).
pub fn merged_view(members: Vec<(Value, Value, i64)>) -> Value {
    let mut out = Map::new();
    let mut at: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for (t, times, updated) in members {
        let Value::Object(o) = t else { continue };
        let times = times.as_object();
        for (k, v) in o {
            // The first campaign of the person is the earliest of its profiles'.
            if k == "first_touch" {
                if touch_at(out.get(&k)) > touch_at(Some(&v)) {
                    out.insert(k, v);
                }
                continue;
            }
            let when = times.and_then(|ts| time_of(ts, &k)).unwrap_or(updated);
            if at.get(&k).is_none_or(|prev| *prev <= when) {
                at.insert(k.clone(), when);
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
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
        let e = || json!({});
        let v = merged_view(vec![
            (b.clone(), e(), 2),
            (a.clone(), e(), 1),
            (c.clone(), e(), 3),
        ]);
        assert_eq!(v["first_touch"]["source"], "a");
        assert_eq!(v["name"], "Annie");
        let v = merged_view(vec![(a, e(), 3), (b, e(), 1)]);
        assert_eq!(v["first_touch"]["source"], "a");
        // A value without a time still shows when it is the only one.
        let v = merged_view(vec![(c, e(), 1), (json!({"x": 1}), e(), 2)]);
        assert_eq!(v["first_touch"]["source"], "c");
    }

    #[test]
    fn each_key_is_the_latest_set_whichever_member_holds_it() {
        // The issue's case: Robert (10-01) on the user profile, Bob (11-20) on a device,
        // then an admin edit of another key on the user profile (12-01): still Bob.
        let user = json!({"name": "Robert", "email": "r@x", "tier": "gold"});
        let user_t = json!({"name": 1001, "email": 1001, "tier": 1201});
        let device = json!({"name": "Bob", "email": "r@x"});
        let device_t = json!({"name": 1120, "email": 1121});
        let v = merged_view(vec![(user, user_t, 1201), (device, device_t, 1121)]);
        assert_eq!(v, json!({"name": "Bob", "email": "r@x", "tier": "gold"}));
    }

    #[test]
    fn late_values_do_not_overwrite_newer_ones() {
        let mut stored = Map::new();
        let p1 = json!({"plan": "pro"});
        later_times(
            &mut stored,
            &json!({"plan": 1201}).as_object().unwrap().clone(),
        );
        let late = fresh_patch(
            &stored,
            json!({"plan": "free", "seats": 3}).as_object().unwrap(),
            json!({"plan": 1101, "seats": 1101}).as_object().unwrap(),
        );
        assert_eq!(Value::Object(late), json!({"seats": 3}));
        // Same time: the later arrival wins; an untimed (admin) key always applies.
        let same = fresh_patch(
            &stored,
            p1.as_object().unwrap(),
            json!({"plan": 1201}).as_object().unwrap(),
        );
        assert_eq!(same.len(), 1);
        let admin = fresh_patch(&stored, p1.as_object().unwrap(), &Map::new());
        assert_eq!(admin.len(), 1);
        later_times(&mut stored, json!({"plan": 1101}).as_object().unwrap());
        assert_eq!(stored["plan"], 1201);
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
