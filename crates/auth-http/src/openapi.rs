//! The OpenAPI 3.1 document of the API, generated from the route handlers' `#[utoipa::path]`
//! attributes (the list of handlers is in `routes::docs`). Served at `/api/v1/openapi.json`;
//! a copy is checked in as `docs/openapi.json` and a test keeps the two equal.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OpenApi as Document, RefOr, Response, ResponseBuilder,
};
use utoipa::{Modify, OpenApi as _, ToSchema};

use crate::routes::docs::ApiDoc;
use crate::views::TokenResponse;

/// Media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document: every error response of the API.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDoc {
    /// `urn:problem-type:auth:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short human summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// A human explanation of this occurrence.
    pub detail: String,
    /// The stable, machine-readable error code (`invalid_request`, `invalid_credentials` ...).
    pub code: String,
}

/// `{"status": "accepted"}`: answered whether or not the account exists.
#[derive(serde::Serialize, ToSchema)]
pub struct Accepted {
    /// `accepted`, or `verification_sent` after a sign-up that waits for email confirmation.
    pub status: String,
}

/// RFC 7662 introspection answer.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Introspection)]
pub struct IntrospectionDoc {
    /// `false` for an unknown, expired or revoked token (no other member then).
    pub active: bool,
    /// `access_token` or `refresh_token`.
    pub token_type: Option<String>,
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    pub iss: Option<String>,
    pub aud: Option<String>,
    pub jti: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub roles: Option<Vec<String>>,
    pub amr: Option<Vec<String>>,
    pub aal: Option<String>,
}
/// A JSON Web Key (RFC 7517), public members only.
#[derive(serde::Serialize, ToSchema)]
pub struct Jwk {
    /// `OKP` (Ed25519), `EC` (P-256), `RSA` or `oct` is never published.
    pub kty: String,
    pub kid: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: Option<String>,
    /// `EdDSA`, `ES256` or `RS256`.
    pub alg: Option<String>,
    /// `Ed25519` or `P-256`.
    pub crv: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
    pub n: Option<String>,
    pub e: Option<String>,
}

/// A JWK Set (RFC 7517 section 5).
#[derive(serde::Serialize, ToSchema)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// The `Authorization: Bearer` access token and the HTTP Basic client credentials of
/// introspection.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".into());
        bearer.description = Some(
            "An access token from a token response (`access_token`), as `Authorization: Bearer <token>`."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description = Some(
            "Introspection client credentials (`introspection.clients`), RFC 6749 section 2.3.1."
                .into(),
        );
        components.add_security_scheme("client_basic", SecurityScheme::Http(basic));
    }
}

/// A problem+json response with the given description (the codes it may carry).
pub fn problem_response(description: &str, retry_after: bool) -> Response {
    let mut builder = ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                "Problem",
            ))))
            .build(),
    );
    if retry_after {
        builder = builder.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::Integer),
                )
                .description(Some("Seconds to wait before trying again."))
                .build(),
        );
    }
    builder.build()
}

/// The error responses every operation can give, added where a route does not describe them
/// itself: 400/413 for a body, 401 for a bearer route, 500 and 503 everywhere.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut Document) {
        for item in openapi.paths.paths.values_mut() {
            let operations: [&mut Option<Operation>; 5] = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in operations.into_iter().flatten() {
                let has_body = op.request_body.is_some();
                let bearer = op.security.as_ref().is_some_and(|s| {
                    serde_json::to_value(s)
                        .map(|v| v.to_string().contains("\"bearer\""))
                        .unwrap_or(false)
                });
                let responses = &mut op.responses.responses;
                let mut add = |status: &str, response: Response| {
                    responses
                        .entry(status.to_owned())
                        .or_insert(RefOr::T(response));
                };
                if has_body {
                    add(
                        "400",
                        problem_response(
                            "`invalid_request`: malformed JSON, wrong content type, missing or mistyped fields.",
                            false,
                        ),
                    );
                    add(
                        "413",
                        problem_response(
                            "`payload_too_large`: the body exceeds `server.max_body_bytes`.",
                            false,
                        ),
                    );
                }
                if bearer {
                    add(
                        "401",
                        problem_response(
                            "`invalid_token`: the bearer token is missing, invalid, expired or its session was revoked (`WWW-Authenticate: Bearer`).",
                            false,
                        ),
                    );
                }
                add(
                    "500",
                    problem_response("`internal_error`: an unexpected error.", false),
                );
                add(
                    "503",
                    problem_response(
                        "`unavailable`: a dependency (the database) does not answer; `overloaded`: the password hashing queue is full. Retry after `Retry-After` seconds.",
                        true,
                    ),
                );
            }
        }
        // Sorted keys keep the served document and the checked-in copy byte for byte equal.
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let sorted: BTreeMap<_, _> = std::mem::take(&mut op.responses.responses)
                    .into_iter()
                    .collect();
                op.responses.responses = sorted.into_iter().collect();
            }
        }
    }
}

