//! service-authentication: `/oauth/:provider`, `/oauth/:provider/callback`, `/oauth/link`,
//! `/login/magic`, `/login/magic/:token`.
//!
//! The browser flow is the core's session flow
//! ([`auth_core::social::SocialService::authorize_session`]):
//! state, nonce and the provider's PKCE verifier stay on the server, the provider returns
//! to this profile's own callback, which opens the session, sets the cookies and sends the
//! browser on to `redirect_to`.

use actix_web::http::StatusCode;
use actix_web::http::header::{LOCATION, SET_COOKIE};
use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::AuthError;
use auth_core::identity::ProviderCredential;
use auth_core::mfa::SignInOutcome;
use auth_core::social::{CallbackFailure, SessionCallback, SignInIntent};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    Reply, ServiceAuth, body, caller, cookie, error, service_error, sign_in_reply, text,
    tokens_body, user_json,
};
use crate::compat::{own_format, path};
use crate::extract::client_info;
use crate::problem::ApiError;
use crate::routes::auth::no_store;
use crate::views::IdentityView;

pub(super) fn configure(cfg: &mut web::ServiceConfig, data: &web::Data<ServiceAuth>) {
    let at = |route: &str| csrf_resource!(data, route);
    // `/oauth/link` before `/oauth/{provider}`, which would take it (no provider is `link`).
    cfg.service(at("/oauth/link").route(web::post().to(link)))
        .service(at("/oauth/{provider}").route(web::get().to(authorize)))
        .service(
            at("/oauth/{provider}/callback")
                .route(web::get().to(callback_get))
                .route(web::post().to(callback_post)),
        )
        .service(at("/login/magic").route(web::post().to(request_magic_link)))
        .service(at("/login/magic/{token}").route(web::get().to(magic_sign_in)));
}

/// The profile's answer to a failed social request: `{"error": message}`; what the backend
/// has no shape for (a rate limit, an unreachable provider) stays problem+json.
fn social_error(e: AuthError) -> actix_web::Error {
    match e {
        AuthError::UnknownProvider => error(StatusCode::NOT_FOUND, "Unknown provider"),
        AuthError::InvalidOAuthState => {
            error(StatusCode::BAD_REQUEST, "Invalid or expired sign-in state")
        }
        AuthError::InvalidIdToken(_) | AuthError::ProviderRejected(_) => error(
            StatusCode::UNAUTHORIZED,
            "The provider credential was refused",
        ),
        AuthError::SignupRequired => error(
            StatusCode::FORBIDDEN,
            "No account is linked to this identity",
        ),
        AuthError::SignupDisabled => error(
            StatusCode::FORBIDDEN,
            "This provider does not create accounts",
        ),
        AuthError::IdentityExists => error(
            StatusCode::CONFLICT,
            "This identity is linked to another account",
        ),
        AuthError::LinkRequired => error(
            StatusCode::CONFLICT,
            "An account uses this email but has not verified it: sign in and verify it first",
        ),
        AuthError::LinkNeedsVerifiedEmail => error(
            StatusCode::FORBIDDEN,
            "Verify your email address before linking a provider",
        ),
        AuthError::ProviderEmailMissing => error(
            StatusCode::BAD_REQUEST,
            "The provider gave no email address",
        ),
        AuthError::ProviderEmailUnverified => error(
            StatusCode::BAD_REQUEST,
            "The provider has not verified the email address",
        ),
        AuthError::InvalidRequest(message) => error(StatusCode::BAD_REQUEST, &message),
        other => service_error(other),
    }
}

/// `url` with `error=<code>` added to its query.
fn with_error(url: &str, code: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}error={code}")
}

/// The cookie that binds a browser flow to the browser that started it: a callback URL
/// carried to another browser (login CSRF) finds no matching cookie there and signs
/// nothing in.
fn flow_cookie_name(state: &ServiceAuth) -> String {
    format!("{}_oauth_state", state.cookie)
}

