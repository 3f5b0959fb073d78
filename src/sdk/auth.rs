//! Which public key an SDK request carries: `X-Sentry-Auth: Sentry sentry_key=…` (what SDKs on
//! servers send), `?sentry_key=…` (browsers, to avoid a CORS preflight), or the envelope's `dsn`
//! header when the request carries neither. (Keys are then compared with `secret::is_one_of`.)

/// The `sentry_key` of an `X-Sentry-Auth` (or `Authorization: Sentry …`) value: the scheme in
/// any case, then comma-separated `key=value` pairs; unknown keys ignored.
pub fn key_of_auth_header(value: &str) -> Option<&str> {
    let value = value.trim();
    let (scheme, pairs) = value.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("sentry") {
        return None;
    }
    pairs
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.trim() == "sentry_key")
        .map(|(_, key)| key.trim())
        .filter(|key| !key.is_empty())
}

/// The `sentry_key` of a query string.
pub fn key_of_query(query: &str) -> Option<String> {
    url_pairs(query)
        .find(|(name, _)| name == "sentry_key")
        .map(|(_, key)| key)
        .filter(|key| !key.is_empty())
}

/// The public key of a DSN (`http://KEY@host/7`, or `KEY:SECRET@` as old ones had).
pub fn key_of_dsn(dsn: &str) -> Option<String> {
    let (_, rest) = dsn.split_once("://")?;
    let (credentials, _) = rest.split_once('@')?;
    let key = credentials.split(':').next()?;
    Some(key.to_string()).filter(|key| !key.is_empty())
}

fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(&text.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Some((decode(name), decode(value)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_sdks_send_them() {
        assert_eq!(
            key_of_auth_header(
                "Sentry sentry_key=abc123publickey, sentry_version=7, sentry_client=sentry.python/2.75.0"
            ),
            Some("abc123publickey")
        );
        assert_eq!(
            key_of_auth_header("sentry sentry_version=7,sentry_key=k"),
            Some("k")
        );
        assert_eq!(key_of_auth_header("Bearer sentry_key=k"), None);
        assert_eq!(key_of_auth_header("Sentry sentry_version=7"), None);
        assert_eq!(
            key_of_query("sentry_version=7&sentry_key=abc&sentry_client=x").as_deref(),
            Some("abc")
        );
        assert_eq!(
            key_of_dsn("https://abc@o1.ingest.example/42").as_deref(),
            Some("abc")
        );
        assert_eq!(
            key_of_dsn("http://abc:old-secret@h/42").as_deref(),
            Some("abc")
        );
        assert_eq!(key_of_dsn("http://h/42"), None);
    }
}
