//! The composition root: wires adapters into the core and builds the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, Service as _, ServiceResponse};
use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{App, HttpMessage as _, HttpServer, ResponseError as _, web};
use auth_core::clock::SystemClock;
use auth_core::jwt::JwtIssuer;
use auth_core::password::Argon2Hasher;
use auth_core::random::OsRandom;
use auth_core::service::{AuthService, AuthSettings, IntrospectionClient, Ports, SessionPolicy};
use auth_db::{Backend, Database, DatabaseOptions};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::keys::{GeneratedKeyHome, load_key_set};
use crate::problem::ApiError;
use crate::routes;
use crate::settings::Settings;
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
    let db = &settings.database;
    let options = DatabaseOptions {
        max_connections: (db.max_connections > 0).then_some(db.max_connections),
        connect_timeout: Duration::from_secs(db.connect_timeout_secs),
        acquire_timeout: Duration::from_secs(db.acquire_timeout_secs),
    };
    let database = Database::connect(&db.url, &options)
        .map_err(|e| StartupError(format!("database.url: {e}")))?;
    if db.migrate_on_start {
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

/// The running server.
pub struct Application {
    port: u16,
    server: Server,
    housekeeping: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Connect, migrate, load keys, bind the listener. The server starts serving when
    /// [`Application::run_until_stopped`] is awaited.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let settings = Arc::new(settings);
        let database = Arc::new(open_database(&settings).await?);
        let home = match database.backend() {
            Backend::Sqlite => GeneratedKeyHome::DataDir,
            Backend::Postgres => GeneratedKeyHome::Database(database.as_ref()),
        };
        let keys = load_key_set(&settings, home).await.map_err(StartupError)?;
        tracing::info!(algorithm = %settings.tokens.algorithm, kid = keys.signing_kid(), "signing key loaded");
        let tokens = JwtIssuer::new(
            keys,
            settings.server.public_url.clone(),
            settings.tokens.audience.clone(),
            i64::try_from(settings.tokens.leeway_secs).unwrap_or(0),
        );
        let hasher = Argon2Hasher::new(&settings.password_hashing).map_err(StartupError)?;
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
        };
        let ports = Ports {
            users: database.clone(),
            sessions: database.clone(),
            hasher: Arc::new(hasher),
            tokens: Arc::new(tokens),
            clock: Arc::new(SystemClock),
            rng: Arc::new(OsRandom),
        };
        let auth = Arc::new(AuthService::new(ports, auth_settings));
        let housekeeping = tokio::spawn(housekeeping(
            auth.clone(),
            Duration::from_secs(settings.server.housekeeping_interval_secs),
            chrono::Duration::days(
                i64::try_from(t.session_retention_days).unwrap_or(i64::MAX / 86_400_000),
            ),
        ));

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
        let state = web::Data::new(AppState {
            auth,
            health: database,
            settings: settings.clone(),
        });
        let max_body = settings.server.max_body_bytes;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(json_config(max_body))
                .app_data(web::PayloadConfig::new(max_body))
                .configure(routes::configure)
                .default_service(web::to(|| async {
                    Err::<actix_web::HttpResponse, _>(ApiError::not_found())
                }))
                .wrap(ErrorHandlers::new().default_handler(as_problem))
                .wrap_fn(|req, srv| {
                    let request_id = req.extensions().get::<RequestId>().map(ToString::to_string);
                    let fut = srv.call(req);
                    async move {
                        let mut res = fut.await?;
                        if let Some(value) =
                            request_id.and_then(|id| HeaderValue::from_str(&id).ok())
                        {
                            res.headers_mut()
                                .insert(HeaderName::from_static("x-request-id"), value);
                        }
                        Ok(res)
                    }
                })
                .wrap(TracingLogger::default())
        })
        .listen(listener)
        .map_err(|e| StartupError(e.to_string()))?
        .shutdown_timeout(30);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        tracing::info!(address = %format!("{}:{port}", settings.server.host), "listening");
        Ok(Self {
            port,
            server: server.run(),
            housekeeping,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serve until SIGINT/SIGTERM (graceful: in-flight requests finish) or the handle stops it.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.housekeeping.abort();
        result
    }

    /// A handle that can stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

async fn housekeeping(auth: Arc<AuthService>, every: Duration, retention: chrono::Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match auth.purge_ended_sessions(retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "purged ended sessions"),
            Err(e) => tracing::warn!(error = %e, "session purge failed"),
        }
    }
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
    if is_problem {
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
