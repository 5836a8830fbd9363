//! The host API scripts see as the global table `dbflow`: `exec`, `log`, `json`, `env`,
//! `sleep`, `sql`, plus the `ctx` table handed to every call. Every external action is
//! shown (redacted) and journaled.

use super::sandbox::Budget;
use crate::config::ResolvedEnv;
use crate::ui::Ui;
use mlua::{Lua, LuaSerdeExt, Table, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one call into Lua may see and do; set as app data before the call.
#[derive(Clone)]
pub struct CallContext {
    /// Output.
    pub ui: Ui,
    /// The run's environment (absent for `describe`).
    pub env: Option<ResolvedEnv>,
    /// The run id ("" outside runs).
    pub run_id: String,
    /// Outputs of earlier steps.
    pub outputs: serde_json::Value,
    /// Project root: commands run there.
    pub root: PathBuf,
    /// `lua.allow_shell` from the Workflowfile, or `allow_shell = true` declared by the
    /// step or provider script: `dbflow.exec` may run a shell.
    pub allow_shell: bool,
    /// The guard: rules on every command and statement before it runs. `None` outside a
    /// run, where nothing may run.
    pub gate: Option<Arc<dyn Gate>>,
    /// Whether `dbflow.sql` may write (declared by the step or provider).
    pub writes: bool,
    /// Journal events collected during the call, written by the caller afterwards.
    pub events: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    /// The script, for messages.
    pub script: String,
    /// Variables every command gets (DATABASE_URL, DBFLOW_ENV, …).
    pub base_env: Vec<(String, String)>,
}

/// The gate is the guard's trait (a type-only, downward edge: the Lua host calls it,
/// the guard implements it); re-exported here for the host's callers.
pub use crate::guard::gate::{Gate, GateEvent};

impl CallContext {
    fn event(&self, name: &str, value: serde_json::Value) {
        if let Ok(mut events) = self.events.lock() {
            events.push((name.to_string(), value));
        }
    }
}

fn call(lua: &Lua) -> mlua::Result<CallContext> {
    lua.app_data_ref::<CallContext>()
        .map(|c| c.clone())
        .ok_or_else(|| mlua::Error::runtime("dbflow host API used outside a call"))
}

fn remaining(lua: &Lua) -> Option<Duration> {
    lua.app_data_ref::<Budget>().map(|b| b.remaining())
}

impl Budget {
    /// Wall time left for the current call.
    pub fn remaining(&self) -> Duration {
        self.deadline().saturating_duration_since(Instant::now())
    }
}

/// Installs the `dbflow` global.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let dbflow = lua.create_table()?;
    dbflow.set("exec", lua.create_async_function(exec)?)?;
    dbflow.set("sleep", lua.create_async_function(sleep)?)?;
    dbflow.set("sql", lua.create_async_function(sql)?)?;
    dbflow.set(
        "env",
        lua.create_function(|_, name: String| Ok(std::env::var(&name).ok()))?,
    )?;
    let log = lua.create_table()?;
    for level in ["info", "warn", "error"] {
        log.set(
            level,
            lua.create_function(move |lua, message: String| {
                let cx = call(lua)?;
                match level {
                    "warn" => cx.ui.warn(&message),
                    "error" => cx.ui.error(&message),
                    _ => cx.ui.out(&format!("  [{}] {message}", cx.script)),
                }
                cx.event(
                    "lua_log",
                    serde_json::json!({ "level": level, "message": message, "script": cx.script }),
                );
                Ok(())
            })?,
        )?;
    }
    dbflow.set("log", log)?;
    let json = lua.create_table()?;
    json.set(
        "encode",
        lua.create_function(|lua, value: Value| {
            let value: serde_json::Value = lua.from_value(value)?;
            serde_json::to_string(&value).map_err(mlua::Error::external)
        })?,
    )?;
    json.set(
        "decode",
        lua.create_function(|lua, text: String| {
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                mlua::Error::runtime(format!("dbflow.json.decode: invalid JSON: {e}"))
            })?;
            lua.to_value(&value)
        })?,
    )?;
    dbflow.set("json", json)?;
    lua.globals().set("dbflow", dbflow)?;
    Ok(())
}

