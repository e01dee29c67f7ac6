//! Command line: `serve` (default), `migrate`, `config check`, `keys generate`,
//! `keys rotate`, `users create-admin`, `users import`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::settings::{Settings, SettingsSource};
use secrecy::SecretString;

use crate::startup::{Application, build_service, open_database};
use crate::telemetry;

/// Self-hostable authentication server.
#[derive(Debug, Parser)]
#[command(name = "auth-http", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Signing keys: generate PEM files, rotate the generated key.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Manage accounts from the server's host.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Write a new key pair as PEM files: DIR/private.pem (mode 0600) and DIR/public.pem,
    /// for `tokens.private_key_path` / `tokens.public_key_path`.
    Generate {
        /// EdDSA (Ed25519), ES256 (P-256) or RS256 (RSA 2048).
        #[arg(long, value_parser = ["EdDSA", "ES256", "RS256"], default_value = "EdDSA")]
        algorithm: String,
        /// Directory to write into (created if missing); existing files are not replaced.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Add a new generated signing key (EdDSA without `tokens.private_key_path`): it is
    /// published at once, signs after `keys.activation_delay_secs`; older keys stay in the
    /// JWKS until the tokens they signed have expired, then are deleted. Running servers
    /// pick it up within `keys.reload_interval_secs`.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum UsersAction {
    /// Create a verified account holding the built-in `admin` role. Prompts for the
    /// password (twice, without echo) unless --password-stdin is given.
    CreateAdmin {
        /// The administrator's email address.
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Bring accounts over from another backend, with their password hashes (bcrypt or
    /// Argon2; upgraded to Argon2id at each account's first sign-in). Reads JSON Lines:
    /// one `{"email", "password_hash"?, "name"?, "email_verified"?, "roles"?}` per line.
    /// Accounts whose address already exists are skipped, so a run can be repeated. Exit 1
    /// when a line fails (the others are imported).
    Import {
        /// The JSON Lines file (`-` for standard input).
        #[arg(long)]
        file: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Validate the configuration and print the effective settings (secrets redacted).
    Check,
}

/// Exit codes scripts can rely on.
pub mod exit {
    /// The configuration is invalid.
    pub const CONFIG: u8 = 2;
    /// Start-up or runtime failure (database, keys, port).
    pub const RUNTIME: u8 = 1;
}

fn fail(code: u8, message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {message}");
    ExitCode::from(code)
}

impl Cli {
    /// Run the chosen command.
    pub async fn run(self) -> ExitCode {
        if let Some(Command::Keys {
            action: KeysAction::Generate { algorithm, out },
        }) = &self.command
        {
            return generate_keys(algorithm, out);
        }
        let settings = match Settings::load(&SettingsSource::from_process()) {
            Ok(s) => s,
            Err(e) => return fail(exit::CONFIG, &e),
        };
        match self.command.unwrap_or(Command::Serve) {
            Command::Config {
                action: ConfigAction::Check,
            } => match render(&settings) {
                Ok(text) => {
                    let _ = writeln!(std::io::stdout(), "{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(exit::RUNTIME, &e),
            },
            Command::Keys {
                action: KeysAction::Generate { algorithm, out },
            } => generate_keys(&algorithm, &out),
            Command::Keys {
                action: KeysAction::Rotate,
            } => rotate_keys(&settings).await,
            Command::Users {
                action:
                    UsersAction::CreateAdmin {
                        email,
                        password_stdin,
                    },
            } => {
                telemetry::init(&settings.log);
                create_admin(settings, &email, password_stdin).await
            }
            Command::Users {
                action: UsersAction::Import { file },
            } => {
                telemetry::init(&settings.log);
                import_users(settings, &file).await
            }
            Command::Migrate => {
                telemetry::init(&settings.log);
                let mut settings = settings;
                settings.database.migrate_on_start = true;
                match open_database(&settings).await {
                    Ok(_) => {
                        tracing::info!("migrations applied");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(exit::RUNTIME, &e.0),
                }
            }
            Command::Serve => {
                telemetry::init(&settings.log);
                let app = match Application::build(settings).await {
                    Ok(app) => app,
                    Err(e) => return fail(exit::RUNTIME, &e.0),
                };
                let handle = app.handle();
                tokio::spawn(async move {
                    crate::lifecycle::shutdown_signal().await;
                    handle.stop(true).await;
                });
                match app.run_until_stopped().await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(exit::RUNTIME, &e.to_string()),
                }
            }
        }
    }
}

fn generate_keys(algorithm: &str, out: &std::path::Path) -> ExitCode {
    use std::str::FromStr as _;
    let Ok(alg) = auth_core::jwt::SigningAlgorithm::from_str(algorithm) else {
        return fail(
            exit::CONFIG,
            &format!("--algorithm: unsupported {algorithm}"),
        );
    };
    let (private, public) = match crate::keys::generate_pem_pair(alg) {
        Ok(pair) => pair,
        Err(e) => return fail(exit::RUNTIME, &e),
    };
    let (private_path, public_path) = (out.join("private.pem"), out.join("public.pem"));
    for path in [&private_path, &public_path] {
        if path.exists() {
            return fail(
                exit::RUNTIME,
                &format!("{} exists: not replaced", path.display()),
            );
        }
    }
    use secrecy::ExposeSecret as _;
    if let Err(e) =
        crate::keys::write_private_file(&private_path, private.expose_secret().as_bytes())
            .and_then(|()| crate::keys::write_file(&public_path, public.as_bytes(), 0o644))
    {
        return fail(exit::RUNTIME, &e);
    }
    let _ = writeln!(
        std::io::stdout(),
        "wrote {} (private, 0600) and {} ({algorithm})\nconfigure: tokens.algorithm = \"{algorithm}\", tokens.private_key_path = \"{}\", tokens.public_key_path = \"{}\"",
        private_path.display(),
        public_path.display(),
        private_path.display(),
        public_path.display(),
    );
    ExitCode::SUCCESS
}

async fn rotate_keys(settings: &Settings) -> ExitCode {
    telemetry::init(&settings.log);
    let generated =
        settings.tokens.algorithm == "EdDSA" && settings.tokens.private_key_path.is_none();
    if !generated {
        return fail(
            exit::CONFIG,
            "keys rotate manages the generated EdDSA key; with tokens.private_key_path or HS256, rotate by configuration (see docs/deployment.md, Key rotation)",
        );
    }
    let database = match open_database(settings).await {
        Ok(db) => db,
        Err(e) => return fail(exit::RUNTIME, &e.0),
    };
    let home = match database.backend() {
        auth_db::Backend::Sqlite => crate::keys::GeneratedKeyHome::DataDir,
        auth_db::Backend::Postgres => crate::keys::GeneratedKeyHome::Database(&database),
    };
    match crate::keys::rotate(settings, &home).await {
        Ok(r) => {
            let _ = writeln!(
                std::io::stdout(),
                "added signing key {} (published now, signs from {}); removed {} expired key(s)",
                r.kid,
                r.active_from.to_rfc3339(),
                r.pruned.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(exit::RUNTIME, &e),
    }
}

/// The password of `users create-admin`: a line of standard input, or typed twice at a
/// prompt without echo.
fn read_admin_password(from_stdin: bool) -> Result<SecretString, String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            return Err("no password on standard input".into());
        }
        return Ok(SecretString::from(password));
    }
    let no_terminal =
        |e: std::io::Error| format!("cannot prompt for a password ({e}); use --password-stdin");
    let first = rpassword::prompt_password("Password: ").map_err(no_terminal)?;
    let second = rpassword::prompt_password("Repeat password: ").map_err(no_terminal)?;
    if first != second {
        return Err("the passwords do not match".into());
    }
    Ok(SecretString::from(first))
}

async fn create_admin(settings: Settings, email: &str, password_stdin: bool) -> ExitCode {
    let password = match read_admin_password(password_stdin) {
        Ok(p) => p,
        Err(e) => return fail(exit::RUNTIME, &e),
    };
    let database = match open_database(&settings).await {
        Ok(db) => std::sync::Arc::new(db),
        Err(e) => return fail(exit::RUNTIME, &e.0),
    };
    let auth = match build_service(&settings, &database).await {
        Ok(auth) => auth,
        Err(e) => return fail(exit::RUNTIME, &e.0),
    };
    match auth.operators().create_admin(email, password).await {
        Ok(user) => {
            tracing::info!(user_id = %user.id, "administrator created");
            let _ = writeln!(
                std::io::stdout(),
                "created administrator {} ({})",
                user.email,
                user.id
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(exit::RUNTIME, &admin_error(&e)),
    }
}

/// `users import`: one account per line; a report per failed or skipped line and a
/// summary on standard output.
async fn import_users(settings: Settings, file: &std::path::Path) -> ExitCode {
    let text = if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
    } else {
        std::fs::read_to_string(file)
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => return fail(exit::RUNTIME, &format!("--file {}: {e}", file.display())),
    };
    let database = match open_database(&settings).await {
        Ok(db) => std::sync::Arc::new(db),
        Err(e) => return fail(exit::RUNTIME, &e.0),
    };
    let auth = match build_service(&settings, &database).await {
        Ok(auth) => auth,
        Err(e) => return fail(exit::RUNTIME, &e.0),
    };
    let (mut imported, mut skipped, mut failed) = (0u64, 0u64, 0u64);
    let mut err = std::io::stderr();
    for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() {
            continue;
        }
        // The line is never echoed: it carries a password hash.
        let account: auth_core::operators::ImportedAccount = match serde_json::from_str(line) {
            Ok(a) => a,
            Err(e) => {
                failed += 1;
                let _ = writeln!(err, "line {n}: not an account object: {e}");
                continue;
            }
        };
        let email = account.email.clone();
        match auth.operators().import_account(account).await {
            Ok(_) => imported += 1,
            Err(auth_core::AuthError::EmailTaken) => {
                skipped += 1;
                let _ = writeln!(err, "line {n}: {email} already has an account: skipped");
            }
            Err(e @ auth_core::AuthError::Unavailable(_)) => {
                return fail(exit::RUNTIME, &format!("line {n}: {}", admin_error(&e)));
            }
            Err(auth_core::AuthError::InvalidEmail(reason)) => {
                failed += 1;
                let _ = writeln!(err, "line {n}: email {reason}");
            }
            Err(e) => {
                failed += 1;
                let _ = writeln!(err, "line {n}: {email}: {}", admin_error(&e));
            }
        }
    }
    tracing::info!(imported, skipped, failed, "users imported");
    let _ = writeln!(
        std::io::stdout(),
        "imported {imported}, skipped {skipped} (already there), failed {failed}"
    );
    if failed > 0 {
        ExitCode::from(exit::RUNTIME)
    } else {
        ExitCode::SUCCESS
    }
}

fn admin_error(e: &auth_core::AuthError) -> String {
    use auth_core::AuthError as E;
    match e {
        E::EmailTaken => "an account with this email address already exists".into(),
        E::InvalidEmail(reason) => format!("--email: {reason}"),
        E::WeakPassword(reason) => format!("password rejected: {reason}"),
        E::Unavailable(_) => "the database is unavailable".into(),
        e => e.to_string(),
    }
}

fn render(settings: &Settings) -> Result<String, String> {
    serde_json::to_string_pretty(settings).map_err(|e| e.to_string())
}
