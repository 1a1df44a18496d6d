//! Delivery through an SMTP relay with lettre.

use std::time::Duration;

use async_trait::async_trait;
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use otpd_core::{error_chain, CodeMail, MailError, Mailer};

use crate::Composer;

/// Bounds every SMTP exchange, so a hung relay cannot stall the outbox.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    composer: Composer,
    /// The URL without credentials, for logs.
    display: String,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid SMTP URL: {0}")]
pub struct SmtpUrlError(String);

impl SmtpMailer {
    /// `smtp://[user:pass@]host[:port]` (plain; add `?tls=required` for
    /// STARTTLS or `?tls=opportunistic`), or `smtps://…` for implicit TLS.
    pub fn from_url(url: &str, composer: Composer) -> Result<Self, SmtpUrlError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| SmtpUrlError(e.to_string()))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Self {
            transport,
            composer,
            display: redact(url),
        })
    }

    /// Opens a connection and says hello, without sending anything.
    pub async fn test_connection(&self) -> Result<(), MailError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MailError::Transient(
                "the server did not answer NOOP".into(),
            )),
            Err(e) => Err(classify(&e, &self.display)),
        }
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &CodeMail) -> Result<(), MailError> {
        let message = self
            .composer
            .message(mail)
            .map_err(|e| MailError::Permanent(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| classify(&e, &self.display))
    }

    fn describe(&self) -> String {
        format!("smtp ({})", self.display)
    }
}

fn classify(error: &SmtpError, url: &str) -> MailError {
    let mut text = error_chain(error);
    if let Some(hint) = tls_hint(url) {
        text.push_str(" (hint: ");
        text.push_str(hint);
        text.push(')');
    }
    if error.is_permanent() {
        MailError::Permanent(text)
    } else {
        MailError::Transient(text)
    }
}

/// The usual mistakes: implicit TLS on 465 versus STARTTLS on 587.
pub fn tls_hint(url: &str) -> Option<&'static str> {
    let (scheme, authority) = split_url(url)?;
    let host_port = authority.split(['/', '?']).next()?;
    let port = host_port.rsplit_once(':').map(|(_, port)| port);
    match (scheme == "smtps", port) {
        (false, Some("465")) => Some("port 465 expects implicit TLS: use smtps://host:465"),
        (true, Some("587" | "25")) => {
            Some("ports 587 and 25 use STARTTLS: use smtp://host:587?tls=required")
        }
        _ => None,
    }
}

/// Drops `user:password@` from a URL before it reaches a log.
pub fn redact(url: &str) -> String {
    match split_url(url) {
        Some((scheme, host)) if url.contains('@') => format!("{scheme}://***@{host}"),
        _ => url.to_owned(),
    }
}

/// The scheme and what follows `://`, credentials stripped.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    Some((scheme, rest.rsplit_once('@').map_or(rest, |(_, host)| host)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_the_description() {
        assert_eq!(
            redact("smtp://user:s3cret@mail.example.com:587?tls=required"),
            "smtp://***@mail.example.com:587?tls=required"
        );
        assert_eq!(redact("smtp://localhost:25"), "smtp://localhost:25");
    }

    #[test]
    fn hints_point_at_the_usual_tls_mistakes() {
        assert!(tls_hint("smtp://u:p@host:465").is_some_and(|h| h.contains("smtps://")));
        assert!(tls_hint("smtps://host:587").is_some_and(|h| h.contains("tls=required")));
        assert_eq!(tls_hint("smtps://host:465"), None);
        assert_eq!(tls_hint("smtp://host:587?tls=required"), None);
    }
}
