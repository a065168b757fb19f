//! The layering of `src/` (see the crate doc in `src/lib.rs`), checked on
//! every test run: each top-level folder may import only the folders below
//! it, so imports flow one way and `mail/` stays pure.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What each layer may import from the crate, besides itself.
const ALLOWED: &[(&str, &[&str])] = &[
    ("mail", &[]),
    ("store", &["mail"]),
    ("config", &["mail", "store"]),
    ("desk", &["mail", "store", "config"]),
    ("engine", &["desk", "mail", "store", "config"]),
    ("daemon", &["engine", "desk", "mail", "store", "config"]),
    (
        "cli",
        &["daemon", "engine", "desk", "mail", "store", "config"],
    ),
];

/// Crates `mail/` must not reach for: it is bytes ↔ values, nothing else.
const MAIL_FORBIDDEN_CRATES: &[&str] = &["sled", "tokio", "toml", "tracing", "async_imap"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code before its test module: tests may reach across layers.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The top-level modules a piece of code names as `crate::X`.
fn crate_imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let is_path = i == 0 || !rest[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        if is_path && !name.is_empty() {
            out.insert(name);
        }
        rest = after;
    }
    out
}

#[test]
fn every_layer_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (layer, allowed) in ALLOWED {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "src/{layer} is missing");
        for f in files {
            for name in crate_imports(&code_of(&f)) {
                if name != *layer && !allowed.contains(&name.as_str()) {
                    wrong.push(format!("{} imports crate::{name}", f.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn mail_is_pure() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/mail"),
        &mut files,
    );
    let mut wrong = Vec::new();
    for f in files {
        let code = code_of(&f);
        for krate in MAIL_FORBIDDEN_CRATES {
            if code.contains(&format!("{krate}::")) {
                wrong.push(format!("{} uses {krate}", f.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "mail/ must stay pure:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_top_level_module_is_a_layer() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    let layers: BTreeSet<&str> = ALLOWED.iter().map(|(l, _)| *l).collect();
    assert_eq!(declared, layers);
}
