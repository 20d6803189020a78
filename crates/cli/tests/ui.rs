//! The staff web app: every page renders for every role without server errors, role and
//! CSRF checks hold (HTTP), and a person uses the app in Debian's headless Chromium
//! (tools/e2e/run.js with playwright-core as the driver) on the demo data, with
//! screenshots saved under target/screenshots/.

mod common;

use common::{start, stores, TestServer};
use rapport_app::demo::DemoSize;
use serde_json::json;
use std::collections::HashMap;

const PASSWORD: &str = "correct horse battery";
const ROLES: [&str; 4] = ["admin", "marketer", "agent", "viewer"];
const PAGES: [&str; 16] = [
    "/",
    "/people",
    "/people?q=example",
    "/segments",
    "/rules",
    "/network",
    "/scores",
    "/insights",
    "/onchain",
    "/email",
    "/settings",
    "/people/1",
    "/people/conflicts",
    "/support",
    "/support?view=all",
    "/loyalty",
];

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Staff accounts `<role>@shop.example` for these roles.
async fn staff(s: &TestServer, roles: &[&str]) {
    for r in roles {
        rapport_app::users::create(&s.store, &format!("{r}@shop.example"), PASSWORD, r)
            .await
            .expect("user");
    }
}

/// Signs in; returns the session cookie.
async fn sign_in(s: &TestServer, email: &str) -> String {
    let r = client()
        .post(format!("{}/login", s.url))
        .form(&[("email", email), ("password", PASSWORD), ("next", "/")])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status().as_u16(), 303, "[{}] sign-in of {email}", s.kind);
    let c = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
    c.split(';').next().expect("pair").to_string()
}

async fn get(s: &TestServer, cookie: &str, path: &str) -> (u16, String) {
    let r = client()
        .get(format!("{}{path}", s.url))
        .header("cookie", cookie)
        .send()
        .await
        .expect("get");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("csrf meta")
        .to_string()
}

async fn post(s: &TestServer, cookie: &str, path: &str, form: &[(&str, &str)]) -> u16 {
    client()
        .post(format!("{}{path}", s.url))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .expect("post")
        .status()
        .as_u16()
}

