//! Running one command through duct: output streamed live (line by line, through the
//! redaction layer), exit status kept, optional timeout.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum CommandLine {
    /// A program and its arguments (no shell).
    Program {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// Shell code.
    Script(String),
}

impl CommandLine {
    /// How the command reads in a terminal (shell-quoted; scripts as written).
    pub fn display(&self) -> String {
        match self {
            CommandLine::Program { program, args } => {
                let mut words = vec![program.as_str()];
                words.extend(args.iter().map(String::as_str));
                shell_words::join(words)
            }
            CommandLine::Script(script) => script.trim_end().to_string(),
        }
    }

    fn expression(&self) -> duct::Expression {
        match self {
            CommandLine::Program { program, args } => duct::cmd(program, args),
            CommandLine::Script(script) => {
                if cfg!(windows) {
                    duct::cmd("cmd", ["/C", script.as_str()])
                } else {
                    duct::cmd("sh", ["-c", script.as_str()])
                }
            }
        }
    }
}

/// A command with its environment.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// What to run.
    pub command: CommandLine,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Kill it after this long.
    pub timeout: Option<Duration>,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code (128 + signal when killed by a signal).
    Code(i32),
    /// Killed by dbflow after its timeout.
    TimedOut(Duration),
}

impl Exit {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
    }
}

/// Where a command's output lines go.
pub trait Sink: Sync {
    /// Shows one line of output; the sink is responsible for redacting it.
    fn line(&self, line: &str);
}

/// Sets the variables, the last value of a repeated name winning (a task's own
/// `DATABASE_URL` over the environment's). duct applies nested `env` calls inner-first,
/// so repeated names are resolved here rather than left to call order.
fn with_env(mut expr: duct::Expression, env: &[(String, String)]) -> duct::Expression {
    let mut last: indexmap::IndexMap<&str, &str> = indexmap::IndexMap::new();
    for (k, v) in env {
        last.insert(k, v);
    }
    for (k, v) in last {
        expr = expr.env(k, v);
    }
    expr
}

/// Runs the command, streaming stdout and stderr (merged, in order) to `sink`.
pub fn run(spec: &CommandSpec, sink: &dyn Sink) -> std::io::Result<Exit> {
    let mut expr = spec
        .command
        .expression()
        .dir(&spec.cwd)
        .stderr_to_stdout()
        .unchecked();
    expr = with_env(expr, &spec.env);
    let handle = Arc::new(expr.reader()?);
    let timed_out = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = spec.timeout.map(|limit| {
        let handle = Arc::clone(&handle);
        let timed_out = Arc::clone(&timed_out);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let step = Duration::from_millis(50);
            let mut waited = Duration::ZERO;
            while waited < limit {
                if done.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(step);
                waited += step;
            }
            if !done.load(Ordering::SeqCst) {
                timed_out.store(true, Ordering::SeqCst);
                kill_tree(&handle);
            }
        })
    });
    let mut reader = BufReader::new(&*handle);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                sink.line(text.trim_end_matches(['\n', '\r']));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    drop(reader);
    done.store(true, Ordering::SeqCst);
    let status = wait(&handle)?;
    if let Some(w) = watchdog {
        let _ = w.join();
    }
    if timed_out.load(Ordering::SeqCst) {
        return Ok(Exit::TimedOut(spec.timeout.unwrap_or_default()));
    }
    Ok(Exit::Code(exit_code(&status)))
}

/// Kills the command and every process it started. Killing only the direct child is not
/// enough: in `sh -c "sleep 5"` the shell dies but `sleep` keeps running, keeps the output
/// pipe open, and the "killed" command goes on (a migration that was reported as timed
/// out would still be changing the database).
fn kill_tree(handle: &duct::ReaderHandle) {
    // Parents before children: a shell whose child dies first would go on with the next
    // command of its script before its own signal arrives.
    let pids: Vec<u32> = handle
        .pids()
        .into_iter()
        .flat_map(|pid| std::iter::once(pid).chain(descendants(pid)))
        .collect();
    if pids.len() > 1 {
        // `kill` rather than a libc binding: dbflow has no libc dependency to call it with.
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
    let _ = handle.kill();
}

/// Every process below `root`, parents first, from /proc (Linux); empty elsewhere, where
/// only the direct child is killed.
fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name in parentheses may contain spaces: the parent pid is the
            // second field after its closing parenthesis.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = Vec::new();
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        for &(pid, ppid) in &parents {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
                queue.push(pid);
            }
        }
    }
    found
}

fn wait(handle: &duct::ReaderHandle) -> std::io::Result<std::process::ExitStatus> {
    loop {
        if let Some(output) = handle.try_wait()? {
            return Ok(output.status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The status as a shell would report it: the code, or 128 + the signal number.
pub fn exit_code(status: &std::process::ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    1
}

/// Runs a command quietly and reports only whether it succeeded (preconditions).
pub fn succeeds(spec: &CommandSpec) -> bool {
    let mut expr = spec
        .command
        .expression()
        .dir(&spec.cwd)
        .stdout_null()
        .stderr_null()
        .unchecked();
    expr = with_env(expr, &spec.env);
    expr.run().map(|o| o.status.success()).unwrap_or(false)
}
