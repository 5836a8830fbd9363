//! `--json`: exactly one JSON document on stdout per run, success or failure.
//!
//! A command prints its own document through [`crate::ui::Ui::json_doc`]; whatever it
//! does not print, the command edge completes: a failure becomes
//! `{"error": {"code", "message", "location"?}}` (same exit code as the text mode), a
//! success without a document of its own becomes `{"exit_code": 0, "output": [...]}`
//! carrying the lines the human mode would have shown (they went to stderr). The shapes
//! are documented in docs/json.md and pinned by snapshot tests.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static PRINTED: AtomicBool = AtomicBool::new(false);
static OUTPUT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Prints `value` (already redacted) as this run's document, unless one was printed:
/// a second document would break every consumer that reads stdout as one value.
pub fn print(value: &Value) -> bool {
    if PRINTED.swap(true, Ordering::SeqCst) {
        return false;
    }
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
    true
}

/// Whether this run printed its document.
pub fn printed() -> bool {
    PRINTED.load(Ordering::SeqCst)
}

/// Keeps a human line (redacted, unstyled) for the fallback document.
pub fn record(line: &str) {
    if let Ok(mut lines) = OUTPUT.lock() {
        lines.extend(line.lines().map(str::to_string));
    }
}

fn output() -> Vec<String> {
    OUTPUT.lock().map(|l| l.clone()).unwrap_or_default()
}

/// A failure's document.
pub fn error(code: i32, message: &str, location: Option<Value>, details: Option<Value>) -> Value {
    crate::error::error_document(code, message, location, details)
}

/// Completes the run's stdout for `--json` when the command printed nothing: a success
/// document, or (for a non-zero exit without an error value, such as `docs --check`
/// finding stale files) an error document whose message is the last line reported.
pub fn finish(code: i32) {
    if printed() {
        return;
    }
    let output = output();
    let doc = if code == 0 {
        json!({ "exit_code": 0, "output": output })
    } else {
        let message = output
            .iter()
            .rev()
            .find(|l| l.trim_start().starts_with("error:"))
            .or_else(|| output.last())
            .map(|l| l.trim().trim_start_matches("error:").trim().to_string())
            .unwrap_or_else(|| format!("exit code {code}"));
        let mut doc = error(code, &message, None, None);
        doc["output"] = json!(output);
        doc
    };
    print(&doc);
}
