//! SIGINT and SIGTERM. Outside an [`Scope`] a signal does what it always did (the
//! process ends with the signal's default action). Inside one, the first signal is
//! recorded and announced to whoever waits for it: a deploy cancels its running
//! statement and waits for the rollback, a backup or restore stops its `pg_dump` /
//! `pg_restore` (the signal is forwarded to the registered children, which cancel their
//! own server queries) and removes what it wrote; then the command reports and exits
//! 128 + the signal (130, 143). A second signal ends the process at once.
//!
//! Signals are received by `signal-hook`'s iterator on a thread of their own, so the
//! handling is ordinary code (no async-signal-safety limits) and works the same for the
//! blocking backup code and the async deploy.

use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The first signal received inside a scope (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// How many scopes are open.
static SCOPES: AtomicUsize = AtomicUsize::new(0);
/// Child processes to pass the signal on to.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// How many [`Soft`] guards are open: the first signal then only asks to stop starting
/// work (a fleet run lets each running target finish its current migration).
static SOFT: AtomicUsize = AtomicUsize::new(0);
/// Set by the signal that escalates a soft stop into the ordinary clean stop.
static HARD: AtomicBool = AtomicBool::new(false);
/// What a person should know if the process ends without its clean stop.
static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn notify() -> &'static tokio::sync::Notify {
    static NOTIFY: OnceLock<tokio::sync::Notify> = OnceLock::new();
    NOTIFY.get_or_init(tokio::sync::Notify::new)
}

/// Starts listening for SIGINT and SIGTERM (once per process, when the first [`Scope`]
/// opens). Until then a signal has its default action, which is all the listener would
/// do outside a scope: commands that never open one (`migrate status`, `--version`)
/// spawn no thread for it.
pub fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
            // Without the listener the default actions stay in place: nothing is lost.
            return;
        };
        let _ = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    on_signal(signal);
                }
            });
    });
}

fn on_signal(signal: i32) {
    if SCOPES.load(Ordering::SeqCst) == 0 {
        // Nothing running knows how to stop cleanly: end the way it always did.
        let _ = signal_hook::low_level::emulate_default_handler(signal);
        std::process::exit(128 + signal);
    }
    let soft = SOFT.load(Ordering::SeqCst) > 0;
    if soft && RECEIVED.load(Ordering::SeqCst) == 0 {
        RECEIVED.store(signal, Ordering::SeqCst);
        eprintln!(
            "{}: starting nothing new; running targets finish their current migration (press Ctrl-C again to cancel those too)",
            name(signal)
        );
        return;
    }
    if soft && !HARD.swap(true, Ordering::SeqCst) {
        eprintln!(
            "{}: cancelling what runs, then reporting (press Ctrl-C again to exit at once)",
            name(signal)
        );
        send(&children(), "-INT");
        notify().notify_waiters();
        return;
    }
    if RECEIVED
        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        // The second signal: the person does not want to wait for the clean stop.
        send(&children(), "-KILL");
        eprintln!("{}: stopping at once", name(signal));
        for note in NOTES.lock().map(|n| n.clone()).unwrap_or_default() {
            eprintln!("warning: {note}");
        }
        std::process::exit(128 + signal);
    }
    eprintln!(
        "{}: stopping (cancelling what runs, then reporting; press Ctrl-C again to exit at once)",
        name(signal)
    );
    send(
        &children(),
        if signal == SIGTERM { "-TERM" } else { "-INT" },
    );
    notify().notify_waiters();
}

fn children() -> Vec<u32> {
    CHILDREN.lock().map(|c| c.clone()).unwrap_or_default()
}

/// `kill` rather than a libc binding: dbflow calls no libc function directly (as in
/// the task runner's timeout).
fn send(pids: &[u32], how: &str) {
    if pids.is_empty() {
        return;
    }
    let _ = std::process::Command::new("kill")
        .arg(how)
        .args(pids.iter().map(u32::to_string))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// `SIGINT`, `SIGTERM`.
pub fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// The signal received inside a scope, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// Resolves once a signal was received inside a scope (at once if it already was).
pub async fn wait() -> i32 {
    loop {
        let notified = notify().notified();
        if let Some(signal) = received() {
            // Under a soft stop, running work is not cancelled until a second signal.
            if SOFT.load(Ordering::SeqCst) == 0 || HARD.load(Ordering::SeqCst) {
                return signal;
            }
        }
        notified.await;
    }
}

/// While alive, the first SIGINT/SIGTERM is handled by the code that opened it instead
/// of ending the process.
#[must_use = "the scope ends when dropped"]
pub struct Scope(());

/// Opens a scope (starting the listener first, so the scope's first signal is its own).
pub fn scope() -> Scope {
    install();
    SCOPES.fetch_add(1, Ordering::SeqCst);
    Scope(())
}

impl Drop for Scope {
    fn drop(&mut self) {
        SCOPES.fetch_sub(1, Ordering::SeqCst);
    }
}

/// While alive (with a [`Scope`]), the first signal is a soft stop: [`received`] reports
/// it, so nothing new starts and a deploy stops between migrations, but [`wait`] does
/// not fire, so no running statement is cancelled and no child is signalled. A second
/// signal makes it the ordinary clean stop; a third exits at once.
#[must_use = "the soft mode ends when dropped"]
pub struct Soft(());

/// Opens the soft mode.
pub fn soft() -> Soft {
    SOFT.fetch_add(1, Ordering::SeqCst);
    Soft(())
}

impl Drop for Soft {
    fn drop(&mut self) {
        SOFT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A warning printed if a second signal ends the process before the clean stop.
#[must_use = "the note is forgotten when dropped"]
pub struct Note(String);

/// Registers `text` for as long as the returned value lives.
pub fn note(text: String) -> Note {
    if let Ok(mut notes) = NOTES.lock() {
        notes.push(text.clone());
    }
    Note(text)
}

impl Drop for Note {
    fn drop(&mut self) {
        if let Ok(mut notes) = NOTES.lock() {
            if let Some(at) = notes.iter().position(|n| *n == self.0) {
                notes.remove(at);
            }
        }
    }
}

/// Child processes that receive the signal too while this is alive (a `pg_dump`
/// started by `kill -INT <dbflow>` would not get it from the terminal).
#[must_use = "the children are forgotten when dropped"]
pub struct Children(Vec<u32>);

/// Registers `pids`; if a signal already arrived, they get it at once.
pub fn children_of(pids: Vec<u32>) -> Children {
    if let Ok(mut all) = CHILDREN.lock() {
        all.extend(&pids);
    }
    let soft = SOFT.load(Ordering::SeqCst) > 0 && !HARD.load(Ordering::SeqCst);
    if let Some(signal) = received().filter(|_| !soft) {
        send(&pids, if signal == SIGTERM { "-TERM" } else { "-INT" });
    }
    Children(pids)
}

impl Drop for Children {
    fn drop(&mut self) {
        if let Ok(mut all) = CHILDREN.lock() {
            all.retain(|pid| !self.0.contains(pid));
        }
    }
}
