//! What operators use: zero-config start, health, metrics, OpenAPI and the subcommands.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{first_code, free_port, App, Catcher, Proc, PATIENCE};

/// The one test on the fixed default port 8080.
#[tokio::test]
async fn zero_configuration_serves_on_8080_with_sqlite_and_the_log_mailer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Proc::spawn(dir.path(), &[]);
    assert_eq!(server.client.base, "http://127.0.0.1:8080");
    let log = server.stderr.lock().unwrap().join("\n");
    assert!(log.contains("mailer=log"), "{log}");

    assert_eq!(server.client.generate("dev@example.com").await.status, 200);
    let deadline = Instant::now() + PATIENCE;
    let code = loop {
        let out = server.stdout.lock().unwrap().join("\n");
        if let Some(code) = out
            .contains("mail to dev@example.com")
            .then(|| first_code(&out))
            .flatten()
        {
            break code;
        }
        assert!(
            Instant::now() < deadline,
            "the log mailer printed nothing: {out}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(
        server.client.verify("dev@example.com", &code).await.status,
        200
    );
    assert!(dir.path().join("otpd.db").exists());
    let key = std::fs::metadata(dir.path().join("otpd.key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    let stderr = server.stderr.lock().unwrap().join("\n");
    assert!(!stderr.contains(&code), "the code reached the log");
}

#[tokio::test]
async fn openapi_documents_both_routes_and_every_status() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[]).await;
    let (status, _, body) = app.client.get("/openapi.json").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let generate = &doc["paths"]["/GenerateOTP"]["post"]["responses"];
    for code in ["200", "400", "403", "413", "415", "429", "500", "503"] {
        assert!(generate.get(code).is_some(), "GenerateOTP {code}");
    }
    let verify = &doc["paths"]["/VerifyOTP"]["post"]["responses"];
    for code in [
        "200", "400", "401", "410", "413", "415", "429", "500", "503",
    ] {
        assert!(verify.get(code).is_some(), "VerifyOTP {code}");
    }
    assert_eq!(doc["paths"].as_object().unwrap().len(), 2);
}

#[tokio::test]
async fn metrics_count_codes_verifications_mails_and_latency() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[]).await;
    app.client.generate("metrics@example.com").await;
    let code = smtp.code("metrics@example.com", 1).await;
    app.client.verify("metrics@example.com", "000000").await;
    app.client.verify("metrics@example.com", &code).await;
    let (status, headers, text) = app.client.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    for needle in [
        "otpd_codes_issued_total",
        "otpd_verifications_total{result=\"success\"}",
        "otpd_verifications_total{result=\"wrong\"}",
        "otpd_mails_total{result=\"sent\"}",
        "otpd_outbox_depth",
        "otpd_outbox_oldest_age_seconds",
        "otpd_outbox_damaged",
        "otpd_http_request_duration_seconds_bucket{route=\"/GenerateOTP\"",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
}

/// Support can follow one address from its request to its mail by the
/// tag both log lines carry, and the log holds neither the address nor the code.
#[tokio::test]
async fn the_log_follows_a_code_to_its_mail_by_an_address_tag() {
    let smtp = Catcher::start();
    let dir = tempfile::tempdir().unwrap();
    let vars = Proc::vars(dir.path(), smtp.port, &[("OTPD_LOG_FORMAT", "json")]);
    let server = Proc::spawn(dir.path(), &vars);
    assert_eq!(
        server.client.generate("traced@example.com").await.status,
        200
    );
    assert_eq!(
        server.client.generate("other@example.com").await.status,
        200
    );
    let code = smtp.code("traced@example.com", 1).await;
    smtp.wait_for("other@example.com", 1).await;
    let stderr = server.stderr.clone();
    assert!(server.terminate().success());

    let lines = stderr.lock().unwrap().clone();
    let events: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let tags = |message: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["message"] == message)
            .map(|e| e["address"].as_str().expect("an address tag").to_owned())
            .collect()
    };
    let (mut issued, mut delivered) = (tags("code issued"), tags("mail delivered"));
    assert_eq!(issued.len(), 2, "{lines:?}");
    assert_ne!(issued[0], issued[1], "one tag per address");
    issued.sort();
    delivered.sort();
    assert_eq!(issued, delivered, "{lines:?}");
    assert_eq!(events.len(), lines.len(), "every line is JSON: {lines:?}");
    for mut event in events {
        // Microseconds could spell any six digits.
        event.as_object_mut().unwrap().remove("timestamp");
        let event = event.to_string();
        assert!(!event.contains("traced@example.com"), "{event}");
        assert!(!event.contains(&code), "{event}");
    }
}

#[tokio::test]
async fn healthz_checks_the_store() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[]).await;
    let (status, _, body) = app.client.get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
}

fn otpd(args: &[&str], vars: &[(&str, String)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_otpd"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("OTPD_")) {
        command.env_remove(key);
    }
    command
        .args(args)
        .envs(vars.iter().map(|(k, v)| (*k, v)))
        .output()
        .expect("run otpd")
}

/// Multi-threaded: the test blocks on the child while the server answers it.
#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_exit_status_follows_the_server() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[]).await;
    let listen = app.client.base.trim_start_matches("http://").to_owned();
    assert!(otpd(&["healthcheck"], &[("OTPD_LISTEN", listen)])
        .status
        .success());
    let dead = format!("127.0.0.1:{}", free_port());
    assert!(!otpd(&["healthcheck"], &[("OTPD_LISTEN", dead)])
        .status
        .success());
}

#[tokio::test]
async fn send_test_email_proves_the_mail_settings() {
    let smtp = Catcher::start();
    let ok = otpd(
        &["send-test-email", "ops@example.com"],
        &[("OTPD_MAILER", format!("smtp://127.0.0.1:{}", smtp.port))],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(smtp.wait_for("ops@example.com", 1).await.len(), 1);

    let down = otpd(
        &["send-test-email", "ops@example.com"],
        &[("OTPD_MAILER", format!("smtp://127.0.0.1:{}", free_port()))],
    );
    assert!(!down.status.success());
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(stderr.contains("otpd:"), "{stderr}");
}

#[test]
fn gen_secret_prints_a_fresh_256_bit_hex_secret() {
    let a = String::from_utf8(otpd(&["gen-secret"], &[]).stdout).unwrap();
    let b = String::from_utf8(otpd(&["gen-secret"], &[]).stdout).unwrap();
    assert_eq!(a.trim().len(), 64);
    assert!(a.trim().bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_key() {
    let out = otpd(&["serve"], &[("OTPD_CODE_TTL", "0".into())]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("OTPD_CODE_TTL"), "{stderr}");
}
