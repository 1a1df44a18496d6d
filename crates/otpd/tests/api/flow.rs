//! The contract's rules, one test each.

use std::time::Duration;

use crate::helpers::{App, Catcher};

#[tokio::test]
async fn happy_path_code_from_the_mail_verifies() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[]).await;
    let generated = app.client.generate("  Alice@Example.COM ").await;
    assert_eq!(generated.status, 200, "{:?}", generated.body);
    assert_eq!(generated.body["email"], "alice@example.com");
    assert_eq!(generated.body["expires_in"], 300);
    assert_eq!(generated.body["resend_after"], 60);

    let mail = smtp.wait_for("alice@example.com", 1).await.remove(0);
    assert_eq!(mail.content_type, "multipart/alternative");
    let code = mail.code();
    assert!(
        mail.html.contains(&code),
        "the HTML part shows the code too"
    );
    assert!(mail.subject.contains(&code) && mail.subject.contains("Acme Sign-in"));
    assert!(mail.text.contains("5 minutes") && mail.html.contains("5 minutes"));

    let verified = app.client.verify("alice@example.com", &code).await;
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    assert_eq!(
        verified.body,
        serde_json::json!({"verified": true, "email": "alice@example.com"})
    );
    app.stop().await;
}

#[tokio::test]
async fn a_used_code_answers_410() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[]).await;
    app.client.generate("reuse@example.com").await;
    let code = smtp.code("reuse@example.com", 1).await;
    assert_eq!(
        app.client.verify("reuse@example.com", &code).await.status,
        200
    );
    let again = app.client.verify("reuse@example.com", &code).await;
    assert_eq!(again.status, 410);
    assert_eq!(again.body["error"], "code_expired");
}

#[tokio::test]
async fn five_wrong_codes_count_down_then_burn_the_code() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[]).await;
    app.client.generate("guess@example.com").await;
    let code = smtp.code("guess@example.com", 1).await;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for remaining in (0..5).rev() {
        let r = app.client.verify("guess@example.com", wrong).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.body["error"], "invalid_code");
        assert_eq!(r.body["attempts_remaining"], remaining);
    }
    let burned = app.client.verify("guess@example.com", &code).await;
    assert_eq!(burned.status, 410, "the right code no longer works");
}

#[tokio::test]
async fn a_code_expires_after_its_lifetime() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[]).await;
    app.client.generate("late@example.com").await;
    let code = smtp.code("late@example.com", 1).await;
    app.clock.advance(Duration::from_secs(300));
    let r = app.client.verify("late@example.com", &code).await;
    assert_eq!(r.status, 410);
    assert_eq!(r.body["error"], "code_expired");
}

#[tokio::test]
async fn after_a_resend_both_codes_work_and_one_use_consumes_both() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[]).await;
    app.client.generate("twice@example.com").await;
    let first = smtp.code("twice@example.com", 1).await;
    app.clock.advance(Duration::from_secs(60));
    assert_eq!(app.client.generate("twice@example.com").await.status, 200);
    let second = smtp.code("twice@example.com", 2).await;

    // Either code is accepted: the earlier one (a slow mail) too.
    assert_eq!(
        app.client.verify("twice@example.com", &first).await.status,
        200
    );
    assert_eq!(
        app.client.verify("twice@example.com", &second).await.status,
        410
    );
}

#[tokio::test]
async fn the_newer_code_is_accepted_after_a_resend() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[]).await;
    app.client.generate("newer@example.com").await;
    let first = smtp.code("newer@example.com", 1).await;
    app.clock.advance(Duration::from_secs(60));
    app.client.generate("newer@example.com").await;
    let second = smtp.code("newer@example.com", 2).await;
    assert_eq!(
        app.client.verify("newer@example.com", &second).await.status,
        200
    );
    assert_eq!(
        app.client.verify("newer@example.com", &first).await.status,
        410
    );
}

#[tokio::test]
async fn resend_cooldown_answers_429_with_retry_after() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[]).await;
    app.client.generate("eager@example.com").await;
    app.clock.advance(Duration::from_secs(20));
    let r = app.client.generate("eager@example.com").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["error"], "rate_limited");
    assert_eq!(r.body["retry_after"], 40);
    assert_eq!(r.headers["retry-after"], "40");
    smtp.wait_for("eager@example.com", 1).await;
    app.clock.advance(Duration::from_secs(40));
    assert_eq!(app.client.generate("eager@example.com").await.status, 200);
    assert_eq!(
        smtp.wait_for("eager@example.com", 2).await.len(),
        2,
        "the refused request sent nothing"
    );
}

#[tokio::test]
async fn hourly_cap_answers_429_until_the_window_moves() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[("OTPD_RESEND_COOLDOWN", "0")]).await;
    for _ in 0..5 {
        assert_eq!(app.client.generate("often@example.com").await.status, 200);
        app.clock.advance(Duration::from_secs(1));
    }
    let capped = app.client.generate("often@example.com").await;
    assert_eq!(capped.status, 429);
    assert_eq!(capped.body["error"], "rate_limited");
    let wait = capped.body["retry_after"].as_u64().unwrap();
    assert!((3590..=3600).contains(&wait), "{wait}");
    // Delivered before the clock jumps past their codes' lifetime.
    smtp.wait_for("often@example.com", 5).await;
    app.clock.advance(Duration::from_secs(wait));
    assert_eq!(app.client.generate("often@example.com").await.status, 200);
    assert_eq!(smtp.wait_for("often@example.com", 6).await.len(), 6);
}

#[tokio::test]
async fn unknown_and_expired_addresses_get_the_same_answer() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[]).await;
    app.client.generate("known@example.com").await;
    let code = smtp.code("known@example.com", 1).await;
    app.clock.advance(Duration::from_secs(301));
    let expired = app.client.verify("known@example.com", &code).await;
    let unknown = app.client.verify("never@example.com", &code).await;
    assert_eq!(expired.status, 410);
    assert_eq!(unknown.status, expired.status);
    assert_eq!(unknown.body, expired.body);
}

#[tokio::test]
async fn fifty_concurrent_correct_verifies_succeed_exactly_once() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[]).await;
    app.client.generate("race@example.com").await;
    let code = smtp.code("race@example.com", 1).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let client = app.client.clone();
            let code = code.clone();
            tokio::spawn(async move { client.verify("race@example.com", &code).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 410),
        "{statuses:?}"
    );
}
