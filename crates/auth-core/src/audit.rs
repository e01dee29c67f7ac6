//! The audit trail: security events as stored rows, what a change writes about itself
//! ([`Recorded`]), and the port that keeps the rows. Rows carry identifiers, addresses and
//! a small JSON detail; never a password, token or code.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::AuthResult;
use crate::events::SecurityEvent;
use crate::model::{SessionId, UserId};
use crate::outbox::NewOutboxMessage;

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Time-ordered identifier (the tie-breaker of the cursor).
    pub id: Uuid,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The event type, snake_case (`login_failed`, `user_disabled` ...).
    pub event_type: String,
    /// Who acted, when it was someone else than the subject (an administrator).
    pub actor_id: Option<UserId>,
    /// The account concerned.
    pub user_id: Option<UserId>,
    /// The session concerned.
    pub session_id: Option<SessionId>,
    /// Client IP address.
    pub ip: Option<String>,
    /// Client `User-Agent`.
    pub user_agent: Option<String>,
    /// A small JSON object (`{"reason": "wrong_password"}`).
    pub detail: Option<serde_json::Value>,
}

impl AuditRecord {
    /// The row of an event. A detail that is a JSON object is kept as is; any other text
    /// becomes `{"reason": text}`.
    pub fn from_event(event: &SecurityEvent) -> Self {
        let event_type = serde_json::to_value(event.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{:?}", event.kind));
        let detail =
            event
                .detail
                .as_deref()
                .map(|d| match serde_json::from_str::<serde_json::Value>(d) {
                    Ok(v @ serde_json::Value::Object(_)) => v,
                    _ => serde_json::json!({ "reason": d }),
                });
        let client = event.client.clone().unwrap_or_default();
        Self {
            id: Uuid::now_v7(),
            at: event.at,
            event_type,
            actor_id: event.actor,
            user_id: event.user_id,
            session_id: event.session_id,
            ip: client.ip,
            user_agent: client.user_agent,
            detail,
        }
    }
}

/// Filters of an audit-log query; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only rows about this user.
    pub user_id: Option<UserId>,
    /// Only rows of this event type.
    pub event_type: Option<String>,
    /// Only rows at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only rows before this time.
    pub until: Option<DateTime<Utc>>,
    /// Continue after this row (time and id of the last row of the previous page).
    pub before: Option<(DateTime<Utc>, Uuid)>,
    /// Page size.
    pub limit: usize,
}

/// What a security event writes, in the transaction of the change that causes it: its
/// audit row and one webhook delivery (an outbox entry) per endpoint subscribed to its
/// type. A store that takes `&[Recorded]` with a change writes all of it or nothing, so an
/// event is never lost nor recorded for a change that did not happen.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The event, for the observers told once the change is committed (log, metrics).
    pub event: SecurityEvent,
    /// Its audit row.
    pub row: AuditRecord,
    /// Its webhook deliveries.
    pub deliveries: Vec<NewOutboxMessage>,
}

impl Recorded {
    /// The record of `event` with no webhook delivery (the core adds one per subscribed
    /// endpoint; this is for adapters' tests and events no endpoint may hear of).
    pub fn unpublished(event: SecurityEvent) -> Self {
        Self {
            row: AuditRecord::from_event(&event),
            event,
            deliveries: Vec::new(),
        }
    }
}

/// Storage of the audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Write one event on its own, row and deliveries in one transaction: for events that
    /// change nothing else (a failed sign-in), or whose change lives in a store that cannot
    /// share the transaction (a lock in the rate-limit store).
    async fn append(&self, record: &Recorded) -> AuthResult<()>;
    /// Rows matching `query`, newest first (`at` then `id`, descending), at most
    /// `query.limit`.
    async fn query(&self, query: &AuditQuery) -> AuthResult<Vec<AuditRecord>>;
    /// Delete rows older than `cutoff`; returns how many.
    async fn prune_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64>;
}