async fn with_demo(store: &rapport_store::DynStore) {
    // As `rapport serve --demo` loads it, smaller.
    let size = DemoSize {
        people: 300,
        events_per_person: 12,
    };
    rapport_app::demo::load_all(store, size, &|_| {})
        .await
        .expect("demo");
    for r in ROLES {
        rapport_app::users::create(store, &format!("{r}@shop.example"), PASSWORD, r)
            .await
            .expect("user");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_for_every_role_and_checks_hold() {
    for (store, dir, pg) in stores().await {
        // Loaded before the server starts, as `rapport serve --demo` does: the dashboard
        // is warmed and the rules run on the demo's events of today.
        with_demo(&store).await;
        let s = start(store, dir, pg).await;
        // Not signed in: every page sends to the sign-in form.
        let (st, _) = get(&s, "", "/people").await;
        assert_eq!(st, 303);
        let r = client()
            .post(format!("{}/login", s.url))
            .form(&[
                ("email", "admin@shop.example"),
                ("password", "wrong password"),
            ])
            .send()
            .await
            .expect("login");
        assert_eq!(r.status().as_u16(), 401);
        let mut cookies = HashMap::new();
        for role in ROLES {
            let c = sign_in(&s, &format!("{role}@shop.example")).await;
            for p in PAGES {
                let t = std::time::Instant::now();
                let (st, body) = get(&s, &c, p).await;
                assert_eq!(st, 200, "[{}] {role} {p}: {body}", s.kind);
                assert!(
                    !body.contains("Something went wrong"),
                    "[{}] {role} {p}",
                    s.kind
                );
                assert!(
                    body.contains(&format!("{role}@shop.example")),
                    "[{}] {role} {p}",
                    s.kind
                );
                eprintln!("[{}] {role} {p}: {} ms", s.kind, t.elapsed().as_millis());
                // People are shown by name, never as a bare id.
                if p == "/network" {
                    assert!(
                        body.contains("href=\"/people/"),
                        "[{}] no one listed",
                        s.kind
                    );
                }
                for link in body.split("href=\"/people/").skip(1) {
                    let text = link.split_once('>').map_or("", |(_, t)| t);
                    assert!(
                        !text.starts_with('#'),
                        "[{}] {p} links a person by id: {}",
                        s.kind,
                        &link[..link.len().min(120)]
                    );
                }
            }
            cookies.insert(role, c);
        }
        // The audit of staff access: the person pages just opened are in it; admins only.
        let (st, body) = get(&s, &cookies["admin"], "/audit?target=person:1").await;
        assert!(
            st == 200 && body.contains("profile.view") && body.contains("ui:viewer@shop.example"),
            "[{}] {st} {body}",
            s.kind
        );
        assert_eq!(
            get(&s, &cookies["viewer"], "/audit").await.0,
            403,
            "[{}]",
            s.kind
        );
        let (_, person) = get(&s, &cookies["admin"], "/people/1").await;
        assert!(
            person.contains("/people/1/export") && person.contains("/people/1/erase"),
            "[{}]",
            s.kind
        );
        let (_, person) = get(&s, &cookies["marketer"], "/people/1").await;
        assert!(
            !person.contains("/people/1/erase"),
            "[{}] only admins erase",
            s.kind
        );
        // The E-mail section: a template's preview for a person, and the 360's e-mail card.
        let (st, t) = s
            .send(
                reqwest::Method::POST,
                "/api/email/templates",
                serde_json::json!({"name": "hello", "subject": "Hi {{ traits.name | default('you') }}", "html": "<p>Hello <b>{{ email }}</b></p>"}),
            )
            .await;
        assert_eq!(st, 201, "[{}] {t}", s.kind);
        let (_, people) = s.get("/api/profiles?limit=1&q=%40").await;
        let pid = people["items"][0]["id"].as_i64().expect("a demo person");
        let (st, body) = get(
            &s,
            &cookies["viewer"],
            &format!("/email/templates/{}?profile={pid}", t["id"]),
        )
        .await;
        assert_eq!(st, 200, "[{}] {body}", s.kind);
        assert!(
            body.contains("Subject: <b>Hi ") && body.contains("srcdoc="),
            "[{}] {body}",
            s.kind
        );
        let (st, body) = get(
            &s,
            &cookies["viewer"],
            &format!("/email/templates/{}?profile=999999", t["id"]),
        )
        .await;
        assert_eq!(st, 200);
        assert!(
            body.contains("role=\"alert\""),
            "[{}] an unknown person is an error shown on the page",
            s.kind
        );
        let (st, body) = get(&s, &cookies["agent"], &format!("/people/{pid}")).await;
        assert_eq!(st, 200);
        assert!(
            body.contains("<h2>E-mail</h2>") && body.contains("Sends go to"),
            "[{}] the 360's e-mail card",
            s.kind
        );
        // Templates written and changed in the app, campaigns made (with an A/B test) and
        // steered there; a viewer may do neither.
        let (_, html) = get(&s, &cookies["marketer"], "/email").await;
        assert!(html.contains("New template"), "[{}]", s.kind);
        let et = csrf_of(&html);
        let form_post = |cookie: String, path: String, form: Vec<(&'static str, String)>| {
            let url = format!("{}{path}", s.url);
            async move {
                let r = client()
                    .post(url)
                    .header("cookie", cookie)
                    .form(&form)
                    .send()
                    .await
                    .expect("post");
                let to = r
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                (r.status().as_u16(), to, r.text().await.unwrap_or_default())
            }
        };
        let viewer_token = csrf_of(&get(&s, &cookies["viewer"], "/email").await.1);
        let tpl = |name: &str, subject: &str, html: &str| {
            vec![
                ("_csrf", et.clone()),
                ("name", name.to_string()),
                ("subject", subject.to_string()),
                ("html", html.to_string()),
                ("text", String::new()),
            ]
        };
        let (st, _, body) = form_post(
            cookies["marketer"].clone(),
            "/email/templates".into(),
            tpl("broken", "Hi", "<p>{{ oops </p>"),
        )
        .await;
        assert!(
            st == 400 && body.contains("line 1"),
            "[{}] {st} {body}",
            s.kind
        );
        let (st, _, _) = form_post(cookies["viewer"].clone(), "/email/templates".into(), {
            let mut f = tpl("v", "Hi", "<p>x</p>");
            f[0].1 = viewer_token.clone();
            f
        })
        .await;
        assert_eq!(st, 403, "[{}] a viewer writes no template", s.kind);
        let (st, to, body) = form_post(
            cookies["marketer"].clone(),
            "/email/templates".into(),
            tpl("promo", "Promo", "<p>Hi {{ email }}</p>"),
        )
        .await;
        assert_eq!(st, 303, "[{}] {body}", s.kind);
        assert!(to.starts_with("/email/templates/"), "{to}");
        let mut edit = tpl("", "Promo for {{ email }}", "<p>Changed</p>");
        edit.retain(|(k, _)| *k != "name");
        let (st, _, body) = form_post(cookies["marketer"].clone(), to.clone(), edit).await;
        assert_eq!(st, 303, "[{}] {body}", s.kind);
        let (_, v) = s.get("/api/email/templates").await;
        let promo = v
            .as_array()
            .and_then(|a| a.iter().find(|t| t["name"] == "promo"))
            .cloned()
            .expect("promo saved");
        assert_eq!(promo["subject"], "Promo for {{ email }}", "[{}]", s.kind);
        let (st, _) = s
            .send(
                reqwest::Method::POST,
                "/api/email/domains",
                serde_json::json!({"domain": "shop.example"}),
            )
            .await;
        assert_eq!(st, 409, "[{}] the demo set the shop's domain up", s.kind);
        let campaign = |cookie: String, token: String, ab_subject: &str| {
            form_post(
                cookie,
                "/email/campaigns".into(),
                vec![
                    ("_csrf", token),
                    ("name", "Promo".into()),
                    ("template", promo["id"].to_string()),
                    ("from", "news@shop.example".into()),
                    ("segment", String::new()),
                    ("profiles", format!("{pid}")),
                    ("kind", "marketing".into()),
                    ("per_minute", String::new()),
                    ("send_at", String::new()),
                    ("ab_subject", ab_subject.into()),
                    ("ab_template", String::new()),
                    ("ab_sample", "50".into()),
                    ("ab_metric", "click".into()),
                    ("ab_wait", "60".into()),
                    ("start", String::new()),
                ],
            )
        };
        let (st, _, body) = campaign(cookies["marketer"].clone(), et.clone(), "B {{ oops").await;
        assert!(
            st == 400 && body.contains("ab.variants[1].subject"),
            "[{}] {st} {body}",
            s.kind
        );
        assert_eq!(
            campaign(cookies["viewer"].clone(), viewer_token.clone(), "B")
                .await
                .0,
            403
        );
        let (st, to, body) = campaign(cookies["marketer"].clone(), et.clone(), "Last chance").await;
        assert_eq!(st, 303, "[{}] {body}", s.kind);
        let (st, html) = get(&s, &cookies["viewer"], &to).await;
        assert_eq!(st, 200);
        assert!(
            html.contains("A/B test") && html.contains("Last chance") && html.contains("draft"),
            "[{}] {html}",
            s.kind
        );
        let act = |a: &str| {
            form_post(
                cookies["marketer"].clone(),
                format!("{to}/actions"),
                vec![("_csrf", et.clone()), ("action", a.to_string())],
            )
        };
        let (st, _, body) = act("pause").await;
        assert!(
            st == 400 && body.contains("cannot pause"),
            "[{}] {st} {body}",
            s.kind
        );
        assert_eq!(act("cancel").await.0, 303);
        let (_, v) = s.get(&format!("/api{to}")).await;
        assert_eq!(v["campaign"]["status"], "cancelled", "[{}] {v}", s.kind);
        assert_eq!(v["campaign"]["ab"]["variants"][1]["subject"], "Last chance");
        // Segments' detail page, and the editor's live count (CSRF header required).
        let (_, html) = get(&s, &cookies["marketer"], "/segments").await;
        let csrf = csrf_of(&html);
        assert_eq!(
            post(
                &s,
                &cookies["marketer"],
                "/segments",
                &[
                    ("_csrf", &csrf),
                    ("name", "Pros"),
                    ("definition", "has email")
                ]
            )
            .await,
            303
        );
        let preview = |cookie: String, token: String| {
            let url = format!("{}/ui/segments/preview", s.url);
            async move {
                let r = client()
                    .post(url)
                    .header("cookie", cookie)
                    .header("x-csrf-token", token)
                    .json(&serde_json::json!({"definition": "has email"}))
                    .send()
                    .await
                    .expect("preview");
                (
                    r.status().as_u16(),
                    r.json::<serde_json::Value>().await.unwrap_or_default(),
                )
            }
        };
        let (st, v) = preview(cookies["marketer"].clone(), csrf.clone()).await;
        assert_eq!(st, 200, "{v}");
        assert!(v["count"].as_i64().unwrap_or(0) > 0, "{v}");
        assert_eq!(
            preview(cookies["marketer"].clone(), "nope".into()).await.0,
            403
        );
        // Edit and delete a segment from its page (marketers; a viewer neither sees nor
        // may use the forms; a broken definition changes nothing).
        let (_, list) = s.get("/api/segments").await;
        let pros = list
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == "Pros"))
            .map(|x| x["id"].as_i64().unwrap_or(0))
            .expect("Pros saved");
        let page = format!("/segments/{pros}");
        let (_, html) = get(&s, &cookies["viewer"], &page).await;
        assert!(!html.contains("Delete segment"), "[{}] viewer", s.kind);
        let vt = csrf_of(&html);
        assert_eq!(
            post(
                &s,
                &cookies["viewer"],
                &format!("{page}/delete"),
                &[("_csrf", &vt)]
            )
            .await,
            403
        );
        let (_, html) = get(&s, &cookies["marketer"], &page).await;
        assert!(html.contains("Delete segment") && html.contains("Save changes"));
        let mt = csrf_of(&html);
        let (st, body) = {
            let r = client()
                .post(format!("{}{page}", s.url))
                .header("cookie", &cookies["marketer"])
                .form(&[("_csrf", mt.as_str()), ("definition", "has email and (")])
                .send()
                .await
                .expect("edit");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        };
        assert_eq!(st, 400, "[{}] {body}", s.kind);
        assert!(body.contains("line 1"), "[{}] the error says where", s.kind);
        assert_eq!(
            post(
                &s,
                &cookies["marketer"],
                &page,
                &[
                    ("_csrf", &mt),
                    ("definition", "has phone"),
                    ("description", "callable")
                ]
            )
            .await,
            303
        );
        let (_, v) = s.get(&format!("/api/segments/{pros}")).await;
        assert_eq!(
            (v["definition"].as_str(), v["description"].as_str()),
            (Some("has phone"), Some("callable")),
            "[{}] {v}",
            s.kind
        );
        assert_eq!(
            post(
                &s,
                &cookies["marketer"],
                &format!("{page}/delete"),
                &[("_csrf", &mt)]
            )
            .await,
            303
        );
        assert_eq!(s.get(&format!("/api/segments/{pros}")).await.0, 404);
        // A rule's dry run from its page (marketers), nothing changed.
        let (st, v) = s.send(reqwest::Method::PUT, "/api/rules", serde_json::json!({"rules": [{"name": "Thank buyers",
            "when": "track \"Order Completed\"", "then": [{"action": "add_tag", "tag": "buyer"}]}]})).await;
        assert_eq!(st, 200, "{v}");
        let (_, html) = get(&s, &cookies["marketer"], "/rules").await;
        assert!(html.contains("Dry run (7 days)"));
        let r = client()
            .post(format!("{}/rules/dry-run", s.url))
            .header("cookie", &cookies["marketer"])
            .form(&[("_csrf", csrf_of(&html).as_str()), ("rule", "Thank buyers")])
            .send()
            .await
            .expect("dry run");
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.text().await.unwrap_or_default().contains("Would fire"));
        let (_, html) = get(&s, &cookies["viewer"], "/rules").await;
        assert!(!html.contains("Dry run (7 days)"));
        // Roles: a viewer changes nothing, an agent cannot manage keys or users, a
        // marketer cannot edit people's merges but can edit segments; a wrong CSRF token
        // changes nothing either.
        for (role, path, form, want) in [
            (
                "viewer",
                "/people/1/traits",
                vec![("trait", "vip"), ("value", "true")],
                403,
            ),
            (
                "viewer",
                "/segments",
                vec![("name", "X"), ("definition", "has email")],
                403,
            ),
            (
                "agent",
                "/settings/keys",
                vec![("label", "x"), ("scope", "admin")],
                403,
            ),
            (
                "agent",
                "/settings/users",
                vec![
                    ("email", "x@y.z"),
                    ("password", PASSWORD),
                    ("role", "admin"),
                ],
                403,
            ),
            (
                "agent",
                "/people/1/traits",
                vec![("trait", "vip"), ("value", "true")],
                303,
            ),
            (
                "viewer",
                "/people/1/consents",
                vec![
                    ("channel", "email"),
                    ("purpose", "marketing"),
                    ("status", "denied"),
                ],
                403,
            ),
            (
                "agent",
                "/people/1/consents",
                vec![
                    ("channel", "email"),
                    ("purpose", "bad purpose!"),
                    ("status", "denied"),
                ],
                400,
            ),
            (
                "agent",
                "/people/1/consents",
                vec![
                    ("channel", "Email"),
                    ("purpose", "marketing"),
                    ("status", "denied"),
                ],
                303,
            ),
            (
                "admin",
                "/settings/users",
                vec![
                    ("email", "new@shop.example"),
                    ("password", PASSWORD),
                    ("role", "viewer"),
                ],
                303,
            ),
        ] {
            let c = &cookies[role];
            let (_, html) = get(&s, c, "/").await;
            let token = csrf_of(&html);
            let mut f: Vec<(&str, &str)> = vec![("_csrf", &token)];
            f.extend(form.iter().copied());
            assert_eq!(
                post(&s, c, path, &f).await,
                want,
                "[{}] {role} POST {path}",
                s.kind
            );
            if want != 403 {
                let mut bad: Vec<(&str, &str)> = vec![("_csrf", "forged")];
                bad.extend(form.iter().copied());
                assert_eq!(
                    post(&s, c, path, &bad).await,
                    400,
                    "[{}] {role} POST {path} with a forged token",
                    s.kind
                );
            }
        }
        let (_, html) = get(&s, &cookies["viewer"], "/people/1").await;
        assert!(html.contains("can view but not edit") && !html.contains("id=\"trait\""));
        assert!(!html.contains("Record consent"));
        let (_, p1) = s.get("/api/profiles/1").await;
        let denied = p1["consents"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["channel"] == "email" && c["purpose"] == "marketing" && c["status"] == "denied"
            })
        });
        assert!(
            denied,
            "[{}] the agent's consent was recorded: {p1}",
            s.kind
        );
        // Sign-out ends the session.
        let (_, html) = get(&s, &cookies["viewer"], "/").await;
        assert_eq!(
            post(
                &s,
                &cookies["viewer"],
                "/logout",
                &[("_csrf", &csrf_of(&html))]
            )
            .await,
            303
        );
        assert_eq!(get(&s, &cookies["viewer"], "/").await.0, 303);
        s.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uses_the_app_in_headless_chromium() {
    let (chromium, tools) = common::browser_tools();
    for (store, dir, pg) in stores().await {
        // Loaded before the server starts, as `rapport serve --demo` does: the dashboard
        // is warmed and the rules run on the demo's events of today.
        with_demo(&store).await;
        let s = start(store, dir, pg).await;
        let wallet = s
            .store
            .all_identifiers()
            .await
            .expect("ids")
            .into_iter()
            .find(|(_, k)| k.kind.as_str() == "wallet")
            .expect("a wallet in the demo")
            .1
            .value;
        let address = wallet.rsplit(':').next().expect("address").to_string();
        let merged = s
            .store
            .merges(50)
            .await
            .expect("merges")
            .into_iter()
            .find(|m| m.undone_at.is_none())
            .expect("a merge in the demo")
            .survivor_id;
        let shots = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/screenshots")
            .join(s.kind);
        std::fs::create_dir_all(&shots).expect("screenshots dir");
        let out = tokio::process::Command::new("node")
            .arg(tools.join("run.js"))
            .env("BASE", &s.url)
            .env("ADMIN_EMAIL", "admin@shop.example")
            .env("ADMIN_PASSWORD", PASSWORD)
            .env("VIEWER_EMAIL", "viewer@shop.example")
            .env("VIEWER_PASSWORD", PASSWORD)
            .env("WALLET", &address)
            .env("MERGED_ID", merged.to_string())
            .env("WRITE_KEY", &s.write)
            .env("SHOTS", &shots)
            .env("CHROMIUM", &chromium)
            .output()
            .await
            .expect("node runs");
        assert!(
            out.status.success(),
            "[{}] the browser run failed:\n{}\n{}",
            s.kind,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Each page's weight and audit, for docs/ui.md (shown with --nocapture).
        eprintln!("[{}]\n{}", s.kind, String::from_utf8_lossy(&out.stdout));
        assert!(shots.join("person.png").exists() && shots.join("dashboard.png").exists());
        s.finish().await;
    }
}

/// Sign-in is throttled per account and per address (429 with Retry-After, checked
/// before the password), and only redirects to a path on this site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_throttled_and_redirects_only_here() {
    for (store, dir, pg) in stores().await {
        let s = start(store, dir, pg).await;
        rapport_app::users::create(&s.store, "ann@shop.example", PASSWORD, "admin")
            .await
            .expect("user");
        let attempt = |password: &'static str, next: &'static str| {
            let url = format!("{}/login", s.url);
            async move {
                client()
                    .post(url)
                    .form(&[
                        ("email", "ann@shop.example"),
                        ("password", password),
                        ("next", next),
                    ])
                    .send()
                    .await
                    .expect("login")
            }
        };
        for evil in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\r\nX: y",
        ] {
            let r = attempt(PASSWORD, evil).await;
            assert_eq!(r.status().as_u16(), 303, "[{}] {evil:?}", s.kind);
            assert_eq!(r.headers()["location"], "/", "[{}] {evil:?}", s.kind);
        }
        let r = attempt(PASSWORD, "/people?q=ann").await;
        assert_eq!(r.headers()["location"], "/people?q=ann");
        // Five wrong passwords are answered; the sixth waits, even with the right one.
        for i in 0..5 {
            assert_eq!(
                attempt("wrong password", "/").await.status().as_u16(),
                401,
                "[{}] {i}",
                s.kind
            );
        }
        let r = attempt(PASSWORD, "/").await;
        assert_eq!(r.status().as_u16(), 429, "[{}]", s.kind);
        assert_eq!(r.headers()["retry-after"], "1");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_eq!(
            attempt(PASSWORD, "/").await.status().as_u16(),
            303,
            "[{}] after the wait",
            s.kind
        );
        s.finish().await;
    }
}

