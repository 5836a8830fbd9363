//! The generated site in a real browser: headless Chromium opens each page from
//! `file://`, and the test asserts the page loaded without a console error and that its
//! charts have one SVG point per recorded event; it saves a full-page screenshot of
//! each under `target/tmp/site-browser/`.
//!
//! Chromium is driven over the DevTools protocol on `--remote-debugging-pipe` (JSON
//! messages ended by NUL on file descriptors 3 and 4, mapped from the child's stdin and
//! stdout by `sh`): its `--enable-logging=stderr` output logs `console.log` and
//! `console.error` alike as INFO and never logs a resource that failed to load, so only
//! the protocol's `Runtime.consoleAPICalled`, `Runtime.exceptionThrown` and
//! `Log.entryAdded` events tell a console error apart (`console_errors_are_detected`
//! proves it on a page that has each kind).
//!
//! Skipped with a message when no Chromium is installed (`scripts/prereqs.sh` installs
//! Debian's `chromium`); with `CI=true` a missing browser fails.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const SKIP_MESSAGE: &str = "skipping the browser test: no Chromium found (set DBFLOW_TEST_CHROMIUM, or install Debian's `chromium` with scripts/prereqs.sh)";

/// The browser to drive: `DBFLOW_TEST_CHROMIUM`, else the first of the usual names on
/// `PATH`. `None` (after saying so) when there is none and `CI` is not `true`.
fn browser() -> Option<PathBuf> {
    if let Some(named) = std::env::var_os("DBFLOW_TEST_CHROMIUM").map(PathBuf::from) {
        // A browser named on purpose and missing is a broken setup, not a reason to skip.
        assert!(
            named.is_file(),
            "DBFLOW_TEST_CHROMIUM={} is not a file",
            named.display()
        );
        return Some(named);
    }
    let found = {
        let path = std::env::var_os("PATH").unwrap_or_default();
        [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
    };
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "CI=true but no Chromium is installed (set DBFLOW_TEST_CHROMIUM, or install Debian's `chromium` with scripts/prereqs.sh): the browser test must not be skipped in CI"
            );
        }
        // Written past the test harness's capture, so a skip is never silent.
        let _ = writeln!(std::io::stderr().lock(), "\n*** {SKIP_MESSAGE}\n");
    }
    found
}

