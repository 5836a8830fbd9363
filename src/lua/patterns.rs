//! Lua's string patterns under the sandbox's wall-clock limit.
//!
//! `string.find`, `match`, `gmatch` and `gsub` are C functions: the instruction hook
//! never fires inside them, and a backtracking pattern (`(.-)(.-)(.-)x` on a long
//! subject) can run for hours. What was chosen: a call whose worst case is small (a plain
//! search, a pattern without magic characters, or subject length^(backtracking items+1)
//! under [`CHEAP_STEPS`]) runs in place; any other `find`/`match` runs in a throw-away
//! Lua state on a worker thread, and the script waits for it only as long as its call's
//! time budget allows. Past that the call fails with the time-limit error (and the budget
//! counts as spent, so `pcall` cannot swallow it); the worker is abandoned and ends with
//! the process. `gmatch` and `gsub` are rebuilt (in the sandbox prelude) on the guarded
//! `find`, with Lua 5.4's semantics.

use super::sandbox::Budget;
use mlua::{Lua, Value};
use std::time::Duration;

/// Worst-case pattern steps a call may take in place (about 10 ms of C).
pub const CHEAP_STEPS: f64 = 1e7;

/// The worst-case number of matching steps of `pattern` on a subject of `len` bytes:
/// each backtracking item (`*`, `+`, `-`, `%b`) may try every position for every
/// position of the item before it, and a search tries every start.
fn worst_case(len: usize, pattern: &[u8]) -> f64 {
    let mut items = 0i32;
    let mut i = 0;
    let mut in_set = false;
    while i < pattern.len() {
        let c = pattern[i];
        match c {
            b'%' => {
                if !in_set && pattern.get(i + 1) == Some(&b'b') {
                    items += 1;
                }
                i += 2;
                continue;
            }
            b'[' if !in_set => in_set = true,
            b']' if in_set => in_set = false,
            b'*' | b'+' | b'-' if !in_set => items += 1,
            _ => {}
        }
        i += 1;
    }
    let n = (len as f64) + 1.0;
    let starts = if pattern.first() == Some(&b'^') {
        1.0
    } else {
        n
    };
    starts * n.powi(items)
}

/// Whether `pattern` has characters with a meaning in Lua patterns.
fn has_magic(pattern: &[u8]) -> bool {
    pattern.iter().any(|c| b"^$*+?.([%-".contains(c))
}

/// One result of `find`/`match`, carried between Lua states.
enum Out {
    Nil,
    Int(i64),
    Str(Vec<u8>),
}

/// Installs `__dbflow_pattern_cheap(s, p, plain)` and
/// `__dbflow_pattern_offload(kind, s, p, init, plain)` for the prelude.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    lua.globals().set(
        "__dbflow_pattern_cheap",
        lua.create_function(
            |_, (s, p, plain): (mlua::LuaString, mlua::LuaString, Option<bool>)| {
                let p = p.as_bytes();
                Ok(plain.unwrap_or(false)
                    || !has_magic(&p)
                    || worst_case(s.as_bytes().len(), &p) <= CHEAP_STEPS)
            },
        )?,
    )?;
    lua.globals().set(
        "__dbflow_pattern_offload",
        lua.create_function(
            |lua,
             (kind, s, p, init, plain): (
                String,
                mlua::LuaString,
                mlua::LuaString,
                Option<i64>,
                Option<bool>,
            )| {
                let subject = s.as_bytes().to_vec();
                let pattern = p.as_bytes().to_vec();
                let left = lua
                    .app_data_ref::<Budget>()
                    .map(|b| b.remaining())
                    .unwrap_or(Duration::from_secs(3600));
                let len = subject.len();
                let (tx, rx) = std::sync::mpsc::channel();
                let name = kind.clone();
                std::thread::spawn(move || {
                    let _ = tx.send(run_isolated(&name, subject, pattern, init, plain));
                });
                match rx.recv_timeout(left) {
                    Ok(Ok(values)) => {
                        let mut out = Vec::with_capacity(values.len());
                        for v in values {
                            out.push(match v {
                                Out::Nil => Value::Nil,
                                Out::Int(i) => Value::Integer(i),
                                Out::Str(b) => Value::String(lua.create_string(&b)?),
                            });
                        }
                        Ok(mlua::MultiValue::from_vec(out))
                    }
                    Ok(Err(message)) => Err(mlua::Error::runtime(message)),
                    Err(_) => {
                        if let Some(mut budget) = lua.app_data_mut::<Budget>() {
                            budget.spend();
                        }
                        Err(mlua::Error::runtime(format!(
                            "time limit exceeded: string.{kind} on a {len}-byte subject did not finish in time (a backtracking pattern?)"
                        )))
                    }
                }
            },
        )?,
    )?;
    Ok(())
}

