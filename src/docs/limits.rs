//! Limits for rendering templates, which are code a pull request can change: Tera has
//! none of its own (`range(end=2000000000)` grows memory without bound, a recursive
//! macro overflows the stack and aborts the process). What dbflow does, and why:
//!
//! * `range` is replaced by a version that makes at most [`MAX_RANGE`] numbers (and
//!   refuses `step_by=0`, which loops forever in Tera's own);
//! * every file renders into a writer that stops at [`MAX_OUTPUT`] bytes;
//! * macros and includes that can call themselves (directly or through others) are
//!   refused before rendering: Tera does not count recursion depth, and a stack overflow
//!   cannot be caught. Recursion is rare in runbook templates and a loop does the same;
//! * rendering runs on its own thread with a large stack and a wall-clock limit
//!   ([`TIME_LIMIT`]); when the limit passes, the command fails and the process exits,
//!   taking the thread with it.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::Duration;
use tera::{to_value, Template, Value};

/// The most numbers one `range(...)` call may make.
pub const MAX_RANGE: usize = 100_000;

/// The largest file one template may render (runbooks are KBs).
pub const MAX_OUTPUT: usize = 16 * 1024 * 1024;

/// How long rendering every template may take.
pub const TIME_LIMIT: Duration = Duration::from_secs(10);

/// Stack of the rendering thread: deep but finite nesting renders; recursion is refused.
pub const STACK_SIZE: usize = 64 * 1024 * 1024;

/// Tera's `range`, bounded.
pub fn range(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let number = |key: &str, default: Option<usize>| -> tera::Result<usize> {
        match args.get(key) {
            Some(value) => tera::from_value::<usize>(value.clone()).map_err(|_| {
                tera::Error::msg(format!(
                    "Function `range` received {key}={value} but `{key}` can only be a number"
                ))
            }),
            None => default.ok_or_else(|| {
                tera::Error::msg(format!(
                    "Function `range` was called without a `{key}` argument"
                ))
            }),
        }
    };
    let start = number("start", Some(0))?;
    let step = number("step_by", Some(1))?;
    let end = number("end", None)?;
    if step == 0 {
        return Err(tera::Error::msg("Function `range` received step_by=0"));
    }
    if start > end {
        return Err(tera::Error::msg(
            "Function `range` was called with a `start` argument greater than the `end` one",
        ));
    }
    let count = (end - start).div_ceil(step);
    if count > MAX_RANGE {
        return Err(tera::Error::msg(format!(
            "range(start={start}, end={end}) would make {count} numbers; a template may make at most {MAX_RANGE}"
        )));
    }
    Ok(to_value((start..end).step_by(step).collect::<Vec<_>>()).expect("numbers serialize"))
}

/// Collects a rendering, failing once it passes [`MAX_OUTPUT`] bytes.
#[derive(Default)]
pub struct Limited {
    /// What was rendered so far.
    pub bytes: Vec<u8>,
    /// Set when the limit was hit.
    pub exceeded: bool,
}

