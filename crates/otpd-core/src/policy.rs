//! The rules of issuing and checking codes, as pure functions over one
//! address's [`AddressRecord`].
//!
//! A store loads the record, applies an [`IssueCommand`] or [`VerifyCommand`]
//! and persists the resulting [`Change`] atomically (a transaction, or a
//! conditional write on a version). The rules live here once, so every store
//! enforces exactly the same policy.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{CodeDigest, CodeLength, EmailAddress, Timestamp};

/// How many of an address's most recent codes are accepted at once, so a
/// resend never strands a mail that was merely slow.
pub const LIVE_CODES: usize = 3;
/// The window of the per-address issue cap.
pub const CAP_WINDOW: Duration = Duration::from_secs(3600);

/// The configurable limits, validated by whoever builds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub code_length: CodeLength,
    pub code_ttl: Duration,
    pub max_attempts: u32,
    pub resend_cooldown: Duration,
    /// Codes per address per [`CAP_WINDOW`]; 0 means no cap.
    pub max_codes_per_hour: u32,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            code_length: CodeLength::default(),
            code_ttl: Duration::from_secs(300),
            max_attempts: 5,
            resend_cooldown: Duration::from_secs(60),
            max_codes_per_hour: 5,
        }
    }
}

/// A setting outside its safe bounds; `key` names it (`OTPD_` + key in capitals).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct RulesError {
    pub key: &'static str,
    pub message: String,
}

/// The longest code lifetime OWASP ASVS accepts; longer is allowed but worth a warning.
pub const ASVS_MAX_TTL: Duration = Duration::from_secs(600);

/// The limits as an operator writes them, before checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleSettings {
    pub code_length: u8,
    pub code_ttl_secs: u64,
    pub max_attempts: u32,
    pub resend_cooldown_secs: u64,
    pub max_codes_per_hour: u32,
}

impl Rules {
    /// The one place that holds the bounds of each limit, for every way otpd runs.
    pub fn from_settings(s: RuleSettings) -> Result<Self, RulesError> {
        let err = |key, message: String| RulesError { key, message };
        let code_length = CodeLength::new(s.code_length).ok_or_else(|| {
            let (min, max) = (CodeLength::MIN, CodeLength::MAX);
            err(
                "code_length",
                format!("must be {min} to {max} digits, not {}", s.code_length),
            )
        })?;
        if !(1..=3600).contains(&s.code_ttl_secs) {
            return Err(err(
                "code_ttl",
                format!("must be 1 to 3600 seconds, not {}", s.code_ttl_secs),
            ));
        }
        if !(1..=10).contains(&s.max_attempts) {
            return Err(err(
                "max_attempts",
                format!("must be 1 to 10, not {}", s.max_attempts),
            ));
        }
        if s.resend_cooldown_secs > 3600 {
            return Err(err(
                "resend_cooldown",
                format!(
                    "must be at most 3600 seconds, not {}",
                    s.resend_cooldown_secs
                ),
            ));
        }
        Ok(Self {
            code_length,
            code_ttl: Duration::from_secs(s.code_ttl_secs),
            max_attempts: s.max_attempts,
            resend_cooldown: Duration::from_secs(s.resend_cooldown_secs),
            max_codes_per_hour: s.max_codes_per_hour,
        })
    }
}

/// One issued code, as a store keeps it: never the digits themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveCode {
    pub digest: CodeDigest,
    pub expires_at: Timestamp,
}

/// Everything the policy needs to know about one address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRecord {
    /// Oldest first, at most [`LIVE_CODES`]; may hold expired codes until the next write.
    pub codes: Vec<LiveCode>,
    /// Wrong guesses since the newest code was issued.
    pub failed_attempts: u32,
    /// When codes were issued within the last [`CAP_WINDOW`], oldest first.
    pub issued: Vec<Timestamp>,
}

impl AddressRecord {
    /// When the record stops mattering: no live code and nothing left in the
    /// cap window. Stores use it for garbage collection only.
    pub fn expires_at(&self) -> Timestamp {
        let last_code = self.codes.iter().map(|c| c.expires_at).max();
        let last_issue = self.issued.last().map(|t| t.plus(CAP_WINDOW));
        last_code
            .into_iter()
            .chain(last_issue)
            .max()
            .unwrap_or(Timestamp::from_millis(0))
    }

