//! The composition root: wires adapters into the core and builds the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::dev::{Server, Service as _, ServiceResponse};
use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use actix_web::middleware::{Condition, ErrorHandlerResponse, ErrorHandlers};
use actix_web::{App, HttpMessage as _, HttpServer, ResponseError as _, web};
use auth_core::AuthCore;
use auth_core::clock::{Clock as _, SystemClock};
use auth_core::flows::EmailSettings;
use auth_core::guard::{
    BreachedPasswords, CaptchaSettings, CaptchaVerifier, GroupLimits, GuardSettings, Limit,
    LimitGroup, LockoutSettings, RateLimitStore,
};
use auth_core::jwt::JwtIssuer;
use auth_core::mail::{MailRenderer, Mailer};
use auth_core::memory::MemoryStore;
use auth_core::operators::OperatorSettings;
use auth_core::password::Argon2Hasher;
use auth_core::random::OsRandom;
use auth_core::secret_box::SecretBox;
use auth_core::service::{IntrospectionClient, SessionPolicy};
use auth_core::webhooks::WebhookSettings;
use auth_core::{AuthSettings, Ports};
use auth_db::{Backend, Database, DatabaseOptions, DbError, RedisRateLimits};
use auth_notify::{
    FileMailer, HibpRangeClient, HttpWebhookSender, SiteverifyCaptcha, SmtpMailer, SmtpSettings,
    SmtpTls, TemplateRenderer,
};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::cookies::CookieMode;
use crate::keys::{GeneratedKeyHome, LoadedKeys, load_key_set, sealing_keys};
use crate::lifecycle::{AppHandle, Lifecycle};
use crate::metrics::{Metrics, MetricsAccess, MetricsEventSink};
use crate::problem::ApiError;
use crate::routes;
use crate::settings::{
    GroupLimitSetting, IpNet, MailTransport, RateLimitBackend, Settings, SmtpTlsSetting,
};
use crate::state::AppState;

/// A start-up failure, with a message fit for an operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

