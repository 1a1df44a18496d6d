//! The two operations of otpd, wiring policy, keys, clock and store together.

use std::sync::Arc;

use rand::rngs::OsRng;

use crate::policy::{IssueCommand, IssueOutcome, Rules, VerifyCommand, VerifyOutcome};
use crate::store::{IssueStore, NewMail, StoreError, VerifyStore};
use crate::{Clock, CodeKeys, DomainAllowlist, EmailAddress, OtpCode};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("the email domain is not allowed")]
    DomainNotAllowed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Issues and checks codes; cheap to clone and share between requests.
#[derive(Clone)]
pub struct OtpService {
    pub keys: CodeKeys,
    pub rules: Rules,
    pub allowlist: DomainAllowlist,
    pub clock: Arc<dyn Clock>,
}

impl OtpService {
    pub async fn generate(
        &self,
        store: &dyn IssueStore,
        email: EmailAddress,
    ) -> Result<IssueOutcome, GenerateError> {
        if !self.allowlist.allows(&email) {
            return Err(GenerateError::DomainNotAllowed);
        }
        let code = OtpCode::generate(&mut OsRng, self.rules.code_length);
        let now = self.clock.now();
        let mail = NewMail {
            email: email.clone(),
            sealed: self.keys.seal(&email, &code),
            created_at: now,
            code_expires_at: now.plus(self.rules.code_ttl),
        };
        let cmd = IssueCommand {
            digest: self.keys.digest(&email, &code),
            email,
            now,
            rules: self.rules,
        };
        Ok(store.issue(cmd, mail).await?)
    }

    pub async fn verify(
        &self,
        store: &dyn VerifyStore,
        email: EmailAddress,
        code: &OtpCode,
    ) -> Result<VerifyOutcome, StoreError> {
        let cmd = VerifyCommand {
            candidate: self.keys.digest(&email, code),
            email,
            now: self.clock.now(),
            rules: self.rules,
        };
        store.verify(cmd).await
    }
}
