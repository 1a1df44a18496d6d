//! The OpenAPI document of exactly this API, generated from the handlers.

use utoipa::OpenApi;

use crate::api::{GenerateRequest, GenerateResponse, VerifyRequest, VerifyResponse, EMAIL_PATTERN};
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

/// The document as served, with the patterns this server enforces: the
/// address grammar and exactly `code_length` digits for `otp`.
pub fn document(code_length: u8) -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut doc = serde_json::to_value(doc).expect("an OpenAPI document serialises");
    let schemas = &mut doc["components"]["schemas"];
    for request in ["GenerateRequest", "VerifyRequest"] {
        schemas[request]["properties"]["email"]["pattern"] = EMAIL_PATTERN.into();
    }
    schemas["VerifyRequest"]["properties"]["otp"]["pattern"] =
        format!("^[0-9]{{{code_length}}}$").into();
    doc
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The documented pattern never promises more than the parser keeps:
        /// every address it matches is accepted (schemathesis relies on it).
        #[test]
        fn every_address_the_pattern_matches_is_accepted(
            address in proptest::string::string_regex(unanchored(EMAIL_PATTERN)).expect("a valid regex")
        ) {
            prop_assert!(otpd_core::EmailAddress::parse(&address).is_ok(), "{:?}", address);
        }
    }

    /// proptest generates from a pattern without its `^…$` anchors.
    fn unanchored(pattern: &str) -> &str {
        pattern.trim_start_matches('^').trim_end_matches('$')
    }

    #[test]
    fn the_patterns_land_on_the_request_fields() {
        let doc = document(8);
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["VerifyRequest"]["properties"]["otp"]["pattern"],
            "^[0-9]{8}$"
        );
        assert_eq!(
            schemas["GenerateRequest"]["properties"]["email"]["pattern"],
            EMAIL_PATTERN
        );
    }
}
