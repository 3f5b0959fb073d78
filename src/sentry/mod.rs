//! Sentry as a sender: checking that a callback really came from Sentry, and turning its payload
//! into an [`Alert`](crate::alert::Alert).

mod fields;
mod json;
mod payload;
mod signature;

pub use payload::{parse_integration_payload, parse_legacy_payload, PayloadError};
pub use signature::{sign, SignatureVerifier};
