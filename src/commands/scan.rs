//! `dbflow scan [--staged] [PATHS]`: dangerous database operations in changed files.

use crate::app::App;
use crate::error::{Error, ExitCode, Result};
use crate::guard::scan::{self, ScanFinding};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A file to scan: its text, and the lines that changed when only those count.
struct Input {
    path: String,
    text: String,
    changed: Option<BTreeSet<usize>>,
}

pub fn run(app: &App, staged: bool, paths: &[PathBuf]) -> Result<ExitCode> {
    let (inputs, what) = if staged {
        (staged_inputs()?, "staged")
    } else if paths.is_empty() {
        (changed_inputs()?, "changed")
    } else {
        let mut inputs = Vec::new();
        for path in paths {
            if !path.exists() {
                return Err(Error::Usage(format!(
                    "{}: no such file or folder",
                    path.display()
                )));
            }
            // A link given by name (a shell glob expands planted ones too) must stay
            // inside the working folder.
            refuse_outside(path, Path::new("."), &path.display().to_string())?;
            collect(path, path, &mut inputs)?;
        }
        (inputs, "given")
    };
    let mut findings: Vec<ScanFinding> = Vec::new();
    let mut scanned = 0;
    let mut skipped = 0;
    for input in &inputs {
        let Some(kind) = scan::kind_of(&input.path) else {
            skipped += 1;
            continue;
        };
        scanned += 1;
        findings.extend(scan::scan(
            &input.path,
            &input.text,
            kind,
            input.changed.as_ref(),
        ));
    }
    let blocking = findings.iter().filter(|f| f.allowed.is_none()).count();
    if app.ui.json {
        app.ui.json_doc(&json!({
            "scanned": scanned,
            "skipped": skipped,
            "findings": findings,
            "blocking": blocking,
        }));
    } else {
        for f in &findings {
            app.ui.out(&scan::render(f));
        }
        let files = |n: usize| format!("{n} {what} file{}", if n == 1 { "" } else { "s" });
        let skipped_note = match skipped {
            0 => String::new(),
            1 => " (1 other file skipped: not a script, SQL or CI config)".to_string(),
            n => format!(" ({n} other files skipped: not scripts, SQL or CI configs)"),
        };
        let allowed = findings.len() - blocking;
        if blocking > 0 {
            app.ui.out(&format!(
                "✘ scanned {}{skipped_note}: {blocking} dangerous operation{}{}",
                files(scanned),
                if blocking == 1 { "" } else { "s" },
                if allowed > 0 {
                    format!(", {allowed} allowed")
                } else {
                    String::new()
                }
            ));
            if staged {
                app.ui.out("  the commit is blocked: fix it, allow it with a `dbflow:allow <rule> reason: …` comment, or bypass the hook once with `git commit --no-verify`");
            }
        } else {
            app.ui.out(&format!(
                "✔ scanned {}{skipped_note}: nothing dangerous{}",
                files(scanned),
                if allowed > 0 {
                    format!(" ({allowed} allowed)")
                } else {
                    String::new()
                }
            ));
        }
    }
    Ok(if blocking > 0 {
        ExitCode::Failed
    } else {
        ExitCode::Ok
    })
}

fn git(args: &[&str]) -> Result<Vec<u8>> {
    let output = Command::new("git")
        .args(args)
        .output()
        .map_err(|e| Error::io("running git", e))?;
    if !output.status.success() {
        return Err(Error::Usage(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output.stdout)
}

fn toplevel() -> Result<PathBuf> {
    let out = git(&["rev-parse", "--show-toplevel"])?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out).trim()))
}

