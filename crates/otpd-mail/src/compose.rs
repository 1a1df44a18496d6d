//! Turns a [`CodeMail`] into a complete multipart message.

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use otpd_core::CodeMail;

use crate::template::{Rendered, Templates};

/// Everything but the recipient and the code: sender, product name, templates.
#[derive(Debug, Clone)]
pub struct Composer {
    pub from: Mailbox,
    pub product: String,
    pub templates: Templates,
}

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("the recipient is not a valid mailbox")]
    Recipient(#[source] lettre::address::AddressError),
    #[error("the message could not be built")]
    Build(#[source] lettre::error::Error),
}

impl Composer {
    pub fn render(&self, mail: &CodeMail) -> Rendered {
        self.templates
            .render(&self.product, mail.code.expose(), mail.lifetime)
    }

    /// A text + HTML `multipart/alternative` message.
    pub fn message(&self, mail: &CodeMail) -> Result<Message, ComposeError> {
        let rendered = self.render(mail);
        let to: Mailbox = mail.to.as_str().parse().map_err(ComposeError::Recipient)?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(rendered.text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(rendered.html),
                    ),
            )
            .map_err(ComposeError::Build)
    }
}
