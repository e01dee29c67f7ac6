//! JSON shapes of the API (API.md), built from domain values.

use auth_core::model::User;
use auth_core::service::{IssuedTokens, SessionView};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;

/// `User`
#[derive(Debug, Serialize)]
pub struct UserView {
    id: String,
    email: String,
    email_verified: bool,
    name: Option<String>,
    avatar_url: String,
    roles: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Linked external identities; present where the route loads them (`/me`, social
    /// sign-in and linking).
    #[serde(skip_serializing_if = "Option::is_none")]
    identities: Option<Vec<IdentityView>>,
}

/// An entry of `User.identities`.
#[derive(Debug, Serialize)]
pub struct IdentityView {
    id: String,
    provider: String,
    email: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<auth_core::identity::Identity> for IdentityView {
    fn from(i: auth_core::identity::Identity) -> Self {
        Self {
            id: i.id.to_string(),
            provider: i.provider,
            email: i.email,
            created_at: i.created_at,
        }
    }
}

impl UserView {
    /// The view with the user's identities.
    pub fn with_identities(mut self, identities: Vec<auth_core::identity::Identity>) -> Self {
        self.identities = Some(identities.into_iter().map(IdentityView::from).collect());
        self
    }
}

impl TokenResponse {
    /// The response with the user's identities.
    pub fn with_identities(mut self, identities: Vec<auth_core::identity::Identity>) -> Self {
        self.user = self.user.with_identities(identities);
        self
    }
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_string(),
            avatar_url: u.avatar_url_or_gravatar(),
            email: u.email,
            email_verified: u.email_verified,
            name: u.name,
            roles: u.roles,
            created_at: u.created_at,
            updated_at: u.updated_at,
            identities: None,
        }
    }
}

/// `TokenResponse`
#[derive(Serialize)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    expires_at: i64,
    refresh_token: String,
    user: UserView,
}

impl From<IssuedTokens> for TokenResponse {
    fn from(t: IssuedTokens) -> Self {
        Self {
            access_token: t.access_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
            expires_at: t.expires_at,
            refresh_token: t.refresh_token.expose_secret().to_owned(),
            user: t.user.into(),
        }
    }
}

/// An entry of `GET /api/v1/me/sessions`.
#[derive(Debug, Serialize)]
pub struct SessionItem {
    id: String,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    ip: Option<String>,
    user_agent: Option<String>,
    aal: String,
    current: bool,
}

impl From<SessionView> for SessionItem {
    fn from(v: SessionView) -> Self {
        let s = v.session;
        Self {
            id: s.id.to_string(),
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            ip: s.client.ip,
            user_agent: s.client.user_agent,
            aal: s.aal,
            current: v.current,
        }
    }
}
