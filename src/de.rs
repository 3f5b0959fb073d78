//! Reading TOML strictly, and the value forms herald's config writes as people do: durations
//! (`"10s"`, `"2h"`) and byte sizes (`"1MiB"`). A leaf below `config` and `targets`, which both read
//! settings this way; errors are a key path and one sentence, which `config` turns into its own
//! error naming the file.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// Deserialises `value` strictly, reporting the failing key path under `prefix`.
pub fn typed<T: DeserializeOwned>(value: toml::Value, prefix: &str) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        // toml adds a second line ("in `key`"); the key is named by herald already.
        let inner = e
            .inner()
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let path = e.path().to_string();
        let (key, message) = match unknown_field(&inner) {
            // The path already ends with the unknown key when serde got that far.
            Some(field) if path.ends_with(field.as_str()) => {
                (path, "is not a known key".to_string())
            }
            Some(field) => (join_key(&path, &field), "is not a known key".to_string()),
            None => (path, without_value(&inner)),
        };
        let key = join_key(prefix, &key);
        (
            if key.is_empty() {
                "(top level)".into()
            } else {
                key
            },
            message,
        )
    })
}

/// serde's "invalid type: string \"s3cr3t\", expected a sequence" quotes the value, and the
/// value may be a secret written in the wrong shape (a string where a list goes, a token as a
/// number): only its kind is said.
fn without_value(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let Some((found, expected)) = rest.rsplit_once(", expected ") else {
            continue;
        };
        let kind = found
            .split(['"', '`', '\''])
            .next()
            .unwrap_or_default()
            .trim();
        let kind = if kind.is_empty() { "a value" } else { kind };
        return format!("{prefix}{kind}, expected {expected}");
    }
    message.to_string()
}

/// serde says "unknown field `x`, expected …"; herald names the key instead.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

pub fn join_key(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty() || key == ".") {
        (_, true) => prefix.to_string(),
        (true, false) => key.to_string(),
        (false, false) if key.starts_with('[') => format!("{prefix}{key}"),
        (false, false) => format!("{prefix}.{key}"),
    }
}

/// Durations as humans write them: `"500ms"`, `"10s"`, `"10m"`, `"2h"`.
pub mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(text.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration ({e}); write e.g. \"30s\", \"10m\", \"2h\""
            ))
        })
    }
}

pub mod optional_durations {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Wrapped(#[serde(with = "duration")] Duration);

    pub fn serialize<S: Serializer>(
        value: &Option<Vec<Duration>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let wrapped: Option<Vec<Wrapped>> = value
            .as_ref()
            .map(|list| list.iter().copied().map(Wrapped).collect());
        wrapped.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<Duration>>, D::Error> {
        let wrapped = Option::<Vec<Wrapped>>::deserialize(deserializer)?;
        Ok(wrapped.map(|list| list.into_iter().map(|w| w.0).collect()))
    }
}

/// Byte sizes: a number of bytes, or a string such as `"1MiB"`, `"512KiB"`, `"2MB"`.
pub mod byte_size {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Bytes(u64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(*value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        match Written::deserialize(deserializer)? {
            Written::Bytes(bytes) => Ok(bytes),
            Written::Text(text) => parse(&text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a size; write e.g. 1048576, \"1MiB\" or \"512KiB\""
                ))
            }),
        }
    }

    pub fn parse(text: &str) -> Option<u64> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().ok()?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "kib" | "k" => 1 << 10,
            "mb" => 1_000_000,
            "mib" | "m" => 1 << 20,
            "gb" => 1_000_000_000,
            "gib" | "g" => 1 << 30,
            _ => return None,
        };
        number.checked_mul(multiplier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(byte_size::parse("1MiB"), Some(1 << 20));
        assert_eq!(byte_size::parse("512 KiB"), Some(512 << 10));
        assert_eq!(byte_size::parse("2MB"), Some(2_000_000));
        assert_eq!(byte_size::parse("12"), Some(12));
        assert_eq!(byte_size::parse("1 parsec"), None);
        assert_eq!(byte_size::parse("99999999999999999999G"), None);
    }
}
