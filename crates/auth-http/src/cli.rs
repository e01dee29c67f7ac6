//! Command line: `serve` (default), `migrate`, `config check`, `users create-admin`.

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
    /// Manage accounts from the server's host.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
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
                match app.run_until_stopped().await {
                    Ok(()) => {
                        tracing::info!("stopped");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(exit::RUNTIME, &e.to_string()),
                }
            }
        }
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
    match auth.create_admin(email, password).await {
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
