//! Confirmations (dialoguer). Without a terminal, or with `CI=true`, nothing is asked:
//! the caller must have been given `--yes`.

use std::io::IsTerminal;

/// The answer to a confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The person said yes.
    Yes,
    /// `--yes` answered for them.
    AssumedYes,
    /// The person said no.
    No,
    /// Nobody can be asked (no terminal or CI) and `--yes` was not given.
    CannotAsk(String),
}

/// Why nobody can be asked, if nobody can.
pub fn cannot_ask_reason() -> Option<String> {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        return Some("CI=true".into());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Some("no terminal".into());
    }
    None
}

/// Asks `question` (redacted); `--yes` answers it without asking.
pub fn confirm(question: &str, yes: bool, default: bool) -> Answer {
    if yes {
        return Answer::AssumedYes;
    }
    if let Some(reason) = cannot_ask_reason() {
        return Answer::CannotAsk(reason);
    }
    let prompt = super::redact::redact(question);
    match dialoguer::Confirm::new()
        .with_prompt(prompt)
        .default(default)
        .interact()
    {
        Ok(true) => Answer::Yes,
        Ok(false) => Answer::No,
        Err(e) => Answer::CannotAsk(e.to_string()),
    }
}
