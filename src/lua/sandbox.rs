//! A restricted Lua 5.4 state: no process spawning, no files outside the project, no
//! binary chunks, no `debug`, `require` only from scripts-lua; a memory limit and an
//! instruction/time budget per call. Everything external goes through the host API.

use mlua::{HookTriggers, Lua, LuaOptions, StdLib, VmState};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Limits applied to every call into Lua.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes the whole Lua state may allocate.
    pub memory: usize,
    /// VM instructions one call may execute.
    pub instructions: u64,
    /// Wall-clock time one call may take (sleeps and `exec` included).
    pub wall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 64 * 1024 * 1024,
            instructions: 200_000_000,
            // Provider `wait` loops poll cloud APIs for a long time.
            wall: Duration::from_secs(2 * 3600),
        }
    }
}

/// The budget of the call in progress (app data of the state).
#[derive(Debug, Clone)]
pub struct Budget {
    used: u64,
    max: u64,
    deadline: Instant,
    wall: Duration,
    /// Set when a C call outlived the deadline.
    out_of_time: bool,
}

impl Budget {
    /// When the current call must end.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Marks the budget spent: every further check fails (a C function that ran out
    /// of time cannot be resumed from).
    pub fn spend(&mut self) {
        self.out_of_time = true;
    }

    /// The limit error, once the instruction or time budget is spent.
    fn exceeded(&self) -> Option<mlua::Error> {
        if self.used > self.max {
            return Some(mlua::Error::runtime(format!(
                "instruction limit exceeded ({} VM instructions in one call): an endless loop?",
                self.max
            )));
        }
        if self.out_of_time || Instant::now() > self.deadline {
            return Some(mlua::Error::runtime(format!(
                "time limit exceeded ({} for one call)",
                humantime::format_duration(self.wall)
            )));
        }
        None
    }

    /// A fresh budget for one call.
    pub fn new(limits: &Limits) -> Self {
        Budget {
            used: 0,
            max: limits.instructions,
            deadline: Instant::now() + limits.wall,
            wall: limits.wall,
            out_of_time: false,
        }
    }
}

const HOOK_EVERY: u32 = 10_000;

/// Lua code run once, trusted, to take the dangerous parts of the standard library away.
/// Functions are replaced by ones that fail with a message saying what to use instead,
/// rather than removed, so a script gets a clear error, not "attempt to call a nil value".
const PRELUDE: &str = r#"
-- Limits pcall cannot swallow: once the budget is spent, every protected call re-raises
-- the limit error as soon as it returns, so no loop can go on catching it.
local spent = __dbflow_spent
__dbflow_spent = nil
local function after(...)
  spent()
  return ...
end
local real_pcall, real_xpcall = pcall, xpcall
pcall = function(...) return after(real_pcall(...)) end
xpcall = function(...) return after(real_xpcall(...)) end
local co_resume, co_close = coroutine.resume, coroutine.close
coroutine.resume = function(...) return after(co_resume(...)) end
coroutine.close = function(...) return after(co_close(...)) end
local function forbid(name, instead)
  return function() error(name .. " is not allowed in dbflow scripts" .. (instead and ("; use " .. instead) or ""), 2) end
end
local allowed = __dbflow_path_allowed
local real_open = io.open
io.open = function(path, mode)
  local ok, why = allowed(path)
  if not ok then error(why, 2) end
  return real_open(path, mode)
end
io.popen = forbid("io.popen", "dbflow.exec{...}")
io.lines = forbid("io.lines", "io.open(path):lines()")
io.input = forbid("io.input")
io.output = forbid("io.output")
io.tmpfile = forbid("io.tmpfile")
os.execute = forbid("os.execute", "dbflow.exec{...}")
os.remove = forbid("os.remove")
os.rename = forbid("os.rename")
os.exit = forbid("os.exit", "error(...)")
os.tmpname = forbid("os.tmpname")
os.getenv = forbid("os.getenv", "dbflow.env(name)")
os.setlocale = forbid("os.setlocale")
string.dump = forbid("string.dump")
dofile = forbid("dofile", "require")
loadfile = forbid("loadfile", "require")
local real_load = load
load = function(chunk, name, mode, env)
  if mode ~= nil and mode ~= "t" then error("binary chunks are not allowed in dbflow scripts", 2) end
  return real_load(chunk, name, "t", env)
end
package.cpath = ""
package.loadlib = forbid("package.loadlib")
package.searchers[3] = nil
package.searchers[4] = nil
package.path = __dbflow_package_path
__dbflow_path_allowed = nil
__dbflow_package_path = nil
"#;

/// True when `path` (relative paths are taken from the project root) stays inside `root`.
fn inside(root: &Path, path: &str) -> bool {
    let candidate = if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        root.join(path)
    };
    let resolved = candidate.canonicalize().or_else(|_| {
        // A file about to be created: its folder must be inside.
        candidate
            .parent()
            .map(|p| {
                p.canonicalize()
                    .map(|dir| dir.join(candidate.file_name().unwrap_or_default()))
            })
            .unwrap_or_else(|| Err(std::io::Error::other("no parent")))
    });
    match (resolved, root.canonicalize()) {
        (Ok(resolved), Ok(root)) => resolved.starts_with(root),
        _ => false,
    }
}

/// Creates the sandboxed state for a project rooted at `root`, with modules from `scripts`.
pub fn new_state(root: &Path, scripts: &Path, limits: &Limits) -> mlua::Result<Lua> {
    let libs = StdLib::COROUTINE
        | StdLib::TABLE
        | StdLib::IO
        | StdLib::OS
        | StdLib::STRING
        | StdLib::UTF8
        | StdLib::MATH
        | StdLib::PACKAGE;
    let lua = Lua::new_with(libs, LuaOptions::new())?;
    let root_owned = root.to_path_buf();
    let allowed = lua.create_function(move |_, path: String| {
        Ok(if inside(&root_owned, &path) {
            (true, None)
        } else {
            (false, Some(format!("io.open(\"{path}\") is not allowed: dbflow scripts may only open files inside the project folder")))
        })
    })?;
    lua.globals().set("__dbflow_path_allowed", allowed)?;
    let scripts_abs = if scripts.is_absolute() {
        scripts.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(scripts)
    };
    lua.globals().set(
        "__dbflow_package_path",
        format!("{}/?.lua", scripts_abs.display()),
    )?;
    lua.globals().set(
        "__dbflow_spent",
        lua.create_function(|lua, ()| {
            match lua.app_data_ref::<Budget>().and_then(|b| b.exceeded()) {
                Some(error) => Err(error),
                None => Ok(()),
            }
        })?,
    )?;
    super::patterns::install(&lua)?;
    lua.load(PRELUDE).set_name("=dbflow-sandbox").exec()?;
    lua.load(super::patterns::PRELUDE)
        .set_name("=dbflow-patterns")
        .exec()?;
    lua.set_memory_limit(limits.memory)?;
    lua.set_app_data(Budget::new(limits));
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        |lua, _debug| {
            let mut budget = lua
                .app_data_mut::<Budget>()
                .ok_or_else(|| mlua::Error::runtime("no budget"))?;
            budget.used = budget.used.saturating_add(u64::from(HOOK_EVERY));
            match budget.exceeded() {
                Some(error) => Err(error),
                None => Ok(VmState::Continue),
            }
        },
    )?;
    Ok(lua)
}

/// Starts a new budget for the next call.
pub fn reset_budget(lua: &Lua, limits: &Limits) {
    lua.set_app_data(Budget::new(limits));
}
