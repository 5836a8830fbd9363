//! The crate's layering (written down once, in `src/lib.rs`'s docs) holds: no module
//! imports from a layer above its own. Reads every `crate::…` path in `src/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The layer list and allowed edges, parsed from the `text` block in `src/lib.rs`.
struct Dag {
    /// Node name → rank (0 = top).
    rank: HashMap<String, usize>,
    /// (from node, target path prefix such as `guard::Permit`).
    allowed: Vec<(String, String)>,
}

fn dag() -> Dag {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let mut rank = HashMap::new();
    let mut allowed = Vec::new();
    let mut section = "";
    for line in lib.lines() {
        let Some(line) = line.strip_prefix("//!") else {
            continue;
        };
        let trimmed = line.trim();
        if trimmed.starts_with("layers (top first):") {
            section = "layers";
            continue;
        }
        if trimmed.starts_with("allowed upward edges") {
            section = "allowed";
            continue;
        }
        if trimmed.starts_with("```") {
            section = "";
            continue;
        }
        // Entries start two spaces in; continuation lines are indented further.
        if !line.starts_with("   ") || line.starts_with("    ") {
            continue;
        }
        match section {
            "layers" => {
                let names = trimmed.split("  ").next().unwrap();
                let r = rank.len();
                for name in names.split(',') {
                    rank.insert(name.trim().to_string(), r);
                }
            }
            "allowed" => {
                let edge = trimmed.split("  ").next().unwrap();
                let (from, to) = edge.split_once("->").expect("`from -> to`");
                allowed.push((from.trim().to_string(), to.trim().to_string()));
            }
            _ => {}
        }
    }
    // Peers on one line share a rank; ranks must stay distinct per line.
    assert!(
        rank.len() > 10,
        "the layer list in src/lib.rs was not found"
    );
    Dag { rank, allowed }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

/// The code of a file without `//` comments (doc links are not imports). Block comments
/// are not used in this crate; treating `/*` as one would hide the lines after a glob
/// in a string.
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        // `//` inside a string (a URL) ends nothing we look for on that line.
        let line = line.find("//").map_or(line, |i| &line[..i]);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Every path used after `crate::`, with `use crate::{a::b, c}` groups expanded.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 1;
            let mut end = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let mut depth = 0;
            let mut part = String::new();
            for c in group[..end].chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(std::mem::take(&mut part).trim().to_string());
                        continue;
                    }
                    _ => {}
                }
                part.push(c);
            }
            out.push(part.trim().to_string());
        } else {
            let path: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            // `crate::engine::journal::{a, b}`: the module is what it names.
            out.push(path.trim_end_matches("::").to_string());
        }
        rest = after;
    }
    out.retain(|p| !p.is_empty() && p != "self");
    out
}

/// The layer node a file belongs to: its top-level module (`src/db/x.rs` → `db`).
fn node_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Upward imports in `src/`, as `file: path (from → to)` lines.
fn violations(dag: &Dag, src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let from = node_of(src, &file);
        let Some(&from_rank) = dag.rank.get(&from) else {
            found.push(format!(
                "{}: module `{from}` is not in the layer list in src/lib.rs",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for path in crate_paths(&code(&text)) {
            let to = path.split("::").next().unwrap().to_string();
            if to == from {
                continue;
            }
            let Some(&to_rank) = dag.rank.get(&to) else {
                // `crate::Error` and friends: re-exports at the crate root.
                continue;
            };
            let allowed = dag.allowed.iter().any(|(f, prefix)| {
                *f == from
                    && (path == *prefix
                        || path.starts_with(&format!("{prefix}::"))
                        || path.starts_with(&format!("{prefix}}}")))
            });
            if to_rank <= from_rank && !allowed {
                found.push(format!(
                    "{}: crate::{path} ({from} → {to}, {})",
                    file.strip_prefix(root()).unwrap_or(&file).display(),
                    if to_rank == from_rank {
                        "a peer"
                    } else {
                        "a layer above"
                    }
                ));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn no_module_imports_from_a_layer_above_its_own() {
    let found = violations(&dag(), &root().join("src"));
    assert!(
        found.is_empty(),
        "upward imports (see the layer list in src/lib.rs):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("steps")).unwrap();
    std::fs::create_dir_all(src.join("db")).unwrap();
    std::fs::write(
        src.join("steps/deploy.rs"),
        "use crate::{db::migrate, ui::{self, Ui}};\n// crate::commands in a comment is fine\n",
    )
    .unwrap();
    std::fs::write(
        src.join("db/x.rs"),
        "//! Reads .dbflow/runs/*.jsonl\nconst GLOB: &str = \"runs/*.jsonl\";\nuse crate::{config, steps::deploy};\nfn f() { crate::commands::migrate::render_status(); }\n",
    )
    .unwrap();
    let found = violations(&dag(), src);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].contains("crate::commands::migrate::render_status (db → commands"));
    assert!(found[1].contains("crate::steps::deploy (db → steps"));
}

#[test]
fn group_imports_are_expanded() {
    assert_eq!(
        crate_paths("use crate::{db::{a, b}, ui::Ui};\nlet x = crate::lint::run();"),
        vec!["db::{a, b}", "ui::Ui", "lint::run"]
    );
}
