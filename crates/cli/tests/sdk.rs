//! The official Segment and RudderStack Python SDKs, installed from PyPI into a venv
//! at test time and used unchanged, deliver every call type to Rapport.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// A venv with both SDKs, created once per build directory.
fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        common::python_venv(
            "sdk-venv",
            "segment.analytics, rudderstack.analytics",
            &[
                "segment-analytics-python==2.4.0",
                "rudder-sdk-python==2.1.9",
            ],
        )
    })
    .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_and_rudderstack_sdks_work_unchanged() {
    let py = python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/send.py");
    for s in common::servers().await {
        for (sdk, gzip) in [("segment", false), ("segment", true), ("rudderstack", true)] {
            let run = format!("{sdk}{}", if gzip { "gz" } else { "" });
            let (py, url, key, run2) = (py.clone(), s.url.clone(), s.write.clone(), run.clone());
            let out = tokio::task::spawn_blocking(move || {
                let mut c = Command::new(py);
                c.arg(script).args([sdk, &url, &key, &run2]);
                if gzip {
                    c.arg("gzip");
                }
                c.output().expect("run python")
            })
            .await
            .unwrap();
            assert!(
                out.status.success(),
                "[{}] {sdk}: {}{}",
                s.kind,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );

            // One person: anonymous visit, identify, alias, all on one profile.
            let p = s.profile_of(&format!("user_id:{run}-user")).await;
            assert_eq!(
                s.profile_of(&format!("user_id:{run}-new-id")).await["id"],
                p["id"],
                "[{}] {sdk} alias",
                s.kind
            );
            assert_eq!(
                s.profile_of(&format!("anonymous_id:{run}-anon")).await["id"],
                p["id"]
            );
            assert_eq!(
                s.profile_of(&format!("email:{run}@example.com")).await["id"],
                p["id"]
            );
            assert_eq!(
                s.profile_of(&format!("social:x:sdk_{run}")).await["id"],
                p["id"]
            );
            assert_eq!(p["traits"]["name"], "SDK Person");
            let (_, tl) = s
                .get(&format!("/api/profiles/{}/timeline?limit=50", p["id"]))
                .await;
            let mut types: Vec<&str> = tl["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["type"].as_str().unwrap())
                .collect();
            types.sort();
            assert_eq!(
                types,
                vec!["alias", "group", "identify", "page", "screen", "track", "track"],
                "[{}] {sdk}",
                s.kind
            );
            let order = tl["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == "Order Completed")
                .unwrap();
            assert_eq!(order["properties"]["revenue"], 42.5);
            assert_eq!(order["text"], "Great stuff!");
            assert!(
                order["context"]["library"]["name"]
                    .as_str()
                    .unwrap()
                    .contains("python"),
                "{order}"
            );
        }
        s.finish().await;
    }
}
