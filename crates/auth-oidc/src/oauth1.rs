//! OAuth 1.0a request signing (RFC 5849, HMAC-SHA1), for X/Twitter's legacy user tokens.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha1::Sha1;

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (RFC 5849 3.6).
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encode per RFC 5849 section 3.6.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, RESERVED).to_string()
}

/// The signature base string (RFC 5849 section 3.4.1): method, base string URI and the
/// normalised parameters (query, form body and `oauth_*` protocol parameters, without
/// `oauth_signature` and `realm`).
pub fn signature_base_string(method: &str, base_uri: &str, params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "oauth_signature" && k != "realm")
        .map(|(k, v)| (encode(k), encode(v)))
        .collect();
    encoded.sort();
    let normalised = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        encode(base_uri),
        encode(&normalised)
    )
}

/// HMAC-SHA1 signature (RFC 5849 section 3.4.2), base64.
pub fn sign(base_string: &str, consumer_secret: &str, token_secret: &str) -> String {
    let key = format!("{}&{}", encode(consumer_secret), encode(token_secret));
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(base_string.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The credentials a signed request is made with.
pub struct Credentials<'a> {
    /// Client (consumer) key.
    pub consumer_key: &'a str,
    /// Client (consumer) secret.
    pub consumer_secret: &'a str,
    /// Token.
    pub token: &'a str,
    /// Token secret.
    pub token_secret: &'a str,
}

/// The `Authorization: OAuth ...` header of a request to `base_uri` with `params` (its
/// query and form parameters).
pub fn authorization_header(
    method: &str,
    base_uri: &str,
    params: &[(String, String)],
    credentials: &Credentials<'_>,
    nonce: &str,
    timestamp: u64,
) -> String {
    let mut protocol = vec![
        (
            "oauth_consumer_key".to_owned(),
            credentials.consumer_key.to_owned(),
        ),
        ("oauth_nonce".to_owned(), nonce.to_owned()),
        ("oauth_signature_method".to_owned(), "HMAC-SHA1".to_owned()),
        ("oauth_timestamp".to_owned(), timestamp.to_string()),
        ("oauth_token".to_owned(), credentials.token.to_owned()),
        ("oauth_version".to_owned(), "1.0".to_owned()),
    ];
    let mut all = params.to_vec();
    all.extend(protocol.iter().cloned());
    let base = signature_base_string(method, base_uri, &all);
    let signature = sign(&base, credentials.consumer_secret, credentials.token_secret);
    protocol.push(("oauth_signature".to_owned(), signature));
    let fields = protocol
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join(", ");
    format!("OAuth {fields}")
}

/// The parameters of an `Authorization: OAuth ...` header, decoded.
pub fn parse_authorization_header(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header.strip_prefix("OAuth ")?;
    rest.split(',')
        .map(|field| {
            let (k, v) = field.trim().split_once('=')?;
            let v = v.strip_prefix('"')?.strip_suffix('"')?;
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .ok()
                    .map(|c| c.into_owned())
            };
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    /// RFC 5849 section 3.4.1.1: the example request and its signature base string.
    #[test]
    fn base_string_of_the_rfc_5849_example() {
        let params = vec![
            // query: b5=%3D%253D&a3=a&c%40=&a2=r%20b (decoded)
            p("b5", "=%3D"),
            p("a3", "a"),
            p("c@", ""),
            p("a2", "r b"),
            // form body: c2&a3=2+q (decoded)
            p("c2", ""),
            p("a3", "2 q"),
            // protocol parameters
            p("realm", "Example"),
            p("oauth_consumer_key", "9djdj82h48djs9d2"),
            p("oauth_token", "kkk9d7dh3k39sjv7"),
            p("oauth_signature_method", "HMAC-SHA1"),
            p("oauth_timestamp", "137131201"),
            p("oauth_nonce", "7d8f3e4a"),
            p("oauth_signature", "bYT5CMsGcbgUdFHObYMEfcx6bsw%3D"),
        ];
        let base = signature_base_string("POST", "http://example.com/request", &params);
        assert_eq!(
            base,
            "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q\
             %26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_\
             key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m\
             ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk\
             9d7dh3k39sjv7"
        );
    }

    /// RFC 5849 section 1.2: the photos example, signed with HMAC-SHA1.
    #[test]
    fn signature_of_the_rfc_5849_photos_example() {
        let params = vec![
            p("file", "vacation.jpg"),
            p("size", "original"),
            p("oauth_consumer_key", "dpf43f3p2l4k3l03"),
            p("oauth_token", "nnch734d00sl2jdk"),
            p("oauth_signature_method", "HMAC-SHA1"),
            p("oauth_timestamp", "137131202"),
            p("oauth_nonce", "chapoH"),
        ];
        let base = signature_base_string("GET", "http://photos.example.net/photos", &params);
        assert_eq!(
            sign(&base, "kd94hf93k423kf44", "pfkkdhi9sl3r4s00"),
            "MdpQcU8iPSUjWoN/UDMsK2sui9I="
        );
    }

    #[test]
    fn a_signed_header_parses_back_and_verifies() {
        let creds = Credentials {
            consumer_key: "ck",
            consumer_secret: "cs",
            token: "tok",
            token_secret: "ts",
        };
        let query = vec![p("include_email", "true")];
        let header = authorization_header(
            "GET",
            "https://api.x.com/1.1/a.json",
            &query,
            &creds,
            "n o",
            42,
        );
        let fields = parse_authorization_header(&header).unwrap();
        let signature = fields
            .iter()
            .find(|(k, _)| k == "oauth_signature")
            .unwrap()
            .1
            .clone();
        let mut all = query.clone();
        all.extend(fields);
        let base = signature_base_string("GET", "https://api.x.com/1.1/a.json", &all);
        assert_eq!(sign(&base, "cs", "ts"), signature);
        assert_ne!(sign(&base, "cs", "other"), signature);
    }
}
