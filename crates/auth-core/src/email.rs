//! Email addresses: parsed once, valid and normalised from then on.

use std::fmt;

/// A syntactically valid email address.
///
/// Normalisation: surrounding whitespace trimmed and the domain lowercased; the local part
/// keeps its case for display. Uniqueness is case-insensitive: [`Email::canonical`] is the
/// whole address lowercased and is what stores index.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parse and normalise an address.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("email is empty");
        }
        if s.chars().count() > 254 {
            return Err("email is longer than 254 characters");
        }
        let (local, domain) = s.rsplit_once('@').ok_or("email has no @")?;
        if local.is_empty() || local.len() > 64 {
            return Err("local part must be 1 to 64 characters");
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err("local part has a misplaced dot");
        }
        let local_ok = local.chars().all(|c| {
            c.is_alphanumeric()
                || "!#$%&'*+-/=?^_`{|}~.".contains(c)
                || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
        });
        if !local_ok {
            return Err("local part has a character not allowed in an address");
        }
        let domain = domain.to_lowercase();
        if domain.is_empty() || domain.len() > 253 {
            return Err("domain must be 1 to 253 characters");
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err("domain needs a dot");
        }
        for label in &labels {
            if label.is_empty() || label.len() > 63 {
                return Err("domain label must be 1 to 63 characters");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err("domain label starts or ends with a hyphen");
            }
            if !label.chars().all(|c| c.is_alphanumeric() || c == '-') {
                return Err("domain has a character not allowed in a host name");
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
        {
            return Err("domain must not end in a number");
        }
        Ok(Self(format!("{local}@{domain}")))
    }

    /// The address as the user typed it, with the domain lowercased.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lowercased form used for uniqueness and look-ups.
    pub fn canonical(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases_the_domain_only() {
        let e = Email::parse("  Alice.Smith@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Alice.Smith@example.com");
        assert_eq!(e.canonical(), "alice.smith@example.com");
    }

    #[test]
    fn accepts_plus_addressing_and_subdomains() {
        assert!(Email::parse("a+tag@mail.example.co.uk").is_ok());
        assert!(Email::parse("o'hara@example.org").is_ok());
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a b@example.com",
            "a@exa mple.com",
            "a..b@example.com",
            ".a@example.com",
            "a@-example.com",
            "a@example..com",
            "a@example.123",
            "a<b>@example.com",
            "a@ex_ample.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long_local).is_err());
    }
}
