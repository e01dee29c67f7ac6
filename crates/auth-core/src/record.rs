//! The event recorder: the one write path of security events, audit rows and webhook
//! deliveries (ARCHITECTURE.md's outbox rule).
//!
//! A use case builds its event, [`Recorder::recorded`] turns it into what the change
//! writes about itself ([`Recorded`]: the audit row and one delivery per subscribed
//! webhook endpoint), the store writes that in the change's own transaction, and
//! [`Recorder::committed`] tells the observers (log, metrics) once it is done. An
//! event that changes nothing else (a failed sign-in) is written on its own by
//! [`Recorder::emit`]. A failed write fails the use case: an event or a delivery is
//! never dropped silently, nor recorded for a change that did not happen.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use crate::audit::{AuditStore, Recorded};
use crate::clock::Clock;
use crate::error::AuthResult;
use crate::events::{EventKind, EventSink, SecurityEvent};
use crate::model::{ClientInfo, SessionId, UserId};
use crate::outbox::WebhookJob;
use crate::outbox::{OutboxJob, Outgoing};
use crate::ports::{WebhookEndpoint, WebhookStore};

/// The event recorder, shared by every use case that records what it did.
#[derive(Clone)]
pub(crate) struct Recorder {
    pub(crate) webhooks: Arc<dyn WebhookStore>,
    pub(crate) audit: Arc<dyn AuditStore>,
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) outgoing: Outgoing,
}

impl Recorder {
    /// An event about `user_id` that its own request caused (no other actor), now.
    pub(crate) fn event(
        &self,
        kind: EventKind,
        user_id: Option<UserId>,
        session_id: Option<SessionId>,
        client: Option<&ClientInfo>,
        detail: Option<String>,
    ) -> SecurityEvent {
        SecurityEvent {
            kind,
            at: self.clock.now(),
            user_id,
            session_id,
            client: client.cloned(),
            detail,
            actor: None,
        }
    }

    /// What `event` writes with the change that causes it: its audit row and one webhook
    /// delivery per enabled endpoint subscribed to its type.
    pub(crate) async fn recorded(&self, event: SecurityEvent) -> AuthResult<Recorded> {
        let mut record = Recorded::unpublished(event);
        let row = &record.row;
        let endpoints = self.webhooks.endpoints().await?;
        let targets: Vec<&WebhookEndpoint> = endpoints
            .iter()
            .filter(|e| e.subscribes_to(&row.event_type))
            .collect();
        let mut deliveries = Vec::with_capacity(targets.len());
        if !targets.is_empty() {
            let body = json!({
                "type": row.event_type,
                "timestamp": row.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "data": {
                    "user_id": row.user_id.map(|u| u.to_string()),
                    "actor_id": row.actor_id.map(|u| u.to_string()),
                    "session_id": row.session_id.map(|s| s.to_string()),
                    "detail": row.detail,
                },
            })
            .to_string();
            for endpoint in targets {
                let job = OutboxJob::Webhook(WebhookJob {
                    endpoint_id: endpoint.id,
                    message_id: Uuid::now_v7(),
                    event_type: row.event_type.clone(),
                    body: body.clone(),
                });
                deliveries.push(self.outgoing.seal(&job, row.at)?);
            }
        }
        record.deliveries = deliveries;
        Ok(record)
    }

    /// The events of a committed change reach their observers (log, metrics).
    pub(crate) async fn committed(&self, records: impl IntoIterator<Item = Recorded>) {
        for record in records {
            self.events.record(record.event).await;
        }
    }

    /// Write an event that changes nothing else, on its own, and tell the observers.
    pub(crate) async fn emit(
        &self,
        kind: EventKind,
        user_id: Option<UserId>,
        session_id: Option<SessionId>,
        client: Option<&ClientInfo>,
        detail: Option<String>,
    ) -> AuthResult<()> {
        let event = self.event(kind, user_id, session_id, client, detail);
        let record = self.recorded(event).await?;
        self.audit.append(&record).await?;
        self.committed([record]).await;
        Ok(())
    }
}
