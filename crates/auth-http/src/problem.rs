//! RFC 9457 problem+json: the one place where domain errors become HTTP responses.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use auth_core::AuthError;
use serde::Serialize;

/// An HTTP-facing error: a status, a stable machine-readable code and a human detail.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    retry_after: Option<u64>,
    basic_challenge: bool,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
}

impl ApiError {
    /// A problem with the given status, code, title and detail.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            retry_after: None,
            basic_challenge: false,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid request",
            detail,
        )
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Payload too large",
            format!("the request body exceeds {limit} bytes"),
        )
    }

    /// 401 `invalid_token` for a missing or unusable bearer token.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Unauthorized",
            detail,
        )
    }

    /// 404 `not_found`.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not found",
            "no such resource",
        )
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            "this route does not accept that method",
        )
    }

    /// Add `Retry-After`.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use StatusCode as S;
        match e {
            AuthError::InvalidRequest(d) => Self::invalid_request(d),
            AuthError::InvalidEmail(d) => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "invalid_email",
                "Invalid email address",
                d,
            ),
            AuthError::WeakPassword(r) => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "weak_password",
                "Password rejected",
                r.to_string(),
            ),
            AuthError::InvalidField { field, reason } => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "Invalid field",
                format!("{field} {reason}"),
            ),
            AuthError::EmailTaken => Self::new(
                S::CONFLICT,
                "email_taken",
                "Email already registered",
                "an account with this email address already exists",
            ),
            AuthError::InvalidCredentials => Self::new(
                S::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid credentials",
                "the email or password is wrong",
            ),
            AuthError::InvalidRefreshToken => Self::new(
                S::UNAUTHORIZED,
                "invalid_refresh_token",
                "Invalid refresh token",
                "the refresh token is invalid, expired or revoked",
            ),
            AuthError::InvalidToken(reason) => {
                Self::unauthenticated(format!("access token rejected: {reason}"))
            }
            AuthError::InvalidClient => {
                let mut e = Self::new(
                    S::UNAUTHORIZED,
                    "invalid_client",
                    "Invalid client",
                    "client authentication failed",
                );
                e.basic_challenge = true;
                e
            }
            AuthError::EmailNotVerified => Self::new(
                S::FORBIDDEN,
                "email_not_verified",
                "Email not verified",
                "confirm the email address with the link sent to it before signing in",
            ),
            AuthError::InvalidOneTimeToken => Self::new(
                S::BAD_REQUEST,
                "invalid_or_expired_token",
                "Invalid or expired token",
                "the link is invalid, expired or already used; ask for a new one",
            ),
            AuthError::InvalidCode => Self::new(
                S::BAD_REQUEST,
                "invalid_code",
                "Invalid code",
                "the code is wrong, expired or already used",
            ),
            AuthError::NotEnabled(what) => Self::new(
                S::BAD_REQUEST,
                "not_enabled",
                "Not enabled",
                format!("{what} is not enabled on this server"),
            ),
            AuthError::RateLimited { retry_after_secs } => Self::new(
                S::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests",
                "too many requests; retry later",
            )
            .with_retry_after(retry_after_secs),
            AuthError::AccountLocked { retry_after_secs } => Self::new(
                S::FORBIDDEN,
                "account_locked",
                "Account locked",
                "too many failed sign-ins; the account unlocks by itself",
            )
            .with_retry_after(retry_after_secs),
            AuthError::CaptchaRequired => Self::new(
                S::BAD_REQUEST,
                "captcha_required",
                "CAPTCHA required",
                "captcha_token is required",
            ),
            AuthError::CaptchaFailed => Self::new(
                S::BAD_REQUEST,
                "captcha_failed",
                "CAPTCHA failed",
                "the CAPTCHA was not solved",
            ),
            AuthError::NotFound => Self::not_found(),
            AuthError::Overloaded { retry_after_secs } => Self::new(
                S::SERVICE_UNAVAILABLE,
                "overloaded",
                "Overloaded",
                "the server is busy hashing passwords; retry after the delay given",
            )
            .with_retry_after(retry_after_secs),
            AuthError::Unavailable(reason) => {
                tracing::warn!(%reason, "dependency unavailable");
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Service unavailable",
                    "the service is temporarily unavailable; retry shortly",
                )
                .with_retry_after(5)
            }
            AuthError::Internal(reason) => {
                tracing::error!(%reason, "internal error");
                Self::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "Internal server error",
                    "an unexpected error occurred",
                )
            }
            AuthError::Forbidden => Self::new(
                S::FORBIDDEN,
                "forbidden",
                "Forbidden",
                "the caller's roles do not grant this",
            ),
            AuthError::InsufficientCapability => Self::new(
                S::FORBIDDEN,
                "insufficient_capability",
                "Insufficient capability",
                "the account or role holds a capability the caller's roles do not grant",
            ),
            AuthError::AccountDisabled => Self::new(
                S::FORBIDDEN,
                "account_disabled",
                "Account disabled",
                "this account has been disabled by an administrator",
            ),
            AuthError::Conflict(code) => Self::new(
                S::CONFLICT,
                code,
                "Conflict",
                match code {
                    "role_exists" => "a role with this name already exists",
                    "role_in_use" => "users still hold this role; remove it from them first",
                    "built_in_role" => "the built-in role cannot be changed or deleted",
                    "cannot_target_self" => "administrators cannot do this to their own account",
                    _ => "the request conflicts with the current state",
                },
            ),
            AuthError::UnknownProvider => Self::new(
                S::NOT_FOUND,
                "unknown_provider",
                "Unknown provider",
                "no identity provider of that id is configured",
            ),
            AuthError::InvalidIdToken(reason) => {
                tracing::info!(%reason, "ID token refused");
                Self::new(
                    S::UNAUTHORIZED,
                    "invalid_id_token",
                    "Invalid ID token",
                    "the ID token is malformed, expired, badly signed, for another audience or carries the wrong nonce",
                )
            }
            AuthError::ProviderRejected(reason) => {
                tracing::info!(%reason, "provider refused the credential");
                Self::new(
                    S::UNAUTHORIZED,
                    "provider_rejected",
                    "Rejected by the provider",
                    "the identity provider refused the token or code",
                )
            }
            AuthError::ProviderUnavailable(reason) => {
                tracing::warn!(%reason, "identity provider unavailable");
                Self::new(
                    S::BAD_GATEWAY,
                    "provider_unavailable",
                    "Provider unavailable",
                    "the identity provider could not be reached; retry shortly",
                )
                .with_retry_after(5)
            }
            AuthError::SignupRequired => Self::new(
                S::FORBIDDEN,
                "signup_required",
                "Sign-up required",
                "no account is linked to this identity; sign up first (intent \"signup\")",
            ),
            AuthError::SignupDisabled => Self::new(
                S::FORBIDDEN,
                "signup_disabled",
                "Sign-up disabled",
                "this provider cannot create accounts; sign in another way and link it",
            ),
            AuthError::IdentityExists => Self::new(
                S::CONFLICT,
                "identity_exists",
                "Identity already linked",
                "this identity is already linked to an account",
            ),
            AuthError::LinkRequired => Self::new(
                S::CONFLICT,
                "link_required",
                "Link required",
                "an account uses this email address but has not verified it; sign in to it, verify the address, then sign in with this provider",
            ),
            AuthError::LinkNeedsVerifiedEmail => Self::new(
                S::FORBIDDEN,
                "link_requires_verified_email",
                "Email address not verified",
                "verify this account's email address before linking an identity to it",
            ),
            AuthError::ProviderEmailMissing => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "provider_email_missing",
                "Email address missing",
                "the provider shared no email address, which a new account needs; sign up another way and link this identity",
            ),
            AuthError::LastSignInMethod => Self::new(
                S::CONFLICT,
                "last_sign_in_method",
                "Last way to sign in",
                "this identity is the account's only way to sign in; set a password or link another identity first",
            ),
            AuthError::ProviderEmailUnverified => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "provider_email_unverified",
                "Email address not verified by the provider",
                "the provider has not verified this email address, which a new account needs; verify it there, or sign up another way and link this identity",
            ),
            AuthError::InvalidOAuthState => Self::new(
                S::BAD_REQUEST,
                "invalid_state",
                "Invalid state",
                "the sign-in request is unknown, expired or already used; start again",
            ),
            AuthError::InvalidMfaToken => Self::new(
                S::UNAUTHORIZED,
                "invalid_mfa_token",
                "Invalid MFA token",
                "the mfa_token is invalid, expired, used or had too many wrong codes; sign in again",
            ),
            AuthError::MfaAlreadyEnrolled => Self::new(
                S::CONFLICT,
                "mfa_already_enrolled",
                "Second factor already enrolled",
                "a factor of this kind is already active; remove it first",
            ),
            AuthError::MfaNotEnrolled => Self::new(
                S::CONFLICT,
                "mfa_not_enrolled",
                "No second factor",
                "the account has no active second factor",
            ),
            AuthError::InvalidPasskey => Self::new(
                S::UNAUTHORIZED,
                "invalid_passkey",
                "Passkey refused",
                "the passkey could not be verified, or the ceremony is unknown, used or expired",
            ),
            AuthError::PasskeyTaken => Self::new(
                S::CONFLICT,
                "passkey_taken",
                "Passkey already registered",
                "this passkey is already registered",
            ),
            AuthError::StepUpRequired => Self::new(
                S::FORBIDDEN,
                "step_up_required",
                "Second factor required",
                "verify a second factor (POST /api/v1/auth/mfa/verify) and retry with the new access token",
            ),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = Problem {
            kind: format!("urn:problem-type:auth:{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
        };
        let mut res = HttpResponse::build(self.status);
        res.content_type("application/problem+json");
        res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = match self.code {
                "invalid_token" => "Bearer error=\"invalid_token\"",
                _ => "Bearer",
            };
            res.append_header((header::WWW_AUTHENTICATE, challenge));
            if self.basic_challenge {
                res.append_header((header::WWW_AUTHENTICATE, "Basic realm=\"introspection\""));
            }
        }
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        res.json(body)
    }
}