/// Runs `string.<kind>` in a fresh state with only the string library.
fn run_isolated(
    kind: &str,
    subject: Vec<u8>,
    pattern: Vec<u8>,
    init: Option<i64>,
    plain: Option<bool>,
) -> Result<Vec<Out>, String> {
    let lua =
        Lua::new_with(mlua::StdLib::STRING, mlua::LuaOptions::new()).map_err(|e| e.to_string())?;
    let call = || -> mlua::Result<Vec<Out>> {
        let string: mlua::Table = lua.globals().get("string")?;
        let f: mlua::Function = string.get(kind)?;
        let s = lua.create_string(&subject)?;
        let p = lua.create_string(&pattern)?;
        let values: mlua::MultiValue = if kind == "find" {
            f.call((s, p, init, plain))?
        } else {
            f.call((s, p, init))?
        };
        Ok(values
            .into_iter()
            .map(|v| match v {
                Value::Integer(i) => Out::Int(i),
                Value::Number(n) => Out::Int(n as i64),
                Value::String(s) => Out::Str(s.as_bytes().to_vec()),
                _ => Out::Nil,
            })
            .collect())
    };
    call().map_err(|e| super::error_text(&e))
}

/// Lua code (run in the sandbox prelude) that routes the pattern functions through
/// the guarded calls; `gmatch` and `gsub` follow lstrlib.c's loops on top of `find`.
pub const PRELUDE: &str = r#"
local cheap, offload = __dbflow_pattern_cheap, __dbflow_pattern_offload
__dbflow_pattern_cheap, __dbflow_pattern_offload = nil, nil
local real_find, real_match, real_gmatch, real_gsub =
  string.find, string.match, string.gmatch, string.gsub
local pack, unpack, tostring, type, error, select =
  table.pack, table.unpack, tostring, type, error, select
local function str(v, n, fname)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return tostring(v) end
  error("bad argument #" .. n .. " to '" .. fname .. "' (string expected, got " .. (v == nil and "no value" or t) .. ")", 3)
end
local function find(s, p, init, plain)
  s, p = str(s, 1, "find"), str(p, 2, "find")
  if cheap(s, p, plain) then return real_find(s, p, init, plain) end
  return offload("find", s, p, init, plain)
end
string.find = find
string.match = function(s, p, init)
  s, p = str(s, 1, "match"), str(p, 2, "match")
  if cheap(s, p, false) then return real_match(s, p, init) end
  return offload("match", s, p, init, false)
end
local function start(init, len)
  init = init or 1
  if init < 0 then init = len + init + 1 end
  if init < 1 then init = 1 end
  return init
