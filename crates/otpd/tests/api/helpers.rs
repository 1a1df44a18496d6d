//! The harness: a real SMTP catcher (aiosmtpd, in its own process), otpd
//! started in-process on 127.0.0.1:0 with a controllable clock, or the real
//! binary as a child process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_parser::MimeHeaders;
use otpd::config::Config;
use otpd::server::{self, Running};
use otpd_testkit::FakeClock;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use tempfile::TempDir;

/// A fixed test secret; 64 hex characters.
pub const SECRET: &str = "5ec12e75ec12e75ec12e75ec12e75ec12e75ec12e75ec12e75ec12e75ec12e7a";
/// How long a test waits for a mail or a server before failing.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The interpreter with aiosmtpd (the test command sets it to its venv).
fn python() -> String {
    std::env::var("SMTP_CATCHER_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn catcher_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/smtp_catcher.py")
}

/// A free port on 127.0.0.1 at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One received message, decoded.
#[derive(Debug, Clone)]
pub struct Caught {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub content_type: String,
}

impl Caught {
    /// The first run of exactly six digits in the text part.
    pub fn code(&self) -> String {
        first_code(&self.text).unwrap_or_else(|| panic!("no code in {:?}", self.text))
    }
}

pub fn first_code(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .map(str::to_owned)
}

/// The SMTP server the tests read mail from.
pub struct Catcher {
    child: Child,
    pub port: u16,
    dir: TempDir,
}

impl Catcher {
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// On a given port (to bring a "mail server" back where otpd expects it).
    pub fn start_on(port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, port)
    }

    fn start_in(dir: TempDir, port: u16) -> Self {
        let mut child = Command::new(python())
            .arg(catcher_script())
            .arg("--dir")
            .arg(dir.path())
            .arg("--port")
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP catcher (python with aiosmtpd; run the README's test command)");
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("catcher output");
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!("the SMTP catcher did not start: {line:?} (is aiosmtpd installed?)")
            });
        Self { child, port, dir }
    }

    /// Stops the server; the messages stay readable.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn messages(&self) -> Vec<Caught> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("catcher dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| parse(&std::fs::read(p).expect("message")))
            .collect()
    }

    /// Messages not in `seen` yet (which then records them), in arrival order.
    pub fn new_messages(&self, seen: &mut std::collections::HashSet<PathBuf>) -> Vec<Caught> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("catcher dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml") && !seen.contains(p))
            .collect();
        paths.sort();
        seen.extend(paths.iter().cloned());
        paths
            .iter()
            .map(|p| parse(&std::fs::read(p).expect("message")))
            .collect()
    }

    pub fn messages_to(&self, to: &str) -> Vec<Caught> {
        self.messages().into_iter().filter(|m| m.to == to).collect()
    }

    /// Waits until `n` messages to `to` arrived (failing after [`PATIENCE`]).
    pub async fn wait_for(&self, to: &str, n: usize) -> Vec<Caught> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.messages_to(to);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{n} mail(s) to {to} did not arrive; got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The code of the latest of `n` mails to `to`.
    pub async fn code(&self, to: &str, n: usize) -> String {
        self.wait_for(to, n).await[n - 1].code()
    }
}

impl Drop for Catcher {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse(raw: &[u8]) -> Caught {
    let message = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("a parsable message");
    let to = message
        .to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_owned();
    Caught {
        to,
        subject: message.subject().unwrap_or_default().to_owned(),
        text: message
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        html: message
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        content_type: message
            .root_part()
            .content_type()
            .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()))
            .unwrap_or_default(),
    }
}

/// A response as a client sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

