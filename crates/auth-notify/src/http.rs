//! The HTTP client shared by the outbound HTTP adapters ([`SiteverifyCaptcha`],
//! [`HibpRangeClient`]): rustls on *ring*, no redirects, one deadline per request, bounded
//! response bodies.
//!
//! [`SiteverifyCaptcha`]: crate::SiteverifyCaptcha
//! [`HibpRangeClient`]: crate::HibpRangeClient

use std::time::Duration;

use reqwest::{Client, Response, Url, redirect};

/// `User-Agent` of every request (the HIBP API refuses requests without one).
pub(crate) const USER_AGENT: &str = concat!("auth-server/", env!("CARGO_PKG_VERSION"));

/// A client that never follows redirects and gives up on a request (connect, send, read the
/// whole body) after `timeout`. `what` names the setting in errors.
pub(crate) fn client(what: &str, timeout: Duration) -> Result<Client, String> {
    if timeout.is_zero() {
        return Err(format!("{what}: timeout must be greater than zero"));
    }
    Client::builder()
        .redirect(redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| format!("{what}: cannot build the HTTP client: {e}"))
}

/// Parses an absolute `http`/`https` URL without credentials, query or fragment.
pub(crate) fn parse_url(what: &str, url: &str) -> Result<Url, String> {
    let parsed =
        Url::parse(url.trim()).map_err(|e| format!("{what}: {url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{what}: {url:?} must be an http or https URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{what}: {url:?} has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("{what}: the URL must not carry credentials"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("{what}: {url:?} must not have a query or fragment"));
    }
    Ok(parsed)
}

/// A request error, without the URL (it may carry request data, such as a hash prefix).
pub(crate) fn request_error(service: &str, error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_redirect() {
        "redirect refused"
    } else if error.is_body() || error.is_decode() {
        "cannot read the response"
    } else {
        "request failed"
    };
    format!("{service}: {kind}: {}", error.without_url())
}

/// The body of a 2xx response, at most `limit` bytes; any other status is an error.
pub(crate) async fn success_body(
    service: &str,
    mut response: Response,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{service}: unexpected HTTP status {status}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| request_error(service, e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(format!("{service}: response larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
