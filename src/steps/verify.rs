//! `verify`: named checks after a deploy — SQL expectations, expected tables, a clean
//! migration status, HTTP health. Every check runs and all are reported together; the
//! step fails if any failed.

use crate::config::Diagnostic;
use crate::db::conn::{quote_literal, Conn, DbError};
use crate::db::migrate::{self, Category};
use crate::db::target::Target;
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use crate::journal::{CheckResult, Event};
use serde::Deserialize;
use std::time::Duration;

/// The `verify` step kind.
pub struct VerifyKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    checks: Vec<RawCheck>,
}

/// One check as written: a name and exactly one of `sql`, `tables`, `status_clean`,
/// `http` (serde refuses unknown keys; [`Check::from_raw`] the wrong combinations).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: Option<String>,
    sql: Option<String>,
    /// With `sql`: the number of rows the query must return.
    expect_rows: Option<u64>,
    /// With `sql`: the value the first column of the first row must equal.
    equals: Option<serde_json::Value>,
    /// With `sql`: the query must return no rows.
    #[serde(default)]
    no_rows: bool,
    tables: Option<Vec<String>>,
    /// Any value asks for the check (`status_clean: true` is how it is written).
    status_clean: Option<bool>,
    http: Option<RawHttp>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    url: String,
    #[serde(default = "default_status")]
    status: u16,
    /// Fields of the JSON body that must have these values (`status: ok`).
    #[serde(default)]
    json: serde_json::Map<String, serde_json::Value>,
    timeout: Option<String>,
    #[serde(default)]
    retries: u32,
    retry_delay: Option<String>,
}

fn default_status() -> u16 {
    200
}

/// One check, checked.
#[derive(Debug, Clone)]
struct Check {
    /// Its name, or `check N`.
    label: String,
    test: Test,
}

/// What a check tests.
#[derive(Debug, Clone)]
enum Test {
    /// A query and what it must return.
    Sql { sql: String, expect: Expect },
    /// Tables that must exist.
    Tables(Vec<String>),
    /// No pending, failed, modified or missing migration, and no drift.
    StatusClean,
    /// An HTTP endpoint's answer.
    Http(HttpCheck),
}

/// What an `sql` check's query must return.
#[derive(Debug, Clone)]
enum Expect {
    /// This many rows.
    Rows(u64),
    /// This value in the first column of the first row.
    Equals(serde_json::Value),
    /// No rows.
    NoRows,
}

#[derive(Debug, Clone)]
struct HttpCheck {
    url: String,
    status: u16,
    json: serde_json::Map<String, serde_json::Value>,
    timeout: Duration,
    retries: u32,
    retry_delay: Duration,
}

/// A configured `verify` step.
#[derive(Debug)]
pub struct VerifyStep {
    checks: Vec<Check>,
}

impl Check {
    /// The check `raw` (the `index`th, from 0) describes, or why it describes none.
    fn from_raw(raw: RawCheck, index: usize) -> Result<Check, String> {
        let label = raw
            .name
            .clone()
            .unwrap_or_else(|| format!("check {}", index + 1));
        let expectation = (raw.expect_rows, raw.equals, raw.no_rows);
        let no_expectation = matches!(expectation, (None, None, false));
        let test = match (raw.sql, raw.tables, raw.status_clean, raw.http) {
            (Some(sql), None, None, None) => {
                let expect = match expectation {
                    (Some(n), None, false) => Expect::Rows(n),
                    (None, Some(v), false) => Expect::Equals(v),
                    (None, None, true) => Expect::NoRows,
                    _ => return Err(format!("check `{label}`: an `sql` check needs exactly one of `expect_rows`, `equals`, `no_rows`")),
                };
                Test::Sql { sql, expect }
            }
            (None, Some(_), None, None)
            | (None, None, Some(_), None)
            | (None, None, None, Some(_))
                if !no_expectation =>
            {
                return Err(format!(
                    "check `{label}`: `expect_rows`, `equals` and `no_rows` go with `sql`"
                ))
            }
            (None, Some(tables), None, None) => Test::Tables(tables),
            (None, None, Some(_), None) => Test::StatusClean,
            (None, None, None, Some(http)) => Test::Http(HttpCheck::from_raw(http, &label)?),
            (sql, tables, status_clean, http) => {
                let count = [
                    sql.is_some(),
                    tables.is_some(),
                    status_clean.is_some(),
                    http.is_some(),
                ]
                .into_iter()
                .filter(|k| *k)
                .count();
                return Err(format!(
                    "check `{label}` must have exactly one of `sql`, `tables`, `status_clean`, `http` (it has {count})"
                ));
            }
        };
        Ok(Check { label, test })
    }
}