fn secs(n: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Open the configured database (migrating it when configured to).
pub async fn open_database(settings: &Settings) -> Result<Database, StartupError> {
    let database = connect_database(settings)?;
    if settings.database.migrate_on_start {
        database
            .migrate()
            .await
            .map_err(|e| StartupError(format!("database migration: {}", error_chain(&e))))?;
    }
    Ok(database)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Why the database-dependent part of start-up failed.
enum PrepareError {
    /// The database did not answer: wait and try again.
    Unreachable(String),
    /// Anything else: give up.
    Fatal(StartupError),
}

impl From<StartupError> for PrepareError {
    fn from(e: StartupError) -> Self {
        Self::Fatal(e)
    }
}

/// The core service and its token issuer (whose keys a reload may replace).
struct Prepared {
    auth: Arc<AuthCore>,
    issuer: Arc<JwtIssuer>,
    social: Arc<auth_core::social::SocialService>,
}

/// What start-up builds before the database answers.
struct Adapters {
    renderer: Arc<dyn MailRenderer>,
    mailer: Arc<dyn Mailer>,
    captcha: Option<Arc<dyn CaptchaVerifier>>,
    breached: Option<Arc<dyn BreachedPasswords>>,
    rate_limits: Arc<dyn RateLimitStore>,
    hasher: Arc<Argon2Hasher>,
}

/// The running server.
pub struct Application {
    port: u16,
    listener: TcpListener,
    settings: Arc<Settings>,
    database: Arc<Database>,
    adapters: Adapters,
    auth: Option<Prepared>,
    lifecycle: Arc<Lifecycle>,
    metrics: Arc<Metrics>,
    metrics_server: Option<Server>,
}

impl Application {
    /// Build the adapters, bind the listener(s) and try the database once (migrating it
    /// when configured to). A database that does not answer is not an error: the server
    /// then starts serving liveness (200) and readiness (503) and keeps trying, with
    /// backoff, when [`Application::run_until_stopped`] is awaited.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let settings = Arc::new(settings);
        let database = Arc::new(connect_database(&settings)?);
        let adapters = adapters(&settings, &database).await?;

        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).map_err(|e| {
            StartupError(format!(
                "server.host/server.port: cannot listen on {address}: {e}"
            ))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| StartupError(e.to_string()))?
            .port();
        let metrics = Arc::new(Metrics::new());
        let metrics_server = metrics_server(&settings, &metrics)?;
        let auth = match prepare(&settings, &database, &adapters, &metrics).await {
            Ok(auth) => Some(auth),
            Err(PrepareError::Unreachable(reason)) => {
                tracing::warn!(error = %reason, "the database is unreachable at start: serving /health/live, answering 503 elsewhere, and retrying");
                None
            }
            Err(PrepareError::Fatal(e)) => return Err(e),
        };
        tracing::info!(address = %format!("{}:{port}", settings.server.host), "listening");
        Ok(Self {
            port,
            listener,
            settings,
            database,
            adapters,
            auth,
            lifecycle: Arc::default(),
            metrics,
            metrics_server,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that can stop the server.
    pub fn handle(&self) -> AppHandle {
        AppHandle {
            lifecycle: self.lifecycle.clone(),
        }
    }

    /// Serve until stopped through a [`AppHandle`] (see [`crate::lifecycle`] for the
    /// sequence: readiness 503, delay, drain requests, drain background workers).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let lifecycle = self.lifecycle.clone();
        let result = self.serve().await;
        lifecycle.mark_stopped();
        result
    }

    async fn serve(self) -> std::io::Result<()> {
        let Self {
            listener,
            settings,
            database,
            adapters,
            auth,
            lifecycle,
            metrics,
            metrics_server,
            ..
        } = self;
        let metrics_task = metrics_server.map(|server| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let auth = match auth {
            Some(auth) => Some(auth),
            None => {
                let warmup = warmup_server(listener.try_clone()?, &settings, &metrics)?;
                let warmup_handle = warmup.handle();
                let warmup_task = tokio::spawn(warmup);
                let outcome = tokio::select! {
                    auth = wait_for_database(&settings, &database, &adapters, &metrics) => Some(auth),
                    _ = lifecycle.stop_requested() => None,
                };
                warmup_handle.stop(true).await;
                let _ = warmup_task.await;
                match outcome {
                    Some(Ok(auth)) => Some(auth),
                    Some(Err(e)) => {
                        stop_metrics(metrics_task).await;
                        return Err(std::io::Error::other(e.0));
                    }
                    None => None,
                }
            }
        };
        let Some(Prepared {
            auth,
            issuer,
            social,
        }) = auth
        else {
            stop_metrics(metrics_task).await;
            return Ok(());
        };

        let t = &settings.tokens;
        let days = |n: u64| chrono::Duration::days(i64::try_from(n).unwrap_or(36_500).min(36_500));
        let housekeeping = tokio::spawn(housekeeping(
            auth.clone(),
            database.clone(),
            Duration::from_secs(settings.server.housekeeping_interval_secs),
            days(t.session_retention_days),
            days(settings.outbox.retention_days),
            lifecycle.stop_signal(),
        ));
        let outbox_worker = tokio::spawn(outbox_worker(
            auth.clone(),
            Duration::from_millis(settings.outbox.poll_interval_ms),
            settings.outbox.batch_size,
            lifecycle.stop_signal(),
        ));
        let oauth_purge = {
            let (social, mut stop) = (social.clone(), lifecycle.stop_signal());
            let every = Duration::from_secs(settings.server.housekeeping_interval_secs);
            tokio::spawn(async move {
                tokio::select! {
                    () = crate::providers::purge_expired_oauth_records(social, every) => {}
                    _ = stop.wait_for(Option::is_some) => {}
                }
            })
        };
        let key_reload = tokio::spawn(reload_keys(
            settings.clone(),
            database.clone(),
            issuer,
            lifecycle.stop_signal(),
        ));
        let server = http_server(
            listener, &settings, auth, social, database, &lifecycle, &metrics,
        )?;
        let server_handle = server.handle();
        let mut server_task = tokio::spawn(server);
        let graceful = tokio::select! {
            graceful = lifecycle.stop_requested() => graceful,
            ended = &mut server_task => {
                // The server ended by itself (it does not listen to signals): unexpected.
                stop_metrics(metrics_task).await;
                return ended.unwrap_or_else(|e| Err(std::io::Error::other(e)));
            }
        };
        let l = &settings.lifecycle;
        if graceful && l.shutdown_delay_secs > 0 {
            tracing::info!(
                delay_secs = l.shutdown_delay_secs,
                "shutting down: readiness answers 503; the listener closes after the delay"
            );
            tokio::time::sleep(Duration::from_secs(l.shutdown_delay_secs)).await;
        }
        server_handle.stop(graceful).await;
        let served = server_task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        // The workers saw the stop signal: each finishes the job in hand, then returns.
        let drain = Duration::from_secs(l.drain_timeout_secs);
        for (name, mut task) in [
            ("housekeeping", housekeeping),
            ("outbox worker", outbox_worker),
            ("key reload", key_reload),
            ("sign-in state purge", oauth_purge),
        ] {
            if !graceful {
                task.abort();
            }
            if tokio::time::timeout(drain, &mut task).await.is_err() {
                tracing::warn!(worker = name, "did not finish in time; abandoned");
                task.abort();
            }
        }
        stop_metrics(metrics_task).await;
        tracing::info!("stopped");
        served
    }
}

type MetricsTask = Option<(
    actix_web::dev::ServerHandle,
    tokio::task::JoinHandle<std::io::Result<()>>,
)>;

async fn stop_metrics(task: MetricsTask) {
    if let Some((handle, task)) = task {
        handle.stop(true).await;
        let _ = task.await;
    }
}

/// The pool for `database.url` (no connection opened yet).
fn connect_database(settings: &Settings) -> Result<Database, StartupError> {
    let db = &settings.database;
    let options = DatabaseOptions {
        max_connections: (db.max_connections > 0).then_some(db.max_connections),
        connect_timeout: Duration::from_secs(db.connect_timeout_secs),
        acquire_timeout: Duration::from_secs(db.acquire_timeout_secs),
    };
    Database::connect(&db.url, &options)
        .map(|database| {
            database.with_query_timeout(
                (db.query_timeout_secs > 0).then(|| Duration::from_secs(db.query_timeout_secs)),
            )
        })
        .map_err(|e| StartupError(format!("database.url: {e}")))
}

/// Everything that needs the database: migrations, signing keys, the core service.
async fn prepare(
    settings: &Arc<Settings>,
    database: &Arc<Database>,
    adapters: &Adapters,
    metrics: &Arc<Metrics>,
) -> Result<Prepared, PrepareError> {
    if settings.database.migrate_on_start {
        match database.migrate().await {
            Ok(()) => {}
            Err(DbError::Connect(e @ auth_core::AuthError::Unavailable(_))) => {
                return Err(PrepareError::Unreachable(e.to_string()));
            }
            Err(e) => {
                return Err(PrepareError::Fatal(StartupError(format!(
                    "database migration: {}",
                    error_chain(&e)
                ))));
            }
        }
    } else if let Err(e) = auth_core::ports::HealthCheck::ping(database.as_ref()).await {
        return Err(PrepareError::Unreachable(e.to_string()));
    }
    // In production a database dump must not be enough to forge tokens or unseal secrets:
    // on PostgreSQL the generated private keys live in the database, sealed only with a
    // configured encryption key.
    if settings.environment.as_deref() == Some("production")
        && database.backend() == Backend::Postgres
        && settings.secrets.encryption_key.is_empty()
    {
        return Err(PrepareError::Fatal(StartupError(
            "AUTH_ENV=production on PostgreSQL requires secrets.encryption_key (AUTH__SECRETS__ENCRYPTION_KEY, 32 bytes in base64, e.g. `openssl rand -base64 32`): without it the signing keys and sealed secrets in the database are readable by anyone holding a dump".into(),
        )));
    }
    let home = match database.backend() {
        Backend::Sqlite => GeneratedKeyHome::DataDir,
        Backend::Postgres => GeneratedKeyHome::Database(database.as_ref()),
    };
    let LoadedKeys {
        keys,
        derived_sealing_key,
    } = load_key_set(settings, home)
        .await
        .map_err(|e| PrepareError::Fatal(StartupError(e)))?;
    tracing::info!(algorithm = %settings.tokens.algorithm, kid = keys.signing_kid(), "signing key loaded");
    let fatal = |e: String| PrepareError::Fatal(StartupError(e));
    let sealer = SecretBox::new(&sealing_keys(settings, derived_sealing_key).map_err(fatal)?)
        .map_err(|e| fatal(e.into()))?;
    if settings.secrets.encryption_key.is_empty() && database.backend() == Backend::Postgres {
        tracing::warn!(
            "secrets.encryption_key is not set: the generated signing keys are stored in clear in the database and pending mail and TOTP secrets are sealed with a key derived from them; AUTH_ENV=production refuses this"
        );
    }
    let tokens = Arc::new(JwtIssuer::new(
        keys,
        settings.server.public_url.clone(),
        settings.tokens.audience.clone(),
        i64::try_from(settings.tokens.leeway_secs).unwrap_or(0),
    ));
    let t = &settings.tokens;
    let auth_settings = AuthSettings {
        sessions: SessionPolicy {
            access_ttl: secs(t.access_ttl_secs),
            absolute_ttl: secs(t.refresh_absolute_ttl_secs),
            idle_ttl: secs(t.refresh_idle_ttl_secs),
            reuse_grace: secs(t.refresh_reuse_grace_secs),
        },
        password_policy: settings.password_policy.clone(),
        introspection_clients: settings
            .introspection
            .all_clients()
            .into_iter()
            .map(|c| IntrospectionClient {
                id: c.id,
                secret: c.secret,
            })
            .collect(),
        default_roles: settings.auth.default_roles.clone(),
        email: email_settings(settings),
        guard: guard_settings(settings),
        mfa: mfa_settings(settings),
        webhooks: webhook_settings(settings),
        operators: OperatorSettings {
            audit_retention: chrono::Duration::days(
                i64::try_from(settings.audit.retention_days).unwrap_or(36_500),
            ),
        },
    };
    let ports = Ports {
        users: database.clone(),
        sessions: database.clone(),
        hasher: adapters.hasher.clone(),
        tokens: tokens.clone(),
        clock: Arc::new(SystemClock),
        rng: Arc::new(OsRandom),
        one_time: database.clone(),
        outbox: database.clone(),
        sealer: Arc::new(sealer),
        renderer: adapters.renderer.clone(),
        mailer: adapters.mailer.clone(),
        events: Arc::new(MetricsEventSink {
            metrics: metrics.clone(),
        }),
        rate_limits: adapters.rate_limits.clone(),
        lockouts: database.clone(),
        captcha: adapters.captcha.clone(),
        breached: adapters.breached.clone(),
        operators: database.clone(),
        audit: database.clone(),
        webhooks: database.clone(),
        webhook_sender: Arc::new(HttpWebhookSender::new(
            settings.webhooks.allow_private_addresses,
            Duration::from_secs(settings.webhooks.timeout_secs),
        )),
        mfa: database.clone(),
        passkeys: database.clone(),
        passkey_ceremonies: passkey_ceremonies(settings).map_err(StartupError)?,
        sms: sms_sender(settings).map_err(StartupError)?,
    };
    metrics.attach(database.clone(), adapters.hasher.clone());
    let auth = Arc::new(AuthCore::new(ports, auth_settings));
    let social = Arc::new(
        crate::providers::social_service(settings, auth.clone(), database.clone())
            .map_err(|e| PrepareError::Fatal(StartupError(e)))?,
    );
    Ok(Prepared {
        auth,
        issuer: tokens,
        social,
    })
}

/// The adapters that need no database connection.
async fn adapters(settings: &Settings, database: &Arc<Database>) -> Result<Adapters, StartupError> {
    let (renderer, mailer) = mail_adapters(settings).map_err(StartupError)?;
    let (captcha, breached) = guard_adapters(settings).map_err(StartupError)?;
    let rate_limits: Arc<dyn RateLimitStore> =
        match (settings.rate_limits.backend, database.backend()) {
            (RateLimitBackend::Memory, _) | (RateLimitBackend::Auto, Backend::Sqlite) => {
                Arc::new(MemoryStore::new())
            }
            (RateLimitBackend::Database, _) | (RateLimitBackend::Auto, Backend::Postgres) => {
                database.clone()
            }
            (RateLimitBackend::Redis, _) => {
                let ttl = longest_window_secs(settings) + 60;
                Arc::new(
                    RedisRateLimits::connect(
                        &settings.rate_limits.redis_url,
                        &settings.rate_limits.redis_key_prefix,
                        ttl,
                    )
                    .await
                    .map_err(StartupError)?,
                )
            }
        };
    let hasher = Arc::new(
        Argon2Hasher::new(&settings.password_hashing).map_err(|e| StartupError(e.into()))?,
    );
    Ok(Adapters {
        renderer,
        mailer,
        captcha,
        breached,
        rate_limits,
        hasher,
    })
}

/// Wire the adapters into the core service (everything but the HTTP server and the
/// background tasks): the server and the operator commands of the CLI share it. The
/// database must answer.
pub async fn build_service(
    settings: &Settings,
    database: &Arc<Database>,
) -> Result<Arc<AuthCore>, StartupError> {
    let adapters = adapters(settings, database).await?;
    let settings = Arc::new(settings.clone());
    match prepare(&settings, database, &adapters, &Arc::new(Metrics::new())).await {
        Ok(prepared) => Ok(prepared.auth),
        Err(PrepareError::Unreachable(e)) => Err(StartupError(format!("database: {e}"))),
        Err(PrepareError::Fatal(e)) => Err(e),
    }
}

/// Retry [`prepare`] with exponential backoff (1 s doubling up to
/// `lifecycle.db_retry_max_secs`) until the database answers or something fatal happens.
async fn wait_for_database(
    settings: &Arc<Settings>,
    database: &Arc<Database>,
    adapters: &Adapters,
    metrics: &Arc<Metrics>,
) -> Result<Prepared, StartupError> {
    let max = Duration::from_secs(settings.lifecycle.db_retry_max_secs);
    let mut delay = Duration::from_secs(1).min(max);
    loop {
        tokio::time::sleep(delay).await;
        match prepare(settings, database, adapters, metrics).await {
            Ok(auth) => {
                tracing::info!("the database answered: serving");
                return Ok(auth);
            }
            Err(PrepareError::Fatal(e)) => return Err(e),
            Err(PrepareError::Unreachable(reason)) => {
                delay = (delay * 2).min(max);
                tracing::warn!(error = %reason, retry_in_secs = delay.as_secs(), "the database is still unreachable");
            }
        }
    }
}

/// While the database does not answer: liveness 200, readiness 503, everything else 503
/// with `Retry-After`.
fn warmup_server(
    listener: TcpListener,
    settings: &Settings,
    metrics: &Arc<Metrics>,
) -> std::io::Result<Server> {
    let metrics = web::Data::from(metrics.clone());
    let access = web::Data::new(metrics_access(settings));
    let on_main_port = settings.metrics.enabled && settings.metrics.port == 0;
    Ok(HttpServer::new(move || {
        let app = App::new()
            .app_data(metrics.clone())
            .app_data(access.clone())
            .route("/health/live", web::get().to(routes::health::live));
        let app = if on_main_port {
            app.route("/metrics", web::get().to(crate::metrics::scrape))
        } else {
            app
        };
        app.default_service(web::to(|| async {
            Err::<actix_web::HttpResponse, _>(ApiError::from(auth_core::AuthError::Unavailable(
                "the database is not reachable yet".into(),
            )))
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .shutdown_timeout(5)
    .run())
}

fn metrics_access(settings: &Settings) -> MetricsAccess {
    let m = &settings.metrics;
    MetricsAccess {
        allow_from: m
            .allow_from
            .iter()
            .filter_map(|p| IpNet::parse(p).ok())
            .collect(),
        bearer_token: (!m.bearer_token.is_empty()).then(|| m.bearer_token.clone()),
    }
}

/// `/metrics` on its own port, when `metrics.port` is set.
fn metrics_server(
    settings: &Settings,
    metrics: &Arc<Metrics>,
) -> Result<Option<Server>, StartupError> {
    let m = &settings.metrics;
    if !m.enabled || m.port == 0 {
        return Ok(None);
    }
    let address = format!("{}:{}", m.host, m.port);
    let metrics = web::Data::from(metrics.clone());
    // The admin port is the access control: no address or token restriction there.
    let access = web::Data::new(MetricsAccess::default());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .app_data(access.clone())
            .route("/metrics", web::get().to(crate::metrics::scrape))
    })
    .workers(1)
    .disable_signals()
    .bind(&address)
    .map_err(|e| StartupError(format!("metrics.port: cannot listen on {address}: {e}")))?
    .shutdown_timeout(5)
    .run();
    tracing::info!(address = %address, "metrics listening");
    Ok(Some(server))
}

fn http_server(
    listener: TcpListener,
    settings: &Arc<Settings>,
    auth: Arc<AuthCore>,
    social: Arc<auth_core::social::SocialService>,
    database: Arc<Database>,
    lifecycle: &Arc<Lifecycle>,
    metrics: &Arc<Metrics>,
) -> std::io::Result<Server> {
    let trusted_proxies = settings
        .server
        .trusted_proxies
        .iter()
        .filter_map(|p| IpNet::parse(p).ok())
        .collect();
    let state = web::Data::new(AppState {
        trusted_proxies,
        auth,
        health: database,
        settings: settings.clone(),
        lifecycle: lifecycle.clone(),
        social,
    });
    let max_body = settings.server.max_body_bytes;
    let metrics = web::Data::from(metrics.clone());
    let access = web::Data::new(metrics_access(settings));
    let on_main_port = settings.metrics.enabled && settings.metrics.port == 0;
    let cookie_mode = CookieMode::new(settings);
    let cors = settings.cors.clone();
    // Compatibility profiles: their own views of the same core service and stores.
    let compat = Arc::new(
        crate::compat::Profiles::build(settings, &state.auth, &state.social)
            .map_err(std::io::Error::other)?,
    );
    let mut server = HttpServer::new(move || {
        let cookie_mode = cookie_mode.clone();
        let observed = metrics.clone();
        let app = App::new()
            .app_data(state.clone())
            .app_data(json_config(max_body))
            .app_data(web::PayloadConfig::new(max_body))
            .app_data(metrics.clone())
            .app_data(access.clone())
            .configure(|cfg| compat.configure(cfg))
            .configure(routes::docs::configure)
            .configure(routes::configure);
        let app = if on_main_port {
            app.route("/metrics", web::get().to(crate::metrics::scrape))
        } else {
            app
        };
        app.default_service(web::to(routes::docs::fallback))
        .wrap_fn(move |req, srv| crate::cookies::layer(&cookie_mode, req, srv))
        .wrap(ErrorHandlers::new().default_handler(as_problem))
        .wrap_fn(|req, srv| {
            let peer = req
                .conn_data::<crate::client_gone::PeerSocket>()
                .cloned();
            let fut = srv.call(req);
            async move {
                let Some(peer) = peer else { return fut.await };
                tokio::select! {
                    res = fut => res,
                    () = crate::client_gone::until_gone(peer) => {
                        tracing::info!("client went away; request dropped");
                        Err(actix_web::error::InternalError::new(
                            "client closed the connection",
                            StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                        )
                        .into())
                    }
                }
            }
        })
        .wrap_fn(move |req, srv| {
            let started = std::time::Instant::now();
            let method = req.method().to_string();
            let fut = srv.call(req);
            let metrics = observed.clone();
            async move {
                let res = fut.await;
                let (status, route) = match &res {
                    Ok(res) => (
                        res.status(),
                        res.request()
                            .match_pattern()
                            .unwrap_or_else(|| "unmatched".to_owned()),
                    ),
                    Err(e) => (e.as_response_error().status_code(), "unmatched".to_owned()),
                };
                metrics.observe_request(&method, &route, status.as_u16(), started.elapsed());
                if status.is_server_error() {
                    tracing::error!(status = status.as_u16(), route = %route, "request failed");
                } else if status.is_client_error() {
                    tracing::debug!(status = status.as_u16(), route = %route, "request refused");
                }
                res
            }
        })
        .wrap(cors_layer(&cors))
        .wrap_fn(|req, srv| {
            let request_id = req.extensions().get::<RequestId>().map(ToString::to_string);
            let fut = srv.call(req);
            async move {
                let mut res = fut.await?;
                if let Some(value) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
                    res.headers_mut()
                        .insert(HeaderName::from_static("x-request-id"), value);
                }
                Ok(res)
            }
        })
        .wrap(TracingLogger::<crate::telemetry::RequestSpan>::new())
    })
    .on_connect(crate::client_gone::on_connect)
    .disable_signals()
    .listen(listener)?
    .shutdown_timeout(settings.lifecycle.drain_timeout_secs);
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    Ok(server.run())
}

/// CORS for the configured origins (credentials allowed, for those only); a no-op when
/// `cors.allowed_origins` is empty.
fn cors_layer(cors: &crate::settings::CorsSettings) -> Condition<Cors> {
    let mut layer = Cors::default()
        .allowed_methods(["GET", "POST", "PATCH", "PUT", "DELETE"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::ACCEPT,
            HeaderName::from_static(crate::cookies::CSRF_HEADER),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            actix_web::http::header::RETRY_AFTER,
        ])
        .supports_credentials()
        .max_age(cors.max_age_secs);
    for origin in &cors.allowed_origins {
        layer = layer.allowed_origin(origin);
    }
    Condition::new(!cors.allowed_origins.is_empty(), layer)
}

/// Reload the signing keys every `keys.reload_interval_secs`: a key added by `keys rotate`
/// (on this node or another), a pending key becoming active, an expired one leaving, or
/// replaced PEM files take effect without a restart.
async fn reload_keys(
    settings: Arc<Settings>,
    database: Arc<Database>,
    issuer: Arc<JwtIssuer>,
    mut stop: tokio::sync::watch::Receiver<Option<bool>>,
) {
    let every = settings.keys.reload_interval_secs;
    if every == 0 {
        return;
    }
    // The signing kid and the published keys, in their (deterministic) load order.
    fn fingerprint(jwks: &impl serde::Serialize, kid: &str) -> String {
        format!("{kid}|{}", serde_json::to_string(jwks).unwrap_or_default())
    }
    let mut current = fingerprint(
        &auth_core::jwt::TokenIssuer::jwks(issuer.as_ref()),
        &issuer.signing_kid(),
    );
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(Option::is_some) => return,
        }
        let home = match database.backend() {
            Backend::Sqlite => GeneratedKeyHome::DataDir,
            Backend::Postgres => GeneratedKeyHome::Database(database.as_ref()),
        };
        match load_key_set(&settings, home).await {
            Ok(LoadedKeys { keys, .. }) => {
                let next = fingerprint(keys.jwks(), keys.signing_kid());
                if next != current {
                    tracing::info!(kid = keys.signing_kid(), "signing keys reloaded");
                    issuer.replace_keys(keys);
                    current = next;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "signing key reload failed; keeping the current keys")
            }
        }
    }
}

async fn housekeeping(
    auth: Arc<AuthCore>,
    database: Arc<Database>,
    every: Duration,
    session_retention: chrono::Duration,
    outbox_retention: chrono::Duration,
    mut stop: tokio::sync::watch::Receiver<Option<bool>>,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(Option::is_some) => return,
        }
        match auth
            .sessions()
            .purge_ended_sessions(session_retention)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "purged ended sessions"),
            Err(e) => tracing::warn!(error = %e, "session purge failed"),
        }
        match auth.operators().prune_audit_log().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "pruned audit rows past retention"),
            Err(e) => tracing::warn!(error = %e, "audit prune failed"),
        }
        match database
            .purge_outbox_finished_before(SystemClock.now() - outbox_retention)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "purged finished outbox entries"),
            Err(e) => tracing::warn!(error = %e, "outbox purge failed"),
        }
        match auth
            .mfa()
            .purge_mfa_challenges(chrono::Duration::hours(1))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "purged expired MFA challenges"),
            Err(e) => tracing::warn!(error = %e, "MFA challenge purge failed"),
        }
        match auth
            .passkeys()
            .purge_passkey_ceremonies(chrono::Duration::hours(1))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "purged expired passkey ceremonies"),
            Err(e) => tracing::warn!(error = %e, "passkey ceremony purge failed"),
        }
    }
}

