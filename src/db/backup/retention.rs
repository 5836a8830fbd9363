//! Grandfather-father-son retention, restic's way: keep the newest verified backup of
//! each of the last `daily` days that have one, of the last `weekly` ISO weeks, and of
//! the last `monthly` months (UTC), each rule counted on its own. Counting days that
//! have a backup (not calendar days) means a paused backup schedule never empties the
//! catalog. On top of the rules, always kept: the newest verified backup, every backup
//! a run in progress refers to, the rollback point (pre-deploy backup) of each of the
//! last `keep_deploys` deploys and of every deploy within the daily window, pinned
//! backups, and backups dated in the future (a skewed clock says nothing about their
//! age). Backups that failed verification are removed unless one of those applies.

use crate::config::model::Retention;
use chrono::{DateTime, Datelike, Utc};
use std::collections::BTreeMap;

/// What retention needs to know about one backup.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The backup id.
    pub id: String,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// Whether it passed verification.
    pub verified: bool,
    /// Dated in the future beyond the tolerance (a skewed clock took it).
    pub future: bool,
    /// Pinned (`dbflow backup pin`), with what the pin says.
    pub pinned: Option<String>,
    /// The deploys whose rollback point it is: run id and rank among the environment's
    /// deploys that have one (0 = newest).
    pub deploys: Vec<(String, usize)>,
}

/// The verdict for one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Kept, with every reason that applies.
    Keep(Vec<String>),
    /// Removed, and why.
    Delete(String),
}

impl Decision {
    /// True for [`Decision::Keep`].
    pub fn keeps(&self) -> bool {
        matches!(self, Decision::Keep(_))
    }
}

#[derive(Clone, Copy)]
enum Rule {
    Daily,
    Weekly,
    Monthly,
}

impl Rule {
    fn bucket(self, t: DateTime<Utc>) -> String {
        match self {
            Rule::Daily => t.format("%Y-%m-%d").to_string(),
            Rule::Weekly => {
                let week = t.iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
            Rule::Monthly => t.format("%Y-%m").to_string(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
        }
    }
}

/// Decides for every backup, newest first. `pinned` maps backup ids to the run in
/// progress that uses them.
pub fn plan(
    backups: &[Candidate],
    policy: Retention,
    pinned: &BTreeMap<String, String>,
) -> Vec<(Candidate, Decision)> {
    let mut sorted: Vec<&Candidate> = backups.iter().collect();
    sorted.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); sorted.len()];
    for (rule, count) in [
        (Rule::Daily, policy.daily),
        (Rule::Weekly, policy.weekly),
        (Rule::Monthly, policy.monthly),
    ] {
        let mut kept = 0;
        let mut last_bucket: Option<String> = None;
        for (index, backup) in sorted.iter().enumerate() {
            if kept >= count {
                break;
            }
            if !backup.verified || backup.future {
                continue;
            }
            let bucket = rule.bucket(backup.created_at);
            if last_bucket.as_deref() == Some(bucket.as_str()) {
                continue;
            }
            reasons[index].push(format!("{} ({bucket})", rule.name()));
            last_bucket = Some(bucket);
            kept += 1;
        }
    }
    if let Some(index) = sorted.iter().position(|b| b.verified && !b.future) {
        reasons[index].insert(0, "newest verified backup".into());
    }
    // The daily window: from the oldest day the daily rule kept.
    let mut days: Vec<String> = Vec::new();
    for backup in sorted.iter().filter(|b| b.verified && !b.future) {
        let day = Rule::Daily.bucket(backup.created_at);
        if days.len() >= policy.daily as usize {
            break;
        }
        if days.last() != Some(&day) {
            days.push(day);
        }
    }
    let window_start = days.pop();
    for (index, backup) in sorted.iter().enumerate() {
        if let Some(run) = pinned.get(&backup.id) {
            reasons[index].push(format!("used by run {run}, still in progress"));
        }
        if let Some(pin) = &backup.pinned {
            reasons[index].push(format!("pinned ({pin})"));
        }
        for (run, rank) in &backup.deploys {
            let in_window = window_start
                .as_deref()
                .is_some_and(|start| Rule::Daily.bucket(backup.created_at).as_str() >= start);
            if (*rank as u64) < policy.keep_deploys as u64 {
                reasons[index].push(format!(
                    "rollback point of deploy run {run} ({} of the last {} deploys)",
                    ordinal(*rank + 1),
                    policy.keep_deploys
                ));
            } else if in_window {
                reasons[index].push(format!(
                    "rollback point of deploy run {run} (within the {}-day window)",
                    policy.daily
                ));
            }
        }
        if backup.future {
            reasons[index].push(
                "dated in the future (the clock of the machine that took it was ahead?); kept until that time passes".into(),
            );
        }
    }
    let summary = format!(
        "{} daily, {} weekly, {} monthly",
        policy.daily, policy.weekly, policy.monthly
    );
    sorted
        .iter()
        .zip(reasons)
        .map(|(backup, reasons)| {
            let decision = if !reasons.is_empty() {
                Decision::Keep(reasons)
            } else if !backup.verified {
                Decision::Delete("failed verification".into())
            } else {
                Decision::Delete(format!("outside the retention ({summary})"))
            };
            ((*backup).clone(), decision)
        })
        .collect()
}

