//! The two routes of the contract: `POST /GenerateOTP` and `POST /VerifyOTP`.

use axum::extract::State;
use axum::Json;
use otpd_core::policy::{IssueOutcome, VerifyOutcome};
use otpd_core::store::StoreError;
use otpd_core::{ceil_secs, EmailAddress, GenerateError, OtpCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::ApiJson;
use crate::state::{AppState, ClientIp};
use crate::{metrics, ApiError, ErrorBody};

/// A JSON Schema pattern for the addresses the API accepts: one plain
/// `local@domain`, spaces or tabs around it. It describes the common ASCII
/// case conservatively (every match is accepted); internationalised domains
/// are accepted as well and normalised to their `xn--` form.
pub const EMAIL_PATTERN: &str = r"^[ \t]*[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,32}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,15}){0,2}@([A-Za-z0-9]{1,20}(-[A-Za-z0-9]{1,20})?\.){1,3}[A-Za-z][A-Za-z0-9]{0,20}(-[A-Za-z0-9]{1,20})?[ \t]*$";

#[derive(Debug, Deserialize, ToSchema)]
pub struct GenerateRequest {
    /// The address to send a code to.
    #[schema(example = "user@example.com", max_length = 254)]
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GenerateResponse {
    /// The normalised address the code was sent to.
    #[schema(example = "user@example.com")]
    pub email: String,
    /// Seconds the code stays valid.
    #[schema(example = 300)]
    pub expires_in: u64,
    /// Seconds before a new code may be requested (0: now).
    #[schema(example = 60)]
    pub resend_after: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyRequest {
    #[schema(example = "user@example.com", max_length = 254)]
    pub email: String,
    /// The code from the mail, digits only.
    #[schema(example = "123456")]
    pub otp: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    /// Always true: failures are error responses.
    pub verified: bool,
    #[schema(example = "user@example.com")]
    pub email: String,
}

fn parse_email(raw: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(raw)
        .map_err(|e| ApiError::InvalidEmail(format!("invalid email address: {e}")))
}

fn store_error(error: StoreError) -> ApiError {
    tracing::error!(error = &error as &dyn std::error::Error, "store failed");
    match error {
        StoreError::Corrupt(_) => ApiError::Internal,
        StoreError::Unavailable(_) | StoreError::Contended => ApiError::Unavailable,
    }
}

/// Send a one-time code to an email address.
#[utoipa::path(
    post,
    path = "/GenerateOTP",
    tag = "otp",
    request_body(content = GenerateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A code was issued and its mail queued.", body = GenerateResponse),
        (status = 400, description = "`invalid_request` or `invalid_email`.", body = ErrorBody),
        (status = 403, description = "`email_domain_not_allowed`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: resend cooldown, hourly cap or per-IP limit.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "`internal`.", body = ErrorBody),
        (status = 503, description = "`unavailable`.", body = ErrorBody),
    )
)]
pub async fn generate(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Result<ApiJson<GenerateRequest>, ApiError>,
) -> Result<Json<GenerateResponse>, ApiError> {
    state.generate_limit.admit(ip)?;
    let ApiJson(request) = body?;
    let email = parse_email(&request.email)?;
    let outcome = match state
        .service
        .generate(state.stores.issue.as_ref(), email.clone())
        .await
    {
        Ok(outcome) => outcome,
        Err(GenerateError::DomainNotAllowed) => return Err(ApiError::DomainNotAllowed),
        Err(GenerateError::Store(e)) => return Err(store_error(e)),
    };
    metrics::record_issue(&outcome);
    match outcome {
        IssueOutcome::Issued {
            expires_in,
            resend_after,
        } => {
            state.mail_queued.notify_one();
            tracing::info!(address = %state.service.keys.address_tag(&email), "code issued");
            Ok(Json(GenerateResponse {
                email: email.to_string(),
                expires_in: ceil_secs(expires_in),
                resend_after: ceil_secs(resend_after),
            }))
        }
        IssueOutcome::RateLimited { retry_after, .. } => Err(ApiError::RateLimited {
            retry_after: ceil_secs(retry_after).max(1),
        }),
    }
}

/// Check a code; a correct one is consumed.
#[utoipa::path(
    post,
    path = "/VerifyOTP",
    tag = "otp",
    request_body(content = VerifyRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The code was right and is now used.", body = VerifyResponse),
        (status = 400, description = "`invalid_request` or `invalid_email`.", body = ErrorBody),
        (status = 401, description = "`invalid_code`, with `attempts_remaining`.", body = ErrorBody),
        (status = 410, description = "`code_expired`: no live code (expired, used, never issued or burned).", body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: per-IP limit.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "`internal`.", body = ErrorBody),
        (status = 503, description = "`unavailable`.", body = ErrorBody),
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Result<ApiJson<VerifyRequest>, ApiError>,
) -> Result<Json<VerifyResponse>, ApiError> {
    state.verify_limit.admit(ip)?;
    let ApiJson(request) = body?;
    let email = parse_email(&request.email)?;
    let code = OtpCode::parse(&request.otp, state.service.rules.code_length)
        .map_err(|e| ApiError::InvalidRequest(format!("invalid otp: {e}")))?;
    let outcome = state
        .service
        .verify(state.stores.verify.as_ref(), email.clone(), &code)
        .await
        .map_err(store_error)?;
    metrics::record_verify(&outcome);
    tracing::info!(address = %state.service.keys.address_tag(&email), ?outcome, "verification");
    match outcome {
        VerifyOutcome::Verified => Ok(Json(VerifyResponse {
            verified: true,
            email: email.to_string(),
        })),
        VerifyOutcome::Wrong { attempts_remaining } => {
            Err(ApiError::InvalidCode { attempts_remaining })
        }
        VerifyOutcome::NoLiveCode(_) => Err(ApiError::CodeExpired),
    }
}
