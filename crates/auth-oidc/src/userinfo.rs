//! OAuth2 providers without ID tokens: the user comes from their API with the access token.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use auth_core::identity::{
    AuthorizationRequest, CodeExchange, ExternalIdentity, IdentityProvider, ProviderCredential,
    ProviderError,
};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;

use crate::{ProviderConfig, http_client, join, json_answer, oauth1, with_query};

/// Endpoints of an OAuth2 user-info provider, presets filled in.
struct Endpoints {
    authorize: String,
    token: String,
    api: String,
    scopes: Vec<String>,
}

fn endpoints(config: &ProviderConfig, preset: [&str; 3], scopes: &[&str]) -> Endpoints {
    let pick = |v: &Option<String>, p: &str| v.clone().unwrap_or_else(|| p.to_owned());
    Endpoints {
        authorize: pick(&config.authorization_endpoint, preset[0]),
        token: pick(&config.token_endpoint, preset[1]),
        api: pick(&config.api_base_url, preset[2]),
        scopes: if config.scopes.is_empty() {
            scopes.iter().map(|s| (*s).to_owned()).collect()
        } else {
            config.scopes.clone()
        },
    }
}

/// The configured client secret (required by the providers that use it), or empty.
fn client_secret(config: &ProviderConfig) -> String {
    config
        .client_secret
        .as_ref()
        .map(|s| s.expose_secret().to_owned())
        .unwrap_or_default()
}

fn access_token(
    credential: &ProviderCredential,
) -> Result<(&SecretString, Option<&SecretString>), ProviderError> {
    match credential {
        ProviderCredential::AccessToken {
            access_token,
            access_token_secret,
        } => Ok((access_token, access_token_secret.as_ref())),
        ProviderCredential::IdToken { .. } => {
            Err(ProviderError::Unsupported("sign-in with an ID token"))
        }
    }
}

