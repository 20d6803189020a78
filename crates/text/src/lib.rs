//! Text analytics, pure (no I/O): sentiment (a VADER port), intents, entities and
//! language, combined by [`Analyzer::analyse`].

pub mod entities;
pub mod intents;
pub mod language;
pub mod moderation;
pub mod sentiment;
pub mod topics;
pub mod trends;

pub use entities::{Catalogue, Entity, TrackedTopic};
pub use sentiment::{Scores, Vader};

use serde::Serialize;
use std::collections::BTreeMap;

/// What one text says.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub compound: f64,
    /// `positive`, `negative` or `neutral`.
    pub label: &'static str,
    pub pos: f64,
    pub neu: f64,
    pub neg: f64,
    /// ISO 639-1 code where one exists (else 639-3), `und` when undetermined.
    pub language: String,
    pub language_confidence: f64,
    /// Intent → confidence in [0, 1], every intent listed.
    pub intents: BTreeMap<&'static str, f64>,
    pub entities: Vec<Entity>,
}

pub struct Analyzer {
    vader: Vader,
    catalogue: Catalogue,
}

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer::new(Vader::new(), Catalogue::new([]))
    }
}

impl Analyzer {
    pub fn new(vader: Vader, catalogue: Catalogue) -> Self {
        Analyzer { vader, catalogue }
    }

    pub fn sentiment(&self, text: &str) -> Scores {
        self.vader.polarity(text)
    }

    pub fn analyse(&self, text: &str) -> Analysis {
        let s = self.vader.polarity(text);
        let (language, language_confidence) = language(text);
        Analysis {
            compound: round4(s.compound),
            label: sentiment::label(s.compound),
            pos: round4(s.pos),
            neu: round4(s.neu),
            neg: round4(s.neg),
            language,
            language_confidence,
            intents: intents::intents(text, s.compound).into_iter().collect(),
            entities: entities::extract(text, &self.catalogue),
        }
    }
}

/// How sure an intent must be to tag a text with it (as the signals read them).
pub const INTENT_TAG_AT: f64 = 0.5;

impl Analysis {
    /// Labels for a support ticket, so an inbox can be filtered by them: every intent at
    /// or above [`INTENT_TAG_AT`] (`intent:complaint`), the sentiment when it leans
    /// (`sentiment:negative`), and each product and tracked topic named
    /// (`product:aurora lamp`, `topic:delivery`), lower-cased, at most 50 characters.
    pub fn tags(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .intents
            .iter()
            .filter(|(_, c)| **c >= INTENT_TAG_AT)
            .map(|(i, _)| format!("intent:{i}"))
            .collect();
        if self.label != "neutral" {
            out.push(format!("sentiment:{}", self.label));
        }
        for e in &self.entities {
            if e.kind == "product" || e.kind == "topic" {
                let tag: String = format!("{}:{}", e.kind, e.value.to_lowercase())
                    .chars()
                    .take(50)
                    .collect();
                if !out.contains(&tag) {
                    out.push(tag);
                }
            }
        }
        out
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The language of a text and a confidence in [0, 1] (see [`language::detect`]).
pub fn language(text: &str) -> (String, f64) {
    let (code, confidence) = language::detect(text);
    (code.to_string(), confidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyses_a_social_post() {
        let a = Analyzer::new(
            Vader::new(),
            Catalogue::new(["Pulse Smartwatch".to_string()]),
        );
        let r = a.analyse(
            "My Pulse Smartwatch broke after a week, this is the worst support ever @rapport",
        );
        assert_eq!(r.label, "negative");
        assert_eq!(r.language, "en");
        assert!(r.intents["complaint"] > 0.5, "{:?}", r.intents);
        let kinds: Vec<_> = r.entities.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec!["product", "mention"]);
        assert_eq!(language("Me encanta este producto, es muy bueno").0, "es");
        assert_eq!(language("ok").0, "und");
    }

    #[test]
    fn scores_are_rounded_to_four_places() {
        assert_eq!(round4(0.123_456), 0.1235);
        assert_eq!(round4(-0.987_65), -0.9877);
        let a = Analyzer::default();
        let text = "The delivery was late and the box was crushed, but support was kind.";
        let raw = a.sentiment(text);
        let r = a.analyse(text);
        assert_eq!(r.compound, round4(raw.compound));
        assert!(r.compound != 0.0 && (r.compound - raw.compound).abs() < 0.000_05);
        assert_eq!(r.pos, round4(raw.pos));
    }

    #[test]
    fn tags_a_ticket() {
        let topics = [TrackedTopic {
            name: "Delivery".into(),
            terms: vec!["courier".into(), "delivery".into()],
        }];
        let a = Analyzer::new(
            Vader::new(),
            Catalogue::with_topics(vec!["Pulse Smartwatch".to_string()], &topics),
        );
        let r = a.analyse(
            "My Pulse Smartwatch is broken and the pulse smartwatch delivery was late. I want a refund!",
        );
        assert_eq!(
            r.tags(),
            vec![
                "intent:complaint",
                "sentiment:negative",
                "product:pulse smartwatch",
                "topic:delivery"
            ],
            "{:?}",
            r.intents
        );
        // Neither leaning nor sure of anything: no tags.
        assert!(a.analyse("The box is blue.").tags().is_empty());
        // Praise leans the other way; an intent just at the bar counts.
        let mut p = a.analyse("I love it, thank you so much!");
        assert!(p.tags().contains(&"sentiment:positive".to_string()));
        p.intents.insert("question", INTENT_TAG_AT);
        assert!(p.tags().contains(&"intent:question".to_string()));
        // Long names are cut at 50 characters.
        p.entities = vec![Entity {
            kind: "product",
            value: "x".repeat(80),
            start: 0,
            end: 80,
        }];
        assert!(p
            .tags()
            .iter()
            .any(|t| t.len() == 50 && t.starts_with("product:xx")));
    }
}
