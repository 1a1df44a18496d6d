//! VerifyOTP: `POST /VerifyOTP` behind API Gateway (payload format 2.0).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    otpd_lambda::init_telemetry("VerifyOTP");
    let state = otpd_lambda::app_state().await?;
    otpd_lambda::run_http(otpd_http::verify_router(state)).await
}
