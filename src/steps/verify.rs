//! `verify`: named checks after a deploy — SQL expectations, expected tables, a clean
//! migration status, HTTP health. Every check runs and all are reported together; the
//! step fails if any failed.

use crate::config::Diagnostic;
use crate::db::conn::{quote_literal, Conn};
use crate::db::migrate;
use crate::db::target::Target;
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use serde::Deserialize;
use std::time::Duration;

/// The `verify` step kind.
pub struct VerifyKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    checks: Vec<Check>,
}

/// One check as written. Exactly one of `sql`, `tables`, `status_clean`, `http`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Check {
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
    status_clean: Option<bool>,
    http: Option<HttpCheck>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct HttpCheck {
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

/// A configured `verify` step.
#[derive(Debug)]
pub struct VerifyStep {
    checks: Vec<Check>,
}

impl Check {
    fn label(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("check {}", index + 1))
    }

    fn validate(&self, index: usize) -> Result<(), String> {
        let kinds = [
            self.sql.is_some(),
            self.tables.is_some(),
            self.status_clean.is_some(),
            self.http.is_some(),
        ];
        let count = kinds.iter().filter(|k| **k).count();
        let label = self.label(index);
        if count != 1 {
            return Err(format!(
                "check `{label}` must have exactly one of `sql`, `tables`, `status_clean`, `http` (it has {count})"
            ));
        }
        if self.sql.is_some() {
            let expectations = [
                self.expect_rows.is_some(),
                self.equals.is_some(),
                self.no_rows,
            ]
            .iter()
            .filter(|e| **e)
            .count();
            if expectations != 1 {
                return Err(format!("check `{label}`: an `sql` check needs exactly one of `expect_rows`, `equals`, `no_rows`"));
            }
        } else if self.expect_rows.is_some() || self.equals.is_some() || self.no_rows {
            return Err(format!(
                "check `{label}`: `expect_rows`, `equals` and `no_rows` go with `sql`"
            ));
        }
        if let Some(http) = &self.http {
            for d in [&http.timeout, &http.retry_delay].into_iter().flatten() {
                humantime::parse_duration(d)
                    .map_err(|e| format!("check `{label}`: invalid duration `{d}`: {e}"))?;
            }
        }
        Ok(())
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
        for (i, check) in params.checks.iter().enumerate() {
            check.validate(i)?;
        }
        Ok(Box::new(VerifyStep {
            checks: params.checks,
        }))
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
        for (i, check) in self.checks.iter().enumerate() {
            let label = check.label(i);
            if let Some(sql) = &check.sql {
                let expect = if let Some(n) = check.expect_rows {
                    format!("{n} row(s)")
                } else if let Some(v) = &check.equals {
                    format!("the value {}", scalar_text(v))
                } else {
                    "no rows".into()
                };
                details.push(format!("{label}: expects {expect}"));
                commands.push(format!("{psql} {}", shell_words::quote(sql)));
            } else if let Some(tables) = &check.tables {
                details.push(format!("{label}: tables exist: {}", tables.join(", ")));
            } else if check.status_clean.is_some() {
                details.push(format!("{label}: no pending, failed, modified or missing migration and no schema drift"));
                commands.push(format!("dbflow migrate status --env {}", cx.env.name));
            } else if let Some(http) = &check.http {
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
        let needs_db = self.checks.iter().any(|c| c.http.is_none());
        let mut conn = needs_db.then(|| cx.take_db().map_err(|e| e.message));
        // The folder is read (once per run) only when a check compares with it.
        let store = match self.checks.iter().any(|c| c.status_clean.is_some()) {
            true => Some(cx.store().map_err(|e| e.message)),
            false => None,
        };
        let results: Vec<(String, Result<String, String>)> = cx.runtime().block_on(async {
            let mut results = Vec::new();
            for (i, check) in self.checks.iter().enumerate() {
                let result = match conn.as_mut() {
                    _ if check.http.is_some() => {
                        run_http(check.http.as_ref().expect("checked")).await
                    }
                    Some(Ok(conn)) => run_db_check(conn, check, &target, store.as_ref()).await,
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("no database connection".into()),
                };
                results.push((check.label(i), result));
            }
            results
        });
        if let Some(Ok(conn)) = conn {
            cx.session.give_back(conn);
        }
        let mut failed = Vec::new();
        let mut report = serde_json::Map::new();
        for (label, result) in &results {
            match result {
                Ok(detail) => cx.ui.out(&format!("  ✔ {label}: {detail}")),
                Err(reason) => {
                    cx.ui.out(&format!("  ✘ {label}: {reason}"));
                    failed.push(format!("{label} ({reason})"));
                }
            }
            report.insert(label.clone(), serde_json::json!({ "passed": result.is_ok(), "detail": result.clone().unwrap_or_else(|e| e) }));
        }
        cx.journal
            .record("verify", serde_json::json!({ "checks": report }));
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

async fn run_db_check(
    conn: &mut Conn,
    check: &Check,
    target: &Target,
    store: Option<&Result<std::sync::Arc<crate::db::store::Store>, String>>,
) -> Result<String, String> {
    if let Some(sql) = &check.sql {
        let values = conn.first_column(sql).await.map_err(|e| e.to_string())?;
        if let Some(n) = check.expect_rows {
            return if values.len() as u64 == n {
                Ok(format!("{n} row(s)"))
            } else {
                Err(format!("expected {n} row(s), got {}", values.len()))
            };
        }
        if check.no_rows {
            return if values.is_empty() {
                Ok("no rows".into())
            } else {
                Err(format!("expected no rows, got {}", values.len()))
            };
        }
        let expected = scalar_text(check.equals.as_ref().expect("validated"));
        return match values.first() {
            Some(Some(v)) if *v == expected => Ok(format!("= {v}")),
            Some(Some(v)) => Err(format!("expected {expected}, got {v}")),
            Some(None) => Err(format!("expected {expected}, got NULL")),
            None => Err(format!("expected {expected}, got no rows")),
        };
    }
    if let Some(tables) = &check.tables {
        let mut missing = Vec::new();
        for table in tables {
            let exists = if conn.is_postgres() {
                conn.string(&format!(
                    "SELECT (to_regclass({}) IS NOT NULL)::text",
                    quote_literal(&crate::db::conn::quote_ident(table))
                ))
                .await
                .map_err(|e| e.to_string())?
                .as_deref()
                    == Some("true")
            } else {
                conn.table_exists(table).await.map_err(|e| e.to_string())?
            };
            if !exists {
                missing.push(table.as_str());
            }
        }
        return if missing.is_empty() {
            Ok(format!("{} table(s) present", tables.len()))
        } else {
            Err(format!("missing: {}", missing.join(", ")))
        };
    }
    if check.status_clean.is_some() {
        let store = store
            .ok_or("the migrations folder was not read")?
            .as_ref()
            .map_err(Clone::clone)?;
        let status = migrate::status(conn, store, &target.table)
            .await
            .map_err(|e| e.to_string())?;
        let all: Vec<String> = migrate::ALL_CATEGORIES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let problems = status.problems(&all);
        return if problems.is_empty() {
            Ok("clean".into())
        } else {
            Err(problems.join("; "))
        };
    }
    Err("unknown check".into())
}

async fn run_http(http: &HttpCheck) -> Result<String, String> {
    let http = http.clone();
    // ureq is blocking: keep it off the async workers.
    tokio::task::spawn_blocking(move || http_blocking(&http))
        .await
        .map_err(|e| e.to_string())?
}

fn http_blocking(http: &HttpCheck) -> Result<String, String> {
    let timeout = http
        .timeout
        .as_deref()
        .and_then(|t| humantime::parse_duration(t).ok())
        .unwrap_or(Duration::from_secs(10));
    let delay = http
        .retry_delay
        .as_deref()
        .and_then(|t| humantime::parse_duration(t).ok())
        .unwrap_or(Duration::from_secs(2));
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
