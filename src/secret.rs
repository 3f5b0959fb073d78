//! [`Secret`]: a string that never prints itself.
//!
//! Client secrets, tokens, robot URLs with access tokens: anything that would let a reader of a log
//! line, a metric or `check-config` output impersonate Sentry or post into a team's chat is held
//! in this type. Debug, Display and Serialize all write `***`; the value is reachable only
//! through [`Secret::expose`], so every use of it is greppable.

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use subtle::ConstantTimeEq;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub const MASK: &'static str = "***";

    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that signs or compares with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(Self::MASK)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Whether `presented` is one of `secrets`. Every one is compared, each in constant time, so the
/// time taken tells neither which one matched nor how much of one.
pub fn is_one_of(presented: &str, secrets: &[Secret]) -> bool {
    secrets.iter().fold(false, |found, secret| {
        bool::from(secret.expose().as_bytes().ct_eq(presented.as_bytes())) | found
    })
}

/// What an `Authorization` header proved against shared tokens (Alertmanager's and Grafana's
/// `http_config` send one as a bearer token or as a basic-auth password; the admin API's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    Accepted,
    Missing,
    Wrong,
}

impl TokenCheck {
    /// Checks `authorization` (the header's value) against every token, in constant time for
    /// each: `Bearer <token>`, or `Basic` with the token as the password (any user name).
    pub fn of(authorization: Option<&str>, tokens: &[Secret]) -> TokenCheck {
        let Some(presented) = authorization.and_then(presented_token) else {
            return TokenCheck::Missing;
        };
        if is_one_of(&presented, tokens) {
            TokenCheck::Accepted
        } else {
            TokenCheck::Wrong
        }
    }
}

/// The token an `Authorization` value carries; the scheme is case-insensitive (RFC 9110).
fn presented_token(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_string()).filter(|token| !token.is_empty());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (_user, password) = decoded.split_once(':')?;
        return Some(password.to_string()).filter(|token| !token.is_empty());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Vec<Secret> {
        vec![Secret::new("tok-123"), Secret::new("s3cret")]
    }

    #[test]
    fn bearer_and_basic_as_alertmanager_sends_them() {
        // The exact headers of fixtures 07a and 07b.
        assert_eq!(
            TokenCheck::of(Some("Basic aGVyYWxkOnMzY3JldA=="), &tokens()),
            TokenCheck::Accepted
        );
        assert_eq!(
            TokenCheck::of(Some("Bearer tok-123"), &tokens()),
            TokenCheck::Accepted
        );
        assert_eq!(
            TokenCheck::of(Some("bearer tok-123"), &tokens()),
            TokenCheck::Accepted
        );
        assert_eq!(
            TokenCheck::of(Some("Bearer tok-12"), &tokens()),
            TokenCheck::Wrong
        );
        assert_eq!(TokenCheck::of(None, &tokens()), TokenCheck::Missing);
        assert_eq!(
            TokenCheck::of(Some("Bearer "), &tokens()),
            TokenCheck::Missing
        );
        assert_eq!(
            TokenCheck::of(Some("Digest x"), &tokens()),
            TokenCheck::Missing
        );
    }

    #[test]
    fn never_prints_itself() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{:?}", Some(vec![secret.clone()])), "Some([***])");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"***\"");
        assert_eq!(secret.expose(), "hunter2");
    }
}