impl Write for Limited {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_OUTPUT {
            self.exceeded = true;
            return Err(std::io::Error::other("rendered output over the limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A macro or an include that can reach itself: the template, the macro (`None` for an
/// include cycle) and the path of calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recursion {
    /// Template holding the first macro or include of the cycle.
    pub template: String,
    /// That macro's name (`None`: the template includes itself).
    pub macro_name: Option<String>,
    /// The cycle, for people: `a.tera::m → a.tera::m`.
    pub path: String,
}

type NodeId = (String, Option<String>);

/// Finds a cycle among the macro calls and includes of `templates`. Calls are read from
/// the parsed tree's debug form, which lists every `MacroCall` and `Include` wherever it
/// sits (in a filter argument, a condition, a loop): reading more calls than run only
/// makes the check stricter.
pub fn find_recursion(templates: &HashMap<String, Template>) -> Option<Recursion> {
    let calls = regex::Regex::new(r#"MacroCall \{ namespace: "([^"\\]*)", name: "([^"\\]*)""#)
        .expect("static regex");
    let includes =
        regex::Regex::new(r#"Include\(WS \{[^}]*\}, \[([^\]]*)\]"#).expect("static regex");
    let names = regex::Regex::new(r#""([^"\\]*)""#).expect("static regex");
    let mut edges: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for (name, template) in templates {
        let mut add = |from: NodeId, body: String| {
            let mut to = Vec::new();
            for c in calls.captures_iter(&body) {
                let target = if &c[1] == "self" {
                    Some(name.clone())
                } else {
                    template
                        .imported_macro_files
                        .iter()
                        .find(|(_, namespace)| namespace == &c[1])
                        .map(|(file, _)| file.clone())
                };
                if let Some(target) = target {
                    to.push((target, Some(c[2].to_string())));
                }
            }
            for i in includes.captures_iter(&body) {
                for n in names.captures_iter(&i[1]) {
                    to.push((n[1].to_string(), None));
                }
            }
            edges.entry(from).or_default().extend(to);
        };
        for (macro_name, definition) in &template.macros {
            add(
                (name.clone(), Some(macro_name.clone())),
                format!("{:?}", definition.body),
            );
        }
        add((name.clone(), None), format!("{:?}", template.ast));
    }
    let mut done: HashSet<NodeId> = HashSet::new();
    let mut starts: Vec<&NodeId> = edges.keys().collect();
    starts.sort();
    for start in starts {
        let mut path = Vec::new();
        if let Some(cycle) = visit(start, &edges, &mut path, &mut done) {
            let (template, macro_name) = cycle[0].clone();
            let path = cycle
                .iter()
                .map(|(t, m)| match m {
                    Some(m) => format!("{t}::{m}"),
                    None => t.clone(),
                })
                .collect::<Vec<_>>()
                .join(" → ");
            return Some(Recursion {
                template,
                macro_name,
                path,
            });
        }
    }
    None
}

fn visit(
    node: &NodeId,
    edges: &HashMap<NodeId, Vec<NodeId>>,
    path: &mut Vec<NodeId>,
    done: &mut HashSet<NodeId>,
) -> Option<Vec<NodeId>> {
    if let Some(at) = path.iter().position(|n| n == node) {
        let mut cycle = path[at..].to_vec();
        cycle.push(node.clone());
        return Some(cycle);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.clone());
    for next in edges.get(node).into_iter().flatten() {
        if let Some(cycle) = visit(next, edges, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(node.clone());
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tera(templates: &[(&str, &str)]) -> tera::Tera {
        let mut tera = tera::Tera::default();
        tera.add_raw_templates(templates.to_vec()).unwrap();
        tera
    }

    #[test]
    fn recursion_is_found_through_macros_and_includes() {
        let direct = tera(&[(
            "a.tera",
            "{% macro m(n) %}{{ self::m(n=n) }}{% endmacro %}{{ self::m(n=1) }}",
        )]);
        let found = find_recursion(&direct.templates).unwrap();
        assert_eq!(found.macro_name.as_deref(), Some("m"));
        assert_eq!(found.path, "a.tera::m → a.tera::m");

        let mutual = tera(&[
            ("macros.tera", "{% macro a() %}{% if true %}{{ self::b() }}{% endif %}{% endmacro %}{% macro b() %}{{ self::a() | upper }}{% endmacro %}"),
            ("x.tera", "{% import \"macros.tera\" as m %}{{ m::a() }}"),
        ]);
        assert!(find_recursion(&mutual.templates).is_some());

        let include = tera(&[("i.tera", "{% include \"i.tera\" %}")]);
        assert_eq!(
            find_recursion(&include.templates).unwrap().path,
            "i.tera → i.tera"
        );

        let fine = tera(&[
            (
                "macros.tera",
                "{% macro a() %}{{ self::b() }}{% endmacro %}{% macro b() %}b{% endmacro %}",
            ),
            (
                "x.tera",
                "{% import \"macros.tera\" as m %}{{ m::a() }}{{ m::b() }}",
            ),
        ]);
        assert_eq!(find_recursion(&fine.templates), None);
    }

    #[test]
    fn range_is_bounded() {
        let args = |pairs: &[(&str, usize)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), to_value(v).unwrap()))
                .collect::<HashMap<_, _>>()
        };
        assert_eq!(
            range(&args(&[("end", 5), ("step_by", 2)])).unwrap(),
            to_value(vec![0, 2, 4]).unwrap()
        );
        assert!(range(&args(&[("end", MAX_RANGE)])).is_ok());
        let err = range(&args(&[("end", 2_000_000_000)])).unwrap_err();
        assert!(
            err.to_string().contains("would make 2000000000 numbers"),
            "{err}"
        );
        assert!(range(&args(&[("end", 5), ("step_by", 0)])).is_err());
    }
}