fn sms_sender(settings: &Settings) -> Result<Option<Arc<dyn auth_core::sms::SmsSender>>, String> {
    let s = &settings.sms;
    Ok(match s.transport.as_str() {
        "file" => Some(Arc::new(auth_notify::FileSms::new(
            settings.data_dir.join("sms"),
        )?)),
        "twilio" => {
            let token = s
                .twilio
                .auth_token
                .clone()
                .ok_or("sms.twilio.auth_token is required")?;
            // AUTH__SMS__FROM=+15005550006 reaches us as the number 15005550006 (the
            // environment source parses numbers): a long all-digit sender is an E.164
            // number that lost its `+` (short codes have 5 or 6 digits).
            let from = if s.from.len() >= 8 && s.from.bytes().all(|b| b.is_ascii_digit()) {
                format!("+{}", s.from)
            } else {
                s.from.clone()
            };
            Some(Arc::new(auth_notify::TwilioSms::new(
                &s.twilio.base_url,
                s.twilio.account_sid.clone(),
                token,
                from,
                Duration::from_secs(s.twilio.timeout_secs),
            )?))
        }
        _ => None,
    })
}

fn passkey_ceremonies(
    settings: &Settings,
) -> Result<Option<Arc<dyn auth_core::passkeys::PasskeyCeremonies>>, String> {
    let p = &settings.passkeys;
    if !p.enabled {
        return Ok(None);
    }
    let origins = if p.origins.is_empty() {
        let app_url = settings.app.effective_url(&settings.server);
        vec![
            auth_core::flows::origin_of(app_url)
                .ok_or("passkeys.origins: app.url has no http(s) origin")?,
        ]
    } else {
        p.origins.clone()
    };
    let rp = auth_passkeys::RelyingParty {
        id: p.rp_id.clone(),
        name: if p.rp_name.is_empty() {
            settings.app.name.clone()
        } else {
            p.rp_name.clone()
        },
        origins,
    };
    Ok(Some(Arc::new(auth_passkeys::WebauthnCeremonies::new(&rp)?)))
}

