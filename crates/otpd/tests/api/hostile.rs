//! Refused requests: each gets the documented 4xx JSON body, sends no mail and
//! leaves the server healthy.

use serde_json::json;

use crate::helpers::{App, Catcher, Client};

#[tokio::test]
async fn hostile_input_gets_a_4xx_sends_nothing_and_the_server_stays_healthy() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[]).await;
    let long = format!("{}@example.com", "a".repeat(288));
    assert_eq!(long.len(), 300);
    let json_cases: Vec<(&str, serde_json::Value, u16, &str)> = vec![
        ("/GenerateOTP", json!({}), 400, "invalid_request"),
        ("/GenerateOTP", json!({"email": 42}), 400, "invalid_request"),
        (
            "/GenerateOTP",
            json!({"email": null}),
            400,
            "invalid_request",
        ),
        (
            "/GenerateOTP",
            json!({"email": ["a@example.com"]}),
            400,
            "invalid_request",
        ),
        (
            "/GenerateOTP",
            json!(["a@example.com"]),
            400,
            "invalid_request",
        ),
        (
            "/GenerateOTP",
            json!({"email": "a@example.com\r\nBcc: b@example.com"}),
            400,
            "invalid_email",
        ),
        (
            "/GenerateOTP",
            json!({"email": "a@example.com\n"}),
            400,
            "invalid_email",
        ),
        (
            "/GenerateOTP",
            json!({"email": "Mallory <m@example.com>"}),
            400,
            "invalid_email",
        ),
        (
            "/GenerateOTP",
            json!({"email": "\"Mallory\" m@example.com"}),
            400,
            "invalid_email",
        ),
        ("/GenerateOTP", json!({"email": long}), 400, "invalid_email"),
        ("/GenerateOTP", json!({"email": ""}), 400, "invalid_email"),
        (
            "/GenerateOTP",
            json!({"email": "a@b.com, c@d.com"}),
            400,
            "invalid_email",
        ),
        (
            "/VerifyOTP",
            json!({"email": "a@example.com", "otp": 123456}),
            400,
            "invalid_request",
        ),
        (
            "/VerifyOTP",
            json!({"email": "a@example.com", "otp": null}),
            400,
            "invalid_request",
        ),
        (
            "/VerifyOTP",
            json!({"email": "a@example.com", "otp": "12345"}),
            400,
            "invalid_request",
        ),
        (
            "/VerifyOTP",
            json!({"email": "a@example.com", "otp": "12345a"}),
            400,
            "invalid_request",
        ),
        (
            "/VerifyOTP",
            json!({"email": "a@example.com"}),
            400,
            "invalid_request",
        ),
        (
            "/VerifyOTP",
            json!({"email": "a\r\n@example.com", "otp": "123456"}),
            400,
            "invalid_email",
        ),
    ];
    for (path, body, status, error) in json_cases {
        let r = app.client.post_json(path, &body).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (status, Some(error)),
            "{path} {body}"
        );
        assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    /// Route, content type, body, expected status and error code.
    type RawCase = (
        &'static str,
        Option<&'static str>,
        Vec<u8>,
        u16,
        &'static str,
    );
    let raw_cases: Vec<RawCase> = vec![
        (
            "/GenerateOTP",
            Some("application/json"),
            b"{\"email\": ".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/GenerateOTP",
            Some("application/json"),
            b"\xff\xfe".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/GenerateOTP",
            Some("application/json"),
            b"".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/GenerateOTP",
            Some("text/plain"),
            b"{\"email\":\"a@example.com\"}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "/GenerateOTP",
            None,
            b"{\"email\":\"a@example.com\"}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "/VerifyOTP",
            Some("application/x-www-form-urlencoded"),
            b"email=a".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "/GenerateOTP",
            Some("application/json"),
            big_body(),
            413,
            "payload_too_large",
        ),
        (
            "/VerifyOTP",
            Some("application/json"),
            big_body(),
            413,
            "payload_too_large",
        ),
    ];
    for (path, ct, body, status, error) in raw_cases {
        let r = app.client.post_raw(path, ct, body).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (status, Some(error)),
            "{path} {ct:?}"
        );
    }
    let (status, _, _) = app.client.get("/healthz").await;
    assert_eq!(status, 200, "still healthy");
    assert_eq!(
        app.client.generate("fine@example.com").await.status,
        200,
        "still serving"
    );
    smtp.wait_for("fine@example.com", 1).await;
    assert_eq!(smtp.messages().len(), 1, "no refused request sent mail");
}

