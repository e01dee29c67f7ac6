//! [`WebhookStore`] for [`MemoryStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryStore;
use crate::audit::Recorded;
use crate::error::AuthResult;
use crate::webhooks::{DeliveryAttempt, WebhookEndpoint, WebhookStore};

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn insert_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        record: &Recorded,
    ) -> AuthResult<()> {
        let mut s = self.state();
        s.webhooks.push(endpoint.clone());
        s.write_records(std::slice::from_ref(record));
        Ok(())
    }

    async fn update_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        record: &Recorded,
    ) -> AuthResult<bool> {
        let mut s = self.state();
        let Some(e) = s.webhooks.iter_mut().find(|e| e.id == endpoint.id) else {
            return Ok(false);
        };
        *e = endpoint.clone();
        s.write_records(std::slice::from_ref(record));
        Ok(true)
    }

    async fn delete_endpoint(&self, id: Uuid, record: &Recorded) -> AuthResult<bool> {
        let mut s = self.state();
        let before = s.webhooks.len();
        s.webhooks.retain(|e| e.id != id);
        if s.webhooks.len() == before {
            return Ok(false);
        }
        s.webhook_attempts.retain(|a| a.endpoint_id != id);
        s.write_records(std::slice::from_ref(record));
        Ok(true)
    }

    async fn endpoint(&self, id: Uuid) -> AuthResult<Option<WebhookEndpoint>> {
        Ok(self.state().webhooks.iter().find(|e| e.id == id).cloned())
    }

    async fn endpoints(&self) -> AuthResult<Vec<WebhookEndpoint>> {
        Ok(self.state().webhooks.clone())
    }

    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> AuthResult<Option<DateTime<Utc>>> {
        let mut s = self.state();
        let Some(e) = s.webhooks.iter_mut().find(|e| e.id == attempt.endpoint_id) else {
            return Ok(None);
        };
        if attempt.succeeded {
            e.failing_since = None;
        } else if e.failing_since.is_none() {
            e.failing_since = Some(attempt.attempted_at);
        }
        let since = e.failing_since;
        s.webhook_attempts.push(attempt.clone());
        Ok(since)
    }

    async fn disable_endpoint(
        &self,
        id: Uuid,
        reason: &str,
        now: DateTime<Utc>,
        record: &Recorded,
    ) -> AuthResult<bool> {
        let mut s = self.state();
        let Some(e) = s.webhooks.iter_mut().find(|e| e.id == id && e.enabled) else {
            return Ok(false);
        };
        e.enabled = false;
        e.disabled_reason = Some(reason.to_owned());
        e.updated_at = now;
        s.write_records(std::slice::from_ref(record));
        Ok(true)
    }

    async fn attempts(&self, endpoint_id: Uuid, limit: usize) -> AuthResult<Vec<DeliveryAttempt>> {
        let s = self.state();
        let mut list: Vec<DeliveryAttempt> = s
            .webhook_attempts
            .iter()
            .filter(|a| a.endpoint_id == endpoint_id)
            .cloned()
            .collect();
        list.sort_by_key(|a| std::cmp::Reverse((a.attempted_at, a.id)));
        list.truncate(limit);
        Ok(list)
    }
}