fn mfa_settings(settings: &Settings) -> auth_core::mfa::MfaSettings {
    let m = &settings.mfa;
    auth_core::mfa::MfaSettings {
        issuer: if m.issuer.is_empty() {
            settings.app.name.clone()
        } else {
            m.issuer.clone()
        },
        challenge_ttl: secs(m.challenge_ttl_secs),
        max_attempts: i32::try_from(m.max_attempts).unwrap_or(5),
        sms_passwordless: settings.sms.passwordless,
        totp_skew_steps: i64::from(m.totp_skew_steps),
        enrollment_ttl: secs(m.enrollment_ttl_secs),
        sms_code_ttl: secs(settings.sms.code_ttl_secs),
    }
}

/// Carry out due outbox entries: at once while there is a backlog, else every `every`.
/// On stop, the batch in hand is finished, then the worker returns.
async fn outbox_worker(
    auth: Arc<AuthCore>,
    every: Duration,
    batch: usize,
    mut stop: tokio::sync::watch::Receiver<Option<bool>>,
) {
    loop {
        if stop.borrow().is_some() {
            return;
        }
        match auth.worker().process_outbox(batch).await {
            Ok(n) if n >= batch => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "outbox worker: the store is unavailable; retrying")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(Option::is_some) => return,
        }
    }
}

