//! The `service-authentication` profile: second factors (`/mfa/*`, `/otp/*`, `/authenticator/*`).
