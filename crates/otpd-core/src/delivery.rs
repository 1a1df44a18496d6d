//! One step of the outbox worker: claim the due mails, send them, record
//! what became of each.
//!
//! The loop that calls it lives with the runtime; tests drain an outbox by
//! calling [`Delivery::deliver_due`] until it finds nothing due.

use std::time::Duration;

use rand::Rng;

use crate::store::{Outbox, QueuedMail, Settlement, StoreError};
use crate::{CodeKeys, CodeLength, CodeMail, MailError, Mailer, Timestamp};

/// How the worker retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry; doubles with each failure.
    pub base_delay: Duration,
    /// Ceiling of the delay between two tries.
    pub max_delay: Duration,
    /// After this long since the code was issued, the mail is given up.
    pub give_up_after: Duration,
    /// How long a claimed mail stays hidden from other claims; longer than a send can take.
    pub lease: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3600),
            lease: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with "equal jitter": half the delay is fixed, half
    /// random, so retries from many messages spread out but never bunch at zero.
    pub fn delay(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX));
        let capped = exp.min(self.max_delay);
        let half = capped / 2;
        half + half.mul_f64(rng.gen::<f64>())
    }
}

/// Why a mail was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadReason {
    /// The code expired before the mail could go: sending it would only confuse.
    CodeExpired,
    /// Failures went on past [`RetryPolicy::give_up_after`].
    TooOld,
    /// The provider refused it for good.
    Rejected(String),
    /// The sealed code could not be opened (the secret changed).
    Unreadable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Delivered,
    Retried { after: Duration, error: String },
    Dead(DeadReason),
}

impl Step {
    fn settlement(&self, now: Timestamp) -> Settlement {
        match self {
            Self::Delivered => Settlement::Delivered,
            Self::Retried { after, .. } => Settlement::RetryAt(now.plus(*after)),
            Self::Dead(_) => Settlement::Dead,
        }
    }
}

/// A claimed mail and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    pub queued: QueuedMail,
    pub step: Step,
}

/// What the worker needs besides the outbox and the mailer.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub keys: CodeKeys,
    pub code_length: CodeLength,
    pub retry: RetryPolicy,
}

impl Delivery {
    /// Claims up to `limit` due mails, sends them concurrently and settles
    /// them in one write. An empty result means nothing was due.
    pub async fn deliver_due(
        &self,
        outbox: &dyn Outbox,
        mailer: &dyn Mailer,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Attempted>, StoreError> {
        let claimed = outbox.claim_due(now, self.retry.lease, limit).await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let steps =
            futures::future::join_all(claimed.iter().map(|q| self.attempt(q, mailer, now))).await;
        let settlements = claimed
            .iter()
            .zip(&steps)
            .map(|(queued, step)| (queued.id, step.settlement(now)))
            .collect();
        outbox.settle(settlements).await?;
        Ok(claimed
            .into_iter()
            .zip(steps)
            .map(|(queued, step)| Attempted { queued, step })
            .collect())
    }

    /// One delivery attempt of one mail; the caller records the result.
    pub async fn attempt(&self, queued: &QueuedMail, mailer: &dyn Mailer, now: Timestamp) -> Step {
        let mail = &queued.mail;
        if now >= mail.code_expires_at {
            return Step::Dead(DeadReason::CodeExpired);
        }
        let Ok(code) = self
            .keys
            .unseal(&mail.email, &mail.sealed, self.code_length)
        else {
            return Step::Dead(DeadReason::Unreadable);
        };
        let message = CodeMail {
            to: mail.email.clone(),
            code,
            lifetime: mail.created_at.until(mail.code_expires_at),
        };
        match mailer.send(&message).await {
            Ok(()) => Step::Delivered,
            Err(MailError::Permanent(reason)) => Step::Dead(DeadReason::Rejected(reason)),
            Err(MailError::Transient(error)) => {
                if now >= mail.created_at.plus(self.retry.give_up_after) {
                    return Step::Dead(DeadReason::TooOld);
                }
                let after = self.retry.delay(queued.attempts, &mut rand::thread_rng());
                Step::Retried { after, error }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::mock::StepRng;

    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let policy = RetryPolicy::default();
        let mut low = StepRng::new(0, 0);
        assert_eq!(policy.delay(0, &mut low), Duration::from_millis(500));
        assert_eq!(policy.delay(3, &mut low), Duration::from_secs(4));
        assert_eq!(policy.delay(6, &mut low), Duration::from_secs(30));
        assert_eq!(policy.delay(40, &mut low), Duration::from_secs(30));
        let mut high = StepRng::new(u64::MAX, 0);
        for failures in 0..50 {
            assert!(policy.delay(failures, &mut high) <= policy.max_delay);
        }
    }
}