/// A marketer builds a rule in the app, dry-runs it, saves it; an event through the
/// Segment API then opens the task it asks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marketer_builds_a_rule_in_the_app() {
    for s in common::servers().await {
        let k = s.kind;
        staff(&s, &["marketer", "viewer"]).await;
        let (st, v) = s
            .batch(json!([{"type": "identify", "userId": "vip", "traits": {"email": "vip@shop.example", "name": "Vera Ip"}},
                {"type": "track", "userId": "vip", "event": "Order Completed", "properties": {"revenue": 900}}]))
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        let viewer = sign_in(&s, "viewer@shop.example").await;
        assert_eq!(get(&s, &viewer, "/rules/new").await.0, 403, "[{k}]");
        let c = sign_in(&s, "marketer@shop.example").await;
        let (st, page) = get(&s, &c, "/rules/new").await;
        assert_eq!(st, 200, "[{k}]");
        let token = csrf_of(&page);
        let fields = |when: &'static str, what: &'static str| {
            vec![
                ("_csrf", token.clone()),
                ("name", "Call big spenders".to_string()),
                ("when", when.to_string()),
                (
                    "where",
                    "sum(track \"Order Completed\".revenue) > 500".to_string(),
                ),
                ("action0", "task".to_string()),
                ("first0", "Call them today".to_string()),
                ("action1", "add_tag".to_string()),
                ("first1", "called".to_string()),
                ("cap_max", "1".to_string()),
                ("cap_hours", "24".to_string()),
                ("enabled", "on".to_string()),
                ("do", what.to_string()),
            ]
        };
        let send = |f: Vec<(&'static str, String)>| {
            let r = client()
                .post(format!("{}/rules/new", s.url))
                .header("cookie", &c)
                .form(&f);
            async move {
                let r = r.send().await.expect("post");
                (r.status().as_u16(), r.text().await.unwrap_or_default())
            }
        };
        // A rule that does not parse: refused on the form, naming the field; nothing saved.
        let (st, body) = send(fields("track \"Ticket Opened", "save")).await;
        assert!(st == 400 && body.contains("when"), "[{k}] {st} {body}");
        assert!(
            rapport_app::rules::rules(&s.store)
                .await
                .unwrap()
                .is_empty(),
            "[{k}]"
        );
        // The dry run: the order matches its own event type, not this rule's; what it says
        // is shown with nothing saved.
        let (st, body) = send(fields("track \"Ticket Opened\"", "dry-run")).await;
        assert!(
            st == 200 && body.contains("Would fire"),
            "[{k}] {st} {body}"
        );
        assert!(
            rapport_app::rules::rules(&s.store)
                .await
                .unwrap()
                .is_empty(),
            "[{k}]"
        );
        let (st, _) = send(fields("track \"Ticket Opened\"", "save")).await;
        assert_eq!(st, 303, "[{k}]");
        let saved = rapport_app::rules::rules(&s.store).await.unwrap();
        assert_eq!(saved[0].then.len(), 2, "[{k}] both actions saved");
        // Opened for editing, the form shows both actions, and a third, empty row.
        let (_, edit) = get(&s, &c, "/rules/new?name=Call%20big%20spenders").await;
        assert!(
            edit.contains("value=\"called\"") && edit.contains("id=\"action2\""),
            "[{k}]"
        );
        let (_, rules) = get(&s, &c, "/rules").await;
        assert!(rules.contains("Call big spenders"), "[{k}]");
        // The event, through the Segment API; the engine opens the task.
        let (st, v) = s
            .batch(json!([{"type": "track", "userId": "vip", "event": "Ticket Opened", "properties": {"subject": "Late"}}]))
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        let mut opened = false;
        for _ in 0..200 {
            let tasks = s.store.tasks(10).await.unwrap();
            if tasks
                .iter()
                .any(|t| t.rule == "Call big spenders" && t.title == "Call them today")
            {
                opened = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(opened, "[{k}] no task opened");
        let (_, rules) = get(&s, &c, "/rules").await;
        assert!(
            rules.contains("Vera Ip"),
            "[{k}] the task lists the person by name"
        );
        // An offer, made, refused when its condition does not parse, edited, deleted.
        let offer = |eligible: &'static str| {
            let r = client()
                .post(format!("{}/offers/new", s.url))
                .header("cookie", &c)
                .form(&[
                    ("_csrf", token.as_str()),
                    ("name", "Free shipping"),
                    ("eligible", eligible),
                    ("priority", "2"),
                    ("when0", "sum(track \"Order Completed\".revenue) > 500"),
                    ("points0", "10"),
                ]);
            async move {
                let r = r.send().await.expect("post");
                (r.status().as_u16(), r.text().await.unwrap_or_default())
            }
        };
        let (st, body) = offer("count(track \"Order Completed\" >= 1").await;
        assert!(st == 400 && body.contains("eligible"), "[{k}] {st} {body}");
        assert!(
            rapport_app::offers::offers(&s.store)
                .await
                .unwrap()
                .is_empty(),
            "[{k}]"
        );
        let (st, _) = offer("count(track \"Order Completed\") >= 1").await;
        assert_eq!(st, 303, "[{k}]");
        let saved = rapport_app::offers::offers(&s.store).await.unwrap();
        assert_eq!(
            (saved.len(), saved[0].priority, saved[0].score.len()),
            (1, 2, 1),
            "[{k}]"
        );
        let (st, edit) = get(&s, &c, "/offers/new?name=Free%20shipping").await;
        assert!(st == 200 && edit.contains("value=\"2\""), "[{k}] {edit}");
        assert_eq!(
            post(
                &s,
                &c,
                "/offers/delete",
                &[("_csrf", token.as_str()), ("name", "Free shipping")]
            )
            .await,
            303,
            "[{k}]"
        );
        assert!(
            rapport_app::offers::offers(&s.store)
                .await
                .unwrap()
                .is_empty(),
            "[{k}]"
        );
        // A custom score: a condition that does not parse is refused; then saved and
        // computed on demand.
        let score = |when: &'static str| {
            let r = client()
                .post(format!("{}/scores", s.url))
                .header("cookie", &c)
                .form(&[
                    ("_csrf", token.as_str()),
                    ("name", "lead"),
                    ("when0", when),
                    ("points0", "10"),
                ]);
            async move { r.send().await.expect("post").status().as_u16() }
        };
        assert_eq!(score("has emial").await, 400, "[{k}]");
        assert!(
            rapport_app::scores::custom_scores(&s.store)
                .await
                .unwrap()
                .is_empty(),
            "[{k}]"
        );
        assert_eq!(score("has email").await, 303, "[{k}]");
        assert_eq!(
            post(&s, &c, "/scores/recompute", &[("_csrf", token.as_str())]).await,
            303,
            "[{k}]"
        );
        let vip = s.profile_of("email:vip@shop.example").await["id"]
            .as_i64()
            .unwrap();
        let scores = s.store.profile_scores(vip).await.unwrap();
        assert!(
            scores.iter().any(|x| x.name == "lead" && x.value == 10.0),
            "[{k}] {scores:?}"
        );
        // The network recomputed from the app; chains are for admins only, and a node
        // that does not answer is refused with nothing saved.
        assert_eq!(
            post(&s, &c, "/network/recompute", &[("_csrf", token.as_str())]).await,
            303,
            "[{k}]"
        );
        // Leiden chosen from the page; a resolution that is not a number is refused.
        assert_eq!(
            post(
                &s,
                &c,
                "/network/recompute",
                &[
                    ("_csrf", token.as_str()),
                    ("communities", "leiden"),
                    ("resolution", "lots")
                ]
            )
            .await,
            400,
            "[{k}]"
        );
        assert_eq!(
            post(
                &s,
                &c,
                "/network/recompute",
                &[
                    ("_csrf", token.as_str()),
                    ("communities", "leiden"),
                    ("resolution", "0.8")
                ]
            )
            .await,
            303,
            "[{k}]"
        );
        let run = s.store.latest_graph_run().await.unwrap().unwrap();
        assert_eq!(
            run.summary["communities"]["algorithm"], "leiden",
            "[{k}] {}",
            run.summary
        );
        assert_eq!(
            post(
                &s,
                &c,
                "/onchain/chains",
                &[
                    ("_csrf", token.as_str()),
                    ("id", "eip155:1"),
                    ("rpc_url", "http://127.0.0.1:9")
                ]
            )
            .await,
            403,
            "[{k}]"
        );
        rapport_app::users::create(&s.store, "admin@shop.example", PASSWORD, "admin")
            .await
            .expect("admin");
        let admin = sign_in(&s, "admin@shop.example").await;
        let (_, page) = get(&s, &admin, "/onchain").await;
        let admin_token = csrf_of(&page);
        assert!(page.contains("Add a chain"), "[{k}]");
        assert_eq!(
            post(
                &s,
                &admin,
                "/onchain/chains",
                &[
                    ("_csrf", admin_token.as_str()),
                    ("id", "eip155:1"),
                    ("rpc_url", "http://127.0.0.1:9")
                ]
            )
            .await,
            400,
            "[{k}]"
        );
        assert!(s.store.chains().await.unwrap().is_empty(), "[{k}]");
        // A webhook rule built in the app; its delivery to a peer that is not there is
        // listed on the rules page, and an admin sends it again.
        let hook = client()
            .post(format!("{}/rules/new", s.url))
            .header("cookie", &c)
            .form(&[
                ("_csrf", token.as_str()),
                ("name", "Hook"),
                ("when", "track \"Ticket Opened\""),
                ("action0", "webhook"),
                ("first0", "http://127.0.0.1:9/hook"),
                ("second0", "a-secret-of-16-chars+"),
                ("enabled", "on"),
                ("do", "save"),
            ])
            .send()
            .await
            .expect("post");
        assert_eq!(hook.status().as_u16(), 303, "[{k}]");
        let (st, _) = s
            .batch(json!([{"type": "track", "userId": "vip", "event": "Ticket Opened", "properties": {"subject": "Again"}}]))
            .await;
        assert_eq!(st, 200, "[{k}]");
        let mut queued = Vec::new();
        for _ in 0..200 {
            queued = s.store.outbound(None, 10).await.unwrap();
            if !queued.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(queued.len(), 1, "[{k}] {queued:?}");
        let (_, rules) = get(&s, &admin, "/rules").await;
        assert!(
            rules.contains("Webhook deliveries") && rules.contains("http://127.0.0.1:9/hook"),
            "[{k}]"
        );
        assert!(
            !rules.contains("a-secret-of-16-chars+"),
            "[{k}] the secret is shown"
        );
        assert_eq!(
            post(
                &s,
                &admin,
                &format!("/outbox/{}/retry", queued[0].id),
                &[("_csrf", admin_token.as_str())]
            )
            .await,
            303,
            "[{k}]"
        );
        s.finish().await;
    }
}

