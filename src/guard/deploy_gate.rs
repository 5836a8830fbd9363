//! The one gate before applying migrations, shared by `dbflow migrate deploy` and the
//! `deploy` step (they had drifted apart: only the step journaled a refused
//! confirmation). After the rails for `deploy` allowed it: the pending migrations are
//! linted (errors block on shared and protected environments), the promotion rules are
//! checked, and on a protected environment a person confirms after seeing the
//! statements with the locks they take (every one with `-v`).

use super::migrations::{self, Review};
use super::promotion;
use crate::config::{Project, ResolvedEnv, Vars};
use crate::db::migrate::{self, State};
use crate::db::store::Store;
use crate::db::target::Target;
use crate::db::Conn;
use crate::ui::Ui;
use serde_json::{json, Value};
use std::borrow::Cow;

/// Why the gate stopped a deploy.
#[derive(Debug)]
pub enum GateError {
    /// The guard refused (exit 3).
    Blocked(String),
    /// The gate could not decide (the history could not be read): exit 1.
    Failed(String),
}

/// What the gate needs besides the connection and the migrations.
pub struct DeployGate<'a> {
    /// The project (lint and promotion rules).
    pub project: &'a Project,
    /// The environment deployed to.
    pub env: &'a ResolvedEnv,
    /// Variables (promotion checks read other environments' URLs).
    pub vars: &'a Vars,
    /// Where findings and the preview are shown.
    pub ui: &'a Ui,
    /// Apply up to and including this migration.
    pub to: Option<&'a str>,
    /// Only show what would happen: no promotion check, no refusal, no confirmation.
    pub dry_run: bool,
    /// `--yes` was given.
    pub yes: bool,
    /// The rails asked for a person's confirmation (a protected environment).
    pub needs_confirmation: bool,
    /// The backup taken earlier in this run, for the preview.
    pub backup: Option<String>,
    /// Prefix of every printed line (steps indent their output under the step's line).
    pub indent: &'static str,
    /// The review an earlier `guard` step of this run made: reused (not linted again)
    /// when it covers exactly the migrations the history now says are pending.
    pub reviewed: Option<&'a Review>,
}

impl DeployGate<'_> {
    /// Runs the gate; every journal event (promotion findings, the confirmation, a
    /// refused confirmation) goes to `record`.
    pub async fn check(
        &self,
        conn: &mut Conn,
        store: &Store,
        target: &Target,
        record: &mut dyn FnMut(&'static str, Value),
    ) -> Result<(), GateError> {
        let status = migrate::history_status(conn, store, &target.table)
            .await
            .map_err(|e| GateError::Failed(e.to_string()))?;
        // The guard step's review is borrowed, not copied: at thousands of pending
        // migrations a copy would hold every report twice during the deploy.
        let mut review: Cow<'_, Review> = match self.reviewed {
            Some(earlier) if covers(earlier, &status) => Cow::Borrowed(earlier),
            _ => Cow::Owned({
                // The live catalog only when something is pending (one query).
                let catalog = migrations::catalog_for_pending(conn, &status).await;
                migrations::review(
                    self.project,
                    self.env.protection,
                    target.url.is_postgres(),
                    store,
                    &status,
                    catalog,
                )
            }),
        };
        // The migrator refuses modified applied migrations itself, with the fix.
        if !review.modified.is_empty() {
            review.to_mut().modified.clear();
        }
        if let Some(to) = self.to {
            if let Some(end) = review.pending.iter().position(|(name, _)| name == to) {
                if end + 1 < review.pending.len() {
                    review.to_mut().pending.truncate(end + 1);
                }
            }
        }
        if !self.dry_run {
            let pending = promotion::pending(&status, self.to);
            promotion::check_deploy(self.project, self.env, self.vars, store, &pending)
                .await
                .report(self.ui, &mut *record)
                .map_err(GateError::Blocked)?;
        }
        if review.pending.is_empty() {
            return Ok(());
        }
        let summary = review.summary();
        if summary.errors + summary.warnings + summary.allowed > 0 || !review.not_linted.is_empty()
        {
            self.print(&migrations::render_review(
                &review,
                &self.env.name,
                self.ui.verbose,
            ));
        }
        if self.dry_run {
            // `--dry-run -v` on a protected environment: the whole preview, to read
            // before deploying (a plain dry run stays short).
            if self.needs_confirmation && self.ui.verbose {
                self.print(&migrations::render_preview(
                    &review,
                    &self.env.name,
                    self.backup.as_deref(),
                    true,
                    migrations::PreviewMode::DryRun,
                ));
            }
            return Ok(());
        }
        if let Some(reason) = review.blocked_reason() {
            return Err(GateError::Blocked(format!(
                "blocked by the guard: deploy to `{}` ({}): {reason}",
                self.env.name,
                self.env.protection.as_str()
            )));
        }
        if !self.needs_confirmation {
            return Ok(());
        }
        self.print(&migrations::render_preview(
            &review,
            &self.env.name,
            self.backup.as_deref(),
            self.ui.verbose,
            migrations::PreviewMode::Confirm,
        ));
        let question = question(&review.pending.len().to_string(), &self.env.name);
        let answer = migrations::confirm(&question, self.yes);
        record(
            "protected_confirmation",
            json!({
                "operation": "deploy",
                "pending": review.pending.iter().map(|(n, _)| n).collect::<Vec<_>>(),
                "backup": self.backup,
                "confirmed_by": answer.as_ref().ok(),
                "refused": answer.as_ref().err(),
            }),
        );
        answer.map(|_| ()).map_err(GateError::Blocked)
    }

    fn print(&self, text: &str) {
        if self.indent.is_empty() {
            self.ui.out(text.trim_end());
        } else {
            for line in text.lines() {
                self.ui.out(&format!("{}{line}", self.indent));
            }
        }
    }
}

/// Whether `review` was made for this history: the same pending (or rolled back) and
/// modified migrations, in order (the folder is the run's, read once).
fn covers(review: &Review, status: &migrate::Status) -> bool {
    let pending = status
        .entries
        .iter()
        .filter(|e| matches!(e.state, State::Pending | State::RolledBack))
        .map(|e| e.name.as_str());
    let modified = status.with_state(State::Modified).map(|e| e.name.as_str());
    review.lint_skipped.is_none()
        && review.pending.iter().map(|(n, _)| n.as_str()).eq(pending)
        && review.modified.iter().map(|(n, _)| n.as_str()).eq(modified)
}

/// The question a protected deploy asks (`pending`: the count, or `N` in runbooks).
pub fn question(pending: &str, env: &str) -> String {
    format!("Apply {pending} migration(s) to protected `{env}`?")
}
