//! Whether a `dbflow.exec{…}` argument list runs a shell (or an interpreter's inline
//! code), which hides the real command from the guard: refused unless the step or the
//! Workflowfile allows shells.

/// Shells, by program name (`/bin/sh`, `busybox sh` and `env bash` included: every word
/// is looked at, not only the first).
const SHELLS: &[&str] = &[
    "sh",
    "bash",
    "zsh",
    "dash",
    "ksh",
    "mksh",
    "oksh",
    "ash",
    "yash",
    "posh",
    "fish",
    "csh",
    "tcsh",
    "rc",
    "es",
    "nu",
    "elvish",
    "xonsh",
    "pwsh",
    "powershell",
    "cmd",
    "eval",
    "source",
];

/// Programs that run a command line through a shell of their own (`ssh host CMD` on
/// the remote side, `watch CMD` through `sh -c`).
const SHELL_RUNNERS: &[&str] = &["ssh", "watch", "script", "su", "busybox", "toybox"];

/// Interpreters and the options that give them code to run inline (`python -c`).
const INLINE: &[(&str, &[&str])] = &[
    ("python", &["-c"]),
    ("node", &["-e", "--eval", "-p", "--print"]),
    ("nodejs", &["-e", "--eval", "-p", "--print"]),
    ("deno", &["eval"]),
    ("bun", &["-e", "--eval", "-p", "--print"]),
    ("perl", &["-e", "-E"]),
    ("ruby", &["-e"]),
    ("php", &["-r"]),
    ("lua", &["-e"]),
    ("luajit", &["-e"]),
    ("tclsh", &[]),
    ("osascript", &["-e"]),
    ("awk", &[]),
    ("gawk", &[]),
    ("mawk", &[]),
];

/// `sh`, `python3.12`, `lua5.4` → `sh`, `python`, `lua`.
fn program(word: &str) -> String {
    let base = word.rsplit(['/', '\\']).next().unwrap_or(word);
    let base = base.strip_suffix(".exe").unwrap_or(base);
    base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')
        .to_ascii_lowercase()
}

/// Why `args` runs a shell, or `None` when it does not.
pub fn runs_shell(args: &[String]) -> Option<String> {
    for (i, word) in args.iter().enumerate() {
        let name = program(word);
        if name.is_empty() {
            continue;
        }
        if SHELLS.contains(&name.as_str()) {
            return Some(format!("`{word}` is a shell"));
        }
        if SHELL_RUNNERS.contains(&name.as_str()) && i == 0 {
            return Some(format!("`{word}` runs its command through a shell"));
        }
        if let Some((_, flags)) = INLINE.iter().find(|(p, _)| *p == name) {
            let rest = &args[i + 1..];
            if flags.is_empty() {
                return Some(format!("`{word}` runs a program given as text"));
            }
            if let Some(flag) = rest.iter().find(|a| {
                flags
                    .iter()
                    .any(|f| *a == f || (f.starts_with("--") && a.starts_with(&format!("{f}="))))
            }) {
                return Some(format!("`{word} {flag}` runs code given as text"));
            }
        }
        // A quoted command line inside an argument (`env -S "sh -c …"`).
        if word.contains(char::is_whitespace) {
            if let Ok(inner) = shell_words::split(word) {
                if inner.len() > 1 {
                    if let Some(why) = runs_shell(&inner) {
                        return Some(why);
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        shell_words::split(line).unwrap()
    }

    #[test]
    fn every_shell_form_is_seen() {
        for line in [
            "sh -c 'touch x'",
            "bash -lc id",
            "zsh",
            "dash -c id",
            "/bin/sh -c id",
            "/usr/bin/env sh -c id",
            "env -i PATH=/bin bash -c id",
            "env -S 'sh -c id'",
            "busybox sh -c id",
            "busybox ash",
            "sudo -u postgres bash",
            "docker compose exec -T app sh -c id",
            "xargs sh",
            "python3 -c 'import os'",
            "python3.12 -c pass",
            "node -e 1",
            "node --eval=1",
            "perl -e 1",
            "ssh db.internal dropdb shop",
            "awk 'BEGIN { system(\"id\") }'",
        ] {
            assert!(runs_shell(&argv(line)).is_some(), "{line}");
        }
        for line in [
            "aws rds describe-db-snapshots --output json",
            "docker compose exec -T postgres pg_dump --format=custom shop",
            "psql -c 'SELECT 1'",
            "pg_restore -c -d shop_copy x.dump",
            "node scripts/notify.js",
            "python3 tools/report.py --since 1d",
        ] {
            assert_eq!(runs_shell(&argv(line)), None, "{line}");
        }
    }
}
