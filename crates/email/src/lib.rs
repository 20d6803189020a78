//! E-mail for Rapport. Pure parts (no I/O): [`template`] (sandboxed MiniJinja),
//! [`compose`] (MIME message, standard headers, link and open tracking), [`dkim`] (keys,
//! DNS records, signing), [`token`] (signed tracking tokens), [`address`] (which of a
//! person's addresses a send uses), [`ab`] (A/B test sample, variants, winner). The connectors: [`smtp`] (a pooled relay over lettre) and [`imap`] (the bounce
//! mailbox, over async-imap).

pub mod ab;
pub mod address;
pub mod bounce;
pub mod compose;
pub mod dkim;
pub mod imap;
pub mod inbound;
pub mod smtp;
pub mod template;
pub mod token;
