//! A local AWS emulator (moto) for tests, started once per test binary.
//!
//! It runs under a shell that kills it when our end of its stdin closes,
//! that is when the test process exits. `MOTO_SERVER` names the executable
//! (the test command installs it into `.venv-moto`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

struct Moto {
    endpoint: String,
    _process: Mutex<(Child, ChildStdin)>,
}

/// The emulator's URL, e.g. `http://127.0.0.1:40123`.
pub fn endpoint() -> &'static str {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    &MOTO.get_or_init(start).endpoint
}

/// AWS SDK settings that talk to the emulator in `region`, with dummy credentials.
pub async fn sdk_config(region: &'static str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_config::Region::new(region))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

fn start() -> Moto {
    let server = std::env::var("MOTO_SERVER").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.venv-moto/bin/moto_server")
            .display()
            .to_string()
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let script = format!(
        "\"{server}\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & pid=$!; echo started; read _; kill $pid"
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start moto (pip install 'moto[server]'; scripts/test does)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto ({server}) did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stdin = child.stdin.take().unwrap();
    Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _process: Mutex::new((child, stdin)),
    }
}
