//! What a browser adds to a message: the client's address (kept whole, truncated or
//! not at all, per the brand's privacy setting) and the campaign that brought the
//! visitor (`context.campaign`, or the `utm_*` parameters of the page's address),
//! which becomes the person's first-touch and last-touch campaign traits.

use serde_json::{Map, Value};
use std::net::IpAddr;

/// How much of a client's address is kept on its events (`context.ip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpPolicy {
    /// The whole address.
    Full,
    /// IPv4 to /24, IPv6 to /48: enough for a country or city, not for one household.
    #[default]
    Truncate,
    /// No address at all, also when the client sent one.
    None,
}

impl IpPolicy {
    /// The address as stored under this policy.
    pub fn apply(self, ip: IpAddr) -> Option<String> {
        match self {
            IpPolicy::Full => Some(ip.to_string()),
            IpPolicy::None => None,
            IpPolicy::Truncate => Some(match ip {
                IpAddr::V4(v4) => {
                    let [a, b, c, _] = v4.octets();
                    std::net::Ipv4Addr::new(a, b, c, 0).to_string()
                }
                IpAddr::V6(v6) => {
                    let s = v6.segments();
                    std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0).to_string()
                }
            }),
        }
    }
}

/// The request a message arrived in, as the HTTP layer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client's address (the socket's peer, or the proxy's `X-Forwarded-For`).
    pub ip: Option<IpAddr>,
    pub policy: IpPolicy,
}

/// Sets `context.ip` per the policy: the address the client sent (server-side SDKs
/// forward the end user's), else the request's own; dropped when the policy says so or
/// the sent value is not an address.
pub fn stamp_ip(ctx: &mut Map<String, Value>, client: &Client) {
    let sent = ctx
        .get("ip")
        .and_then(Value::as_str)
        .and_then(|s| s.trim().parse::<IpAddr>().ok());
    match sent.or(client.ip).and_then(|ip| client.policy.apply(ip)) {
        Some(ip) => {
            ctx.insert("ip".into(), Value::String(ip));
        }
        None => {
            ctx.remove("ip");
        }
    }
}

/// The campaign parts a touch records, in Segment's `context.campaign` names.
pub const CAMPAIGN_PARTS: [&str; 5] = ["source", "medium", "name", "term", "content"];

/// The campaign of a message: `context.campaign` when it has a source, medium or name,
/// else the `utm_*` parameters of `context.page.search` or `context.page.url`. `None`
/// for a visit without one (a direct visit does not replace the last campaign).
pub fn campaign(ctx: &Map<String, Value>) -> Option<Map<String, Value>> {
    // Most events have none: skip the address parsing for them.
    if !campaign_hint(ctx) {
        return None;
    }
    let mut out = Map::new();
    if let Some(Value::Object(c)) = ctx.get("campaign") {
        for part in CAMPAIGN_PARTS {
            if let Some(v) = c.get(part).and_then(Value::as_str).map(str::trim) {
                if !v.is_empty() {
                    out.insert(part.into(), Value::String(clip(v)));
                }
            }
        }
    }
    if out.is_empty() {
        let page = ctx.get("page").and_then(Value::as_object);
        let query = page
            .and_then(|p| p.get("search").and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_start_matches('?').to_string())
            .or_else(|| {
                let url = page?.get("url")?.as_str()?;
                let parsed = url::Url::parse(url).ok()?;
                parsed.query().map(str::to_string)
            })
            .unwrap_or_default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let part = match k.as_ref() {
                "utm_source" => "source",
                "utm_medium" => "medium",
                "utm_campaign" => "name",
                "utm_term" => "term",
                "utm_content" => "content",
                _ => continue,
            };
            let v = v.trim();
            if !v.is_empty() && !out.contains_key(part) {
                out.insert(part.into(), Value::String(clip(v)));
            }
        }
    }
    // A term or content alone (no source, medium or name) is not a campaign.
    if ["source", "medium", "name"]
        .iter()
        .any(|k| out.contains_key(*k))
    {
        Some(out)
    } else {
        None
    }
}

/// A cheap test for whether [`campaign`] may find one (no address parsing), for the
/// real-time engine deciding whether an event changed the person's traits.
pub fn may_have_campaign(ctx: &Value) -> bool {
    ctx.as_object().is_some_and(campaign_hint)
}

fn campaign_hint(ctx: &Map<String, Value>) -> bool {
    let page = ctx.get("page");
    let has_utm = |k: &str| {
        page.and_then(|p| p.get(k))
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains("utm_"))
    };
    ctx.get("campaign").is_some_and(Value::is_object) || has_utm("search") || has_utm("url")
}

/// Campaign values are labels: at most 200 characters are kept.
fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

/// The trait patch a campaign makes: `last_touch` replaced whole (parts the campaign
/// does not have are deleted, so no part of an older campaign survives), with the
/// event's time in `at`.
pub fn last_touch_patch(campaign: &Map<String, Value>, at: i64) -> Value {
    let mut touch = Map::new();
    for part in CAMPAIGN_PARTS {
        touch.insert(
            part.into(),
            campaign.get(part).cloned().unwrap_or(Value::Null),
        );
    }
    touch.insert("at".into(), Value::from(at));
    Value::Object(touch)
}