    /// `now`, or the record's latest issue if that is later. Requests read the
    /// clock before they reach the store, so a record may already hold a
    /// slightly later time; an address's time never runs backwards.
    fn effective_now(&self, now: Timestamp) -> Timestamp {
        self.issued.last().map_or(now, |last| now.max(*last))
    }

    fn prune(&mut self, now: Timestamp) {
        self.codes.retain(|c| c.expires_at > now);
        self.issued.retain(|t| t.plus(CAP_WINDOW) > now);
    }

    fn burned(&self, rules: &Rules) -> bool {
        self.failed_attempts >= rules.max_attempts
    }
}

/// What a store must write back, in the same atomic step as the read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Keep,
    Put(AddressRecord),
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition<T> {
    pub outcome: T,
    pub change: Change,
}

/// Why a request was refused with 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    ResendCooldown,
    HourlyCap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueOutcome {
    Issued {
        expires_in: Duration,
        resend_after: Duration,
    },
    RateLimited {
        limit: Limit,
        retry_after: Duration,
    },
}

/// Why there was no live code; the client sees one answer for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCode {
    Unknown,
    Expired,
    Burned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    Verified,
    Wrong { attempts_remaining: u32 },
    NoLiveCode(NoCode),
}

/// Issue a new code, whose digest was computed by the caller.
#[derive(Debug, Clone)]
pub struct IssueCommand {
    pub email: EmailAddress,
    pub now: Timestamp,
    pub rules: Rules,
    pub digest: CodeDigest,
}

impl IssueCommand {
    pub fn apply(&self, record: Option<AddressRecord>) -> Transition<IssueOutcome> {
        let mut record = record.unwrap_or_default();
        let now = record.effective_now(self.now);
        record.prune(now);
        if let Some((limit, retry_after)) = self.refusal(&record, now) {
            return Transition {
                outcome: IssueOutcome::RateLimited { limit, retry_after },
                change: Change::Keep,
            };
        }
        if record.burned(&self.rules) {
            record.codes.clear();
        }
        record.failed_attempts = 0;
        record.codes.push(LiveCode {
            digest: self.digest.clone(),
            expires_at: now.plus(self.rules.code_ttl),
        });
        let excess = record.codes.len().saturating_sub(LIVE_CODES);
        record.codes.drain(..excess);
        record.issued.push(now);
        let resend_after = self
            .refusal(&record, now)
            .map_or(Duration::ZERO, |(_, wait)| wait);
        Transition {
            outcome: IssueOutcome::Issued {
                expires_in: self.rules.code_ttl,
                resend_after,
            },
            change: Change::Put(record),
        }
    }

    /// The limit that would refuse a code now, and how long until it would not.
    fn refusal(&self, record: &AddressRecord, now: Timestamp) -> Option<(Limit, Duration)> {
        let cooldown = record
            .issued
            .last()
            .map(|last| now.until(last.plus(self.rules.resend_cooldown)))
            .filter(|wait| !wait.is_zero())
            .map(|wait| (Limit::ResendCooldown, wait));
        let cap = self.rules.max_codes_per_hour as usize;
        let capped = (cap > 0 && record.issued.len() >= cap)
            .then(|| record.issued[record.issued.len() - cap])
            .map(|oldest| (Limit::HourlyCap, now.until(oldest.plus(CAP_WINDOW))));
        cooldown
            .into_iter()
            .chain(capped)
            .max_by_key(|(_, wait)| *wait)
    }
}

/// Check a guess, whose digest was computed by the caller.
#[derive(Debug, Clone)]
pub struct VerifyCommand {
    pub email: EmailAddress,
    pub now: Timestamp,
    pub rules: Rules,
    pub candidate: CodeDigest,
}

