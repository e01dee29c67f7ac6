//! Webhook deliveries over HTTP: the host is resolved first and every address checked
//! (loopback, private, link-local and metadata addresses are refused unless allowed); the
//! request then goes to exactly the addresses checked (no second lookup to rebind), and
//! redirects are not followed.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use auth_core::error::AdapterError;
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
    ) -> Result<u16, AdapterError> {
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
        // No proxy from the environment (`HTTP_PROXY`, `ALL_PROXY` ...): a proxy would resolve
        // the host itself and the address check above would not hold.
        let client = reqwest::Client::builder()
            .no_proxy()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A one-shot HTTP server on loopback answering `status`, and what it received.
    async fn one_shot(status: u16) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://127.0.0.1:{}/hook",
            listener.local_addr().unwrap().port()
        );
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let n = socket.read(&mut buf).await.unwrap();
            let reply = format!(
                "HTTP/1.1 {status} X\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            socket.write_all(reply.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (url, task)
    }

    #[tokio::test]
    async fn loopback_targets_are_refused_unless_allowed() {
        let (url, _server) = one_shot(200).await;
        let strict = HttpWebhookSender::new(false, Duration::from_secs(2));
        let err = strict.post(&url, &[], b"{}").await.unwrap_err();
        assert!(err.message().starts_with("refused"), "{err}");
        let localhost = url.replace("127.0.0.1", "localhost");
        let err = strict.post(&localhost, &[], b"{}").await.unwrap_err();
        assert!(err.message().starts_with("refused"), "{err}");
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed_and_headers_are_sent() {
        let (url, server) = one_shot(307).await;
        let sender = HttpWebhookSender::new(true, Duration::from_secs(2));
        let headers = [("webhook-id".to_owned(), "msg_1".to_owned())];
        let status = sender.post(&url, &headers, b"{\"a\":1}").await.unwrap();
        assert_eq!(status, 307);
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /hook "), "{request}");
        assert!(request.to_ascii_lowercase().contains("webhook-id: msg_1"));
    }
}
