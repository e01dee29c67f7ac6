use auth_core::AuthError;
use auth_core::jwt::{
    AccessClaims, JwksVerifier, JwtIssuer, KeySet, SigningAlgorithm, TokenIssuer,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, TimeZone, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::support::{AUDIENCE, ISSUER, ed25519_issuer, key_pem};

fn claims(now: i64) -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: "0190f0a0-0000-7000-8000-000000000001".into(),
        sid: "0190f0a0-0000-7000-8000-000000000002".into(),
        iat: now,
        nbf: now,
        exp: now + 900,
        jti: "j".into(),
        email: "a@example.com".into(),
        email_verified: false,
        name: None,
        roles: vec![],
        amr: vec!["pwd".into()],
        aal: "aal1".into(),
    }
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

fn rejection(issuer: &dyn TokenIssuer, token: &str) -> &'static str {
    match issuer.verify(token, now()) {
        Err(AuthError::InvalidToken(reason)) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn every_algorithm_signs_and_verifies_with_typ_and_kid() {
    let cases = [
        (
            SigningAlgorithm::EdDSA,
            "ed25519-private.pem",
            Algorithm::EdDSA,
        ),
        (
            SigningAlgorithm::ES256,
            "es256-private.pem",
            Algorithm::ES256,
        ),
        (
            SigningAlgorithm::RS256,
            "rs256-private.pem",
            Algorithm::RS256,
        ),
    ];
    for (alg, file, expected) in cases {
        let keys = KeySet::from_private_pem(alg, &key_pem(file), None).unwrap();
        let kid = keys.signing_kid().to_owned();
        let issuer = JwtIssuer::new(keys, ISSUER, AUDIENCE, 0);
        let token = issuer.sign(&claims(now().timestamp())).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, expected);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(kid.as_str()));
        assert_eq!(
            issuer.verify(&token, now()).unwrap(),
            claims(now().timestamp())
        );
        // The JWKS publishes exactly the public key, under the same kid.
        let jwks = serde_json::to_value(issuer.jwks()).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
        assert!(
            jwks["keys"][0].get("d").is_none(),
            "private part leaked into the JWKS"
        );
    }
}

#[test]
fn a_configured_public_key_must_match_the_private_key() {
    let ok = KeySet::from_private_pem(
        SigningAlgorithm::RS256,
        &key_pem("rs256-private.pem"),
        Some(&key_pem("rs256-public.pem")),
    );
    assert!(ok.is_ok());
    let err = KeySet::from_private_pem(
        SigningAlgorithm::EdDSA,
        &key_pem("ed25519-private.pem"),
        Some(&key_pem("ed25519-old-public.pem")),
    );
    assert!(err.unwrap_err().message().contains("does not match"));
    let wrong_kind =
        KeySet::from_private_pem(SigningAlgorithm::ES256, &key_pem("rs256-private.pem"), None);
    assert!(wrong_kind.is_err());
}

#[test]
fn hs256_needs_32_bytes_and_publishes_no_key() {
    assert!(KeySet::from_hs256_secret(b"too short").is_err());
    let issuer = JwtIssuer::new(
        KeySet::from_hs256_secret(&[7u8; 32]).unwrap(),
        ISSUER,
        AUDIENCE,
        0,
    );
    assert!(issuer.jwks().keys.is_empty());
    let token = issuer.sign(&claims(now().timestamp())).unwrap();
    assert!(issuer.verify(&token, now()).is_ok());
}

#[test]
fn rotation_accepts_tokens_of_the_previous_key_and_signs_with_the_new_one() {
    let old = ed25519_issuer_from("ed25519-old-private.pem");
    let old_token = old.sign(&claims(now().timestamp())).unwrap();
    let mut keys = KeySet::from_private_pem(
        SigningAlgorithm::EdDSA,
        &key_pem("ed25519-private.pem"),
        None,
    )
    .unwrap();
    keys.add_verification_key(SigningAlgorithm::EdDSA, &key_pem("ed25519-old-public.pem"))
        .unwrap();
    let new = JwtIssuer::new(keys, ISSUER, AUDIENCE, 0);
    assert!(new.verify(&old_token, now()).is_ok());
    assert_eq!(new.jwks().keys.len(), 2);
    let new_token = new.sign(&claims(now().timestamp())).unwrap();
    assert!(matches!(
        old.verify(&new_token, now()),
        Err(AuthError::InvalidToken("unknown key id"))
    ));
}

fn ed25519_issuer_from(file: &str) -> JwtIssuer {
    JwtIssuer::new(
        KeySet::from_private_pem(SigningAlgorithm::EdDSA, &key_pem(file), None).unwrap(),
        ISSUER,
        AUDIENCE,
        0,
    )
}

fn forge(header: serde_json::Value, payload: &AccessClaims, signature: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap());
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[test]
fn alg_none_is_rejected() {
    let issuer = ed25519_issuer();
    let kid = issuer.jwks().keys[0].common.key_id.clone().unwrap();
    let token = forge(
        serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
        &claims(now().timestamp()),
        b"",
    );
    assert_eq!(rejection(&issuer, &token), "malformed token");
    let token = token.trim_end_matches('.').to_owned() + ".";
    assert_eq!(rejection(&issuer, &token), "malformed token");
}

