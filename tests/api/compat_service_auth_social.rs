//! The `service-authentication` profile: OAuth sign-in and magic links.
