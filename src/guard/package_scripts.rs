//! Where the command-line classifier looks commands up: the project's package.json
//! (`scripts`, `prisma.seed`), prisma.config.ts (`migrations.seed`), the project's own
//! shell scripts, and how each package manager names the script it runs.

/// Where package-manager scripts and the seed command come from: the project's
/// package.json (and prisma.config.ts), or a plain lookup function (tests).
pub trait ScriptLookup {
    /// The body of the package.json script `name`.
    fn script(&self, name: &str) -> Option<String>;
    /// Every script name (for `run-s db:*` globs).
    fn script_names(&self) -> Vec<String> {
        Vec::new()
    }
    /// The commands Prisma runs to seed (`prisma.seed` in package.json,
    /// `migrations.seed` in prisma.config.ts).
    fn seed_commands(&self) -> Vec<String> {
        Vec::new()
    }
    /// The text of a shell script the command runs (`./scripts/reset.sh`,
    /// `bash scripts/reset`), when `word` names one inside the project.
    fn shell_script(&self, _word: &str) -> Option<String> {
        None
    }
    /// The text of a file inside the project a command reads as SQL (`psql -f x.sql`).
    fn sql_file(&self, _word: &str) -> Option<String> {
        None
    }
}

impl<F: Fn(&str) -> Option<String>> ScriptLookup for F {
    fn script(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// The script `npm run NAME`, `npm test`, `pnpm [run] NAME`, `yarn [run] NAME`,
/// `yarn workspace W NAME`, `bun [run] NAME` runs.
pub(super) fn script_name(program: &str, args: &[String]) -> Option<String> {
    let mut words: Vec<&String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let w = &args[i];
        if w == "--" {
            break;
        }
        if w.starts_with('-') {
            i += if super::command_line::VALUED_OPTIONS.contains(&w.as_str()) {
                2
            } else {
                1
            };
            continue;
        }
        words.push(w);
        i += 1;
    }
    match (program, words.as_slice()) {
        (_, [run, name, ..]) if run.as_str() == "run" || run.as_str() == "run-script" => {
            Some(name.to_string())
        }
        ("yarn", [ws, _, name, ..]) if ws.as_str() == "workspace" => Some(name.to_string()),
        ("npm", [name, ..]) => matches!(
            name.as_str(),
            "test" | "t" | "tst" | "start" | "stop" | "restart"
        )
        .then(|| match name.as_str() {
            "t" | "tst" => "test".to_string(),
            other => other.to_string(),
        }),
        ("pnpm" | "yarn" | "bun", [name, ..]) if !is_builtin(program, name) => {
            Some(name.to_string())
        }
        _ => None,
    }
}

fn is_builtin(program: &str, word: &str) -> bool {
    let common = [
        "add",
        "install",
        "i",
        "remove",
        "rm",
        "update",
        "up",
        "upgrade",
        "exec",
        "dlx",
        "create",
        "init",
        "why",
        "outdated",
        "list",
        "ls",
        "link",
        "unlink",
        "publish",
        "pack",
        "workspace",
        "workspaces",
        "config",
        "cache",
        "audit",
        "info",
        "pm",
    ];
    common.contains(&word)
        || (program == "yarn" && word == "global")
        || (program != "yarn" && program != "pnpm" && word == "x")
        || (program == "bun" && matches!(word, "test" | "build"))
}

/// The project's package.json scripts and Prisma's seed command, for [`detect`].
#[derive(Debug, Clone, Default)]
pub struct PackageScripts {
    scripts: std::collections::BTreeMap<String, String>,
    seeds: Vec<String>,
    /// The project root (canonical), where shell scripts are read.
    root: Option<std::path::PathBuf>,
}

impl PackageScripts {
    /// Scripts and seed commands given directly (no project folder: shell scripts are
    /// not read).
    pub fn new(scripts: std::collections::BTreeMap<String, String>, seeds: Vec<String>) -> Self {
        PackageScripts {
            scripts,
            seeds,
            root: None,
        }
    }
}

/// Project files larger than this are not read (and not judged).
const MAX_SHELL_SCRIPT: u64 = 1024 * 1024;

impl ScriptLookup for PackageScripts {
    fn script(&self, name: &str) -> Option<String> {
        self.scripts.get(name).cloned()
    }

    fn script_names(&self) -> Vec<String> {
        self.scripts.keys().cloned().collect()
    }

    fn seed_commands(&self) -> Vec<String> {
        self.seeds.clone()
    }

    fn sql_file(&self, word: &str) -> Option<String> {
        self.project_file(word).map(|(_, text)| text)
    }

    fn shell_script(&self, word: &str) -> Option<String> {
        let (path, text) = self.project_file(word)?;
        let first = text.lines().next().unwrap_or_default();
        let shebang_shell = first.starts_with("#!")
            && ["sh", "bash", "zsh", "dash", "ksh"]
                .iter()
                .any(|sh| first.split(['/', ' ']).any(|w| w == *sh));
        let extension = path
            .extension()
            .is_some_and(|e| e == "sh" || e == "bash" || e == "zsh");
        (shebang_shell || extension).then_some(text)
    }
}

impl PackageScripts {
    /// A text file inside the project (symlinks resolved first), not too large to read.
    fn project_file(&self, word: &str) -> Option<(std::path::PathBuf, String)> {
        let root = self.root.as_ref()?;
        if word.starts_with('-') || word.contains("://") || word.len() > 4096 {
            return None;
        }
        let path = root.join(word).canonicalize().ok()?;
        if !path.starts_with(root) || !path.is_file() {
            return None;
        }
        if std::fs::metadata(&path).ok()?.len() > MAX_SHELL_SCRIPT {
            return None;
        }
        let text = std::fs::read_to_string(&path).ok()?;
        Some((path, text))
    }
}

/// Prisma's config files that may name `migrations.seed`.
const PRISMA_CONFIGS: &[&str] = &[
    "prisma.config.ts",
    "prisma.config.mts",
    "prisma.config.cts",
    "prisma.config.js",
    "prisma.config.mjs",
    "prisma.config.cjs",
    ".config/prisma.ts",
];

/// Reads `package.json` (`scripts`, `prisma.seed`) and prisma.config.ts
/// (`migrations.seed`, read as text: a `seed: "…"` string) from `dir`.
pub fn package_scripts(dir: &std::path::Path) -> PackageScripts {
    let package: Option<serde_json::Value> = std::fs::read_to_string(dir.join("package.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let scripts = package
        .as_ref()
        .and_then(|v| v.get("scripts").cloned())
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    let mut seeds: Vec<String> = package
        .as_ref()
        .and_then(|v| v.pointer("/prisma/seed"))
        .and_then(|s| s.as_str())
        .map(|s| vec![s.to_string()])
        .unwrap_or_default();
    let re = regex::Regex::new(r#"\bseed\s*:\s*(?:"([^"]*)"|'([^']*)'|`([^`]*)`)"#)
        .expect("static regex");
    for name in PRISMA_CONFIGS {
        if let Ok(text) = std::fs::read_to_string(dir.join(name)) {
            for caps in re.captures_iter(&text) {
                if let Some(m) = caps.get(1).or(caps.get(2)).or(caps.get(3)) {
                    seeds.push(m.as_str().to_string());
                }
            }
        }
    }
    seeds.retain(|s| !s.trim().is_empty());
    PackageScripts {
        scripts,
        seeds,
        root: dir.canonicalize().ok(),
    }
}
