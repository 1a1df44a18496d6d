//! Property tests of the parser, the generator and the policy. proptest
//! prints the seed of a failing case and keeps it in
//! `proptest-regressions/`, so a failure replays.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use otpd_core::policy::{
    AddressRecord, Change, IssueCommand, IssueOutcome, Rules, VerifyCommand, VerifyOutcome,
    LIVE_CODES,
};
use otpd_core::{CodeKeys, CodeLength, EmailAddress, OtpCode, Secret, Timestamp};
use proptest::prelude::*;
use secrecy::SecretString;

fn keys() -> CodeKeys {
    CodeKeys::derive(&Secret::parse(&SecretString::from("07".repeat(32))).unwrap())
}

/// Strings that look like addresses more often than random text does.
fn address_like() -> impl Strategy<Value = String> {
    let local = "[a-zA-Z0-9._%+\\-!#$&'*/=?^`{|}~\"<> ]{0,20}";
    let domain = "[a-zA-Z0-9.\\-\u{e0}-\u{ff}\\[\\]]{0,20}";
    prop_oneof![
        (local, domain).prop_map(|(l, d)| format!("{l}@{d}")),
        (local, domain, "[\\t \\r\\n\\x00-\\x1f\\x7f]{1,3}")
            .prop_map(|(l, d, c)| format!("{l}{c}@{d}")),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsing_never_panics_and_accepted_addresses_are_clean(input in address_like()) {
        if let Ok(address) = EmailAddress::parse(&input) {
            let text = address.as_str();
            prop_assert!(text.len() <= 254);
            prop_assert!(!text.chars().any(|c| c.is_control() || c.is_whitespace()));
            prop_assert!(!text.contains(['<', '>', '"', '(', ')', ',', ';', '[', ']']));
            prop_assert_eq!(text.matches('@').count(), 1);
            prop_assert_eq!(text, text.to_lowercase());
            prop_assert!(text.is_ascii(), "the domain is IDNA-encoded: {}", text);
        }
    }

    #[test]
    fn normalisation_is_idempotent(input in address_like()) {
        if let Ok(once) = EmailAddress::parse(&input) {
            let twice = EmailAddress::parse(once.as_str());
            prop_assert_eq!(twice.as_ref(), Ok(&once), "round trip of {:?}", input);
        }
    }

    #[test]
    fn control_characters_and_display_names_are_never_accepted(
        local in "[a-z]{1,10}",
        domain in "[a-z]{1,10}\\.[a-z]{2,5}",
        control in prop::char::range('\u{0}', '\u{1f}').prop_filter("tab is trimmed at the ends", |c| *c != '\t'),
        at in 0usize..3,
        name in "[A-Za-z ]{1,12}",
    ) {
        let address = format!("{local}@{domain}");
        let mut with_control = address.clone();
        let position = [0, local.len(), address.len()][at];
        with_control.insert(position, control);
        prop_assert!(EmailAddress::parse(&with_control).is_err(), "{:?}", with_control);
        let with_del = address.replace('@', "\u{7f}@");
        prop_assert!(EmailAddress::parse(&with_del).is_err());
        let display = format!("{name} <{address}>");
        prop_assert!(EmailAddress::parse(&display).is_err(), "{:?}", display);
        prop_assert!(EmailAddress::parse(&address).is_ok());
    }

    #[test]
    fn codes_always_have_the_configured_digits(digits in CodeLength::MIN..=CodeLength::MAX) {
        let length = CodeLength::new(digits).unwrap();
        let code = OtpCode::generate(&mut rand::rngs::OsRng, length);
        prop_assert_eq!(code.expose().len(), usize::from(digits));
        prop_assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
        prop_assert_eq!(OtpCode::parse(code.expose(), length), Ok(code));
    }
}

#[derive(Debug, Clone)]
enum Op {
    Issue(u32),
    /// Guess the code issued `n` issues ago (0 = the latest), if any.
    GuessIssued(usize),
    GuessRandom(u32),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..1_000_000).prop_map(Op::Issue),
        3 => (0usize..5).prop_map(Op::GuessIssued),
        2 => (0u32..1_000_000).prop_map(Op::GuessRandom),
        2 => prop_oneof![0u64..30, 60u64..400].prop_map(Op::Wait),
    ]
}

