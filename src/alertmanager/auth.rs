//! Who may post: a shared token (Alertmanager's and Grafana's `http_config` send it as a bearer
//! token or as a basic-auth password), and Grafana's optional HMAC signature of the body.

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// What an `Authorization` header proved.
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
        // Every token is compared, so the time taken does not tell which one matched.
        let matched = tokens.iter().fold(false, |found, token| {
            bool::from(token.expose().as_bytes().ct_eq(presented.as_bytes())) | found
        });
        if matched {
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

/// How far a signed timestamp may be from herald's clock.
const MAX_SKEW_SECONDS: i64 = 300;

/// Checks Grafana's `X-Grafana-Alerting-Signature`: lowercase hex HMAC-SHA256 of the body, keyed
/// with the secret, over `timestamp:` + body when Grafana sends a timestamp header.
pub fn verify_grafana_signature(
    secret: &Secret,
    body: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), &'static str> {
    let signature = signature.ok_or("missing X-Grafana-Alerting-Signature header")?;
    let mut expected = [0u8; 32];
    if hex::decode_to_slice(signature.trim(), &mut expected).is_err() {
        return Err("X-Grafana-Alerting-Signature is not 64 hex digits");
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    if let Some(timestamp) = timestamp {
        let seconds: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| "the signature's timestamp is not a number of seconds")?;
        if (now.timestamp() - seconds).abs() > MAX_SKEW_SECONDS {
            return Err("the signature's timestamp is more than five minutes off");
        }
        mac.update(timestamp.trim().as_bytes());
        mac.update(b":");
    }
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| "X-Grafana-Alerting-Signature does not match the body")
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
    fn grafana_signatures() {
        let secret = Secret::new("grafana-secret");
        let body = br#"{"version":"1"}"#;
        let sign = |prefix: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"grafana-secret").unwrap();
            mac.update(prefix);
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        };
        let now = Utc::now();
        let plain = sign(b"");
        assert!(verify_grafana_signature(&secret, body, Some(&plain), None, now).is_ok());
        let ts = now.timestamp().to_string();
        let stamped = sign(format!("{ts}:").as_bytes());
        assert!(verify_grafana_signature(&secret, body, Some(&stamped), Some(&ts), now).is_ok());
        assert!(verify_grafana_signature(&secret, body, Some(&plain), Some(&ts), now).is_err());
        let old = (now.timestamp() - 600).to_string();
        let stale = sign(format!("{old}:").as_bytes());
        assert!(verify_grafana_signature(&secret, body, Some(&stale), Some(&old), now).is_err());
        assert!(verify_grafana_signature(&secret, body, None, None, now).is_err());
    }
}
