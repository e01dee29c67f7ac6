//! `auth-passkeys`: the WebAuthn ceremonies of `auth-core`'s
//! [`PasskeyCeremonies`](auth_core::passkeys::PasskeyCeremonies) port, over webauthn-rs.
//!
//! Passkeys require user verification; sign-in uses discoverable credentials (the browser
//! offers the user's passkeys, no email needed). Ceremony states are serialised (feature
//! `danger-allow-state-serialisation`) so the core can keep them in the database, sealed,
//! between start and finish: every node can finish what another started.

use auth_core::model::User;
use auth_core::passkeys::{
    AssertionIdentity, PasskeyCeremonies, RegisteredCredential, VerifiedAssertion,
};
use auth_core::{AuthError, AuthResult};
use serde_json::Value;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder,
};

/// Relying-party configuration.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    /// The RP id: the registrable domain (`example.com`).
    pub id: String,
    /// Name shown by authenticators.
    pub name: String,
    /// Origins allowed to run the ceremonies (`https://app.example.com`); the first is the
    /// primary one.
    pub origins: Vec<String>,
}

/// WebAuthn ceremonies for one relying party.
pub struct WebauthnCeremonies {
    webauthn: Webauthn,
}

impl std::fmt::Debug for WebauthnCeremonies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebauthnCeremonies").finish_non_exhaustive()
    }
}

fn invalid(e: impl std::fmt::Display) -> AuthError {
    // The reason helps operators; the client only learns that verification failed.
    tracing::info!(reason = %e, "passkey ceremony refused");
    AuthError::InvalidPasskey
}

fn malformed(e: impl std::fmt::Display) -> AuthError {
    AuthError::InvalidRequest(format!("malformed WebAuthn credential: {e}"))
}

impl WebauthnCeremonies {
    /// Build for `rp`; fails on an invalid id or origin (start-up configuration error).
    pub fn new(rp: &RelyingParty) -> Result<Self, String> {
        let mut origins = rp
            .origins
            .iter()
            .map(|o| Url::parse(o).map_err(|e| format!("passkeys.origins: {o} is not a URL: {e}")));
        let first = origins
            .next()
            .ok_or("passkeys.origins must name at least one origin")??;
        let mut builder = WebauthnBuilder::new(&rp.id, &first)
            .map_err(|e| format!("passkeys.rp_id / origins: {e}"))?
            .rp_name(&rp.name);
        for origin in origins {
            builder = builder.append_allowed_origin(&origin?);
        }
        let webauthn = builder
            .build()
            .map_err(|e| format!("passkeys configuration: {e}"))?;
        Ok(Self { webauthn })
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> AuthResult<Value> {
    serde_json::to_value(v).map_err(AuthError::internal)
}

impl PasskeyCeremonies for WebauthnCeremonies {
    fn start_registration(&self, user: &User, exclude: &[Vec<u8>]) -> AuthResult<(Value, Vec<u8>)> {
        let exclude = (!exclude.is_empty()).then(|| exclude.to_vec());
        let display = user.name.as_deref().unwrap_or(&user.email);
        let (ccr, state) = self
            .webauthn
            .start_passkey_registration(user.id.0, &user.email, display, exclude)
            .map_err(AuthError::internal)?;
        let state = serde_json::to_vec(&state).map_err(AuthError::internal)?;
        Ok((to_json(&ccr)?, state))
    }

    fn finish_registration(
        &self,
        response: &Value,
        state: &[u8],
    ) -> AuthResult<RegisteredCredential> {
        let response: RegisterPublicKeyCredential =
            serde_json::from_value(response.clone()).map_err(malformed)?;
        let state: PasskeyRegistration =
            serde_json::from_slice(state).map_err(AuthError::internal)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&response, &state)
            .map_err(invalid)?;
        Ok(RegisteredCredential {
            credential_id: passkey.cred_id().to_vec(),
            credential: serde_json::to_string(&passkey).map_err(AuthError::internal)?,
            counter: 0,
        })
    }

    fn start_authentication(&self) -> AuthResult<(Value, Vec<u8>)> {
        let (rcr, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(AuthError::internal)?;
        let state = serde_json::to_vec(&state).map_err(AuthError::internal)?;
        Ok((to_json(&rcr)?, state))
    }

    fn identify(&self, response: &Value) -> AuthResult<AssertionIdentity> {
        let response: PublicKeyCredential =
            serde_json::from_value(response.clone()).map_err(malformed)?;
        let (user_handle, credential_id) = self
            .webauthn
            .identify_discoverable_authentication(&response)
            .map_err(invalid)?;
        Ok(AssertionIdentity {
            user_handle,
            credential_id: credential_id.to_vec(),
        })
    }

    fn finish_authentication(
        &self,
        response: &Value,
        state: &[u8],
        credential: &str,
    ) -> AuthResult<VerifiedAssertion> {
        let response: PublicKeyCredential =
            serde_json::from_value(response.clone()).map_err(malformed)?;
        let state: DiscoverableAuthentication =
            serde_json::from_slice(state).map_err(AuthError::internal)?;
        let mut passkey: Passkey = serde_json::from_str(credential).map_err(AuthError::internal)?;
        let result = self
            .webauthn
            .finish_discoverable_authentication_v2(&response, state, &passkey)
            .map_err(invalid)?;
        passkey.update_credential(&result);
        Ok(VerifiedAssertion {
            counter: result.counter(),
            user_verified: result.user_verified(),
            credential: serde_json::to_string(&passkey).map_err(AuthError::internal)?,
        })
    }
}
