//! Grafana's optional HMAC signature of the body. (Its token, and Alertmanager's, is checked as a
//! [`crate::secret::TokenCheck`].)

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::Secret;

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