/// 2 MB of valid JSON, so only its size is wrong.
fn big_body() -> Vec<u8> {
    json!({ "email": "a@example.com", "padding": "x".repeat(2 * 1024 * 1024) })
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[]).await;
    let r = app.client.post_json("/nope", &json!({})).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (404, Some("not_found"))
    );
    let r = crate::helpers::reply(
        app.client
            .raw()
            .get(format!("{}/GenerateOTP", app.client.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    for path in ["/healthz", "/nope"] {
        let (_, headers, _) = app.client.get(path).await;
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(
                headers.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{name} on {path}"
            );
        }
    }
}

#[tokio::test]
async fn domains_outside_the_allowlist_get_403_and_no_mail() {
    let smtp = Catcher::start();
    let app = App::start(
        smtp.port,
        &[("OTPD_ALLOWED_DOMAINS", "corp.example,*.team.example")],
    )
    .await;
    let refused = app.client.generate("eve@gmail.example").await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["error"], "email_domain_not_allowed");
    let look_alike = app.client.generate("eve@corp.example.evil.example").await;
    assert_eq!(look_alike.status, 403);
    assert_eq!(app.client.generate("bob@Corp.Example").await.status, 200);
    assert_eq!(app.client.generate("kim@eu.team.example").await.status, 200);
    smtp.wait_for("kim@eu.team.example", 1).await;
    smtp.wait_for("bob@corp.example", 1).await;
    assert_eq!(smtp.messages().len(), 2, "refused domains got no mail");
}

#[tokio::test]
async fn each_client_ip_has_its_own_budget_per_route() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[("OTPD_IP_REQUESTS_PER_MINUTE", "3")]).await;
    for i in 0..3 {
        assert_eq!(
            app.client
                .generate(&format!("ip{i}@example.com"))
                .await
                .status,
            200
        );
    }
    let limited = app.client.generate("ip3@example.com").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["error"], "rate_limited");
    let wait: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(limited.body["retry_after"], wait);
    // Malformed requests count too: the budget is per request, not per success.
    assert_eq!(
        app.client
            .post_json("/GenerateOTP", &json!({}))
            .await
            .status,
        429
    );
    // The other route has its own budget.
    assert_eq!(
        app.client.verify("ip0@example.com", "000000").await.status,
        401
    );
}

#[tokio::test]
async fn forwarded_for_is_ignored_unless_the_proxy_is_trusted() {
    let smtp = Catcher::start();
    let app = App::start(smtp.port, &[("OTPD_IP_REQUESTS_PER_MINUTE", "1")]).await;
    assert_eq!(verify_forwarded_for(&app.client, "198.51.100.1").await, 410);
    assert_eq!(
        verify_forwarded_for(&app.client, "198.51.100.2").await,
        429,
        "a forged header does not buy a new budget"
    );

    let trusting = App::start(
        smtp.port,
        &[
            ("OTPD_IP_REQUESTS_PER_MINUTE", "1"),
            ("OTPD_TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    )
    .await;
    let client = &trusting.client;
    assert_eq!(verify_forwarded_for(client, "198.51.100.1").await, 410);
    assert_eq!(
        verify_forwarded_for(client, "198.51.100.2").await,
        410,
        "behind a trusted proxy each client counts"
    );
    assert_eq!(verify_forwarded_for(client, "198.51.100.1").await, 429);
}

/// A verify that claims to come from `ip` through a proxy; its status.
async fn verify_forwarded_for(client: &Client, ip: &str) -> u16 {
    client
        .raw()
        .post(format!("{}/VerifyOTP", client.base))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": "x@example.com", "otp": "123456"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let smtp = Catcher::start();
    let app = App::start(
        smtp.port,
        &[("OTPD_ALLOWED_ORIGINS", "https://app.example.com")],
    )
    .await;
    let preflight = |origin: &'static str| {
        let client = app.client.clone();
        async move {
            client
                .raw()
                .request(
                    reqwest::Method::OPTIONS,
                    format!("{}/GenerateOTP", client.base),
                )
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
                .send()
                .await
                .unwrap()
        }
    };
    let allowed = preflight("https://app.example.com").await;
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(allowed.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let foreign = preflight("https://evil.example").await;
    let leaked: Vec<_> = foreign
        .headers()
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-allow"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    let simple = app
        .client
        .raw()
        .post(format!("{}/VerifyOTP", app.client.base))
        .header("origin", "https://app.example.com")
        .json(&json!({"email": "x@example.com", "otp": "123456"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        simple.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_ne!(simple.headers()["access-control-allow-origin"], "*");
}