fn webhook_settings(settings: &Settings) -> WebhookSettings {
    let w = &settings.webhooks;
    let ms = |n: u64| chrono::Duration::milliseconds(i64::try_from(n).unwrap_or(i64::MAX / 2));
    WebhookSettings {
        allow_http: w.allow_http,
        allowed_hosts: w.allowed_hosts.clone(),
        allow_private_addresses: w.allow_private_addresses,
        max_attempts: i32::try_from(w.max_attempts).unwrap_or(7),
        retry_initial: ms(w.retry_initial_ms),
        disable_after: secs(w.disable_after_secs),
        secret_overlap: secs(w.secret_overlap_secs),
    }
}

fn email_settings(settings: &Settings) -> EmailSettings {
    let (a, app, o) = (&settings.auth, &settings.app, &settings.outbox);
    EmailSettings {
        confirmation: a.email_confirmation,
        passwordless_signup: a.passwordless_signup,
        verification_ttl: secs(a.verification_ttl_secs),
        reset_ttl: secs(a.reset_ttl_secs),
        magic_link_ttl: secs(a.magic_link_ttl_secs),
        otp_ttl: secs(a.email_otp_ttl_secs),
        otp_max_attempts: i32::try_from(a.email_otp_max_attempts).unwrap_or(i32::MAX),
        app_url: app.effective_url(&settings.server).to_owned(),
        app_name: app.name.clone(),
        verify_path: app.verify_path.clone(),
        reset_path: app.reset_path.clone(),
        magic_link_path: app.magic_link_path.clone(),
        token_placement: app.token_placement,
        redirect_allow_list: app.redirect_allow_list.clone(),
        retry_base_delay: chrono::Duration::milliseconds(
            i64::try_from(o.retry_base_delay_ms).unwrap_or(i64::MAX),
        ),
        retry_max_delay: secs(o.retry_max_delay_secs),
        give_up_after: chrono::Duration::hours(i64::try_from(o.give_up_after_hours).unwrap_or(24)),
        lease: chrono::Duration::minutes(2),
    }
}

