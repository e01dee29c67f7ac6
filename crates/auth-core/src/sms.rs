//! Text messages: E.164 phone numbers and the [`SmsSender`] port (adapters in
//! `auth-notify`: a Twilio-compatible HTTP API and a development file drop). Messages go
//! through the durable outbox ([`crate::outbox::OutboxJob::Sms`]), sealed at rest.

use std::fmt;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::error::{AuthError, AuthResult};
use crate::mail::DeliveryError;
use crate::model::TokenHash;

/// A phone number in E.164 form: `+`, a country code not starting with 0, at most 15 digits
/// in all. Spaces, dots, dashes and parentheses typed by users are dropped first.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parse and normalise.
    pub fn parse(input: &str) -> AuthResult<Self> {
        let compact: String = input
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')'))
            .collect();
        let invalid = AuthError::InvalidField {
            field: "phone",
            reason: "must be an E.164 number (+ and 8 to 15 digits, e.g. +14155550123)",
        };
        let Some(digits) = compact.strip_prefix('+') else {
            return Err(invalid);
        };
        if !(8..=15).contains(&digits.len())
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            return Err(invalid);
        }
        Ok(Self(compact))
    }

    /// `+14155550123`
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last two digits only (`+•••••••••23`), for lists and logs.
    pub fn masked(&self) -> String {
        let n = self.0.len();
        format!("+{}{}", "•".repeat(n.saturating_sub(3)), &self.0[n - 2..])
    }

    /// A stable lookup hash (the number itself is stored sealed).
    pub fn lookup_hash(&self) -> TokenHash {
        let mut h = Sha256::new();
        h.update(b"auth-core/phone/v1\0");
        h.update(self.0.as_bytes());
        TokenHash(hex::encode(h.finalize()))
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

/// Port: delivers a text message.
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// Send `body` to `to` (E.164). Transient failures are retried by the outbox.
    async fn send(&self, to: &str, body: &str) -> Result<(), DeliveryError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_are_validated_and_normalised() {
        let n = PhoneNumber::parse(" +1 (415) 555-0123 ").unwrap();
        assert_eq!(n.as_str(), "+14155550123");
        assert_eq!(n.masked(), "+•••••••••23");
        for bad in [
            "4155550123",
            "+0155550123",
            "+1415555012345678",
            "+1415abc0123",
            "+123",
            "",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            PhoneNumber::parse("+33 6 12 34 56 78")
                .unwrap()
                .lookup_hash(),
            PhoneNumber::parse("+33612345678").unwrap().lookup_hash()
        );
    }
}
