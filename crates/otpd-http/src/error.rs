//! The only place that decides an error's status code and JSON body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// Every error the API answers, one variant per documented `error` code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidEmail(String),
    #[error("this email domain may not request codes")]
    DomainNotAllowed,
    #[error("the code is wrong")]
    InvalidCode { attempts_remaining: u32 },
    #[error("there is no live code for this address: it expired, was used, was never sent or was locked after too many wrong attempts; request a new one")]
    CodeExpired,
    #[error("too many requests; try again in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("the request body is larger than 16 KiB")]
    PayloadTooLarge,
    #[error("the request body must be JSON sent with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("no such resource")]
    NotFound,
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    #[error("an internal error occurred")]
    Internal,
    #[error("the service is temporarily unavailable; try again shortly")]
    Unavailable,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable error code.
    #[schema(example = "rate_limited")]
    pub error: &'static str,
    /// A sentence for people.
    pub message: String,
    /// Seconds to wait before retrying (429 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Wrong guesses left before the codes are burned (401 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_remaining: Option<u32>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) | Self::InvalidEmail(_) => StatusCode::BAD_REQUEST,
            Self::DomainNotAllowed => StatusCode::FORBIDDEN,
            Self::InvalidCode { .. } => StatusCode::UNAUTHORIZED,
            Self::CodeExpired => StatusCode::GONE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidEmail(_) => "invalid_email",
            Self::DomainNotAllowed => "email_domain_not_allowed",
            Self::InvalidCode { .. } => "invalid_code",
            Self::CodeExpired => "code_expired",
            Self::RateLimited { .. } => "rate_limited",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code(),
            message: self.to_string(),
            retry_after: match self {
                Self::RateLimited { retry_after } => Some(*retry_after),
                _ => None,
            },
            attempts_remaining: match self {
                Self::InvalidCode { attempts_remaining } => Some(*attempts_remaining),
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Self::RateLimited { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}
