//! Connections (sqlx, runtime queries only) to PostgreSQL and SQLite behind one enum, with
//! the few operations the orchestration needs. Identifiers are always quoted.

use crate::config::DbUrl;
use sqlx::{Connection, Row};
use std::str::FromStr;

/// An open connection, with where dbflow keeps its own state in that database.
pub struct Conn {
    backend: Backend,
    state_schema: String,
    url_schema: Option<String>,
    horizon_memo: Option<std::path::PathBuf>,
}

/// The driver connection behind a [`Conn`].
enum Backend {
    /// PostgreSQL, with the options it was opened with (so a second session can reach
    /// the server, see [`Conn::canceller`]).
    Pg(sqlx::PgConnection, Box<sqlx::postgres::PgConnectOptions>),
    /// SQLite.
    Sqlite(sqlx::SqliteConnection),
}

/// A database error with the parts PostgreSQL reports, kept apart so they can be shown
/// and stored in `logs`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}{}{}", sqlstate(.code), detail_lines(.detail))]
pub struct DbError {
    /// The server's message.
    pub message: String,
    /// SQLSTATE, when the server gave one.
    pub code: Option<String>,
    /// 1-based character position in the query text, when the server gave one.
    pub position: Option<usize>,
    /// DETAIL and HINT lines.
    pub detail: Option<String>,
}

/// ` (SQLSTATE 42P01)` when the server gave a code.
fn sqlstate(code: &Option<String>) -> String {
    code.as_ref()
        .map(|c| format!(" (SQLSTATE {c})"))
        .unwrap_or_default()
}

/// The DETAIL and HINT lines on lines of their own.
fn detail_lines(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map(|d| format!("\n{d}"))
        .unwrap_or_default()
}

impl DbError {
    /// An error dbflow itself raises (no SQLSTATE).
    pub fn message(text: impl Into<String>) -> Self {
        DbError {
            message: text.into(),
            code: None,
            position: None,
            detail: None,
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        if let Some(db) = err.as_database_error() {
            let code = db.code().map(|c| c.to_string());
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let position = match pg.position() {
                    Some(sqlx::postgres::PgErrorPosition::Original(p)) => Some(p),
                    _ => None,
                };
                let detail = [
                    pg.detail().map(|d| format!("DETAIL: {d}")),
                    pg.hint().map(|h| format!("HINT: {h}")),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("\n");
                return DbError {
                    message: pg.message().to_string(),
                    code,
                    position,
                    detail: (!detail.is_empty()).then_some(detail),
                };
            }
            return DbError {
                message: db.message().to_string(),
                code,
                position: None,
                detail: None,
            };
        }
        DbError {
            message: err.to_string(),
            code: None,
            position: None,
            detail: None,
        }
    }
}

pub use crate::config::model::DEFAULT_STATE_SCHEMA;

/// `"name"`, or `"schema"."name"` for a dotted name.
pub fn quote_ident(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// `'text'` with quotes doubled.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Conn {
    /// Connects to `url` (SQLite files and their folder are created when missing).
    ///
    /// A PostgreSQL URL's `?schema=NAME` (Prisma's parameter, which libpq and sqlx do not
    /// know) sets `search_path` to that schema alone, as Prisma's engine does, so the
    /// history table and unqualified names in migrations land where Prisma puts them.
    pub async fn connect(url: &DbUrl) -> Result<Conn, DbError> {
        if url.is_postgres() {
            let options = sqlx::postgres::PgConnectOptions::from_str(url.expose())?
                .application_name("dbflow");
            let mut conn = Conn {
                backend: Backend::Pg(
                    sqlx::PgConnection::connect_with(&options).await?,
                    Box::new(options.clone()),
                ),
                state_schema: DEFAULT_STATE_SCHEMA.into(),
                url_schema: url.prisma_schema(),
                horizon_memo: None,
            };
            if let Some(schema) = conn.url_schema.clone() {
                // A SET, not a startup `options`: poolers such as PgBouncer refuse those.
                conn.batch(&format!("SET search_path = {}", quote_ident(&schema)))
                    .await?;
            }
            return Ok(conn);
        }
        if url.is_sqlite() {
            let raw = url.expose();
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(raw)?
                .create_if_missing(true)
                .busy_timeout(std::time::Duration::from_secs(30));
            if let Some(parent) = options.get_filename().parent() {
                if !parent.as_os_str().is_empty() {
                    let _ = std::fs::create_dir_all(parent);
                }
            }
            return Ok(Conn::from_sqlite(
                sqlx::SqliteConnection::connect_with(&options).await?,
            ));
        }
        Err(DbError {
            message: format!(
                "unsupported database URL scheme `{}` (use postgres:// or sqlite:)",
                url.scheme()
            ),
            code: None,
            position: None,
            detail: None,
        })
    }

    /// Wraps an open SQLite connection.
    pub fn from_sqlite(conn: sqlx::SqliteConnection) -> Conn {
        Conn {
            backend: Backend::Sqlite(conn),
            state_schema: DEFAULT_STATE_SCHEMA.into(),
            url_schema: None,
            horizon_memo: None,
        }
    }

    /// Uses `schema` for dbflow's own tables (PostgreSQL; `migrations.state_schema`).
    pub fn with_state_schema(mut self, schema: &str) -> Conn {
        self.state_schema = schema.to_string();
        self
    }

    /// Keeps what `status` learns about the catalog's commit horizon at `path` (see
    /// [`super::horizon_memo`]); without one every status on a busy or vacuumed database
    /// reads the catalog token in full.
    pub fn with_horizon_memo(mut self, path: std::path::PathBuf) -> Conn {
        self.horizon_memo = Some(path);
        self
    }

    /// Where the catalog horizon memo is kept, if anywhere.
    pub fn horizon_memo(&self) -> Option<&std::path::Path> {
        self.horizon_memo.as_deref()
    }

    /// The schema holding dbflow's own tables (PostgreSQL).
    pub fn state_schema(&self) -> &str {
        &self.state_schema
    }

    /// The schema named by the URL's `?schema=` (PostgreSQL), which `search_path` is set to.
    pub fn url_schema(&self) -> Option<&str> {
        self.url_schema.as_deref()
    }

    /// What cancels the statement this session runs, from another session (PostgreSQL;
    /// `None` for SQLite, whose statements run in this process). One round trip: the
    /// backend's pid.
    pub async fn canceller(&mut self) -> Result<Option<Canceller>, DbError> {
        let Backend::Pg(_, options) = &self.backend else {
            return Ok(None);
        };
        let options = (**options).clone();
        let pid = self
            .string("SELECT pg_backend_pid()::text")
            .await?
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| DbError::message("pg_backend_pid() returned no pid"))?;
        Ok(Some(Canceller { options, pid }))
    }