fn longest_window_secs(settings: &Settings) -> u64 {
    let r = &settings.rate_limits;
    [
        r.login,
        r.signup,
        r.refresh,
        r.password_reset,
        r.passwordless,
        r.mfa_verify,
        r.introspection,
    ]
    .iter()
    .map(|g| g.window_secs)
    .max()
    .unwrap_or(3600)
}

fn guard_settings(settings: &Settings) -> GuardSettings {
    let r = &settings.rate_limits;
    let group = |g: GroupLimitSetting| {
        let window = secs(g.window_secs);
        let limit = |max: u32| (max > 0).then_some(Limit { max, window });
        GroupLimits {
            per_ip: limit(g.per_ip),
            per_identifier: limit(g.per_identifier),
        }
    };
    let limits = [
        (LimitGroup::Login, group(r.login)),
        (LimitGroup::Signup, group(r.signup)),
        (LimitGroup::Refresh, group(r.refresh)),
        (LimitGroup::PasswordReset, group(r.password_reset)),
        (LimitGroup::Passwordless, group(r.passwordless)),
        (LimitGroup::MfaVerify, group(r.mfa_verify)),
        (LimitGroup::Introspection, group(r.introspection)),
    ]
    .into_iter()
    .collect();
    let l = &settings.lockout;
    let c = &settings.captcha;
    GuardSettings {
        rate_limits_enabled: r.enabled,
        limits,
        lockout: LockoutSettings {
            enabled: l.enabled,
            scope: "api",
            threshold: l.threshold,
            window: secs(l.window_secs),
            freeze: secs(l.freeze_secs),
            code_failures_per_day: l.code_failures_per_day,
        },
        captcha: CaptchaSettings {
            signup: c.on_signup,
            login: c.on_login,
            password_reset: c.on_password_reset,
            passwordless: c.on_passwordless,
        },
        min_password_score: settings.password_checks.min_score,
        ipv6_prefix_len: r.ipv6_prefix_len,
    }
}

