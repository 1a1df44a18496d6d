//! Request bodies: JSON only, errors in the API's own shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::ApiError;

/// The largest request body accepted; anything longer is answered 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// `axum::Json` whose rejections are [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Through a map first: serde would also accept a struct written as a
        // JSON array, which the contract does not allow.
        let axum::Json(object) = axum::Json::<Map<String, Value>>::from_request(req, state)
            .await
            .map_err(|rejection| reject(&rejection))?;
        T::deserialize(Value::Object(object))
            .map(Self)
            .map_err(|e| ApiError::InvalidRequest(format!("invalid request body: {e}")))
    }
}

fn reject(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge
        }
        JsonRejection::JsonDataError(_) => {
            ApiError::InvalidRequest("the body must be a JSON object".into())
        }
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::InvalidRequest("the body is not valid JSON".into())
        }
        _ => ApiError::InvalidRequest("the body could not be read".into()),
    }
}