/// The `ctx` table of a call.
pub fn ctx_table(lua: &Lua, cx: &CallContext) -> mlua::Result<Table> {
    let ctx = lua.create_table()?;
    ctx.set("run_id", cx.run_id.clone())?;
    ctx.set("outputs", lua.to_value(&cx.outputs)?)?;
    if let Some(env) = &cx.env {
        ctx.set("env", env.name.clone())?;
        ctx.set("protection", env.protection.as_str())?;
        ctx.set("provider", env.provider.clone())?;
        ctx.set("url", env.url.redacted())?;
        ctx.set("database", env.url.database_name())?;
        ctx.set("vars", lua.to_value(&env.vars)?)?;
        let raw = env.direct_url.clone().unwrap_or_else(|| env.url.clone());
        let events = cx.clone();
        ctx.set(
            "raw_url",
            lua.create_function(move |_, ()| {
                // The one way to the password: explicit, and journaled.
                events.event(
                    "lua_raw_url",
                    serde_json::json!({ "script": events.script, "url": raw.redacted() }),
                );
                Ok(raw.expose().to_string())
            })?,
        )?;
    }
    Ok(ctx)
}

async fn sleep(lua: Lua, seconds: f64) -> mlua::Result<()> {
    let wanted = Duration::from_secs_f64(seconds.max(0.0));
    if let Some(left) = remaining(&lua) {
        if wanted > left {
            return Err(mlua::Error::runtime("time limit exceeded while sleeping"));
        }
    }
    tokio::time::sleep(wanted).await;
    Ok(())
}

/// `dbflow.exec{ "aws", "rds", "describe-db-snapshots", env = {…}, timeout = 60, shell = false }`
async fn exec(lua: Lua, spec: Table) -> mlua::Result<Table> {
    let cx = call(&lua)?;
    let args: Vec<String> = spec
        .sequence_values::<String>()
        .collect::<mlua::Result<_>>()?;
    if args.is_empty() {
        return Err(mlua::Error::runtime(
            "dbflow.exec needs a command: dbflow.exec{\"aws\", \"rds\", …}",
        ));
    }
    let shell: bool = spec.get::<Option<bool>>("shell")?.unwrap_or(false);
    if shell && !cx.allow_shell {
        return Err(mlua::Error::runtime(
            "dbflow.exec{shell=true} is not allowed: pass the arguments as a list, or declare `allow_shell = true` in the step's script (or `lua: { allow_shell: true }` in the Workflowfile)",
        ));
    }
    if !cx.allow_shell {
        if let Some(why) = super::shell::runs_shell(&args) {
            return Err(mlua::Error::runtime(format!(
                "dbflow.exec{{{}}} is not allowed: {why}, which hides the command from dbflow's guard; run the program itself with its arguments as a list, or declare `allow_shell = true` in the step's script (or `lua: {{ allow_shell: true }}` in the Workflowfile)",
                shell_words::join(&args)
            )));
        }
    }
    let mut env = cx.base_env.clone();
    if let Some(extra) = spec.get::<Option<Table>>("env")? {
        for pair in extra.pairs::<String, String>() {
            let (k, v) = pair?;
            if crate::redact::is_secret_name(&k) {
                crate::redact::register_secret(&v);
            }
            env.push((k, v));
        }
    }
    let limit = spec
        .get::<Option<f64>>("timeout")?
        .map(Duration::from_secs_f64)
        .or_else(|| remaining(&lua))
        .unwrap_or(Duration::from_secs(3600));
    let shown = shell_words::join(&args);
    let line = if shell { args.join(" ") } else { shown.clone() };
    let gate = cx.gate.clone().ok_or_else(|| {
        mlua::Error::runtime("dbflow.exec is only available while a workflow runs")
    })?;
    let (events, verdict) = gate.command(&line, &env);
    for (name, fields) in events {
        cx.event(&name, fields);
    }
    if let Err(message) = verdict {
        cx.event(
            "lua_exec_refused",
            serde_json::json!({ "script": cx.script, "command": shown, "reason": message }),
        );
        return Err(mlua::Error::runtime(format!(
            "dbflow.exec{{{shown}}} refused: {message}"
        )));
    }
    cx.ui.out(&format!("  [{}] $ {shown}", cx.script));
    let started = Instant::now();
    let root = cx.root.clone();
    let argv = args.clone();
    let result =
        tokio::task::spawn_blocking(move || run_captured(&argv, shell, &env, &root, limit))
            .await
            .map_err(mlua::Error::external)?;
    let (code, stdout, stderr, timed_out) =
        result.map_err(|e| mlua::Error::runtime(format!("cannot run `{}`: {e}", args[0])))?;
    cx.event(
        "lua_exec",
        serde_json::json!({ "script": cx.script, "command": shown, "exit_code": code, "timed_out": timed_out, "duration_ms": started.elapsed().as_millis() as u64 }),
    );
    let out = lua.create_table()?;
    out.set("code", code)?;
    out.set("stdout", stdout)?;
    out.set("stderr", stderr)?;
    out.set("timed_out", timed_out)?;
    Ok(out)
}

