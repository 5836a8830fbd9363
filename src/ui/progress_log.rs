//! Progress for logs (CI, a pipe, a file): no bar, no carriage return, only whole lines.
//! One line when bytes start to flow, then one every interval (`DBFLOW_PROGRESS_INTERVAL`,
//! default 10 s) or at every 10 % of a known total, then a final line with the total and
//! the rate. A long backup in a CI log is then never silent for more than the interval.

use std::time::{Duration, Instant};

/// The variable that sets the interval between lines: seconds (`10`, `0.5`) or a
/// humantime duration (`500ms`, `1m`).
pub const INTERVAL_VARIABLE: &str = "DBFLOW_PROGRESS_INTERVAL";

/// The interval between two progress lines in a log.
pub fn interval() -> Duration {
    std::env::var(INTERVAL_VARIABLE)
        .ok()
        .and_then(|v| parse_interval(v.trim()))
        .unwrap_or(Duration::from_secs(10))
}

fn parse_interval(text: &str) -> Option<Duration> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
        Ok(_) => None,
        Err(_) => humantime::parse_duration(text)
            .ok()
            .filter(|d| !d.is_zero()),
    }
}

/// The line-by-line progress of one transfer.
pub struct LogProgress {
    label: String,
    total: Option<u64>,
    interval: Duration,
    started: Option<Instant>,
    last_line: Option<Instant>,
    next_tenth: u64,
    bytes: u64,
    written: Option<u64>,
}

impl LogProgress {
    /// A transfer named `label` (`pg_dump`), counting towards `total` bytes when known
    /// (an estimate: a percentage never reaches 100 before the end).
    pub fn new(label: &str, total: Option<u64>, interval: Duration) -> Self {
        LogProgress {
            label: label.to_string(),
            total: total.filter(|t| *t > 0),
            interval,
            started: None,
            last_line: None,
            next_tenth: 1,
            bytes: 0,
            written: None,
        }
    }

    /// Records `bytes` so far at `now`; returns the line to print, if one is due.
    pub fn update(&mut self, bytes: u64, now: Instant) -> Option<String> {
        self.update_read(bytes, None, now)
    }

    /// Like [`LogProgress::update`] when progress is measured on what the tool `read`
    /// while it `written` something else (a compressed archive): both are shown.
    pub fn update_read(
        &mut self,
        bytes: u64,
        written: Option<u64>,
        now: Instant,
    ) -> Option<String> {
        self.bytes = bytes;
        self.written = written;
        let Some(started) = self.started else {
            self.started = Some(now);
            self.last_line = Some(now);
            return Some(match self.total {
                Some(total) => format!("{}: started, about {} to go", self.label, size(total)),
                None => format!("{}: started", self.label),
            });
        };
        let percent = self.percent();
        let crossed = match percent {
            Some(p) if p >= self.next_tenth * 10 => {
                self.next_tenth = p / 10 + 1;
                true
            }
            _ => false,
        };
        let due = self
            .last_line
            .is_none_or(|last| now.duration_since(last) >= self.interval);
        if !(crossed || due) {
            return None;
        }
        self.last_line = Some(now);
        let elapsed = now.duration_since(started);
        let mut line = match self.written {
            Some(_) => format!("{}: read {}", self.label, size(bytes)),
            None => format!("{}: {}", self.label, size(bytes)),
        };
        if let (Some(total), Some(p)) = (self.total, percent) {
            line.push_str(&format!(" of ~{} ({p}%)", size(total)));
        }
        if let Some(written) = self.written {
            line.push_str(&format!(", wrote {}", size(written)));
        }
        line.push_str(&format!(
            ", {}, {} elapsed",
            rate(bytes, elapsed),
            super::human_ms(elapsed.as_millis() as u64)
        ));
        Some(line)
    }

    /// The final line (the real total and the mean rate), when bytes ever flowed.
    pub fn finish(&mut self, now: Instant) -> Option<String> {
        let started = self.started.take()?;
        let elapsed = now.duration_since(started);
        let amount = match self.written {
            Some(written) => format!("read {} and wrote {}", size(self.bytes), size(written)),
            None => size(self.bytes),
        };
        Some(format!(
            "{}: done, {amount} in {} ({})",
            self.label,
            super::human_ms(elapsed.as_millis() as u64),
            rate(self.bytes, elapsed)
        ))
    }

    /// Percentage of the estimate, at most 99 until the end.
    fn percent(&self) -> Option<u64> {
        let total = self.total?;
        Some(((self.bytes as u128 * 100 / total as u128) as u64).min(99))
    }
}

/// `1.5 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs < 0.001 {
        return "— /s".to_string();
    }
    format!("{}/s", size((bytes as f64 / secs) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_at_start_every_tenth_every_interval_and_at_the_end() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut p = LogProgress::new("pg_dump", Some(1000), Duration::from_secs(10));
        assert_eq!(
            p.update(0, at(0)).unwrap(),
            "pg_dump: started, about 1000 B to go"
        );
        assert_eq!(p.update(50, at(100)), None);
        let line = p.update(120, at(200)).unwrap();
        assert!(
            line.starts_with("pg_dump: 120 B of ~1000 B (12%)"),
            "{line}"
        );
        assert_eq!(p.update(150, at(300)), None);
        assert!(p.update(160, at(10_300)).unwrap().contains("(16%)"));
        // Past the estimate: never 100 % before the end.
        assert!(p.update(1500, at(10_400)).unwrap().contains("(99%)"));
        let end = p.finish(at(12_000)).unwrap();
        assert!(end.starts_with("pg_dump: done, 1.5 KiB in 12.0s"), "{end}");
        assert!(!end.contains('\r'));
    }

    #[test]
    fn without_a_total_only_the_interval() {
        let t0 = Instant::now();
        let mut p = LogProgress::new("pg_restore", None, Duration::from_secs(1));
        assert_eq!(p.update(0, t0).unwrap(), "pg_restore: started");
        assert_eq!(p.update(10, t0 + Duration::from_millis(500)), None);
        assert!(p
            .update(2048, t0 + Duration::from_secs(1))
            .unwrap()
            .starts_with("pg_restore: 2.0 KiB, "));
    }

    #[test]
    fn intervals_parse_as_seconds_or_durations() {
        assert_eq!(parse_interval("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_interval("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_interval("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_interval("0"), None);
        assert_eq!(parse_interval("soon"), None);
    }
}