/// The `first_touch` trait value: the campaign and its time; stored only when the
/// person has none yet or this one is earlier (see the stores' ingest).
pub fn first_touch(campaign: &Map<String, Value>, at: i64) -> Value {
    let mut touch = campaign.clone();
    touch.insert("at".into(), Value::from(at));
    Value::Object(touch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn addresses_are_kept_truncated_or_dropped() {
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        let v6: IpAddr = "2001:db8:85a3:8d3:1319:8a2e:370:7348".parse().unwrap();
        assert_eq!(IpPolicy::Full.apply(v4).as_deref(), Some("203.0.113.77"));
        assert_eq!(IpPolicy::Truncate.apply(v4).as_deref(), Some("203.0.113.0"));
        assert_eq!(
            IpPolicy::Truncate.apply(v6).as_deref(),
            Some("2001:db8:85a3::")
        );
        assert_eq!(IpPolicy::None.apply(v4), None);
        assert_eq!(IpPolicy::default(), IpPolicy::Truncate);
    }

    #[test]
    fn the_sent_address_wins_and_follows_the_policy() {
        let client = Client {
            ip: "198.51.100.9".parse().ok(),
            policy: IpPolicy::Truncate,
        };
        let mut c = ctx(json!({"ip": "203.0.113.77"}));
        stamp_ip(&mut c, &client);
        assert_eq!(c["ip"], "203.0.113.0");
        let mut c = ctx(json!({}));
        stamp_ip(&mut c, &client);
        assert_eq!(c["ip"], "198.51.100.0");
        let mut c = ctx(json!({"ip": "not an address"}));
        stamp_ip(&mut c, &client);
        assert_eq!(c["ip"], "198.51.100.0");
        let none = Client {
            policy: IpPolicy::None,
            ..client
        };
        let mut c = ctx(json!({"ip": "203.0.113.77"}));
        stamp_ip(&mut c, &none);
        assert!(!c.contains_key("ip"));
        let unknown = Client { ip: None, ..client };
        let mut c = ctx(json!({"ip": "junk"}));
        stamp_ip(&mut c, &unknown);
        assert!(!c.contains_key("ip"));
    }

    #[test]
    fn campaign_from_context_or_utm_parameters() {
        let c = campaign(&ctx(
            json!({"campaign": {"source": "news", "medium": "email", "name": " spring ", "term": ""}}),
        ));
        assert_eq!(
            c,
            Some(ctx(
                json!({"source": "news", "medium": "email", "name": "spring"})
            ))
        );
        let c = campaign(&ctx(
            json!({"page": {"search": "?utm_source=bsky&utm_campaign=launch%20day&utm_content=a&x=1"}}),
        ));
        assert_eq!(
            c,
            Some(ctx(
                json!({"source": "bsky", "name": "launch day", "content": "a"})
            ))
        );
        let c = campaign(&ctx(
            json!({"page": {"url": "https://shop.example/?utm_medium=cpc&utm_term=shoes"}}),
        ));
        assert_eq!(c, Some(ctx(json!({"medium": "cpc", "term": "shoes"}))));
        // No campaign: a direct visit, a term alone, an unparseable address.
        assert_eq!(
            campaign(&ctx(json!({"page": {"url": "https://shop.example/"}}))),
            None
        );
        assert_eq!(
            campaign(&ctx(json!({"page": {"search": "?utm_term=x"}}))),
            None
        );
        assert_eq!(
            campaign(&ctx(json!({"page": {"url": "not a url?utm_source=x"}}))),
            None
        );
        assert_eq!(campaign(&ctx(json!({"campaign": "spring"}))), None);
        // context.campaign wins over the address.
        let c = campaign(&ctx(
            json!({"campaign": {"source": "a"}, "page": {"search": "?utm_source=b"}}),
        ));
        assert_eq!(c, Some(ctx(json!({"source": "a"}))));
        // Long labels are clipped.
        let long = "x".repeat(300);
        let c = campaign(&ctx(json!({"campaign": {"name": long}}))).unwrap();
        assert_eq!(c["name"].as_str().unwrap().len(), 200);
    }

    #[test]
    fn a_cheap_campaign_test() {
        assert!(may_have_campaign(&json!({"campaign": {"source": "x"}})));
        assert!(may_have_campaign(
            &json!({"page": {"search": "?utm_source=x"}})
        ));
        assert!(may_have_campaign(
            &json!({"page": {"url": "https://a/?utm_medium=x"}})
        ));
        assert!(!may_have_campaign(
            &json!({"page": {"url": "https://a/", "search": ""}})
        ));
        assert!(!may_have_campaign(&json!({"campaign": "x"})));
        assert!(!may_have_campaign(&json!(null)));
    }

    #[test]
    fn touches() {
        let c = ctx(json!({"source": "news", "medium": "email"}));
        assert_eq!(
            last_touch_patch(&c, 5),
            json!({"source": "news", "medium": "email", "name": null, "term": null, "content": null, "at": 5})
        );
        assert_eq!(
            first_touch(&c, 5),
            json!({"source": "news", "medium": "email", "at": 5})
        );
    }
}
