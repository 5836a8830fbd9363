//! Time-series charts as hand-sized inline SVG: a fixed 640×220 canvas, one `<circle>`
//! per recorded event (class `point`, its series in `data-series`, a `<title>` naming the
//! event), joined by a polyline per series. Drawn by hand rather than with a plotting
//! crate: the page needs a few dozen elements and no text measurement, and inline
//! markup keeps every point countable (tests do) and styleable from the page's CSS.

use chrono::{DateTime, Utc};
use std::fmt::Write;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 34.0;

/// How values read on the y axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Durations in seconds.
    Seconds,
    /// Sizes in bytes.
    Bytes,
    /// Whole numbers.
    Count,
    /// 1 = PASS, 0 = FAIL; points only, no line.
    Verdict,
}

/// One recorded event.
#[derive(Debug, Clone)]
pub struct Point {
    /// When.
    pub at: DateTime<Utc>,
    /// The value, in the chart's unit.
    pub value: f64,
    /// The tooltip (`<title>`), already redacted by the caller.
    pub label: String,
    /// An extra class (`pass`, `fail`).
    pub class: Option<&'static str>,
}

/// A named line of points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Shown in the legend.
    pub name: String,
    /// `data-series` of its points (what tests count by).
    pub key: String,
    /// Its points, in time order.
    pub points: Vec<Point>,
}

/// A chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Accessible title.
    pub title: String,
    /// The y axis's unit.
    pub unit: Unit,
    /// Its series (each gets the colour class `s<index>`).
    pub series: Vec<Series>,
}

/// Text escaped for HTML and SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `value` with one decimal, without a trailing `.0`.
fn short(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
}

/// A value as the axis shows it.
pub fn format_value(unit: Unit, value: f64) -> String {
    if value < 0.0 && unit == Unit::Seconds {
        return format!("-{}", format_value(unit, -value));
    }
    match unit {
        Unit::Seconds if value < 1.0 && value > 0.0 => format!("{:.0}ms", value * 1000.0),
        Unit::Seconds if value < 60.0 => format!("{}s", short(value)),
        Unit::Seconds if value < 3600.0 => format!("{}min", short(value / 60.0)),
        Unit::Seconds if value < 86_400.0 => format!("{}h", short(value / 3600.0)),
        Unit::Seconds => format!("{}d", short(value / 86_400.0)),
        Unit::Bytes => crate::db::backup::human_size(value.max(0.0) as u64),
        Unit::Count => format!("{value:.0}"),
        Unit::Verdict if value >= 0.5 => "PASS".into(),
        Unit::Verdict => "FAIL".into(),
    }
}

/// The unit gridlines are counted in, so they fall on round values of what the axis
/// shows (whole minutes, hours or days; KiB, MiB, GiB), not of seconds or bytes.
fn scale(unit: Unit, max: f64) -> f64 {
    let steps: &[f64] = match unit {
        Unit::Seconds => &[1.0, 60.0, 3600.0, 86_400.0],
        Unit::Bytes => &[
            1.0,
            1024.0,
            1_048_576.0,
            1_073_741_824.0,
            1_099_511_627_776.0,
        ],
        Unit::Count | Unit::Verdict => &[1.0],
    };
    steps.iter().copied().rfind(|s| max >= *s).unwrap_or(1.0)
}

/// A round step (1, 2 or 5 × 10ⁿ of the axis's scale) giving about four gridlines up
/// to `max`.
fn nice_step(unit: Unit, max: f64) -> f64 {
    let scale = scale(unit, max);
    let raw = max / scale / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude * scale
}