/// Ties merge protection refused are listed with both people by name; an agent merges a
/// pair that is one person, a viewer cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ties_are_reviewed_and_merged_in_the_app() {
    for s in common::servers().await {
        let k = s.kind;
        staff(&s, &["agent", "viewer"]).await;
        let (st, v) = s
            .batch(json!([
                {"type": "identify", "userId": "ann-1", "traits": {"name": "Ann Old", "email": "ann@home.example"}},
                {"type": "identify", "userId": "ann-2", "traits": {"name": "Ann New", "email": "ann@home.example"}}
            ]))
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        let conflicts = s.store.conflicts(10).await.unwrap();
        assert_eq!(conflicts.len(), 1, "[{k}] {conflicts:?}");
        let (a, b) = (conflicts[0].profile_a, conflicts[0].profile_b);
        let viewer = sign_in(&s, "viewer@shop.example").await;
        let (st, html) = get(&s, &viewer, "/people/conflicts").await;
        assert_eq!(st, 200, "[{k}]");
        assert!(
            html.contains("Ann Old")
                && html.contains("Ann New")
                && html.contains("ann@home.example"),
            "[{k}] {html}"
        );
        assert!(
            !html.contains("Merge them"),
            "[{k}] a viewer is offered a merge"
        );
        let (_, people) = get(&s, &viewer, "/people").await;
        assert!(people.contains("Ties to review"), "[{k}]");
        let form = |c: &str| {
            vec![
                ("_csrf", csrf_of(c)),
                ("a", a.to_string()),
                ("b", b.to_string()),
            ]
        };
        let fv = form(&html);
        let fv: Vec<(&str, &str)> = fv.iter().map(|(x, y)| (*x, y.as_str())).collect();
        assert_eq!(
            post(&s, &viewer, "/people/conflicts/merge", &fv).await,
            403,
            "[{k}]"
        );
        let agent = sign_in(&s, "agent@shop.example").await;
        let (_, html) = get(&s, &agent, "/people/conflicts").await;
        assert!(html.contains("Merge them"), "[{k}]");
        let fa = form(&html);
        let fa: Vec<(&str, &str)> = fa.iter().map(|(x, y)| (*x, y.as_str())).collect();
        assert_eq!(
            post(&s, &agent, "/people/conflicts/merge", &fa).await,
            303,
            "[{k}]"
        );
        assert!(
            s.store.conflicts(10).await.unwrap().is_empty(),
            "[{k}] resolved"
        );
        let pa = s.store.profile(a).await.unwrap();
        let pb = s.store.profile(b).await.unwrap();
        assert_eq!(pa.id, pb.id, "[{k}] one person now");
        let (_, html) = get(&s, &agent, "/people/conflicts").await;
        assert!(html.contains("Nothing to review"), "[{k}]");
        s.finish().await;
    }
}

