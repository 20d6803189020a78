//! A realistic synthetic data set so a new user sees a living CRM: people with several
//! e-mail addresses, phones, social handles and wallets on several chains, who browse
//! anonymously, sign up, buy, write reviews and move tokens over a year. Deterministic
//! (seeded) and idempotent (stable message ids), and ingested through the same
//! validation and identity resolution as live traffic, so merges and merge-protection
//! conflicts happen as they would in production.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rapport_domain::message::{parse_message, BatchContext};
use rapport_domain::time::now_millis;
use rapport_domain::Message;
use rapport_store::{DynStore, IngestOutcome, SourcedMessages, StoreError};
use serde_json::{json, Value};

const FIRST: &[&str] = &[
    "Ana", "Ben", "Chloé", "Dmitri", "Emma", "Farah", "Gustavo", "Hana", "Ibrahim", "Julia",
    "Kenji", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tara", "Uma",
    "Victor", "Wen", "Xavier", "Yara", "Zoe", "Liam", "Mia", "Noah", "Olivia", "Lucas", "Sofia",
    "Ethan", "Aisha", "Leo", "Ines", "Marco", "Amara", "Felix", "Ivy",
];
const LAST: &[&str] = &[
    "Silva",
    "Müller",
    "Nakamura",
    "Okafor",
    "Novak",
    "Garcia",
    "Kowalski",
    "Haddad",
    "Johansson",
    "Rossi",
    "Kim",
    "Patel",
    "Dubois",
    "Smith",
    "Jensen",
    "Costa",
    "Yilmaz",
    "Ivanova",
    "Chen",
    "Moreau",
    "Fischer",
    "Tanaka",
    "Lopez",
    "Nguyen",
    "Brown",
    "Schmidt",
    "Ali",
    "Sato",
    "Martin",
    "Andersson",
];
const COMPANIES: &[&str] = &[
    "acme.io",
    "globex.com",
    "initech.co",
    "umbrella.org",
    "hooli.xyz",
    "stark.dev",
    "wayne.biz",
    "tyrell.ai",
];
const TITLES: &[&str] = &[
    "Marketing Manager",
    "Head of Growth",
    "Software Engineer",
    "Community Manager",
    "Product Designer",
    "Founder",
    "Data Analyst",
    "Support Lead",
    "Student",
    "CMO",
    "Sales Director",
    "Developer Advocate",
];
const CITIES: &[(&str, &str)] = &[
    ("Lisbon", "PT"),
    ("Berlin", "DE"),
    ("Tokyo", "JP"),
    ("Lagos", "NG"),
    ("New York", "US"),
    ("São Paulo", "BR"),
    ("London", "GB"),
    ("Paris", "FR"),
    ("Toronto", "CA"),
    ("Seoul", "KR"),
    ("Mumbai", "IN"),
    ("Stockholm", "SE"),
];
const INTERESTS: &[&str] = &[
    "defi",
    "nft",
    "gaming",
    "music",
    "fitness",
    "travel",
    "coffee",
    "design",
    "ai",
    "photography",
];
const PRODUCTS: &[(&str, f64)] = &[
    ("Aurora Headphones", 199.0),
    ("Nimbus Sneakers", 129.0),
    ("Pulse Smartwatch", 249.0),
    ("Drift Backpack", 89.0),
    ("Echo Speaker", 149.0),
    ("Glow Lamp", 59.0),
    ("Summit Jacket", 219.0),
    ("Ripple Mug", 19.0),
];
const NETWORKS: &[&str] = &[
    "x",
    "instagram",
    "github",
    "linkedin",
    "farcaster",
    "discord",
    "tiktok",
];
const CHAINS: &[&str] = &["eip155:1", "eip155:137", "eip155:8453", "eip155:10"];
const REVIEWS: &[&str] = &[
    "Absolutely love the {p}, best purchase this year!",
    "The {p} broke after two weeks. Really disappointed.",
    "Shipping was slow but the {p} is great.",
    "Not sure the {p} is worth the price...",
    "The {p} is AMAZING!!! :)",
    "Customer support never answered about my {p}. Terrible.",
    "Decent {p}, does the job.",
    "Would recommend the {p} to any friend.",
];
const POSTS: &[&str] = &[
    "Just got my {p} from @{h}'s favourite shop #unboxing",
    "Anyone else having trouble with the {p} app? #help",
    "Can't stop using my {p} 🔥",
    "Thinking about cancelling, the {p} keeps disconnecting",
    "Big thanks to the team for the quick fix on my {p}",
];

/// How much to generate.
#[derive(Debug, Clone, Copy)]
pub struct DemoSize {
    pub people: usize,
    pub events_per_person: usize,
}

impl Default for DemoSize {
    fn default() -> Self {
        DemoSize {
            people: 10_000,
            events_per_person: 30,
        }
    }
}

fn hex_addr(rng: &mut StdRng) -> String {
    let bytes: [u8; 20] = rng.gen();
    format!("0x{}", hex::encode(bytes))
}

/// A phone number in the person's country that libphonenumber accepts, if one turns up.
fn phone(rng: &mut StdRng, country: &str) -> Option<String> {
    for _ in 0..8 {
        let candidate = match country {
            "US" | "CA" => format!(
                "+1{}{}{:04}",
                ["415", "212", "312", "617", "206"][rng.gen_range(0..5)],
                rng.gen_range(201..999),
                rng.gen_range(0..10000)
            ),
            "GB" => format!("+447400{:06}", rng.gen_range(0..1_000_000)),
            "DE" => format!("+49151{:08}", rng.gen_range(0..100_000_000)),
            "FR" => format!("+336{:08}", rng.gen_range(0..100_000_000)),
            "JP" => format!("+8190{:08}", rng.gen_range(0..100_000_000)),
            "BR" => format!("+55119{:08}", rng.gen_range(0..100_000_000)),
            "KR" => format!("+8210{:08}", rng.gen_range(0..100_000_000)),
            "IN" => format!("+9198{:08}", rng.gen_range(0..100_000_000)),
            "SE" => format!("+4670{:07}", rng.gen_range(0..10_000_000)),
            "NG" => format!("+234803{:07}", rng.gen_range(0..10_000_000)),
            _ => format!("+35191{:07}", rng.gen_range(0..10_000_000)),
        };
        if rapport_domain::identifier::normalize_phone(&candidate).is_ok() {
            return Some(candidate);
        }
    }
    None
}

fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'é' => 'e',
            'ü' => 'u',
            'ã' => 'a',
            c => c,
        })
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase()
}

/// Messages of one person, in time order.
pub fn person(i: usize, size: DemoSize, now: i64) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(0x5eed ^ i as u64);
    let first = *FIRST.choose(&mut rng).unwrap_or(&"Ana");
    let last = *LAST.choose(&mut rng).unwrap_or(&"Silva");
    let (city, country) = *CITIES.choose(&mut rng).unwrap_or(&("Lisbon", "PT"));
    let company = *COMPANIES.choose(&mut rng).unwrap_or(&"acme.io");
    let (f, l) = (ascii(first), ascii(last));
    let mut emails = vec![format!("{f}.{l}{i}@gmail.com")];
    if rng.gen_bool(0.6) {
        emails.push(format!("{}{l}{i}@{company}", &f[..1]));
    }
    if rng.gen_bool(0.3) {
        emails.push(format!("{f}{i}@proton.me"));
    }
    // Households: person 50k+6 shares an e-mail with person 50k+7 (see below).
    if i % 50 == 6 {
        emails.push(format!("household{i}@example.com"));
    }
    // The second-device people (below) have not told us their work e-mail yet.
    let known_emails: Vec<String> = if i % 10 == 3 && emails.len() > 1 {
        emails
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != 1)
            .map(|(_, e)| e.clone())
            .collect()
    } else {
        emails.clone()
    };
    let user_id = format!("u{i}");
    let anon = format!("anon-{i}");
    let mut traits = json!({
        "name": format!("{first} {last}"), "firstName": first, "lastName": last,
        "email": emails[0], "title": TITLES.choose(&mut rng).copied().unwrap_or("Founder"),
        "company": company, "city": city, "country": country,
        "interests": INTERESTS.choose_multiple(&mut rng, 2).copied().collect::<Vec<_>>(),
        "emails": known_emails,
    });
    if rng.gen_bool(0.6) {
        if let Some(p) = phone(&mut rng, country) {
            traits["phone"] = json!(p);
        }
    }
    let mut socials = serde_json::Map::new();
    let n_networks = rng.gen_range(1..4);
    for n in NETWORKS.choose_multiple(&mut rng, n_networks) {
        socials.insert(n.to_string(), json!(format!("{f}_{l}{i}")));
    }
    traits["socials"] = Value::Object(socials.clone());
    if rng.gen_bool(0.4) {
        let wallets: Vec<String> = (0..rng.gen_range(1..3))
            .map(|_| {
                format!(
                    "{}:{}",
                    CHAINS.choose(&mut rng).unwrap_or(&"eip155:1"),
                    hex_addr(&mut rng)
                )
            })
            .collect();
        traits["wallets"] = json!(wallets);
    }
    let signup = first_seen(&mut rng, now);
    let mut t = signup - rng.gen_range(0..7 * 24 * 3_600_000i64);
    let mut out = Vec::new();
    let mut seq = 0;
    let mut id = || {
        seq += 1;
        format!("demo-{i}-{seq}")
    };
    let ts = |t: i64| rapport_domain::time::to_datetime(t).to_rfc3339();
    // Anonymous browsing, then sign-up ties the device to the person.
    out.push(json!({"type": "page", "anonymousId": anon, "name": "Home", "messageId": id(), "timestamp": ts(t),
        "properties": {"url": "https://shop.example/", "referrer": "https://www.google.com/"}}));
    out.push(json!({"type": "identify", "anonymousId": anon, "userId": user_id, "messageId": id(), "timestamp": ts(signup), "traits": traits}));
    let plan = if rng.gen_bool(0.3) { "pro" } else { "free" };
    // People know people in their circle of fifty (a company, a town): mentions,
    // referrals and answers mostly stay inside it, which gives the graph communities.
    let circle = |rng: &mut StdRng| -> usize {
        if rng.gen_bool(0.85) {
            ((i / 50) * 50 + rng.gen_range(0..50)).min(size.people.max(1) - 1)
        } else {
            rng.gen_range(0..size.people.max(1))
        }
    };
    let mut signed_up = json!({"plan": plan});
    if rng.gen_bool(0.2) {
        signed_up["referrer"] = json!(format!("u{}", circle(&mut rng)));
    }
    out.push(json!({"type": "track", "userId": user_id, "event": "Signed Up", "messageId": id(), "timestamp": ts(signup),
        "properties": signed_up}));
    // One in ten also used a second device with only a work e-mail: a second profile
    // that identity resolution merges when the person logs in there.
    if i % 10 == 3 && emails.len() > 1 {
        let dev = format!("anon-{i}-tablet");
        out.push(json!({"type": "identify", "anonymousId": dev, "messageId": id(), "timestamp": ts(signup + 3_600_000),
            "traits": {"email": emails[1]}}));
        out.push(json!({"type": "screen", "anonymousId": dev, "name": "Catalogue", "messageId": id(), "timestamp": ts(signup + 3_700_000)}));
        out.push(json!({"type": "identify", "anonymousId": dev, "userId": user_id, "messageId": id(), "timestamp": ts(signup + 86_400_000)}));
    }
    // One in fifty shares a household e-mail with a neighbour: merge protection keeps
    // two people with different user ids apart and records a conflict instead.
    if i % 50 == 7 && i > 0 {
        out.push(json!({"type": "identify", "userId": user_id, "messageId": id(), "timestamp": ts(signup + 1000),
            "traits": {"emails": [format!("household{}@example.com", i - 1)]}}));
    }
    let n = rng.gen_range(size.events_per_person / 3..=size.events_per_person * 5 / 3);
    let step = ((now - signup) / (n as i64 + 1)).max(60_000);
    t = signup;
    for _ in 0..n {
        t = (t + rng.gen_range(step / 2..step * 3 / 2)).min(now);
        let (product, price) = *PRODUCTS.choose(&mut rng).unwrap_or(&("Ripple Mug", 19.0));
        // In the season people buy more: some browsing becomes an order.
        let roll: f64 = if busyness(t, now) > 0.6 && rng.gen_bool(0.2) {
            0.6
        } else {
            rng.gen()
        };
        let msg = if roll < 0.35 {
            json!({"type": "page", "userId": user_id, "name": product, "properties": {"url": format!("https://shop.example/p/{}", ascii(product))}})
        } else if roll < 0.5 {
            json!({"type": "track", "userId": user_id, "event": "Product Viewed", "properties": {"product": product, "price": price}})
        } else if roll < 0.58 {
            json!({"type": "track", "userId": user_id, "event": "Product Added", "properties": {"product": product, "price": price}})
        } else if roll < 0.66 {
            let qty = rng.gen_range(1..3);
            json!({"type": "track", "userId": user_id, "event": "Order Completed",
                "properties": {"order_id": format!("o-{i}-{t}"), "revenue": price * qty as f64, "currency": "USD",
                    "products": [{"name": product, "price": price, "quantity": qty}]}})
        } else if roll < 0.76 {
            let campaign = ["spring-sale", "newsletter-12", "winback"][rng.gen_range(0..3)];
            json!({"type": "track", "userId": user_id, "event": "Email Opened", "context": {"channel": "email"},
                "properties": {"campaign": campaign}})
        } else if roll < 0.8 {
            json!({"type": "track", "userId": user_id, "event": "Email Clicked", "context": {"channel": "email"},
                "properties": {"campaign": "spring-sale", "url": "https://shop.example/sale"}})
        } else if roll < 0.85 {
            let text = REVIEWS
                .choose(&mut rng)
                .unwrap_or(&"")
                .replace("{p}", product);
            json!({"type": "track", "userId": user_id, "event": "Review Posted",
                "properties": {"product": product, "rating": rng.gen_range(1..6), "review": text}})
        } else if roll < 0.91 {
            let network = socials.keys().next().cloned().unwrap_or_else(|| "x".into());
            let friend = circle(&mut rng);
            let text = POSTS
                .choose(&mut rng)
                .unwrap_or(&"")
                .replace("{p}", product)
                .replace("{h}", &format!("friend{friend}"));
            json!({"type": "track", "userId": user_id, "event": "Social Post", "context": {"channel": "social"},
                "properties": {"network": network, "text": text, "mentions": [format!("u{friend}")]}})
        } else if roll < 0.92 {
            json!({"type": "track", "userId": user_id, "event": "Answer Posted", "context": {"channel": "community"},
                "properties": {"question_author": format!("u{}", circle(&mut rng)), "accepted": rng.gen_bool(0.3),
                    "text": format!("Try resetting your {product}: hold the button for ten seconds.")}})
        } else if roll < 0.94 {
            json!({"type": "track", "userId": user_id, "event": "Ticket Opened", "context": {"channel": "support"},
                "properties": {"subject": format!("Problem with {product}"), "body": format!("My {product} stopped working, can you help?")}})
        } else if roll < 0.97 && traits.get("wallets").is_some() {
            json!({"type": "track", "userId": user_id, "event": "Token Transfer", "context": {"channel": "onchain"},
                "properties": {"chain": "eip155:1", "token": "RAPT", "amount": rng.gen_range(1..500), "to_user": format!("u{}", rng.gen_range(0..size.people.max(1)))}})
        } else {
            json!({"type": "screen", "userId": user_id, "name": "Rewards"})
        };
        let mut msg = msg;
        msg["messageId"] = json!(id());
        msg["timestamp"] = json!(ts(t));
        out.push(msg);
    }
    out
}

