//! A parsed, normalised email address.
//!
//! Only a bare `local@domain` addr-spec is accepted: no display name, no
//! comments, no quoted local part, no control characters. That keeps header
//! injection and look-alike tricks out of everything downstream, at the cost
//! of refusing rare but legal forms that real sign-up forms never see.

use std::borrow::Cow;
use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use serde::{Deserialize, Serialize};

/// RFC 5321 caps a forward path at 256 octets including the angle brackets.
pub const MAX_ADDRESS_LEN: usize = 254;
/// RFC 5321 caps the local part at 64 octets.
pub const MAX_LOCAL_LEN: usize = 64;
/// RFC 1035 caps a DNS label at 63 octets.
const MAX_LABEL_LEN: usize = 63;

/// Why an address was refused; the message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("the address is empty")]
    Empty,
    #[error("the address contains a control character (such as CR or LF)")]
    ControlCharacter,
    #[error("the address is longer than {MAX_ADDRESS_LEN} bytes")]
    TooLong,
    #[error("the address must have the form local@domain")]
    Shape,
    #[error("the part before @ is not a valid local part")]
    LocalPart,
    #[error("the domain is not a valid host name")]
    Domain,
}

/// An address that passed [`EmailAddress::parse`]: lowercase, domain in
/// IDNA ASCII form, at most [`MAX_ADDRESS_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses and normalises what a client typed.
    ///
    /// Leading and trailing spaces and tabs are trimmed; any other control
    /// character anywhere is an error.
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let trimmed = input.trim_matches([' ', '\t']);
        // Control characters are refused anywhere, even where trimmed away.
        if trimmed.chars().any(char::is_control) {
            return Err(EmailError::ControlCharacter);
        }
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.len() > MAX_ADDRESS_LEN * 4 {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = trimmed.rsplit_once('@').ok_or(EmailError::Shape)?;
        check_local(local)?;
        let domain = ascii_domain(domain)?;
        let mut address = String::with_capacity(local.len() + 1 + domain.len());
        address.push_str(local);
        address.push('@');
        address.push_str(&domain);
        address.make_ascii_lowercase();
        if address.len() > MAX_ADDRESS_LEN {
            return Err(EmailError::TooLong);
        }
        Ok(Self(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain part, already lowercased and in ASCII form.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// RFC 5322 `atext`, the characters of a dot-atom besides the dots.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

fn check_local(local: &str) -> Result<(), EmailError> {
    let valid = !local.is_empty()
        && local.len() <= MAX_LOCAL_LEN
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext));
    valid.then_some(()).ok_or(EmailError::LocalPart)
}

/// The domain in IDNA ASCII form (lowercase), borrowed when it already is.
fn ascii_domain(domain: &str) -> Result<Cow<'_, str>, EmailError> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() || domain.contains(['[', ']', ' ']) {
        return Err(EmailError::Domain);
    }
    let ascii = Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Check,
            DnsLength::Verify,
        )
        .map_err(|_| EmailError::Domain)?;
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let mut labels = 0;
    let mut top = "";
    for label in ascii.split('.') {
        if !valid_label(label) {
            return Err(EmailError::Domain);
        }
        labels += 1;
        top = label;
    }
    if labels < 2 || top.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EmailError::Domain);
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        EmailAddress::parse(input)
            .map(|a| a.to_string())
            .unwrap_or_else(|e| panic!("{input:?} refused: {e}"))
    }

    #[test]
    fn normalises_case_and_trims_spaces_and_tabs() {
        assert_eq!(ok("  John.Doe@Example.COM\t"), "john.doe@example.com");
        assert_eq!(ok("a+tag@sub.example.org."), "a+tag@sub.example.org");
    }

    #[test]
    fn encodes_international_domains_as_ascii() {
        assert_eq!(ok("user@Bücher.example"), "user@xn--bcher-kva.example");
        assert_eq!(
            EmailAddress::parse("user@xn--bcher-kva.example").map(|a| a.domain().to_owned()),
            Ok("xn--bcher-kva.example".to_owned())
        );
    }

    #[test]
    fn refuses_control_characters_anywhere() {
        for input in [
            "a@b.com\r\nBcc: x@y.com",
            "a\n@b.com",
            "a@b.com\0",
            "\ra@b.com",
            "a@b\u{7f}.com",
        ] {
            assert_eq!(
                EmailAddress::parse(input),
                Err(EmailError::ControlCharacter),
                "{input:?}"
            );
        }
    }

    #[test]
    fn refuses_display_names_comments_and_odd_shapes() {
        for input in [
            "John <john@example.com>",
            "<john@example.com>",
            "john@example.com (John)",
            "\"john\"@example.com",
            "john@@example.com",
            "john",
            "@example.com",
            "john@",
            "a..b@example.com",
            ".a@example.com",
            "a.@example.com",
            "a@example",
            "a@-example.com",
            "a@exa_mple.com",
            "a@[127.0.0.1]",
            "a@1.2.3.4",
            "a b@example.com",
            "a@b.com,c@d.com",
            "",
            "   ",
        ] {
            assert!(EmailAddress::parse(input).is_err(), "{input:?} accepted");
        }
    }

    #[test]
    fn refuses_addresses_over_the_length_limits() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(EmailAddress::parse(&long_local), Err(EmailError::LocalPart));
        let long_domain = format!("a@{}.com", vec!["b".repeat(60); 5].join("."));
        assert!(matches!(
            EmailAddress::parse(&long_domain),
            Err(EmailError::TooLong | EmailError::Domain)
        ));
        let just_fits = format!(
            "{}@{}.com",
            "a".repeat(64),
            vec!["b".repeat(61); 3].join(".")
        );
        assert_eq!(just_fits.len(), 254);
        assert!(EmailAddress::parse(&just_fits).is_ok());
        assert!(EmailAddress::parse(&"x".repeat(300)).is_err());
    }

    #[test]
    fn deserializes_only_valid_addresses() {
        let parsed: Result<EmailAddress, _> = serde_json::from_str("\"A@B.co\"");
        assert_eq!(parsed.map(|a| a.to_string()).ok(), Some("a@b.co".into()));
        assert!(serde_json::from_str::<EmailAddress>("\"nope\"").is_err());
    }
}
