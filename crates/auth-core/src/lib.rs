//! `auth-core`: the domain of the auth server.
//!
//! Types, policies, use-case services and the port traits that adapters implement. Pure:
//! no HTTP, no SQL, no sockets, no files. Embedders wire their own adapters (or the
//! in-memory store of the `memory` feature) into [`AuthCore`], which holds one service
//! per use case ([`AuthCore::sessions`], [`AuthCore::mailbox`], [`AuthCore::mfa`], ...).

pub mod clock;
mod compose;
pub mod email;
pub mod error;
pub mod events;
mod factors;

pub mod flows;
pub mod guard;

#[cfg(feature = "memory")]
pub mod memory;
pub mod model;
pub mod password;
pub mod ports;
pub mod random;
mod record;

pub use compose::{AuthCore, AuthCoreBuilder, AuthSettings, BuildError, Ports};
pub use error::{AuthError, AuthResult};
pub mod identity;
pub mod jwt;
pub mod mail;
pub mod mfa;
pub mod opaque;
pub mod outbox;
pub mod passkeys;
pub mod secret_box;
pub mod service;
mod sign_in;

pub mod audit;
pub mod operators;
pub mod sms;
pub mod social;
pub mod unconfigured;
pub mod webhooks;
mod worker;