const DAY: i64 = 86_400_000;

/// How busy the shop is at `t` relative to its busiest: it grows (a year ago half as
/// busy as now) and peaks in the shopping season around the start of December.
fn busyness(t: i64, now: i64) -> f64 {
    use chrono::Datelike;
    let growth = 1.0 - 0.5 * ((now - t) as f64 / (365 * DAY) as f64).clamp(0.0, 1.0);
    let doy = f64::from(rapport_domain::time::to_datetime(t).ordinal());
    let season = 1.0 + (-((doy - 335.0) / 20.0).powi(2)).exp();
    growth * season / 2.0
}

/// When someone first came, in the past year, as busy as the shop was then (rejection
/// sampling on [`busyness`]).
fn first_seen(rng: &mut StdRng, now: i64) -> i64 {
    loop {
        let t = now - rng.gen_range(0..365 * DAY);
        if rng.gen::<f64>() < busyness(t, now) {
            return t;
        }
    }
}

/// One anonymous visitor who browsed a few pages and never identified (one for every
/// four people), at some point in the year.
pub fn visitor(i: usize, now: i64) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(0x7151 ^ i as u64);
    let mut t = first_seen(&mut rng, now);
    let anon = format!("visitor-{i}");
    (0..rng.gen_range(1..6))
        .map(|k| {
            let (product, _) = *PRODUCTS.choose(&mut rng).unwrap_or(&PRODUCTS[0]);
            t += rng.gen_range(20_000..600_000);
            json!({"type": "page", "anonymousId": anon, "name": product, "messageId": format!("demo-visitor-{i}-{k}"),
                "timestamp": rapport_domain::time::to_datetime(t.min(now)).to_rfc3339(),
                "properties": {"url": format!("https://shop.example/p/{}", ascii(product)), "referrer": "https://www.google.com/"}})
        })
        .collect()
}

