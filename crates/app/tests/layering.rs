//! The app's modules depend on each other in one direction only: a write announces what
//! it changed (`changes`) instead of calling the real-time engine, so `use` lines never
//! form a circle. This test reads the sources and fails on the first circle it finds.

use std::collections::{BTreeMap, BTreeSet};

fn modules() -> BTreeMap<String, BTreeSet<String>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("src") {
        let path = entry.expect("entry").path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let name = name.to_string();
        // A module is `name.rs`, or a folder `name/` (with `mod.rs` or beside `name.rs`):
        // its files count as one module.
        let mut src = String::new();
        if path.is_dir() {
            for f in std::fs::read_dir(&path).expect("folder") {
                src += &std::fs::read_to_string(f.expect("entry").path()).unwrap_or_default();
            }
        } else if path.extension().and_then(|e| e.to_str()) == Some("rs") && name != "lib" {
            src = std::fs::read_to_string(&path).expect("read");
        } else {
            continue;
        }
        let deps: BTreeSet<String> = src
            .match_indices("crate::")
            .map(|(i, m)| {
                src[i + m.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect::<String>()
            })
            .filter(|d| !d.is_empty() && *d != name)
            .collect();
        out.entry(name).or_insert_with(BTreeSet::new).extend(deps);
    }
    out
}

fn circle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(at) = path.iter().position(|p| p == node) {
        return Some(path[at..].to_vec());
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_string());
    for dep in graph.get(node).into_iter().flatten() {
        if let Some(c) = circle(graph, dep, path, done) {
            return Some(c);
        }
    }
    path.pop();
    done.insert(node.to_string());
    None
}

#[test]
fn app_modules_import_each_other_without_a_circle() {
    let graph = modules();
    assert!(graph.contains_key("realtime") && graph.contains_key("changes"));
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = circle(&graph, node, &mut Vec::new(), &mut done) {
            panic!(
                "app modules import each other in a circle: {}",
                c.join(" → ")
            );
        }
    }
}

#[test]
fn no_module_calls_into_the_real_time_engine() {
    for (name, deps) in modules() {
        assert!(
            !deps.contains("realtime"),
            "{name} uses crate::realtime: announce the change with crate::changes instead"
        );
    }
}
