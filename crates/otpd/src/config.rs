//! Configuration: defaults, then a TOML file, then `OTPD_*` variables, checked
//! once at start-up into a [`Config`] that cannot hold an invalid value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use ipnet::IpNet;
use otpd_core::delivery::RetryPolicy;
use otpd_core::policy::{RuleSettings, Rules, ASVS_MAX_TTL};
use otpd_core::{DomainAllowlist, Secret};
use otpd_mail::{Mailbox, Templates};
use otpd_sqlite::Durability;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

/// Every key, as written in TOML; the variable is `OTPD_` + the key in capitals.
pub const KEYS: &[&str] = &[
    "listen",
    "store",
    "mailer",
    "mail_from",
    "mail_templates",
    "product_name",
    "secret",
    "secret_file",
    "smtp_password",
    "smtp_password_file",
    "code_ttl",
    "code_length",
    "max_attempts",
    "resend_cooldown",
    "max_codes_per_hour",
    "ip_requests_per_minute",
    "trusted_proxies",
    "allowed_domains",
    "allowed_origins",
    "log_format",
    "outbox_max_delay",
    "outbox_give_up_after",
    "sqlite_synchronous",
];

/// Variables that are read but are not configuration keys.
const OTHER_VARIABLES: &[&str] = &["OTPD_CONFIG"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Load(#[from] Box<figment::Error>),
    #[error("{key} (OTPD_{upper}): {message}", upper = key.to_uppercase())]
    Invalid { key: &'static str, message: String },
    #[error("could not read {what} from {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// What the file and the environment may say, before checking.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(deserialize_with = "text")]
    listen: String,
    #[serde(deserialize_with = "text")]
    store: String,
    #[serde(deserialize_with = "text")]
    mailer: String,
    #[serde(deserialize_with = "text")]
    mail_from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mail_templates: Option<PathBuf>,
    #[serde(deserialize_with = "text")]
    product_name: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_text"
    )]
    secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_file: Option<PathBuf>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_text"
    )]
    smtp_password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    smtp_password_file: Option<PathBuf>,
    code_ttl: u64,
    code_length: u8,
    max_attempts: u32,
    resend_cooldown: u64,
    max_codes_per_hour: u32,
    ip_requests_per_minute: u32,
    #[serde(deserialize_with = "list")]
    trusted_proxies: Vec<String>,
    #[serde(deserialize_with = "list")]
    allowed_domains: Vec<String>,
    #[serde(deserialize_with = "list")]
    allowed_origins: Vec<String>,
    #[serde(deserialize_with = "text")]
    log_format: String,
    outbox_max_delay: u64,
    outbox_give_up_after: u64,
    #[serde(deserialize_with = "text")]
    sqlite_synchronous: String,
}

impl Default for Raw {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            store: "sqlite://otpd.db".into(),
            mailer: "log".into(),
            mail_from: "otpd <no-reply@localhost>".into(),
            mail_templates: None,
            product_name: "otpd".into(),
            secret: None,
            secret_file: None,
            smtp_password: None,
            smtp_password_file: None,
            code_ttl: 300,
            code_length: 6,
            max_attempts: 5,
            resend_cooldown: 60,
            max_codes_per_hour: 5,
            ip_requests_per_minute: 60,
            trusted_proxies: Vec::new(),
            allowed_domains: Vec::new(),
            allowed_origins: Vec::new(),
            log_format: "text".into(),
            outbox_max_delay: 60,
            outbox_give_up_after: 3600,
            sqlite_synchronous: "normal".into(),
        }
    }
}

/// A string, even where the environment's value looks like a number.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Loose {
            S(String),
            I(i64),
            U(u64),
            F(f64),
            B(bool),
        }
        Ok(Self(match Loose::deserialize(d)? {
            Loose::S(s) => s,
            Loose::I(n) => n.to_string(),
            Loose::U(n) => n.to_string(),
            Loose::F(n) => n.to_string(),
            Loose::B(b) => b.to_string(),
        }))
    }
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Text::deserialize(d).map(|t| t.0)
}

fn optional_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Text>::deserialize(d).map(|t| t.map(|t| t.0))
}

