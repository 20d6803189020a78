//! The customer 360's timeline as readable cards: one line in words for the event kinds
//! a CRM knows (an order with its items and total, a review with its stars, an e-mail,
//! a token received, a page…), the person's own words, and the raw JSON folded away.

use maud::{html, Markup};
use rapport_domain::model::EventView;
use serde_json::Value;

fn text(v: &Value, k: &str) -> Option<String> {
    match v.get(k)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn money(v: &Value, amount: &str) -> Option<String> {
    let a = v.get(amount)?.as_f64()?;
    let cur = text(v, "currency").unwrap_or_default();
    Some(format!("{a:.2} {cur}").trim().to_string())
}

/// The event in words, when its kind is one a reader expects summarised.
pub fn summary(e: &EventView) -> Option<String> {
    let p = &e.properties;
    let name = e.name.as_deref().unwrap_or("");
    let line = match (e.kind.as_str(), name) {
        ("track", "Order Completed") => {
            let items: Vec<String> = p
                .get("products")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    let n = text(i, "name")?;
                    let q = i.get("quantity").and_then(Value::as_i64).unwrap_or(1);
                    Some(if q == 1 { n } else { format!("{q} × {n}") })
                })
                .collect();
            let total = money(p, "revenue").or_else(|| money(p, "total"));
            let mut s = items.join(", ");
            if let Some(t) = total {
                s = if s.is_empty() {
                    format!("total {t}")
                } else {
                    format!("{s} · total {t}")
                };
            }
            s
        }
        ("track", "Review Posted") => {
            let stars = p.get("rating").and_then(Value::as_i64).map(|r| {
                let r = r.clamp(0, 5) as usize;
                format!("{}{}", "★".repeat(r), "☆".repeat(5 - r))
            });
            [stars, text(p, "product")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
        }
        ("track", "Product Viewed" | "Product Added") => [text(p, "product"), money(p, "price")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" · "),
        ("track", n) if n.starts_with("Email ") => [
            text(p, "subject"),
            text(p, "campaign").map(|c| format!("campaign {c}")),
            text(p, "url").map(|u| format!("clicked {u}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · "),
        ("track", "Token Transfer" | "Token Received" | "Token Sent") => {
            let amount = text(p, "amount").unwrap_or_default();
            let token = text(p, "token")
                .or_else(|| text(p, "symbol"))
                .unwrap_or_default();
            let mut s = format!("{amount} {token}").trim().to_string();
            if let Some(c) = text(p, "chain") {
                s.push_str(&format!(" on {c}"));
            }
            s
        }
        ("track", "Ticket Opened") => text(p, "subject").unwrap_or_default(),
        (
            "track",
            "Points Earned" | "Points Redeemed" | "Points Expired" | "Points Reversed"
            | "Points Adjusted" | "Points Converted",
        ) if e.source == "loyalty" => {
            let n = p.get("points").and_then(Value::as_i64).unwrap_or(0);
            let sign = if name == "Points Earned" || (name == "Points Adjusted" && n > 0) {
                "+"
            } else {
                "−"
            };
            [
                Some(format!("{sign}{} points", n.abs())),
                text(p, "reward"),
                text(p, "amount")
                    .zip(text(p, "token"))
                    .map(|(a, t)| format!("into {a} {t}")),
                text(p, "order").map(|o| format!("order {o}")),
                text(p, "reason"),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" · ")
        }
        ("track", "Tier Changed") if e.source == "loyalty" => format!(
            "{} → {}",
            text(p, "from").unwrap_or_else(|| "no tier".into()),
            text(p, "to").unwrap_or_else(|| "no tier".into())
        ),
        ("track", "Referred") if e.source == "loyalty" => text(p, "referred_by")
            .map(|b| format!("by {b}"))
            .unwrap_or_default(),
        ("track", "Segment Entered" | "Segment Exited") => text(p, "segment").unwrap_or_default(),
        ("track", "Social Post") => text(p, "network")
            .map(|n| format!("on {n}"))
            .unwrap_or_default(),
        ("page" | "screen", _) => text(p, "url").unwrap_or_default(),
        ("identify", _) => {
            let keys: Vec<&str> = p
                .as_object()
                .map(|o| o.keys().map(String::as_str).take(8).collect())
                .unwrap_or_default();
            if keys.is_empty() {
                String::new()
            } else {
                format!("told us: {}", keys.join(", "))
            }
        }
        _ => String::new(),
    };
    (!line.is_empty()).then_some(line)
}

/// One event as a card: what, where, when, the summary, the text, the raw JSON folded.
pub fn card(e: &EventView) -> Markup {
    let what = e.name.clone().unwrap_or_else(|| e.kind.clone());
    let raw = e.properties.as_object().is_some_and(|o| !o.is_empty());
    html! {
        li data-at=(e.occurred_at.timestamp_millis()) data-id=(e.id) {
            div { strong { (what) } " " span.badge { (e.channel) } " " span.when { (super::layout::when(e.occurred_at)) } }
            @if let Some(s) = summary(e) { div { (s) } }
            @if let Some(t) = &e.text { div.quote { "“" (t) "”" } }
            @if raw {
                details.small.muted { summary { "Details" } pre { (serde_json::to_string_pretty(&e.properties).unwrap_or_default()) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(kind: &str, name: Option<&str>, props: Value) -> EventView {
        serde_json::from_value(json!({
            "id": 1, "message_id": "m", "profile_id": 1, "type": kind, "name": name,
            "channel": "web", "source": "s", "properties": props, "context": {},
            "text": null, "occurred_at": "2026-01-01T00:00:00Z", "received_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn known_events_read_in_words() {
        let order = ev(
            "track",
            Some("Order Completed"),
            json!({"revenue": 118.0, "currency": "USD",
            "products": [{"name": "Glow Lamp", "price": 59.0, "quantity": 2}, {"name": "Mug", "quantity": 1}]}),
        );
        assert_eq!(
            summary(&order).unwrap(),
            "2 × Glow Lamp, Mug · total 118.00 USD"
        );
        let review = ev(
            "track",
            Some("Review Posted"),
            json!({"rating": 4, "product": "Lamp"}),
        );
        assert_eq!(summary(&review).unwrap(), "★★★★☆ Lamp");
        let token = ev(
            "track",
            Some("Token Transfer"),
            json!({"amount": 35, "token": "RAPT", "chain": "eip155:1"}),
        );
        assert_eq!(summary(&token).unwrap(), "35 RAPT on eip155:1");
        let mail = ev("track", Some("Email Opened"), json!({"campaign": "spring"}));
        assert_eq!(summary(&mail).unwrap(), "campaign spring");
        let page = ev(
            "page",
            Some("Home"),
            json!({"url": "https://shop.example/"}),
        );
        assert_eq!(summary(&page).unwrap(), "https://shop.example/");
        let who = ev("identify", None, json!({"email": "a@b.c", "name": "Ann"}));
        assert_eq!(summary(&who).unwrap(), "told us: email, name");
        assert_eq!(summary(&ev("track", Some("Custom"), json!({"x": 1}))), None);
        let mut earned = ev(
            "track",
            Some("Points Earned"),
            json!({"points": 120, "order": "o-1"}),
        );
        earned.source = "loyalty".into();
        assert_eq!(summary(&earned).as_deref(), Some("+120 points · order o-1"));
        let mut spent = ev(
            "track",
            Some("Points Redeemed"),
            json!({"points": 100, "reward": "Mug"}),
        );
        spent.source = "loyalty".into();
        assert_eq!(summary(&spent).as_deref(), Some("−100 points · Mug"));
        let mut tier = ev(
            "track",
            Some("Tier Changed"),
            json!({"from": null, "to": "Gold"}),
        );
        tier.source = "loyalty".into();
        assert_eq!(summary(&tier).as_deref(), Some("no tier → Gold"));
        assert_eq!(
            summary(&ev("track", Some("Order Completed"), json!({}))),
            None
        );
    }

    #[test]
    fn the_raw_json_is_folded_and_escaped() {
        let e = ev(
            "track",
            Some("Ticket Opened"),
            json!({"subject": "<b>help</b>"}),
        );
        let html = card(&e).into_string();
        assert!(
            html.contains("<details") && html.contains("&lt;b&gt;help"),
            "{html}"
        );
        assert!(!html.contains("<b>help"), "{html}");
    }
}
