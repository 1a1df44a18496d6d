//! Delivery through Amazon SES v2, as a raw MIME message built like the SMTP
//! one (text and HTML parts). Region and credentials come from the AWS SDK's
//! usual sources; the sender from the configuration.

use async_trait::async_trait;
use aws_sdk_sesv2::error::ProvideErrorMetadata;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{EmailContent, RawMessage};
use aws_sdk_sesv2::Client;
use otpd_core::{CodeMail, MailError, Mailer};

use crate::Composer;

/// SES errors that retrying the same message cannot fix.
const PERMANENT: &[&str] = &[
    "MessageRejected",
    "MailFromDomainNotVerifiedException",
    "BadRequestException",
    "AccountSuspendedException",
    "SendingPausedException",
];

#[derive(Clone, Debug)]
pub struct SesMailer {
    client: Client,
    composer: Composer,
}

impl SesMailer {
    pub fn new(client: Client, composer: Composer) -> Self {
        Self { client, composer }
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &CodeMail) -> Result<(), MailError> {
        let message = self
            .composer
            .message(mail)
            .map_err(|e| MailError::Permanent(e.to_string()))?;
        let raw = RawMessage::builder()
            .data(Blob::new(message.formatted()))
            .build()
            .map_err(|e| MailError::Permanent(e.to_string()))?;
        // With a raw message the recipients come from its headers; naming
        // them again as a destination would list them twice.
        let result = self
            .client
            .send_email()
            .from_email_address(self.composer.from.to_string())
            .content(EmailContent::builder().raw(raw).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let code = e.code().unwrap_or("").to_owned();
                let text = format!("SES: {} {}", code, e.message().unwrap_or(&e.to_string()));
                if PERMANENT.contains(&code.as_str()) {
                    Err(MailError::Permanent(text))
                } else {
                    Err(MailError::Transient(text))
                }
            }
        }
    }

    fn describe(&self) -> String {
        let region = self
            .client
            .config()
            .region()
            .map_or_else(|| "no region".to_owned(), ToString::to_string);
        format!("ses ({region})")
    }
}