fn names(out: &[u8]) -> Vec<String> {
    out.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Lines added per file, from a `-U0` diff.
fn added_lines(diff: &[u8]) -> BTreeMap<String, BTreeSet<usize>> {
    let mut out: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in String::from_utf8_lossy(diff).lines() {
        if let Some(path) = line.strip_prefix("+++ ") {
            current = path.strip_prefix("b/").map(str::to_string);
            if let Some(p) = &current {
                out.entry(p.clone()).or_default();
            }
        } else if let (Some(rest), Some(path)) = (line.strip_prefix("@@ "), current.as_ref()) {
            let Some(new) = rest.split_whitespace().find(|w| w.starts_with('+')) else {
                continue;
            };
            let new = &new[1..];
            let (start, count) = match new.split_once(',') {
                Some((s, c)) => (s.parse().unwrap_or(0), c.parse().unwrap_or(0)),
                None => (new.parse().unwrap_or(0), 1),
            };
            out.entry(path.clone())
                .or_default()
                .extend(start..start + count);
        }
    }
    out
}

fn staged_inputs() -> Result<Vec<Input>> {
    let top = toplevel()?;
    let top_s = top.to_string_lossy().to_string();
    let files = names(&git(&[
        "-C",
        &top_s,
        "diff",
        "--cached",
        "--name-only",
        "-z",
        "--diff-filter=ACMR",
    ])?);
    let added = added_lines(&git(&[
        "-C",
        &top_s,
        "diff",
        "--cached",
        "-U0",
        "--no-color",
        "--no-ext-diff",
    ])?);
    let mut inputs = Vec::new();
    for path in files {
        if scan::kind_of(&path).is_none() {
            inputs.push(Input {
                path,
                text: String::new(),
                changed: None,
            });
            continue;
        }
        let bytes = git(&["-C", &top_s, "show", &format!(":{path}")])?;
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        let changed = added.get(&path).cloned();
        inputs.push(Input {
            path,
            text,
            changed,
        });
    }
    Ok(inputs)
}

fn changed_inputs() -> Result<Vec<Input>> {
    let top = toplevel()?;
    let top_s = top.to_string_lossy().to_string();
    if git(&["-C", &top_s, "rev-parse", "--verify", "--quiet", "HEAD"]).is_err() {
        return Err(Error::Usage(
            "no commit yet to compare with: pass PATHS, or --staged".into(),
        ));
    }
    let mut files = names(&git(&[
        "-C",
        &top_s,
        "diff",
        "HEAD",
        "--name-only",
        "-z",
        "--diff-filter=ACMR",
    ])?);
    let untracked = names(&git(&[
        "-C",
        &top_s,
        "ls-files",
        "--others",
        "--exclude-standard",
        "-z",
    ])?);
    files.extend(untracked.iter().cloned());
    let added = added_lines(&git(&[
        "-C",
        &top_s,
        "diff",
        "HEAD",
        "-U0",
        "--no-color",
        "--no-ext-diff",
    ])?);
    let mut inputs = Vec::new();
    for path in files {
        let full = top.join(&path);
        refuse_outside(&full, &top, &path)?;
        let text = if scan::kind_of(&path).is_some() {
            match std::fs::read(&full).map(String::from_utf8) {
                Ok(Ok(text)) => text,
                _ => continue,
            }
        } else {
            String::new()
        };
        let changed = if untracked.contains(&path) {
            None
        } else {
            added.get(&path).cloned()
        };
        inputs.push(Input {
            path,
            text,
            changed,
        });
    }
    Ok(inputs)
}

/// Refuses a symbolic link that leads outside `root`: a pull request could otherwise plant
/// `migration.sql -> /etc/shadow` and read the CI machine's files through the findings.
fn refuse_outside(path: &Path, root: &Path, shown: &str) -> Result<()> {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Ok(());
    }
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    match path.canonicalize() {
        Ok(real) if real.starts_with(&root) => Ok(()),
        Ok(_) => Err(Error::Usage(format!(
            "{shown}: a symbolic link that resolves outside {}; dbflow does not read it (replace the link with the file itself)",
            root.display()
        ))),
        Err(_) => Ok(()),
    }
}

fn collect(path: &Path, root: &Path, inputs: &mut Vec<Input>) -> Result<()> {
    let shown = path.display().to_string();
    let shown = shown.strip_prefix("./").unwrap_or(&shown).to_string();
    if path != root {
        refuse_outside(path, root, &shown)?;
    }
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return Ok(());
        };
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for entry in entries {
            let name = entry
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if entry.is_dir()
                && (name.starts_with('.') && name != ".github" && name != ".circleci"
                    || name == "node_modules"
                    || name == "target")
            {
                continue;
            }
            collect(&entry, root, inputs)?;
        }
        return Ok(());
    }
    let text = if scan::kind_of(&shown).is_some() {
        match std::fs::read(path).map(String::from_utf8) {
            Ok(Ok(text)) => text,
            _ => return Ok(()),
        }
    } else {
        String::new()
    };
    inputs.push(Input {
        path: shown,
        text,
        changed: None,
    });
    Ok(())
}
