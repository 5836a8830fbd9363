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

/// How a yes/no question shows its answers (dialoguer's notation; the capital is the
/// default), for prompts and the runbooks that quote them.
pub fn yes_no_hint(default: bool) -> &'static str {
    if default {
        "[Y/n]"
    } else {
        "[y/N]"
    }
}

/// How a typed confirmation asks for its word, for prompts and the runbooks that quote
/// them.
pub fn typed_hint(word: &str) -> String {
    format!("type {word} to go on")
}

/// Asks `question` (redacted); `--yes` answers it without asking.
pub fn confirm(question: &str, yes: bool, default: bool) -> Answer {
    if yes {
        return Answer::AssumedYes;
    }
    if let Some(reason) = cannot_ask_reason() {
        return Answer::CannotAsk(reason);
    }
    let prompt = crate::redact::redact(question);
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

/// Asks for `word` to be typed (a destructive action). `given` is what `--confirm`
/// passed, checked the same way; without it and without a terminal nothing is asked.
pub fn typed(word: &str, question: &str, given: Option<&str>) -> Answer {
    if let Some(given) = given {
        return if given == word {
            Answer::AssumedYes
        } else {
            Answer::No
        };
    }
    if let Some(reason) = cannot_ask_reason() {
        return Answer::CannotAsk(reason);
    }
    let prompt = format!("{} — {}", crate::redact::redact(question), typed_hint(word));
    match dialoguer::Input::<String>::new()
        .with_prompt(prompt)
        .allow_empty(true)
        .interact_text()
    {
        Ok(answer) if answer.trim() == word => Answer::Yes,
        Ok(_) => Answer::No,
        Err(e) => Answer::CannotAsk(e.to_string()),
    }
}

/// Lets a person pick one of `items` (redacted); `None` when nobody can be asked or
/// they cancelled.
pub fn select(question: &str, items: &[String]) -> Option<usize> {
    if cannot_ask_reason().is_some() || items.is_empty() {
        return None;
    }
    let items: Vec<String> = items.iter().map(|i| crate::redact::redact(i)).collect();
    dialoguer::Select::new()
        .with_prompt(crate::redact::redact(question))
        .items(&items)
        .default(0)
        .interact_opt()
        .ok()
        .flatten()
}
