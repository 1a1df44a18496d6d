//! The development mailer: prints the message instead of sending it.

use std::io::Write;

use async_trait::async_trait;
use otpd_core::{CodeMail, MailError, Mailer};

use crate::Composer;

/// Writes the rendered text part to standard output: the one place otpd ever
/// prints a code. For development only; the start-up log says so.
#[derive(Debug, Clone)]
pub struct LogMailer {
    composer: Composer,
}

impl LogMailer {
    pub fn new(composer: Composer) -> Self {
        Self { composer }
    }
}

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: &CodeMail) -> Result<(), MailError> {
        let (subject, text) = self.composer.templates.render_plain(
            &self.composer.product,
            mail.code.expose(),
            mail.lifetime,
        );
        let block = format!(
            "----- mail to {} -----\nSubject: {subject}\n\n{}\n----- end of mail -----\n",
            mail.to,
            text.trim_end()
        );
        let mut out = std::io::stdout().lock();
        out.write_all(block.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| MailError::Transient(format!("could not write to stdout: {e}")))
    }

    fn describe(&self) -> String {
        "log (prints each mail to stdout; development only)".into()
    }
}
