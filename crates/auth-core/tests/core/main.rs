//! Unit tests of auth-core through its public API, on the in-memory store and a manual clock.

mod jwt;
mod service;
mod support;