/// A TOML array, or a comma-separated string (as environment variables are).
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Loose {
        One(String),
        Many(Vec<String>),
    }
    let items = match Loose::deserialize(d)? {
        Loose::One(s) => s.split(',').map(str::to_owned).collect(),
        Loose::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf, Durability),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailerUrl {
    Log,
    /// A lettre SMTP URL, credentials included.
    Smtp(String),
    /// Amazon SES v2; region and credentials from the AWS SDK's usual sources.
    Ses,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the code key comes from.
pub enum SecretSource {
    Given(Secret),
    /// Generated on first start and kept in this file beside the store.
    KeyFile(PathBuf),
}

/// The checked configuration.
pub struct Config {
    pub listen: SocketAddr,
    pub store: StoreUrl,
    pub mailer: MailerUrl,
    pub mail_from: Mailbox,
    pub templates: Templates,
    pub product_name: String,
    pub secret: SecretSource,
    pub rules: Rules,
    pub retry: RetryPolicy,
    pub allowlist: DomainAllowlist,
    pub ip_requests_per_minute: u32,
    pub trusted_proxies: Vec<IpNet>,
    pub allowed_origins: Vec<String>,
    pub log_format: LogFormat,
    /// Said once logging is up.
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads from `file` (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("OTPD_"))
            .collect();
        Self::load_from(file, &vars)
    }

    /// Loads from `file` (if any) and the given `OTPD_*` pairs instead of the process environment.
    pub fn load_from(file: Option<&Path>, vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Raw::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Read {
                    what: "the configuration file",
                    path: file.to_owned(),
                    source: std::io::ErrorKind::NotFound.into(),
                });
            }
            figment = figment.merge(Toml::file(file));
        }
        // Parsed as figment's `Env` provider would, from the given pairs.
        let env: figment::value::Dict = vars
            .iter()
            .filter(|(k, _)| is_key(k))
            .map(|(k, v)| {
                let value = v
                    .parse::<figment::value::Value>()
                    .unwrap_or_else(|e| match e {});
                (k["OTPD_".len()..].to_ascii_lowercase(), value)
            })
            .collect();
        let raw: Raw = figment
            .merge(Serialized::defaults(env))
            .extract()
            .map_err(Box::new)?;
        let mut warnings: Vec<String> = vars
            .iter()
            .filter(|(k, _)| !is_key(k) && !OTHER_VARIABLES.contains(&k.as_str()))
            .map(|(k, _)| format!("{k} is not an otpd setting and is ignored (a typo?)"))
            .collect();
        check(raw, &mut warnings).map(|mut config| {
            config.warnings = warnings;
            config
        })
    }
}

fn is_key(var: &str) -> bool {
    var.strip_prefix("OTPD_")
        .is_some_and(|rest| KEYS.iter().any(|k| k.eq_ignore_ascii_case(rest)))
}

fn check(raw: Raw, warnings: &mut Vec<String>) -> Result<Config, ConfigError> {
    let listen = parse_listen(&raw.listen)?;
    let durability = match raw.sqlite_synchronous.as_str() {
        "normal" => Durability::ProcessCrash,
        "full" => Durability::PowerLoss,
        other => {
            return Err(invalid(
                "sqlite_synchronous",
                format!("must be normal or full, not {other:?}"),
            ))
        }
    };
    let store = parse_store(&raw.store, durability)?;
    let smtp_password = read_secret(raw.smtp_password, raw.smtp_password_file, "smtp_password")?;
    let mailer = parse_mailer(&raw.mailer, smtp_password)?;
    let mail_from: Mailbox = raw.mail_from.parse().map_err(|e| {
        invalid(
            "mail_from",
            format!("not a mailbox ({e}); e.g. \"Acme <no-reply@acme.example>\""),
        )
    })?;
    let templates = match &raw.mail_templates {
        Some(dir) => Templates::load(dir).map_err(|e| invalid("mail_templates", e.to_string()))?,
        None => Templates::default(),
    };
    if raw.product_name.trim().is_empty() || raw.product_name.chars().any(char::is_control) {
        return Err(invalid("product_name", "must be a non-empty line of text"));
    }
    let secret = match read_secret(raw.secret, raw.secret_file, "secret")? {
        Some(text) => SecretSource::Given(
            Secret::parse(&text)
                .map_err(|e| invalid("secret", format!("{e}; `otpd gen-secret` prints one")))?,
        ),
        None => match &store {
            StoreUrl::Sqlite(path, _) => SecretSource::KeyFile(path.with_extension("key")),
        },
    };
    let rules = Rules::from_settings(RuleSettings {
        code_length: raw.code_length,
        code_ttl_secs: raw.code_ttl,
        max_attempts: raw.max_attempts,
        resend_cooldown_secs: raw.resend_cooldown,
        max_codes_per_hour: raw.max_codes_per_hour,
    })
    .map_err(|e| invalid(e.key, e.message))?;
    if rules.code_ttl > ASVS_MAX_TTL {
        warnings.push(format!(
            "OTPD_CODE_TTL={} is above {} s, the longest lifetime OWASP ASVS accepts",
            raw.code_ttl,
            ASVS_MAX_TTL.as_secs()
        ));
    }
    if !(1..=3600).contains(&raw.outbox_max_delay) {
        return Err(invalid("outbox_max_delay", "must be 1 to 3600 seconds"));
    }
    if !(60..=7 * 86400).contains(&raw.outbox_give_up_after) {
        return Err(invalid("outbox_give_up_after", "must be 60 s to 7 days"));
    }
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .map(|s| parse_net(s))
        .collect::<Result<Vec<_>, _>>()?;
    let allowlist = DomainAllowlist::parse(raw.allowed_domains.iter().map(String::as_str))
        .map_err(|e| invalid("allowed_domains", e.to_string()))?;
    for origin in &raw.allowed_origins {
        let host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .map(|host| host.trim_end_matches('/'));
        if !host.is_some_and(|h| !h.is_empty() && !h.contains(['/', '*', '?', '#', ' '])) {
            return Err(invalid(
                "allowed_origins",
                format!("{origin:?} is not an origin like https://app.example.com (no wildcards, no path)"),
            ));
        }
    }
    let log_format = match raw.log_format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(invalid(
                "log_format",
                format!("must be text or json, not {other:?}"),
            ))
        }
    };
    Ok(Config {
        listen,
        store,
        mailer,
        mail_from,
        templates,
        product_name: raw.product_name.trim().to_owned(),
        secret,
        rules,
        retry: RetryPolicy {
            max_delay: Duration::from_secs(raw.outbox_max_delay),
            give_up_after: Duration::from_secs(raw.outbox_give_up_after),
            ..RetryPolicy::default()
        },
        allowlist,
        ip_requests_per_minute: raw.ip_requests_per_minute,
        trusted_proxies,
        allowed_origins: raw.allowed_origins,
        log_format,
        warnings: Vec::new(),
    })
}

