use std::process::ExitCode;

use clap::Parser as _;

#[actix_web::main]
async fn main() -> ExitCode {
    auth_http::cli::Cli::parse().run().await
}
