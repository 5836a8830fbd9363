//! The operations page of the site (`operations.html`): restore drill history (PASS/FAIL,
//! RPO and RTO over time), each environment's backup catalog (count and size over time)
//! and the recent runs (workflow, environment, outcome, duration, who), built from what
//! dbflow recorded. It changes with history, so `dbflow docs --check` leaves it out.
//!
//! [`history`] reads the records, [`chart`] draws them as inline SVG, [`page`] lays out
//! the HTML.

pub mod chart;
pub mod fleet;
pub mod history;
pub mod page;

use crate::config::Project;

pub use history::History;
pub use page::OPS_CSS;

/// The operations page of `project`: a whole HTML document (inline CSS, no script),
/// from the records under its root. Unreadable records are named on the page, not fatal.
pub fn render_operations(project: &Project) -> String {
    page::render(&project.name, &History::read(project))
}
