//! JSON shapes of the API (API.md), built from domain values.

use auth_core::model::User;
use auth_core::service::{IssuedTokens, SessionView};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

/// `User`
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserView {
    /// The user id (a UUID).
    id: String,
    email: String,
    email_verified: bool,
    name: Option<String>,
    /// The avatar set by the user, else the Gravatar URL of the email.
    avatar_url: String,
    roles: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Linked external identities; present where the route loads them (`/me`, social
    /// sign-in and linking).
    #[serde(skip_serializing_if = "Option::is_none")]
    identities: Option<Vec<IdentityView>>,
}

/// An entry of `User.identities`: an external identity linked to the account.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Identity)]
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
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT (`typ: at+jwt`), verifiable with the keys at `/.well-known/jwks.json`.
    access_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String, example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: i64,
    /// Expiry of the access token, in seconds since the epoch.
    expires_at: i64,
    /// An opaque token for `POST /api/v1/auth/refresh`.
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
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Session)]
pub struct SessionItem {
    id: String,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    ip: Option<String>,
    user_agent: Option<String>,
    aal: String,
    /// Whether this is the session of the token that asked.
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
