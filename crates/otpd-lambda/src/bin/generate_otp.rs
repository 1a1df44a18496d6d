//! GenerateOTP: `POST /GenerateOTP` behind API Gateway (payload format 2.0).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    otpd_lambda::init_telemetry("GenerateOTP");
    let state = otpd_lambda::app_state().await?;
    otpd_lambda::run_http(otpd_http::generate_router(state)).await
}
