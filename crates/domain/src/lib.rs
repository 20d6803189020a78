//! Rapport's domain model. Everything here is pure: no I/O, no clocks read behind the
//! caller's back, so it is unit-tested without a database (DESIGN.md §2).

pub mod apikey;
pub mod blocklist;
pub mod community;
pub mod identifier;
pub mod import;
pub mod loyalty;
pub mod message;
pub mod model;
pub mod privacy;
pub mod relationship;
pub mod resolve;
pub mod split_loyalty;
pub mod ticket;
pub mod time;
pub mod traits;
pub mod web;

pub use identifier::{IdentifierError, IdentityKey, IdentityKind};
pub use message::{FieldError, Message, MessageType};
