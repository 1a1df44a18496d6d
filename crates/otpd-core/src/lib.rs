//! otpd's core: what an address and a code are, the keys that protect codes
//! at rest, and the rules of issuing and checking them.
//!
//! This crate performs no I/O and knows no runtime, web framework or cloud:
//! stores, mailers and the clock come in through traits, so the self-hosted
//! server and the AWS Lambda functions enforce one and the same policy.

mod allowlist;
mod clock;
mod code;
pub mod delivery;
mod email;
mod keys;
mod mailer;
pub mod policy;
mod service;
pub mod store;

pub use allowlist::{AllowlistError, DomainAllowlist};
pub use clock::{ceil_secs, Clock, SystemClock, Timestamp};
pub use code::{CodeFormatError, CodeLength, OtpCode};
pub use email::{EmailAddress, EmailError, MAX_ADDRESS_LEN};
pub use keys::{
    CodeDigest, CodeKeys, SealedCode, Secret, SecretError, UnsealError, MIN_SECRET_BYTES,
};
pub use mailer::{CodeMail, MailError, Mailer};
pub use service::{GenerateError, OtpService};

/// An error and its causes on one line, for logs and operator messages.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
