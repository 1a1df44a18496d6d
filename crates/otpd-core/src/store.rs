//! What a store must provide, split by capability so each deployment (and
//! each Lambda function) needs only the part its permissions allow.

use std::time::Duration;

use async_trait::async_trait;

use crate::policy::{IssueCommand, IssueOutcome, VerifyCommand, VerifyOutcome};
use crate::{EmailAddress, SealedCode, Timestamp};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed; the request may succeed later.
    #[error("the store is unavailable")]
    Unavailable(#[source] BoxError),
    /// Data in the store could not be read back; needs an operator.
    #[error("the store holds data that cannot be decoded")]
    Corrupt(#[source] BoxError),
    /// Too many concurrent writers kept an optimistic update from landing.
    #[error("the record stayed contended after retries")]
    Contended,
}

/// The mail that must go out with a newly issued code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    pub email: EmailAddress,
    pub sealed: SealedCode,
    pub created_at: Timestamp,
    pub code_expires_at: Timestamp,
}

#[async_trait]
pub trait IssueStore: Send + Sync {
    /// Atomically applies `cmd` to the address's record and, if a code is
    /// issued, queues `mail` in the same step: either both happen or neither.
    async fn issue(&self, cmd: IssueCommand, mail: NewMail) -> Result<IssueOutcome, StoreError>;
}

#[async_trait]
pub trait VerifyStore: Send + Sync {
    /// Atomically applies `cmd`: of concurrent correct guesses exactly one
    /// sees [`VerifyOutcome::Verified`].
    async fn verify(&self, cmd: VerifyCommand) -> Result<VerifyOutcome, StoreError>;
}

#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// A cheap round trip proving the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Identifies a queued mail within its outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MailId(pub i64);

/// A mail claimed from the outbox for one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    pub id: MailId,
    pub mail: NewMail,
    /// Earlier attempts that failed.
    pub attempts: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Mails not yet delivered nor dead.
    pub depth: u64,
    /// Age of the oldest of them.
    pub oldest_age: Duration,
    /// Mails the store could not read back and set aside, never to be sent
    /// (a damaged store; each one is logged as an error).
    pub damaged: u64,
}

/// What became of a claimed mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The provider accepted it: forget the mail and its sealed code.
    Delivered,
    /// Try again at this time.
    RetryAt(Timestamp),
    /// Stop trying: forget the sealed code and keep the row for the record.
    Dead,
}

#[async_trait]
pub trait Outbox: Send + Sync {
    /// Takes up to `limit` due mails, oldest due first, and hides them from
    /// other claims for `lease`, so a worker that dies mid-send leaves them
    /// to be retried.
    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<QueuedMail>, StoreError>;
    /// Records what became of claimed mails, in one write.
    async fn settle(&self, settlements: Vec<(MailId, Settlement)>) -> Result<(), StoreError>;
    /// When the next pending mail is due, if any.
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError>;
    async fn stats(&self, now: Timestamp) -> Result<OutboxStats, StoreError>;
}
