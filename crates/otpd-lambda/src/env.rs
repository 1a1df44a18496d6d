//! The functions' configuration: the same `OTPD_*` names as `otpd serve`,
//! plus `OTPD_TABLE` and `OTPD_SECRET_PARAMETER`.

use anyhow::Context;
use otpd_core::policy::{RuleSettings, Rules};
use otpd_core::DomainAllowlist;
use otpd_mail::Mailbox;
use secrecy::SecretString;

#[derive(Debug)]
pub struct LambdaEnv {
    pub table: String,
    pub secret: Option<SecretString>,
    pub secret_parameter: Option<String>,
    pub rules: Rules,
    pub allowlist: DomainAllowlist,
    pub product_name: String,
    pub mail_from: Mailbox,
}

impl LambdaEnv {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let text = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_owned());
        let number = |name: &'static str, default: u64| -> anyhow::Result<u64> {
            get(name).map_or(Ok(default), |v| {
                v.trim()
                    .parse()
                    .with_context(|| format!("{name} must be a whole number, not {v:?}"))
            })
        };
        let small = |name: &'static str, default: u64| -> anyhow::Result<u32> {
            u32::try_from(number(name, default)?).with_context(|| format!("{name} is too large"))
        };
        let rules = Rules::from_settings(RuleSettings {
            code_length: u8::try_from(number("OTPD_CODE_LENGTH", 6)?).unwrap_or(u8::MAX),
            code_ttl_secs: number("OTPD_CODE_TTL", 300)?,
            max_attempts: small("OTPD_MAX_ATTEMPTS", 5)?,
            resend_cooldown_secs: number("OTPD_RESEND_COOLDOWN", 60)?,
            max_codes_per_hour: small("OTPD_MAX_CODES_PER_HOUR", 5)?,
        })
        .map_err(|e| anyhow::anyhow!("OTPD_{}: {}", e.key.to_uppercase(), e.message))?;
        let domains = text("OTPD_ALLOWED_DOMAINS", "");
        let allowlist = DomainAllowlist::parse(domains.split(','))
            .map_err(|e| anyhow::anyhow!("OTPD_ALLOWED_DOMAINS: {e}"))?;
        let mail_from = text("OTPD_MAIL_FROM", "otpd <no-reply@localhost>");
        let mail_from = mail_from
            .parse()
            .map_err(|e| anyhow::anyhow!("OTPD_MAIL_FROM: not a mailbox ({e})"))?;
        Ok(Self {
            table: text("OTPD_TABLE", "EmailVerification"),
            secret: get("OTPD_SECRET").map(SecretString::from),
            secret_parameter: get("OTPD_SECRET_PARAMETER"),
            rules,
            allowlist,
            product_name: text("OTPD_PRODUCT_NAME", "otpd"),
            mail_from,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> anyhow::Result<LambdaEnv> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        LambdaEnv::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_follow_the_design() {
        let e = env(&[]).expect("defaults are valid");
        assert_eq!(e.table, "EmailVerification");
        assert_eq!(e.rules, Rules::default());
        assert!(e.allowlist.is_empty());
    }

    #[test]
    fn bounds_are_the_same_as_serve() {
        let error = env(&[("OTPD_CODE_TTL", "0")])
            .expect_err("out of bounds")
            .to_string();
        assert!(error.contains("OTPD_CODE_TTL"), "{error}");
        assert!(env(&[("OTPD_MAX_ATTEMPTS", "eleven")]).is_err());
        assert!(env(&[("OTPD_ALLOWED_DOMAINS", "corp.example,*.team.example")]).is_ok());
    }
}
