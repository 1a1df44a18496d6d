//! The seam between the outbox and whatever hands mail to a provider.

use std::time::Duration;

use async_trait::async_trait;

use crate::{EmailAddress, OtpCode};

/// The one message that ever carries a code in plain text.
#[derive(Debug, Clone)]
pub struct CodeMail {
    pub to: EmailAddress,
    pub code: OtpCode,
    /// How long the code stays valid, for the text of the mail.
    pub lifetime: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Worth retrying: connection refused, timeout, 4xx reply, throttling.
    #[error("temporary mail failure: {0}")]
    Transient(String),
    /// Retrying cannot help: the provider rejected this message for good.
    #[error("permanent mail failure: {0}")]
    Permanent(String),
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &CodeMail) -> Result<(), MailError>;
    /// What the start-up log says about where mail goes (never credentials).
    fn describe(&self) -> String;
}