/// `1st`, `2nd`, `3rd`, `4th`, … `11th`, `21st`.
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, NaiveDate, TimeZone};

    fn at(date: &str, hour: u32) -> DateTime<Utc> {
        let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        Utc.from_utc_datetime(&day.and_hms_opt(hour, 0, 0).unwrap())
    }

    fn backup(t: DateTime<Utc>, verified: bool) -> Candidate {
        Candidate {
            id: t.format("%Y%m%d_%H%M%S").to_string(),
            created_at: t,
            verified,
            future: false,
            pinned: None,
            deploys: Vec::new(),
        }
    }

    /// One verified backup a day at 02:00 for 400 days, the last on 2024-07-04 (a
    /// Thursday).
    fn daily_catalog() -> Vec<Candidate> {
        let last = at("2024-07-04", 2);
        (0..400)
            .map(|n| backup(last - Duration::days(n), true))
            .collect()
    }

    fn kept_days(result: &[(Candidate, Decision)]) -> Vec<String> {
        result
            .iter()
            .filter(|(_, d)| d.keeps())
            .map(|(c, _)| c.created_at.format("%Y-%m-%d").to_string())
            .collect()
    }

    fn policy(daily: u32, weekly: u32, monthly: u32) -> Retention {
        Retention {
            daily,
            weekly,
            monthly,
            keep_deploys: 5,
        }
    }

    #[test]
    fn gfs_on_a_400_day_catalog_keeps_exactly_the_expected_set() {
        let cases: &[(&str, Retention, &[&str])] = &[
            (
                "default 7/4/6",
                policy(7, 4, 6),
                &[
                    // daily: the last 7 days
                    "2024-07-04",
                    "2024-07-03",
                    "2024-07-02",
                    "2024-07-01",
                    "2024-06-30",
                    "2024-06-29",
                    "2024-06-28",
                    // weekly: Sundays closing the 3 weeks before this one (this week's
                    // newest is 07-04, 06-30 is already daily)
                    "2024-06-23",
                    "2024-06-16",
                    // monthly: last day of each month (07-04 and 06-30 already kept)
                    "2024-05-31",
                    "2024-04-30",
                    "2024-03-31",
                    "2024-02-29",
                ],
            ),
            (
                "daily only",
                policy(3, 0, 0),
                &["2024-07-04", "2024-07-03", "2024-07-02"],
            ),
            (
                "weekly only",
                policy(0, 3, 0),
                &["2024-07-04", "2024-06-30", "2024-06-23"],
            ),
            (
                "monthly across a year boundary",
                policy(0, 0, 9),
                &[
                    "2024-07-04",
                    "2024-06-30",
                    "2024-05-31",
                    "2024-04-30",
                    "2024-03-31",
                    "2024-02-29",
                    "2024-01-31",
                    "2023-12-31",
                    "2023-11-30",
                ],
            ),
            (
                "more months than the catalog holds keeps one per month",
                policy(0, 0, 100),
                &[
                    "2024-07-04",
                    "2024-06-30",
                    "2024-05-31",
                    "2024-04-30",
                    "2024-03-31",
                    "2024-02-29",
                    "2024-01-31",
                    "2023-12-31",
                    "2023-11-30",
                    "2023-10-31",
                    "2023-09-30",
                    "2023-08-31",
                    "2023-07-31",
                    "2023-06-30",
                ],
            ),
            (
                "nothing configured still keeps the newest verified",
                policy(0, 0, 0),
                &["2024-07-04"],
            ),
        ];
        let catalog = daily_catalog();
        assert_eq!(catalog.len(), 400);
        for (name, policy, expected) in cases {
            let result = plan(&catalog, *policy, &BTreeMap::new());
            assert_eq!(result.len(), 400, "{name}: every backup gets a decision");
            let mut kept = kept_days(&result);
            kept.sort();
            kept.reverse();
            let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            expected.sort();
            expected.reverse();
            assert_eq!(kept, expected, "{name}");
        }
    }

    #[test]
    fn several_backups_a_day_keep_only_the_newest_of_the_day() {
        let mut catalog = daily_catalog();
        catalog.push(backup(at("2024-07-04", 1), true));
        catalog.push(backup(at("2024-07-04", 23), true));
        let result = plan(&catalog, policy(7, 4, 6), &BTreeMap::new());
        let today: Vec<(u32, bool)> = result
            .iter()
            .filter(|(c, _)| c.created_at.format("%Y-%m-%d").to_string() == "2024-07-04")
            .map(|(c, d)| {
                (
                    c.created_at.format("%H").to_string().parse().unwrap(),
                    d.keeps(),
                )
            })
            .collect();
        assert_eq!(today, [(23, true), (2, false), (1, false)]);
        assert_eq!(kept_days(&result).len(), 13);
    }

    #[test]
    fn failed_backups_take_no_slot_and_go() {
        let mut catalog = daily_catalog();
        // The three newest failed verification.
        for c in catalog.iter_mut().take(3) {
            c.verified = false;
        }
        let result = plan(&catalog, policy(2, 0, 0), &BTreeMap::new());
        let verdicts: Vec<(String, Decision)> = result
            .iter()
            .take(6)
            .map(|(c, d)| (c.created_at.format("%m-%d").to_string(), d.clone()))
            .collect();
        assert_eq!(
            verdicts,
            [
                (
                    "07-04".into(),
                    Decision::Delete("failed verification".into())
                ),
                (
                    "07-03".into(),
                    Decision::Delete("failed verification".into())
                ),
                (
                    "07-02".into(),
                    Decision::Delete("failed verification".into())
                ),
                (
                    "07-01".into(),
                    Decision::Keep(vec![
                        "newest verified backup".into(),
                        "daily (2024-07-01)".into()
                    ])
                ),
                (
                    "06-30".into(),
                    Decision::Keep(vec!["daily (2024-06-30)".into()])
                ),
                (
                    "06-29".into(),
                    Decision::Delete("outside the retention (2 daily, 0 weekly, 0 monthly)".into())
                ),
            ]
        );
    }

    #[test]
    fn backups_used_by_a_run_in_progress_are_kept() {
        let catalog = daily_catalog();
        let old = catalog[200].id.clone();
        let pinned = BTreeMap::from([(old.clone(), "20240704T020000000Z-beef".to_string())]);
        let result = plan(&catalog, policy(1, 0, 0), &pinned);
        let (_, decision) = result.iter().find(|(c, _)| c.id == old).unwrap();
        assert_eq!(
            decision,
            &Decision::Keep(vec![
                "used by run 20240704T020000000Z-beef, still in progress".into()
            ])
        );
        assert_eq!(result.iter().filter(|(_, d)| d.keeps()).count(), 2);
    }

    #[test]
    fn rollback_points_of_recent_deploys_pins_and_future_dated_backups_stay() {
        let mut catalog = daily_catalog();
        // Same-day pre-deploy backups: the nightly at 02:00 is the day's newest.
        let mut recent = backup(at("2024-07-04", 1), true);
        recent.deploys = vec![("run-new".into(), 0)];
        // The 7th newest deploy, but within the 7-day window.
        let mut in_window = backup(at("2024-06-30", 1), true);
        in_window.deploys = vec![("run-7".into(), 6)];
        // The 8th newest deploy, two months back: goes.
        let mut old = backup(at("2024-05-02", 1), true);
        old.deploys = vec![("run-8".into(), 7)];
        let mut pinned = backup(at("2023-01-01", 1), true);
        pinned.pinned = Some("legal hold".into());
        let mut future = backup(at("2024-07-05", 9), true);
        future.future = true;
        catalog.extend([recent, in_window, old, pinned, future]);
        let result = plan(&catalog, policy(7, 4, 6), &BTreeMap::new());
        let decision = |t: DateTime<Utc>| {
            result
                .iter()
                .find(|(c, _)| c.created_at == t)
                .map(|(_, d)| d.clone())
                .unwrap()
        };
        assert_eq!(
            decision(at("2024-07-04", 1)),
            Decision::Keep(vec![
                "rollback point of deploy run run-new (1st of the last 5 deploys)".into()
            ])
        );
        assert_eq!(
            decision(at("2024-06-30", 1)),
            Decision::Keep(vec![
                "rollback point of deploy run run-7 (within the 7-day window)".into()
            ])
        );
        assert!(!decision(at("2024-05-02", 1)).keeps());
        assert_eq!(
            decision(at("2023-01-01", 1)),
            Decision::Keep(vec!["pinned (legal hold)".into()])
        );
        assert_eq!(
            decision(at("2024-07-05", 9)),
            Decision::Keep(vec!["dated in the future (the clock of the machine that took it was ahead?); kept until that time passes".into()])
        );
        // The future-dated one took no slot: the newest verified is still 07-04 02:00.
        assert_eq!(
            decision(at("2024-07-04", 2)),
            Decision::Keep(vec![
                "newest verified backup".into(),
                "daily (2024-07-04)".into(),
                "weekly (2024-W27)".into(),
                "monthly (2024-07)".into()
            ])
        );
        assert_eq!(ordinal(2), "2nd");
        assert_eq!(ordinal(13), "13th");
        assert_eq!(ordinal(23), "23rd");
    }

    #[test]
    fn gaps_count_days_that_have_backups_not_calendar_days() {
        // Backups stopped a month ago: the last 3 that exist are kept, not none.
        let last = at("2024-06-01", 2);
        let catalog: Vec<Candidate> = (0..30)
            .map(|n| backup(last - Duration::days(n), true))
            .collect();
        let result = plan(&catalog, policy(3, 0, 0), &BTreeMap::new());
        assert_eq!(
            kept_days(&result),
            ["2024-06-01", "2024-05-31", "2024-05-30"]
        );
    }
}
