//! Signed webhooks (Standard Webhooks): endpoints that subscribe to security events, the
//! signature, and delivery through the durable outbox with retries.
//!
//! When an event is recorded, one outbox entry is written per enabled endpoint subscribed
//! to its type; the outbox worker (on any node) posts it with the headers `webhook-id`,
//! `webhook-timestamp` and `webhook-signature`. Every attempt is kept. An endpoint that has
//! failed without a success for `disable_after` is disabled, and that is audited.

use std::net::IpAddr;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::Sha256;
use uuid::Uuid;

use crate::audit::Recorded;
use crate::error::{AuthError, AuthResult};
use crate::events::{EventKind, SecurityEvent};
use crate::operators::capability::WebhooksManage;
use crate::operators::{ADMIN_ROLE, Operator};
use crate::random::random_bytes;

pub use crate::outbox::{JOB_KIND, WebhookJob};
/// Prefix of webhook secrets.
pub const SECRET_PREFIX: &str = "whsec_";
const SECRET_CONTEXT: &[u8] = b"auth-core/webhook-secret/v1";
const MAX_URL_CHARS: usize = 2048;
const MAX_EVENT_TYPES: usize = 100;
const MAX_ERROR_CHARS: usize = 300;

pub use crate::ports::{DeliveryAttempt, WebhookEndpoint, WebhookStore};

/// Outbound HTTP for deliveries. The adapter refuses forbidden addresses after resolving
/// the host (unless allowed) and follows no redirect.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// POST `body` with `headers`; the HTTP status, or why nothing was answered.
    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<u16, crate::error::AdapterError>;
}

/// Rules of webhooks.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Accept `http://` URLs (development).
    pub allow_http: bool,
    /// Hosts URLs may name (`example.com`, or `.example.com` for its subdomains); empty
    /// allows any.
    pub allowed_hosts: Vec<String>,
    /// Allow loopback, private, link-local and metadata addresses (development, tests).
    pub allow_private_addresses: bool,
    /// Attempts per message, the first included.
    pub max_attempts: i32,
    /// Delay before the second attempt; each next one is 4 times longer.
    pub retry_initial: Duration,
    /// An endpoint failing without a success for this long is disabled.
    pub disable_after: Duration,
    /// How long the previous secret keeps signing after a rotation.
    pub secret_overlap: Duration,
}

impl WebhookSettings {
    /// The delay before the next attempt after `attempts` failed ones; `None` when the
    /// message is given up. The first retry waits `retry_initial`, each next one 4 times
    /// longer (7 attempts from 60 s span about 23 hours).
    pub fn retry_delay(&self, attempts: i32) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let exp = u32::try_from(attempts.clamp(1, 12) - 1).unwrap_or(0);
        Some(self.retry_initial * 4i32.pow(exp))
    }
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_http: false,
            allowed_hosts: Vec::new(),
            allow_private_addresses: false,
            max_attempts: 7,
            retry_initial: Duration::seconds(60),
            disable_after: Duration::days(3),
            secret_overlap: Duration::hours(24),
        }
    }
}

/// Whether an address is one webhooks must not reach unless allowed: loopback, private,
/// shared, link-local (cloud metadata), unspecified, multicast, broadcast, documentation.
pub fn forbidden_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_address(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b)
        }
    }
}

/// The host of an http(s) URL, lowercased, brackets removed; `None` when malformed.
fn url_host(url: &str) -> Option<(bool, String)> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        if !(after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok()))
        {
            return None;
        }
        h.to_owned()
    } else {
        let (h, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if port.is_some_and(|p| p.parse::<u16>().is_err()) {
            return None;
        }
        h.to_owned()
    };
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    ok.then(|| (https, host.to_ascii_lowercase()))
}

