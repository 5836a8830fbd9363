//! A real S3-compatible server for integration tests: `moto_server` (the `moto[server]`
//! Python package, installed by scripts/prereqs.sh), one per test, on a free port in a
//! throw-away directory, stopped when the test ends (a watchdog stops it too if the test
//! process dies first). It speaks the S3 REST protocol over HTTP; dbflow reaches it
//! through its real client, exactly as it reaches AWS.
//!
//! Without `moto_server` on PATH a test is skipped with a message, unless `CI=true`,
//! where a missing server is a failure.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Credentials the tests use (moto accepts any; they must never be printed).
pub const ACCESS_KEY: &str = "AKIADBFLOWTESTKEY01";
/// See [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "dbflow-test-secret-key-Zq8";

/// A running S3 server with one bucket.
pub struct S3 {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The bucket created for the test.
    pub bucket: String,
    child: Option<Child>,
    dir: PathBuf,
}

/// Starts a server and creates `bucket`; `None` (skip) when moto_server is missing
/// outside CI.
pub fn server(bucket: &str) -> Option<S3> {
    let Some(bin) = find_moto() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("moto_server not found: scripts/prereqs.sh installs it (pip install 'moto[server]')");
        }
        eprintln!("skipping: no S3 server (run scripts/prereqs.sh to install moto_server)");
        return None;
    };
    let dir = tempfile::Builder::new()
        .prefix("dbflow-s3-")
        .tempdir()
        .expect("temp dir")
        .keep();
    let mut s3 = S3 {
        port: 0,
        bucket: bucket.to_string(),
        child: None,
        dir,
    };
    s3.start_with(&bin, free_port());
    let url = format!("{}/{bucket}", s3.endpoint());
    ureq::put(&url)
        .send_empty()
        .expect("creating the test bucket");
    Some(s3)
}

/// `moto_server` on PATH, else in the virtualenv scripts/prereqs.sh installs it into.
fn find_moto() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("moto_server"))
            .find(|p| p.is_file())
    });
    let venv = std::env::var_os("DBFLOW_MOTO_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/dbflow/moto")))
        .map(|v| v.join("bin/moto_server"))
        .filter(|p| p.is_file());
    on_path.or(venv)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl S3 {
    fn start_with(&mut self, bin: &PathBuf, port: u16) {
        let log = std::fs::File::create(self.dir.join("server.log")).expect("log file");
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("starting moto_server");
        watchdog(child.id(), &self.dir);
        self.port = port;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {port}: {}",
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment dbflow needs to reach the server: the standard AWS variables.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
    }

    /// Keys of every object under `prefix` (a plain ListObjectsV2 over HTTP).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let body = ureq::get(&format!(
            "{}/{}?list-type=2&prefix={prefix}",
            self.endpoint(),
            self.bucket
        ))
        .call()
        .expect("listing")
        .into_body()
        .read_to_string()
        .expect("listing body");
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// Multipart uploads started and neither completed nor aborted.
    pub fn open_uploads(&self) -> usize {
        let body = ureq::get(&format!("{}/{}?uploads", self.endpoint(), self.bucket))
            .call()
            .expect("listing uploads")
            .into_body()
            .read_to_string()
            .expect("uploads body");
        body.matches("<UploadId>").count()
    }

    /// The bytes of an object.
    pub fn get(&self, key: &str) -> Vec<u8> {
        let response = ureq::get(&format!("{}/{}/{key}", self.endpoint(), self.bucket))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .expect("get");
        assert_eq!(response.status(), 200, "GET {key}: {:?}", self.keys(""));
        response
            .into_body()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .expect("object body")
    }

    /// Replaces an object.
    pub fn put(&self, key: &str, bytes: &[u8]) {
        ureq::put(&format!("{}/{}/{key}", self.endpoint(), self.bucket))
            .send(bytes)
            .expect("put");
    }

    /// Stops the server at once (SIGKILL), as a network cut or a crashed server would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Stops the server if the test process dies without running destructors.
fn watchdog(server: u32, dir: &std::path::Path) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null && kill -0 {server} 2>/dev/null; do sleep 1; done; kill -9 {server} 2>/dev/null; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display()
    );
    let _ = Command::new("sh")
        .args([
            "-c",
            &format!("sh -c \"{script}\" >/dev/null 2>&1 </dev/null &"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .status();
}
