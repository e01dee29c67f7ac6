//! Test support (cargo feature `testing`): [`SmtpSink`], a real SMTP server on loopback
//! that records every message it accepts.
//!
//! The SMTP protocol is `mailin`'s state machine (the engine of `mailin-embedded`); the
//! listener and connection threads are ours, because `mailin-embedded`'s server runs
//! forever and a test must be able to stop the sink (connections then fail) and start it
//! again on the same port.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mail_parser::{MessageParser, PartType};
use mailin::response::{AUTH_OK, INVALID_CREDENTIALS, NO_MAILBOX, OK};
use mailin::{Action, AuthMechanism, Handler, Response, SessionBuilder};

/// How long an idle client connection is kept open.
const IDLE: Duration = Duration::from_secs(60);
/// How often [`SmtpSink::wait_for`] looks.
const POLL: Duration = Duration::from_millis(50);

/// A message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// Envelope sender (`MAIL FROM`).
    pub envelope_from: String,
    /// The `From` header: `Name <address>`, or the address alone.
    pub from: String,
    /// Envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The decoded `Subject` header.
    pub subject: String,
    /// The decoded text/plain part (empty if none).
    pub text_body: String,
    /// The decoded text/html part (empty if none).
    pub html_body: String,
    /// The message as received (headers and encoded body).
    pub raw: String,
}

impl ReceivedMail {
    fn parse(envelope_from: String, to: Vec<String>, raw: &[u8]) -> Self {
        let mut mail = Self {
            envelope_from,
            from: String::new(),
            to,
            subject: String::new(),
            text_body: String::new(),
            html_body: String::new(),
            raw: String::from_utf8_lossy(raw).into_owned(),
        };
        let Some(parsed) = MessageParser::default().parse(raw) else {
            return mail;
        };
        if let Some(addr) = parsed.from().and_then(|from| from.first()) {
            mail.from = match (addr.name(), addr.address()) {
                (Some(name), Some(address)) => format!("{name} <{address}>"),
                (None, Some(address)) => address.to_owned(),
                (Some(name), None) => name.to_owned(),
                (None, None) => String::new(),
            };
        }
        mail.subject = parsed.subject().unwrap_or_default().to_owned();
        for part in &parsed.parts {
            match &part.body {
                PartType::Text(text) if mail.text_body.is_empty() => {
                    mail.text_body = text.to_string();
                }
                PartType::Html(html) if mail.html_body.is_empty() => {
                    mail.html_body = html.to_string();
                }
                _ => {}
            }
        }
        mail
    }
}

