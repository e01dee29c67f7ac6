//! Unit tests of auth-core through its public API, on the in-memory store and a manual clock.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod architecture;
mod builder;
mod flows;
mod guard;
mod jwt;
mod mfa;
mod operators;
mod service;
mod social;
mod support;
