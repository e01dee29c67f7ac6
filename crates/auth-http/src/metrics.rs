//! Prometheus metrics: HTTP requests by route pattern and status, sign-ins, refreshes,
//! security events, password hashing, the connection pool and the outbox backlog.
//!
//! Counters are updated as things happen; the pool, hashing and outbox figures are read
//! at scrape time (the outbox backlog is a query, cached for a few seconds).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use async_trait::async_trait;
use auth_core::events::{EventKind, EventSink, LogEventSink, SecurityEvent};
use auth_core::password::Argon2Hasher;
use auth_core::ports::OutboxStore;
use auth_db::Database;
use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};

use crate::settings::IpNet;

/// How long an outbox backlog count is reused.
const BACKLOG_CACHE: Duration = Duration::from_secs(5);
/// How long a scrape waits for the backlog query before reporting the last known value.
const BACKLOG_QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// The metrics registry and its instruments.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    logins: IntCounterVec,
    refreshes: IntCounterVec,
    reuse: IntCounter,
    events: IntCounterVec,
    sources: Mutex<Sources>,
    backlog: tokio::sync::Mutex<Option<(Instant, u64)>>,
}

/// What is read at scrape time; filled in once the database answered.
#[derive(Default)]
struct Sources {
    database: Option<Arc<Database>>,
    hasher: Option<Arc<Argon2Hasher>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every instrument registered.
    #[allow(clippy::expect_used)] // static metric definitions: a failure is a programming error
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = counter_vec(
            &registry,
            "http_requests_total",
            "HTTP requests by method, route pattern and status",
            &["method", "route", "status"],
        );
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by method and route pattern",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "route"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(latency.clone()))
            .expect("metric registered once");
        let logins = counter_vec(
            &registry,
            "auth_logins_total",
            "Password sign-ins by outcome (success, failure, locked)",
            &["outcome"],
        );
        let refreshes = counter_vec(
            &registry,
            "auth_refreshes_total",
            "Refresh token exchanges by outcome (success, rejected, error)",
            &["outcome"],
        );
        let reuse = IntCounter::new(
            "auth_refresh_reuse_detected_total",
            "Refresh tokens presented again after rotation (the session was revoked)",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(reuse.clone()))
            .expect("metric registered once");
        let events = counter_vec(
            &registry,
            "auth_security_events_total",
            "Security events by kind",
            &["kind"],
        );
        Self {
            registry,
            requests,
            latency,
            logins,
            refreshes,
            reuse,
            events,
            sources: Mutex::default(),
            backlog: tokio::sync::Mutex::new(None),
        }
    }

    /// Start reading the pool, the outbox and the hasher at scrape time.
    pub fn attach(&self, database: Arc<Database>, hasher: Arc<Argon2Hasher>) {
        let mut s = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        s.database = Some(database);
        s.hasher = Some(hasher);
    }

    /// Count one HTTP request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let status_text = status.to_string();
        self.requests
            .with_label_values(&[method, route, &status_text])
            .inc();
        self.latency
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
        if route == "/api/v1/auth/refresh" {
            let outcome = match status {
                200..=299 => "success",
                400..=499 => "rejected",
                _ => "error",
            };
            self.refreshes.with_label_values(&[outcome]).inc();
        }
    }

    fn observe_event(&self, kind: EventKind) {
        let name = serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".into());
        self.events.with_label_values(&[&name]).inc();
        match kind {
            EventKind::LoginSucceeded => self.logins.with_label_values(&["success"]).inc(),
            EventKind::LoginFailed => self.logins.with_label_values(&["failure"]).inc(),
            EventKind::AccountLocked => self.logins.with_label_values(&["locked"]).inc(),
            EventKind::RefreshTokenReuseDetected => self.reuse.inc(),
            _ => {}
        }
    }

    async fn outbox_backlog(&self, database: &Database) -> Option<u64> {
        let mut cached = self.backlog.lock().await;
        if let Some((at, n)) = *cached
            && at.elapsed() < BACKLOG_CACHE
        {
            return Some(n);
        }
        match tokio::time::timeout(BACKLOG_QUERY_TIMEOUT, database.backlog()).await {
            Ok(Ok(n)) => {
                *cached = Some((Instant::now(), n));
                Some(n)
            }
            // The database is slow or gone: report the last known value, if any.
            _ => cached.map(|(_, n)| n),
        }
    }

    /// The Prometheus text exposition of everything.
    pub async fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        let mut text = String::from_utf8(out).unwrap_or_default();
        let (database, hasher) = {
            let s = self.sources.lock().unwrap_or_else(|e| e.into_inner());
            (s.database.clone(), s.hasher.clone())
        };
        let mut gauge = |name: &str, kind: &str, help: &str, value: String| {
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        if let Some(h) = hasher {
            let s = h.stats();
            let secs = |nanos: u64| format!("{}", nanos as f64 / 1e9);
            gauge(
                "auth_password_hash_queue_depth",
                "gauge",
                "Hash or verify requests waiting for a hashing thread",
                s.queue_depth.to_string(),
            );
            gauge(
                "auth_password_hash_total",
                "counter",
                "Password hashes and verifications completed",
                s.completed.to_string(),
            );
            gauge(
                "auth_password_hash_refused_total",
                "counter",
                "Password hashing requests refused because the queue was full",
                s.refused.to_string(),
            );
            gauge(
                "auth_password_hash_abandoned_total",
                "counter",
                "Queued password hashing requests dropped because the client went away",
                s.abandoned.to_string(),
            );
            gauge(
                "auth_password_hash_seconds_total",
                "counter",
                "Time spent hashing passwords",
                secs(s.busy_nanos),
            );
            gauge(
                "auth_password_hash_wait_seconds_total",
                "counter",
                "Time password hashing requests waited in the queue",
                secs(s.waited_nanos),
            );
        }
        if let Some(db) = database {
            let p = db.pool_status();
            gauge(
                "db_pool_max_connections",
                "gauge",
                "Upper bound of the connection pool",
                p.max_size.to_string(),
            );
            gauge(
                "db_pool_connections",
                "gauge",
                "Open connections (busy or idle)",
                p.size.to_string(),
            );
            gauge(
                "db_pool_idle_connections",
                "gauge",
                "Idle connections",
                p.available.to_string(),
            );
            gauge(
                "db_pool_waiting",
                "gauge",
                "Callers waiting for a connection",
                p.waiting.to_string(),
            );
            if let Some(n) = self.outbox_backlog(&db).await {
                gauge(
                    "auth_outbox_backlog",
                    "gauge",
                    "Outbox entries not yet delivered",
                    n.to_string(),
                );
            }
        }
        text
    }
}

