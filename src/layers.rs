//! Keeps the layers honest: `model` is the vocabulary at the bottom; `protocol` (the rules) and `jose`
//! build on it without storage or HTTP; `store` persists the model without knowing the rules or HTTP.
//! A file that names a module its layer must not use fails this test (and so CI).

use std::path::{Path, PathBuf};

/// Each layer (a directory under `src/`) and the crate modules its files must never name.
const RULES: &[(&str, &[&str])] = &[
    ("model", &["protocol", "jose", "store", "http", "ui", "cli", "server", "config", "fetch", "key_management"]),
    ("protocol", &["store", "http", "ui", "cli", "server", "key_management"]),
    ("jose", &["store", "http", "ui", "cli", "server", "key_management"]),
    ("store", &["protocol", "http", "jose", "ui", "cli", "server", "key_management"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source directory is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate modules a source text names: `crate::name` paths and `crate::{name, …}` groups.
fn named_crate_modules(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in source.match_indices("crate::") {
        let rest = &source[at + "crate::".len()..];
        let group = match rest.strip_prefix('{') {
            Some(inner) => &inner[..inner.find('}').unwrap_or(inner.len())],
            None => rest,
        };
        for item in group.split(',') {
            let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                names.push(name);
            }
            if !rest.starts_with('{') {
                break;
            }
        }
    }
    names
}

/// Every (file, forbidden module) pair under `src`.
fn violations(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (layer, forbidden) in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("source file is readable");
            for name in named_crate_modules(&text) {
                if forbidden.contains(&name.as_str()) {
                    found.push(format!("{} names crate::{name}", file.display()));
                }
            }
        }
    }
    found
}

#[test]
fn layers_use_only_what_lies_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(found.is_empty(), "layering rule broken (see src/layers.rs):\n{}", found.join("\n"));
}

#[test]
fn the_check_sees_both_spellings() {
    assert_eq!(named_crate_modules("use crate::store::Client;"), ["store"]);
    assert_eq!(named_crate_modules("use crate::{model::Client, http::x};"), ["model", "http"]);
    assert_eq!(named_crate_modules("let s = crate::http::SharedState;"), ["http"]);
}
