//! [`WebhookStore`] for [`Database`]: endpoints (administrative writes with their event's record
//! in one transaction) and delivery attempts.

use async_trait::async_trait;
use auth_core::audit::Recorded;
use auth_core::webhooks::{DeliveryAttempt, WebhookEndpoint, WebhookStore};
use auth_core::{AuthError, AuthResult};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use super::{RecordRows, db_time, from_json, parse, to_json};
use crate::database::{
    Database, DbPool, PgConn, SqliteConn, detach, pool_error, query_error, unavailable,
};
use crate::schema::{webhook_deliveries, webhook_endpoints};

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = webhook_endpoints, treat_none_as_null = true)]
struct EndpointRow {
    id: String,
    url: String,
    description: Option<String>,
    event_types: String,
    enabled: bool,
    secret_sealed: String,
    previous_secret_sealed: Option<String>,
    previous_secret_expires_at: Option<NaiveDateTime>,
    failing_since: Option<NaiveDateTime>,
    disabled_reason: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl EndpointRow {
    fn new(e: &WebhookEndpoint) -> AuthResult<Self> {
        Ok(Self {
            id: e.id.to_string(),
            url: e.url.clone(),
            description: e.description.clone(),
            event_types: to_json(&e.event_types)?,
            enabled: e.enabled,
            secret_sealed: e.secret_sealed.clone(),
            previous_secret_sealed: e.previous_secret_sealed.clone(),
            previous_secret_expires_at: e.previous_secret_expires_at.map(db_time),
            failing_since: e.failing_since.map(db_time),
            disabled_reason: e.disabled_reason.clone(),
            created_at: db_time(e.created_at),
            updated_at: db_time(e.updated_at),
        })
    }

    fn into_endpoint(self) -> AuthResult<WebhookEndpoint> {
        Ok(WebhookEndpoint {
            id: parse(&self.id)?,
            url: self.url,
            description: self.description,
            event_types: from_json(&self.event_types)?,
            enabled: self.enabled,
            secret_sealed: self.secret_sealed,
            previous_secret_sealed: self.previous_secret_sealed,
            previous_secret_expires_at: self.previous_secret_expires_at.map(|t| t.and_utc()),
            failing_since: self.failing_since.map(|t| t.and_utc()),
            disabled_reason: self.disabled_reason,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries)]
struct AttemptRow {
    id: String,
    endpoint_id: String,
    message_id: String,
    event_type: String,
    attempt: i32,
    attempted_at: NaiveDateTime,
    status_code: Option<i32>,
    error: Option<String>,
    succeeded: bool,
}

impl AttemptRow {
    fn new(a: &DeliveryAttempt) -> Self {
        Self {
            id: a.id.to_string(),
            endpoint_id: a.endpoint_id.to_string(),
            message_id: a.message_id.to_string(),
            event_type: a.event_type.clone(),
            attempt: a.attempt,
            attempted_at: db_time(a.attempted_at),
            status_code: a.status_code,
            error: a.error.clone(),
            succeeded: a.succeeded,
        }
    }

    fn into_attempt(self) -> AuthResult<DeliveryAttempt> {
        Ok(DeliveryAttempt {
            id: parse(&self.id)?,
            endpoint_id: parse(&self.endpoint_id)?,
            message_id: parse(&self.message_id)?,
            event_type: self.event_type,
            attempt: self.attempt,
            attempted_at: self.attempted_at.and_utc(),
            status_code: self.status_code,
            error: self.error,
            succeeded: self.succeeded,
        })
    }
}

#[async_trait]
impl WebhookStore for Database {
    async fn insert_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        record: &Recorded,
    ) -> AuthResult<()> {
        let row = EndpointRow::new(endpoint)?;
        let records = RecordRows::new(std::slice::from_ref(record));
        write_tx!(self, |conn| {
            diesel::insert_into(webhook_endpoints::table)
                .values(&row)
                .execute(conn)
                .await?;
            write_records!(conn, &records).await?;
            Ok(())
        })
    }

    async fn update_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        record: &Recorded,
    ) -> AuthResult<bool> {
        let row = EndpointRow::new(endpoint)?;
        let records = RecordRows::new(std::slice::from_ref(record));
        write_tx!(self, |conn| {
            let n = diesel::update(webhook_endpoints::table.find(&row.id))
                .set(&row)
                .execute(conn)
                .await?;
            if n == 0 {
                return Ok(false);
            }
            write_records!(conn, &records).await?;
            Ok(true)
        })
    }

    async fn delete_endpoint(&self, id: Uuid, record: &Recorded) -> AuthResult<bool> {
        let id = id.to_string();
        let records = RecordRows::new(std::slice::from_ref(record));
        write_tx!(self, |conn| {
            // Attempts go with it (ON DELETE CASCADE).
            let n = diesel::delete(webhook_endpoints::table.find(&id))
                .execute(conn)
                .await?;
            if n == 0 {
                return Ok(false);
            }
            write_records!(conn, &records).await?;
            Ok(true)
        })
    }

    async fn endpoint(&self, id: Uuid) -> AuthResult<Option<WebhookEndpoint>> {
        let id = id.to_string();
        let row = with_conn!(self, |conn| {
            webhook_endpoints::table
                .find(&id)
                .select(EndpointRow::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        row.map(EndpointRow::into_endpoint).transpose()
    }

    async fn endpoints(&self) -> AuthResult<Vec<WebhookEndpoint>> {
        let rows = with_conn!(self, |conn| {
            webhook_endpoints::table
                .order(webhook_endpoints::id.asc())
                .select(EndpointRow::as_select())
                .load(conn)
                .await
        })?;
        rows.into_iter().map(EndpointRow::into_endpoint).collect()
    }

    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> AuthResult<Option<DateTime<Utc>>> {
        let row = AttemptRow::new(attempt);
        let gone = |e| match e {
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                AuthError::NotFound
            }
            e => query_error(e),
        };
        let result = write_tx!(self, gone, |conn| {
            let e = webhook_endpoints::table.find(&row.endpoint_id);
            if row.succeeded {
                diesel::update(e)
                    .set(webhook_endpoints::failing_since.eq(None::<NaiveDateTime>))
                    .execute(conn)
                    .await?;
            } else {
                diesel::update(e.filter(webhook_endpoints::failing_since.is_null()))
                    .set(webhook_endpoints::failing_since.eq(Some(row.attempted_at)))
                    .execute(conn)
                    .await?;
            }
            diesel::insert_into(webhook_deliveries::table)
                .values(&row)
                .execute(conn)
                .await?;
            webhook_endpoints::table
                .find(&row.endpoint_id)
                .select(webhook_endpoints::failing_since)
                .first::<Option<NaiveDateTime>>(conn)
                .await
        });
        match result {
            Ok(since) => Ok(since.map(|t| t.and_utc())),
            // The endpoint was deleted meanwhile: nothing to record.
            Err(AuthError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn disable_endpoint(
        &self,
        id: Uuid,
        reason: &str,
        now: DateTime<Utc>,
        record: &Recorded,
    ) -> AuthResult<bool> {
        let id = id.to_string();
        let reason = reason.to_owned();
        let now = db_time(now);
        let records = RecordRows::new(std::slice::from_ref(record));
        write_tx!(self, |conn| {
            let n = diesel::update(
                webhook_endpoints::table
                    .find(&id)
                    .filter(webhook_endpoints::enabled.eq(true)),
            )
            .set((
                webhook_endpoints::enabled.eq(false),
                webhook_endpoints::disabled_reason.eq(&reason),
                webhook_endpoints::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
            if n == 0 {
                return Ok(false);
            }
            write_records!(conn, &records).await?;
            Ok(true)
        })
    }

    async fn attempts(&self, endpoint_id: Uuid, limit: usize) -> AuthResult<Vec<DeliveryAttempt>> {
        let id = endpoint_id.to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = with_conn!(self, |conn| {
            webhook_deliveries::table
                .filter(webhook_deliveries::endpoint_id.eq(&id))
                .order((
                    webhook_deliveries::attempted_at.desc(),
                    webhook_deliveries::id.desc(),
                ))
                .limit(limit)
                .select(AttemptRow::as_select())
                .load(conn)
                .await
        })?;
        rows.into_iter().map(AttemptRow::into_attempt).collect()
    }
}
