//! Drives the real `dbflow` binary, in the style of casey/just's `tests/test.rs`: a
//! builder writes files into a temp dir, runs the binary there with a clean environment,
//! and hands back the exit code, stdout, stderr and the journals written.
#![allow(dead_code)]

use serde_json::Value;
use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Variables that pick an environment or a database. Removed from the child's
/// environment unless a test sets them, so the host running the tests cannot leak in.
pub const HOST_VARIABLES: &[&str] = &[
    "DBFLOW_ENV",
    "DATABASE_ENV",
    "NODE_ENV",
    "DATABASE_URL",
    "CI",
];

/// One invocation (or several, in the same folder) of the binary.
pub struct Test {
    tempdir: Option<tempfile::TempDir>,
    dir: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
    stdin: Option<String>,
    subdir: Option<PathBuf>,
}

/// What a run produced.
#[derive(Debug)]
pub struct Output {
    /// Exit code (`-1` when killed by a signal).
    pub code: i32,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
    /// The folder the binary ran in.
    pub dir: PathBuf,
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    /// A test in a fresh, empty temp dir.
    pub fn new() -> Self {
        let tempdir = tempfile::Builder::new()
            .prefix("dbflow-test-")
            .tempdir()
            .expect("creating a temp dir");
        let dir = tempdir.path().canonicalize().expect("canonical temp dir");
        Test {
            tempdir: Some(tempdir),
            dir,
            args: Vec::new(),
            env: Vec::new(),
            env_remove: HOST_VARIABLES.iter().map(OsString::from).collect(),
            stdin: None,
            subdir: None,
        }
    }

    /// A test that runs in an existing folder (a fixture); nothing is deleted afterwards.
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        let mut test = Self::new();
        test.tempdir = None;
        test.dir = dir.as_ref().to_path_buf();
        test
    }

    /// The folder the binary runs in.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `contents` (unindented) to `path` under the test folder.
    pub fn file(self, path: &str, contents: &str) -> Self {
        self.write(path, contents);
        self
    }

    /// Like [`Test::file`], without consuming the builder (to edit files between runs).
    pub fn write(&self, path: &str, contents: &str) {
        let full = self.dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("creating parent folders");
        }
        std::fs::write(&full, unindent(contents))
            .unwrap_or_else(|e| panic!("writing {}: {e}", full.display()));
    }

    /// Reads a file under the test folder.
    pub fn read(&self, path: &str) -> String {
        let full = self.dir.join(path);
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
    }

    /// Whether `path` exists under the test folder.
    pub fn exists(&self, path: &str) -> bool {
        self.dir.join(path).exists()
    }

    /// Sets a variable for the child.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env_remove.retain(|k| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// Removes a variable from the child's environment.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env_remove.push(key.into());
        self
    }

    /// The command-line arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Runs the binary in this folder below the test folder (created if missing) instead
    /// of the test folder itself; journals are still looked for in the test folder.
    pub fn current_dir(mut self, subdir: &str) -> Self {
        std::fs::create_dir_all(self.dir.join(subdir)).expect("creating the subfolder");
        self.subdir = Some(subdir.into());
        self
    }

    /// Text fed to the child's stdin (default: none, stdin is `/dev/null`).
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.to_string());
        self
    }

    /// Runs the binary with the arguments given by [`Test::args`].
    pub fn run(&self) -> Output {
        self.run_args(self.args.clone())
    }

    /// Runs the binary with these arguments instead (same folder, same environment).
    pub fn run_with<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.run_args(args.into_iter().map(Into::into).collect())
    }

    /// Starts the binary without waiting for it (stdin closed, output piped), for tests
    /// that interrupt it or its children.
    pub fn spawn_with<I, S>(&self, args: I) -> std::process::Child
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut command = self.command(args.into_iter().map(Into::into).collect());
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.spawn().expect("starting dbflow")
    }

    fn command(&self, args: Vec<OsString>) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dbflow"));
        command.current_dir(&self.dir).args(&args);
        for key in &self.env_remove {
            command.env_remove(key);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    fn run_args(&self, args: Vec<OsString>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dbflow"));
        let cwd = match &self.subdir {
            Some(subdir) => self.dir.join(subdir),
            None => self.dir.clone(),
        };
        command.current_dir(cwd).args(&args);
        for key in &self.env_remove {
            command.env_remove(key);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("starting dbflow");
        if let Some(text) = &self.stdin {
            let mut stdin = child.stdin.take().expect("piped stdin");
            let _ = stdin.write_all(text.as_bytes());
        }
        let output = child.wait_with_output().expect("waiting for dbflow");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            dir: self.dir.clone(),
        }
    }

    /// Every journal under `.dbflow/runs/`, oldest first.
    pub fn journals(&self) -> Vec<Vec<Value>> {
        journals_in(&self.dir)
    }
}

impl Output {
    /// Asserts the exit code, showing both streams when it is wrong.
    #[track_caller]
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "unexpected exit code\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Every journal written in the folder, oldest first.
    pub fn journals(&self) -> Vec<Vec<Value>> {
        journals_in(&self.dir)
    }

    /// The one journal of a test that ran once.
    #[track_caller]
    pub fn journal(&self) -> Vec<Value> {
        let mut journals = self.journals();
        assert_eq!(journals.len(), 1, "expected exactly one journal");
        journals.remove(0)
    }

    /// stdout and stderr together (for "appears nowhere" checks).
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// The journal files under `<dir>/.dbflow/runs/`, sorted by name (run ids sort by time).
pub fn journal_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.join(".dbflow/runs"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
}

/// The journals under `dir`, each parsed line by line (a line that is not JSON fails).
pub fn journals_in(dir: &Path) -> Vec<Vec<Value>> {
    journal_paths(dir)
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
                .lines()
                .map(|line| {
                    serde_json::from_str(line).unwrap_or_else(|e| {
                        panic!("{}: not a JSON line: {e}: {line}", path.display())
                    })
                })
                .collect()
        })
        .collect()
}

/// The events of a journal with this `event` name.
pub fn events<'a>(journal: &'a [Value], event: &str) -> Vec<&'a Value> {
    journal.iter().filter(|e| e["event"] == event).collect()
}

/// Strips the indentation common to every non-blank line, and a leading newline, so
/// inline YAML can be indented along with the test's source.
pub fn unindent(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches([' ', '\t']).len())
        .min()
        .unwrap_or(0);
    let mut out: String = text
        .lines()
        .map(|l| {
            if l.len() >= indent {
                &l[indent..]
            } else {
                l.trim_start()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    if text.ends_with('\n') || !out.is_empty() {
        out.push('\n');
    }
    // A trailing line holding only the closing quote's indentation leaves "\n   " behind.
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[test]
fn unindent_strips_common_indentation() {
    assert_eq!(
        unindent("\n    a:\n      b: 1\n    c: 2\n    "),
        "a:\n  b: 1\nc: 2\n"
    );
    assert_eq!(unindent("x"), "x\n");
    assert_eq!(unindent("\n  a\n\n  b\n"), "a\n\nb\n");
}
