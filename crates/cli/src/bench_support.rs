//! `rapport bench support`: the agent inbox with N tickets (default 100,000) among 5,000
//! people — the API's views (open, an agent's, unassigned, everything) and the app's
//! `/support` page, each fetched `--runs` times over loopback.

use anyhow::{bail, Result};
use rapport_domain::message::{parse_message, BatchContext};
use rapport_store::{SourcedMessages, Ticket, TicketMessage};
use serde_json::json;
use std::time::Instant;

#[derive(clap::Args)]
pub struct SupportBench {
    #[arg(long, default_value_t = 100_000)]
    tickets: usize,
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// PostgreSQL URL; SQLite in a temporary directory when absent.
    #[arg(long, env = "RAPPORT_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    #[arg(long)]
    json: bool,
}

const PEOPLE: usize = 5_000;
const STATUSES: [&str; 5] = ["open", "pending", "snoozed", "resolved", "closed"];

pub async fn run(a: SupportBench) -> Result<()> {
    let target = crate::bench::fresh_target(a.database_url.as_deref(), "support").await?;
    let store = target.store.clone();
    eprintln!("{PEOPLE} people, {} tickets…", a.tickets);
    let batch = BatchContext {
        received_at: rapport_domain::time::now_millis(),
        identifiers_suffice: true,
        ..Default::default()
    };
    for chunk in (0..PEOPLE).collect::<Vec<_>>().chunks(1_000) {
        let messages = chunk
            .iter()
            .filter_map(|i| {
                let v = json!({"type": "identify", "userId": format!("c{i}"), "traits": {"name": format!("Customer {i}"), "email": format!("c{i}@customer.test")}});
                parse_message(&v, "", None, &batch, || format!("bench-support-{i}")).ok()
            })
            .collect();
        store
            .ingest(vec![SourcedMessages {
                source: "bench".into(),
                messages,
            }])
            .await?;
    }
    let started = Instant::now();
    let now = rapport_domain::time::now_millis();
    for i in 0..a.tickets {
        let at = now - (a.tickets - i) as i64 * 1_000;
        // Most tickets are long closed; a few hundred are open at any time, as in a
        // working inbox; agents hold some.
        let status = if i + 2_000 > a.tickets {
            STATUSES[i % 3]
        } else {
            STATUSES[3 + i % 2]
        };
        let t = Ticket {
            id: 0,
            number: 0,
            profile_id: (i % PEOPLE) as i64 + 1,
            address: None,
            subject: format!("Order {i} is late"),
            status: status.into(),
            priority: "normal".into(),
            assignee: (i % 5 != 0).then(|| format!("agent{}@shop.test", i % 10)),
            team: (i % 3 == 0).then(|| "Billing".to_string()),
            // A common tag on a quarter of them, a rare one on one in a thousand.
            tags: match (i % 4, i % 1_000) {
                (_, 0) => vec!["delivery".into(), "topic:returns".into()],
                (0, _) => vec!["delivery".into(), "intent:complaint".into()],
                _ => vec!["delivery".into()],
            },
            channel: "email".into(),
            snooze_until: (status == "snoozed").then_some(now + 86_400_000),
            created_at: at,
            updated_at: at,
            first_response_at: None,
            resolved_at: None,
            csat: None,
            csat_comment: None,
            origin: None,
        };
        let m = TicketMessage {
            id: 0,
            ticket_id: 0,
            author: "customer".into(),
            staff: None,
            body: "Where is my parcel?".into(),
            message_id: Some(format!("<bench-{i}@customer.test>")),
            email_id: None,
            at,
        };
        store.open_ticket(t, m, Vec::new()).await?;
        if i % 20_000 == 19_999 {
            eprintln!(
                "  {} tickets ({:.0} s)",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    store.refresh_statistics().await?;
    rapport_app::users::create(&store, "agent1@shop.test", "bench password 1", "agent").await?;
    let admin = rapport_app::keys::create(
        &store,
        rapport_domain::apikey::Scope::Admin,
        "bench",
        &Default::default(),
    )
    .await?
    .secret;
    let (url, client, cookie) =
        crate::bench::serve_signed_in(&store, "agent1@shop.test", "bench password 1").await?;
    let pages = [
        ("/api/tickets?status=open", true),
        ("/api/tickets?assignee=agent1@shop.test", true),
        ("/api/tickets?unassigned=true", true),
        ("/api/tickets", true),
        ("/api/tickets?team=Billing", true),
        ("/api/tickets?tag=intent:complaint", true),
        ("/api/tickets?tag=topic:returns", true),
        ("/support?view=mine", false),
        ("/support?view=unassigned", false),
        ("/support?view=open", false),
        ("/support?view=all", false),
        ("/support?view=open&tag=intent:complaint", false),
        ("/support/1", false),
    ];
    let mut out = Vec::new();
    for (p, api) in pages {
        let mut ms = Vec::with_capacity(a.runs);
        for _ in 0..a.runs {
            let req = client.get(format!("{url}{p}"));
            let req = if api {
                req.bearer_auth(&admin)
            } else {
                req.header("cookie", &cookie)
            };
            let t = Instant::now();
            let r = req.send().await?;
            let status = r.status();
            let _ = r.bytes().await?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            if !status.is_success() {
                bail!("{p} answered {status}");
            }
        }
        let (p50, p95) = crate::bench::p50_p95(&mut ms);
        eprintln!("{p:<42} p50 {p50:7.1} ms  p95 {p95:7.1} ms");
        out.push(json!({"page": p, "p50_ms": p50, "p95_ms": p95}));
    }
    if a.json {
        println!(
            "{}",
            json!({"store": target.kind, "tickets": a.tickets, "pages": out})
        );
    }
    target.cleanup().await;
    Ok(())
}
