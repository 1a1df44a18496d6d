//! A bare axum server: same routes and request JSON as otpd, no work behind
//! them. `bench/run` measures otpd against it in the same run.

use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

#[derive(Deserialize)]
struct Generate {
    #[allow(dead_code)]
    email: String,
}

#[derive(Deserialize)]
struct Verify {
    #[allow(dead_code)]
    email: String,
    #[allow(dead_code)]
    otp: String,
}

const FIXED: &str = r#"{"email":"bench@example.com","expires_in":300,"resend_after":0}"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let app = Router::new()
        .route(
            "/GenerateOTP",
            post(|Json(_): Json<Generate>| async { FIXED }),
        )
        .route("/VerifyOTP", post(|Json(_): Json<Verify>| async { FIXED }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("baseline listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
