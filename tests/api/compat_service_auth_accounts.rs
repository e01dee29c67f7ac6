//! The `service-authentication` profile: users, webhooks and the audit log.
