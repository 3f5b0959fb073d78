//! herald: a durable bridge from Sentry, Alertmanager and Grafana to the places a team reads.

pub mod alert;
pub mod alertmanager;
pub mod cli;
pub mod clock;
pub mod config;
pub mod de;
pub mod http;
pub mod intake;
pub mod job;
pub mod metrics;
pub mod people;
pub mod queue;
pub mod render;
pub mod repeated;
pub mod rfc3339;
pub mod route;
pub mod sdk;
pub mod secret;
pub mod sentry;
pub mod server;
pub mod store;
pub mod targets;
pub mod text;
pub mod triage;