/// The agent inbox: an agent opens a ticket for a customer, notes it, assigns it to
/// themselves and resolves it; what the customer wrote is shown as text, never run; a
/// marketer reads but cannot answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_work_tickets_in_the_app() {
    for s in common::servers().await {
        let k = s.kind;
        staff(&s, &["agent", "marketer"]).await;
        let agent = sign_in(&s, "agent@shop.example").await;
        let (st, page) = get(&s, &agent, "/support/new").await;
        assert_eq!(st, 200, "[{k}]");
        let token = csrf_of(&page);
        let r = client()
            .post(format!("{}/support/new", s.url))
            .header("cookie", &agent)
            .form(&[
                ("_csrf", token.as_str()),
                ("requester", "zoe@customer.test"),
                ("subject", "Lamp <script>alert(1)</script>"),
                ("body", "It flickers <img src=x onerror=alert(2)>"),
            ])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 303, "[{k}]");
        let at = r.headers()["location"].to_str().unwrap().to_string();
        let id: i64 = at
            .trim_start_matches("/support/")
            .split('?')
            .next()
            .unwrap()
            .parse()
            .expect("ticket id");
        let (st, html) = get(&s, &agent, &format!("/support/{id}")).await;
        assert_eq!(st, 200, "[{k}]");
        assert!(
            !html.contains("<script>alert(1)") && !html.contains("<img src=x"),
            "[{k}] a customer's markup is escaped"
        );
        assert!(html.contains("&lt;img src=x"), "[{k}]");
        // The agent's help: an article that may answer it, a canned reply, a team.
        s.send(reqwest::Method::POST, "/api/kb/articles", json!({"title": "When a lamp flickers", "body": "A lamp that flickers needs a new bulb.", "status": "published"}))
            .await;
        let (st, v) = s
            .send(reqwest::Method::PUT, "/api/support/settings", json!({"teams": [{"name": "Devices"}], "canned_replies": [{"name": "bulb", "body": "Ticket #{{ data.number }}: try a new bulb."}]}))
            .await;
        assert_eq!(st, 200, "[{k}] {v}");
        let (_, html) = get(&s, &agent, &format!("/support/{id}")).await;
        assert!(
            html.contains("Articles that may answer it") && html.contains("When a lamp flickers"),
            "[{k}] the article is suggested"
        );
        assert!(html.contains(r#"<option value="bulb">"#), "[{k}]");
        assert_eq!(
            post(
                &s,
                &agent,
                &format!("/support/{id}/reply"),
                &[
                    ("_csrf", &token),
                    ("body", ""),
                    ("canned", "bulb"),
                    ("as", "note")
                ]
            )
            .await,
            303,
            "[{k}]"
        );
        let (_, thread) = s.get(&format!("/api/tickets/{id}")).await;
        assert_eq!(
            thread["messages"][1]["body"],
            format!("Ticket #{id}: try a new bulb."),
            "[{k}] {thread}"
        );
        assert_eq!(
            post(
                &s,
                &agent,
                &format!("/support/{id}/update"),
                &[("_csrf", &token), ("team", "Devices")]
            )
            .await,
            303,
            "[{k}]"
        );
        let (_, html) = get(&s, &agent, "/support?view=all&team=Devices").await;
        assert!(
            html.contains(&format!("/support/{id}\"")),
            "[{k}] the team's view lists it"
        );
        let (_, html) = get(&s, &agent, "/support?view=all&tag=nothing-such").await;
        assert!(
            !html.contains(&format!("/support/{id}\"")),
            "[{k}] a tag narrows the view"
        );
        assert_eq!(
            post(
                &s,
                &agent,
                &format!("/support/{id}/reply"),
                &[
                    ("_csrf", &token),
                    ("body", "Asked for the batch number."),
                    ("as", "note")
                ]
            )
            .await,
            303,
            "[{k}]"
        );
        assert_eq!(
            post(
                &s,
                &agent,
                &format!("/support/{id}/update"),
                &[
                    ("_csrf", &token),
                    ("status", "resolved"),
                    ("priority", "high"),
                    ("assignee", "agent@shop.example"),
                    ("tags", "lamp, Warranty")
                ]
            )
            .await,
            303,
            "[{k}]"
        );
        let t = s.store.ticket(id).await.unwrap().unwrap();
        assert_eq!(
            (
                t.status.as_str(),
                t.priority.as_str(),
                t.assignee.as_deref(),
                t.tags.clone()
            ),
            (
                "resolved",
                "high",
                Some("agent@shop.example"),
                vec!["lamp".to_string(), "warranty".to_string()]
            ),
            "[{k}]"
        );
        let (_, inbox) = get(&s, &agent, "/support?view=mine").await;
        assert!(
            inbox.contains(&format!("#{id}")) && inbox.contains("zoe@customer.test"),
            "[{k}]"
        );
        // A bad status is refused and changes nothing.
        assert_eq!(
            post(
                &s,
                &agent,
                &format!("/support/{id}/update"),
                &[("_csrf", &token), ("status", "later")]
            )
            .await,
            400,
            "[{k}]"
        );
        assert_eq!(
            s.store.ticket(id).await.unwrap().unwrap().status,
            "resolved",
            "[{k}]"
        );
        // The person's 360 lists the ticket.
        let (_, person) = get(&s, &agent, &format!("/people/{}", t.profile_id)).await;
        assert!(person.contains(&format!("/support/{id}")), "[{k}]");
        // A marketer reads, and cannot answer.
        let marketer = sign_in(&s, "marketer@shop.example").await;
        let (st, html) = get(&s, &marketer, &format!("/support/{id}")).await;
        assert!(st == 200 && !html.contains("Send reply"), "[{k}]");
        let mtoken = csrf_of(&html);
        assert_eq!(
            post(
                &s,
                &marketer,
                &format!("/support/{id}/reply"),
                &[("_csrf", &mtoken), ("body", "hi")]
            )
            .await,
            403,
            "[{k}]"
        );
        assert_eq!(
            s.store.ticket_messages(id).await.unwrap().len(),
            3,
            "[{k}] the first, the note, the canned note"
        );
        s.finish().await;
    }
}
