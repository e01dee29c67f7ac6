//! Command line: `serve` (default), `migrate`, `config check`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::settings::{Settings, SettingsSource};
use crate::startup::{Application, open_database};
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

fn render(settings: &Settings) -> Result<String, String> {
    serde_json::to_string_pretty(settings).map_err(|e| e.to_string())
}
