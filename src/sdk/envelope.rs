//! Sentry's envelope format, read leniently: a header line of JSON, then items, each a header
//! line (`type`, optional `length`) and a payload. Unknown item types and header fields are
//! skipped; only what an alert needs is kept.

use serde::Deserialize;

/// An envelope's own header: what herald reads of it.
#[derive(Debug, Default, Deserialize)]
pub struct EnvelopeHeader {
    #[serde(default)]
    pub event_id: Option<String>,
    /// The DSN the SDK was given (used for auth when the request carries none).
    #[serde(default)]
    pub dsn: Option<String>,
}

/// One item: its type and its payload, as bytes of the envelope.
#[derive(Debug)]
pub struct Item<'a> {
    pub kind: String,
    pub payload: &'a [u8],
}

#[derive(Deserialize)]
struct ItemHeader {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    length: Option<usize>,
}

/// Why an envelope could not be read: said in the 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Sentry envelope: {0}")]
pub struct EnvelopeError(pub String);

/// Reads `body` as an envelope.
pub fn parse(body: &[u8]) -> Result<(EnvelopeHeader, Vec<Item<'_>>), EnvelopeError> {
    let (first, mut rest) = line(body);
    let header: EnvelopeHeader = serde_json::from_slice(first).map_err(|error| {
        EnvelopeError(format!("its header line is not a JSON object ({error})"))
    })?;
    let mut items = Vec::new();
    while !rest.is_empty() {
        let (item_line, after) = line(rest);
        if item_line.iter().all(u8::is_ascii_whitespace) {
            rest = after;
            continue;
        }
        let item: ItemHeader = serde_json::from_slice(item_line).map_err(|error| {
            EnvelopeError(format!("an item header is not JSON with a type ({error})"))
        })?;
        let (payload, next) = match item.length {
            Some(length) => {
                let payload = after.get(..length).ok_or_else(|| {
                    EnvelopeError(format!(
                        "an item of type {:?} says it has {length} bytes but the envelope ends first",
                        item.kind
                    ))
                })?;
                let next = &after[length..];
                match next.first() {
                    None => (payload, next),
                    Some(b'\n') => (payload, &next[1..]),
                    Some(_) => {
                        return Err(EnvelopeError(format!(
                            "an item of type {:?} is longer than its length",
                            item.kind
                        )))
                    }
                }
            }
            None => line(after),
        };
        items.push(Item {
            kind: item.kind,
            payload,
        });
        rest = next;
    }
    Ok((header, items))
}

/// The bytes up to the next `\n`, and what follows it.
fn line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|b| *b == b'\n') {
        Some(at) => (&bytes[..at], &bytes[at + 1..]),
        None => (bytes, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_with_and_without_length() {
        let body = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"event\",\"length\":7}\n{\"a\":1}\n{\"type\":\"session\"}\n{\"x\":2}\n{\"type\":\"attachment\",\"length\":3}\nab\n";
        let (header, items) = parse(body).unwrap();
        assert_eq!(
            header.event_id.as_deref(),
            Some("9ec79c33ec9942ab8353589fcb2e04dc")
        );
        let kinds: Vec<&str> = items.iter().map(|i| i.kind.as_str()).collect();
        assert_eq!(kinds, ["event", "session", "attachment"]);
        assert_eq!(items[0].payload, b"{\"a\":1}");
        assert_eq!(items[1].payload, b"{\"x\":2}");
        assert_eq!(items[2].payload, b"ab\n");
        assert!(parse(b"{}").unwrap().1.is_empty());
        assert!(parse(b"{}\n{\"type\":\"event\",\"length\":99}\n{}").is_err());
        assert!(parse(b"not json\n").is_err());
    }
}
