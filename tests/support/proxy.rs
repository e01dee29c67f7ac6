//! A TCP proxy on loopback that a test controls: open (forwarding), paused (holding the
//! bytes it receives) or closed (dropping every connection and refusing new ones). Put
//! between the server and PostgreSQL, it stands for a database that goes away, comes
//! back, or stalls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Open,
    /// Keep connections, but hold what arrives until the mode changes.
    Paused,
    /// Drop every connection; accept new ones only to close them at once.
    Closed,
}

struct Shared {
    mode: watch::Sender<Mode>,
    target: Mutex<Option<String>>,
    held: AtomicUsize,
}

/// The proxy; stops when dropped.
pub struct TcpProxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Listen on a free loopback port, in `mode`; the target is set by [`TcpProxy::target`].
    pub async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            mode: watch::Sender::new(mode),
            target: Mutex::new(None),
            held: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Self {
            port,
            shared,
            accept,
        }
    }

    /// Forward to `host:port`.
    pub fn target(&self, address: &str) {
        *self.shared.target.lock().expect("target lock") = Some(address.to_owned());
    }

    /// Change what the proxy does.
    pub fn set(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    /// Chunks received and held while paused, not forwarded yet.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.set(Mode::Closed);
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        if *shared.mode.borrow() == Mode::Closed {
            drop(client);
            continue;
        }
        let target = shared.target.lock().expect("target lock").clone();
        let Some(target) = target else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(upstream) = TcpStream::connect(&target).await else {
                return;
            };
            let (cr, cw) = client.into_split();
            let (ur, uw) = upstream.into_split();
            tokio::select! {
                _ = pipe(cr, uw, shared.clone()) => {}
                _ = pipe(ur, cw, shared.clone()) => {}
            }
        });
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
) {
    let mut mode = shared.mode.subscribe();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = mode.wait_for(|m| *m == Mode::Closed) => return,
        };
        if *mode.borrow() == Mode::Paused {
            shared.held.fetch_add(1, Ordering::SeqCst);
            let outcome = mode.wait_for(|m| *m != Mode::Paused).await.map(|m| *m);
            shared.held.fetch_sub(1, Ordering::SeqCst);
            if !matches!(outcome, Ok(Mode::Open)) {
                return;
            }
        }
        if *mode.borrow() == Mode::Closed || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
