//! The server's life: waiting for the database, ready, stopping, stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// Shared between the server, the readiness probe and whoever stops the server.
#[derive(Debug)]
pub struct Lifecycle {
    stopping: AtomicBool,
    // Some(graceful) once a stop was asked for.
    stop: watch::Sender<Option<bool>>,
    stopped: watch::Sender<bool>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            stopping: AtomicBool::new(false),
            stop: watch::Sender::new(None),
            stopped: watch::Sender::new(false),
        }
    }
}

impl Lifecycle {
    /// Whether a stop was asked for: readiness answers 503 from then on.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Ask the server to stop; readiness turns 503 at once.
    pub fn request_stop(&self, graceful: bool) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.send_if_modified(|asked| {
            if asked.is_none() {
                *asked = Some(graceful);
                true
            } else {
                false
            }
        });
    }

    /// Wait for a stop request; returns whether it is graceful.
    pub async fn stop_requested(&self) -> bool {
        let mut rx = self.stop.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(asked) => asked.unwrap_or(true),
            // Unreachable: `self` holds the sender.
            Err(_) => true,
        }
    }

    /// A receiver that turns `Some` when a stop is asked for (for background workers).
    pub fn stop_signal(&self) -> watch::Receiver<Option<bool>> {
        self.stop.subscribe()
    }

    /// Mark the server as fully stopped.
    pub fn mark_stopped(&self) {
        self.stopped.send_replace(true);
    }
}

/// Stops a running [`crate::startup::Application`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppHandle {
    pub(crate) lifecycle: Arc<Lifecycle>,
}

impl AppHandle {
    /// Stop the server and wait until it has stopped. Graceful: readiness turns 503, then
    /// after `lifecycle.shutdown_delay_secs` the listener closes, in-flight requests and
    /// background jobs finish (up to `lifecycle.drain_timeout_secs`).
    pub async fn stop(&self, graceful: bool) {
        self.lifecycle.request_stop(graceful);
        let mut rx = self.lifecycle.stopped.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    /// Whether a stop was asked for.
    pub fn is_stopping(&self) -> bool {
        self.lifecycle.is_stopping()
    }
}

/// Resolve on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received: shutting down"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received: shutting down");
    }
}
