//! Colour, through the stack clap itself uses: lines are styled with ANSI codes
//! (anstyle) and written through anstream, which strips them unless the stream should be
//! coloured. `--color auto` (the default) colours a terminal only, and honours `NO_COLOR`
//! (never), `CLICOLOR_FORCE` (always), `CLICOLOR=0` and `TERM=dumb`; so a pipe or a file
//! never gets escape codes unless asked for with `--color always`.

use anstyle::{AnsiColor, Style};

/// The `--color` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorWhen {
    /// Colour terminals, unless NO_COLOR is set (CLICOLOR_FORCE colours anything).
    #[default]
    Auto,
    /// Always colour, pipes and files too.
    Always,
    /// Never colour.
    Never,
}

/// Sets the process-wide choice every later write through anstream follows.
pub fn init(when: ColorWhen) {
    let choice = match when {
        ColorWhen::Auto => anstream::ColorChoice::Auto,
        ColorWhen::Always => anstream::ColorChoice::Always,
        ColorWhen::Never => anstream::ColorChoice::Never,
    };
    choice.write_global();
}

const GREEN: Style = AnsiColor::Green.on_default().bold();
const RED: Style = AnsiColor::Red.on_default().bold();
const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
const CYAN: Style = AnsiColor::Cyan.on_default();
const DIM: Style = Style::new().dimmed();
const BOLD: Style = Style::new().bold();

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// Words that carry a verdict, and their colours.
const VERDICTS: &[(&str, Style)] = &[
    ("ALLOWED", GREEN),
    ("BLOCKED", RED),
    ("PASS", GREEN),
    ("FAIL", RED),
];

/// Styles one line of dbflow's own output: `error:`/`warning:` prefixes, the step marks
/// (▶ ✔ ✘ ○) and verdict words. A child's output (`│ …`) is left as it came.
pub fn line(text: &str) -> String {
    let body = text.trim_start();
    let indent = &text[..text.len() - body.len()];
    if body.starts_with('│') {
        return text.to_string();
    }
    for (prefix, style) in [
        ("error:", RED),
        ("warning:", YELLOW),
        ("= help:", CYAN),
        ("--> ", CYAN),
    ] {
        if let Some(rest) = body.strip_prefix(prefix) {
            return format!("{indent}{}{}", paint(style, prefix), verdicts(rest));
        }
    }
    for (mark, style) in [('✔', GREEN), ('✘', RED), ('○', DIM), ('▶', BOLD)] {
        if let Some(rest) = body.strip_prefix(mark) {
            return format!(
                "{indent}{}{}",
                paint(style, &mark.to_string()),
                verdicts(rest)
            );
        }
    }
    verdicts(text)
}

/// Colours the verdict words standing alone (not inside another word).
fn verdicts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for (word, style) in VERDICTS {
            if let Some(after) = rest.strip_prefix(word) {
                let before_ok = out
                    .chars()
                    .last()
                    .is_none_or(|c| !c.is_alphanumeric() && c != '_');
                let after_ok = after
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_alphanumeric() && c != '_');
                if before_ok && after_ok {
                    out.push_str(&paint(*style, word));
                    rest = after;
                    continue 'scan;
                }
            }
        }
        let c = rest.chars().next().expect("not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Styles a unified diff: additions green, removals red, hunk headers cyan.
pub fn diff(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|l| {
            let (body, nl) = match l.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (l, ""),
            };
            let style = if body.starts_with("+++") || body.starts_with("---") {
                BOLD
            } else if body.starts_with('+') {
                AnsiColor::Green.on_default()
            } else if body.starts_with('-') {
                AnsiColor::Red.on_default()
            } else if body.starts_with("@@") {
                CYAN
            } else {
                return l.to_string();
            };
            format!("{}{nl}", paint(style, body))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: &str) -> String {
        anstream::adapter::strip_str(s).to_string()
    }

    #[test]
    fn styling_never_changes_the_text() {
        for l in [
            "error: nope",
            "  ✔ backup (1.2s)",
            "BLOCKED: `x` on production",
            "PASSWORD FAILED PASS",
            "  │ FAIL from a child",
        ] {
            assert_eq!(plain(&line(l)), l);
        }
        assert_eq!(
            plain(&diff("--- a\n+++ b\n@@ x\n-old\n+new\n same")),
            "--- a\n+++ b\n@@ x\n-old\n+new\n same"
        );
    }

    #[test]
    fn verdicts_only_as_whole_words() {
        assert_eq!(verdicts("PASSWORD FAILED"), "PASSWORD FAILED");
        assert_ne!(verdicts("result: PASS"), "result: PASS");
        assert_eq!(line("  │ FAIL"), "  │ FAIL");
    }
}