/// Generates and ingests the demo set; `progress(people_done)` after each chunk.
pub async fn load(
    store: &DynStore,
    size: DemoSize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<IngestOutcome, StoreError> {
    let now = now_millis();
    // The shop's catalogue and the topics it tracks, so texts are tagged from the start
    // (left alone when the brand has set its own).
    if store.catalogue().await?.is_empty() {
        let names = PRODUCTS.iter().map(|(p, _)| p.to_string()).collect();
        store.set_catalogue(names, now).await?;
    }
    if store.setting(crate::text::TOPICS_KEY).await?.is_none() {
        let topics = serde_json::json!([
            {"name": "Delivery", "terms": ["shipping", "delivery", "arrived"]},
            {"name": "Support", "terms": ["support", "answered", "quick fix", "help"]},
            {"name": "Connectivity", "terms": ["app", "disconnecting", "trouble"]},
            {"name": "Value", "terms": ["price", "worth", "best purchase"]},
        ]);
        store
            .set_setting(crate::text::TOPICS_KEY, topics, now)
            .await?;
    }
    let mut total = IngestOutcome::default();
    let chunk = 200;
    let mut start = 0;
    while start < size.people {
        let end = (start + chunk).min(size.people);
        let msgs: Vec<Message> = (start..end)
            .flat_map(|i| {
                let mut m = person(i, size, now);
                if i % 4 == 0 {
                    m.extend(visitor(i, now));
                }
                m
            })
            .filter_map(|v| {
                // Received when it happened, as if the shop had been live all year: people
                // are first seen across the year, not all on the day of the load.
                let at = v["timestamp"]
                    .as_str()
                    .and_then(rapport_domain::time::parse_timestamp)
                    .map_or(now, |t| t.min(now));
                let batch = BatchContext {
                    received_at: at,
                    ..Default::default()
                };
                parse_message(&v, "", None, &batch, || uuid::Uuid::new_v4().to_string())
                    .map_err(|e| tracing::warn!(error = %e, "demo message skipped"))
                    .ok()
            })
            .collect();
        let o = store
            .ingest(vec![SourcedMessages {
                source: "demo".into(),
                messages: msgs,
            }])
            .await?;
        total.add(&o);
        start = end;
        progress(end);
    }
    store.refresh_statistics().await?;
    Ok(total)
}

/// The named segments of the demo shop: (name, definition, description).
const STORY_SEGMENTS: &[(&str, &str, &str)] = &[
    (
        "Lapsed big spenders",
        r#"sum(track "Order Completed".revenue) > 300 and days_since(track "Order Completed") > 60"#,
        "Spent over $300 with us, but have not ordered for two months.",
    ),
    (
        "Crypto-native fans",
        r#"has wallet and count(track "Token Transfer") >= 1"#,
        "Have a wallet and move the shop's token.",
    ),
    (
        "Unhappy customers",
        "complaints(90d) >= 1 or sentiment(90d) < -0.3",
        "Complained, or wrote mostly negative things, in the last 90 days.",
    ),
    (
        "Community helpers",
        r#"count(track "Answer Posted" where accepted = true) >= 1"#,
        "Answered another customer's question, and the answer was accepted.",
    ),
    (
        "Influencers",
        "graph.pagerank_pct >= 0.95",
        "The top 5% by influence in the customer network.",
    ),
    (
        "Newsletter readers",
        r#"count(track "Email Opened", 90d) >= 2"#,
        "Opened at least two of our e-mails in the last 90 days.",
    ),
    (
        "Champions",
        "score.rfm_r >= 4 and score.rfm_f >= 4",
        "Bought recently and often (RFM recency and frequency 4 or 5).",
    ),
    (
        "Marketers",
        r#"traits.title ~ "marketing""#,
        "Customers who work in marketing.",
    ),
];

/// What [`load_all`] did.
pub struct Loaded {
    pub ingest: IngestOutcome,
    /// The graph run's summary (nodes, edges, communities).
    pub graph: Value,
    pub story: Story,
}

/// Everything `rapport serve --demo` and `rapport demo` load, in order: the people and
/// their year ([`load`]); relationships inferred and texts analysed, so the network and
/// insight pages show at once; the graph's metrics; then the [`story`].
pub async fn load_all(
    store: &DynStore,
    size: DemoSize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Loaded, crate::graph::GraphError> {
    let ingest = load(store, size, progress).await?;
    crate::graph::infer_all(store).await?;
    crate::text::analyse_all(store).await?;
    let run = crate::graph::GraphService::new(store.clone())
        .recompute(None, &|_, _, _| {})
        .await?;
    let story = story(store).await?;
    // Relationships and analyses were added after `load`'s own refresh.
    store.refresh_statistics().await?;
    Ok(Loaded {
        ingest,
        graph: run.summary,
        story,
    })
}

/// What `story` set up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Story {
    pub segments: usize,
    pub micro_segments: usize,
    pub scores: usize,
    pub offers: usize,
    pub rules: usize,
    /// E-mail templates (with the shop's sending domain and a draft campaign).
    pub templates: usize,
    /// Support tickets opened today.
    pub tickets: usize,
    /// Community posts (questions, answers, ideas) and help articles.
    pub community: usize,
}

/// What a marketer would have set up over the demo shop's year, so every page has
/// content at first sight: a custom score (and RFM and engagement computed), named
/// segments, micro-segments, offers and rules. Runs after `load` and the graph and
/// text passes (segments use their results). Anything the brand already has — a
/// segment of the same name, its own custom scores, offers or rules — is left alone.
pub async fn story(store: &DynStore) -> Result<Story, StoreError> {
    let mut done = Story::default();
    if crate::scores::custom_scores(store).await?.is_empty() {
        crate::scores::set_custom_scores(
            store,
            &json!({"scores": [{"name": "advocacy", "terms": [
                {"when": r#"count(track "Answer Posted") >= 1"#, "points": 25},
                {"when": r#"count(track "Review Posted" where rating >= 4) >= 1"#, "points": 25},
                {"when": "graph.pagerank_pct >= 0.8", "points": 30},
                {"when": "has wallet", "points": 20}
            ]}]}),
        )
        .await?;
    }
    done.scores = crate::scores::recompute(store).await?;
    let existing: Vec<String> = store
        .segments()
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    for (name, definition, description) in STORY_SEGMENTS {
        if !existing.iter().any(|e| e == name) {
            crate::segments::create(store, name, definition, description).await?;
            done.segments += 1;
        }
    }
    if !existing.iter().any(|e| e.starts_with("Micro ")) {
        done.micro_segments = crate::micro::refresh_micro(store, 6).await?.len();
    }
    if crate::offers::offers(store).await?.is_empty() {
        done.offers = crate::offers::set_offers(
            store,
            &json!({"offers": [
                {"name": "Win-back: 20% off", "description": "For big spenders we have not seen for a while.",
                 "eligible": r#"in segment "Lapsed big spenders""#, "priority": 3,
                 "score": [{"when": r#"sum(track "Order Completed".revenue) > 600"#, "points": 10}]},
                {"name": "Early access to the token drop", "description": "Crypto-native fans get the next drop first.",
                 "eligible": r#"in segment "Crypto-native fans""#, "priority": 2,
                 "score": [{"when": "graph.pagerank_pct >= 0.9", "points": 10}]},
                {"name": "Free shipping", "description": "For anyone who has ordered before.",
                 "eligible": r#"count(track "Order Completed") >= 1"#, "priority": 1,
                 "score": [{"when": r#"count(track "Order Completed", 90d) >= 2"#, "points": 5}]}
            ]}),
        )
        .await?
        .len();
    }
    if store.templates().await?.is_empty() {
        done.templates = demo_email(store).await?;
    }
    if crate::rules::rules(store).await?.is_empty() {
        done.rules = crate::rules::set_rules(
            store,
            &json!({"rules": [
                {"name": "Call unhappy big spenders",
                 "when": r#"track "Ticket Opened""#,
                 "where": r#"sum(track "Order Completed".revenue) > 300"#,
                 "then": [{"action": "task", "title": "Call them today", "body": "A big spender opened a ticket."},
                          {"action": "add_tag", "tag": "escalated"}],
                 "cap": {"max": 1, "per_hours": 24}, "enabled": true},
                {"name": "Thank community helpers",
                 "when": r#"track "Answer Accepted""#,
                 "then": [{"action": "add_tag", "tag": "helper"},
                          {"action": "emit", "event": "Helper Thanked", "properties": {"points": 50}}],
                 "cap": {"max": 1, "per_hours": 168}, "enabled": true},
                {"name": "Reward helpers with a wallet (shadow mode)",
                 "when": r#"track "Answer Accepted""#,
                 "where": "has wallet",
                 "then": [{"action": "token_reward", "token": "RAPT", "amount": "25", "chain": "eip155:1"}],
                 "cap": {"max": 1, "per_hours": 168}, "enabled": true, "dry_run": true},
                {"name": "Points for orders",
                 "when": r#"track "Order Completed""#,
                 "then": [{"action": "points", "amount": "properties.revenue", "pending_days": 14, "expires_days": 365}],
                 "enabled": true},
                {"name": "Refunds take points back",
                 "when": r#"track "Order Refunded""#,
                 "then": [{"action": "reverse_points"}],
                 "enabled": true},
                {"name": "Big orders to the ERP (demo: points nowhere, disabled)",
                 "when": r#"track "Order Completed" where revenue > 400"#,
                 "then": [{"action": "webhook", "url": "https://erp.example.invalid/rapport-demo",
                           "secret": "demo-secret-not-used-0001", "max_attempts": 1}],
                 "enabled": false}
            ]}),
        )
        .await?
        .len();
        // Today's tickets, opened after the rules were saved: the real-time engine of
        // `rapport serve` fires "Call unhappy big spenders" on the big spenders among
        // them, so the task list is not empty either. Stable ids: loading again adds none.
        let now = now_millis();
        let batch = BatchContext {
            received_at: now,
            ..Default::default()
        };
        // Real tickets in the inbox, each with its `Ticket Opened` event.
        done.tickets = demo_tickets(store).await?;
        // And today's accepted answers: helpers are thanked, and the shadow reward rule
        // records the tokens it would send to those with a wallet.
        let answers = (40..60).map(|i| {
            json!({"type": "track", "userId": format!("u{i}"), "event": "Answer Accepted",
                "context": {"channel": "community"}, "messageId": format!("demo-story-answer-{i}"),
                "properties": {"question_author": format!("u{}", i + 100), "accepted": true,
                    "text": "Hold the button for ten seconds, then pair it again: that fixed mine."}})
        });
        let messages = answers
            .filter_map(|v| parse_message(&v, "", None, &batch, String::new).ok())
            .collect();
        store
            .ingest(vec![SourcedMessages {
                source: "demo".into(),
                messages,
            }])
            .await?;
    }
    if store.reward_catalogue().await?.is_empty() {
        demo_loyalty(store).await?;
    }
    if store
        .posts(rapport_store::PostFilter {
            limit: 1,
            with_hidden: true,
            ..Default::default()
        })
        .await?
        .is_empty()
    {
        done.community = demo_community(store).await?;
    }
    Ok(done)
}

/// The demo's help centre and community: published articles by category, a customer's
/// proposal and a proposed edit waiting for review, questions answered by customers
/// (some accepted, some voted up), ideas with votes and statuses, and one rude answer
/// held for review.
async fn demo_community(store: &DynStore) -> Result<usize, StoreError> {
    use crate::community::{self, Actor};
    use crate::kb::{self, ArticleInput};
    let staff = Actor::Staff("admin@rapport.local".into());
    let person = |i: usize| async move {
        let key = rapport_domain::IdentityKey::parse(
            rapport_domain::IdentityKind::UserId,
            &format!("u{i}"),
        )
        .ok()?;
        store.lookup(&key).await.ok().flatten()
    };
    let mut n = 0;
    let mut delivery = None;
    for (title, category, body) in DEMO_ARTICLES {
        let a = ArticleInput {
            title: title.to_string(),
            body: body.to_string(),
            category: Some(category.to_string()),
            status: Some("published".into()),
            note: None,
        };
        let a = kb::create(store, &staff, a).await?;
        if a.title.starts_with("Delivery times") {
            delivery = Some(a);
        }
        n += 1;
    }
    if let (Some(a), Some(p)) = (delivery, person(43).await) {
        let edit = ArticleInput {
            title: a.title.clone(),
            body: format!(
                "{}\n\nOn Saturdays express parcels arrive on Monday.",
                a.body
            ),
            note: Some("Saturdays".into()),
            ..Default::default()
        };
        kb::propose_edit(store, p, a.id, edit).await?;
    }
    if let Some(p) = person(42).await {
        let a = ArticleInput {
            title: "Pairing the speaker with two phones".into(),
            body: "Hold the button for ten seconds until the light blinks twice, then pair the second phone: the speaker remembers both.".into(),
            category: Some("Products".into()),
            ..Default::default()
        };
        kb::create(store, &Actor::Customer(p), a).await?;
        n += 1;
    }
    for (i, (title, body, answers)) in DEMO_QUESTIONS.iter().enumerate() {
        let Some(asker) = person(100 + i).await else {
            continue;
        };
        let asker = Actor::Customer(asker);
        let q = community::ask(store, &asker, title, body).await?;
        n += 1;
        for (j, text) in answers.iter().enumerate() {
            let Some(helper) = person(40 + (i * 3 + j) % 20).await else {
                continue;
            };
            let a = community::answer(store, &Actor::Customer(helper), q.id, text).await?;
            n += 1;
            for v in 0..(3 + (i + j) % 5) {
                if let Some(voter) = person(150 + v * 7 + i).await {
                    let _ = community::vote(store, voter, a.id, 1).await;
                }
            }
            if j == 0 && i % 3 != 2 {
                community::accept(store, &asker, q.id, a.id).await?;
            }
        }
    }
    if let Some(rude) = person(61).await {
        let qs = store
            .posts(rapport_store::PostFilter {
                kind: Some("question".into()),
                limit: 1,
                ..Default::default()
            })
            .await?;
        if let Some(q) = qs.first() {
            let text = "What a stupid question, you idiot. Read the manual like everyone else.";
            community::answer(store, &Actor::Customer(rude), q.id, text).await?;
            n += 1;
        }
    }
    let email = crate::email::Email::new(store.clone());
    for (i, (title, body, status)) in DEMO_IDEAS.iter().enumerate() {
        let Some(author) = person(200 + i).await else {
            continue;
        };
        let idea = community::suggest(store, &Actor::Customer(author), title, body).await?;
        n += 1;
        for v in 0..(30 - i * 4) {
            if let Some(voter) = person(220 + v * 3 + i).await {
                let _ = community::vote(store, voter, idea.id, 1).await;
            }
        }
        if *status != "open" {
            let note = "Thank you for the votes: here is where it stands.";
            community::set_idea_status(store, &email, idea.id, status, Some(note)).await?;
        }
    }
    Ok(n)
}

const DEMO_ARTICLES: &[(&str, &str, &str)] = &[
    ("Where is my order?", "Orders", "Every order e-mail has a tracking link. Parcels leave the warehouse within two working days; the carrier's page shows where yours is.\n\nNo e-mail? Look in your account under Orders."),
    ("Changing the delivery address", "Delivery", "Until an order ships, open it in your account and choose Change address. Once it has shipped, ask the carrier to redirect it from the tracking page."),
    ("Delivery times and costs", "Delivery", "Standard delivery takes 2 to 4 working days and is free from 50 EUR. Express delivery arrives the next working day when you order before 2 pm."),
    ("Returning an item", "Returns", "You have 30 days to return anything unused. Open the order, choose Return, print the label and drop the parcel at any post office. We refund within five days of receiving it."),
    ("Damaged or broken on arrival", "Returns", "Sorry about that. Take a photo of the damage and the box, then open a request from your account: we send a replacement or refund you, and you keep nothing broken."),
    ("Changing the card on your subscription", "Billing", "Open Settings, then Billing, and choose Replace card. The new card is charged from the next renewal; nothing is charged twice."),
    ("Invoices for companies", "Billing", "Every order has a PDF invoice under Orders. To add your company's name and VAT number, fill them in under Settings, Billing before ordering."),
    ("Resetting your password", "Account", "On the sign-in page choose Forgot password and follow the link we e-mail you; it works for one hour."),
    ("Loyalty points", "Account", "You earn one point per euro spent and 50 points for an accepted answer in the community. Points turn into discounts at checkout."),
    ("Pairing the Echo Speaker", "Products", "Hold the button for five seconds until the light blinks blue, then choose Echo Speaker in your phone's Bluetooth settings."),
];

const DEMO_QUESTIONS: &[(&str, &str, &[&str])] = &[
    (
        "My speaker will not pair any more",
        "It worked for months, and now my phone does not find it.",
        &[
            "Hold the button for ten seconds, then pair it again: that fixed mine.",
            "Also remove it from your phone's Bluetooth list first.",
        ],
    ),
    (
        "Can I change the delivery address after ordering?",
        "I moved last week and my order has not shipped yet.",
        &["Yes: open the order in your account and choose Change address before it ships."],
    ),
    (
        "Which mug keeps coffee hot longest?",
        "Looking for one for my commute.",
        &[
            "The Ripple Mug with the lid, easily an hour.",
            "I like the steel one better, but it is heavier.",
        ],
    ),
    (
        "Do you ship to Switzerland?",
        "The checkout does not show Swiss addresses.",
        &["They do since last month; update the app, the old one does not list it."],
    ),
    (
        "How do loyalty points work?",
        "I have 300 points and do not see how to use them.",
        &[
            "At checkout there is a Use points box under the total.",
            "100 points are 5 EUR off.",
        ],
    ),
    (
        "The lamp flickers on low brightness",
        "Is that normal for the dimmable version?",
        &["Only with old dimmer switches: use the app's dimming instead and it stops."],
    ),
];

const DEMO_IDEAS: &[(&str, &str, &str)] = &[
    (
        "Gift wrapping at checkout",
        "For birthdays: a wrapped parcel without the receipt inside.",
        "planned",
    ),
    (
        "A dark mode in the app",
        "Easier on the eyes at night.",
        "started",
    ),
    (
        "Refill packs for the candles",
        "Less waste than buying a new jar.",
        "open",
    ),
    (
        "Pay with loyalty points and card together",
        "Use what I have and pay the rest.",
        "completed",
    ),
    (
        "Same-day delivery in Paris",
        "Order before noon, have it by evening.",
        "open",
    ),
    (
        "A printed catalogue",
        "I like browsing on paper.",
        "declined",
    ),
];

/// Today's support tickets (real ones, in the inbox): forty customers whose order is
/// late or broken, each with its team; some already resolved or waiting on the
/// customer, with a note. Two teams and two canned replies come with them.
async fn demo_tickets(store: &DynStore) -> Result<usize, StoreError> {
    use rapport_domain::identifier::{IdentityKey, IdentityKind};
    use rapport_domain::ticket::Status;
    // What the brand has set stays; what is missing is filled in.
    let mut s = crate::tickets::settings(store).await?;
    if s.address.is_none() {
        s.address = Some("support@shop.example".into());
        s.name = Some("Shop support".into());
    }
    if s.teams.is_empty() {
        use crate::tickets::Team;
        s.teams = vec![
            Team {
                name: "Delivery".into(),
                members: vec!["admin@rapport.local".into()],
            },
            Team {
                name: "Returns".into(),
                members: Vec::new(),
            },
        ];
    }
    if s.canned_replies.is_empty() {
        let canned = |name: &str, body: &str| crate::tickets::CannedReply {
            name: name.into(),
            body: body.into(),
        };
        s.canned_replies = vec![
            canned("Parcel on its way", "Hello {{ traits.firstName | default(\"there\") }},\n\nyour parcel left our warehouse and the carrier expects to deliver it within two days. We are sorry for the wait.\n\n{{ data.agent }}"),
            canned("Replacement sent", "Hello {{ traits.firstName | default(\"there\") }},\n\nsorry it arrived broken: a replacement is on its way, no need to send the first one back (request #{{ data.number }}).\n\n{{ data.agent }}"),
        ];
    }
    crate::tickets::set_settings(store, s).await?;
    let email = crate::email::Email::new(store.clone());
    let mut n = 0;
    for i in 0..40 {
        let Ok(key) = IdentityKey::parse(IdentityKind::UserId, &format!("u{i}")) else {
            continue;
        };
        let Some(person) = store.lookup(&key).await? else {
            continue;
        };
        let (subject, body, tag) = if i % 3 == 0 {
            (
                "Broken on arrival",
                "The box was crushed and the lamp does not switch on. What now?",
                "damaged",
            )
        } else {
            (
                "My order has not arrived",
                "I am still waiting for my order and nobody answers. This is really disappointing.",
                "delivery",
            )
        };
        let new = crate::tickets::NewTicket {
            requester: json!(person),
            subject: subject.into(),
            body: body.into(),
            priority: Some(if i % 7 == 0 { "high" } else { "normal" }.into()),
            tags: vec![tag.into()],
        };
        let t = crate::tickets::open(store, new, "email").await?;
        let team = if tag == "damaged" {
            "Returns"
        } else {
            "Delivery"
        };
        let patch = crate::tickets::Patch {
            team: Some(team.into()),
            ..Default::default()
        };
        crate::tickets::update(store, &email, t.id, patch).await?;
        let then = match i % 4 {
            0 => Some(Status::Resolved),
            1 => Some(Status::Pending),
            _ => None,
        };
        if then.is_some() {
            let note = "Checked with the carrier: the parcel left the warehouse yesterday.";
            let by = crate::tickets::Author::Note("admin@rapport.local".into());
            crate::tickets::reply(store, &email, t.id, note, by, then).await?;
        }
        n += 1;
    }
    Ok(n)
}

/// The shop's e-mail: its sending domain (an Ed25519 key only: an RSA-2048 key would
/// slow the load; `POST /api/email/domains` adds one), a welcome and a win-back
/// template, and the win-back campaign as a draft for the lapsed big spenders. Nothing
/// is sent: that needs a relay (Settings), and a marketer's decision.
async fn demo_email(store: &DynStore) -> Result<usize, StoreError> {
    use rapport_email::template::Source;
    let email = crate::email::Email::new(store.clone());
    if !store
        .domains()
        .await?
        .iter()
        .any(|d| d.domain == "shop.example")
    {
        email
            .add_domain("shop.example", Some(&["ed25519".to_string()]))
            .await?;
    }
    let footer = r#"<p style="font-size:12px;color:#666">You get this because you signed up at shop.example. <a href="{{ preferences_url }}">Choose what you get</a> or <a href="{{ unsubscribe_url }}">unsubscribe</a>.</p>"#;
    let templates = [
        ("Welcome", "Welcome to the shop, {{ traits.firstName | default(\"friend\") }}",
         "<h1>Hello {{ traits.firstName | default(\"there\") }}!</h1><p>Thanks for joining. Our most loved product this month is the Ripple Mug.</p>"),
        ("Win-back", "We miss you, {{ traits.firstName | default(\"friend\") }}: 20% off this week",
         "<h1>It has been a while</h1><p>Hello {{ traits.firstName | default(\"there\") }}, here is 20% off anything in the shop until Sunday.</p><p><a href=\"https://shop.example/sale\">See what is new</a></p>"),
    ];
    for (name, subject, html) in templates {
        email
            .save_template(
                0,
                name,
                Source {
                    subject: subject.to_string(),
                    html: format!("{html}{footer}"),
                    text: None,
                },
            )
            .await?;
    }
    crate::email::campaigns::create(
        &email,
        crate::email::campaigns::CampaignInput {
            name: "December win-back".into(),
            template: "Win-back".into(),
            from: "news@shop.example".into(),
            from_name: Some("The Shop".into()),
            kind: None,
            audience: json!({"segment": "Lapsed big spenders"}),
            send_at: None,
            per_minute: None,
            start: false,
            ab: None,
        },
    )
    .await?;
    Ok(templates.len())
}

/// The shop's loyalty programme: tiers, three rewards (one from a pool of codes), and the
/// points of the last 60 days' orders credited as the "Points for orders" rule would have
/// (same keys: the rule never credits them twice).
async fn demo_loyalty(store: &DynStore) -> Result<(), StoreError> {
    use crate::loyalty::{self, LoyaltySettings};
    let tiers = serde_json::from_value(json!([
        {"name": "Silver", "threshold": 150, "benefits": "Early access to sales"},
        {"name": "Gold", "threshold": 600, "multiplier": 1.5, "benefits": "Free delivery, 1.5 points per dollar"}]))
    .map_err(|e| StoreError::Backend(e.to_string()))?;
    loyalty::set_settings(
        store,
        LoyaltySettings {
            tiers,
            grace_days: 30,
            ..Default::default()
        },
    )
    .await?;
    let now = now_millis();
    for (name, description, cost, stock, per_person, tiers) in [
        (
            "Free delivery",
            "Delivery on us for your next order",
            100,
            None,
            None,
            vec![],
        ),
        (
            "10% voucher",
            "A code for 10% off anything",
            250,
            None,
            Some(3),
            vec![],
        ),
        (
            "Tote bag",
            "The limited-edition tote",
            800,
            Some(25),
            Some(1),
            vec!["Gold".to_string()],
        ),
    ] {
        let r = loyalty::save_reward(
            store,
            rapport_store::Reward {
                id: 0,
                name: name.into(),
                description: description.into(),
                cost,
                stock,
                per_person,
                tiers,
                segment: None,
                starts_at: None,
                ends_at: None,
                active: true,
                codes_left: None,
                created_at: now,
                updated_at: now,
            },
        )
        .await?;
        if name == "10% voucher" {
            let codes: String = (1..=40).map(|i| format!("TENOFF-{i:04}\n")).collect();
            loyalty::import_codes(store, r.id, &codes).await?;
        }
    }
    let rule = crate::rules::rules(store)
        .await?
        .into_iter()
        .find(|r| r.name == "Points for orders");
    let Some(rule) = rule else {
        return Ok(());
    };
    let orders = store
        .recent_events(
            Some("track".into()),
            Some("Order Completed".into()),
            now - 60 * 86_400_000,
            1_500,
        )
        .await?;
    let mut people = Vec::new();
    for ev in orders {
        let person = store.profile(ev.profile_id).await?;
        loyalty::earn_by_rule(
            store,
            &rule.name,
            0,
            &rule.then[0],
            person.id,
            &ev,
            &person.traits,
        )
        .await?;
        if !people.contains(&person.id) {
            people.push(person.id);
        }
    }
    // A few have redeemed already (those with too few points are refused and skipped).
    for (i, id) in people.into_iter().take(30).enumerate() {
        let reward = if i % 3 == 0 {
            "10% voucher"
        } else {
            "Free delivery"
        };
        let input = loyalty::RedeemInput {
            profile_id: id,
            reward: json!(reward),
            idempotency_key: Some(format!("demo:{id}")),
        };
        match loyalty::redeem(store, input, "demo").await {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shop_grows_and_has_a_season() {
        // 2026-12-07: the last quarter holds the season and the most growth.
        let now = 1_796_601_600_000;
        let mut rng = StdRng::seed_from_u64(7);
        let seen: Vec<i64> = (0..20_000).map(|_| first_seen(&mut rng, now)).collect();
        let within = |from: i64, to: i64| {
            seen.iter()
                .filter(|&&t| t > now - from * DAY && t <= now - to * DAY)
                .count() as f64
        };
        assert!(seen.iter().all(|&t| t <= now && t > now - 365 * DAY));
        // Growth: the summer months of this year against last winter's quiet months.
        let (spring_before, summer) = (within(300, 240), within(180, 120));
        assert!(summer > 1.15 * spring_before, "{summer} vs {spring_before}");
        // Season: the three weeks up to now against three weeks in October.
        let (season, october) = (within(21, 0), within(63, 42));
        assert!(season > 1.4 * october, "{season} vs {october}");
    }

    #[test]
    fn demo_messages_are_valid_and_varied() {
        let size = DemoSize {
            people: 100,
            events_per_person: 30,
        };
        let mut kinds = std::collections::HashSet::new();
        let mut n = 0;
        for i in 0..100 {
            for v in person(i, size, 1_700_000_000_000) {
                let batch = BatchContext {
                    received_at: 1_700_000_000_000,
                    ..Default::default()
                };
                let m = parse_message(&v, "", None, &batch, || "x".into())
                    .unwrap_or_else(|e| panic!("{e}: {v}"));
                for k in m.keys() {
                    kinds.insert(k.kind);
                }
                n += 1;
            }
        }
        assert!(n > 100 * 15, "{n} messages");
        assert!(kinds.len() >= 6, "{kinds:?}");
    }
}
