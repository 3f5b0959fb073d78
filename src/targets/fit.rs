//! Fitting a message under a downstream's size limit: the text is cut, never what must stay.

/// What a downstream's limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Bytes,
    Chars,
}

impl Measure {
    pub(super) fn of(self, text: &str) -> usize {
        match self {
            Measure::Bytes => text.len(),
            Measure::Chars => text.chars().count(),
        }
    }

    /// The byte index at which `text` holds `units` of this measure (on a character boundary).
    fn index_of(self, text: &str, units: usize) -> usize {
        match self {
            Measure::Bytes => {
                let mut at = units.min(text.len());
                while at > 0 && !text.is_char_boundary(at) {
                    at -= 1;
                }
                at
            }
            Measure::Chars => text
                .char_indices()
                .nth(units)
                .map_or(text.len(), |(at, _)| at),
        }
    }
}

/// Said where a text was cut.
pub const CUT_NOTE: &str = "\n\n… (cut to fit the size limit)";

/// Whether `body`, built by [`fit_body`], had its text cut: the note survives JSON escaping.
pub fn was_cut(body: &str) -> bool {
    body.contains(CUT_NOTE.trim_start())
}

/// Builds a body from `text` with `build`, cutting `text` on a character boundary (and saying so)
/// until the body measures at most `max`. `build` adds what must never be cut: links, mentions,
/// keywords, markers.
pub fn fit_body(
    text: &str,
    max: usize,
    measure: Measure,
    build: impl Fn(&str) -> String,
) -> String {
    let mut body = build(text);
    let mut kept = text.trim();
    while measure.of(&body) > max && !kept.is_empty() {
        let excess = measure.of(&body) - max;
        // A little more than the excess: the note takes room too, and JSON may escape what is kept.
        let keep = measure.of(kept).saturating_sub(excess + 32);
        kept = &kept[..measure.index_of(kept, keep)];
        body = build(&format!("{kept}{CUT_NOTE}"));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_character_boundary_and_keeps_what_build_adds() {
        let text = "é".repeat(1_000);
        let body = fit_body(&text, 500, Measure::Bytes, |t| format!("{t} [link]"));
        assert!(body.len() <= 500, "{}", body.len());
        assert!(body.ends_with(&format!("{CUT_NOTE} [link]")));
        assert!(body.len() > 400, "cut no more than needed: {}", body.len());
        let body = fit_body(&text, 500, Measure::Chars, |t| t.to_string());
        assert!(body.chars().count() <= 500);
        assert!(body.chars().count() > 400);
    }

    #[test]
    fn a_text_that_fits_is_left_alone() {
        assert_eq!(
            fit_body("short", 100, Measure::Bytes, |t| format!("<{t}>")),
            "<short>"
        );
    }
}
