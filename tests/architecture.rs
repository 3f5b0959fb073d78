//! The layering of ARCHITECTURE.md, checked: a top-level module of `src/` names only modules of
//! lower layers (`crate::…` paths, test modules at the end of a file excepted). A new edge that
//! points up or sideways fails here with the file and the line that made it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Lowest first; a module may use any module of a lower layer, none of its own or a higher one.
const LAYERS: &[&[&str]] = &[
    &[
        "secret", "alert", "de", "people", "clock", "rfc3339", "text", "repeated",
    ],
    &["sentry", "alertmanager", "sdk", "route"],
    &["job"],
    &["render", "store"],
    &["targets", "metrics"],
    &["config"],
    &["queue", "intake"],
    &["triage"],
    &["http"],
    &["server"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/store/sled/keys.rs` → `store`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

/// Every `crate::name` in `text` before its test module, with its line number.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(tests) => &text[..tests],
        None => text,
    };
    let mut found = Vec::new();
    for (number, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((number + 1, name));
            }
            rest = after;
        }
        // `use crate::{a, b::{C, D}}` names several modules at once: the names at depth one.
        if let Some(group) = line.trim().strip_prefix("use crate::{") {
            let mut depth = 0;
            let mut start_of_name = true;
            for (at, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start_of_name = true,
                    c if start_of_name && depth == 0 && !c.is_whitespace() => {
                        start_of_name = false;
                        let name: String = group[at..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        found.push((number + 1, name));
                    }
                    _ => {}
                }
            }
        }
    }
    found
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        if matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        let Some(own_layer) = layer_of(&module) else {
            violations.push(format!(
                "{}: module {module} is in no layer",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, used) in crate_paths(&text) {
            if used == module {
                continue;
            }
            let place = format!("{}:{line}", file.display());
            match layer_of(&used) {
                Some(layer) if layer < own_layer => {
                    edges.entry((module.clone(), used)).or_insert(place);
                }
                Some(_) => violations.push(format!(
                    "{place}: {module} uses {used}, which is not below it"
                )),
                None => violations.push(format!(
                    "{place}: {module} uses {used}, which is in no layer"
                )),
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering broken:\n{}",
        violations.join("\n")
    );
    // The check sees something: the intake stands on the store, the store on the job records.
    assert!(
        edges.contains_key(&("intake".into(), "store".into())),
        "{edges:?}"
    );
    assert!(
        edges.contains_key(&("store".into(), "job".into())),
        "{edges:?}"
    );
}

#[test]
fn the_path_reader_finds_grouped_and_inline_paths() {
    let text = "use crate::{alert, job::{DeliveryJob, JobId}};\nfn f() { crate::store::open(); }\n#[cfg(test)]\nmod tests {\n use crate::server;\n}\n";
    let names: Vec<String> = crate_paths(text)
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    assert_eq!(names, ["alert", "job", "store"]);
}
