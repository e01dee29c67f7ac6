//! The key ring of generated signing keys on the shared database: the first key (slot
//! `generated`, see [`auth_core::ports::SigningKeyStore`]) and the keys added by
//! `keys rotate`, each in its own slot. The newest signs; older ones stay for verification
//! until the tokens they signed have expired, then they are removed.

use auth_core::AuthResult;
use auth_core::model::StoredSigningKey;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::RunQueryDsl;
use secrecy::{ExposeSecret, SecretString};

use super::{SigningKeyRow, db_time};
use crate::database::{
    Database, DbPool, PgConn, SqliteConn, detach, pool_error, query_error, unavailable,
};
use crate::schema::signing_keys;

/// A key of the ring and the slot it is stored in.
#[derive(Debug, Clone)]
pub struct RingKey {
    /// Where it is stored (to remove it later).
    pub slot: String,
    /// The key.
    pub key: StoredSigningKey,
}

impl Database {
    /// Every stored signing key, oldest first.
    pub async fn signing_key_ring(&self) -> AuthResult<Vec<RingKey>> {
        let rows: Vec<SigningKeyRow> = with_conn!(self, |conn| {
            signing_keys::table
                .select(SigningKeyRow::as_select())
                .order((signing_keys::created_at.asc(), signing_keys::slot.asc()))
                .load(conn)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| RingKey {
                slot: r.slot,
                key: StoredSigningKey {
                    algorithm: r.algorithm,
                    private_pem: SecretString::from(r.private_pem),
                    created_at: r.created_at.and_utc(),
                },
            })
            .collect())
    }

    /// Add a key (it signs from the next reload on); answers its slot.
    pub async fn add_signing_key(&self, key: &StoredSigningKey) -> AuthResult<String> {
        let row = SigningKeyRow {
            slot: format!("rotated-{}", uuid::Uuid::now_v7().simple()),
            algorithm: key.algorithm.clone(),
            private_pem: key.private_pem.expose_secret().to_owned(),
            created_at: db_time(key.created_at),
        };
        let slot = row.slot.clone();
        with_conn!(self, |conn| {
            diesel::insert_into(signing_keys::table)
                .values(&row)
                .execute(conn)
                .await
        })?;
        Ok(slot)
    }

    /// Replace the stored form of the key in `slot` (sealed again under another encryption
    /// key) when it is still `old`: concurrent starts re-sealing the same key do not fight.
    pub async fn reseal_signing_key(
        &self,
        slot: &str,
        old: &SecretString,
        new: &SecretString,
    ) -> AuthResult<bool> {
        let (slot, old, new) = (
            slot.to_owned(),
            old.expose_secret().to_owned(),
            new.expose_secret().to_owned(),
        );
        let n = with_conn!(self, |conn| {
            diesel::update(
                signing_keys::table
                    .find(&slot)
                    .filter(signing_keys::private_pem.eq(&old)),
            )
            .set(signing_keys::private_pem.eq(&new))
            .execute(conn)
            .await
        })?;
        Ok(n > 0)
    }

    /// Remove the key in `slot`; answers whether it was there.
    pub async fn remove_signing_key(&self, slot: &str) -> AuthResult<bool> {
        let slot = slot.to_owned();
        let n = with_conn!(self, |conn| {
            diesel::delete(signing_keys::table.find(&slot))
                .execute(conn)
                .await
        })?;
        Ok(n > 0)
    }
}
