//! otpd's mailers (log, SMTP, and with the `ses` feature Amazon SES). Each turns a [`otpd_core::CodeMail`] into a multipart
//! message from [`Templates`] and hands it to a provider.
//!
//! Mailers never log a code; only [`LogMailer`], the development mailer,
//! prints the message (to standard output) by design.

mod compose;
mod log;
#[cfg(feature = "ses")]
mod ses;
mod smtp;
mod template;

pub use compose::{ComposeError, Composer};
pub use lettre::message::Mailbox;
pub use log::LogMailer;
#[cfg(feature = "ses")]
pub use ses::SesMailer;
pub use smtp::{redact, tls_hint, SmtpMailer, SmtpUrlError, SMTP_TIMEOUT};
pub use template::{Rendered, TemplateError, Templates, TEMPLATE_FILES};
