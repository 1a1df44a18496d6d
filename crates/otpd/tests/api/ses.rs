//! `OTPD_MAILER=ses`: otpd serve delivering through Amazon SES, here the
//! local emulator, configured only by the AWS SDK's standard variables.

use crate::helpers::{first_code, Proc, PATIENCE};

#[tokio::test(flavor = "multi_thread")]
async fn serve_delivers_through_ses() {
    let endpoint = otpd_testkit::moto::endpoint();
    let aws = otpd_testkit::moto::sdk_config("us-east-1").await;
    aws_sdk_sesv2::Client::new(&aws)
        .create_email_identity()
        .email_identity("serve-ses.example")
        .send()
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut vars = Proc::vars(
        dir.path(),
        1,
        &[
            ("OTPD_MAILER", "ses"),
            ("OTPD_MAIL_FROM", "Acme <no-reply@serve-ses.example>"),
        ],
    );
    for (k, v) in [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        vars.push((k.to_owned(), v.to_owned()));
    }
    let server = Proc::spawn(dir.path(), &vars);
    let log = server.stderr.lock().unwrap().join("\n");
    assert!(log.contains("mailer=ses (us-east-1)"), "{log}");
    assert_eq!(
        server.client.generate("ses-user@example.com").await.status,
        200
    );

    let deadline = std::time::Instant::now() + PATIENCE;
    let code = loop {
        let sent: serde_json::Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let raw = sent["ses"]["RawMessage"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["raw_data"].as_str())
            .find(|m| m.contains("ses-user@example.com"))
            .map(str::to_owned);
        if let Some(raw) = raw {
            let subject = raw
                .lines()
                .find(|l| l.starts_with("Subject:"))
                .unwrap_or_default();
            break first_code(subject).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no mail reached SES");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        server
            .client
            .verify("ses-user@example.com", &code)
            .await
            .status,
        200
    );
}