/// The server's observer of committed security events: counts them, then logs them (the
/// stores already wrote their audit rows and webhook deliveries with the change).
pub struct MetricsEventSink {
    /// Where they are counted.
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl EventSink for MetricsEventSink {
    async fn record(&self, event: SecurityEvent) {
        self.metrics.observe_event(event.kind);
        LogEventSink.record(event).await;
    }
}

/// Who may read `/metrics` on the main port.
#[derive(Debug, Clone, Default)]
pub struct MetricsAccess {
    /// Peer addresses allowed; empty allows all.
    pub allow_from: Vec<IpNet>,
    /// Required bearer token, when set.
    pub bearer_token: Option<String>,
}

impl MetricsAccess {
    /// `allow_from` judges the client, not the socket: behind a trusted proxy the address it
    /// forwarded for ([`crate::extract::client_ip`]). A request that carries forwarding
    /// headers from a peer that is not a trusted proxy came through a proxy nobody declared,
    /// so its peer address says nothing about the client: `allow_from` refuses it. (To scrape
    /// through a proxy, list it in `server.trusted_proxies`, or use `metrics.port`.)
    fn allows(&self, req: &HttpRequest) -> bool {
        let peer_ok = self.allow_from.is_empty() || {
            let proxies = req
                .app_data::<web::Data<crate::state::AppState>>()
                .map(|s| s.trusted_proxies.as_slice())
                .unwrap_or_default();
            let peer = req.peer_addr().map(|a| a.ip());
            let from_trusted_proxy = peer.is_some_and(|ip| proxies.iter().any(|p| p.contains(ip)));
            let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"]
                .iter()
                .any(|h| req.headers().contains_key(*h));
            (from_trusted_proxy || !forwarded)
                && crate::extract::client_ip(peer, req.headers(), proxies)
                    .is_some_and(|ip| self.allow_from.iter().any(|n| n.contains(ip)))
        };
        let token_ok = self.bearer_token.as_deref().is_none_or(|expected| {
            crate::extract::bearer_token(req).is_some_and(|given| {
                crate::cookies::constant_time_eq(given.as_bytes(), expected.as_bytes())
            })
        });
        peer_ok && token_ok
    }
}

/// `GET /metrics`
#[utoipa::path(
    get, path = "/metrics", tag = "health",
    summary = "Prometheus metrics",
    description = "Prometheus text exposition: requests by route and status, sign-ins, refreshes, \
hashing queue, database pool, outbox backlog. Only for callers `metrics.allow_from` and \
`metrics.bearer_token` admit (404 otherwise); absent when `metrics.port` moves it to its own port.",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"),
        (status = 404, description = "`not_found`: the caller is not admitted", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn scrape(
    req: HttpRequest,
    metrics: web::Data<Metrics>,
    access: web::Data<MetricsAccess>,
) -> HttpResponse {
    if !access.allows(&req) {
        // Same answer as an unknown route: the endpoint is not advertised to strangers.
        return actix_web::ResponseError::error_response(&crate::problem::ApiError::not_found());
    }
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        ))
        .body(metrics.render().await)
}
