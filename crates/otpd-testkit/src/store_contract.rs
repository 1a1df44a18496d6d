//! The behaviour every store must show, as functions over any store.
//!
//! A store crate runs them with [`store_contract_tests!`] (issue and verify)
//! and [`outbox_contract_tests!`] (for stores that keep their own outbox).

use std::sync::Arc;
use std::time::Duration;

use otpd_core::delivery::{Attempted, Delivery, RetryPolicy, Step};
use otpd_core::policy::{IssueOutcome, Limit, NoCode, Rules, VerifyOutcome};
use otpd_core::store::{IssueStore, Outbox, Settlement, VerifyStore};
use otpd_core::{Clock, DomainAllowlist, EmailAddress, OtpCode, OtpService};

use crate::{test_keys, CapturingMailer, FakeClock};

pub trait CodeStore: IssueStore + VerifyStore + Send + Sync + 'static {}
impl<T: IssueStore + VerifyStore + Send + Sync + 'static> CodeStore for T {}

fn service(clock: &FakeClock, rules: Rules) -> OtpService {
    OtpService {
        keys: test_keys(),
        rules,
        allowlist: DomainAllowlist::default(),
        clock: Arc::new(clock.clone()),
    }
}

fn delivery(svc: &OtpService) -> Delivery {
    Delivery {
        keys: svc.keys.clone(),
        code_length: svc.rules.code_length,
        retry: RetryPolicy::default(),
    }
}

fn unique_address(tag: &str) -> EmailAddress {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let millis = otpd_core::SystemClock.now().as_millis();
    EmailAddress::parse(&format!("{tag}-{millis}-{n}@contract.example")).unwrap()
}

/// Issues a code the test chose, so stores without an outbox can be tested too.
async fn issue_known(
    store: &dyn IssueStore,
    svc: &OtpService,
    email: &EmailAddress,
    code: &str,
) -> IssueOutcome {
    let code = OtpCode::parse(code, svc.rules.code_length).unwrap();
    let (cmd, mail) = crate::issue_request(&svc.keys, svc.rules, email, &code, svc.clock.now());
    store.issue(cmd, mail).await.unwrap()
}

async fn verify(
    store: &dyn VerifyStore,
    svc: &OtpService,
    email: &EmailAddress,
    code: &str,
) -> VerifyOutcome {
    let code = OtpCode::parse(code, svc.rules.code_length).unwrap();
    svc.verify(store, email.clone(), &code).await.unwrap()
}

fn no_limits() -> Rules {
    Rules {
        resend_cooldown: Duration::ZERO,
        max_codes_per_hour: 0,
        ..Rules::default()
    }
}

pub async fn a_code_verifies_exactly_once(store: &impl CodeStore) {
    let clock = FakeClock::new();
    let svc = service(&clock, Rules::default());
    let email = unique_address("once");
    assert!(matches!(
        issue_known(store, &svc, &email, "123456").await,
        IssueOutcome::Issued { .. }
    ));
    assert_eq!(
        verify(store, &svc, &email, "123456").await,
        VerifyOutcome::Verified
    );
    assert_eq!(
        verify(store, &svc, &email, "123456").await,
        VerifyOutcome::NoLiveCode(NoCode::Unknown)
    );
}

pub async fn unknown_address_has_no_live_code(store: &impl CodeStore) {
    let clock = FakeClock::new();
    let svc = service(&clock, Rules::default());
    let email = unique_address("unknown");
    assert_eq!(
        verify(store, &svc, &email, "123456").await,
        VerifyOutcome::NoLiveCode(NoCode::Unknown)
    );
}

pub async fn wrong_guesses_are_counted_and_burn_the_codes(store: &impl CodeStore) {
    let clock = FakeClock::new();
    let svc = service(&clock, Rules::default());
    let email = unique_address("burn");
    issue_known(store, &svc, &email, "123456").await;
    for remaining in (0..5).rev() {
        assert_eq!(
            verify(store, &svc, &email, "654321").await,
            VerifyOutcome::Wrong {
                attempts_remaining: remaining
            }
        );
    }
    assert_eq!(
        verify(store, &svc, &email, "123456").await,
        VerifyOutcome::NoLiveCode(NoCode::Burned)
    );
}

