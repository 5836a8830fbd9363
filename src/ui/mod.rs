//! The only place that talks to a person: step headers, messages, prompts, progress.
//! Everything printed passes through [`redact`].

/// Who ran it (a leaf, so the journal and the backup catalog can record it).
pub use crate::actor;
pub mod color;
pub mod json;
pub mod migrate;
pub mod progress;
pub mod progress_log;
pub mod prompt;
/// Redaction is a leaf ([`crate::redact`]); re-exported so `ui::redact` paths keep working.
pub use crate::redact;

use std::io::{IsTerminal, Write};

/// `text` and a newline as the stream's colour choice wants it (styles kept or stripped),
/// in one buffer: written with one `write_all`, a 5,000-line status is one write, not
/// one (or more, around every style) per line.
fn for_stream(text: &str, choice: anstream::ColorChoice) -> Vec<u8> {
    let mut buf = anstream::AutoStream::new(Vec::with_capacity(text.len() + 1), choice);
    let _ = writeln!(buf, "{text}");
    buf.into_inner()
}

/// Output settings for this process.
#[derive(Debug, Clone)]
pub struct Ui {
    /// `--json`: stdout carries one JSON document; human messages go to stderr.
    pub json: bool,
    /// stderr is a terminal (progress bars, colours).
    pub tty: bool,
    /// `-v`: list everything (every migration of a long deploy or status, every
    /// statement of a protected preview, every lint finding) instead of a summary.
    pub verbose: bool,
    /// Prints nothing (a fleet's worker: its target's journal has the details, the
    /// fleet prints one line per target).
    pub quiet: bool,
}

impl Ui {
    /// Settings for this process.
    pub fn new(json: bool) -> Self {
        Ui {
            json,
            tty: std::io::stderr().is_terminal(),
            verbose: false,
            quiet: false,
        }
    }

    /// Prints a line of normal output (stdout, or stderr in JSON mode), redacted.
    pub fn out(&self, text: &str) {
        if self.quiet {
            return;
        }
        let plain = redact::redact(text);
        let text = styled(&plain);
        if self.json {
            json::record(&plain);
            let choice = anstream::stderr().current_choice();
            let _ = std::io::stderr()
                .lock()
                .write_all(&for_stream(&text, choice));
        } else {
            let choice = anstream::stdout().current_choice();
            let _ = std::io::stdout()
                .lock()
                .write_all(&for_stream(&text, choice));
        }
    }

    /// Prints a unified diff like [`Ui::out`], additions and removals coloured.
    pub fn diff(&self, text: &str) {
        if self.quiet {
            return;
        }
        let plain = redact::redact(text);
        let text = color::diff(&plain);
        if self.json {
            json::record(&plain);
            let _ = writeln!(anstream::stderr().lock(), "{text}");
        } else {
            let _ = writeln!(anstream::stdout().lock(), "{text}");
        }
    }

    /// Prints the JSON document of a `--json` command on stdout, redacted.
    /// Only the first document of a run is printed (see [`json`]).
    pub fn json_doc(&self, value: &serde_json::Value) {
        json::print(&redact::redact_json(value));
    }

    /// A warning on stderr.
    pub fn warn(&self, text: &str) {
        if self.quiet {
            return;
        }
        eprint_styled(&format!("warning: {text}"));
    }

    /// An error on stderr.
    pub fn error(&self, text: &str) {
        if self.quiet {
            return;
        }
        eprint_styled(&format!("error: {text}"));
    }

    /// A step begins.
    pub fn step_start(&self, depth: usize, label: &str, name: &str, kind: &str) {
        self.out(&format!("{}▶ [{label}] {name} ({kind})", indent(depth)));
    }

    /// A step succeeded (or decided to do nothing).
    pub fn step_done(&self, depth: usize, name: &str, ms: u64, skipped: Option<&str>) {
        match skipped {
            Some(reason) => self.out(&format!("{}○ {name}: skipped ({reason})", indent(depth))),
            None => self.out(&format!("{}✔ {name} ({})", indent(depth), human_ms(ms))),
        }
    }

    /// A step's `when` did not hold.
    pub fn step_skipped(&self, depth: usize, label: &str, name: &str, reason: &str) {
        self.out(&format!(
            "{}○ [{label}] {name}: skipped ({reason})",
            indent(depth)
        ));
    }

    /// A step failed.
    pub fn step_failed(&self, depth: usize, name: &str, message: &str) {
        if self.quiet {
            return;
        }
        eprint_styled(&format!("{}✘ {name}: {message}", indent(depth)));
    }
}

/// Streams a child's output lines to the user, redacted and indented.
pub struct ChildOutput<'a> {
    /// Where to print.
    pub ui: &'a Ui,
}

impl crate::runner::exec::Sink for ChildOutput<'_> {
    fn line(&self, line: &str) {
        self.ui.out(&format!("  │ {line}"));
    }
}

/// Prints `text` on stderr, redacted, each line styled (colour only where wanted).
pub fn eprint_styled(text: &str) {
    let plain = redact::redact(text);
    json::record(&plain);
    let text = styled(&plain);
    let _ = writeln!(anstream::stderr().lock(), "{text}");
}

fn styled(text: &str) -> String {
    text.split('\n')
        .map(color::line)
        .collect::<Vec<_>>()
        .join("\n")
}

fn indent(depth: usize) -> String {
    "  ".repeat(depth)
}

/// `850ms`, `3.2s`, `2m05s`.
pub fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}
