//! Extractors: parse and authenticate, nothing more.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use std::net::IpAddr;

use actix_web::http::header::{self, HeaderMap};

use actix_web::{FromRequest, HttpRequest, web};
use auth_core::model::ClientInfo;
use auth_core::service::Authenticated;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;
use crate::settings::IpNet;
use crate::state::AppState;

const MAX_USER_AGENT_CHARS: usize = 512;

/// The `Bearer` credential of the `Authorization` header, if any.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Where the request came from: the socket peer, or, when the peer is a trusted proxy,
/// the nearest untrusted address it forwarded for.
pub fn client_info(req: &HttpRequest) -> ClientInfo {
    let proxies = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.trusted_proxies.clone())
        .unwrap_or_default();
    ClientInfo {
        ip: client_ip(req.peer_addr().map(|a| a.ip()), req.headers(), &proxies)
            .map(|ip| ip.to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect()),
    }
}

/// A caller with a valid access token whose session is live.
pub struct Caller(pub Authenticated);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req).map(str::to_owned);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                ApiError::from(auth_core::AuthError::internal("application state missing"))
            })?;
            let token = token
                .ok_or_else(|| ApiError::unauthenticated("a bearer access token is required"))?;
            Ok(Caller(state.auth.sessions().authenticate(&token).await?))
        })
    }
}

/// Parse a JSON body into `T`; an empty body parses as `{}` when `empty_ok`. The body must
/// be a JSON object (serde would also fill a struct from an array, by position).
pub fn parse_json<T: DeserializeOwned>(body: &[u8], empty_ok: bool) -> Result<T, ApiError> {
    let body: &[u8] = if empty_ok && body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("invalid JSON body: {e}")))?;
    from_object(object)
}

fn from_object<T: DeserializeOwned>(
    object: serde_json::Map<String, serde_json::Value>,
) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| ApiError::invalid_request(format!("invalid JSON body: {e}")))
}

/// A JSON object body (`application/json`), deserialized into `T`. Like `web::Json` (same
/// size limit and content-type rule, errors as problem+json), but a JSON array is refused
/// instead of filling the struct's fields by position.
pub struct JsonBody<T>(pub T);

impl<T> JsonBody<T> {
    /// The body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let object =
            web::Json::<serde_json::Map<String, serde_json::Value>>::from_request(req, payload);
        Box::pin(async move {
            let object = object.await?.into_inner();
            Ok(JsonBody(from_object(object)?))
        })
    }
}

/// Whether the request declares a JSON body.
pub fn is_json(req: &HttpRequest) -> bool {
    content_type(req).is_some_and(|ct| ct == "application/json" || ct.ends_with("+json"))
}

fn content_type(req: &HttpRequest) -> Option<String> {
    let ct = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Parse a body that may be JSON or `application/x-www-form-urlencoded` (RFC 7009/7662).
pub fn parse_json_or_form<T: DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, ApiError> {
    match content_type(req).as_deref() {
        Some("application/x-www-form-urlencoded") => serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::invalid_request(format!("invalid form body: {e}"))),
        _ if is_json(req) => parse_json(body, false),
        _ => Err(ApiError::invalid_request(
            "the body must be application/json or application/x-www-form-urlencoded",
        )),
    }
}

/// Reject a body whose declared type is not JSON.
pub fn require_json(req: &HttpRequest, body: &[u8]) -> Result<(), ApiError> {
    if body.is_empty() || is_json(req) {
        Ok(())
    } else {
        Err(ApiError::invalid_request(
            "the body must be application/json",
        ))
    }
}

/// The client IP: `X-Forwarded-For` (or `Forwarded: for=`) is read right to left, skipping
/// trusted proxies, and only when the socket peer itself is a trusted proxy.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    let trusted = |ip: &IpAddr| proxies.iter().any(|p| p.contains(*ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            return Some(peer);
        };
        for part in value.split(',') {
            match part.trim().parse() {
                Ok(ip) => hops.push(ip),
                Err(_) => return Some(peer),
            }
        }
    }
    if hops.is_empty() {
        for value in headers.get_all(header::FORWARDED) {
            let Ok(value) = value.to_str() else {
                return Some(peer);
            };
            for element in value.split(',') {
                for pair in element.split(';') {
                    let Some((k, v)) = pair.trim().split_once('=') else {
                        continue;
                    };
                    if k.eq_ignore_ascii_case("for") {
                        let v = v.trim_matches('"');
                        let v = v
                            .strip_prefix('[')
                            .and_then(|x| x.split(']').next())
                            .unwrap_or_else(|| v.split(':').next().unwrap_or(v));
                        match v.parse() {
                            Ok(ip) => hops.push(ip),
                            Err(_) => return Some(peer),
                        }
                    }
                }
            }
        }
    }
    Some(
        hops.into_iter()
            .rev()
            .find(|ip| !trusted(ip))
            .unwrap_or(peer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let proxies = [IpNet::parse("10.0.0.0/8").unwrap()];
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &spoofed, &proxies),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("10.0.0.5"), &spoofed, &proxies), ip("1.2.3.4"));
        // The client prepends a fake hop; the proxy appends the real one: rightmost untrusted wins.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.9")]);
        assert_eq!(
            client_ip(ip("10.0.0.5"), &chain, &proxies),
            ip("198.51.100.7")
        );
        let fwd = headers(&[(
            "forwarded",
            "for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.3",
        )]);
        assert_eq!(client_ip(ip("10.0.0.5"), &fwd, &proxies), ip("2001:db8::1"));
        let garbage = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(
            client_ip(ip("10.0.0.5"), &garbage, &proxies),
            ip("10.0.0.5")
        );
        assert_eq!(
            client_ip(ip("10.0.0.5"), &HeaderMap::new(), &proxies),
            ip("10.0.0.5")
        );
        assert_eq!(client_ip(ip("10.0.0.5"), &spoofed, &[]), ip("10.0.0.5"));
    }
}