/// `Set-Cookie` of the flow cookie, scoped to the profile's `/oauth` routes. It is
/// `SameSite=None` when secure: Apple's `form_post` callback is a cross-site POST, on
/// which `Lax` cookies are not sent.
fn flow_cookie(state: &ServiceAuth, value: &str, max_age: i64) -> String {
    let same_site = if state.secure { "None; Secure" } else { "Lax" };
    format!(
        "{}={value}; Path={}; HttpOnly; SameSite={same_site}; Max-Age={max_age}",
        flow_cookie_name(state),
        path(&state.prefix, "/oauth")
    )
}

/// How long the flow cookie lives: as long as the core keeps the state.
const FLOW_COOKIE_SECS: i64 = 600;

#[derive(Deserialize)]
struct AuthorizeQuery {
    #[serde(default)]
    redirect_to: Option<String>,
    #[serde(default)]
    intent: Option<SignInIntent>,
}

/// `GET /oauth/:provider[?redirect_to=...]`: 302 to the provider. Without `redirect_to`
/// the browser returns to the app (`app.url`); either must be on the allow-list.
async fn authorize(
    state: web::Data<ServiceAuth>,
    req: HttpRequest,
    provider: web::Path<String>,
) -> Reply {
    let query: AuthorizeQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| error(StatusCode::BAD_REQUEST, "Invalid query"))?;
    let redirect_to = query
        .redirect_to
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| state.app_url.clone());
    let url = state
        .social
        .authorize_session(
            &provider,
            &redirect_to,
            query.intent.unwrap_or_default(),
            &client_info(&req),
        )
        .await
        .map_err(social_error)?;
    let flow_state = url
        .split_once('?')
        .and_then(|(_, query)| serde_urlencoded::from_str::<Vec<(String, String)>>(query).ok())
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "state"))
        .map(|(_, v)| v)
        .ok_or_else(|| {
            social_error(AuthError::internal(
                "the provider URL carries no state to bind the browser to",
            ))
        })?;
    Ok(own_format(
        HttpResponse::Found()
            .insert_header(no_store())
            .insert_header((
                SET_COOKIE,
                flow_cookie(&state, &flow_state, FLOW_COOKIE_SECS),
            ))
            .insert_header((LOCATION, url))
            .finish(),
    ))
}

/// What the provider sends back (query, or form for Apple's `form_post`).
#[derive(Deserialize)]
struct CallbackParams {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

async fn callback_get(
    state: web::Data<ServiceAuth>,
    req: HttpRequest,
    provider: web::Path<String>,
) -> Reply {
    let params: CallbackParams = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| error(StatusCode::BAD_REQUEST, "Invalid callback parameters"))?;
    callback(&state, &req, &provider, params).await
}

async fn callback_post(
    state: web::Data<ServiceAuth>,
    req: HttpRequest,
    provider: web::Path<String>,
    form: web::Bytes,
) -> Reply {
    let params: CallbackParams = serde_urlencoded::from_bytes(&form)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "Invalid callback parameters"))?;
    callback(&state, &req, &provider, params).await
}

/// The session opens here: the cookies are set on the redirect to `redirect_to`. Failures
/// after a valid state go back to `redirect_to` with `error=<code>` (the canonical codes);
/// an account with a second factor gets `error=mfa_required` and no session.
async fn callback(
    state: &ServiceAuth,
    req: &HttpRequest,
    provider: &str,
    params: CallbackParams,
) -> Reply {
    // Only the browser that started the flow may finish it; a foreign callback leaves the
    // state unspent.
    let bound = params
        .state
        .as_deref()
        .zip(cookie(req, &flow_cookie_name(state)))
        .is_some_and(|(given, kept)| given == kept);
    if !bound {
        return Err(social_error(AuthError::InvalidOAuthState));
    }
    let result = state
        .social
        .callback_session(
            provider,
            params.state.as_deref(),
            params.code.as_deref(),
            params.error.as_deref(),
            client_info(req),
        )
        .await;
    let mut res = HttpResponse::Found();
    res.insert_header(no_store());
    res.append_header((SET_COOKIE, flow_cookie(state, "", 0)));
    let location = match result {
        Ok(SessionCallback {
            outcome: SignInOutcome::SignedIn(t),
            redirect_to,
        }) => {
            state.set_cookies(&mut res, &t);
            redirect_to
        }
        Ok(SessionCallback {
            outcome: SignInOutcome::MfaRequired(_),
            redirect_to,
        }) => with_error(&redirect_to, "mfa_required"),
        Err(CallbackFailure {
            redirect_to: Some(url),
            error,
        }) => with_error(&url, ApiError::from(error).code()),
        Err(CallbackFailure {
            redirect_to: None,
            error,
        }) => return Err(social_error(error)),
    };
    res.insert_header((LOCATION, location));
    Ok(own_format(res.finish()))
}

