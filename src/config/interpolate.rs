//! `${VAR}` and `${VAR:-default}` in every string of the parsed file. Interpolation runs on values,
//! not on the file's text, so a secret holding a quote or a newline cannot change its structure.

use crate::de::join_key;

/// Replaces `${VAR}` and `${VAR:-default}` in every string under `value`; `$${` is a literal `${`.
pub(super) fn interpolate(
    value: &mut toml::Value,
    key: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    match value {
        toml::Value::String(text) => {
            *text =
                interpolate_string(text, lookup).map_err(|message| (key.to_string(), message))?;
        }
        toml::Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{key}[{index}]"), lookup)?;
            }
        }
        toml::Value::Table(table) => {
            for (child, item) in table.iter_mut() {
                interpolate(item, &join_key(key, child), lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

pub fn interpolate_string(
    text: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(literal) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(body) = after.strip_prefix("${") {
            let end = body
                .find('}')
                .ok_or_else(|| format!("has an unclosed ${{ in {text:?}"))?;
            let expression = &body[..end];
            let (name, default) = match expression.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expression, None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("has an invalid variable name {name:?} in ${{…}}"));
            }
            match (lookup(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!(
                        "uses the environment variable {name}, which is not set \
                         (set it, or write ${{{name}:-default}})"
                    ))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}
