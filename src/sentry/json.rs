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
    /// Parses `text`; serde_json's checks and its nesting limit apply.
    pub fn parse(text: &'a [u8]) -> Result<Json<'a>, serde_json::Error> {
        serde_json::from_slice(text)
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
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some((key, value)) = map.next_entry::<JsonKey<'de>, Json<'de>>()? {
            members.push((key.0, value));
        }
        Ok(Json::Object(members))
    }
}

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
    fn refuses_what_serde_json_refuses() {
        assert!(Json::parse(b"{\"a\":}").is_err());
        assert!(Json::parse(b"[1,2").is_err());
        assert!(Json::parse(b"\"\xff\"").is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(Json::parse(deep.as_bytes()).is_err());
    }
}