type GuardAdapters = (
    Option<Arc<dyn CaptchaVerifier>>,
    Option<Arc<dyn BreachedPasswords>>,
);

fn guard_adapters(settings: &Settings) -> Result<GuardAdapters, String> {
    let c = &settings.captcha;
    let captcha: Option<Arc<dyn CaptchaVerifier>> = if c.enabled {
        let secret = secrecy::SecretString::from(c.secret.clone());
        Some(Arc::new(SiteverifyCaptcha::new(
            c.verify_url.clone(),
            secret,
            Duration::from_secs(c.timeout_secs.max(1)),
        )?))
    } else {
        None
    };
    let p = &settings.password_checks;
    let breached: Option<Arc<dyn BreachedPasswords>> = if p.breached_check {
        Some(Arc::new(HibpRangeClient::new(
            p.breached_api_url.clone(),
            Duration::from_secs(p.timeout_secs.max(1)),
        )?))
    } else {
        None
    };
    Ok((captcha, breached))
}

type MailAdapters = (Arc<dyn MailRenderer>, Arc<dyn Mailer>);

fn mail_adapters(settings: &Settings) -> Result<MailAdapters, String> {
    let m = &settings.mail;
    let overrides =
        (!m.templates_dir.is_empty()).then(|| std::path::PathBuf::from(&m.templates_dir));
    let renderer = TemplateRenderer::new(overrides.as_deref(), settings.app.name.clone())
        .map_err(|e| format!("mail.templates_dir: {e}"))?;
    let mailer: Arc<dyn Mailer> = match m.transport {
        MailTransport::File => {
            let dir = settings.data_dir.join("mail");
            tracing::info!(dir = %dir.display(), "mail.transport = file: messages are written to files, not sent");
            Arc::new(FileMailer::new(dir, m.from.clone()).map_err(|e| format!("mail: {e}"))?)
        }
        MailTransport::Smtp => Arc::new(
            SmtpMailer::new(SmtpSettings {
                host: m.smtp.host.clone(),
                port: m.smtp.port,
                tls: match m.smtp.tls {
                    SmtpTlsSetting::None => SmtpTls::None,
                    SmtpTlsSetting::Starttls => SmtpTls::StartTls,
                    SmtpTlsSetting::Tls => SmtpTls::Tls,
                },
                username: m.smtp.username.clone(),
                password: m.smtp.password.clone(),
                from: m.from.clone(),
                timeout: Duration::from_secs(m.smtp.timeout_secs.max(1)),
            })
            .map_err(|e| format!("mail.smtp: {e}"))?,
        ),
    };
    Ok((Arc::new(renderer), mailer))
}

fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(true)
        .error_handler(move |err, _req| {
            let problem = match &err {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => {
                    ApiError::payload_too_large(limit)
                }
                JsonPayloadError::ContentType => {
                    ApiError::invalid_request("the body must be application/json")
                }
                JsonPayloadError::Deserialize(e) => {
                    ApiError::invalid_request(format!("invalid JSON body: {e}"))
                }
                other => ApiError::invalid_request(other.to_string()),
            };
            problem.into()
        })
}

/// Turn every error response that is not problem+json yet (actix's own 404/405/413 ...)
/// into one, so clients see a single error format.
fn as_problem<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem
        || res
            .response()
            .extensions()
            .get::<crate::compat::ProfileBody>()
            .is_some()
    {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let problem = match res.status() {
        StatusCode::NOT_FOUND => ApiError::not_found(),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::method_not_allowed(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            let limit = res
                .request()
                .app_data::<web::Data<AppState>>()
                .map_or(0, |s| s.settings.server.max_body_bytes);
            ApiError::payload_too_large(limit)
        }
        s if s.is_server_error() => {
            ApiError::from(auth_core::AuthError::internal(format!("unhandled {s}")))
        }
        s => ApiError::new(
            s,
            "invalid_request",
            "Invalid request",
            s.canonical_reason().unwrap_or("request refused"),
        ),
    };
    let (req, _) = res.into_parts();
    let res = ServiceResponse::new(req, problem.error_response()).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}
