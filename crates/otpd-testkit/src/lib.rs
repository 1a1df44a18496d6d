//! Test helpers for otpd. Depends on `otpd-core` only; never shipped.
//!
//! [`store_contract`] is the suite every store implementation runs, so the
//! SQLite and DynamoDB stores cannot drift apart.

#![allow(clippy::unwrap_used)]

pub mod moto;
pub mod store_contract;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use otpd_core::policy::{IssueCommand, Rules};
use otpd_core::store::NewMail;
use otpd_core::{
    Clock, CodeKeys, CodeMail, EmailAddress, MailError, Mailer, OtpCode, Secret, SystemClock,
    Timestamp,
};
use secrecy::SecretString;

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    /// Starts at the real time, so records look plausible to garbage collection.
    pub fn new() -> Self {
        Self(Arc::new(AtomicI64::new(SystemClock.now().as_millis())))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// Keys from a fixed test secret.
pub fn test_keys() -> CodeKeys {
    let secret = Secret::parse(&SecretString::from("42".repeat(32))).unwrap();
    CodeKeys::derive(&secret)
}

/// What issuing `code` to `email` at `now` hands a store: the command and its mail.
pub fn issue_request(
    keys: &CodeKeys,
    rules: Rules,
    email: &EmailAddress,
    code: &OtpCode,
    now: Timestamp,
) -> (IssueCommand, NewMail) {
    let cmd = IssueCommand {
        email: email.clone(),
        now,
        rules,
        digest: keys.digest(email, code),
    };
    let mail = NewMail {
        email: email.clone(),
        sealed: keys.seal(email, code),
        created_at: now,
        code_expires_at: now.plus(rules.code_ttl),
    };
    (cmd, mail)
}

/// Keeps every mail it is given; can be told to fail.
#[derive(Debug, Clone, Default)]
pub struct CapturingMailer {
    pub sent: Arc<Mutex<Vec<CodeMail>>>,
    failing: Arc<Mutex<Option<bool>>>,
}

impl CapturingMailer {
    /// `Some(true)`: fail permanently; `Some(false)`: fail transiently; `None`: work.
    pub fn fail(&self, permanently: Option<bool>) {
        *self.failing.lock().unwrap() = permanently;
    }

    pub fn sent(&self) -> Vec<CodeMail> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Mailer for CapturingMailer {
    async fn send(&self, mail: &CodeMail) -> Result<(), MailError> {
        match *self.failing.lock().unwrap() {
            Some(true) => Err(MailError::Permanent("550 mailbox unavailable".into())),
            Some(false) => Err(MailError::Transient("connection refused".into())),
            None => {
                self.sent.lock().unwrap().push(mail.clone());
                Ok(())
            }
        }
    }

    fn describe(&self) -> String {
        "capturing (tests)".into()
    }
}
