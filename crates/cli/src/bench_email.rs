//! `rapport bench email`: rendering and DKIM signing on one core — the work every
//! message of a campaign costs before it is stored — with Ed25519, RSA-2048 and both
//! (what Rapport sends: two signatures).

use anyhow::Result;
use clap::Args;
use rapport_email::compose::{compose, Outgoing, Tracking};
use rapport_email::dkim::{Algorithm, DkimKey, Signer};
use rapport_email::template::{Compiled, Source};
use serde_json::json;
use std::time::Instant;

#[derive(Args)]
pub struct EmailBench {
    /// Messages rendered and signed per measurement.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    #[arg(long)]
    json: bool,
}

/// A newsletter of the usual size: ~4 KB of HTML, six links, personal fields.
pub(crate) fn template() -> Source {
    let mut html = String::from(
        "<!doctype html><html><head><style>p{font-family:sans-serif}</style></head><body>",
    );
    html.push_str("<h1>Hello {{ traits.first_name | default('there') }}</h1>");
    for i in 0..6 {
        html.push_str(&format!(
            "<p>Item {i}: something you may like, picked for {{{{ person.email }}}} from our spring range, with a longer description that wraps over a couple of lines as real copy does.</p><p><a href=\"https://shop.example/p/{i}?utm_source=email&amp;utm_campaign=spring\">See item {i}</a></p>"
        ));
    }
    html.push_str("{% if scores.rfm_m and scores.rfm_m >= 4 %}<p>As one of our best customers, free delivery.</p>{% endif %}<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p></body></html>");
    Source {
        subject: "{{ traits.first_name | default('Hello') }}, our spring picks".into(),
        html,
        text: None,
    }
}

fn run_one(compiled: &Compiled, signers: &[Signer], n: usize) -> Result<(f64, usize)> {
    let secret = [7u8; 32];
    let tracking = Tracking {
        base_url: "https://crm.example.com",
        secret: &secret,
        track: true,
    };
    let mut bytes = 0;
    let t = Instant::now();
    for i in 0..n {
        let email = format!("person{i}@customer.test");
        let ctx = json!({
            "person": {"id": i, "email": email},
            "traits": {"first_name": format!("Name{i}")},
            "scores": {"rfm_m": (i % 5) as f64},
            "segments": ["Newsletter"], "email": email, "data": {},
        });
        let id = uuid::Uuid::now_v7();
        let unsub = rapport_email::compose::unsubscribe_url(&tracking, id);
        let prefs = "https://crm.example/me";
        let r = compiled.render_with(
            &ctx,
            Some(&rapport_email::template::Links {
                unsubscribe: &unsub,
                preferences: prefs,
            }),
        )?;
        let c = compose(
            &Outgoing {
                id,
                from: "news@example.com",
                from_name: Some("Example"),
                to: &email,
                rendered: &r,
                bulk: true,
                unsubscribe: true,
                date: std::time::SystemTime::now(),
                thread: None,
            },
            &tracking,
        )?;
        let signed = rapport_email::dkim::sign(signers, &c.raw)?;
        bytes += signed.len();
    }
    Ok((n as f64 / t.elapsed().as_secs_f64(), bytes / n.max(1)))
}

pub fn run(args: EmailBench) -> Result<()> {
    let compiled = Compiled::new(&template())?;
    let ed = DkimKey::generate(Algorithm::Ed25519, "ed")?.signer("example.com")?;
    let rsa = DkimKey::generate(Algorithm::Rsa, "rsa")?.signer("example.com")?;
    let ed2 = DkimKey::generate(Algorithm::Ed25519, "ed")?.signer("example.com")?;
    let rsa2 = DkimKey::generate(Algorithm::Rsa, "rsa")?.signer("example.com")?;
    let n = args.messages.max(1);
    let (none, size) = run_one(&compiled, &[], n)?;
    let (ed_rate, _) = run_one(&compiled, &[ed], n)?;
    // RSA-2048 signing is ~100× slower: a tenth of the messages says as much.
    let (rsa_rate, _) = run_one(&compiled, &[rsa], (n / 10).max(1))?;
    let (both, _) = run_one(&compiled, &[ed2, rsa2], (n / 10).max(1))?;
    let v = json!({
        "bench": "email", "messages": n, "message_bytes": size, "threads": 1,
        "render_compose_per_sec": none.round(),
        "ed25519_per_sec": ed_rate.round(),
        "rsa2048_per_sec": rsa_rate.round(),
        "ed25519_and_rsa2048_per_sec": both.round(),
        "target_ed25519_per_sec": 20000,
    });
    if !args.json {
        for (k, val) in v.as_object().into_iter().flatten() {
            eprintln!("{k:>28}: {val}");
        }
    }
    println!("{v}");
    Ok(())
}