pub async fn expiry_follows_the_clock(store: &impl CodeStore) {
    let clock = FakeClock::new();
    let svc = service(&clock, Rules::default());
    let email = unique_address("expiry");
    issue_known(store, &svc, &email, "123456").await;
    clock.advance(Duration::from_secs(300));
    assert_eq!(
        verify(store, &svc, &email, "123456").await,
        VerifyOutcome::NoLiveCode(NoCode::Expired)
    );
}

pub async fn resent_codes_are_all_live_and_one_use_consumes_all(store: &impl CodeStore) {
    let clock = FakeClock::new();
    let svc = service(&clock, no_limits());
    let email = unique_address("resend");
    for code in ["111111", "222222", "333333", "444444"] {
        issue_known(store, &svc, &email, code).await;
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(
        verify(store, &svc, &email, "111111").await,
        VerifyOutcome::Wrong {
            attempts_remaining: 4
        },
        "only the three most recent codes are live"
    );
    assert_eq!(
        verify(store, &svc, &email, "222222").await,
        VerifyOutcome::Verified
    );
    assert_eq!(
        verify(store, &svc, &email, "444444").await,
        VerifyOutcome::NoLiveCode(NoCode::Unknown)
    );
}

pub async fn cooldown_refusal_changes_nothing(store: &impl CodeStore) {
    let clock = FakeClock::new();
    let svc = service(&clock, Rules::default());
    let email = unique_address("cooldown");
    issue_known(store, &svc, &email, "123456").await;
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        issue_known(store, &svc, &email, "999999").await,
        IssueOutcome::RateLimited {
            limit: Limit::ResendCooldown,
            retry_after: Duration::from_secs(50)
        }
    );
    assert_eq!(
        verify(store, &svc, &email, "999999").await,
        VerifyOutcome::Wrong {
            attempts_remaining: 4
        },
        "the refused code was not stored"
    );
    assert_eq!(
        verify(store, &svc, &email, "123456").await,
        VerifyOutcome::Verified
    );
}

pub async fn concurrent_correct_verifies_succeed_once(store: &impl CodeStore) {
    let clock = FakeClock::new();
    let svc = service(&clock, Rules::default());
    let email = unique_address("race");
    issue_known(store, &svc, &email, "123456").await;
    let outcomes =
        futures::future::join_all((0..50).map(|_| verify(store, &svc, &email, "123456"))).await;
    let successes = outcomes
        .iter()
        .filter(|o| **o == VerifyOutcome::Verified)
        .count();
    assert_eq!(successes, 1, "{outcomes:?}");
}

/// Every issued code leaves exactly one mail in the outbox, and a refused one none.
pub async fn issued_codes_are_queued_and_delivered_once<S: CodeStore + Outbox>(store: &S) {
    let clock = FakeClock::new();
    let svc = service(&clock, Rules::default());
    let mailer = CapturingMailer::default();
    let delivery = delivery(&svc);
    drain(store, &delivery, &CapturingMailer::default(), &clock).await;
    let email = unique_address("outbox");
    svc.generate(store, email.clone()).await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(matches!(
        svc.generate(store, email.clone()).await.unwrap(),
        IssueOutcome::RateLimited { .. }
    ));
    assert_eq!(store.stats(clock.now()).await.unwrap().depth, 1);
    assert_eq!(drain(store, &delivery, &mailer, &clock).await, 1);
    let sent = mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, email);
    assert_eq!(sent[0].lifetime, Duration::from_secs(300));
    assert_eq!(
        verify(store, &svc, &email, sent[0].code.expose()).await,
        VerifyOutcome::Verified
    );
    assert_eq!(store.stats(clock.now()).await.unwrap().depth, 0);
}