fn authorization_url(
    config: &ProviderConfig,
    endpoints: &Endpoints,
    request: &AuthorizationRequest,
) -> Result<String, ProviderError> {
    let client_id = config.client_ids.first().cloned().unwrap_or_default();
    let scope = endpoints.scopes.join(" ");
    with_query(
        &endpoints.authorize,
        &[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", request.redirect_uri.as_str()),
            ("scope", scope.as_str()),
            ("state", request.state.as_str()),
            ("code_challenge", request.pkce_challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    error: Option<String>,
}

/// Authorization code (+ PKCE) for an access token. GitHub answers errors with 200 and an
/// `error` field, hence the check of both.
async fn exchange_for_access_token(
    http: &reqwest::Client,
    config: &ProviderConfig,
    token_endpoint: &str,
    exchange: &CodeExchange,
    basic_auth: bool,
) -> Result<SecretString, ProviderError> {
    let client_id = config.client_ids.first().cloned().unwrap_or_default();
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", exchange.code.clone()),
        ("redirect_uri", exchange.redirect_uri.clone()),
        (
            "code_verifier",
            exchange.pkce_verifier.expose_secret().to_owned(),
        ),
    ];
    let mut request = http
        .post(token_endpoint)
        .header(reqwest::header::ACCEPT, "application/json");
    let secret = config
        .client_secret
        .as_ref()
        .map(|s| s.expose_secret().to_owned());
    match secret {
        Some(secret) if basic_auth => request = request.basic_auth(&client_id, Some(secret)),
        Some(secret) => {
            form.push(("client_id", client_id));
            form.push(("client_secret", secret));
        }
        None => form.push(("client_id", client_id)),
    }
    let answer: TokenAnswer =
        json_answer(request.form(&form).send().await, "token endpoint").await?;
    match (answer.access_token, answer.error) {
        (Some(token), None) => Ok(SecretString::from(token)),
        (_, error) => Err(ProviderError::Rejected(format!(
            "token endpoint: {}",
            error.unwrap_or_else(|| "no access_token".into())
        ))),
    }
}

// ---- GitHub ----------------------------------------------------------------------------

/// GitHub: `GET /user` and `GET /user/emails` (the primary verified address).
pub struct Github {
    config: ProviderConfig,
    endpoints: Endpoints,
    http: reqwest::Client,
}

impl Github {
    /// Build with the GitHub presets; the client secret is required (the code exchange and
    /// the check of app-supplied tokens authenticate with it).
    pub fn new(config: ProviderConfig) -> Result<Self, String> {
        if config.client_secret.is_none() {
            return Err(format!(
                "providers.{}.client_secret: the GitHub OAuth app's client secret is required",
                config.id
            ));
        }
        let endpoints = endpoints(
            &config,
            [
                "https://github.com/login/oauth/authorize",
                "https://github.com/login/oauth/access_token",
                "https://api.github.com",
            ],
            &["read:user", "user:email"],
        );
        Ok(Self {
            http: http_client(config.timeout)?,
            config,
            endpoints,
        })
    }

    /// A token an app hands us must have been issued to one of our client ids: GitHub's
    /// "check a token" (`POST /applications/{client_id}/token`, HTTP Basic with the client
    /// credentials) answers 404 for a token of any other app. Answers the token's user id.
    async fn issued_to_us(&self, token: &str) -> Result<u64, ProviderError> {
        #[derive(Deserialize)]
        struct Check {
            app: App,
            user: Owner,
        }
        #[derive(Deserialize)]
        struct App {
            client_id: String,
        }
        #[derive(Deserialize)]
        struct Owner {
            id: u64,
        }
        let secret = client_secret(&self.config);
        for client_id in &self.config.client_ids {
            let response = self
                .http
                .post(join(
                    &self.endpoints.api,
                    &format!("/applications/{client_id}/token"),
                ))
                .basic_auth(client_id, Some(&secret))
                .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
                .json(&serde_json::json!({ "access_token": token }))
                .send()
                .await;
            // 404: not a live token of this app; 422: not a token at all.
            if let Ok(r) = &response
                && matches!(r.status().as_u16(), 404 | 422)
            {
                continue;
            }
            let check: Check = json_answer(response, "GitHub token check").await?;
            if check.app.client_id == *client_id {
                return Ok(check.user.id);
            }
        }
        Err(ProviderError::Rejected(
            "the access token is invalid or was issued to another app".into(),
        ))
    }

    /// The identity behind an app-supplied token: checked to be ours first.
    async fn app_token_user(&self, token: &str) -> Result<ExternalIdentity, ProviderError> {
        let owner = self.issued_to_us(token).await?;
        let identity = self.user(token).await?;
        if identity.subject != owner.to_string() {
            return Err(ProviderError::Rejected(
                "the token check and /user name different users".into(),
            ));
        }
        Ok(identity)
    }

    async fn user(&self, token: &str) -> Result<ExternalIdentity, ProviderError> {
        #[derive(Deserialize)]
        struct User {
            id: u64,
            login: String,
            name: Option<String>,
            email: Option<String>,
            avatar_url: Option<String>,
        }
        #[derive(Deserialize)]
        struct Email {
            email: String,
            primary: bool,
            verified: bool,
        }
        let get = |path: &str| {
            self.http
                .get(join(&self.endpoints.api, path))
                .bearer_auth(token)
                .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
                .send()
        };
        let user: User = json_answer(get("/user").await, "GitHub /user").await?;
        let emails: Vec<Email> = json_answer(get("/user/emails").await, "GitHub /user/emails")
            .await
            .unwrap_or_default();
        let verified = emails
            .iter()
            .find(|e| e.primary && e.verified)
            .or_else(|| emails.iter().find(|e| e.verified));
        let (email, email_verified) = match verified {
            Some(e) => (Some(e.email.clone()), true),
            None => (user.email.clone(), false),
        };
        Ok(ExternalIdentity {
            provider: self.config.id.clone(),
            subject: user.id.to_string(),
            email,
            email_verified,
            name: user.name.or(Some(user.login)),
            avatar_url: user.avatar_url,
        })
    }
}

/// The [`IdentityProvider`] of an OAuth2 provider known by its user API: an access token
/// an app hands in goes through `$app_token` (which proves it was issued to our app), the
/// browser flow's token (from our own code exchange) through `user`.
macro_rules! user_api_provider {
    ($provider:ty, $app_token:ident) => {
        #[async_trait]
        impl IdentityProvider for $provider {
            async fn verify(
                &self,
                credential: &ProviderCredential,
            ) -> Result<ExternalIdentity, ProviderError> {
                let (token, _) = access_token(credential)?;
                self.$app_token(token.expose_secret()).await
            }

            async fn authorization_url(
                &self,
                request: &AuthorizationRequest,
            ) -> Result<String, ProviderError> {
                authorization_url(&self.config, &self.endpoints, request)
            }

            async fn exchange_code(
                &self,
                exchange: &CodeExchange,
            ) -> Result<ExternalIdentity, ProviderError> {
                let token = exchange_for_access_token(
                    &self.http,
                    &self.config,
                    &self.endpoints.token,
                    exchange,
                    false,
                )
                .await?;
                self.user(token.expose_secret()).await
            }
        }
    };
}

user_api_provider!(Github, app_token_user);

// ---- Facebook --------------------------------------------------------------------------

/// Facebook: `debug_token` proves the token was issued to our app, then Graph `/me` with
/// `appsecret_proof`.
pub struct Facebook {
    config: ProviderConfig,
    endpoints: Endpoints,
    http: reqwest::Client,
}

/// `appsecret_proof`: hex HMAC-SHA256 of the access token keyed with the app secret.
pub fn appsecret_proof(access_token: &str, app_secret: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(access_token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl Facebook {
    /// Build with the Facebook presets; the app secret is required.
    pub fn new(config: ProviderConfig) -> Result<Self, String> {
        if config.client_secret.is_none() {
            return Err(format!(
                "providers.{}.client_secret: the Facebook app secret is required",
                config.id
            ));
        }
        let endpoints = endpoints(
            &config,
            [
                "https://www.facebook.com/v19.0/dialog/oauth",
                "https://graph.facebook.com/v19.0/oauth/access_token",
                "https://graph.facebook.com/v19.0",
            ],
            &["email", "public_profile"],
        );
        Ok(Self {
            http: http_client(config.timeout)?,
            config,
            endpoints,
        })
    }

    async fn user(&self, token: &str) -> Result<ExternalIdentity, ProviderError> {
        #[derive(Deserialize)]
        struct Debug {
            data: DebugData,
        }
        #[derive(Deserialize)]
        struct DebugData {
            app_id: Option<String>,
            is_valid: Option<bool>,
            user_id: Option<String>,
        }
        #[derive(Deserialize)]
        struct Me {
            id: String,
            name: Option<String>,
            email: Option<String>,
            picture: Option<Picture>,
        }
        #[derive(Deserialize)]
        struct Picture {
            data: PictureData,
        }
        #[derive(Deserialize)]
        struct PictureData {
            url: Option<String>,
        }
        let secret = client_secret(&self.config);
        let app_id = self.config.client_ids.first().cloned().unwrap_or_default();
        let app_token = format!("{app_id}|{secret}");
        let debug: Debug = json_answer(
            self.http
                .get(join(&self.endpoints.api, "/debug_token"))
                .query(&[("input_token", token), ("access_token", app_token.as_str())])
                .send()
                .await,
            "Facebook debug_token",
        )
        .await?;
        let ours = debug
            .data
            .app_id
            .as_deref()
            .is_some_and(|id| self.config.client_ids.iter().any(|c| c == id));
        if debug.data.is_valid != Some(true) || !ours || debug.data.user_id.is_none() {
            return Err(ProviderError::Rejected(
                "the access token is invalid or was issued to another app".into(),
            ));
        }
        let proof = appsecret_proof(token, &secret);
        let me: Me = json_answer(
            self.http
                .get(join(&self.endpoints.api, "/me"))
                .query(&[
                    ("fields", "id,name,email,picture"),
                    ("access_token", token),
                    ("appsecret_proof", proof.as_str()),
                ])
                .send()
                .await,
            "Facebook /me",
        )
        .await?;
        if debug.data.user_id.as_deref() != Some(me.id.as_str()) {
            return Err(ProviderError::Rejected(
                "token and user do not match".into(),
            ));
        }
        Ok(ExternalIdentity {
            provider: self.config.id.clone(),
            subject: me.id,
            // Graph only returns an address the user confirmed with Facebook.
            email_verified: me.email.is_some(),
            email: me.email,
            name: me.name,
            avatar_url: me.picture.and_then(|p| p.data.url),
        })
    }
}

// Facebook's `user` proves the app with `debug_token` on every path.
user_api_provider!(Facebook, user);

// ---- X / Twitter -----------------------------------------------------------------------

/// X/Twitter: OAuth 2.0 user tokens against `/2/users/me`; OAuth 1.0a user tokens (with
/// their secret) against `/1.1/account/verify_credentials.json`, signed with the consumer
/// key and secret.
pub struct Twitter {
    config: ProviderConfig,
    endpoints: Endpoints,
    http: reqwest::Client,
}

impl Twitter {
    /// Build with the X presets.
    pub fn new(config: ProviderConfig) -> Result<Self, String> {
        let endpoints = endpoints(
            &config,
            [
                "https://x.com/i/oauth2/authorize",
                "https://api.x.com/2/oauth2/token",
                "https://api.x.com",
            ],
            &["users.read", "tweet.read"],
        );
        Ok(Self {
            http: http_client(config.timeout)?,
            config,
            endpoints,
        })
    }

    async fn user_v2(&self, token: &str) -> Result<ExternalIdentity, ProviderError> {
        #[derive(Deserialize)]
        struct Answer {
            data: Data,
        }
        #[derive(Deserialize)]
        struct Data {
            id: String,
            name: Option<String>,
            username: Option<String>,
            profile_image_url: Option<String>,
            confirmed_email: Option<String>,
        }
        let answer: Answer = json_answer(
            self.http
                .get(join(&self.endpoints.api, "/2/users/me"))
                .query(&[(
                    "user.fields",
                    "id,name,username,profile_image_url,confirmed_email",
                )])
                .bearer_auth(token)
                .send()
                .await,
            "X users/me",
        )
        .await?;
        let d = answer.data;
        Ok(ExternalIdentity {
            provider: self.config.id.clone(),
            subject: d.id,
            email_verified: d.confirmed_email.is_some(),
            email: d.confirmed_email,
            name: d.name.or(d.username),
            avatar_url: d.profile_image_url,
        })
    }

    async fn user_v1(
        &self,
        token: &str,
        token_secret: &str,
    ) -> Result<ExternalIdentity, ProviderError> {
        #[derive(Deserialize)]
        struct Answer {
            id_str: String,
            name: Option<String>,
            screen_name: Option<String>,
            email: Option<String>,
            profile_image_url_https: Option<String>,
        }
        let (Some(consumer_key), Some(consumer_secret)) =
            (&self.config.consumer_key, &self.config.consumer_secret)
        else {
            return Err(ProviderError::Unsupported(
                "OAuth 1.0a tokens (no consumer key configured)",
            ));
        };
        let url = join(&self.endpoints.api, "/1.1/account/verify_credentials.json");
        let query = vec![
            ("include_email".to_owned(), "true".to_owned()),
            ("skip_status".to_owned(), "true".to_owned()),
        ];
        let nonce = hex::encode(
            getrandom_bytes()
                .map_err(|e| ProviderError::Unavailable(format!("randomness: {e}")))?,
        );
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let header = oauth1::authorization_header(
            "GET",
            &url,
            &query,
            &oauth1::Credentials {
                consumer_key,
                consumer_secret: consumer_secret.expose_secret(),
                token,
                token_secret,
            },
            &nonce,
            timestamp,
        );
        let answer: Answer = json_answer(
            self.http
                .get(&url)
                .query(&query)
                .header(reqwest::header::AUTHORIZATION, header)
                .send()
                .await,
            "X verify_credentials",
        )
        .await?;
        Ok(ExternalIdentity {
            provider: self.config.id.clone(),
            subject: answer.id_str,
            // X returns the address only when the user verified it.
            email_verified: answer.email.is_some(),
            email: answer.email,
            name: answer.name.or(answer.screen_name),
            avatar_url: answer.profile_image_url_https,
        })
    }
}

fn getrandom_bytes() -> Result<[u8; 16], getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

#[async_trait]
impl IdentityProvider for Twitter {
    async fn verify(
        &self,
        credential: &ProviderCredential,
    ) -> Result<ExternalIdentity, ProviderError> {
        match access_token(credential)? {
            (token, Some(secret)) => {
                self.user_v1(token.expose_secret(), secret.expose_secret())
                    .await
            }
            // X offers no check of which client an OAuth 2.0 token was issued to: a token
            // another app obtained would sign its user in here. Refused unless the operator
            // accepts that (the redirect flow and OAuth 1.0a tokens are bound to our client).
            (_, None) if !self.config.accept_unbound_access_tokens => {
                Err(ProviderError::Rejected(format!(
                    "X OAuth 2.0 access tokens from apps are refused (providers.{}.accept_unbound_access_tokens is off)",
                    self.config.id
                )))
            }
            (token, None) => self.user_v2(token.expose_secret()).await,
        }
    }

    async fn authorization_url(
        &self,
        request: &AuthorizationRequest,
    ) -> Result<String, ProviderError> {
        authorization_url(&self.config, &self.endpoints, request)
    }

    async fn exchange_code(
        &self,
        exchange: &CodeExchange,
    ) -> Result<ExternalIdentity, ProviderError> {
        let token = exchange_for_access_token(
            &self.http,
            &self.config,
            &self.endpoints.token,
            exchange,
            true,
        )
        .await?;
        self.user_v2(token.expose_secret()).await
    }
}

#[cfg(test)]
mod tests {
    use super::appsecret_proof;

    /// HMAC-SHA256 test case 2 of RFC 4231 (key "Jefe"), as Facebook's proof is built.
    #[test]
    fn appsecret_proof_is_hex_hmac_sha256_of_the_token() {
        assert_eq!(
            appsecret_proof("what do ya want for nothing?", "Jefe"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
