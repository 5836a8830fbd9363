//! The error type commands return, and the exit code each kind maps to.

use crate::config::Diagnostic;

/// Process exit codes, on purpose (see DESIGN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ExitCode {
    /// 0: everything succeeded.
    Ok,
    /// 1: a step or check failed.
    Failed,
    /// 2: bad input (usage, config, template, script).
    BadInput,
    /// 3: blocked by a guard.
    Blocked,
    /// 4: `status` found pending, failed or drifted migrations.
    NotClean,
    /// A task's own exit status, passed through when a task is run directly.
    Child(i32),
    /// 128 + the signal (130 for SIGINT, 143 for SIGTERM) that stopped the command.
    Interrupted(i32),
}

impl ExitCode {
    /// The number the process exits with.
    pub fn code(self) -> i32 {
        match self {
            ExitCode::Ok => 0,
            ExitCode::Failed => 1,
            ExitCode::BadInput => 2,
            ExitCode::Blocked => 3,
            ExitCode::NotClean => 4,
            ExitCode::Child(code) => code,
            ExitCode::Interrupted(signal) => 128 + signal,
        }
    }
}

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Workflowfile (or an include, or a step's parameters) is invalid.
    #[error("{}", render_diagnostics(.0))]
    Config(Vec<Diagnostic>),
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// Something ran and failed; `code` says how.
    #[error("{message}")]
    Failed {
        /// What failed, for people.
        message: String,
        /// Exit code to use.
        code: ExitCode,
    },
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// What dbflow was doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// The exit code this error maps to.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Config(_) | Error::Usage(_) => ExitCode::BadInput,
            Error::Failed { code, .. } => *code,
            Error::Io { .. } => ExitCode::Failed,
        }
    }

    /// The `--json` document of this error (docs/json.md), redacted.
    pub fn to_json(&self) -> serde_json::Value {
        let code = self.exit_code().code();
        let doc = match self {
            Error::Config(diagnostics) => {
                let first = diagnostics.first();
                let message = match (first, diagnostics.len()) {
                    (Some(d), 1) => d.message.clone(),
                    (Some(d), n) => format!("{} (and {} more errors)", d.message, n - 1),
                    (None, _) => "invalid configuration".to_string(),
                };
                let details: Vec<serde_json::Value> =
                    diagnostics.iter().map(diagnostic_json).collect();
                error_document(
                    code,
                    &message,
                    first.and_then(|d| d.loc.as_ref()).map(location_json),
                    Some(serde_json::Value::Array(details)),
                )
            }
            other => error_document(code, &other.to_string(), None, None),
        };
        crate::redact::redact_json(&doc)
    }

    /// A failure with exit code 1.
    pub fn failed(message: impl Into<String>) -> Self {
        Error::Failed {
            message: message.into(),
            code: ExitCode::Failed,
        }
    }

    /// Refused by a guard (exit code 3).
    pub fn blocked(message: impl Into<String>) -> Self {
        Error::Failed {
            message: message.into(),
            code: ExitCode::Blocked,
        }
    }

    /// Stopped by `signal` (SIGINT, SIGTERM) after a clean stop; `message` says what
    /// state things were left in.
    pub fn interrupted(signal: i32, message: impl Into<String>) -> Self {
        Error::Failed {
            message: message.into(),
            code: ExitCode::Interrupted(signal),
        }
    }

    /// An I/O failure with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<Diagnostic> for Error {
    fn from(d: Diagnostic) -> Self {
        Error::Config(vec![d])
    }
}

fn location_json(loc: &crate::config::Loc) -> serde_json::Value {
    serde_json::json!({ "file": loc.file.display().to_string(), "line": loc.line, "column": loc.col })
}

fn diagnostic_json(d: &Diagnostic) -> serde_json::Value {
    let mut v = serde_json::json!({ "message": d.message });
    if let Some(loc) = &d.loc {
        v["location"] = location_json(loc);
    }
    if let Some(help) = &d.help {
        v["help"] = serde_json::json!(help);
    }
    if !d.notes.is_empty() {
        v["notes"] = serde_json::json!(d.notes);
    }
    v
}

fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&d.render());
    }
    if diagnostics.len() > 1 {
        out.push_str(&format!("{} errors\n", diagnostics.len()));
    }
    out.trim_end().to_string()
}

/// Result alias for dbflow operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `{"error": {"code", "message", "location"?, "diagnostics"?}}`: the one JSON shape of a
/// failure (docs/json.md).
pub fn error_document(
    code: i32,
    message: &str,
    location: Option<serde_json::Value>,
    details: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut error = serde_json::json!({ "code": code, "message": message });
    if let Some(location) = location {
        error["location"] = location;
    }
    if let Some(details) = details {
        error["diagnostics"] = details;
    }
    serde_json::json!({ "error": error })
}
