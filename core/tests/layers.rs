//! The layering rule of `core/src/lib.rs`, checked on the source text: a module names only its own
//! layer or lower ones. A cheap drift test: it reads every file under `core/src` and fails on the
//! first path that reaches upwards, e.g. `crate::queue` in `job.rs`, or `crate::manager` anywhere
//! but the API itself.

use std::path::{Path, PathBuf};

/// Top-level modules by layer; a new module must be given one here (and in lib.rs's map).
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("config", 0),
    ("hresult", 0),
    ("job", 0),
    ("state", 0),
    ("store", 1),
    ("localfile", 1),
    ("http_options", 1),
    ("network", 1),
    ("metered", 1),
    ("tls", 1),
    ("queue", 2),
    ("policy", 2),
    ("scheduler", 3),
    ("transfer", 3),
    ("settle", 3),
    ("manager", 4),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

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

/// Every top-level module a text names through `crate::`, `super::…::` or `crate::{…}`.
/// (`super::` paths are taken as reaching the crate root, which can only over-report.)
fn named_modules(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = Vec::new();
    for (i, _) in text
        .match_indices("crate::")
        .chain(text.match_indices("super::"))
    {
        let mut rest = &text[i..];
        rest = rest.trim_start_matches("crate::");
        while let Some(r) = rest.strip_prefix("super::") {
            rest = r;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            names.extend(group.split(',').map(|p| ident(p.trim())));
        } else {
            names.push(ident(rest));
        }
    }
    names
}

#[test]
fn no_module_reaches_into_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut violations = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        if rel == Path::new("lib.rs") {
            continue; // The re-exports: the only file above the API.
        }
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let top = top.trim_end_matches(".rs");
        let Some(own) = layer(top) else {
            violations.push(format!(
                "{}: module `{top}` has no layer in LAYERS",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for name in named_modules(&text) {
            let Some(theirs) = layer(&name) else { continue };
            // Same-folder children name their parent's items via `super::`, and layer 3's
            // engines may use each other (scheduler -> transfer, settle).
            if name != top && theirs > own {
                violations.push(format!(
                    "{} (layer {own}) names `{name}` (layer {theirs})",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
}

/// The README's layout table names every file under `core/src`: a file's own row
/// (`core/src/x.rs`), or the row of a folder above it naming it by its path from that folder
/// (`plan.rs` in the `core/src/scheduler/` row, `sqlite/oplog.rs` in the `core/src/store/` one);
/// a `mod.rs` is its folder's row. So a new module cannot land without its line in the map.
#[test]
fn the_readme_layout_table_names_every_core_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    // Rows of the layout table: their first cell and the whole line.
    let rows: Vec<(&str, &str)> = readme
        .lines()
        .filter(|l| l.starts_with("| `core/src/"))
        .map(|l| (l.split(" | ").next().unwrap_or(l), l))
        .collect();
    assert!(rows.len() > 10, "found only {} layout rows", rows.len());
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut missing = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap().to_str().unwrap();
        let own = format!("`core/src/{rel}`");
        if rows.iter().any(|(first, _)| first.contains(&own)) {
            continue;
        }
        // Each folder above the file, nearest first, with the file's path from it.
        let parts: Vec<&str> = rel.split('/').collect();
        let named = (1..parts.len()).rev().any(|n| {
            let folder = format!("`core/src/{}/`", parts[..n].join("/"));
            let inner = parts[n..].join("/");
            rows.iter().any(|(first, line)| {
                first.contains(&folder)
                    && (inner == "mod.rs" || line.contains(&format!("`{inner}`")))
            })
        });
        if !named {
            missing.push(rel.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "files the README's layout table does not name:\n{}",
        missing.join("\n")
    );
}