impl VerifyCommand {
    pub fn apply(&self, record: Option<AddressRecord>) -> Transition<VerifyOutcome> {
        let Some(mut record) = record else {
            return no_code(NoCode::Unknown);
        };
        if record.burned(&self.rules) {
            return no_code(NoCode::Burned);
        }
        let had_codes = !record.codes.is_empty();
        record.prune(record.effective_now(self.now));
        if record.codes.is_empty() {
            return no_code(if had_codes {
                NoCode::Expired
            } else {
                NoCode::Unknown
            });
        }
        // Compare against every live code, so the time taken does not tell which one matched.
        let matched = record.codes.iter().fold(false, |hit, code| {
            code.digest.matches(&self.candidate) | hit
        });
        if matched {
            return Transition {
                outcome: VerifyOutcome::Verified,
                change: Change::Delete,
            };
        }
        record.failed_attempts += 1;
        let attempts_remaining = self
            .rules
            .max_attempts
            .saturating_sub(record.failed_attempts);
        if attempts_remaining == 0 {
            record.codes.clear();
        }
        Transition {
            outcome: VerifyOutcome::Wrong { attempts_remaining },
            change: Change::Put(record),
        }
    }
}

fn no_code(reason: NoCode) -> Transition<VerifyOutcome> {
    Transition {
        outcome: VerifyOutcome::NoLiveCode(reason),
        change: Change::Keep,
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::{CodeKeys, OtpCode, Secret};

    const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

    struct World {
        keys: CodeKeys,
        email: EmailAddress,
        rules: Rules,
        record: Option<AddressRecord>,
    }

    impl World {
        fn new(rules: Rules) -> Self {
            let secret = Secret::parse(&SecretString::from("11".repeat(32))).expect("valid");
            Self {
                keys: CodeKeys::derive(&secret),
                email: EmailAddress::parse("someone@example.com").expect("valid"),
                rules,
                record: None,
            }
        }

        fn digest(&self, code: &str) -> CodeDigest {
            let code = OtpCode::parse(code, self.rules.code_length).expect("valid code");
            self.keys.digest(&self.email, &code)
        }

        fn commit<T>(&mut self, t: Transition<T>) -> T {
            match t.change {
                Change::Keep => {}
                Change::Put(record) => self.record = Some(record),
                Change::Delete => self.record = None,
            }
            t.outcome
        }

        fn issue(&mut self, code: &str, at_secs: u64) -> IssueOutcome {
            let cmd = IssueCommand {
                email: self.email.clone(),
                now: T0.plus(Duration::from_secs(at_secs)),
                rules: self.rules,
                digest: self.digest(code),
            };
            let t = cmd.apply(self.record.clone());
            self.commit(t)
        }

        fn verify(&mut self, code: &str, at_secs: u64) -> VerifyOutcome {
            let cmd = VerifyCommand {
                email: self.email.clone(),
                now: T0.plus(Duration::from_secs(at_secs)),
                rules: self.rules,
                candidate: self.digest(code),
            };
            let t = cmd.apply(self.record.clone());
            self.commit(t)
        }
    }

    fn no_limits() -> Rules {
        Rules {
            resend_cooldown: Duration::ZERO,
            max_codes_per_hour: 0,
            ..Rules::default()
        }
    }

    fn issued(resend_after: u64) -> IssueOutcome {
        IssueOutcome::Issued {
            expires_in: Duration::from_secs(300),
            resend_after: Duration::from_secs(resend_after),
        }
    }

    #[test]
    fn a_code_verifies_once() {
        let mut w = World::new(Rules::default());
        assert_eq!(w.issue("123456", 0), issued(60));
        assert_eq!(w.verify("123456", 10), VerifyOutcome::Verified);
        assert_eq!(
            w.verify("123456", 11),
            VerifyOutcome::NoLiveCode(NoCode::Unknown)
        );
    }

    #[test]
    fn expiry_is_checked_against_the_clock_on_every_read() {
        let mut w = World::new(Rules::default());
        w.issue("123456", 0);
        assert_eq!(
            w.verify("123456", 300),
            VerifyOutcome::NoLiveCode(NoCode::Expired)
        );
        let mut w = World::new(Rules::default());
        w.issue("123456", 0);
        assert_eq!(w.verify("123456", 299), VerifyOutcome::Verified);
    }

    #[test]
    fn five_wrong_codes_burn_the_code() {
        let mut w = World::new(Rules::default());
        w.issue("123456", 0);
        for remaining in (0..5).rev() {
            assert_eq!(
                w.verify("000000", 1),
                VerifyOutcome::Wrong {
                    attempts_remaining: remaining
                }
            );
        }
        assert_eq!(
            w.verify("123456", 2),
            VerifyOutcome::NoLiveCode(NoCode::Burned)
        );
    }

    #[test]
    fn a_new_code_starts_a_fresh_attempt_budget_and_drops_burned_codes() {
        let mut w = World::new(no_limits());
        w.issue("111111", 0);
        for _ in 0..5 {
            w.verify("000000", 1);
        }
        w.issue("222222", 2);
        assert_eq!(
            w.verify("111111", 3),
            VerifyOutcome::Wrong {
                attempts_remaining: 4
            }
        );
        assert_eq!(w.verify("222222", 3), VerifyOutcome::Verified);
    }

    #[test]
    fn the_three_most_recent_codes_are_live_and_one_use_consumes_all() {
        let mut w = World::new(no_limits());
        for (i, code) in ["111111", "222222", "333333", "444444"].iter().enumerate() {
            w.issue(code, i as u64);
        }
        assert_eq!(
            w.verify("111111", 5),
            VerifyOutcome::Wrong {
                attempts_remaining: 4
            }
        );
        assert_eq!(w.verify("222222", 5), VerifyOutcome::Verified);
        assert_eq!(
            w.verify("444444", 5),
            VerifyOutcome::NoLiveCode(NoCode::Unknown)
        );
    }

    #[test]
    fn each_code_keeps_its_own_expiry() {
        let mut w = World::new(no_limits());
        w.issue("111111", 0);
        w.issue("222222", 100);
        assert_eq!(
            w.verify("111111", 350),
            VerifyOutcome::Wrong {
                attempts_remaining: 4
            }
        );
        assert_eq!(w.verify("222222", 350), VerifyOutcome::Verified);
    }

    #[test]
    fn resend_cooldown_refuses_with_the_remaining_wait() {
        let mut w = World::new(Rules::default());
        w.issue("111111", 0);
        assert_eq!(
            w.issue("222222", 45),
            IssueOutcome::RateLimited {
                limit: Limit::ResendCooldown,
                retry_after: Duration::from_secs(15)
            }
        );
        assert_eq!(
            w.verify("111111", 46),
            VerifyOutcome::Verified,
            "refusal changed nothing"
        );
        assert_eq!(w.issue("333333", 60), issued(60));
    }

    #[test]
    fn hourly_cap_counts_only_issued_codes_in_the_last_hour() {
        let mut w = World::new(Rules {
            resend_cooldown: Duration::ZERO,
            ..Rules::default()
        });
        for i in 0..4 {
            assert_eq!(w.issue("111111", i * 100), issued(0));
        }
        assert_eq!(
            w.issue("111111", 400),
            issued(3200),
            "the fifth code says when a sixth is possible"
        );
        assert_eq!(
            w.issue("111111", 500),
            IssueOutcome::RateLimited {
                limit: Limit::HourlyCap,
                retry_after: Duration::from_secs(3100)
            }
        );
        assert_eq!(w.issue("111111", 3600), issued(100));
    }

    /// Found by the load test: two requests read the clock in one order and
    /// reached the store in the other, and with no cooldown the later one was
    /// refused for a wait of a few milliseconds.
    #[test]
    fn a_request_that_read_the_clock_earlier_is_not_refused_by_a_later_issue() {
        let mut w = World::new(no_limits());
        w.issue("111111", 10);
        assert!(matches!(w.issue("222222", 9), IssueOutcome::Issued { .. }));
        assert_eq!(w.verify("222222", 9), VerifyOutcome::Verified);
    }

    #[test]
    fn record_expiry_covers_codes_and_the_cap_window() {
        let mut w = World::new(Rules::default());
        w.issue("111111", 0);
        let record = w.record.clone().expect("stored");
        assert_eq!(record.expires_at(), T0.plus(CAP_WINDOW));
        assert_eq!(
            AddressRecord::default().expires_at(),
            Timestamp::from_millis(0)
        );
    }
}
