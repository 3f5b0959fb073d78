//! herald's configuration: one TOML file, `${VAR}` / `${VAR:-default}` in any string, and
//! validation that refuses a bad file with one sentence naming the key.
//!
//! Loading happens in three steps, each with its own kind of error:
//! 1. TOML syntax (the error names the line and column);
//! 2. environment interpolation over every string value (the error names the key and the variable);
//! 3. typed deserialisation and cross-checks: unknown keys, unknown target kinds, duplicate target
//!    names, routes naming unknown targets (the error names the key path).
//!
//! Interpolation runs on parsed values, not on the file's text, so a secret containing a quote or a
//! newline can never change the structure of the file.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::alertmanager::LabelIntakeConfig;
use crate::de::{byte_size, duration, typed};
use crate::people::People;
use crate::route::{RouteConfig, Router, ROUTED_BY_DEFAULT};
use crate::secret::Secret;
use crate::targets::{target_config, TargetConfig};

mod interpolate;

use interpolate::interpolate;

/// A config that cannot be used, as one sentence for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line}, column {column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: `{key}` {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub sentry: SentryConfig,
    /// Sentry SDKs posting to herald (`/api/{id}/envelope/`); off without projects.
    #[serde(default)]
    pub sdk: crate::sdk::SdkConfig,
    /// `POST /hooks/alertmanager`; off without this table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertmanager: Option<LabelIntakeConfig>,
    /// `POST /hooks/grafana`; off without this table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grafana: Option<LabelIntakeConfig>,
    /// `[people.NAME]`: whom routes and labels may @-mention.
    #[serde(default, skip_serializing_if = "People::is_empty")]
    pub people: People,
    #[serde(default)]
    pub dedupe: DedupeConfig,
    #[serde(default)]
    pub templates: TemplatesConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default, skip_deserializing)]
    pub targets: Vec<TargetConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "ServerConfig::default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "ServerConfig::default_data_dir")]
    pub data_dir: PathBuf,
    /// Bearer token of the admin API; without it the admin API is off.
    #[serde(default)]
    pub admin_token: Option<Secret>,
    /// The address people and SDKs reach herald at (`https://herald.example`), for the DSNs
    /// `herald dsn` prints; without it, `http://<server.listen>`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// When set, `/metrics` needs it as a bearer token, and `/readyz` shows its counts only with
    /// it; without it both are open, as probes and scrapers expect.
    #[serde(default)]
    pub metrics_token: Option<Secret>,
    /// Largest request body accepted on the hooks; larger ones are answered 413.
    #[serde(default = "ServerConfig::default_body_limit", with = "byte_size")]
    pub body_limit: u64,
    /// On SIGTERM/SIGINT, how long deliveries in flight may take to finish.
    #[serde(default = "ServerConfig::default_shutdown_grace", with = "duration")]
    pub shutdown_grace: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    #[serde(default = "ServerConfig::default_max_connections")]
    pub max_connections: usize,
    /// How long a request's headers may take to arrive; also how long an idle connection is kept.
    #[serde(default = "ServerConfig::default_header_timeout", with = "duration")]
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive (then 408).
    #[serde(default = "ServerConfig::default_body_timeout", with = "duration")]
    pub body_timeout: Duration,
    /// Bytes of request bodies herald holds at once while reading them (then 503).
    #[serde(default = "ServerConfig::default_body_memory", with = "byte_size")]
    pub body_memory: u64,
}

