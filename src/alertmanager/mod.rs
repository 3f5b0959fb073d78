//! Prometheus Alertmanager and Grafana as senders: checking that a notification came from them,
//! and turning its body into an [`Alert`](crate::alert::Alert) about a group.
//!
//! Both send one body per notification of a group (Grafana's is Alertmanager's, extended), so a
//! body becomes one alert whose [`AlertGroup`](crate::alert::AlertGroup) lists the group's alerts:
//! one chat message per notification, as Alertmanager grouped them. What the intake's settings
//! decided (names, levels) is kept beside the stored body as [`Decisions`], so that an alert read
//! back from the store says what it said when it was accepted, whatever the config says since.

mod auth;
mod payload;
mod settings;

pub use auth::verify_grafana_signature;
pub use payload::{parse, reread, Decisions, PayloadError};
pub use settings::{level_of_severity, LabelIntakeConfig};
