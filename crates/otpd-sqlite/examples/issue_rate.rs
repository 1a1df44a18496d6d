//! The store alone, without HTTP: 64 tasks issuing codes for new addresses.
//!
//!     cargo run --release -p otpd-sqlite --example issue_rate

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use otpd_core::policy::Rules;
use otpd_core::store::IssueStore;
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
}