#[test]
fn hs256_signed_with_the_public_key_is_rejected() {
    // Classic key confusion: an attacker signs with HMAC using the published public key.
    for (alg, private, public) in [
        (
            SigningAlgorithm::RS256,
            "rs256-private.pem",
            "rs256-public.pem",
        ),
        (
            SigningAlgorithm::EdDSA,
            "ed25519-private.pem",
            "ed25519-public.pem",
        ),
    ] {
        let keys = KeySet::from_private_pem(alg, &key_pem(private), None).unwrap();
        let kid = keys.signing_kid().to_owned();
        let issuer = JwtIssuer::new(keys, ISSUER, AUDIENCE, 0);
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(kid);
        let forged = jsonwebtoken::encode(
            &header,
            &claims(now().timestamp()),
            &EncodingKey::from_secret(&key_pem(public)),
        )
        .unwrap();
        assert_eq!(
            rejection(&issuer, &forged),
            "algorithm not allowed for this key"
        );
    }
}

#[test]
fn expired_and_not_yet_valid_tokens_are_rejected() {
    let issuer = ed25519_issuer();
    let mut c = claims(now().timestamp());
    c.exp = now().timestamp() - 1;
    assert_eq!(
        rejection(&issuer, &issuer.sign(&c).unwrap()),
        "token expired"
    );
    let mut c = claims(now().timestamp());
    c.nbf = (now() + Duration::minutes(5)).timestamp();
    assert_eq!(
        rejection(&issuer, &issuer.sign(&c).unwrap()),
        "token not yet valid"
    );
}

#[test]
fn wrong_issuer_audience_and_type_are_rejected() {
    let issuer = ed25519_issuer();
    let mut c = claims(now().timestamp());
    c.iss = "https://evil.test".into();
    assert_eq!(
        rejection(&issuer, &issuer.sign(&c).unwrap()),
        "wrong issuer"
    );
    let mut c = claims(now().timestamp());
    c.aud = "someone-else".into();
    assert_eq!(
        rejection(&issuer, &issuer.sign(&c).unwrap()),
        "wrong audience"
    );

    // An ID token (typ JWT) signed by the right key is still not an access token.
    let keys = KeySet::from_private_pem(
        SigningAlgorithm::EdDSA,
        &key_pem("ed25519-private.pem"),
        None,
    )
    .unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("JWT".into());
    header.kid = Some(keys.signing_kid().to_owned());
    let token = jsonwebtoken::encode(
        &header,
        &claims(now().timestamp()),
        &EncodingKey::from_ed_pem(&key_pem("ed25519-private.pem")).unwrap(),
    )
    .unwrap();
    assert_eq!(rejection(&issuer, &token), "not an access token");
}

#[test]
fn unknown_kid_and_tampered_payload_are_rejected() {
    let issuer = ed25519_issuer();
    let stranger = ed25519_issuer_from("ed25519-old-private.pem");
    assert_eq!(
        rejection(&issuer, &stranger.sign(&claims(now().timestamp())).unwrap()),
        "unknown key id"
    );

    let token = issuer.sign(&claims(now().timestamp())).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut c = claims(now().timestamp());
    c.roles = vec!["admin".into()];
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap()),
        parts[2]
    );
    assert_eq!(rejection(&issuer, &tampered), "bad signature");
    assert_eq!(rejection(&issuer, "not.a.jwt"), "malformed token");
    assert_eq!(rejection(&issuer, ""), "malformed token");
}

#[test]
fn a_resource_server_verifies_from_the_published_jwks_alone() {
    let issuer = ed25519_issuer();
    let verifier = JwksVerifier::new(&issuer.jwks(), ISSUER, AUDIENCE, 0);
    let token = issuer.sign(&claims(now().timestamp())).unwrap();
    assert_eq!(verifier.verify(&token, now()).unwrap().sub, claims(0).sub);
    let mut c = claims(now().timestamp());
    c.exp = now().timestamp() - 10;
    assert!(verifier.verify(&issuer.sign(&c).unwrap(), now()).is_err());
}

#[test]
fn a_generated_ed25519_key_signs_and_verifies() {
    let pem = auth_core::jwt::generate_ed25519_pem(&auth_core::random::OsRandom).unwrap();
    use secrecy::ExposeSecret;
    let keys = KeySet::from_private_pem(
        SigningAlgorithm::EdDSA,
        pem.expose_secret().as_bytes(),
        None,
    )
    .unwrap();
    let issuer = JwtIssuer::new(keys, ISSUER, AUDIENCE, 0);
    let token = issuer.sign(&claims(now().timestamp())).unwrap();
    assert!(issuer.verify(&token, now()).is_ok());
    let other = auth_core::jwt::generate_ed25519_pem(&auth_core::random::OsRandom).unwrap();
    assert_ne!(other.expose_secret(), pem.expose_secret());
}
