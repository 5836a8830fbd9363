//! Splitting the selected targets into waves (`fleet.waves`): every target of a wave
//! ends before the next wave starts.

use super::Target;
use crate::config::fleet::Wave;

/// The waves, in order, each with its targets (listing order kept). Targets left after
/// the declared waves form a last wave (never silently skipped); empty waves are dropped.
pub fn split(targets: Vec<Target>, waves: &[Wave]) -> Vec<Vec<Target>> {
    let total = targets.len();
    let mut left = targets;
    let mut out: Vec<Vec<Target>> = Vec::new();
    for wave in waves {
        let taken: Vec<Target> = match wave {
            Wave::Targets(globs) => {
                let patterns: Vec<glob::Pattern> = globs
                    .iter()
                    .filter_map(|g| glob::Pattern::new(g).ok())
                    .collect();
                let (these, rest): (Vec<Target>, Vec<Target>) = left
                    .into_iter()
                    .partition(|t| patterns.iter().any(|p| p.matches(&t.name)));
                left = rest;
                these
            }
            Wave::Percent(p) => {
                let n = (total * *p as usize).div_ceil(100).max(1).min(left.len());
                left.drain(..n).collect()
            }
            Wave::Count(n) => {
                let n = (*n).min(left.len());
                left.drain(..n).collect()
            }
            Wave::Rest => std::mem::take(&mut left),
        };
        if !taken.is_empty() {
            out.push(taken);
        }
    }
    if !left.is_empty() {
        out.push(left);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DbUrl;

    fn t(name: &str) -> Target {
        Target {
            name: name.into(),
            url: DbUrl::new("postgres://h/x"),
        }
    }

    #[test]
    fn canary_then_percent_then_rest() {
        let mut all = vec![t("canary-1"), t("canary-2")];
        all.extend((0..48).map(|i| t(&format!("tenant_{i:02}"))));
        let waves = split(
            all,
            &[
                Wave::Targets(vec!["canary-*".into()]),
                Wave::Percent(10),
                Wave::Rest,
            ],
        );
        let sizes: Vec<usize> = waves.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 5, 43]);
        assert_eq!(waves[1][0].name, "tenant_00");
        // Undeclared leftovers still run, last.
        let waves = split(vec![t("a"), t("b"), t("c")], &[Wave::Count(1)]);
        assert_eq!(waves.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 2]);
    }
}
