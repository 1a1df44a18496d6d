//! The store alone, without HTTP: 64 tasks issuing codes for new addresses
//! while two loops claim and settle the queued mails, as `otpd serve`'s
//! worker does (without sending them).
//!
//!     cargo run --release -p otpd-sqlite --example issue_rate

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use otpd_core::policy::Rules;
use otpd_core::store::{IssueStore, Outbox, Settlement};
use otpd_core::{Clock, CodeKeys, EmailAddress, OtpCode, Secret, SystemClock};
use secrecy::SecretString;

const TASKS: usize = 64;
const PER_TASK: usize = 2000;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        otpd_sqlite::SqliteStore::open(&dir.path().join("bench.db"), Default::default()).unwrap(),
    );
    let keys = CodeKeys::derive(&Secret::parse(&SecretString::from("11".repeat(32))).unwrap());
    let rules = Rules {
        resend_cooldown: Duration::ZERO,
        max_codes_per_hour: 0,
        ..Rules::default()
    };
    let start = Instant::now();
    let done = Arc::new(tokio::sync::Notify::new());
    let drains: Vec<_> = (0..2)
        .map(|_| tokio::spawn(drain(store.clone(), done.clone())))
        .collect();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            let keys = keys.clone();
            tokio::spawn(async move {
                for i in 0..PER_TASK {
                    let email = format!("u{}-{t}-{i}@bench.example", rand::random::<u32>());
                    let email = EmailAddress::parse(&email).unwrap();
                    let code = OtpCode::parse("123456", rules.code_length).unwrap();
                    let (cmd, mail) =
                        otpd_testkit::issue_request(&keys, rules, &email, &code, SystemClock.now());
                    store.issue(cmd, mail).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let issued = (TASKS * PER_TASK) as f64;
    println!("{:.0} issues/s", issued / start.elapsed().as_secs_f64());
    done.notify_waiters();
    let mut settled = 0;
    for drain in drains {
        settled += drain.await.unwrap();
    }
    assert_eq!(settled, TASKS * PER_TASK);
}

/// Claims and settles (as delivered) until `done` and nothing is left;
/// returns how many mails it settled.
async fn drain(store: Arc<otpd_sqlite::SqliteStore>, done: Arc<tokio::sync::Notify>) -> usize {
    let mut settled = 0;
    let mut finished = std::pin::pin!(done.notified());
    // Registered now: `notify_waiters` wakes only registered waiters.
    finished.as_mut().enable();
    let mut last_round = false;
    loop {
        let claimed = store
            .claim_due(SystemClock.now(), Duration::from_secs(60), 32)
            .await
            .unwrap();
        if claimed.is_empty() {
            if last_round {
                return settled;
            }
            tokio::select! {
                () = finished.as_mut() => last_round = true,
                () = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
            continue;
        }
        settled += claimed.len();
        let settlements = claimed
            .iter()
            .map(|queued| (queued.id, Settlement::Delivered))
            .collect();
        store.settle(settlements).await.unwrap();
    }
}