/// Speaks the API over HTTP.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn generate(&self, email: &str) -> Reply {
        self.post_json("/GenerateOTP", &json!({ "email": email }))
            .await
    }

    pub async fn verify(&self, email: &str, otp: &str) -> Reply {
        self.post_json("/VerifyOTP", &json!({ "email": email, "otp": otp }))
            .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(
            path,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
        let mut request = self.http.post(format!("{}{path}", self.base)).body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        reply(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> (u16, HeaderMap, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.expect("body"))
    }

    pub fn raw(&self) -> &reqwest::Client {
        &self.http
    }
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "status {status}: body is not JSON: {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Reply {
        status,
        headers,
        body,
    }
}

/// The settings every test starts from: a fresh SQLite file, the catcher,
/// a fixed secret, and no per-IP limit (tests that need it set it).
fn base_vars(db: &Path, smtp_port: u16) -> Vec<(String, String)> {
    [
        ("OTPD_LISTEN", "127.0.0.1:0".to_owned()),
        ("OTPD_STORE", format!("sqlite://{}", db.display())),
        ("OTPD_MAILER", format!("smtp://127.0.0.1:{smtp_port}")),
        ("OTPD_SECRET", SECRET.to_owned()),
        ("OTPD_IP_REQUESTS_PER_MINUTE", "0".to_owned()),
        ("OTPD_OUTBOX_MAX_DELAY", "2".to_owned()),
        ("OTPD_PRODUCT_NAME", "Acme Sign-in".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn merge(mut vars: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    for (k, v) in extra {
        vars.retain(|(key, _)| key != k);
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    vars
}

/// otpd started in this process (the real router, store, worker and mailer)
/// with a clock the test moves.
pub struct App {
    pub client: Client,
    pub clock: FakeClock,
    pub dir: TempDir,
    running: Option<Running>,
}

impl App {
    pub async fn start(smtp_port: u16, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let vars = merge(base_vars(&dir.path().join("otpd.db"), smtp_port), extra);
        let config = Config::load_from(None, &vars).expect("valid test configuration");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let clock = FakeClock::new();
        let running = server::start(&config, Arc::new(clock.clone()), listener)
            .await
            .expect("otpd starts");
        let client = Client::new(&format!("http://{}", running.addr));
        Self {
            client,
            clock,
            dir,
            running: Some(running),
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("otpd.db")
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("clean shutdown");
        }
    }
}

/// The real `otpd` binary as a child process.
pub struct Proc {
    child: Child,
    pub client: Client,
    pub stderr: Arc<Mutex<Vec<String>>>,
    pub stdout: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Runs `otpd serve` in `cwd` with exactly `vars` as its `OTPD_*` environment.
    pub fn spawn(cwd: &Path, vars: &[(String, String)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_otpd"));
        command.arg("serve").current_dir(cwd);
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("OTPD_")) {
            command.env_remove(key);
        }
        command.env_remove("RUST_LOG");
        let mut child = command
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn otpd");
        let stderr = collect(child.stderr.take().expect("piped"));
        let stdout = collect(child.stdout.take().expect("piped"));
        let deadline = Instant::now() + PATIENCE;
        let url = loop {
            let found = stderr
                .lock()
                .expect("lock")
                .iter()
                .find_map(|line| served_url(line));
            if let Some(url) = found {
                break url;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "otpd exited with {status}: {:?}",
                    stderr.lock().expect("lock")
                );
            }
            assert!(
                Instant::now() < deadline,
                "otpd did not start: {:?}",
                stderr.lock().expect("lock")
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            child,
            client: Client::new(&url),
            stderr,
            stdout,
        }
    }

    /// The standard test settings with the database in `dir`.
    pub fn vars(dir: &Path, smtp_port: u16, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        merge(base_vars(&dir.join("otpd.db"), smtp_port), extra)
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "otpd ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().expect("lock").push(line);
        }
    });
    lines
}

/// The URL from the "otpd is serving" log line, text or JSON.
fn served_url(line: &str) -> Option<String> {
    if !line.contains("otpd is serving") {
        return None;
    }
    let start = line.find("http://")?;
    let url: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"')
        .collect();
    Some(url)
}