/// A failed send is retried after a backoff; a claimed mail is hidden meanwhile.
pub async fn failed_sends_are_retried_after_backoff<S: CodeStore + Outbox>(store: &S) {
    let clock = FakeClock::new();
    let svc = service(&clock, Rules::default());
    let mailer = CapturingMailer::default();
    let delivery = delivery(&svc);
    drain(store, &delivery, &CapturingMailer::default(), &clock).await;
    svc.generate(store, unique_address("retry")).await.unwrap();
    mailer.fail(Some(false));
    let steps = steps_of(
        delivery
            .deliver_due(store, &mailer, clock.now(), 10)
            .await
            .unwrap(),
    );
    let [Step::Retried { after, .. }] = steps.as_slice() else {
        panic!("expected one retry, got {steps:?}");
    };
    let early = delivery
        .deliver_due(store, &mailer, clock.now(), 10)
        .await
        .unwrap();
    assert_eq!(early, Vec::new(), "not due before its backoff");
    mailer.fail(None);
    clock.advance(*after);
    let later = steps_of(
        delivery
            .deliver_due(store, &mailer, clock.now(), 10)
            .await
            .unwrap(),
    );
    assert_eq!(later, vec![Step::Delivered]);
    assert_eq!(mailer.sent().len(), 1);
}

/// A claimed mail is hidden from other claims until it is settled or its
/// lease ends (its worker stopped mid-send); a settled mail is gone.
pub async fn claims_are_leased_until_settled<S: CodeStore + Outbox>(store: &S) {
    let clock = FakeClock::new();
    let svc = service(&clock, Rules::default());
    drain(store, &delivery(&svc), &CapturingMailer::default(), &clock).await;
    svc.generate(store, unique_address("lease")).await.unwrap();
    let lease = Duration::from_secs(120);
    let claimed = store.claim_due(clock.now(), lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(store.claim_due(clock.now(), lease, 10).await.unwrap(), []);
    assert_eq!(
        store.next_due().await.unwrap(),
        Some(clock.now().plus(lease))
    );
    assert_eq!(store.stats(clock.now()).await.unwrap().depth, 1);

    clock.advance(lease);
    let again = store.claim_due(clock.now(), lease, 10).await.unwrap();
    assert_eq!(again, claimed);
    store
        .settle(vec![(again[0].id, Settlement::Delivered)])
        .await
        .unwrap();
    let later = clock.now().plus(lease * 2);
    assert_eq!(store.claim_due(later, lease, 10).await.unwrap(), []);
    assert_eq!(store.next_due().await.unwrap(), None);
}

fn steps_of(attempted: Vec<Attempted>) -> Vec<Step> {
    attempted.into_iter().map(|a| a.step).collect()
}

/// Delivers every due mail, two at a time; returns how many were delivered.
pub async fn drain<S: Outbox>(
    store: &S,
    delivery: &Delivery,
    mailer: &CapturingMailer,
    clock: &FakeClock,
) -> usize {
    let mut delivered = 0;
    loop {
        let steps = steps_of(
            delivery
                .deliver_due(store, mailer, clock.now(), 2)
                .await
                .unwrap(),
        );
        if steps.is_empty() {
            return delivered;
        }
        assert!(steps.iter().all(|s| *s == Step::Delivered), "{steps:?}");
        delivered += steps.len();
    }
}

/// Runs the issue/verify contract against the store built by `$make` (an
/// async expression evaluated once per test).
#[macro_export]
macro_rules! store_contract_tests {
    ($make:expr) => {
        $crate::store_contract_tests!(@tests $make;
            a_code_verifies_exactly_once,
            unknown_address_has_no_live_code,
            wrong_guesses_are_counted_and_burn_the_codes,
            expiry_follows_the_clock,
            resent_codes_are_all_live_and_one_use_consumes_all,
            cooldown_refusal_changes_nothing,
            concurrent_correct_verifies_succeed_once,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let store = $make;
                $crate::store_contract::$name(&store).await;
            }
        )*
    };
}

/// Runs the outbox contract against the store built by `$make`.
#[macro_export]
macro_rules! outbox_contract_tests {
    ($make:expr) => {
        $crate::store_contract_tests!(@tests $make;
            issued_codes_are_queued_and_delivered_once,
            failed_sends_are_retried_after_backoff,
            claims_are_leased_until_settled,
        );
    };
}