/// The chart as an `<svg>` element (empty string when it has no point).
pub fn svg(chart: &Chart) -> String {
    let points: Vec<&Point> = chart.series.iter().flat_map(|s| &s.points).collect();
    let (Some(first), Some(last)) = (
        points.iter().map(|p| p.at).min(),
        points.iter().map(|p| p.at).max(),
    ) else {
        return String::new();
    };
    // Half a day either side, so a single event (or a single day) sits mid-chart.
    let pad = chrono::Duration::hours(12);
    let (t0, t1) = (first - pad, last + pad);
    let span = (t1 - t0).num_milliseconds() as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |at: DateTime<Utc>| LEFT + (at - t0).num_milliseconds() as f64 / span * plot_w;
    // The axis starts at 0, or lower when a value is negative (a backup dated in the
    // future has a negative age: shown as it was recorded, not clipped).
    let (ticks, base, top) = if chart.unit == Unit::Verdict {
        (vec![0.0, 1.0], -0.25, 1.25)
    } else {
        let max = points.iter().map(|p| p.value).fold(0.0, f64::max);
        let min = points.iter().map(|p| p.value).fold(0.0, f64::min);
        let span = max - min;
        let step = if span > 0.0 {
            nice_step(chart.unit, span)
        } else {
            1.0
        };
        let step = if chart.unit == Unit::Count {
            step.max(1.0).ceil()
        } else {
            step
        };
        let low = (min / step).floor() as i64;
        let high = ((max / step).ceil() as i64).max(low + 1);
        let ticks = (low..=high).map(|i| i as f64 * step).collect();
        (ticks, low as f64 * step, high as f64 * step)
    };
    let y = |v: f64| TOP + plot_h - (v - base) / (top - base) * plot_h;

    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{}">"#,
        escape(&chart.title)
    );
    let _ = write!(out, "<title>{}</title>", escape(&chart.title));
    for tick in &ticks {
        let ty = y(*tick);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            ty + 4.0,
            escape(&format_value(chart.unit, *tick))
        );
    }
    // Day labels: the first and last day, and up to three between.
    let days = (last.date_naive() - first.date_naive()).num_days();
    let labels = days.clamp(0, 4);
    for i in 0..=labels {
        let at = if labels == 0 {
            first
        } else {
            first + (last - first) * i as i32 / labels as i32
        };
        let _ = write!(
            out,
            r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x(at),
            HEIGHT - BOTTOM + 18.0,
            at.format("%b %-d")
        );
    }
    let _ = write!(
        out,
        r#"<line class="axis" x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/>"#,
        TOP + plot_h,
        WIDTH - RIGHT,
        TOP + plot_h
    );
    for (i, series) in chart.series.iter().enumerate() {
        if chart.unit != Unit::Verdict && series.points.len() > 1 {
            let path: Vec<String> = series
                .points
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p.at), y(p.value)))
                .collect();
            let _ = write!(
                out,
                r#"<polyline class="line s{i}" points="{}"/>"#,
                path.join(" ")
            );
        }
        for p in &series.points {
            let class = p.class.map(|c| format!(" {c}")).unwrap_or_default();
            let _ = write!(
                out,
                r#"<circle class="point s{i}{class}" data-series="{}" cx="{:.1}" cy="{:.1}" r="4"><title>{}</title></circle>"#,
                escape(&series.key),
                x(p.at),
                y(p.value),
                escape(&p.label)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// The legend of `chart` as HTML (colour swatches matching the series classes).
pub fn legend(chart: &Chart) -> String {
    if chart.unit == Unit::Verdict {
        let points = chart.series.iter().flat_map(|s| &s.points);
        let passed = points.clone().filter(|p| p.value >= 0.5).count();
        let failed = points.count() - passed;
        return format!(
            r#"<ul class="legend"><li><span class="swatch pass"></span>PASS ({passed})</li><li><span class="swatch fail"></span>FAIL ({failed})</li></ul>"#
        );
    }
    let items: Vec<String> = chart
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                r#"<li><span class="swatch s{i}"></span>{} ({})</li>"#,
                escape(&s.name),
                s.points.len()
            )
        })
        .collect();
    format!(r#"<ul class="legend">{}</ul>"#, items.join(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-11-{day:02}T10:00:00Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn one_circle_per_point_and_every_point_inside_the_canvas() {
        let chart = Chart {
            title: "t <&>".into(),
            unit: Unit::Seconds,
            series: vec![Series {
                name: "RTO".into(),
                key: "rto".into(),
                points: (1..=3)
                    .map(|d| Point {
                        at: at(d),
                        value: d as f64 * 1.5,
                        label: format!("day {d}"),
                        class: None,
                    })
                    .collect(),
            }],
        };
        let svg = svg(&chart);
        assert_eq!(svg.matches(r#"data-series="rto""#).count(), 3);
        assert!(svg.contains("t &lt;&amp;&gt;"), "{svg}");
        let re = regex::Regex::new(r#"cx="([\d.]+)" cy="([\d.]+)""#).unwrap();
        for c in re.captures_iter(&svg) {
            let (cx, cy): (f64, f64) = (c[1].parse().unwrap(), c[2].parse().unwrap());
            assert!((LEFT..=WIDTH - RIGHT).contains(&cx), "{cx}");
            assert!((TOP..=HEIGHT - BOTTOM).contains(&cy), "{cy}");
        }
    }

    #[test]
    fn gridlines_fall_on_round_values_of_the_unit_shown() {
        assert_eq!(nice_step(Unit::Bytes, 4096.0), 1024.0);
        assert_eq!(
            nice_step(Unit::Bytes, 300.0 * 1_048_576.0),
            100.0 * 1_048_576.0
        );
        assert_eq!(nice_step(Unit::Seconds, 86_400.0), 12.0 * 3600.0);
        assert_eq!(nice_step(Unit::Seconds, 0.7), 0.2);
        assert_eq!(nice_step(Unit::Count, 4.0), 1.0);
    }

    #[test]
    fn a_negative_value_widens_the_axis_instead_of_leaving_the_canvas() {
        let chart = Chart {
            title: "RPO".into(),
            unit: Unit::Seconds,
            series: vec![Series {
                name: "RPO".into(),
                key: "rpo".into(),
                points: [(1, -30.0), (2, 90.0)]
                    .into_iter()
                    .map(|(d, value)| Point {
                        at: at(d),
                        value,
                        label: String::new(),
                        class: None,
                    })
                    .collect(),
            }],
        };
        let svg = svg(&chart);
        let re = regex::Regex::new(r#"cy="([\d.]+)""#).unwrap();
        let ys: Vec<f64> = re
            .captures_iter(&svg)
            .map(|c| c[1].parse().unwrap())
            .collect();
        assert_eq!(ys.len(), 2);
        assert!(
            ys.iter().all(|y| (TOP..=HEIGHT - BOTTOM).contains(y)),
            "{ys:?}"
        );
        assert!(svg.contains(">-30s<") && svg.contains(">0s<"), "{svg}");
        assert_eq!(format_value(Unit::Seconds, -7200.0), "-2h");
    }

    #[test]
    fn a_chart_without_points_draws_nothing() {
        let chart = Chart {
            title: "empty".into(),
            unit: Unit::Count,
            series: vec![],
        };
        assert_eq!(svg(&chart), "");
    }

    #[test]
    fn axis_values_read_in_their_unit() {
        assert_eq!(format_value(Unit::Seconds, 0.25), "250ms");
        assert_eq!(format_value(Unit::Seconds, 7.25), "7.2s");
        assert_eq!(format_value(Unit::Seconds, 90.0), "1.5min");
        assert_eq!(format_value(Unit::Seconds, 86_400.0 * 3.0), "3d");
        assert_eq!(format_value(Unit::Verdict, 1.0), "PASS");
        assert_eq!(format_value(Unit::Count, 3.0), "3");
    }
}