impl HttpCheck {
    fn from_raw(raw: RawHttp, label: &str) -> Result<HttpCheck, String> {
        let duration = |text: Option<&str>, default: Duration| match text {
            None => Ok(default),
            Some(d) => humantime::parse_duration(d)
                .map_err(|e| format!("check `{label}`: invalid duration `{d}`: {e}")),
        };
        Ok(HttpCheck {
            timeout: duration(raw.timeout.as_deref(), Duration::from_secs(10))?,
            retry_delay: duration(raw.retry_delay.as_deref(), Duration::from_secs(2))?,
            url: raw.url,
            status: raw.status,
            json: raw.json,
            retries: raw.retries,
        })
    }
}

impl StepKind for VerifyKind {
    fn role(&self) -> Option<crate::engine::registry::Role> {
        Some(crate::engine::registry::Role::Verify)
    }

    fn name(&self) -> &str {
        "verify"
    }

    fn summary(&self) -> &str {
        "named checks: sql expectations, tables, clean migration status, HTTP health"
    }

    fn parse(
        &self,
        params: &serde_json::Value,
    ) -> Result<Box<dyn Step>, crate::engine::registry::ParamError> {
        let params: Params = parse_params(params)?;
        if params.checks.is_empty() {
            return Err("`checks` is empty".into());
        }
        let checks = params
            .checks
            .into_iter()
            .enumerate()
            .map(|(i, raw)| Check::from_raw(raw, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(VerifyStep { checks }))
    }
}

impl Step for VerifyStep {
    fn role(&self) -> Option<crate::engine::registry::Role> {
        Some(crate::engine::registry::Role::Verify)
    }

