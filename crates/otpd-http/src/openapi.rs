//! The OpenAPI document of exactly this API, generated from the handlers.

use utoipa::OpenApi;

use crate::api::{GenerateRequest, GenerateResponse, VerifyRequest, VerifyResponse};
use crate::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "otpd",
        description = "Proves that a person controls an email address with a one-time code.",
        license(name = "Apache-2.0")
    ),
    paths(crate::api::generate, crate::api::verify),
    components(schemas(GenerateRequest, GenerateResponse, VerifyRequest, VerifyResponse, ErrorBody)),
    tags((name = "otp", description = "Issue and check one-time codes"))
)]
pub struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}
