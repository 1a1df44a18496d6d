//! The SES mailer against the local emulator: the message it hands over is
//! the complete multipart one.

#![cfg(feature = "ses")]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use otpd_core::{CodeLength, CodeMail, EmailAddress, MailError, Mailer, OtpCode};
use otpd_mail::{Composer, SesMailer, Templates};

async fn client() -> aws_sdk_sesv2::Client {
    aws_sdk_sesv2::Client::new(&otpd_testkit::moto::sdk_config("eu-west-1").await)
}

fn mail(to: &str, code: &str) -> CodeMail {
    CodeMail {
        to: EmailAddress::parse(to).unwrap(),
        code: OtpCode::parse(code, CodeLength::default()).unwrap(),
        lifetime: Duration::from_secs(300),
    }
}

fn composer(from: &str) -> Composer {
    Composer {
        from: from.parse().unwrap(),
        product: "Acme".into(),
        templates: Templates::default(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_the_multipart_message_from_a_verified_identity() {
    let client = client().await;
    client
        .create_email_identity()
        .email_identity("ses-ok.example")
        .send()
        .await
        .unwrap();
    let mailer = SesMailer::new(client, composer("Acme <no-reply@ses-ok.example>"));
    mailer
        .send(&mail("ses-to@example.com", "314159"))
        .await
        .unwrap();

    let url = format!("{}/moto-api/data.json", otpd_testkit::moto::endpoint());
    let sent: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let raw: Vec<String> = sent["ses"]["RawMessage"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["raw_data"].as_str().map(str::to_owned))
        .filter(|m| m.contains("ses-to@example.com"))
        .collect();
    assert_eq!(raw.len(), 1, "{sent}");
    assert!(raw[0].contains("multipart/alternative"));
    assert!(raw[0].contains("text/plain") && raw[0].contains("text/html"));
    assert!(raw[0].contains("314159"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unverified_sender_is_a_permanent_failure() {
    let mailer = SesMailer::new(client().await, composer("x@unverified-sender.example"));
    let result = mailer.send(&mail("someone@example.com", "271828")).await;
    assert!(matches!(result, Err(MailError::Permanent(_))), "{result:?}");
}