    fn uses_db_session(&self) -> bool {
        true
    }

    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let mut commands = Vec::new();
        let mut details = Vec::new();
        let psql = if cx.env.url.is_postgres() {
            "psql \"$DATABASE_URL\" -c"
        } else {
            "sqlite3 \"$DATABASE_FILE\""
        };
        for check in &self.checks {
            let label = &check.label;
            match &check.test {
                Test::Sql { sql, expect } => {
                    let expect = match expect {
                        Expect::Rows(n) => format!("{n} row(s)"),
                        Expect::Equals(v) => format!("the value {}", scalar_text(v)),
                        Expect::NoRows => "no rows".into(),
                    };
                    details.push(format!("{label}: expects {expect}"));
                    commands.push(format!("{psql} {}", shell_words::quote(sql)));
                }
                Test::Tables(tables) => {
                    details.push(format!("{label}: tables exist: {}", tables.join(", ")));
                }
                Test::StatusClean => {
                    details.push(format!("{label}: no pending, failed, modified or missing migration and no schema drift"));
                    commands.push(format!("dbflow migrate status --env {}", cx.env.name));
                }
                Test::Http(http) => {
                    let json = http
                        .json
                        .iter()
                        .map(|(k, v)| format!("{k} = {}", scalar_text(v)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    details.push(format!(
                        "{label}: GET {} answers {}{}",
                        http.url,
                        http.status,
                        if json.is_empty() {
                            String::new()
                        } else {
                            format!(" with {json}")
                        }
                    ));
                    // A URL still holding `${VAR}` (docs render without variables) is
                    // quoted so the shell expands it, as the run would.
                    let url = if http.url.contains("${") {
                        format!(
                            "\"{}\"",
                            http.url
                                .replace('\\', "\\\\")
                                .replace('"', "\\\"")
                                .replace('`', "\\`")
                        )
                    } else {
                        shell_words::quote(&http.url).into_owned()
                    };
                    commands.push(format!("curl -fsS {url}"));
                }
            }
        }
        Ok(StepDoc {
            summary: format!(
                "Verify ({} check{})",
                self.checks.len(),
                if self.checks.len() == 1 { "" } else { "s" }
            ),
            details: details.join("\n"),
            commands,
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let target = cx.target();
        let needs_db = self.checks.iter().any(|c| !matches!(c.test, Test::Http(_)));
        let mut conn = needs_db.then(|| cx.take_db().map_err(|e| e.message));
        // The folder is read (once per run) only when a check compares with it.
        let store = match self
            .checks
            .iter()
            .any(|c| matches!(c.test, Test::StatusClean))
        {
            true => Some(cx.store().map_err(|e| e.message)),
            false => None,
        };
        let results: Vec<(String, Result<String, String>)> = cx.runtime().block_on(async {
            let mut results = Vec::new();
            for check in &self.checks {
                let result = match (&check.test, conn.as_mut()) {
                    (Test::Http(http), _) => run_http(http).await,
                    (test, Some(Ok(conn))) => run_db_check(conn, test, &target, store.as_ref())
                        .await
                        .map_err(|e| e.to_string()),
                    (_, Some(Err(e))) => Err(e.clone()),
                    (_, None) => Err("no database connection".into()),
                };
                results.push((check.label.clone(), result));
            }
            results
        });
        if let Some(Ok(conn)) = conn {
            cx.session.give_back(conn);
        }
        let mut failed = Vec::new();
        let mut report = indexmap::IndexMap::new();
        for (label, result) in &results {
            match result {
                Ok(detail) => cx.ui.out(&format!("  ✔ {label}: {detail}")),
                Err(reason) => {
                    cx.ui.out(&format!("  ✘ {label}: {reason}"));
                    failed.push(format!("{label} ({reason})"));
                }
            }
            report.insert(
                label.clone(),
                CheckResult {
                    passed: result.is_ok(),
                    detail: result.clone().unwrap_or_else(|e| e),
                },
            );
        }
        cx.journal.log(Event::Verify { checks: report });
        if failed.is_empty() {
            Ok(Outcome::done().with("checks_passed", results.len()))
        } else {
            Err(StepError::failed(format!(
                "{} of {} checks failed: {}",
                failed.len(),
                results.len(),
                failed.join("; ")
            )))
        }
    }
}

fn scalar_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Why a database check did not pass: the database's error, or what it found instead.
#[derive(Debug, thiserror::Error)]
enum CheckError {
    /// The query or the connection failed.
    #[error("{0}")]
    Db(#[from] DbError),
    /// The check ran and found something else.
    #[error("{0}")]
    Failed(String),
}

async fn run_db_check(
    conn: &mut Conn,
    test: &Test,
    target: &Target,
    store: Option<&Result<std::sync::Arc<crate::db::store::Store>, String>>,
) -> Result<String, CheckError> {
    match test {
        Test::Sql { sql, expect } => {
            let values = conn.first_column(sql).await?;
            match expect {
                Expect::Rows(n) => {
                    if values.len() as u64 == *n {
                        Ok(format!("{n} row(s)"))
                    } else {
                        Err(CheckError::Failed(format!(
                            "expected {n} row(s), got {}",
                            values.len()
                        )))
                    }
                }
                Expect::NoRows => {
                    if values.is_empty() {
                        Ok("no rows".into())
                    } else {
                        Err(CheckError::Failed(format!(
                            "expected no rows, got {}",
                            values.len()
                        )))
                    }
                }
                Expect::Equals(expected) => {
                    let expected = scalar_text(expected);
                    match values.first() {
                        Some(Some(v)) if *v == expected => Ok(format!("= {v}")),
                        Some(Some(v)) => {
                            Err(CheckError::Failed(format!("expected {expected}, got {v}")))
                        }
                        Some(None) => {
                            Err(CheckError::Failed(format!("expected {expected}, got NULL")))
                        }
                        None => Err(CheckError::Failed(format!(
                            "expected {expected}, got no rows"
                        ))),
                    }
                }
            }
        }
        Test::Tables(tables) => {
            let mut missing = Vec::new();
            for table in tables {
                let exists = if conn.is_postgres() {
                    conn.string(&format!(
                        "SELECT (to_regclass({}) IS NOT NULL)::text",
                        quote_literal(&crate::db::conn::quote_ident(table))
                    ))
                    .await?
                    .as_deref()
                        == Some("true")
                } else {
                    conn.table_exists(table).await?
                };
                if !exists {
                    missing.push(table.as_str());
                }
            }
            if missing.is_empty() {
                Ok(format!("{} table(s) present", tables.len()))
            } else {
                Err(CheckError::Failed(format!(
                    "missing: {}",
                    missing.join(", ")
                )))
            }
        }
        Test::StatusClean => {
            let store = store
                .ok_or_else(|| CheckError::Failed("the migrations folder was not read".into()))?
                .as_ref()
                .map_err(|e| CheckError::Failed(e.clone()))?;
            let status = migrate::status(conn, store, &target.table).await?;
            let problems = status.problems_in(&Category::ALL);
            if problems.is_empty() {
                Ok("clean".into())
            } else {
                Err(CheckError::Failed(problems.join("; ")))
            }
        }
        Test::Http(_) => Err(CheckError::Failed("an HTTP check needs no database".into())),
    }
}

async fn run_http(http: &HttpCheck) -> Result<String, String> {
    let http = http.clone();
    // ureq is blocking: keep it off the async workers.
    tokio::task::spawn_blocking(move || http_blocking(&http))
        .await
        .map_err(|e| e.to_string())?
}

fn http_blocking(http: &HttpCheck) -> Result<String, String> {
    let (timeout, delay) = (http.timeout, http.retry_delay);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut last = String::new();
    for attempt in 0..=http.retries {
        if attempt > 0 {
            std::thread::sleep(delay);
        }
        match check_once(&agent, http) {
            Ok(detail) => {
                return Ok(if attempt > 0 {
                    format!(
                        "{detail} (after {attempt} retr{})",
                        if attempt == 1 { "y" } else { "ies" }
                    )
                } else {
                    detail
                })
            }
            Err(e) => last = e,
        }
    }
    Err(if http.retries > 0 {
        format!("{last} (after {} attempts)", http.retries + 1)
    } else {
        last
    })
}

fn check_once(agent: &ureq::Agent, http: &HttpCheck) -> Result<String, String> {
    let mut response = agent
        .get(&http.url)
        .call()
        .map_err(|e| format!("GET {}: {e}", http.url))?;
    let status = response.status().as_u16();
    if status != http.status {
        return Err(format!(
            "GET {} answered {status}, expected {}",
            http.url, http.status
        ));
    }
    if http.json.is_empty() {
        return Ok(format!("{status}"));
    }
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("reading the body: {e}"))?;
    let doc: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("body is not JSON: {e}"))?;
    for (key, expected) in &http.json {
        let actual = key.split('.').try_fold(&doc, |v, part| v.get(part));
        match actual {
            Some(v) if scalar_text(v) == scalar_text(expected) => {}
            Some(v) => {
                return Err(format!(
                    "{key} is {}, expected {}",
                    scalar_text(v),
                    scalar_text(expected)
                ))
            }
            None => return Err(format!("{key} missing from the body")),
        }
    }
    Ok(format!(
        "{status} with {}",
        http.json
            .iter()
            .map(|(k, v)| format!("{k} = {}", scalar_text(v)))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: serde_json::Value) -> Result<Check, String> {
        let raw: RawCheck = serde_json::from_value(yaml).unwrap();
        Check::from_raw(raw, 1)
    }

    #[test]
    fn each_kind_of_check_is_read_into_its_variant() {
        let c =
            check(serde_json::json!({ "name": "n", "sql": "SELECT 1", "expect_rows": 1 })).unwrap();
        assert_eq!(c.label, "n");
        assert!(matches!(
            c.test,
            Test::Sql {
                expect: Expect::Rows(1),
                ..
            }
        ));
        let c = check(serde_json::json!({ "sql": "SELECT 1", "equals": 1 })).unwrap();
        assert_eq!(c.label, "check 2");
        assert!(matches!(
            c.test,
            Test::Sql {
                expect: Expect::Equals(_),
                ..
            }
        ));
        let c = check(serde_json::json!({ "sql": "SELECT 1", "no_rows": true })).unwrap();
        assert!(matches!(
            c.test,
            Test::Sql {
                expect: Expect::NoRows,
                ..
            }
        ));
        let c = check(serde_json::json!({ "tables": ["User"] })).unwrap();
        assert!(matches!(c.test, Test::Tables(ref t) if t == &["User"]));
        let c = check(serde_json::json!({ "status_clean": true })).unwrap();
        assert!(matches!(c.test, Test::StatusClean));
        let c =
            check(serde_json::json!({ "http": { "url": "http://x/", "timeout": "3s" } })).unwrap();
        let Test::Http(http) = c.test else {
            panic!("http");
        };
        assert_eq!(
            (http.status, http.timeout, http.retry_delay),
            (200, Duration::from_secs(3), Duration::from_secs(2))
        );
    }

    #[test]
    fn wrong_combinations_are_refused_with_the_same_words_as_before() {
        let err = |v| check(v).unwrap_err();
        assert_eq!(
            err(serde_json::json!({ "name": "x", "sql": "SELECT 1", "tables": ["A"] })),
            "check `x` must have exactly one of `sql`, `tables`, `status_clean`, `http` (it has 2)"
        );
        assert_eq!(
            err(serde_json::json!({})),
            "check `check 2` must have exactly one of `sql`, `tables`, `status_clean`, `http` (it has 0)"
        );
        assert_eq!(
            err(serde_json::json!({ "sql": "SELECT 1" })),
            "check `check 2`: an `sql` check needs exactly one of `expect_rows`, `equals`, `no_rows`"
        );
        assert_eq!(
            err(serde_json::json!({ "sql": "SELECT 1", "expect_rows": 1, "no_rows": true })),
            "check `check 2`: an `sql` check needs exactly one of `expect_rows`, `equals`, `no_rows`"
        );
        assert_eq!(
            err(serde_json::json!({ "tables": ["A"], "expect_rows": 1 })),
            "check `check 2`: `expect_rows`, `equals` and `no_rows` go with `sql`"
        );
        assert!(
            err(serde_json::json!({ "http": { "url": "u", "retry_delay": "soon" } }))
                .starts_with("check `check 2`: invalid duration `soon`: "),
        );
    }
}