impl ServerConfig {
    fn default_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
    fn default_data_dir() -> PathBuf {
        PathBuf::from("./data")
    }
    fn default_body_limit() -> u64 {
        1024 * 1024
    }
    fn default_shutdown_grace() -> Duration {
        Duration::from_secs(10)
    }
    fn default_max_connections() -> usize {
        1024
    }
    fn default_header_timeout() -> Duration {
        Duration::from_secs(10)
    }
    fn default_body_timeout() -> Duration {
        Duration::from_secs(30)
    }
    fn default_body_memory() -> u64 {
        64 * 1024 * 1024
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: Self::default_listen(),
            data_dir: Self::default_data_dir(),
            admin_token: None,
            metrics_token: None,
            public_url: None,
            body_limit: Self::default_body_limit(),
            shutdown_grace: Self::default_shutdown_grace(),
            max_connections: Self::default_max_connections(),
            header_timeout: Self::default_header_timeout(),
            body_timeout: Self::default_body_timeout(),
            body_memory: Self::default_body_memory(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentryConfig {
    /// Client secrets of the Sentry integration; several during a rotation.
    #[serde(default)]
    pub client_secrets: Vec<Secret>,
    /// Tokens for `POST /hooks/sentry/legacy/{token}` (the legacy WebHooks plugin).
    #[serde(default)]
    pub legacy_tokens: Vec<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// Repeated alerts of one Sentry issue within this window are folded into one message.
    #[serde(default = "DedupeConfig::default_window", with = "duration")]
    pub window: Duration,
    /// How long an identical callback (Sentry's retries, a double click) is recognised.
    #[serde(default = "DedupeConfig::default_remember", with = "duration")]
    pub remember: Duration,
    /// How long an identical Alertmanager or Grafana notification (HA twins, a retry after a lost
    /// answer) is answered "duplicate". Later, an unchanged group is a repeat: counted, not sent.
    #[serde(default = "DedupeConfig::default_redelivery_window", with = "duration")]
    pub redelivery_window: Duration,
}

impl DedupeConfig {
    fn default_window() -> Duration {
        Duration::from_secs(600)
    }
    fn default_remember() -> Duration {
        Duration::from_secs(3600)
    }
    fn default_redelivery_window() -> Duration {
        Duration::from_secs(600)
    }
}

impl Default for DedupeConfig {
    fn default() -> Self {
        DedupeConfig {
            window: Self::default_window(),
            remember: Self::default_remember(),
            redelivery_window: Self::default_redelivery_window(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// How long an alert is kept after everything about it was delivered.
    #[serde(default = "StoreConfig::default_retention", with = "duration")]
    pub retention: Duration,
    /// How often expired dedupe records, fold records and alerts are swept.
    #[serde(default = "StoreConfig::default_sweep_every", with = "duration")]
    pub sweep_every: Duration,
    /// A PostgreSQL database that several herald replicas share
    /// (`postgres://user:password@host:5432/herald`); without it, sled in `server.data_dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Secret>,
    /// Connections to the database this replica keeps at most.
    #[serde(default = "StoreConfig::default_pool_size")]
    pub pool_size: usize,
    #[serde(default = "StoreConfig::default_connect_timeout", with = "duration")]
    pub connect_timeout: Duration,
    /// How long a target stays with a replica that stopped renewing it (it died): then another
    /// replica takes its queue and sends what was in flight again.
    #[serde(default = "StoreConfig::default_lease", with = "duration")]
    pub lease: Duration,
}

impl StoreConfig {
    fn default_pool_size() -> usize {
        8
    }
    fn default_connect_timeout() -> Duration {
        Duration::from_secs(5)
    }
    fn default_lease() -> Duration {
        Duration::from_secs(30)
    }

    /// The PostgreSQL settings, when `url` is set.
    pub fn postgres(&self) -> Option<crate::store::postgres::PgSettings> {
        self.url
            .as_ref()
            .map(|url| crate::store::postgres::PgSettings {
                url: url.clone(),
                pool_size: self.pool_size,
                connect_timeout: self.connect_timeout,
                lease: self.lease,
            })
    }

    fn default_retention() -> Duration {
        Duration::from_secs(7 * 24 * 3600)
    }
    fn default_sweep_every() -> Duration {
        Duration::from_secs(300)
    }
}

impl Config {
    /// Opens the store the config names: PostgreSQL with `store.url`, else sled in
    /// `server.data_dir`. Blocks while it connects or opens.
    pub fn open_store(&self) -> Result<crate::store::Store, crate::store::StoreError> {
        match self.store.postgres() {
            Some(settings) => Ok(crate::store::Store::new(std::sync::Arc::new(
                crate::store::postgres::PgStore::open(&settings)?,
            ))),
            None => crate::store::Store::open(&self.server.data_dir),
        }
    }

    /// Where the store is, for messages (a database URL without its password).
    pub fn store_location(&self) -> String {
        match &self.store.url {
            Some(_) => "the PostgreSQL database of store.url".into(),
            None => self.server.data_dir.display().to_string(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            retention: Self::default_retention(),
            sweep_every: Self::default_sweep_every(),
            url: None,
            pool_size: Self::default_pool_size(),
            connect_timeout: Self::default_connect_timeout(),
            lease: Self::default_lease(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesConfig {
    /// The time zone of absolute times in messages (`UTC`, `Asia/Shanghai`, …).
    #[serde(default = "TemplatesConfig::default_timezone")]
    pub timezone: String,
}

impl TemplatesConfig {
    fn default_timezone() -> String {
        "UTC".into()
    }

    pub fn timezone(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        TemplatesConfig {
            timezone: Self::default_timezone(),
        }
    }
}

impl Config {
    /// Reads, interpolates and validates the file at `path` against the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text, |name| std::env::var(name).ok())
    }

    /// Parses `text` (named `path` in errors), looking variables up with `lookup`.
    pub fn parse(
        path: &Path,
        text: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        let mut document: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let (line, column) = e
                .span()
                .map(|span| line_and_column(text, span.start))
                .unwrap_or((1, 1));
            ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim_end_matches('\n').to_string(),
            }
        })?;
        for (key, value) in document.iter_mut() {
            interpolate(value, key, &lookup).map_err(|(key, message)| invalid(key, message))?;
        }

        let raw_targets = document.remove("targets");
        let mut config: Config = typed(toml::Value::Table(document), "")
            .map_err(|(key, message)| invalid(key, message))?;
        config.targets = match raw_targets {
            None => Vec::new(),
            Some(toml::Value::Array(entries)) => entries
                .into_iter()
                .enumerate()
                .map(|(index, entry)| target_config(index, entry))
                .collect::<Result<_, _>>()
                .map_err(|(key, message)| invalid(key, message))?,
            Some(_) => {
                return Err(invalid(
                    "targets".into(),
                    "must be a list of [[targets]] tables".into(),
                ))
            }
        };
        config
            .validate()
            .map_err(|(key, message)| invalid(key, message))?;
        Ok(config)
    }

    /// The checks that span keys: names, references, and values serde cannot judge alone.
    fn validate(&self) -> Result<(), (String, String)> {
        self.validate_sentry()?;
        self.validate_label_intakes()?;
        self.validate_sdk()?;
        self.validate_limits()?;
        let names = self.validate_targets()?;
        self.validate_routes(&names)
    }

    fn validate_sentry(&self) -> Result<(), (String, String)> {
        let sentry = &self.sentry;
        if sentry.client_secrets.is_empty()
            && sentry.legacy_tokens.is_empty()
            && self.alertmanager.is_none()
            && self.grafana.is_none()
            && self.sdk.projects.is_empty()
        {
            return Err((
                "sentry.client_secrets".into(),
                "is empty (and so is sentry.legacy_tokens, and there is no [alertmanager], \
                 [grafana] or [[sdk.projects]]): herald could not verify any callback; set the Client Secret of your \
                 Sentry integration"
                    .into(),
            ));
        }
        for (index, secret) in sentry.client_secrets.iter().enumerate() {
            if secret.expose().trim().is_empty() {
                return Err((format!("sentry.client_secrets[{index}]"), "is empty".into()));
            }
        }
        for (key, token) in [
            ("server.admin_token", &self.server.admin_token),
            ("server.metrics_token", &self.server.metrics_token),
        ] {
            let Some(token) = token else { continue };
            if token.expose().trim().is_empty() || token.expose().trim() != token.expose() {
                return Err((
                    key.into(),
                    "is empty or has spaces around it, so no request could ever match it \
                     (leave the key out instead)"
                        .into(),
                ));
            }
        }
        for (index, token) in sentry.legacy_tokens.iter().enumerate() {
            let token = token.expose();
            if token.len() < 16
                || !token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
            {
                return Err((
                    format!("sentry.legacy_tokens[{index}]"),
                    "must be at least 16 characters of A-Z, a-z, 0-9, '-', '_', '.', '~' \
                     (it is part of a URL and is the only thing protecting it)"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    fn validate_sdk(&self) -> Result<(), (String, String)> {
        let projects = &self.sdk.projects;
        for (index, project) in projects.iter().enumerate() {
            let key = |name: &str| format!("sdk.projects[{index}].{name}");
            if project.id == 0 {
                return Err((
                    key("id"),
                    "must be more than 0 (the DSN's last path segment)".into(),
                ));
            }
            if projects[..index].iter().any(|p| p.id == project.id) {
                return Err((
                    key("id"),
                    format!("{} is used by an earlier project", project.id),
                ));
            }
            if project.name.trim().is_empty() {
                return Err((key("name"), "is empty".into()));
            }
            if projects[..index].iter().any(|p| p.name == project.name) {
                return Err((
                    key("name"),
                    format!("{:?} is used by an earlier project", project.name),
                ));
            }
            if project.public_keys.is_empty() {
                return Err((key("public_keys"), "is empty: no SDK could post".into()));
            }
            for (at, public_key) in project.public_keys.iter().enumerate() {
                let public_key = public_key.expose();
                if public_key.len() != 32 || !public_key.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err((
                        format!("sdk.projects[{index}].public_keys[{at}]"),
                        "must be 32 hex digits (e.g. from `openssl rand -hex 16`)".into(),
                    ));
                }
            }
        }
        if let Some(url) = &self.server.public_url {
            let parsed = reqwest::Url::parse(url).map_err(|e| {
                (
                    "server.public_url".to_string(),
                    format!("is not a URL ({e})"),
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err((
                    "server.public_url".into(),
                    "must be an http or https URL with a host".into(),
                ));
            }
        }
        Ok(())
    }

    fn validate_label_intakes(&self) -> Result<(), (String, String)> {
        for (name, intake) in [
            ("alertmanager", &self.alertmanager),
            ("grafana", &self.grafana),
        ] {
            let Some(intake) = intake else { continue };
            if intake.tokens.is_empty() {
                return Err((
                    format!("{name}.tokens"),
                    format!(
                        "is empty: herald could not tell {name}'s notifications from anyone's; \
                         set a token and send it as a bearer token or basic-auth password"
                    ),
                ));
            }
            for (index, token) in intake.tokens.iter().enumerate() {
                if token.expose().trim().is_empty() || token.expose().trim() != token.expose() {
                    return Err((
                        format!("{name}.tokens[{index}]"),
                        "is empty or has spaces around it, so no request could ever match it"
                            .into(),
                    ));
                }
            }
            if name == "alertmanager"
                && (intake.hmac_secret.is_some() || intake.hmac_timestamp_header.is_some())
            {
                return Err((
                    "alertmanager.hmac_secret".into(),
                    "is Grafana's: Alertmanager does not sign its notifications".into(),
                ));
            }
            if intake.hmac_timestamp_header.is_some() && intake.hmac_secret.is_none() {
                return Err((
                    format!("{name}.hmac_timestamp_header"),
                    "needs hmac_secret".into(),
                ));
            }
            for (list, labels) in [
                ("severity_labels", &intake.severity_labels),
                ("project_labels", &intake.project_labels),
                ("environment_labels", &intake.environment_labels),
            ] {
                if labels.iter().any(|label| label.trim().is_empty()) {
                    return Err((format!("{name}.{list}"), "names an empty label".into()));
                }
            }
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), (String, String)> {
        if self.templates.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err((
                "templates.timezone".into(),
                format!(
                    "{:?} is not a time zone name (e.g. \"UTC\", \"Asia/Shanghai\")",
                    self.templates.timezone
                ),
            ));
        }
        if self.store.sweep_every.is_zero() {
            return Err(("store.sweep_every".into(), "must be more than 0".into()));
        }
        if let Some(url) = &self.store.url {
            match url.expose().parse::<tokio_postgres::Config>() {
                Err(_) => {
                    return Err((
                        "store.url".into(),
                        "is not a PostgreSQL URL (postgres://user:password@host:5432/herald)"
                            .into(),
                    ))
                }
                Ok(parsed) if parsed.get_ssl_mode() == tokio_postgres::config::SslMode::Require => {
                    return Err((
                        "store.url".into(),
                        "asks for TLS (sslmode=require), which herald does not speak to PostgreSQL yet: \
                         connect over a private network or a local TLS proxy (sslmode=disable)"
                            .into(),
                    ))
                }
                Ok(_) => {}
            }
            if self.store.pool_size == 0 {
                return Err(("store.pool_size".into(), "must be more than 0".into()));
            }
            if self.store.lease < Duration::from_secs(5) {
                return Err((
                    "store.lease".into(),
                    "must be 5 s or more: a replica renews it a third of the way through".into(),
                ));
            }
        }
        if self.server.body_limit == 0 {
            return Err((
                "server.body_limit".into(),
                "must be more than 0 bytes".into(),
            ));
        }
        if self.server.body_memory < self.server.body_limit {
            return Err((
                "server.body_memory".into(),
                "must be at least server.body_limit: one body of the largest size must fit".into(),
            ));
        }
        if self.server.max_connections == 0 {
            return Err((
                "server.max_connections".into(),
                "must be more than 0".into(),
            ));
        }
        for (key, value) in [
            ("server.header_timeout", self.server.header_timeout),
            ("server.body_timeout", self.server.body_timeout),
        ] {
            if value.is_zero() {
                return Err((key.into(), "must be more than 0".into()));
            }
        }
        Ok(())
    }

    /// Returns the target names, which routes may name.
    fn validate_targets(&self) -> Result<HashSet<&str>, (String, String)> {
        if self.targets.is_empty() {
            return Err((
                "targets".into(),
                "is empty: add at least one [[targets]] (kind = \"console\" prints to stdout)"
                    .into(),
            ));
        }
        let mut names = HashSet::new();
        for (index, target) in self.targets.iter().enumerate() {
            let key = format!("targets[{index}].name");
            if target.name.is_empty()
                || !target
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err((
                    key,
                    format!(
                        "{:?} must be non-empty and use only A-Z, a-z, 0-9, '-', '_', '.'",
                        target.name
                    ),
                ));
            }
            if !names.insert(target.name.as_str()) {
                return Err((
                    key,
                    format!(
                        "{:?} names a second target: target names must be unique",
                        target.name
                    ),
                ));
            }
            if target.timeout.is_zero() {
                return Err((
                    format!("targets[{index}].timeout"),
                    "must be more than 0".into(),
                ));
            }
        }
        Ok(names)
    }

    fn validate_routes(&self, names: &HashSet<&str>) -> Result<(), (String, String)> {
        for (index, route) in self.routes.iter().enumerate() {
            if route.targets.is_empty() {
                return Err((format!("routes[{index}].targets"), "is empty".into()));
            }
            if let Some(unknown) = route.targets.iter().find(|t| !names.contains(t.as_str())) {
                return Err((
                    format!("routes[{index}].targets"),
                    format!("names {unknown:?}, which is not a configured target"),
                ));
            }
            if let Some(unknown) = route.mention.iter().find(|p| self.people.get(p).is_none()) {
                return Err((
                    format!("routes[{index}].mention"),
                    format!("names {unknown:?}, who is not in [people]"),
                ));
            }
            if let Some(unknown) = route
                .matcher
                .source
                .iter()
                .find(|s| crate::alert::Source::parse(s).is_none())
            {
                return Err((
                    format!("routes[{index}].match.source"),
                    format!(
                        "names {unknown:?}; sources are sentry, sentry_legacy_plugin, \
                         alertmanager, grafana and sentry_sdk"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The routing this config describes.
    pub fn router(&self) -> Router {
        Router::new(&self.routes, self.target_names(), self.people.clone())
    }

    /// The names of every configured target, in the file's order.
    pub fn target_names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.name.clone()).collect()
    }

    /// The target called `name`.
    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// The effective configuration as TOML, every secret written as `***`.
    pub fn to_masked_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print the config: {e}\n"))
    }
}

/// What `herald check-config` prints: a verdict, the effective config (secrets masked) and the
/// routing in words.
pub fn describe(path: &Path, config: &Config) -> String {
    let mut out = format!(
        "# {}: OK
",
        path.display()
    );
    out.push_str(&config.to_masked_toml());
    out.push_str(
        "
# Routing
",
    );
    if config.routes.is_empty() {
        out.push_str(&format!(
            "# no [[routes]]: every target receives {} alerts
",
            ROUTED_BY_DEFAULT.join(", ")
        ));
    }
    for (index, route) in config.routes.iter().enumerate() {
        let mut mentions: Vec<String> = route
            .mention_mobiles
            .iter()
            .chain(&route.mention_user_ids)
            .chain(&route.mention)
            .map(|who| format!("@{who}"))
            .collect();
        for label in &route.mention_from_labels {
            mentions.push(format!("@<label {label}>"));
        }
        if !route.mention_all.is_empty() {
            let levels: Vec<&str> = route.mention_all.iter().map(|l| l.as_str()).collect();
            mentions.push(format!("@all at {}", levels.join("/")));
        }
        out.push_str(&format!(
            "# route {index}: {} -> {}{}{}\n",
            route.matcher.describe(),
            route.targets.join(", "),
            if mentions.is_empty() {
                String::new()
            } else {
                format!(" mentioning {}", mentions.join(" "))
            },
            if route.continue_matching {
                " (continue)"
            } else {
                ""
            }
        ));
    }
    out
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[sentry]
client_secrets = ["s3cret"]

[[targets]]
name = "stdout"
kind = "console"
"#;

    fn parse_with(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(Path::new("herald.toml"), text, move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    fn error_of(text: &str) -> String {
        parse_with(text, &[]).unwrap_err().to_string()
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config = parse_with(MINIMAL, &[]).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.body_limit, 1 << 20);
        assert_eq!(config.dedupe.window, Duration::from_secs(600));
        assert_eq!(config.targets[0].name, "stdout");
        assert_eq!(config.targets[0].timeout, Duration::from_secs(10));
    }

    #[test]
    fn interpolation_with_and_without_defaults() {
        let text = MINIMAL.replace(
            "\"s3cret\"",
            "\"${SECRET}\", \"${OTHER:-fallback}\", \"$${LITERAL}\"",
        );
        let config = parse_with(&text, &[("SECRET", "from-env")]).unwrap();
        let secrets: Vec<&str> = config
            .sentry
            .client_secrets
            .iter()
            .map(|s| s.expose())
            .collect();
        assert_eq!(secrets, ["from-env", "fallback", "${LITERAL}"]);
    }

    #[test]
    fn interpolated_values_cannot_change_structure() {
        let text = MINIMAL.replace("\"s3cret\"", "\"${SECRET}\"");
        let config = parse_with(
            &text,
            &[("SECRET", "a\"\n[server]\nlisten = \"0.0.0.0:1\"")],
        )
        .unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn missing_variable_names_key_and_variable() {
        let message = error_of(&MINIMAL.replace("\"s3cret\"", "\"${SENTRY_CLIENT_SECRET}\""));
        assert!(message.contains("sentry.client_secrets[0]"), "{message}");
        assert!(message.contains("SENTRY_CLIENT_SECRET"), "{message}");
    }

    #[test]
    fn syntax_error_names_the_line() {
        let message = error_of("[sentry]\nclient_secrets = [\"a\"\n\n[[targets]]\n");
        assert!(message.starts_with("herald.toml line "), "{message}");
        let message = error_of("[server]\nlisten = \n");
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let message = error_of(&format!("{MINIMAL}\n[server]\nlisten_on = \"x\"\n"));
        assert!(
            message.contains("`server.listen_on` is not a known key"),
            "{message}"
        );
        let message = error_of(&format!("{MINIMAL}color = \"blue\"\n"));
        assert!(
            message.contains("`targets[0].color` is not a known key"),
            "{message}"
        );
        let message = error_of(&format!(
            "{MINIMAL}\n[[routes]]\ntargets = [\"stdout\"]\nmatch = {{ levle = [\"error\"] }}\n"
        ));
        assert!(
            message.contains("`routes[0].match.levle` is not a known key"),
            "{message}"
        );
    }

    #[test]
    fn unknown_kind_duplicate_name_and_unknown_route_target() {
        let message = error_of(&MINIMAL.replace("\"console\"", "\"slack\""));
        assert!(message.contains("targets[0].kind"), "{message}");
        assert!(message.contains("slack"), "{message}");

        let message = error_of(&format!(
            "{MINIMAL}\n[[targets]]\nname = \"stdout\"\nkind = \"console\"\n"
        ));
        assert!(message.contains("`targets[1].name`"), "{message}");
        assert!(message.contains("unique"), "{message}");

        let message = error_of(&format!("{MINIMAL}\n[[routes]]\ntargets = [\"nobody\"]\n"));
        assert!(message.contains("`routes[0].targets`"), "{message}");
        assert!(message.contains("\"nobody\""), "{message}");
    }

    #[test]
    fn bad_values_are_named() {
        let message = error_of(&format!("{MINIMAL}timeout = \"soon\"\n"));
        assert!(message.contains("targets[0].timeout"), "{message}");
        let message = error_of(&format!("[server]\nlisten = \"nowhere\"\n{MINIMAL}"));
        assert!(message.contains("server.listen"), "{message}");
        let message = error_of(&format!("[server]\nbody_limit = \"lots\"\n{MINIMAL}"));
        assert!(message.contains("server.body_limit"), "{message}");
        let message = error_of(&MINIMAL.replace("\"s3cret\"", "\"\""));
        assert!(
            message.contains("sentry.client_secrets[0]` is empty"),
            "{message}"
        );
        let message = error_of(&MINIMAL.replace(
            "client_secrets = [\"s3cret\"]",
            "legacy_tokens = [\"short\"]",
        ));
        assert!(message.contains("sentry.legacy_tokens[0]"), "{message}");
    }

    #[test]
    fn masked_output_hides_every_secret() {
        let text = format!(
            "[server]\nadmin_token = \"admin-xyz\"\n{}",
            MINIMAL.replace("\"s3cret\"", "\"s3cret\", \"other-s3cret\"")
        );
        let printed = parse_with(&text, &[]).unwrap().to_masked_toml();
        assert!(
            !printed.contains("s3cret") && !printed.contains("admin-xyz"),
            "{printed}"
        );
        assert!(printed.contains("***"), "{printed}");
        assert!(printed.contains("kind = \"console\""), "{printed}");
    }
}
