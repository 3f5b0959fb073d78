//! A read-only JSON tree that borrows its strings from the body it was parsed from.
//!
//! Every callback's payload is read once on intake and again whenever a stored alert is sent, and
//! herald looks at a few dozen of its fields. `serde_json::Value` would copy every key and string
//! of the payload into its own allocation and every object into a B-tree: that was an eighth of
//! the CPU a callback costs. Here a string without escapes is a slice of the body, and an object
//! is a list of its members in order, searched linearly (Sentry's objects are small).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// A JSON value whose strings borrow from the text it was parsed from where they can.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Members in the order they were written; a repeated key keeps every occurrence.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Parses `text`; serde_json's checks and its nesting limit apply, but for one: a lone UTF-16
    /// surrogate escape (`"\ud800"`, which Python's `json.dumps` writes for a broken string) is
    /// read as U+FFFD rather than failing the whole payload.
    ///
    /// A text that is UTF-8 as a whole (checking it costs tens of nanoseconds) is parsed as a
    /// `str`: serde_json then need not check every string in it again, which made a quarter of
    /// the parse. Any other is parsed as bytes, for serde_json to say where it goes wrong.
    pub fn parse(text: &'a [u8]) -> Result<Json<'a>, serde_json::Error> {
        let parsed = match std::str::from_utf8(text) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(text),
        };
        match parsed {
            Err(error) if is_surrogate_error(&error) => {
                let repaired = without_lone_surrogates(text);
                serde_json::from_slice::<Json<'_>>(&repaired).map(Json::into_owned)
            }
            parsed => parsed,
        }
    }

    /// The same value, owning all its strings.
    fn into_owned(self) -> Json<'static> {
        let owned = |text: Cow<'_, str>| Cow::Owned(text.into_owned());
        match self {
            Json::Null => Json::Null,
            Json::Bool(b) => Json::Bool(b),
            Json::Number(n) => Json::Number(n),
            Json::String(s) => Json::String(owned(s)),
            Json::Array(items) => Json::Array(items.into_iter().map(Json::into_owned).collect()),
            Json::Object(members) => Json::Object(
                members
                    .into_iter()
                    .map(|(key, value)| (owned(key), value.into_owned()))
                    .collect(),
            ),
        }
    }

    /// The member `key` of an object; as with serde_json, the last one when a key is repeated.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => members
                .iter()
                .rev()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Json<'de>, E> {
        // JSON text cannot spell NaN or an infinity; serde_json's tree keeps such a value as null.
        Ok(Number::from_f64(value).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<JsonKey<'de>>()? {
            if members.is_empty() {
                if key.0 == NUMBER_TOKEN {
                    // serde_json hands a number over as this one-member map: its text.
                    let text: String = map.next_value()?;
                    return text
                        .parse::<Number>()
                        .map(Json::Number)
                        .map_err(serde::de::Error::custom);
                }
                // Room for a Sentry object's first several members in one allocation, where
                // growing from one would take three.
                members.reserve(map.size_hint().unwrap_or(8));
            }
            members.push((key.0, map.next_value::<Json<'de>>()?));
        }
        Ok(Json::Object(members))
    }
}

fn is_surrogate_error(error: &serde_json::Error) -> bool {
    let said = error.to_string();
    said.contains("surrogate") || said.contains("unexpected end of hex escape")
}

/// `text` with every `\u` escape of an unpaired UTF-16 surrogate written as `\uFFFD`; every other
/// byte, and every other escape, as it was.
fn without_lone_surrogates(text: &[u8]) -> Vec<u8> {
    let unit_at = |at: usize| -> Option<u16> {
        let digits = text.get(at..at + 4)?;
        u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let escape_at = |at: usize| text.get(at) == Some(&b'\\') && text.get(at + 1) == Some(&b'u');
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        if text[at] != b'\\' {
            out.push(text[at]);
            at += 1;
            continue;
        }
        match (escape_at(at), unit_at(at + 2)) {
            (true, Some(0xD800..=0xDBFF)) => {
                let low = if escape_at(at + 6) {
                    unit_at(at + 8)
                } else {
                    None
                };
                if low.is_some_and(|low| (0xDC00..=0xDFFF).contains(&low)) {
                    out.extend_from_slice(&text[at..at + 12]);
                    at += 12;
                } else {
                    out.extend_from_slice(b"\\uFFFD");
                    at += 6;
                }
            }
            (true, Some(0xDC00..=0xDFFF)) => {
                out.extend_from_slice(b"\\uFFFD");
                at += 6;
            }
            // Any other escape, `\\` included, is copied whole.
            _ => {
                out.extend_from_slice(&text[at..(at + 2).min(text.len())]);
                at += 2;
            }
        }
    }
    out
}

/// How serde_json (with `arbitrary_precision`) hands a number to a visitor: a map of one member
/// under this key, the number's text as its value.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// An object's key, borrowed from the text unless it holds an escape.
struct JsonKey<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for JsonKey<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(JsonKeyVisitor)
    }
}