fn parse_listen(text: &str) -> Result<SocketAddr, ConfigError> {
    let text = if text.starts_with(':') {
        format!("127.0.0.1{text}")
    } else {
        text.to_owned()
    };
    text.parse().map_err(|_| {
        invalid(
            "listen",
            format!("{text:?} is not an address like 127.0.0.1:8080"),
        )
    })
}

fn parse_store(text: &str, durability: Durability) -> Result<StoreUrl, ConfigError> {
    match text.split_once("://") {
        Some(("sqlite", path)) if !path.is_empty() => {
            Ok(StoreUrl::Sqlite(PathBuf::from(path), durability))
        }
        Some(("dynamodb", _)) => Err(invalid(
            "store",
            "dynamodb:// is served by the AWS Lambda functions, not yet by otpd serve; use sqlite://PATH",
        )),
        _ => Err(invalid("store", format!("{text:?} is not sqlite://PATH"))),
    }
}

fn parse_mailer(text: &str, password: Option<SecretString>) -> Result<MailerUrl, ConfigError> {
    use secrecy::ExposeSecret;
    match text {
        "log" => Ok(MailerUrl::Log),
        "ses" => Ok(MailerUrl::Ses),
        url if url.starts_with("smtp://") || url.starts_with("smtps://") => {
            let url = match password {
                Some(password) => with_password(url, password.expose_secret())?,
                None => url.to_owned(),
            };
            Ok(MailerUrl::Smtp(url))
        }
        other => Err(invalid(
            "mailer",
            format!(
                "{:?} is not log, smtp://…, smtps://… or ses",
                otpd_mail::redact(other)
            ),
        )),
    }
}

/// Puts `OTPD_SMTP_PASSWORD` into `smtp://user@host`, percent-encoded.
fn with_password(url: &str, password: &str) -> Result<String, ConfigError> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("smtp", url));
    let Some((user, host)) = rest.split_once('@') else {
        return Err(invalid(
            "smtp_password",
            "needs a user in OTPD_MAILER: smtp://user@host",
        ));
    };
    let user = user.split(':').next().unwrap_or(user);
    let encoded: String = password
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    Ok(format!("{scheme}://{user}:{encoded}@{host}"))
}

fn parse_net(text: &str) -> Result<IpNet, ConfigError> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            invalid(
                "trusted_proxies",
                format!("{text:?} is not a CIDR like 10.0.0.0/8"),
            )
        })
}

