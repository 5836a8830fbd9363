//! The seam between the Lua host and the guard: what a script asks the host to do goes
//! through a [`Gate`] before it is done. It lives here, below the Lua host, so the
//! host depends on the guard's trait and the guard never imports the host.

/// A journal event a gate produced (name, fields).
pub type GateEvent = (String, serde_json::Value);

/// Rules on what a script asks the host to do, for the run's environment, before it is
/// done. The guard implements it and the Lua host calls it; a refusal is the
/// guard's message, and the events are journaled either way.
pub trait Gate: Send + Sync {
    /// May the command line `line` (the exec's arguments, shell-quoted) run, with the
    /// variables `env`?
    fn command(&self, line: &str, env: &[(String, String)])
        -> (Vec<GateEvent>, Result<(), String>);
    /// May the statement `sql` run?
    fn sql(&self, sql: &str) -> (Vec<GateEvent>, Result<(), String>);
}
