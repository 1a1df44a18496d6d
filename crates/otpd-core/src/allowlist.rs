//! The optional list of email domains that may ask for codes.

use crate::EmailAddress;

/// Empty means every domain. An entry matches the normalised domain exactly;
/// `*.example.com` matches `example.com` and every subdomain of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainAllowlist {
    exact: Vec<String>,
    suffixes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid domain for the allowlist")]
pub struct AllowlistError(pub String);

impl DomainAllowlist {
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, AllowlistError> {
        let mut list = Self::default();
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            let (wildcard, domain) = match entry.strip_prefix("*.") {
                Some(rest) => (true, rest),
                None => (false, entry),
            };
            let normalised = EmailAddress::parse(&format!("x@{domain}"))
                .map_err(|_| AllowlistError(entry.to_owned()))?
                .domain()
                .to_owned();
            if wildcard {
                list.suffixes.push(normalised);
            } else {
                list.exact.push(normalised);
            }
        }
        Ok(list)
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.suffixes.is_empty()
    }

    pub fn allows(&self, email: &EmailAddress) -> bool {
        let domain = email.domain();
        self.is_empty()
            || self.exact.iter().any(|d| d == domain)
            || self.suffixes.iter().any(|s| {
                domain == s
                    || domain
                        .strip_suffix(s.as_str())
                        .is_some_and(|head| head.ends_with('.'))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(list: &DomainAllowlist, addr: &str) -> bool {
        list.allows(&EmailAddress::parse(addr).expect("valid"))
    }

    #[test]
    fn empty_list_allows_everything() {
        assert!(allows(&DomainAllowlist::default(), "a@anything.org"));
    }

    #[test]
    fn exact_entries_match_only_that_domain() {
        let list = DomainAllowlist::parse(["Example.COM"]).expect("valid");
        assert!(allows(&list, "a@example.com"));
        assert!(!allows(&list, "a@sub.example.com"));
        assert!(!allows(&list, "a@badexample.com"));
    }

    #[test]
    fn wildcard_entries_match_the_domain_and_its_subdomains() {
        let list = DomainAllowlist::parse(["*.example.com", "bücher.example"]).expect("valid");
        assert!(allows(&list, "a@example.com"));
        assert!(allows(&list, "a@x.y.example.com"));
        assert!(!allows(&list, "a@notexample.com"));
        assert!(allows(&list, "a@xn--bcher-kva.example"));
    }

    #[test]
    fn invalid_entries_are_refused() {
        assert!(DomainAllowlist::parse(["not a domain"]).is_err());
        assert!(DomainAllowlist::parse(["", " "])
            .expect("blank entries skipped")
            .is_empty());
    }
}
