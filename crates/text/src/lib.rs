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
}