/// A secret given directly or as a file (the `_FILE` form, for container secrets).
fn read_secret(
    value: Option<String>,
    file: Option<PathBuf>,
    key: &'static str,
) -> Result<Option<SecretString>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(invalid(
            key,
            format!(
                "set either OTPD_{0} or OTPD_{0}_FILE, not both",
                key.to_uppercase()
            ),
        )),
        (Some(value), None) => Ok(Some(SecretString::from(value))),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|s| Some(SecretString::from(s.trim().to_owned())))
            .map_err(|source| ConfigError::Read {
                what: "a secret",
                path,
                source,
            }),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::load_from(None, &vars)
    }

    fn error(vars: &[(&str, &str)]) -> String {
        match load(vars) {
            Ok(_) => panic!("{vars:?} accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn zero_configuration_gives_the_documented_defaults() {
        let c = load(&[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            c.store,
            StoreUrl::Sqlite("otpd.db".into(), Durability::ProcessCrash)
        );
        assert_eq!(c.mailer, MailerUrl::Log);
        assert!(matches!(c.secret, SecretSource::KeyFile(ref p) if p == Path::new("otpd.key")));
        assert_eq!(c.rules, Rules::default());
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn environment_overrides_and_lists_split_on_commas() {
        let c = load(&[
            ("OTPD_CODE_TTL", "120"),
            ("OTPD_ALLOWED_DOMAINS", "example.com, *.corp.example"),
            ("OTPD_TRUSTED_PROXIES", "10.0.0.0/8,192.0.2.1"),
            ("OTPD_PRODUCT_NAME", "1234"),
            ("OTPD_LISTEN", ":0"),
        ])
        .unwrap();
        assert_eq!(c.rules.code_ttl, Duration::from_secs(120));
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.product_name, "1234");
        assert_eq!(c.listen.port(), 0);
    }

    #[test]
    fn invalid_values_name_their_key() {
        assert!(error(&[("OTPD_CODE_TTL", "0")]).contains("OTPD_CODE_TTL"));
        assert!(error(&[("OTPD_CODE_TTL", "ten")]).contains("code_ttl"));
        assert!(error(&[("OTPD_MAX_ATTEMPTS", "11")]).contains("OTPD_MAX_ATTEMPTS"));
        assert!(error(&[("OTPD_CODE_LENGTH", "5")]).contains("OTPD_CODE_LENGTH"));
        assert!(error(&[("OTPD_SECRET", "short")]).contains("OTPD_SECRET"));
        assert!(error(&[("OTPD_MAILER", "smtp:/oops")]).contains("OTPD_MAILER"));
        assert!(error(&[("OTPD_ALLOWED_ORIGINS", "*")]).contains("OTPD_ALLOWED_ORIGINS"));
        assert!(error(&[("OTPD_TRUSTED_PROXIES", "everyone")]).contains("OTPD_TRUSTED_PROXIES"));
        assert!(error(&[("OTPD_LOG_FORMAT", "xml")]).contains("OTPD_LOG_FORMAT"));
    }

    #[test]
    fn unknown_variables_are_warned_about() {
        let c = load(&[("OTPD_CODE_TTLL", "5"), ("OTPD_CONFIG", "x.toml")]).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("OTPD_CODE_TTLL"));
    }

    #[test]
    fn long_lifetimes_are_allowed_with_a_warning() {
        let c = load(&[("OTPD_CODE_TTL", "900")]).unwrap();
        assert!(c.warnings.iter().any(|w| w.contains("ASVS")));
    }

    #[test]
    fn toml_file_sits_between_defaults_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("otpd.toml");
        std::fs::write(
            &file,
            "code_ttl = 200\nmax_attempts = 3\nallowed_domains = [\"a.example\"]\n",
        )
        .unwrap();
        let vars = vec![("OTPD_MAX_ATTEMPTS".to_owned(), "4".to_owned())];
        let c = Config::load_from(Some(&file), &vars).unwrap();
        assert_eq!(c.rules.code_ttl, Duration::from_secs(200));
        assert_eq!(c.rules.max_attempts, 4);
        std::fs::write(&file, "code_tll = 200\n").unwrap();
        let typo = Config::load_from(Some(&file), &[])
            .err()
            .unwrap()
            .to_string();
        assert!(typo.contains("code_tll"), "{typo}");
    }

    #[test]
    fn smtp_password_is_merged_into_the_url_encoded() {
        let c = load(&[
            ("OTPD_MAILER", "smtp://me@mail.example:587?tls=required"),
            ("OTPD_SMTP_PASSWORD", "p@ss word"),
        ])
        .unwrap();
        assert_eq!(
            c.mailer,
            MailerUrl::Smtp("smtp://me:p%40ss%20word@mail.example:587?tls=required".into())
        );
    }
}