struct JsonKeyVisitor;

impl<'de> Visitor<'de> for JsonKeyVisitor {
    type Value = JsonKey<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<JsonKey<'de>, E> {
        Ok(JsonKey(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<JsonKey<'de>, E> {
        Ok(JsonKey(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<JsonKey<'de>, E> {
        Ok(JsonKey(Cow::Owned(value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text that is not UTF-8 is still refused, and the reason says where (it is parsed as
    /// bytes then, not as a `str`).
    #[test]
    fn a_text_that_is_not_utf8_is_refused_with_where() {
        let error = Json::parse(b"{\"title\": \"caf\xe9\"}").unwrap_err();
        assert!(error.to_string().contains("line 1 column"), "{error}");
        let error = Json::parse(b"{\"ok\": \"yes\", \"n\": 1,}").unwrap_err();
        assert!(error.to_string().contains("line 1 column"), "{error}");
        assert_eq!(
            Json::parse("{\"title\": \"caf\u{e9}\"}".as_bytes())
                .unwrap()
                .get("title")
                .and_then(Json::as_str),
            Some("caf\u{e9}")
        );
    }

    #[test]
    fn strings_without_escapes_are_borrowed_and_escaped_ones_decoded() {
        let text = br#"{"plain":"abc","escaped":"a\nb","key\u0021":1}"#;
        let json = Json::parse(text).unwrap();
        assert!(matches!(
            json.get("plain"),
            Some(Json::String(Cow::Borrowed("abc")))
        ));
        assert_eq!(json.get("escaped").and_then(Json::as_str), Some("a\nb"));
        assert_eq!(json.get("key!"), Some(&Json::Number(1.into())));
    }

    #[test]
    fn reads_as_serde_json_does() {
        let text =
            br#"{"a":[1,-2,3.5,true,null,{"b":"c"}],"dup":1,"dup":2,"big":18446744073709551616}"#;
        let json = Json::parse(text).unwrap();
        let value: serde_json::Value = serde_json::from_slice(text).unwrap();
        assert_eq!(json.get("dup"), Some(&Json::Number(2.into())));
        assert_eq!(value["dup"], 2);
        let items = json.get("a").and_then(Json::as_array).unwrap();
        assert_eq!(items.len(), 6);
        assert_eq!(items[3].as_bool(), Some(true));
        assert_eq!(items[4], Json::Null);
        assert_eq!(items[5].get("b").and_then(Json::as_str), Some("c"));
        let Some(Json::Number(big)) = json.get("big") else {
            panic!("not a number")
        };
        assert_eq!(big.to_string(), value["big"].to_string());
    }

    #[test]
    fn numbers_beyond_u64_and_f64_and_lone_surrogates_are_read() {
        let text = br#"{"id":123456789012345678901234567890,"huge":1e400,"s":"a\ud800b\udc00c\\ud800","pair":"\ud83d\ude00"}"#;
        let json = Json::parse(text).unwrap();
        let Some(Json::Number(id)) = json.get("id") else {
            panic!("not a number")
        };
        assert_eq!(id.to_string(), "123456789012345678901234567890");
        let Some(Json::Number(huge)) = json.get("huge") else {
            panic!("not a number")
        };
        assert!(huge.to_string().contains("400"), "{huge}");
        assert_eq!(
            json.get("s").and_then(Json::as_str),
            Some("a\u{FFFD}b\u{FFFD}c\\ud800")
        );
        assert_eq!(json.get("pair").and_then(Json::as_str), Some("😀"));
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        assert!(Json::parse(b"{\"a\":}").is_err());
        assert!(Json::parse(b"[1,2").is_err());
        assert!(Json::parse(b"\"\xff\"").is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(Json::parse(deep.as_bytes()).is_err());
    }

    /// Not a test: `bench/micro.sh` runs it. How long the parse of a compact `issue.created`
    /// payload takes: herald's tree, serde_json's own tree, and a scan that builds nothing (the
    /// floor).
    #[test]
    #[ignore]
    fn bench_parse_a_sentry_payload() {
        use std::hint::black_box;
        let fixture = include_bytes!("../../tests/fixtures/sentry/issue-created.json");
        let value: serde_json::Value = serde_json::from_slice(fixture).unwrap();
        let body = serde_json::to_vec(&value).unwrap();
        let rounds = 200_000;
        let time = |parse: &dyn Fn(&[u8])| {
            let started = std::time::Instant::now();
            for _ in 0..rounds {
                parse(black_box(&body));
            }
            started.elapsed().as_nanos() / rounds
        };
        let ours = time(&|body| drop(black_box(Json::parse(body).unwrap())));
        let value = time(&|body| {
            drop(black_box(
                serde_json::from_slice::<serde_json::Value>(body).unwrap(),
            ))
        });
        let scan = time(&|body| {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).unwrap();
        });
        println!(
            "a {}-byte Sentry payload: {ours} ns herald's tree, {value} ns serde_json::Value, \
             {scan} ns scanned only",
            body.len()
        );
    }
}