/// What the sink threads share.
#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<ReceivedMail>>,
    stopped: AtomicBool,
    connections: Mutex<HashMap<u64, TcpStream>>,
    next_connection: AtomicU64,
    refused: Mutex<HashSet<String>>,
    deferred: Mutex<HashSet<String>>,
    credentials: Option<(String, String)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A real SMTP server on `127.0.0.1` for tests: accepts every message (unless told to
/// refuse or defer a recipient) and keeps it for [`SmtpSink::messages`].
///
/// Each test should start its own sink; sinks share nothing. Dropping a sink stops it.
pub struct SmtpSink {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("port", &self.port)
            .field("stopped", &self.shared.stopped.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl SmtpSink {
    /// Starts a sink on `127.0.0.1`, on a free port chosen by the system.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub fn start() -> SmtpSink {
        Self::launch(0, None)
    }

    /// Starts a sink on `127.0.0.1:port`, to bring a stopped sink back on the port a mailer
    /// is configured with. Retries for up to two seconds while the port is still taken.
    ///
    /// # Panics
    /// If the port cannot be bound.
    pub fn start_on(port: u16) -> SmtpSink {
        Self::launch(port, None)
    }

    /// Starts a sink on a free port that requires SMTP AUTH (PLAIN or LOGIN, offered without
    /// TLS) with these credentials before it accepts mail.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub fn start_requiring_auth(username: &str, password: &str) -> SmtpSink {
        Self::launch(0, Some((username.to_owned(), password.to_owned())))
    }

    fn launch(port: u16, credentials: Option<(String, String)>) -> SmtpSink {
        let listener = bind(port);
        let port = listener
            .local_addr()
            .map(|addr| addr.port())
            .unwrap_or_else(|e| panic!("SmtpSink: no local address: {e}"));
        let shared = Arc::new(Shared {
            credentials,
            ..Shared::default()
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("smtp-sink-{port}"))
                .spawn(move || accept_loop(&listener, &shared))
                .unwrap_or_else(|e| panic!("SmtpSink: cannot start a thread: {e}"))
        };
        SmtpSink {
            port,
            shared,
            acceptor: Mutex::new(Some(acceptor)),
        }
    }

    /// The host to connect to: `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The port the sink listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops accepting connections, closes the port and drops open connections: sending
    /// then fails with a connection error. Idempotent.
    pub fn stop(&self) {
        if self.shared.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port);
        // Wake the blocked accept so the thread sees the flag and drops the listener.
        let woken = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok();
        // If the wake-up failed the thread is left to itself rather than waited for.
        let acceptor = lock(&self.acceptor).take();
        match acceptor {
            Some(handle) if woken => {
                let _ = handle.join();
            }
            _ => {}
        }
        for (_, stream) in lock(&self.shared.connections).drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Refuses `RCPT TO` for `address` (case-insensitive) with `550 Mailbox unavailable`.
    pub fn refuse_recipient(&self, address: &str) {
        lock(&self.shared.refused).insert(address.to_ascii_lowercase());
    }

    /// Answers `RCPT TO` for `address` (case-insensitive) with `450`, a temporary failure.
    pub fn defer_recipient(&self, address: &str) {
        lock(&self.shared.deferred).insert(address.to_ascii_lowercase());
    }

    /// Accepts `address` again after [`refuse_recipient`](Self::refuse_recipient) or
    /// [`defer_recipient`](Self::defer_recipient).
    pub fn accept_recipient(&self, address: &str) {
        let address = address.to_ascii_lowercase();
        lock(&self.shared.refused).remove(&address);
        lock(&self.shared.deferred).remove(&address);
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.shared.messages).clone()
    }

    /// Forgets the messages received so far.
    pub fn clear(&self) {
        lock(&self.shared.messages).clear();
    }

    /// Waits until a received message satisfies `predicate` (the first such, oldest
    /// first), looking every 50 ms; `None` after `timeout`.
    pub async fn wait_for<F>(&self, predicate: F, timeout: Duration) -> Option<ReceivedMail>
    where
        F: Fn(&ReceivedMail) -> bool,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let found = lock(&self.shared.messages)
                .iter()
                .find(|mail| predicate(mail))
                .cloned();
            if found.is_some() {
                return found;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `127.0.0.1:port`, retrying briefly while the port is still in use.
fn bind(port: u16) -> TcpListener {
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match TcpListener::bind(addr) {
            Ok(listener) => return listener,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("SmtpSink: cannot listen on {addr}: {e}"),
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stopped.load(Ordering::SeqCst) {
            break;
        }
        let stream = match conn {
            Ok(stream) => stream,
            Err(_) => {
                // Out of file descriptors or the like: do not spin.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let id = shared.next_connection.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.connections).insert(id, clone);
        }
        let shared_for_session = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("smtp-sink-session".to_owned())
            .spawn(move || {
                let _ = serve_connection(stream, &shared_for_session);
                lock(&shared_for_session.connections).remove(&id);
            });
        if spawned.is_err() {
            lock(&shared.connections).remove(&id);
        }
    }
    // The listener is dropped by the caller's return: the port closes.
}

/// One SMTP session, line by line through mailin's state machine.
fn serve_connection(stream: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    stream.set_write_timeout(Some(IDLE))?;
    let remote = stream
        .peer_addr()
        .map(|addr| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut builder = SessionBuilder::new("smtp-sink.localhost");
    if shared.credentials.is_some() {
        builder
            .enable_auth(AuthMechanism::Plain)
            .enable_auth(AuthMechanism::Login)
            .insecure_enable_plaintext_auth();
    }
    let handler = SinkHandler {
        shared: Arc::clone(shared),
        data: Vec::new(),
        envelope_from: String::new(),
        to: Vec::new(),
    };
    let mut session = builder.build(remote, handler);
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    write_response(&mut writer, &session.greeting())?;
    let mut line = Vec::with_capacity(128);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let response = session.process(&line);
        match response.action {
            Action::Reply => write_response(&mut writer, &response)?,
            Action::Close | Action::UpgradeTls => {
                // The sink offers no STARTTLS, so an upgrade is never asked for.
                write_response(&mut writer, &response)?;
                return Ok(());
            }
            Action::NoReply => {}
        }
    }
}

fn write_response(writer: &mut TcpStream, response: &Response) -> io::Result<()> {
    let bytes = response.buffer()?;
    writer.write_all(&bytes)?;
    writer.flush()
}

/// Decides on recipients and credentials, and records each message.
struct SinkHandler {
    shared: Arc<Shared>,
    envelope_from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for SinkHandler {
    fn rcpt(&mut self, to: &str) -> Response {
        let to = to.to_ascii_lowercase();
        if lock(&self.shared.refused).contains(&to) {
            NO_MAILBOX
        } else if lock(&self.shared.deferred).contains(&to) {
            Response::custom(450, "Mailbox busy, try again later".to_owned())
        } else {
            OK
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        from.clone_into(&mut self.envelope_from);
        self.to = to.to_vec();
        self.data.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = ReceivedMail::parse(
            std::mem::take(&mut self.envelope_from),
            std::mem::take(&mut self.to),
            &std::mem::take(&mut self.data),
        );
        lock(&self.shared.messages).push(mail);
        OK
    }

    fn auth_plain(
        &mut self,
        _authorization_id: &str,
        authentication_id: &str,
        password: &str,
    ) -> Response {
        self.check(authentication_id, password)
    }

    fn auth_login(&mut self, username: &str, password: &str) -> Response {
        self.check(username, password)
    }
}

impl SinkHandler {
    fn check(&self, username: &str, password: &str) -> Response {
        match &self.shared.credentials {
            Some((user, pass)) if user == username && pass == password => AUTH_OK,
            _ => INVALID_CREDENTIALS,
        }
    }
}
