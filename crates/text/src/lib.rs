//! Text analytics, pure: sentiment (a VADER port), and later intents, entities and
//! language. No I/O.

pub mod sentiment;

pub use sentiment::{Scores, Vader};