/// The provider credential of a `/oauth/link` body: exactly one of `id_token` (with an
/// optional `nonce`) and `access_token` (with `access_token_secret` for OAuth 1.0a).
fn credential(map: &Map<String, Value>) -> Result<ProviderCredential, actix_web::Error> {
    let secret = |field: &str| text(map, field).map(SecretString::from);
    match (secret("id_token"), secret("access_token")) {
        (Some(id_token), None) if !map.contains_key("access_token_secret") => {
            Ok(ProviderCredential::IdToken {
                id_token,
                nonce: text(map, "nonce"),
            })
        }
        (None, Some(access_token)) if !map.contains_key("nonce") => {
            Ok(ProviderCredential::AccessToken {
                access_token,
                access_token_secret: secret("access_token_secret"),
            })
        }
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "Exactly one of id_token and access_token is required",
        )),
    }
}

/// `POST /oauth/link` `{provider, id_token | access_token[, access_token_secret]}` with the
/// JWT: 200 the user with its identities.
async fn link(state: web::Data<ServiceAuth>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let caller = caller(&state, &req).await?;
    let map = body(&bytes, &["provider"])?;
    let provider = text(&map, "provider").unwrap_or_default();
    let credential = credential(&map)?;
    let user = state
        .social
        .link(&caller, &provider, &credential, client_info(&req))
        .await
        .map_err(social_error)?;
    let identities: Vec<IdentityView> = state
        .social
        .identities_of(user.id)
        .await
        .map_err(service_error)?
        .into_iter()
        .map(IdentityView::from)
        .collect();
    let mut view = user_json(&user);
    view["identities"] = json!(identities);
    Ok(own_format(HttpResponse::Ok().json(view)))
}

/// `POST /login/magic` `{email, redirect_to?}`: the same answer for every address.
async fn request_magic_link(
    state: web::Data<ServiceAuth>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> Reply {
    let map = body(&bytes, &["email"])?;
    state
        .auth
        .mailbox()
        .request_magic_link(
            &text(&map, "email").unwrap_or_default(),
            text(&map, "redirect_to"),
            &client_info(&req),
            None,
        )
        .await
        .map_err(service_error)?;
    Ok(own_format(HttpResponse::Ok().json(
        json!({"message": "If the address can sign in, a sign-in link is on its way"}),
    )))
}

/// `GET /login/magic/:token`: consumes the token; the `/login` answer with the cookies,
/// plus the `redirect_to` the link was asked with.
async fn magic_sign_in(
    state: web::Data<ServiceAuth>,
    req: HttpRequest,
    token: web::Path<String>,
) -> Reply {
    let signed = state
        .auth
        .mailbox()
        .verify_magic_link(&SecretString::from(token.into_inner()), client_info(&req))
        .await
        .map_err(service_error)?;
    match (signed.outcome, signed.redirect_to) {
        (SignInOutcome::SignedIn(t), Some(redirect_to)) => {
            let mut res = HttpResponse::Ok();
            res.insert_header(no_store());
            state.set_cookies(&mut res, &t);
            let mut body = tokens_body(&t);
            body["redirect_to"] = json!(redirect_to);
            Ok(own_format(res.json(body)))
        }
        (outcome, _) => Ok(sign_in_reply(&state, outcome, true)),
    }
}
