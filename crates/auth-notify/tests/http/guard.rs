//! The HTTP adapters of the guard ports against a real HTTP/1.1 server on loopback that
//! speaks the providers' wire formats: a siteverify endpoint (hCaptcha, Turnstile,
//! reCAPTCHA) and a Have I Been Pwned range endpoint.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth_core::guard::{BreachedPasswords, CaptchaVerifier};
use auth_notify::{HibpRangeClient, SiteverifyCaptcha};
use secrecy::SecretString;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// With characters the form encoding must escape.
const SECRET: &str = "0x4AAA-s3cr+t/=&%";
const TIMEOUT: Duration = Duration::from_secs(5);

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    /// Header names lowercased.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    /// Every byte received, head and body.
    raw: Vec<u8>,
}

impl Request {
    fn form(&self) -> BTreeMap<String, String> {
        parse_form(std::str::from_utf8(&self.body).unwrap())
    }
}

/// A response: status, content type, body.
type Reply = (u16, &'static str, String);

/// A minimal HTTP/1.1 server: one request per connection, `Connection: close`.
struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    async fn start(handler: fn(&Request) -> Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    if let Some(request) = read_request(stream, handler).await {
                        recorded.lock().unwrap().push(request);
                    }
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(mut stream: TcpStream, handler: fn(&Request) -> Reply) -> Option<Request> {
    let mut raw = Vec::new();
    let mut buf = [0_u8; 4096];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(raw[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    while raw.len() < head_end + length {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let request = Request {
        method,
        target,
        headers,
        body: raw[head_end..head_end + length].to_vec(),
        raw: raw.clone(),
    };
    let (status, content_type, body) = handler(&request);
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await.ok()?;
    stream.shutdown().await.ok()?;
    Some(request)
}

/// Decodes `application/x-www-form-urlencoded`.
fn parse_form(body: &str) -> BTreeMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// A siteverify endpoint at `/siteverify`: success only for our secret and `good-token`.
fn siteverify(request: &Request) -> Reply {
    const JSON: &str = "application/json";
    let form_type = request.headers.get("content-type").map(String::as_str);
    if request.method != "POST"
        || request.target != "/siteverify"
        || form_type != Some("application/x-www-form-urlencoded")
    {
        return (404, JSON, "{}".to_owned());
    }
    let form = request.form();
    let body = if form.get("secret").map(String::as_str) != Some(SECRET) {
        r#"{"success":false,"error-codes":["invalid-input-secret"]}"#
    } else if form.get("response").map(String::as_str) == Some("good-token") {
        r#"{"success":true,"challenge_ts":"2025-01-01T00:00:00Z","hostname":"auth.test","error-codes":[]}"#
    } else {
        r#"{"success":false,"error-codes":["invalid-input-response"]}"#
    };
    (200, JSON, body.to_owned())
}

fn always_500(_: &Request) -> Reply {
    (500, "text/plain", "internal error".to_owned())
}

fn not_json(_: &Request) -> Reply {
    (200, "text/html", "<html>captcha</html>".to_owned())
}

fn sha1_hex(password: &str) -> String {
    Sha1::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// A range endpoint at `/range/{prefix}`: for `password123`'s prefix, its suffix at count
/// 123456 among other suffixes and padding lines (count 0), CRLF-separated, as HIBP does.
fn range(request: &Request) -> Reply {
    const TEXT: &str = "text/plain";
    let hash = sha1_hex("password123");
    let Some(prefix) = request.target.strip_prefix("/range/") else {
        return (404, TEXT, "not found".to_owned());
    };
    if request.method != "GET" || prefix.len() != 5 {
        return (
            400,
            TEXT,
            "The hash prefix was not in a valid format".to_owned(),
        );
    }
    let mut lines = vec![
        "003D68EB55068C33ACE09247EE4C639306B:3".to_owned(),
        "012C192B2F16F82EA0EB9EF18D9D539B0DD:1".to_owned(),
        "0A6F2A8D1E5B0C6D9E4F1A2B3C4D5E6F708:0".to_owned(),
        "FFEC2A8D1E5B0C6D9E4F1A2B3C4D5E6F708:0".to_owned(),
    ];
    if prefix == &hash[..5] {
        lines.insert(2, format!("{}:123456", &hash[5..]));
    }
    (200, TEXT, lines.join("\r\n"))
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn captcha(url: String) -> SiteverifyCaptcha {
    SiteverifyCaptcha::new(url, SecretString::from(SECRET), TIMEOUT).unwrap()
}

#[tokio::test]
async fn captcha_passes_a_good_token_and_posts_secret_response_and_remoteip() {
    let server = TestServer::start(siteverify).await;
    let verifier = captcha(server.url("/siteverify"));

    assert_eq!(
        verifier.verify("good-token", Some("203.0.113.7")).await,
        Ok(true)
    );
    assert_eq!(verifier.verify("good-token", None).await, Ok(true));

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let with_ip = requests
        .iter()
        .find(|r| r.form().contains_key("remoteip"))
        .unwrap();
    assert_eq!(with_ip.method, "POST");
    let form = with_ip.form();
    assert_eq!(form.get("secret").map(String::as_str), Some(SECRET));
    assert_eq!(form.get("response").map(String::as_str), Some("good-token"));
    assert_eq!(
        form.get("remoteip").map(String::as_str),
        Some("203.0.113.7")
    );
    assert!(with_ip.headers.contains_key("user-agent"));
    let without_ip = requests
        .iter()
        .find(|r| !r.form().contains_key("remoteip"))
        .unwrap();
    assert_eq!(without_ip.form().len(), 2);
}

#[tokio::test]
async fn captcha_refuses_a_bad_token_and_a_wrong_secret() {
    let server = TestServer::start(siteverify).await;
    let verifier = captcha(server.url("/siteverify"));
    assert_eq!(
        verifier.verify("bad-token", Some("203.0.113.7")).await,
        Ok(false)
    );
    assert_eq!(verifier.verify("", None).await, Ok(false));

    let wrong_secret = SiteverifyCaptcha::new(
        server.url("/siteverify"),
        SecretString::from("not-the-secret"),
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(wrong_secret.verify("good-token", None).await, Ok(false));
}

#[tokio::test]
async fn captcha_provider_down_500_or_garbage_is_an_error_without_the_secret() {
    let down = captcha(format!("http://{}/siteverify", closed_port().await));
    let error = down.verify("good-token", None).await.unwrap_err();
    assert!(error.message().contains("cannot connect"), "{error}");
    assert!(!error.message().contains(SECRET), "{error}");

    let failing = TestServer::start(always_500).await;
    let error = captcha(failing.url("/siteverify"))
        .verify("good-token", None)
        .await
        .unwrap_err();
    assert!(error.message().contains("500"), "{error}");
    assert!(!error.message().contains(SECRET), "{error}");

    let garbage = TestServer::start(not_json).await;
    let error = captcha(garbage.url("/siteverify"))
        .verify("good-token", None)
        .await
        .unwrap_err();
    assert!(error.message().contains("unparsable"), "{error}");
    assert!(!error.message().contains(SECRET), "{error}");
}

#[tokio::test]
async fn captcha_does_not_follow_redirects() {
    fn redirect(_: &Request) -> Reply {
        (302, "text/plain", String::new())
    }
    let server = TestServer::start(redirect).await;
    let error = captcha(server.url("/siteverify"))
        .verify("good-token", None)
        .await
        .unwrap_err();
    assert!(error.message().contains("302"), "{error}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_provider_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let timeout = Duration::from_millis(300);

    let verifier = SiteverifyCaptcha::new(
        format!("http://{addr}/siteverify"),
        SecretString::from(SECRET),
        timeout,
    )
    .unwrap();
    let started = Instant::now();
    let error = verifier.verify("good-token", None).await.unwrap_err();
    assert!(error.message().contains("timed out"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3));

    let hibp = HibpRangeClient::new(format!("http://{addr}"), timeout).unwrap();
    let error = hibp
        .breach_count(&SecretString::from("password123"))
        .await
        .unwrap_err();
    assert!(error.message().contains("timed out"), "{error}");
    hold.abort();
}

#[test]
fn captcha_settings_are_checked() {
    let secret = || SecretString::from(SECRET);
    let ok = SiteverifyCaptcha::new(
        "https://challenges.cloudflare.com/turnstile/v0/siteverify".to_owned(),
        secret(),
        TIMEOUT,
    )
    .unwrap();
    assert!(!format!("{ok:?}").contains(SECRET));
    assert!(SiteverifyCaptcha::new("not a url".to_owned(), secret(), TIMEOUT).is_err());
    assert!(SiteverifyCaptcha::new("ftp://example.com/".to_owned(), secret(), TIMEOUT).is_err());
    assert!(
        SiteverifyCaptcha::new(
            "https://api.hcaptcha.com/siteverify".to_owned(),
            SecretString::from(" "),
            TIMEOUT
        )
        .is_err()
    );
    assert!(
        SiteverifyCaptcha::new(
            "https://api.hcaptcha.com/siteverify".to_owned(),
            secret(),
            Duration::ZERO
        )
        .is_err()
    );
}

#[tokio::test]
async fn hibp_counts_a_breached_password_sending_only_the_hash_prefix() {
    let server = TestServer::start(range).await;
    let client = HibpRangeClient::new(server.url(""), TIMEOUT).unwrap();
    let count = client
        .breach_count(&SecretString::from("password123"))
        .await
        .unwrap();
    assert_eq!(count, 123_456);

    let hash = sha1_hex("password123");
    assert_eq!(hash, "CBFDAC6008F9CAB4083784CBD1874F76618D2A97");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, "/range/CBFDA");
    assert_eq!(
        request.headers.get("add-padding").map(String::as_str),
        Some("true")
    );
    assert!(
        request
            .headers
            .get("user-agent")
            .is_some_and(|ua| !ua.is_empty())
    );
    assert!(request.body.is_empty());
    let raw = String::from_utf8_lossy(&request.raw).to_ascii_uppercase();
    assert!(!raw.contains("PASSWORD123"));
    assert!(!raw.contains(&hash[5..]));
    assert!(!raw.contains(&hash[..6]));
}

#[tokio::test]
async fn hibp_returns_zero_for_an_unknown_password_and_honours_a_base_path() {
    let server = TestServer::start(|request| {
        let mut inner = request.clone();
        match inner.target.strip_prefix("/pwned") {
            Some(rest) => {
                inner.target = rest.to_owned();
                range(&inner)
            }
            None => (404, "text/plain", String::new()),
        }
    })
    .await;
    for base in [server.url("/pwned"), server.url("/pwned/")] {
        let client = HibpRangeClient::new(base, TIMEOUT).unwrap();
        let password = SecretString::from("correct horse battery staple 7f3a");
        assert_eq!(client.breach_count(&password).await, Ok(0));
        assert_eq!(
            client
                .breach_count(&SecretString::from("password123"))
                .await,
            Ok(123_456)
        );
    }
    let unknown = &sha1_hex("correct horse battery staple 7f3a")[..5];
    let targets: Vec<String> = server.requests().into_iter().map(|r| r.target).collect();
    assert!(
        targets.contains(&format!("/pwned/range/{unknown}")),
        "{targets:?}"
    );
    assert!(
        targets.iter().all(|t| t.len() == "/pwned/range/".len() + 5),
        "{targets:?}"
    );
}

#[tokio::test]
async fn hibp_down_or_500_is_an_error() {
    let password = SecretString::from("password123");
    let down = HibpRangeClient::new(format!("http://{}", closed_port().await), TIMEOUT).unwrap();
    let error = down.breach_count(&password).await.unwrap_err();
    assert!(error.message().contains("cannot connect"), "{error}");
    assert!(!error.message().contains("CBFDA"), "{error}");

    let failing = TestServer::start(always_500).await;
    let client = HibpRangeClient::new(failing.url(""), TIMEOUT).unwrap();
    let error = client.breach_count(&password).await.unwrap_err();
    assert!(error.message().contains("500"), "{error}");

    let garbage = TestServer::start(not_json).await;
    let client = HibpRangeClient::new(garbage.url(""), TIMEOUT).unwrap();
    assert!(client.breach_count(&password).await.is_err());
}

#[test]
fn hibp_settings_are_checked() {
    let client = HibpRangeClient::with_default_url(TIMEOUT).unwrap();
    assert!(format!("{client:?}").contains("api.pwnedpasswords.com"));
    assert_eq!(
        HibpRangeClient::DEFAULT_BASE_URL,
        "https://api.pwnedpasswords.com"
    );
    assert!(HibpRangeClient::new("api.pwnedpasswords.com".to_owned(), TIMEOUT).is_err());
    assert!(HibpRangeClient::new("https://u:p@example.com".to_owned(), TIMEOUT).is_err());
    assert!(
        HibpRangeClient::new(HibpRangeClient::DEFAULT_BASE_URL.to_owned(), Duration::ZERO).is_err()
    );
}