end
string.gmatch = function(s, p, init)
  s, p = str(s, 1, "gmatch"), str(p, 2, "gmatch")
  if cheap(s, p, false) then return real_gmatch(s, p, init) end
  -- gmatch does not anchor: a leading '^' is a plain character there.
  if p:sub(1, 1) == "^" then p = "%" .. p end
  local src, last = start(init, #s), nil
  return function()
    while src <= #s + 1 do
      local r = pack(find(s, p, src))
      if r[1] == nil then src = #s + 2; return nil end
      local e = r[2] + 1
      if e ~= last then
        src, last = e, e
        if r.n == 2 then return s:sub(r[1], r[2]) end
        return unpack(r, 3, r.n)
      end
      src = r[1] + 1
    end
    return nil
  end
end
string.gsub = function(s, p, repl, n)
  s, p = str(s, 1, "gsub"), str(p, 2, "gsub")
  local rt = type(repl)
  if rt ~= "string" and rt ~= "number" and rt ~= "table" and rt ~= "function" then
    error("bad argument #3 to 'gsub' (string/function/table expected, got " .. (repl == nil and "nil" or rt) .. ")", 2)
  end
  if cheap(s, p, false) then return real_gsub(s, p, repl, n) end
  local anchor = p:sub(1, 1) == "^"
  local max = n or (#s + 1)
  local out, count, src, last = {}, 0, 1, nil
  local function value(r)
    local whole = s:sub(r[1], r[2])
    local caps = r.n > 2 and { unpack(r, 3, r.n) } or { whole }
    local v
    if rt == "function" then v = repl(unpack(caps))
    elseif rt == "table" then v = repl[caps[1]]
    else
      local text = tostring(repl)
      return (real_gsub(text, "%%(.)", function(c)
        if c == "0" then return whole end
        local i = tonumber(c)
        if i then
          local cap = caps[i]
          if cap == nil then error("invalid capture index %" .. c .. " in replacement string", 4) end
          return tostring(cap)
        end
        if c == "%" then return "%" end
        error("invalid use of '%' in replacement string", 4)
      end))
    end
    if v == nil or v == false then return whole end
    local vt = type(v)
    if vt ~= "string" and vt ~= "number" then error("invalid replacement value (a " .. vt .. ")", 3) end
    return tostring(v)
  end
  while count < max do
    local r = pack(find(s, p, src))
    if r[1] == nil or (anchor and r[1] ~= src) then break end
    out[#out + 1] = s:sub(src, r[1] - 1)
    local e = r[2] + 1
    if e ~= last then
      count = count + 1
      out[#out + 1] = value(r)
      src, last = e, e
    elseif r[1] <= #s then
      out[#out + 1] = s:sub(r[1], r[1])
      src = r[1] + 1
    else
      src = r[1]
      break
    end
    if anchor then break end
  end
  out[#out + 1] = s:sub(src)
  return table.concat(out), count
end
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_cases() {
        assert!(worst_case(1_000_000, b"abc") <= 1e7);
        assert!(worst_case(1_000, b"[^\n]+") <= CHEAP_STEPS);
        assert!(worst_case(1_000_000, b"[^\n]+") > CHEAP_STEPS);
        assert!(worst_case(100, b"(.-)(.-)(.-)(.-)x") > CHEAP_STEPS);
        assert_eq!(worst_case(9, b"^%d+"), 10.0);
        assert_eq!(worst_case(9, b"[%-+*]"), 10.0);
    }

    /// The rebuilt `gmatch`/`gsub` and the offloaded `find`/`match` answer like Lua's own
    /// on subjects big enough to leave the fast path.
    #[test]
    fn offloaded_calls_answer_like_lua() {
        let dir = tempfile::tempdir().unwrap();
        let sandboxed =
            super::super::sandbox::new_state(dir.path(), dir.path(), &Default::default()).unwrap();
        let plain = Lua::new();
        let chunk = r#"
            local s = string.rep("key=value x1 ^y\n", 400) .. "tail=end"
            local out = {}
            local function add(...) local t = table.pack(...) for i = 1, t.n do out[#out + 1] = tostring(t[i]) end end
            add(s:find("(%w+)=(%w+)", 100))
            add(s:find("tail", 1, true))
            add(s:match("()(%d)%s%^"))
            add(s:match("^(%w+)"))
            add(select(2, s:gsub("[^\n]+", "")))
            add(s:gsub("(%w+)=(%w+)", "%2=%1", 3))
            add(s:gsub("%w+", { key = "K", value = false }, 5))
            add(s:gsub("(%w+)=", function(k) if k == "tail" then return "T=" end end))
            add(s:gsub("x*", "-", 20))
            add(s:gsub("^key", "KEY"))
            add(s:gsub("", ".", 4))
            local n = 0
            for k, v in s:gmatch("(%w+)=(%w+)") do n = n + #k + #v end
            add(n)
            for a in s:gmatch("^y") do add(a) break end
            for a in s:gmatch("x*") do n = n + #a end
            add(n)
            return table.concat(out, "|")
        "#;
        let expected: String = plain.load(chunk).eval().unwrap();
        let got: String = sandboxed.load(chunk).eval().unwrap();
        assert_eq!(got, expected);
    }
}
