//! Progress for long steps (indicatif), hidden when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// A spinner with a message and elapsed time; finished (and cleared) on drop.
pub struct Spinner {
    bar: ProgressBar,
}

impl Spinner {
    /// Starts a spinner; invisible unless `visible`.
    pub fn start(message: &str, visible: bool) -> Self {
        let bar = ProgressBar::new_spinner();
        if !visible {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(super::redact::redact(message));
        bar.enable_steady_tick(Duration::from_millis(120));
        Spinner { bar }
    }

    /// Prints a line above the spinner without garbling it.
    pub fn println(&self, line: &str) {
        self.bar.println(super::redact::redact(line));
    }

    /// A byte-count progress bar (`len` total bytes, or a spinner when unknown).
    pub fn bytes(message: &str, len: Option<u64>, visible: bool) -> Self {
        let bar = match len {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        if !visible {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {bytes} ({bytes_per_sec}, {elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(super::redact::redact(message));
        bar.enable_steady_tick(Duration::from_millis(120));
        Spinner { bar }
    }

    /// Sets the position (bytes, items).
    pub fn set_position(&self, position: u64) {
        self.bar.set_position(position);
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
