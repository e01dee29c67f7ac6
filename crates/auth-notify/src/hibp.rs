//! [`HibpRangeClient`]: breached-password counts from the Have I Been Pwned range API
//! (k-anonymity).

use std::fmt::{self, Write as _};
use std::time::Duration;

use async_trait::async_trait;
use auth_core::error::AdapterError;
use auth_core::guard::BreachedPasswords;
use reqwest::{Client, Url};
use secrecy::{ExposeSecret, SecretString};
use sha1::{Digest, Sha1};

use crate::http;

const SERVICE: &str = "breached-password check";
/// A padded range answer is 800 to 1,000 lines of about 40 bytes.
const BODY_LIMIT: usize = 1024 * 1024;
/// Hex digits of the hash prefix sent to the service.
const PREFIX_LEN: usize = 5;
/// Hex digits of a SHA-1 hash.
const HASH_LEN: usize = 40;

/// Counts a password's appearances in known breaches with the Have I Been Pwned range API,
/// by k-anonymity: only the first 5 hex digits of the password's SHA-1 leave the process
/// (`GET {base_url}/range/{prefix}` with `Add-Padding: true`); the answer lists every known
/// suffix of that prefix as `SUFFIX:COUNT` lines, plus padding lines of count 0, and the
/// match is made here.
///
/// A non-2xx status, a timeout, a refused connection, a redirect or a malformed body is an
/// `Err`. Errors and logs never carry the password, its hash or the prefix.
#[derive(Clone)]
pub struct HibpRangeClient {
    client: Client,
    base_url: Url,
}

impl fmt::Debug for HibpRangeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HibpRangeClient")
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl HibpRangeClient {
    /// The public Pwned Passwords service.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.pwnedpasswords.com";

    /// Checks the base URL (absolute http/https, may have a path) and the timeout (not
    /// zero: it bounds each check end to end) and builds the client. Needs no runtime.
    pub fn new(base_url: String, timeout: Duration) -> Result<Self, String> {
        let mut base_url = http::parse_url("breached_passwords.base_url", &base_url)?;
        // `{base}/range/` resolves under the base's path whether or not it ends in '/'.
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }
        let client = http::client("breached_passwords", timeout)?;
        Ok(Self { client, base_url })
    }

    /// [`HibpRangeClient::new`] on [`HibpRangeClient::DEFAULT_BASE_URL`].
    pub fn with_default_url(timeout: Duration) -> Result<Self, String> {
        Self::new(Self::DEFAULT_BASE_URL.to_owned(), timeout)
    }
}

/// The uppercase hex SHA-1 of `password`.
fn sha1_hex(password: &SecretString) -> String {
    let digest = Sha1::digest(password.expose_secret().as_bytes());
    let mut hex = String::with_capacity(HASH_LEN);
    for byte in digest {
        let _ = write!(hex, "{byte:02X}");
    }
    hex
}

/// The count of `suffix` in a range answer (0 when absent), or why the body is malformed.
fn count_in_range(body: &str, suffix: &str) -> Result<u64, AdapterError> {
    let mut found = 0;
    for (index, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let malformed = || format!("{SERVICE}: malformed response line {}", index + 1);
        let (candidate, count) = line.split_once(':').ok_or_else(malformed)?;
        if candidate.len() != HASH_LEN - PREFIX_LEN
            || !candidate.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(malformed().into());
        }
        let count: u64 = count.trim().parse().map_err(|_| malformed())?;
        if candidate.eq_ignore_ascii_case(suffix) {
            found = count;
        }
    }
    Ok(found)
}

#[async_trait]
impl BreachedPasswords for HibpRangeClient {
    async fn breach_count(&self, password: &SecretString) -> Result<u64, AdapterError> {
        let hash = sha1_hex(password);
        let (prefix, suffix) = hash.split_at(PREFIX_LEN);
        let url = self
            .base_url
            .join(&format!("range/{prefix}"))
            .map_err(|e| format!("{SERVICE}: cannot build the request URL: {e}"))?;
        let response = self
            .client
            .get(url)
            .header("Add-Padding", "true")
            .send()
            .await
            .map_err(|e| http::request_error(SERVICE, e))?;
        let body = http::success_body(SERVICE, response, BODY_LIMIT).await?;
        let body =
            std::str::from_utf8(&body).map_err(|_| format!("{SERVICE}: response is not UTF-8"))?;
        count_in_range(body, suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_is_uppercase_hex() {
        let hash = sha1_hex(&SecretString::from("password123"));
        assert_eq!(hash, "CBFDAC6008F9CAB4083784CBD1874F76618D2A97");
    }

    #[test]
    fn range_lines_are_matched_by_suffix_and_malformed_lines_refused() {
        let body = "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n\
                    C6008F9CAB4083784CBD1874F76618D2A97:123456\r\n\
                    00D4F6E8FA6EECAD2A3AA415EEC418D38EC:0";
        let suffix = "C6008F9CAB4083784CBD1874F76618D2A97";
        assert_eq!(count_in_range(body, suffix), Ok(123_456));
        assert_eq!(
            count_in_range(body, &suffix.to_ascii_lowercase()),
            Ok(123_456)
        );
        assert_eq!(
            count_in_range(body, "00D4F6E8FA6EECAD2A3AA415EEC418D38EC"),
            Ok(0)
        );
        assert_eq!(
            count_in_range(body, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"),
            Ok(0)
        );
        assert_eq!(count_in_range("", suffix), Ok(0));
        assert!(count_in_range("<html>rate limited</html>", suffix).is_err());
        assert!(count_in_range("C6008F9CAB4083784CBD1874F76618D2A97:lots", suffix).is_err());
    }
}
