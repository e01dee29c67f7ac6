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
use auth_core::audit::AuditTrail;
use auth_core::clock::{Clock as _, SystemClock};
use auth_core::flows::{EmailConfirmation, EmailSettings, TokenPlacement};
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
use auth_core::service::{AuthService, AuthSettings, IntrospectionClient, Ports, SessionPolicy};
use auth_core::webhooks::WebhookSettings;
use auth_db::{Backend, Database, DatabaseOptions, RedisRateLimits};
use auth_notify::{
    FileMailer, HibpRangeClient, HttpWebhookSender, SiteverifyCaptcha, SmtpMailer, SmtpSettings,
    SmtpTls, TemplateRenderer,
};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::keys::{GeneratedKeyHome, LoadedKeys, load_key_set, sealing_keys};
use crate::problem::ApiError;
use crate::routes;
use crate::settings::{
    EmailConfirmation as SettingConfirmation, GroupLimitSetting, IpNet, MailTransport,
    RateLimitBackend, Settings, SmtpTlsSetting, TokenPlacementSetting,
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
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Connect, migrate, load keys, bind the listener. The server starts serving when
    /// [`Application::run_until_stopped`] is awaited.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let settings = Arc::new(settings);
        let database = Arc::new(open_database(&settings).await?);
        let auth = build_service(&settings, &database).await?;
        let compat = crate::compat::Profiles::build(&settings, &auth).map_err(StartupError)?;
        let t = &settings.tokens;
        let social = Arc::new(
            crate::providers::social_service(&settings, auth.clone(), database.clone())
                .map_err(StartupError)?,
        );
        let days = |n: u64| chrono::Duration::days(i64::try_from(n).unwrap_or(36_500).min(36_500));
        let housekeeping = tokio::spawn(housekeeping(
            auth.clone(),
            database.clone(),
            Duration::from_secs(settings.server.housekeeping_interval_secs),
            days(t.session_retention_days),
            days(settings.outbox.retention_days),
        ));
        let outbox_worker = tokio::spawn(outbox_worker(
            auth.clone(),
            Duration::from_millis(settings.outbox.poll_interval_ms),
            settings.outbox.batch_size,
        ));

        let oauth_purge = tokio::spawn(crate::providers::purge_expired_oauth_records(
            social.clone(),
            Duration::from_secs(settings.server.housekeeping_interval_secs),
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
            social,
        });
        let max_body = settings.server.max_body_bytes;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(json_config(max_body))
                .app_data(web::PayloadConfig::new(max_body))
                .configure(|cfg| compat.configure(cfg))
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
            background: vec![housekeeping, outbox_worker, oauth_purge],
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serve until SIGINT/SIGTERM (graceful: in-flight requests finish) or the handle stops it.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        // Workers hold no state of their own: an entry interrupted mid-way is leased and
        // will be taken up again by this or another node when its lease ends.
        for task in &self.background {
            task.abort();
        }
        result
    }

    /// A handle that can stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// Wire the adapters into the core service (everything but the HTTP server and the
/// background tasks): the server and the operator commands of the CLI share it.
pub async fn build_service(
    settings: &Settings,
    database: &Arc<Database>,
) -> Result<Arc<AuthService>, StartupError> {
    let home = match database.backend() {
        Backend::Sqlite => GeneratedKeyHome::DataDir,
        Backend::Postgres => GeneratedKeyHome::Database(database.as_ref()),
    };
    let LoadedKeys {
        keys,
        derived_sealing_key,
    } = load_key_set(settings, home).await.map_err(StartupError)?;
    tracing::info!(algorithm = %settings.tokens.algorithm, kid = keys.signing_kid(), "signing key loaded");
    let sealer =
        SecretBox::new(&sealing_keys(settings, derived_sealing_key).map_err(StartupError)?)
            .map_err(StartupError)?;
    if settings.secrets.encryption_key.is_empty() && database.backend() == Backend::Postgres {
        tracing::warn!(
            "secrets.encryption_key is not set: pending mail is sealed with a key derived from the signing key, which lives in the same database"
        );
    }
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
        hasher: Arc::new(hasher),
        tokens: Arc::new(tokens),
        clock: Arc::new(SystemClock),
        rng: Arc::new(OsRandom),
        one_time: database.clone(),
        outbox: database.clone(),
        sealer: Arc::new(sealer),
        renderer,
        mailer,
        events: Arc::new(AuditTrail::new(database.clone())),
        rate_limits,
        lockouts: database.clone(),
        captcha,
        breached,
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
    Ok(Arc::new(AuthService::new(ports, auth_settings)))
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

async fn housekeeping(
    auth: Arc<AuthService>,
    database: Arc<Database>,
    every: Duration,
    session_retention: chrono::Duration,
    outbox_retention: chrono::Duration,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match auth.purge_ended_sessions(session_retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "purged ended sessions"),
            Err(e) => tracing::warn!(error = %e, "session purge failed"),
        }
        match auth.prune_audit_log().await {
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
        match auth.purge_mfa_challenges(chrono::Duration::hours(1)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "purged expired MFA challenges"),
            Err(e) => tracing::warn!(error = %e, "MFA challenge purge failed"),
        }
        match auth
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
async fn outbox_worker(auth: Arc<AuthService>, every: Duration, batch: usize) {
    loop {
        match auth.process_outbox(batch).await {
            Ok(n) if n >= batch => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "outbox worker: the store is unavailable; retrying")
            }
        }
        tokio::time::sleep(every).await;
    }
}

fn email_settings(settings: &Settings) -> EmailSettings {
    let (a, app, o) = (&settings.auth, &settings.app, &settings.outbox);
    EmailSettings {
        confirmation: match a.email_confirmation {
            SettingConfirmation::Optional => EmailConfirmation::Optional,
            SettingConfirmation::Required => EmailConfirmation::Required,
        },
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
        token_placement: match app.token_placement {
            TokenPlacementSetting::Query => TokenPlacement::Query,
            TokenPlacementSetting::Fragment => TokenPlacement::Fragment,
        },
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
            threshold: l.threshold,
            window: secs(l.window_secs),
            freeze: secs(l.freeze_secs),
        },
        captcha: CaptchaSettings {
            signup: c.on_signup,
            login: c.on_login,
            password_reset: c.on_password_reset,
            passwordless: c.on_passwordless,
        },
        min_password_score: settings.password_checks.min_score,
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
