//! Webhook deliveries over HTTP: the host is resolved first and every address checked
//! (loopback, private, link-local and metadata addresses are refused unless allowed); the
//! request then goes to exactly the addresses checked (no second lookup to rebind), and
//! redirects are not followed.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use auth_core::webhooks::{WebhookSender, forbidden_address};

/// [`WebhookSender`] over reqwest.
#[derive(Debug, Clone)]
pub struct HttpWebhookSender {
    allow_private_addresses: bool,
    timeout: Duration,
}

impl HttpWebhookSender {
    /// A sender with a per-request `timeout`.
    pub fn new(allow_private_addresses: bool, timeout: Duration) -> Self {
        Self {
            allow_private_addresses,
            timeout,
        }
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<u16, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
        let host = parsed
            .host_str()
            .ok_or("the URL has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed
            .port_or_known_default()
            .ok_or("the URL has no port")?;
        let addrs: Vec<SocketAddr> =
            tokio::time::timeout(self.timeout, tokio::net::lookup_host((host.as_str(), port)))
                .await
                .map_err(|_| "name resolution timed out".to_owned())?
                .map_err(|e| format!("cannot resolve the host: {e}"))?
                .collect();
        if addrs.is_empty() {
            return Err("the host resolves to no address".into());
        }
        if !self.allow_private_addresses && addrs.iter().any(|a| forbidden_address(a.ip())) {
            return Err(
                "refused: the host resolves to a private, loopback or link-local address".into(),
            );
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .resolve_to_addrs(&host, &addrs)
            .build()
            .map_err(|e| format!("client: {e}"))?;
        let mut request = client.post(parsed).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "connection failed".to_owned()
            } else {
                "request failed".to_owned()
            }
        })?;
        Ok(response.status().as_u16())
    }
}