/// A headless Chromium with a DevTools session on one page.
struct Browser {
    child: Child,
    input: ChildStdin,
    events: Receiver<Value>,
    /// Events read while waiting for a reply, not yet looked at.
    pending: Vec<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

/// What one page did while it loaded.
#[derive(Debug)]
struct Visit {
    /// Console errors, uncaught exceptions and failed loads, as the browser reported them.
    errors: Vec<String>,
    /// `circle.point` elements per `data-series`.
    points: BTreeMap<String, u64>,
    /// `svg.chart` elements.
    charts: u64,
    /// The document's title.
    title: String,
}

impl Browser {
    fn start(binary: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        // fd 3 is where Chromium reads protocol messages, fd 4 where it writes them.
        let script = r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting Chromium");
        let input = child.stdin.take().unwrap();
        let output = child.stdout.take().unwrap();
        let (send, events) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(output);
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                message.pop_if(|b| *b == 0);
                if let Ok(value) = serde_json::from_slice::<Value>(&message) {
                    if send.send(value).is_err() {
                        return;
                    }
                }
                message.clear();
            }
        });
        let mut browser = Browser {
            child,
            input,
            events,
            pending: Vec::new(),
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = browser.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let target = target["targetId"].as_str().unwrap().to_string();
        let attached = browser.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            browser.page_call(domain, json!({}));
        }
        // A laptop-sized window (headless defaults to 800×600).
        browser.page_call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        );
        browser
    }

    /// Sends a command and waits for its reply (events that come meanwhile are kept).
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.input
            .write_all(format!("{message}\0").as_bytes())
            .and_then(|()| self.input.flush())
            .expect("writing to Chromium");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let value = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no reply from Chromium to {method}: {e}"));
            if value["id"] == id {
                assert!(
                    value["error"].is_null(),
                    "{method} failed: {}",
                    value["error"]
                );
                return value["result"].clone();
            }
            self.pending.push(value);
        }
    }

    fn page_call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.call(Some(&session), method, params)
    }

    fn eval(&mut self, expression: &str) -> Value {
        let result = self.page_call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        result["result"]["value"].clone()
    }

    /// Opens `page`, waits for its load event (and a moment for late messages), saves a
    /// full-page screenshot to `screenshot`, and returns what happened.
    fn visit(&mut self, page: &Path, screenshot: &Path) -> Visit {
        self.pending.clear();
        let url = format!("file://{}", page.display());
        let navigated = self.page_call("Page.navigate", json!({ "url": url }));
        assert!(
            navigated["errorText"].is_null(),
            "{url}: {}",
            navigated["errorText"]
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self
            .pending
            .iter()
            .any(|e| e["method"] == "Page.loadEventFired")
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("{url} never finished loading: {e}"));
            self.pending.push(event);
        }
        // Messages of the last scripts and loads can trail the load event a little.
        let settle = Instant::now() + Duration::from_millis(300);
        while let Ok(event) = self
            .events
            .recv_timeout(settle.saturating_duration_since(Instant::now()))
        {
            self.pending.push(event);
        }
        let counts = self.eval(
            "JSON.stringify({ charts: document.querySelectorAll('svg.chart').length, title: document.title, \
             points: [...document.querySelectorAll('svg.chart circle.point')].reduce((m, c) => \
             { const k = c.getAttribute('data-series'); m[k] = (m[k] || 0) + 1; return m; }, {}) })",
        );
        let counts: Value = serde_json::from_str(counts.as_str().unwrap()).unwrap();
        let metrics = self.page_call("Page.getLayoutMetrics", json!({}));
        let size = &metrics["cssContentSize"];
        let shot = self.page_call(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1 },
            }),
        );
        std::fs::write(screenshot, base64(shot["data"].as_str().unwrap())).unwrap();
        let errors = self
            .pending
            .iter()
            .filter_map(|e| {
                let p = &e["params"];
                match e["method"].as_str()? {
                    "Runtime.consoleAPICalled" if p["type"] == "error" || p["type"] == "assert" => {
                        Some(format!("console.{}: {}", p["type"].as_str()?, p["args"]))
                    }
                    "Runtime.exceptionThrown" => Some(format!(
                        "exception: {}",
                        p["exceptionDetails"]["exception"]["description"]
                    )),
                    "Log.entryAdded" if p["entry"]["level"] == "error" => Some(format!(
                        "{}: {} {}",
                        p["entry"]["source"].as_str()?,
                        p["entry"]["text"].as_str()?,
                        p["entry"]["url"].as_str().unwrap_or("")
                    )),
                    _ => None,
                }
            })
            .collect();
        Visit {
            errors,
            points: counts["points"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                .collect(),
            charts: counts["charts"].as_u64().unwrap(),
            title: counts["title"].as_str().unwrap_or_default().to_string(),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Not `call`: a panic here, while a failed test unwinds, would abort the binary.
        let close = json!({ "id": self.next_id + 1, "method": "Browser.close" });
        let _ = self.input.write_all(format!("{close}\0").as_bytes());
        let _ = self.input.flush();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (the screenshot Chromium returns).
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = text.bytes().filter(|b| *b != b'=').map(value).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, v)| n | (u32::from(*v) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// Where screenshots go: kept after the test, for people to look at.
fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("site-browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn console_errors_are_detected() {
    let Some(binary) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><title>broken</title></head><body><p>broken</p>\
         <script>console.log('only a log'); console.error('boom from console.error'); no_such_function();</script>\
         <img src=\"missing.png\"></body></html>",
    )
    .unwrap();
    let clean = dir.path().join("clean.html");
    std::fs::write(
        &clean,
        "<!DOCTYPE html><html><head><title>clean</title></head><body><script>console.log('fine')</script></body></html>",
    )
    .unwrap();
    let mut browser = Browser::start(&binary);
    let visit = browser.visit(&page, &screenshots().join("broken.png"));
    let all = visit.errors.join("\n");
    assert_eq!(visit.errors.len(), 3, "{all}");
    assert!(
        all.contains("console.error: ") && all.contains("boom from console.error"),
        "{all}"
    );
    assert!(all.contains("no_such_function is not defined"), "{all}");
    assert!(
        all.contains("Failed to load resource") && all.contains("missing.png"),
        "{all}"
    );
    assert!(!all.contains("only a log"), "{all}");
    let visit = browser.visit(&clean, &screenshots().join("clean.png"));
    assert_eq!(visit.errors, Vec::<String>::new());
    assert_eq!(visit.title, "clean");
}

#[test]
fn site_pages_load_without_console_errors_and_charts_have_every_point() {
    let Some(binary) = browser() else {
        return;
    };
    let Some(rec) = crate::ops_page::recorded_history("site_browser") else {
        return;
    };
    let site = tempfile::tempdir().unwrap();
    // The real site, written by `dbflow docs --site` over the recorded history.
    rec.test
        .run_with(["docs", "--site", site.path().to_str().unwrap()])
        .assert_code(0);
    let ops = std::fs::read_to_string(site.path().join("operations.html")).unwrap();
    let shots = screenshots();
    let mut browser = Browser::start(&binary);

    let visit = browser.visit(
        &site.path().join("operations.html"),
        &shots.join("operations.png"),
    );
    assert_eq!(visit.errors, Vec::<String>::new(), "operations.html");
    assert_eq!(visit.title, "Operations · acme-ops");
    assert_eq!(
        visit.charts, 4,
        "drill results, RPO/RTO, backup count, backup size"
    );
    let expected: BTreeMap<String, u64> = [
        ("drill-result", 4),
        ("rpo", 4),
        ("rto", 4),
        ("backup-count:local", 4),
        ("backup-size:local", 4),
        ("backup-count:staging", 3),
        ("backup-size:staging", 3),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(visit.points, expected);
    // A copy of the page beside its screenshot, to open by hand.
    std::fs::write(shots.join("operations.html"), &ops).unwrap();

    for (page, title) in [
        ("index.html", "acme-ops: database runbooks"),
        ("runbook-local.html", "Runbook: acme-ops — local"),
        (
            "restore-drill-local.html",
            "Restore drill: acme-ops — local",
        ),
    ] {
        let shot = shots.join(page.replace(".html", ".png"));
        let visit = browser.visit(&site.path().join(page), &shot);
        assert_eq!(visit.errors, Vec::<String>::new(), "{page}");
        assert_eq!(visit.title, title);
        assert!(
            std::fs::metadata(&shot).unwrap().len() > 1000,
            "{page}: a screenshot"
        );
    }
}