/// Title, description and modifiers of the document.
pub fn build() -> Document {
    let mut doc = ApiDoc::openapi();
    SecuritySchemes.modify(&mut doc);
    CommonResponses.modify(&mut doc);
    doc
}

/// What the derive cannot say: an optional body is absent, not `null`; the one-time code
/// routes take exactly one of `email` or `phone`.
fn refine(doc: &mut serde_json::Value) {
    use serde_json::{Value, json};
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut() {
                let Some(body) = op.get_mut("requestBody") else {
                    continue;
                };
                if body.get("required") == Some(&Value::Bool(true)) {
                    continue;
                }
                let Some(content) = body.get_mut("content").and_then(Value::as_object_mut) else {
                    continue;
                };
                for media in content.values_mut() {
                    let Some(schema) = media.get_mut("schema") else {
                        continue;
                    };
                    let inner = schema
                        .get("oneOf")
                        .and_then(Value::as_array)
                        .filter(|alts| alts.len() == 2 && alts[0] == json!({"type": "null"}))
                        .map(|alts| alts[1].clone());
                    if let Some(inner) = inner {
                        *schema = inner;
                    }
                }
            }
        }
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for name in ["OtpSendBody", "OtpVerifyBody"] {
            if let Some(schema) = schemas.get_mut(name).and_then(Value::as_object_mut) {
                schema.insert(
                    "oneOf".into(),
                    json!([{"required": ["email"]}, {"required": ["phone"]}]),
                );
            }
        }
    }
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(build()).unwrap_or_default();
    refine(&mut doc);
    let mut text =
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
});

/// The document as served (pretty JSON, ending with a newline), built once.
pub fn document_json() -> &'static str {
    &DOCUMENT
}

/// The second step a sign-in needs when the account has multi-factor authentication:
/// `POST /api/v1/auth/mfa/verify` with `mfa_token` and a code.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = MfaChallenge)]
pub struct MfaChallengeDoc {
    /// Always `true`.
    pub mfa_required: bool,
    /// Short-lived, single-use token of this sign-in attempt.
    pub mfa_token: String,
    /// The second factors the account can answer with (`totp`, `sms`, `recovery_code`).
    pub factors: Vec<String>,
    /// Expiry of `mfa_token`, seconds since the epoch.
    pub expires_at: i64,
}

/// The answer of a first factor: tokens, or the multi-factor challenge.
#[derive(serde::Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = SignInResult)]
pub enum SignInResultDoc {
    /// Signed in.
    Tokens(TokenResponse),
    /// A second factor is required.
    MfaRequired(MfaChallengeDoc),
}

/// `{"recovery_codes": [...]}`: shown once; each code works once.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = RecoveryCodes)]
pub struct RecoveryCodesDoc {
    pub recovery_codes: Vec<String>,
}

/// A pending TOTP factor: its secret, `otpauth://` URI and QR code (shown once).
#[derive(serde::Serialize, ToSchema)]
#[schema(as = TotpEnrollment)]
pub struct TotpEnrollmentDoc {
    pub factor_id: String,
    /// `totp`.
    pub kind: String,
    /// Base32 secret for manual entry.
    pub secret: String,
    pub otpauth_uri: String,
    /// An SVG QR code of `otpauth_uri` as a data URI.
    pub qr_code: String,
    /// Until when the factor can be activated, seconds since the epoch.
    pub expires_at: i64,
}

/// A pending SMS factor; a code went to the number.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = SmsEnrollment)]
pub struct SmsEnrollmentDoc {
    pub factor_id: String,
    /// `sms`.
    pub kind: String,
    /// The number, masked.
    pub phone: String,
}

/// A step-up: a new access token at `aal2` for the same session (the refresh token is
/// unchanged).
#[derive(serde::Serialize, ToSchema)]
#[schema(as = StepUpResponse)]
pub struct StepUpDoc {
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    pub expires_in: i64,
    pub expires_at: i64,
    pub user: crate::views::UserView,
}

/// A WebAuthn ceremony: pass `options` to `navigator.credentials.create()` or `.get()`,
/// then send the result with `ceremony_id` to the matching `finish` route.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = PasskeyCeremony)]
pub struct CeremonyDoc {
    pub ceremony_id: String,
    /// `PublicKeyCredentialCreationOptions` or `PublicKeyCredentialRequestOptions` (JSON).
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

/// `{"status": "sent"}`
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Sent)]
pub struct SentDoc {
    pub status: String,
}