fn run_captured(
    args: &[String],
    shell: bool,
    env: &[(String, String)],
    root: &std::path::Path,
    limit: Duration,
) -> std::io::Result<(i32, String, String, bool)> {
    let mut expr = if shell {
        duct::cmd("sh", ["-c", args.join(" ").as_str()])
    } else {
        duct::cmd(&args[0], &args[1..])
    };
    expr = expr
        .dir(root)
        .stdout_capture()
        .stderr_capture()
        .stdin_null()
        .unchecked();
    for (k, v) in env {
        expr = expr.env(k, v);
    }
    let handle = expr.start()?;
    let started = Instant::now();
    loop {
        if let Some(output) = handle.try_wait()? {
            return Ok((
                crate::runner::exec::exit_code(&output.status),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
                false,
            ));
        }
        if started.elapsed() > limit {
            let _ = handle.kill();
            return Ok((
                124,
                String::new(),
                format!("killed after {}", humantime::format_duration(limit)),
                true,
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `dbflow.sql(query, {params…})` against the current environment's database; read-only
/// unless the step or provider declared `writes = true`.
async fn sql(lua: Lua, (query, params): (String, Option<Table>)) -> mlua::Result<Value> {
    let cx = call(&lua)?;
    let env = cx.env.clone().ok_or_else(|| {
        mlua::Error::runtime("dbflow.sql is only available while a workflow runs")
    })?;
    let params: Vec<serde_json::Value> = match params {
        Some(t) => t
            .sequence_values::<Value>()
            .map(|v| v.and_then(|v| lua.from_value(v)))
            .collect::<mlua::Result<_>>()?,
        None => Vec::new(),
    };
    let url = env.direct_url.clone().unwrap_or_else(|| env.url.clone());
    let gate = cx.gate.clone().ok_or_else(|| {
        mlua::Error::runtime("dbflow.sql is only available while a workflow runs")
    })?;
    let refuse = |reason: String| {
        cx.event(
            "lua_sql_refused",
            serde_json::json!({ "script": cx.script, "query": query, "reason": reason }),
        );
        mlua::Error::runtime(format!("dbflow.sql refused: {reason}"))
    };
    let (events, verdict) = gate.sql(&query);
    for (name, fields) in events {
        cx.event(&name, fields);
    }
    verdict.map_err(&refuse)?;
    let postgres = url.is_postgres();
    if !cx.writes && postgres {
        if let Some(reason) = super::read_only::refusal(&query) {
            return Err(refuse(format!(
                "{reason} (the step is read-only: declare `writes = true` in its script to write)"
            )));
        }
    }
    let mut conn = crate::db::Conn::connect(&url)
        .await
        .map_err(|e| mlua::Error::runtime(format!("dbflow.sql: {e}")))?;
    if !cx.writes {
        // A read-only step's statement runs inside a READ ONLY transaction that is
        // rolled back, whatever the statement is.
        let guard = if postgres {
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; BEGIN TRANSACTION READ ONLY"
        } else {
            "PRAGMA query_only = ON"
        };
        if let Err(e) = conn.batch(guard).await {
            conn.close().await;
            return Err(mlua::Error::runtime(format!("dbflow.sql: {e}")));
        }
    }
    let rows = conn.query_json(&query, &params).await;
    if !cx.writes && postgres {
        let _ = conn.batch("ROLLBACK").await;
    }
    conn.close().await;
    cx.event("lua_sql", serde_json::json!({ "script": cx.script, "query": query, "writes": cx.writes, "ok": rows.is_ok() }));
    let rows = rows.map_err(|e| mlua::Error::runtime(format!("dbflow.sql: {e}")))?;
    lua.to_value(&rows)
}