fn rules() -> impl Strategy<Value = Rules> {
    // Often no cooldown and no cap, so sequences reach many live codes.
    let cooldown = prop_oneof![Just(0u64), 0u64..=120];
    let cap = prop_oneof![Just(0u32), 0u32..=6];
    (1u32..=10, cooldown, cap, 30u64..=600).prop_map(|(attempts, cooldown, cap, ttl)| Rules {
        code_length: CodeLength::default(),
        code_ttl: Duration::from_secs(ttl),
        max_attempts: attempts,
        resend_cooldown: Duration::from_secs(cooldown),
        max_codes_per_hour: cap,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// For any sequence of issues, guesses and waits: a code succeeds at most
    /// once, only while it is among the live codes (the most recent three,
    /// unexpired, not locked), and attempts_remaining never goes up without a
    /// new code.
    #[test]
    fn policy_invariants_hold_for_any_sequence(rules in rules(), ops in prop::collection::vec(op(), 1..60)) {
        let keys = keys();
        let email = EmailAddress::parse("prop@example.com").unwrap();
        let mut record: Option<AddressRecord> = None;
        let mut now = Timestamp::from_millis(1_700_000_000_000);
        // Issued codes in order: (code, issued at, used).
        let mut issued: Vec<(String, Timestamp)> = Vec::new();
        let mut successes: HashMap<String, u32> = HashMap::new();
        let mut last_remaining: Option<u32> = None;
        let mut failed_since_issue = 0u32;
        // Codes issued before this index were consumed or locked.
        let mut live_from = 0usize;

        for op in ops {
            match op {
                Op::Wait(secs) => now = now.plus(Duration::from_secs(secs)),
                Op::Issue(n) => {
                    let code = format!("{n:06}");
                    let cmd = IssueCommand {
                        email: email.clone(),
                        now,
                        rules,
                        digest: keys.digest(&email, &OtpCode::parse(&code, rules.code_length).unwrap()),
                    };
                    let t = cmd.apply(record.clone());
                    if let IssueOutcome::Issued { .. } = t.outcome {
                        issued.push((code, now));
                        last_remaining = None;
                        failed_since_issue = 0;
                    } else {
                        prop_assert_eq!(&t.change, &Change::Keep, "a refusal changes nothing");
                    }
                    record = commit(record, t.change);
                }
                Op::GuessIssued(_) | Op::GuessRandom(_) => {
                    let guess = match op {
                        Op::GuessIssued(back) if back < issued.len() => issued[issued.len() - 1 - back].0.clone(),
                        Op::GuessIssued(_) => continue,
                        Op::GuessRandom(n) => format!("{n:06}"),
                        _ => unreachable!(),
                    };
                    let cmd = VerifyCommand {
                        email: email.clone(),
                        now,
                        rules,
                        candidate: keys.digest(&email, &OtpCode::parse(&guess, rules.code_length).unwrap()),
                    };
                    let t = cmd.apply(record.clone());
                    // The model: is `guess` one of the live codes?
                    let live = failed_since_issue < rules.max_attempts
                        && issued[live_from..]
                            .iter()
                            .rev()
                            .take(LIVE_CODES)
                            .any(|(code, at)| *code == guess && at.plus(rules.code_ttl) > now);
                    match t.outcome {
                        VerifyOutcome::Verified => {
                            prop_assert!(live, "{} verified but not live", guess);
                            let count = successes.entry(guess.clone()).or_default();
                            *count += 1;
                            live_from = issued.len();
                        }
                        VerifyOutcome::Wrong { attempts_remaining } => {
                            prop_assert!(!live, "{} is live but was refused", guess);
                            failed_since_issue += 1;
                            prop_assert_eq!(attempts_remaining, rules.max_attempts - failed_since_issue);
                            if let Some(previous) = last_remaining {
                                prop_assert!(attempts_remaining < previous, "attempts went up");
                            }
                            last_remaining = Some(attempts_remaining);
                            if attempts_remaining == 0 {
                                live_from = issued.len();
                            }
                        }
                        VerifyOutcome::NoLiveCode(_) => prop_assert!(!live, "{} is live but was refused", guess),
                    }
                    record = commit(record, t.change);
                }
            }
        }
        // Each issue of a code can succeed once; a code issued twice may succeed twice.
        for (code, count) in successes {
            let times_issued = issued.iter().filter(|(c, _)| *c == code).count() as u32;
            prop_assert!(count <= times_issued, "{} succeeded {} times", code, count);
        }
    }
}

fn commit(record: Option<AddressRecord>, change: Change) -> Option<AddressRecord> {
    match change {
        Change::Keep => record,
        Change::Put(r) => Some(r),
        Change::Delete => None,
    }
}
