//! A 200 from /GenerateOTP means the mail goes out: through mail server
//! outages and a killed process. And the store never holds a usable code.

use std::time::Duration;

use crate::helpers::{free_port, App, Catcher, Proc};

#[tokio::test]
async fn mail_queued_during_an_smtp_outage_goes_out_when_it_returns() {
    let port = free_port();
    let app = App::start(port, &[]).await;
    let r = app.client.generate("patient@example.com").await;
    assert_eq!(
        r.status, 200,
        "the API answers while the mail server is down"
    );

    let smtp = Catcher::start_on(port);
    // Retries are scheduled on the app's clock; move it past the longest backoff.
    app.clock.advance(Duration::from_secs(3));
    let code = smtp.code("patient@example.com", 1).await;
    assert_eq!(
        app.client.verify("patient@example.com", &code).await.status,
        200
    );
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test]
async fn a_killed_server_delivers_the_mail_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let vars = Proc::vars(dir.path(), port, &[]);
    let first = Proc::spawn(dir.path(), &vars);
    assert_eq!(
        first.client.generate("survivor@example.com").await.status,
        200
    );
    first.kill_9();

    let smtp = Catcher::start_on(port);
    let second = Proc::spawn(dir.path(), &vars);
    let code = smtp.code("survivor@example.com", 1).await;
    assert_eq!(
        second
            .client
            .verify("survivor@example.com", &code)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_store_files_reveal_no_code() {
    let port = free_port();
    let app = App::start(port, &[("OTPD_RESEND_COOLDOWN", "0")]).await;
    let addresses = ["s1@example.com", "s2@example.com", "s3@example.com"];
    for address in addresses {
        assert_eq!(app.client.generate(address).await.status, 200);
        assert_eq!(app.client.generate(address).await.status, 200);
    }
    // A copy of the database while the mails are still queued.
    let snapshot = store_bytes(&app);
    assert!(
        contains(&snapshot, b"s1@example.com"),
        "the copy holds the queued data (the check below is not vacuous)"
    );

    let smtp = Catcher::start_on(port);
    app.clock.advance(Duration::from_secs(3));
    let mut codes = Vec::new();
    for address in addresses {
        for mail in smtp.wait_for(address, 2).await {
            codes.push(mail.code());
        }
    }
    let after = store_bytes(&app);
    for code in &codes {
        assert!(
            !contains(&snapshot, code.as_bytes()),
            "code {code} readable in the queued store"
        );
        assert!(
            !contains(&after, code.as_bytes()),
            "code {code} readable after delivery"
        );
    }
}

/// The database file with its WAL (and shared memory, if any), as a backup would copy them.
fn store_bytes(app: &App) -> Vec<u8> {
    let db = app.db_path();
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db.display());
        if let Ok(content) = std::fs::read(&path) {
            bytes.extend_from_slice(&content);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A clean stop finishes its work and folds the WAL into the database file,
/// so a copy of that file alone (what an operator backs up) holds every write.
#[tokio::test]
async fn sigterm_finishes_cleanly_and_leaves_a_complete_database_file() {
    let smtp = Catcher::start();
    let dir = tempfile::tempdir().unwrap();
    let vars = Proc::vars(dir.path(), smtp.port, &[]);
    let server = Proc::spawn(dir.path(), &vars);
    assert_eq!(server.client.generate("bye@example.com").await.status, 200);
    let code = smtp.wait_for("bye@example.com", 1).await[0].code();
    let stderr = server.stderr.clone();
    let status = server.terminate();
    assert!(status.success(), "{status}");
    let log = stderr.lock().unwrap().join("\n");
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(
        log.contains("outbox worker stopped")
            && log.contains("HTTP server stopped")
            && log.contains("database checkpointed"),
        "{log}"
    );
    let wal = std::fs::metadata(dir.path().join("otpd.db-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "the WAL was folded into the database file");

    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("otpd.db"), copy.path().join("otpd.db")).unwrap();
    let restored = Proc::spawn(copy.path(), &Proc::vars(copy.path(), smtp.port, &[]));
    assert_eq!(
        restored
            .client
            .verify("bye@example.com", &code)
            .await
            .status,
        200,
        "the copied database file alone holds the code's record"
    );
}
