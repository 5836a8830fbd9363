//! A deploy stopped by SIGINT/SIGTERM: the running statement cancelled through the
//! server, and the report of where every migration of the deploy was left.

use super::conn::Canceller;
use crate::interrupt;
use std::future::Future;

/// Runs `work`; if a signal arrives meanwhile, cancels the session's running statement
/// (through `canceller`) and goes on waiting for `work`, which then ends with the
/// server's "canceling statement due to user request" after its rollback.
pub async fn cancelling<T>(work: impl Future<Output = T>, canceller: Option<&Canceller>) -> T {
    let Some(canceller) = canceller else {
        return work.await;
    };
    let mut work = std::pin::pin!(work);
    tokio::select! {
        biased;
        out = &mut work => return out,
        _ = interrupt::wait() => {}
    }
    if let Err(e) = canceller.cancel().await {
        eprintln!(
            "warning: could not cancel the running statement (backend pid {}): {e}; waiting for it to end",
            canceller.pid()
        );
    }
    work.await
}

/// The migration that was running when the signal came.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// Its name.
    pub name: String,
    /// True when part of it stayed applied (it ran outside a transaction).
    pub partial: bool,
    /// What the server said, or where it stopped.
    pub detail: String,
}

/// Where an interrupted deploy left its migrations.
#[derive(Debug, Clone)]
pub struct Interruption {
    /// The signal (SIGINT, SIGTERM).
    pub signal: i32,
    /// Applied (and durable) before it stopped, in order.
    pub applied: Vec<String>,
    /// The one that was running, if one was.
    pub stopped: Option<Stopped>,
    /// Not started.
    pub pending: Vec<String>,
}

/// More than this many migrations in one state are shown as the first few and a count.
const SHOWN_PER_STATE: usize = 10;

impl std::fmt::Display for Interruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let signal = interrupt::name(self.signal);
        match &self.stopped {
            Some(s) if s.partial => write!(
                f,
                "interrupted by {signal} while `{}` ran OUTSIDE A TRANSACTION: it is HALF APPLIED",
                s.name
            )?,
            Some(s) => write!(
                f,
                "interrupted by {signal}: the running statement of `{}` was cancelled and PostgreSQL rolled it back",
                s.name
            )?,
            None if self.applied.is_empty() && self.pending.is_empty() => {
                return write!(
                    f,
                    "interrupted by {signal} before any migration was applied; run `dbflow migrate deploy` again to apply them"
                )
            }
            None => write!(f, "interrupted by {signal} between migrations")?,
        }
        write!(f, "\nstate of the migrations this deploy was to apply:")?;
        list(f, &self.applied, "✔", "applied")?;
        if let Some(s) = &self.stopped {
            if s.partial {
                write!(
                    f,
                    "\n  ✘ {}  HALF APPLIED, marked failed ({})\n    fix the database by hand, then `dbflow migrate resolve --rolled-back {}` (to retry it) or `dbflow migrate resolve --applied {}` (if you finished it by hand)",
                    s.name,
                    first_line(&s.detail),
                    s.name,
                    s.name
                )?;
            } else {
                write!(
                    f,
                    "\n  ↺ {}  rolled back: nothing of it was applied, it is still pending",
                    s.name
                )?;
            }
        }
        list(f, &self.pending, "…", "pending")?;
        write!(
            f,
            "\n{} applied by this deploy, {} rolled back, {} half applied, {} pending",
            self.applied.len(),
            self.stopped.iter().filter(|s| !s.partial).count(),
            self.stopped.iter().filter(|s| s.partial).count(),
            self.pending.len()
        )?;
        if self.stopped.as_ref().is_some_and(|s| s.partial) {
            write!(f, "\n`dbflow migrate deploy` refuses to go on until the half-applied migration is resolved")
        } else {
            write!(f, "\nrun `dbflow migrate deploy` again to apply the rest")
        }
    }
}

fn list(
    f: &mut std::fmt::Formatter<'_>,
    names: &[String],
    mark: &str,
    state: &str,
) -> std::fmt::Result {
    for name in names.iter().take(SHOWN_PER_STATE) {
        write!(f, "\n  {mark} {name}  {state}")?;
    }
    if names.len() > SHOWN_PER_STATE {
        write!(
            f,
            "\n  {mark} … and {} more {state} (last: {})",
            names.len() - SHOWN_PER_STATE,
            names.last().map(String::as_str).unwrap_or_default()
        )?;
    }
    Ok(())
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_show_the_first_few_and_a_count() {
        let names = |from: usize, n: usize| (from..from + n).map(|i| format!("m{i:02}")).collect();
        let text = Interruption {
            signal: signal_hook::consts::SIGTERM,
            applied: names(0, 12),
            stopped: Some(Stopped {
                name: "m12".into(),
                partial: false,
                detail: "canceling statement due to user request".into(),
            }),
            pending: names(13, 2),
        }
        .to_string();
        assert!(
            text.starts_with(
                "interrupted by SIGTERM: the running statement of `m12` was cancelled"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "\n  ✔ m09  applied\n  ✔ … and 2 more applied (last: m11)\n  ↺ m12  rolled back"
            ),
            "{text}"
        );
        assert!(text.contains("\n  … m13  pending\n  … m14  pending\n12 applied by this deploy, 1 rolled back, 0 half applied, 2 pending"), "{text}");
        assert!(
            text.ends_with("run `dbflow migrate deploy` again to apply the rest"),
            "{text}"
        );
    }

    #[test]
    fn before_any_migration_it_says_so() {
        let text = Interruption {
            signal: signal_hook::consts::SIGINT,
            applied: Vec::new(),
            stopped: None,
            pending: Vec::new(),
        }
        .to_string();
        assert_eq!(text, "interrupted by SIGINT before any migration was applied; run `dbflow migrate deploy` again to apply them");
    }
}