    /// True for PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Pg(..))
    }

    /// Runs SQL text (any number of statements) through the simple protocol.
    pub async fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.batch_owned(sql.to_string()).await
    }

    /// [`Conn::batch`] for a script built for the call: no copy of a large migration.
    pub async fn batch_owned(&mut self, sql: String) -> Result<(), DbError> {
        let sql = sqlx::AssertSqlSafe(sql);
        match &mut self.backend {
            Backend::Pg(c, _) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
            Backend::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
        }
        .map_err(DbError::from)
    }

    /// The first column of every row, as text (NULL as empty); the query must select text.
    pub async fn strings(&mut self, sql: &str) -> Result<Vec<String>, DbError> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        let values = match &mut self.backend {
            // Simple protocol: one round trip instead of prepare + execute on a connection
            // that lives for a single command (every column here is text).
            Backend::Pg(c, _) => sqlx::raw_sql(sql)
                .fetch_all(c)
                .await?
                .iter()
                .map(|r| {
                    r.try_get::<Option<String>, _>(0)
                        .map(Option::unwrap_or_default)
                })
                .collect::<Result<Vec<_>, _>>()?,
            Backend::Sqlite(c) => sqlx::query(sql)
                .fetch_all(c)
                .await?
                .iter()
                .map(|r| {
                    r.try_get::<Option<String>, _>(0)
                        .map(Option::unwrap_or_default)
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(values)
    }

    /// One text value (first column of the first row), if any.
    pub async fn string(&mut self, sql: &str) -> Result<Option<String>, DbError> {
        Ok(self.strings(sql).await?.into_iter().next())
    }

    /// Whether a table exists.
    pub async fn table_exists(&mut self, table: &str) -> Result<bool, DbError> {
        let sql = match &self.backend {
            Backend::Pg(..) => format!("SELECT (to_regclass({}) IS NOT NULL)::text", quote_literal(&quote_ident(table))),
            Backend::Sqlite(_) => format!(
                "SELECT CASE WHEN count(*) > 0 THEN 'true' ELSE 'false' END FROM sqlite_master WHERE type = 'table' AND name = {}",
                quote_literal(table)
            ),
        };
        Ok(self.string(&sql).await?.as_deref() == Some("true"))
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        let _ = match self.backend {
            Backend::Pg(c, _) => c.close().await,
            Backend::Sqlite(c) => c.close().await,
        };
    }

    /// The first column of every row rendered as text, whatever its type (text, integers,
    /// floats, booleans); `None` for NULL. For checks written by people, who should not
    /// have to cast.
    pub async fn first_column(&mut self, sql: &str) -> Result<Vec<Option<String>>, DbError> {
        fn render<'r, R>(row: &'r R) -> Result<Option<String>, sqlx::Error>
        where
            R: Row,
            usize: sqlx::ColumnIndex<R>,
            Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            Option<i32>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        {
            if let Ok(v) = row.try_get::<Option<String>, _>(0) {
                return Ok(v);
            }
            if let Ok(v) = row.try_get::<Option<i64>, _>(0) {
                return Ok(v.map(|v| v.to_string()));
            }
            if let Ok(v) = row.try_get::<Option<i32>, _>(0) {
                return Ok(v.map(|v| v.to_string()));
            }
            if let Ok(v) = row.try_get::<Option<f64>, _>(0) {
                return Ok(v.map(|v| v.to_string()));
            }
            row.try_get::<Option<bool>, _>(0)
                .map(|v| v.map(|v| v.to_string()))
        }
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        let mut out = Vec::new();
        match &mut self.backend {
            Backend::Pg(c, _) => {
                for row in sqlx::query(sql).fetch_all(c).await? {
                    if row.is_empty() {
                        out.push(None);
                        continue;
                    }
                    out.push(render(&row).map_err(|_| DbError::message("cannot read the first column as text, a number or a boolean: cast it (e.g. `::text`)"))?);
                }
            }
            Backend::Sqlite(c) => {
                for row in sqlx::query(sql).fetch_all(c).await? {
                    if row.is_empty() {
                        out.push(None);
                        continue;
                    }
                    out.push(render(&row).map_err(|_| {
                        DbError::message(
                            "cannot read the first column as text, a number or a boolean",
                        )
                    })?);
                }
            }
        }
        Ok(out)
    }

    /// Runs a query with positional parameters (`$1`/`?`) and returns every row as a JSON
    /// object of column name → value (text, integers, floats, booleans, NULL). For the Lua
    /// host API, where scripts should not need to know column types.
    pub async fn query_json(
        &mut self,
        sql: &str,
        params: &[serde_json::Value],
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, DbError> {
        use serde_json::Value;
        fn cell<'r, R>(row: &'r R, i: usize) -> Value
        where
            R: Row,
            usize: sqlx::ColumnIndex<R>,
            Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            Option<i32>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        {
            if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                return v.map(Value::String).unwrap_or(Value::Null);
            }
            if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                return v.map(Value::from).unwrap_or(Value::Null);
            }
            if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
                return v.map(Value::from).unwrap_or(Value::Null);
            }
            if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
                return v.map(Value::from).unwrap_or(Value::Null);
            }
            row.try_get::<Option<bool>, _>(i)
                .ok()
                .flatten()
                .map(Value::from)
                .unwrap_or(Value::Null)
        }
        macro_rules! bind_all {
            ($query:expr) => {{
                let mut q = $query;
                for p in params {
                    q = match p {
                        Value::Null => q.bind(None::<String>),
                        Value::Bool(b) => q.bind(*b),
                        Value::Number(n) if n.is_i64() => q.bind(n.as_i64()),
                        Value::Number(n) => q.bind(n.as_f64()),
                        Value::String(s) => q.bind(s.clone()),
                        other => q.bind(other.to_string()),
                    };
                }
                q
            }};
        }
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        let mut out = Vec::new();
        match &mut self.backend {
            Backend::Pg(c, _) => {
                for row in bind_all!(sqlx::query(sql)).fetch_all(c).await? {
                    let names: Vec<String> = row
                        .columns()
                        .iter()
                        .map(|c| sqlx::Column::name(c).to_string())
                        .collect();
                    out.push(
                        names
                            .into_iter()
                            .enumerate()
                            .map(|(i, n)| (n, cell(&row, i)))
                            .collect(),
                    );
                }
            }
            Backend::Sqlite(c) => {
                for row in bind_all!(sqlx::query(sql)).fetch_all(c).await? {
                    let names: Vec<String> = row
                        .columns()
                        .iter()
                        .map(|c| sqlx::Column::name(c).to_string())
                        .collect();
                    out.push(
                        names
                            .into_iter()
                            .enumerate()
                            .map(|(i, n)| (n, cell(&row, i)))
                            .collect(),
                    );
                }
            }
        }
        Ok(out)
    }

    /// [`Conn::text_rows`] handing each row to `each` as it arrives, its values borrowed
    /// from the message: a 5,000-row history is neither held as rows first nor copied
    /// into 35,000 strings on its way to what the caller keeps.
    pub async fn each_text_row(
        &mut self,
        sql: &str,
        mut each: impl FnMut(&[Option<&str>]),
    ) -> Result<(), DbError> {
        use futures_util::TryStreamExt;
        let Backend::Pg(c, _) = &mut self.backend else {
            return Err(DbError::message("reading rows as text is PostgreSQL only"));
        };
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        let mut rows = sqlx::raw_sql(sql).fetch(c);
        while let Some(row) = rows.try_next().await? {
            // A row of up to 16 values is gathered on the stack (no allocation per row
            // of a long history); a wider one in a vector.
            let (mut fixed, mut wide) = ([None; 16], Vec::new());
            let values: &mut [Option<&str>] = match row.len() <= fixed.len() {
                true => &mut fixed[..row.len()],
                false => {
                    wide.resize(row.len(), None);
                    &mut wide
                }
            };
            for (i, value) in values.iter_mut().enumerate() {
                // Unchecked: in the simple protocol every value arrives as text.
                *value = row.try_get_unchecked::<Option<&str>, _>(i)?;
            }
            each(values);
        }
        Ok(())
    }

    /// Every row of every statement of `sql` (PostgreSQL, simple protocol: one round trip,
    /// every value as PostgreSQL prints it, whatever its type), each row with as many
    /// values as its statement selects; callers tell statements apart by that width.
    pub async fn text_rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, DbError> {
        let mut out = Vec::new();
        self.each_text_row(sql, |values| {
            out.push(values.iter().map(|v| v.map(str::to_string)).collect())
        })
        .await?;
        Ok(out)
    }

    /// Rows of a query as text columns (NULL as `None`); every selected column must be text.
    pub async fn rows(
        &mut self,
        sql: &str,
        columns: usize,
    ) -> Result<Vec<Vec<Option<String>>>, DbError> {
        let Backend::Sqlite(c) = &mut self.backend else {
            // PostgreSQL: the simple protocol's text values, as `text_rows` reads them.
            let mut rows = self.text_rows(sql).await?;
            for row in &mut rows {
                if row.len() < columns {
                    return Err(DbError::message(format!(
                        "expected {columns} columns, the query returned {}",
                        row.len()
                    )));
                }
                row.truncate(columns);
            }
            return Ok(rows);
        };
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        let mut out = Vec::new();
        for row in sqlx::query(sql).fetch_all(c).await? {
            out.push(
                (0..columns)
                    .map(|i| row.try_get::<Option<String>, _>(i))
                    .collect::<Result<_, _>>()?,
            );
        }
        Ok(out)
    }
}

