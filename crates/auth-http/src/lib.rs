//! The auth server: configuration, composition root, HTTP routes.
//!
//! The binary (`auth-http`) is a thin CLI over [`startup::Application`]; tests build the
//! same application on port 0.

pub mod authorize;
pub mod cli;
pub mod client_gone;
pub mod compat;
pub mod cookies;
pub mod extract;
pub mod keys;
pub mod lifecycle;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod providers;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod views;