/// Check a target URL against the settings (the delivery adapter checks resolved
/// addresses again at each attempt).
pub fn validate_url(url: &str, s: &WebhookSettings) -> AuthResult<String> {
    let url = url.trim();
    let invalid = |reason| AuthError::InvalidField {
        field: "url",
        reason,
    };
    if url.chars().count() > MAX_URL_CHARS
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid("must be an http(s) URL of at most 2048 characters"));
    }
    let (https, host) = url_host(url).ok_or(invalid("must be an https URL"))?;
    if !https && !s.allow_http {
        return Err(invalid("must use https"));
    }
    if !s.allowed_hosts.is_empty()
        && !s.allowed_hosts.iter().any(|allowed| {
            let allowed = allowed.to_ascii_lowercase();
            match allowed.strip_prefix('.') {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => host == allowed,
            }
        })
    {
        return Err(invalid(
            "names a host that is not in webhooks.allowed_hosts",
        ));
    }
    if let Ok(ip) = host.parse::<IpAddr>()
        && forbidden_address(ip)
        && !s.allow_private_addresses
    {
        return Err(invalid("names a private, loopback or link-local address"));
    }
    if (host == "localhost" || host.ends_with(".localhost")) && !s.allow_private_addresses {
        return Err(invalid("names a private, loopback or link-local address"));
    }
    Ok(url.to_owned())
}

