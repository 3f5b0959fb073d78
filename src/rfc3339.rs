//! A time in a stored record, as `#[serde(with = "crate::rfc3339")]`: the same text chrono's
//! serde writes (`2026-12-02T22:35:26.123456Z`), written without `core::fmt`.
//!
//! Every callback stores a job with two times and an alert header with one; chrono formats each
//! through `fmt::Display`, a few dozen small writes, which was 2 % of a callback's CPU. Reading
//! is chrono's own.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut text = [0u8; 30];
    match write(time, &mut text) {
        Some(text) => serializer.serialize_str(text),
        // A year beyond 0–9999, or a leap second: chrono's own text.
        None => time.serialize(serializer),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    DateTime::<Utc>::deserialize(deserializer)
}

/// `time` as chrono writes it (seconds, then 3, 6 or 9 digits of fraction when there is one),
/// in `out`; `None` for what it writes otherwise.
fn write<'a>(time: &DateTime<Utc>, out: &'a mut [u8; 30]) -> Option<&'a str> {
    let year = u32::try_from(time.year())
        .ok()
        .filter(|year| *year <= 9999)?;
    let nanos = time.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    let mut text = Text { out, at: 0 };
    text.digits(year, 4);
    for (separator, value) in [
        (b'-', time.month()),
        (b'-', time.day()),
        (b'T', time.hour()),
        (b':', time.minute()),
        (b':', time.second()),
    ] {
        text.push(separator);
        text.digits(value, 2);
    }
    if nanos != 0 {
        text.push(b'.');
        if nanos.is_multiple_of(1_000_000) {
            text.digits(nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            text.digits(nanos / 1_000, 6);
        } else {
            text.digits(nanos, 9);
        }
    }
    text.push(b'Z');
    let length = text.at;
    std::str::from_utf8(&out[..length]).ok()
}

struct Text<'a> {
    out: &'a mut [u8; 30],
    at: usize,
}

impl Text<'_> {
    fn push(&mut self, byte: u8) {
        self.out[self.at] = byte;
        self.at += 1;
    }

    /// `value`'s last `width` decimal digits, zero-padded.
    fn digits(&mut self, value: u32, width: u32) {
        for place in (0..width).rev() {
            self.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[derive(Serialize, Deserialize)]
    struct Ours(#[serde(with = "super")] DateTime<Utc>);

    fn both(time: DateTime<Utc>) -> (String, String) {
        let ours = serde_json::to_string(&Ours(time)).unwrap();
        let chronos = serde_json::to_string(&time).unwrap();
        let back: Ours = serde_json::from_str(&ours).unwrap();
        assert_eq!(back.0, time);
        (ours, chronos)
    }

    #[test]
    fn writes_what_chrono_writes() {
        for nanos in [0, 5_000_000, 120_000, 123_456_789, 999_999_999, 1_000] {
            let time = Utc.with_ymd_and_hms(2026, 12, 2, 22, 35, 6).unwrap()
                + chrono::Duration::nanoseconds(nanos);
            let (ours, chronos) = both(time);
            assert_eq!(ours, chronos);
        }
        assert_eq!(
            both(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()).0,
            "\"2026-01-02T03:04:05Z\""
        );
        // Outside what is written here: chrono's text.
        let far = Utc.with_ymd_and_hms(12026, 1, 1, 0, 0, 0).unwrap();
        let (ours, chronos) = both(far);
        assert_eq!(ours, chronos);
    }

    proptest! {
        #[test]
        fn any_time_is_written_as_chrono_writes_it(
            seconds in -62_000_000_000i64..260_000_000_000,
            nanos in prop_oneof![Just(0u32), 0u32..1000, (0u32..1000).prop_map(|n| n * 1_000_000), 0u32..1_000_000_000],
        ) {
            let time = DateTime::from_timestamp(seconds, nanos).unwrap();
            let (ours, chronos) = both(time);
            prop_assert_eq!(ours, chronos);
        }
    }
}
