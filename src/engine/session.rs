//! The run's database session: one connection to the environment's database, opened
//! when a step first needs it, and the migrations folder, read and hashed once. Steps
//! that declare [`Step::uses_db_session`](super::registry::Step::uses_db_session) share
//! it (a `deploy` workflow's guard, status, backup, deploy and verify); before any
//! other step runs, the engine closes the connection, so a step that drops, restores or
//! replaces the database, or runs a command that might, never finds dbflow's own idle
//! session in its way.

use super::registry::StepError;
use crate::db::store::Store;
use crate::db::target::Target;
use crate::db::Conn;
use crate::guard::migrations::Review;
use std::sync::Arc;

/// The lazily opened session of one run (one environment, one target).
#[derive(Default)]
pub struct DbSession {
    conn: Option<Conn>,
    store: Option<Arc<Store>>,
    /// The lint review of the pending migrations a `guard` step made, so the deploy
    /// after it does not lint them again (it checks the review still fits the history).
    pub review: Option<Arc<Review>>,
    /// The folder read by [`DbSession::prepare`], not yet handed out.
    prefetched: Option<Arc<Store>>,
}

impl DbSession {
    /// The migrations folder of `target`, read (and checked against the URL) on first
    /// use; `true` with the first read. A bad folder keeps its exit code (2: bad input).
    pub fn store(&mut self, target: &Target) -> Result<(Arc<Store>, bool), StepError> {
        if let Some(store) = &self.store {
            return Ok((store.clone(), false));
        }
        if let Some(store) = self.prefetched.take() {
            self.store = Some(store.clone());
            return Ok((store, true));
        }
        let store = Arc::new(target.store().map_err(|e| {
            let e = crate::error::Error::from(e);
            StepError {
                message: e.to_string(),
                code: e.exit_code(),
            }
        })?);
        self.store = Some(store.clone());
        Ok((store, true))
    }

    /// Reads the folder and opens the connection at once when neither is there yet:
    /// hashing hundreds of files overlaps a fresh backend's startup. Errors are left
    /// for [`DbSession::store`] and [`DbSession::take`] to report, folder first.
    pub fn prepare(&mut self, target: &Target, runtime: &tokio::runtime::Runtime) {
        if self.store.is_some() || self.conn.is_some() {
            return;
        }
        let (store, conn) = std::thread::scope(|scope| {
            let reading = scope.spawn(|| target.store());
            let conn = runtime.block_on(target.connect());
            (reading.join(), conn)
        });
        if let Ok(Ok(store)) = store {
            self.prefetched = Some(Arc::new(store));
        }
        if let Ok(conn) = conn {
            self.conn = Some(conn);
        }
    }

    /// Takes the connection (opening it on first use); hand it back with
    /// [`DbSession::give_back`] when the step is done with it. Taken rather than
    /// borrowed so a step can use it while it also writes the journal and the UI.
    pub fn take(
        &mut self,
        target: &Target,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<Conn, StepError> {
        match self.conn.take() {
            Some(conn) => Ok(conn),
            None => runtime
                .block_on(target.connect())
                .map_err(|e| StepError::failed(e.to_string())),
        }
    }

    /// Takes the connection when one is open, without opening one: a step that opens it
    /// on a thread of its own, beside reading the folder (`status`), hands it back with
    /// [`DbSession::give_back`].
    pub fn take_open(&mut self) -> Option<Conn> {
        self.conn.take()
    }

    /// Returns a connection taken with [`DbSession::take`] for later steps. A
    /// connection in doubt (its step failed on a database error) is closed instead.
    pub fn give_back(&mut self, conn: Conn) {
        self.conn = Some(conn);
    }

    /// Closes the connection, if open (the folder stays read: it does not change
    /// during a run).
    pub fn close(&mut self, runtime: &tokio::runtime::Runtime) {
        if let Some(conn) = self.conn.take() {
            runtime.block_on(conn.close());
        }
    }
}