fn normalise_event_types(types: Vec<String>) -> AuthResult<Vec<String>> {
    let invalid = |reason| AuthError::InvalidField {
        field: "event_types",
        reason,
    };
    if types.is_empty() || types.len() > MAX_EVENT_TYPES {
        return Err(invalid("must list 1 to 100 event types (or \"*\")"));
    }
    let mut out: Vec<String> = Vec::new();
    for t in types {
        let ok = t == "*"
            || (!t.is_empty()
                && t.len() <= 64
                && t.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        if !ok {
            return Err(invalid("each must be a snake_case event type or \"*\""));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// The `webhook-signature` value of one secret: `v1,` + base64 of HMAC-SHA256 over
/// `{id}.{timestamp}.{body}`, keyed with the base64-decoded part after `whsec_`.
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> AuthResult<String> {
    let key = secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|k| B64.decode(k).ok())
        .ok_or_else(|| AuthError::internal("malformed webhook secret"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(AuthError::internal)?;
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// A new endpoint, or the change of one.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    /// Target URL.
    pub url: Option<String>,
    /// Event types, or `*`.
    pub event_types: Option<Vec<String>>,
    /// Description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// Enabled flag.
    pub enabled: Option<bool>,
}

/// An endpoint with its secret, shown once (creation, rotation).
pub struct EndpointWithSecret {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// `whsec_...`
    pub secret: SecretString,
}

fn short_error(e: &str) -> String {
    e.chars().take(MAX_ERROR_CHARS).collect()
}

/// The webhook use cases: endpoints, secret rotation, deliveries.
#[derive(Clone)]
pub struct WebhookService {
    pub(crate) clock: std::sync::Arc<dyn crate::clock::Clock>,
    pub(crate) rng: std::sync::Arc<dyn crate::random::RandomSource>,
    pub(crate) sealer: std::sync::Arc<crate::secret_box::SecretBox>,
    pub(crate) webhook_sender: std::sync::Arc<dyn crate::webhooks::WebhookSender>,
    pub(crate) webhooks: std::sync::Arc<dyn crate::webhooks::WebhookStore>,
    pub(crate) recorder: crate::record::Recorder,
    pub(crate) webhook_settings: crate::webhooks::WebhookSettings,
}

impl std::fmt::Debug for WebhookService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookService").finish_non_exhaustive()
    }
}

impl WebhookService {
    fn new_secret(&self) -> AuthResult<(SecretString, String)> {
        let bytes = random_bytes::<32>(self.rng.as_ref());
        let secret = SecretString::from(format!("{SECRET_PREFIX}{}", B64.encode(bytes)));
        let sealed = self.sealer.seal(
            self.rng.as_ref(),
            SECRET_CONTEXT,
            secret.expose_secret().as_bytes(),
        )?;
        Ok((secret, hex::encode(sealed)))
    }

    fn open_secret(&self, sealed: &str) -> AuthResult<String> {
        let raw = hex::decode(sealed).map_err(AuthError::internal)?;
        let plain = self.sealer.open(SECRET_CONTEXT, &raw)?;
        String::from_utf8(plain).map_err(AuthError::internal)
    }

    async fn webhook_event(
        &self,
        operator: Option<&Operator<WebhooksManage>>,
        kind: EventKind,
        endpoint: Uuid,
        extra: serde_json::Value,
    ) -> AuthResult<Recorded> {
        let mut detail = json!({ "endpoint_id": endpoint.to_string() });
        if let (Some(d), serde_json::Value::Object(more)) = (detail.as_object_mut(), extra) {
            d.extend(more);
        }
        let event = SecurityEvent {
            kind,
            at: self.clock.now(),
            user_id: None,
            session_id: None,
            client: operator.map(|o| o.client().clone()),
            detail: Some(detail.to_string()),
            actor: operator.map(|o| o.caller().user_id),
        };
        self.recorder.recorded(event).await
    }

    /// Every endpoint.
    pub async fn list_webhooks(
        &self,
        _operator: &Operator<WebhooksManage>,
    ) -> AuthResult<Vec<WebhookEndpoint>> {
        self.webhooks.endpoints().await
    }

    /// One endpoint.
    pub async fn get_webhook(
        &self,
        _operator: &Operator<WebhooksManage>,
        id: Uuid,
    ) -> AuthResult<WebhookEndpoint> {
        self.webhooks.endpoint(id).await?.ok_or(AuthError::NotFound)
    }

    /// Create an endpoint; its secret is in the answer and nowhere else.
    pub async fn create_webhook(
        &self,
        operator: &Operator<WebhooksManage>,
        input: EndpointInput,
    ) -> AuthResult<EndpointWithSecret> {
        let s = &self.webhook_settings;
        let url = validate_url(
            input
                .url
                .as_deref()
                .ok_or(AuthError::InvalidRequest("url is required".into()))?,
            s,
        )?;
        let event_types = normalise_event_types(
            input
                .event_types
                .ok_or(AuthError::InvalidRequest("event_types is required".into()))?,
        )?;
        let description = normalise_webhook_description(input.description.flatten())?;
        let (secret, sealed) = self.new_secret()?;
        let now = self.clock.now();
        let endpoint = WebhookEndpoint {
            id: Uuid::now_v7(),
            url,
            description,
            event_types,
            enabled: input.enabled.unwrap_or(true),
            secret_sealed: sealed,
            previous_secret_sealed: None,
            previous_secret_expires_at: None,
            failing_since: None,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        };
        let record = self
            .webhook_event(
                Some(operator),
                EventKind::WebhookCreated,
                endpoint.id,
                json!({ "event_types": endpoint.event_types }),
            )
            .await?;
        self.webhooks.insert_endpoint(&endpoint, &record).await?;
        self.recorder.committed([record]).await;
        Ok(EndpointWithSecret { endpoint, secret })
    }

    /// Change an endpoint. Enabling it again forgets its failure streak.
    pub async fn update_webhook(
        &self,
        operator: &Operator<WebhooksManage>,
        id: Uuid,
        input: EndpointInput,
    ) -> AuthResult<WebhookEndpoint> {
        let mut endpoint = self.get_webhook(operator, id).await?;
        if let Some(url) = input.url {
            endpoint.url = validate_url(&url, &self.webhook_settings)?;
        }
        if let Some(types) = input.event_types {
            endpoint.event_types = normalise_event_types(types)?;
        }
        if let Some(d) = input.description {
            endpoint.description = normalise_webhook_description(d)?;
        }
        if let Some(enabled) = input.enabled {
            if enabled && !endpoint.enabled {
                endpoint.failing_since = None;
                endpoint.disabled_reason = None;
            }
            endpoint.enabled = enabled;
        }
        endpoint.updated_at = self.clock.now();
        let record = self
            .webhook_event(
                Some(operator),
                EventKind::WebhookUpdated,
                id,
                json!({ "enabled": endpoint.enabled }),
            )
            .await?;
        if !self.webhooks.update_endpoint(&endpoint, &record).await? {
            return Err(AuthError::NotFound);
        }
        self.recorder.committed([record]).await;
        Ok(endpoint)
    }

    /// Delete an endpoint and its delivery history; pending deliveries are dropped.
    pub async fn delete_webhook(
        &self,
        operator: &Operator<WebhooksManage>,
        id: Uuid,
    ) -> AuthResult<()> {
        let record = self
            .webhook_event(Some(operator), EventKind::WebhookDeleted, id, json!({}))
            .await?;
        if !self.webhooks.delete_endpoint(id, &record).await? {
            return Err(AuthError::NotFound);
        }
        self.recorder.committed([record]).await;
        Ok(())
    }

    /// A new secret; the previous one keeps signing (a second signature) for the overlap.
    pub async fn rotate_webhook_secret(
        &self,
        operator: &Operator<WebhooksManage>,
        id: Uuid,
    ) -> AuthResult<EndpointWithSecret> {
        let mut endpoint = self.get_webhook(operator, id).await?;
        let (secret, sealed) = self.new_secret()?;
        let now = self.clock.now();
        endpoint.previous_secret_sealed =
            Some(std::mem::replace(&mut endpoint.secret_sealed, sealed));
        endpoint.previous_secret_expires_at = Some(now + self.webhook_settings.secret_overlap);
        endpoint.updated_at = now;
        let record = self
            .webhook_event(
                Some(operator),
                EventKind::WebhookSecretRotated,
                id,
                json!({}),
            )
            .await?;
        if !self.webhooks.update_endpoint(&endpoint, &record).await? {
            return Err(AuthError::NotFound);
        }
        self.recorder.committed([record]).await;
        Ok(EndpointWithSecret { endpoint, secret })
    }

    /// The newest delivery attempts of an endpoint.
    pub async fn webhook_deliveries(
        &self,
        operator: &Operator<WebhooksManage>,
        id: Uuid,
        limit: Option<usize>,
    ) -> AuthResult<Vec<DeliveryAttempt>> {
        self.get_webhook(operator, id).await?;
        self.webhooks
            .attempts(id, crate::operators::page_size(limit))
            .await
    }

    /// When a failed delivery after `attempts` attempts is tried again; `None` to give up.
    pub(crate) fn webhook_retry_at(
        &self,
        attempts: i32,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.webhook_settings
            .retry_delay(attempts)
            .map(|delay| now + delay)
    }

    /// Carry out one delivery attempt. `Err((permanent, reason))` when it failed.
    pub(crate) async fn deliver_webhook(
        &self,
        attempt: i32,
        job: WebhookJob,
    ) -> Result<(), (bool, String)> {
        let transient = |e: AuthError| (false, e.to_string());
        let Some(endpoint) = self
            .webhooks
            .endpoint(job.endpoint_id)
            .await
            .map_err(transient)?
        else {
            return Ok(()); // deleted meanwhile: nothing to deliver
        };
        if !endpoint.enabled {
            return Ok(());
        }
        let now = self.clock.now();
        let timestamp = now.timestamp();
        let id = job.message_id.to_string();
        let mut signatures = Vec::new();
        let current = self
            .open_secret(&endpoint.secret_sealed)
            .map_err(|e| (true, e.to_string()))?;
        signatures.push(
            sign(&current, &id, timestamp, job.body.as_bytes())
                .map_err(|e| (true, e.to_string()))?,
        );
        if let (Some(prev), Some(until)) = (
            &endpoint.previous_secret_sealed,
            endpoint.previous_secret_expires_at,
        ) && until > now
        {
            let prev = self.open_secret(prev).map_err(|e| (true, e.to_string()))?;
            signatures.push(
                sign(&prev, &id, timestamp, job.body.as_bytes())
                    .map_err(|e| (true, e.to_string()))?,
            );
        }
        let headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("webhook-id".to_owned(), id),
            ("webhook-timestamp".to_owned(), timestamp.to_string()),
            ("webhook-signature".to_owned(), signatures.join(" ")),
        ];
        let outcome = self
            .webhook_sender
            .post(&endpoint.url, &headers, job.body.as_bytes())
            .await;
        let (status, error) = match &outcome {
            Ok(code) if (200..300).contains(code) => (Some(i32::from(*code)), None),
            Ok(code) => (Some(i32::from(*code)), Some(format!("HTTP status {code}"))),
            Err(e) => (None, Some(short_error(e.message()))),
        };
        let record = DeliveryAttempt {
            id: Uuid::now_v7(),
            endpoint_id: endpoint.id,
            message_id: job.message_id,
            event_type: job.event_type.clone(),
            attempt,
            attempted_at: now,
            status_code: status,
            succeeded: error.is_none(),
            error: error.clone(),
        };
        let failing_since = self
            .webhooks
            .record_attempt(&record)
            .await
            .map_err(transient)?;
        let Some(reason) = error else {
            return Ok(());
        };
        if let Some(since) = failing_since
            && now - since >= self.webhook_settings.disable_after
        {
            let why = "failing since ".to_owned() + &since.to_rfc3339();
            let record = self.webhook_event(
                None,
                EventKind::WebhookEndpointDisabled,
                endpoint.id,
                json!({ "reason": "failing", "failing_since": since.to_rfc3339(), "notify_role": ADMIN_ROLE }),
            ).await.map_err(transient)?;
            if self
                .webhooks
                .disable_endpoint(endpoint.id, &why, now, &record)
                .await
                .map_err(transient)?
            {
                tracing::warn!(endpoint_id = %endpoint.id, "webhook endpoint disabled after failing for too long");
                self.recorder.committed([record]).await;
            }
            return Err((true, format!("{reason}; endpoint disabled")));
        }
        Err((false, reason))
    }
}

fn normalise_webhook_description(d: Option<String>) -> AuthResult<Option<String>> {
    let Some(d) = d.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    if d.chars().count() > 500 || d.chars().any(char::is_control) {
        return Err(AuthError::InvalidField {
            field: "description",
            reason: "must be at most 500 characters without control characters",
        });
    }
    Ok(Some(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = sign(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn urls_are_checked_against_the_rules() {
        let strict = WebhookSettings::default();
        assert!(validate_url("https://hooks.example.com/in", &strict).is_ok());
        for bad in [
            "http://hooks.example.com/in",
            "https://127.0.0.1/x",
            "https://169.254.169.254/latest",
            "https://[::1]/x",
            "https://10.1.2.3/",
            "https://localhost/x",
            "https://user@example.com/",
            "ftp://example.com/",
            "https://",
        ] {
            assert!(validate_url(bad, &strict).is_err(), "{bad}");
        }
        let listed = WebhookSettings {
            allowed_hosts: vec![".example.com".into(), "hooks.partner.org".into()],
            ..WebhookSettings::default()
        };
        assert!(validate_url("https://a.example.com/", &listed).is_ok());
        assert!(validate_url("https://hooks.partner.org:8443/x", &listed).is_ok());
        assert!(validate_url("https://example.org/", &listed).is_err());
        assert!(validate_url("https://evilexample.com/", &listed).is_err());
        let dev = WebhookSettings {
            allow_http: true,
            allow_private_addresses: true,
            ..WebhookSettings::default()
        };
        assert!(validate_url("http://127.0.0.1:8080/hook", &dev).is_ok());
    }

    #[test]
    fn forbidden_addresses_cover_metadata_and_private_ranges() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
        ] {
            assert!(forbidden_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(!forbidden_address(ip.parse().unwrap()), "{ip}");
        }
    }
}
