//! Progress for long steps: indicatif bars in a terminal (with a percentage when the
//! total is known); elsewhere (CI logs, pipes) plain lines from [`super::progress_log`].

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
        bar.set_message(crate::redact::redact(message));
        bar.enable_steady_tick(Duration::from_millis(120));
        Spinner { bar }
    }

    /// Prints a line above the spinner without garbling it.
    pub fn println(&self, line: &str) {
        self.bar.println(crate::redact::redact(line));
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
        let template = if len.is_some() {
            "{spinner} {msg} [{bar:30}] {percent:>3}% {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})"
        } else {
            "{spinner} {msg} {bytes} ({bytes_per_sec}, {elapsed})"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(crate::redact::redact(message));
        bar.enable_steady_tick(Duration::from_millis(120));
        Spinner { bar }
    }

    /// Sets the position (bytes, items). Past an estimated total, the total follows.
    pub fn set_position(&self, position: u64) {
        if self.bar.length().is_some_and(|len| position > len) {
            self.bar.set_length(position);
        }
        self.bar.set_position(position);
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// A counted progress bar (`[3/10] applying …`); lines printed through it stay above it.
/// Hidden when not a terminal, in which case [`Counter::println`] prints normally.
pub struct Counter {
    bar: ProgressBar,
    visible: bool,
}

impl Counter {
    /// A bar of `len` items.
    pub fn new(len: u64, visible: bool) -> Self {
        let bar = ProgressBar::new(len);
        if !visible {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template("  {bar:30} {pos}/{len} {percent:>3}% {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Counter { bar, visible }
    }

    /// What is being worked on.
    pub fn set_message(&self, message: &str) {
        self.bar.set_message(crate::redact::redact(message));
    }

    /// One item done.
    pub fn inc(&self) {
        self.bar.inc(1);
    }

    /// Prints a line (through the bar when it is drawn).
    pub fn println(&self, ui: &super::Ui, line: &str) {
        if self.visible {
            self.bar.println(crate::redact::redact(line));
        } else {
            ui.out(line);
        }
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// A long transfer (dump, restore): phases as lines, bytes as a bar once they flow
/// (with a length when the total is known); not in a terminal, progress lines instead.
pub struct Transfer<'a> {
    ui: &'a super::Ui,
    phase: String,
    total: Option<u64>,
    bar: Option<Spinner>,
    log: Option<super::progress_log::LogProgress>,
    written: u64,
    read: Option<u64>,
}

impl<'a> Transfer<'a> {
    /// Nothing shown yet.
    pub fn new(ui: &'a super::Ui) -> Self {
        Transfer {
            ui,
            phase: String::new(),
            total: None,
            bar: None,
            log: None,
            written: 0,
            read: None,
        }
    }

    /// A line of information, printed above the bar.
    pub fn line(&mut self, text: &str) {
        match &self.bar {
            Some(bar) if self.ui.tty && !self.ui.json => bar.println(&format!("  {text}")),
            _ => self.ui.out(&format!("  {text}")),
        }
    }

    /// A new phase: the bar of the previous one ends.
    pub fn phase(&mut self, text: &str) {
        self.finish();
        self.written = 0;
        self.read = None;
        self.total = None;
        self.phase = text.to_string();
        self.ui.out(&format!("  → {text}"));
    }

    /// The total the next bytes count towards.
    pub fn total(&mut self, bytes: u64) {
        self.total = Some(bytes);
    }

    /// Bytes written so far.
    pub fn bytes(&mut self, bytes: u64) {
        self.written = bytes;
        self.advance();
    }

    /// Bytes the tool read so far (what the total estimates, when it comes).
    pub fn read(&mut self, bytes: u64) {
        self.read = Some(bytes);
        self.advance();
    }

    fn advance(&mut self) {
        let (bytes, written) = match self.read {
            Some(read) => (read, Some(self.written)),
            None => (self.written, None),
        };
        let visible = self.ui.tty;
        let message = self
            .phase
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        let total = self.total;
        if !visible {
            let log = self.log.get_or_insert_with(|| {
                super::progress_log::LogProgress::new(
                    &message,
                    total,
                    super::progress_log::interval(),
                )
            });
            if let Some(line) = log.update_read(bytes, written, std::time::Instant::now()) {
                self.ui.out(&format!("  {line}"));
            }
            return;
        }
        let bar = self
            .bar
            .get_or_insert_with(|| Spinner::bytes(&message, total, visible));
        bar.set_position(bytes);
    }

    /// Ends the bar, or prints the final progress line.
    pub fn finish(&mut self) {
        self.bar = None;
        if let Some(line) = self
            .log
            .take()
            .and_then(|mut log| log.finish(std::time::Instant::now()))
        {
            self.ui.out(&format!("  {line}"));
        }
    }
}