/// Cancels the statement one PostgreSQL session runs. sqlx offers no cancel request, so
/// this does what an operator would: `pg_cancel_backend(pid)` from a second session of
/// the same user. The server then fails the statement (SQLSTATE 57014) and the session's
/// transaction rolls back; an idle session ignores the cancel.
#[derive(Clone)]
pub struct Canceller {
    options: sqlx::postgres::PgConnectOptions,
    pid: i32,
}

impl std::fmt::Debug for Canceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Canceller(pid {})", self.pid)
    }
}

impl Canceller {
    /// The backend pid of the session this cancels.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends the cancel; `Ok(true)` when the server accepted it. Gives up after 5 s (an
    /// unreachable server has nothing to cancel on our behalf).
    pub async fn cancel(&self) -> Result<bool, DbError> {
        let options = self.options.clone().application_name("dbflow (cancel)");
        let attempt = async {
            let mut conn = sqlx::PgConnection::connect_with(&options).await?;
            let sql = format!("SELECT pg_cancel_backend({})::text", self.pid);
            let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut conn)
                .await;
            let _ = conn.close().await;
            let accepted = rows?
                .first()
                .and_then(|r| r.try_get::<Option<String>, _>(0).ok().flatten())
                .is_some_and(|v| v == "true");
            Ok::<_, DbError>(accepted)
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), attempt)
            .await
            .map_err(|_| DbError::message("no answer from the server within 5 s"))?
    }
}
