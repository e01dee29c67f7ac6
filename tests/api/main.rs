//! End-to-end suite: the real server over HTTP, on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod compat_gsdlabs;
mod compat_nestjs;
mod compat_sails;
mod compat_service_auth;
mod compat_service_auth_accounts;
mod compat_service_auth_factors;
mod compat_service_auth_social;
mod compat_timelapseme;
mod conformance;
mod cookies;
mod email;
mod errors;
mod guard;
mod health;
mod keys_at_rest;
mod logs;
mod mfa;
mod oauth;
mod openapi;
mod operations;
mod operators;
mod passkeys;
mod password_sessions;
mod peers;
mod pre_accounts;
mod refresh;
mod resource_servers;
mod revoke_introspect;
mod sms;
mod social_fakes;
mod tokens;
mod webhooks;
