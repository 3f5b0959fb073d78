//! `Sentry-Hook-Signature`: lowercase hex HMAC-SHA256 of the raw request body, keyed with the
//! integration's client secret.
//!
//! The check runs over the bytes exactly as they arrived. Re-serialising the parsed JSON (which
//! would turn Sentry's `\u00e9` escapes into raw UTF-8) is the most common reason such checks fail,
//! so the verifier never sees anything but the raw body.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Verifies signatures against every configured client secret, so a secret rotation (which
/// Sentry applies at once) never drops a callback signed with the other one.
#[derive(Clone)]
pub struct SignatureVerifier {
    /// One keyed MAC per secret, prepared once: cloning a keyed state is cheaper than re-keying.
    keyed: Vec<HmacSha256>,
}

impl SignatureVerifier {
    pub fn new(secrets: &[Secret]) -> Self {
        let keyed = secrets
            .iter()
            .map(|secret| {
                HmacSha256::new_from_slice(secret.expose().as_bytes())
                    .expect("HMAC-SHA256 accepts keys of any length")
            })
            .collect();
        SignatureVerifier { keyed }
    }

    /// True when `signature_hex` is the HMAC of `body` under one of the secrets. The comparison is
    /// constant time; a malformed signature (not 64 hex digits) is simply not valid.
    pub fn verify(&self, body: &[u8], signature_hex: &str) -> bool {
        let mut expected = [0u8; 32];
        if hex::decode_to_slice(signature_hex.trim(), &mut expected).is_err() {
            return false;
        }
        // Every secret is tried even after a match, so timing does not tell which one matched.
        self.keyed.iter().fold(false, |matched, keyed| {
            let mut mac = keyed.clone();
            mac.update(body);
            mac.verify_slice(&expected).is_ok() | matched
        })
    }
}

/// The signature Sentry would send for `body` under `secret` (lowercase hex).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector from REFERENCE.md §1: the body carries a literal `\u00e9` escape, as Sentry sends it.
    const VECTOR_BODY: &str = r#"{"action":"created","installation":{"uuid":"eac5a0ae-60ec-418f-9318-46dc5e7e52ec"},"data":{"comment_id":1234,"issue_id":100,"project_slug":"sentry","timestamp":"2022-03-02T21:51:44.118160Z","comment":"adding a comment \u00e9"},"actor":{"type":"user","id":1,"name":"colleen"}}"#;
    const VECTOR_SIGNATURE: &str =
        "7b43f45edbad4f5a5c3da52621542199875b69c99d26c0084f9f65409ee19112";
    const EMPTY_SIGNATURE: &str =
        "cff7ccd625537ce1a726fd29f7fc4beca8a15c96b6c9ee9b9461e149f57d4e88";

    fn verifier(secrets: &[&str]) -> SignatureVerifier {
        let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
        SignatureVerifier::new(&secrets)
    }

    #[test]
    fn reference_vectors() {
        assert_eq!(
            sign("test-client-secret", VECTOR_BODY.as_bytes()),
            VECTOR_SIGNATURE
        );
        assert_eq!(sign("test-client-secret", b""), EMPTY_SIGNATURE);
        let verifier = verifier(&["test-client-secret"]);
        assert!(verifier.verify(VECTOR_BODY.as_bytes(), VECTOR_SIGNATURE));
        assert!(verifier.verify(b"", EMPTY_SIGNATURE));
    }

    #[test]
    fn any_configured_secret_verifies() {
        let verifier = verifier(&["old-secret", "test-client-secret"]);
        assert!(verifier.verify(VECTOR_BODY.as_bytes(), VECTOR_SIGNATURE));
        assert!(!verifier.verify(
            VECTOR_BODY.as_bytes(),
            &sign("third", VECTOR_BODY.as_bytes())
        ));
    }

    #[test]
    fn re_encoded_body_does_not_verify() {
        let re_encoded = VECTOR_BODY.replace(r"\u00e9", "é");
        let verifier = verifier(&["test-client-secret"]);
        assert!(!verifier.verify(re_encoded.as_bytes(), VECTOR_SIGNATURE));
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let verifier = verifier(&["test-client-secret"]);
        for bad in [
            "",
            "zz",
            &VECTOR_SIGNATURE[..63],
            &VECTOR_SIGNATURE.to_uppercase()[..10],
        ] {
            assert!(!verifier.verify(VECTOR_BODY.as_bytes(), bad), "{bad:?}");
        }
        // Upper-case hex is the same bytes; Sentry sends lower case but accepting both is harmless.
        assert!(verifier.verify(VECTOR_BODY.as_bytes(), &VECTOR_SIGNATURE.to_uppercase()));
    }
}
