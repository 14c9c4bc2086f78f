//! Client authentication: JWT (HS256, RS256, ES256; keys from config, a JWKS
//! file or an HTTPS URL, rotated by `kid`) or a connect hook that asks a
//! backend; and authorisation of topics and methods by pattern.
//!
//! A token is read from, in order: `Authorization: Bearer <jwt>`, the query
//! parameter `?token=<jwt>`, and the WebSocket subprotocol `bearer.<jwt>`
//! (offered next to `switchboard.v1`; the server only ever echoes
//! `switchboard.v1`). Tokens are never logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::RwLock;
use serde::Deserialize;
use serde_json::Value;

use crate::config::pattern;
pub use crate::config::{AuthConfig, Authorization, ConnectHook, JwksSource, JwtKey};
use crate::error::Error;

/// Who a session or request belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The user id (`sub`).
    pub user: Arc<str>,
    /// All claims of the token (or what the connect hook returned).
    pub claims: Arc<Value>,
    /// When the token expires, in seconds since the Unix epoch.
    pub expires_at: Option<u64>,
}

/// Why authentication failed. The text is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was presented.
    #[error("no token: send Authorization: Bearer <jwt>, ?token=<jwt> or the subprotocol bearer.<jwt>")]
    Missing,
    /// The token could not be verified.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// The connect hook refused the request or could not be reached.
    #[error("refused by the connect hook")]
    Refused,
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, (DecodingKey, Algorithm)>,
    without_kid: Vec<(DecodingKey, Algorithm)>,
}

/// Verifies credentials.
pub(crate) struct Authenticator {
    config: AuthConfig,
    static_keys: Vec<(Option<String>, DecodingKey, Algorithm)>,
    jwks: RwLock<KeySet>,
    http: reqwest::Client,
}

/// How errors name a key's entry of `auth.jwt`: by its `kid`, when it has one.
fn entry(k: &JwtKey) -> String {
    match &k.kid {
        Some(kid) => format!("auth.jwt[{kid:?}]"),
        None => "auth.jwt[]".to_owned(),
    }
}

fn algorithm(k: &JwtKey) -> Result<Algorithm, Error> {
    match k.algorithm.as_str() {
        "HS256" => Ok(Algorithm::HS256),
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        other => Err(Error::invalid(
            format!("{}.algorithm", entry(k)),
            format!("unsupported algorithm {other:?} (use HS256, RS256 or ES256)"),
        )),
    }
}

fn decoding_key(k: &JwtKey, alg: Algorithm) -> Result<DecodingKey, Error> {
    let bad = |source| Error::JwtKey { key: entry(k), source };
    let pem = || -> Result<Vec<u8>, Error> {
        match (&k.public_key_pem, &k.public_key_file) {
            (Some(p), _) => Ok(p.as_bytes().to_vec()),
            (None, Some(f)) => std::fs::read(f).map_err(|source| Error::ReadFile {
                key: format!("{}.public_key_file", entry(k)),
                path: f.clone(),
                source,
            }),
            (None, None) => Err(Error::invalid(
                entry(k),
                "RS256 and ES256 keys need public_key_pem or public_key_file",
            )),
        }
    };
    match alg {
        Algorithm::HS256 => k
            .secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.as_bytes()))
            .ok_or_else(|| Error::invalid(format!("{}.secret", entry(k)), "HS256 keys need a secret")),
        Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem()?).map_err(bad),
        _ => DecodingKey::from_ec_pem(&pem()?).map_err(bad),
    }
}

/// The HTTP client that reads the JWKS (and asks the connect hook):
/// trusting `auth.jwks.ca_file`'s authorities too when it is set.
fn jwks_client(source: Option<&JwksSource>) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder();
    if let Some(path) = source.and_then(|s| s.ca_file.as_ref()) {
        if source.is_some_and(|s| s.url.is_none()) {
            return Err(Error::invalid(
                "auth.jwks.ca_file",
                "is for auth.jwks.url, which is not set",
            ));
        }
        let pem = std::fs::read(path).map_err(|source| Error::ReadFile {
            key: "auth.jwks.ca_file".to_owned(),
            path: path.clone(),
            source,
        })?;
        let authorities = reqwest::Certificate::from_pem_bundle(&pem).map_err(Error::HttpClient)?;
        if authorities.is_empty() {
            return Err(Error::invalid("auth.jwks.ca_file", "holds no PEM certificate"));
        }
        for authority in authorities {
            builder = builder.add_root_certificate(authority);
        }
    }
    builder.build().map_err(Error::HttpClient)
}

fn parse_jwks(text: &str) -> Result<KeySet, serde_json::Error> {
    let set: JwkSet = serde_json::from_str(text)?;
    let mut keys = KeySet::default();
    for jwk in &set.keys {
        let Some(alg) = jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<Algorithm>().ok())
        else {
            continue;
        };
        if !matches!(alg, Algorithm::HS256 | Algorithm::RS256 | Algorithm::ES256) {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
        match &jwk.common.key_id {
            Some(kid) => {
                keys.by_kid.insert(kid.clone(), (key, alg));
            }
            None => keys.without_kid.push((key, alg)),
        }
    }
    Ok(keys)
}

impl Authenticator {
    pub(crate) fn new(config: &AuthConfig) -> Result<Arc<Self>, Error> {
        let mut static_keys = Vec::new();
        for k in &config.jwt {
            let alg = algorithm(k)?;
            static_keys.push((k.kid.clone(), decoding_key(k, alg)?, alg));
        }
        let auth = Arc::new(Self {
            config: config.clone(),
            static_keys,
            jwks: RwLock::new(KeySet::default()),
            http: jwks_client(config.jwks.as_ref())?,
        });
        if let Some(file) = config.jwks.as_ref().and_then(|s| s.file.as_ref()) {
            let text = std::fs::read_to_string(file).map_err(|source| Error::ReadFile {
                key: "auth.jwks.file".to_owned(),
                path: file.clone(),
                source,
            })?;
            *auth.jwks.write() = parse_jwks(&text).map_err(|source| Error::Jwks {
                path: file.clone(),
                source,
            })?;
        }
        Ok(auth)
    }

    /// Keeps the JWKS fresh: reads it again every `refresh_ms` until the
    /// authenticator is dropped. Needs a tokio runtime.
    pub(crate) fn spawn_refresh(self: &Arc<Self>) {
        let Some(source) = self.config.jwks.clone() else { return };
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let every = Duration::from_millis(source.refresh_ms.max(1_000));
            let mut first = true;
            loop {
                if !first {
                    tokio::time::sleep(every).await;
                }
                first = false;
                let Some(auth) = weak.upgrade() else { return };
                let text = match (&source.file, &source.url) {
                    (Some(file), _) => tokio::fs::read_to_string(file).await.map_err(|e| e.to_string()),
                    (None, Some(url)) => {
                        let got = auth.http.get(url).timeout(Duration::from_secs(10)).send().await;
                        match got.and_then(reqwest::Response::error_for_status) {
                            Ok(r) => r.text().await.map_err(|e| e.to_string()),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    (None, None) => return,
                };
                match text.and_then(|t: String| parse_jwks(&t).map_err(|e| e.to_string())) {
                    Ok(keys) => *auth.jwks.write() = keys,
                    // Keep the keys we have: a failed refresh must not lock everybody out.
                    Err(e) => tracing::warn!(error = %e, "could not refresh the JWKS"),
                }
            }
        });
    }

    pub(crate) fn expiry_warning(&self) -> Duration {
        Duration::from_millis(self.config.expiry_warning_ms)
    }

    /// Verifies a JWT.
    pub(crate) fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let candidates: Vec<(DecodingKey, Algorithm)> = {
            let jwks = self.jwks.read();
            match &header.kid {
                Some(kid) => self
                    .static_keys
                    .iter()
                    .filter(|(k, _, _)| k.as_deref() == Some(kid))
                    .map(|(_, key, alg)| (key.clone(), *alg))
                    .chain(jwks.by_kid.get(kid).cloned())
                    .collect(),
                None => self
                    .static_keys
                    .iter()
                    .filter(|(k, _, _)| k.is_none())
                    .map(|(_, key, alg)| (key.clone(), *alg))
                    .chain(jwks.without_kid.iter().cloned())
                    .collect(),
            }
        };
        let candidates: Vec<_> = candidates.into_iter().filter(|(_, alg)| *alg == header.alg).collect();
        if candidates.is_empty() {
            return Err(AuthError::Invalid("no key for this token's kid and algorithm".into()));
        }
        let mut last = AuthError::Invalid("no key verified the token".into());
        for (key, alg) in candidates {
            let mut v = Validation::new(alg);
            v.leeway = self.config.leeway_s;
            v.validate_nbf = true;
            let mut required = vec!["exp", "sub"];
            if self.config.audience.is_empty() {
                v.validate_aud = false;
            } else {
                v.set_audience(&self.config.audience);
                required.push("aud");
            }
            if !self.config.issuer.is_empty() {
                v.set_issuer(&self.config.issuer);
                required.push("iss");
            }
            v.set_required_spec_claims(&required);
            match jsonwebtoken::decode::<Value>(token, &key, &v) {
                Ok(data) => return identity(data.claims),
                Err(e) => {
                    last = match e.kind() {
                        jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                        _ => AuthError::Invalid(e.to_string()),
                    }
                }
            }
        }
        Err(last)
    }

    /// Authenticates an upgrade or HTTP request.
    pub(crate) async fn authenticate(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Identity, AuthError> {
        if let Some(hook) = &self.config.connect_hook {
            if self.static_keys.is_empty() && self.config.jwks.is_none() {
                return self.ask_hook(hook, headers, query).await;
            }
            if token_from(headers, query).is_none() {
                return self.ask_hook(hook, headers, query).await;
            }
        }
        let token = token_from(headers, query).ok_or(AuthError::Missing)?;
        self.verify(&token)
    }

    async fn ask_hook(
        &self,
        hook: &ConnectHook,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Identity, AuthError> {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), Value::from(value.to_str().ok()?))))
            .collect();
        let body = serde_json::json!({ "headers": headers, "query": query.unwrap_or_default() });
        let response = self
            .http
            .post(&hook.url)
            .timeout(Duration::from_millis(hook.timeout_ms))
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "connect hook unreachable");
                AuthError::Refused
            })?;
        if !response.status().is_success() {
            return Err(AuthError::Refused);
        }
        #[derive(Deserialize)]
        struct Accepted {
            user: String,
            #[serde(default)]
            claims: Value,
        }
        let accepted: Accepted = response.json().await.map_err(|_| AuthError::Refused)?;
        if accepted.user.is_empty() {
            return Err(AuthError::Refused);
        }
        let expires_at = accepted.claims.get("exp").and_then(numeric_date);
        Ok(Identity {
            user: accepted.user.into(),
            claims: Arc::new(accepted.claims),
            expires_at,
        })
    }
}

fn identity(claims: Value) -> Result<Identity, AuthError> {
    let user = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AuthError::Invalid("the token has no sub".into()))?;
    Ok(Identity {
        user: user.into(),
        expires_at: claims.get("exp").and_then(numeric_date),
        claims: Arc::new(claims),
    })
}

/// A JWT NumericDate in whole seconds. RFC 7519 allows fractions
/// (`"exp": 1700000000.5`) and jsonwebtoken accepts them, rounded; reading
/// only integers would give such a session no expiry at all.
fn numeric_date(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f.round() as u64)
    })
}

/// The token a request carries, if any.
pub(crate) fn token_from(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(t) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(t.trim().to_owned());
    }
    if let Some(t) = query.and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(percent_decode)
    }) {
        return Some(t);
    }
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix("bearer.").map(str::to_owned))
}

/// Decodes a query value as a form does: `+` is a space, and `%` followed by
/// exactly two hex digits is a byte (anything else after a `%`, a sign in
/// `%+5` included, leaves the `%` as it is). Bytes that are not UTF-8 become
/// U+FFFD. The `+`s go first, so that an escaped one (`%2B`) stays a `+`.
fn percent_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Replaces `token=…` in a query string so it can be logged.
pub(crate) fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            if pair.starts_with("token=") {
                "token=[redacted]"
            } else {
                pair
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// What is being authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Subscribe,
    Publish,
    Call,
    /// Asking for a topic's presence.
    Presence,
    /// Reading a topic's history: `authorization.history`, or `subscribe` when that is unset.
    History,
}

impl Authorization {
    /// Whether `user` (with `claims`) may do `action` on `name`.
    pub(crate) fn allows(&self, action: Action, name: &str, user: &str, claims: Option<&Value>) -> bool {
        let (list, key) = match action {
            Action::Subscribe => (&self.subscribe, "subscribe"),
            Action::Publish => (&self.publish, "publish"),
            Action::Call => (&self.methods, "methods"),
            Action::Presence => match &self.presence {
                Some(list) => (list, "presence"),
                None => (&self.subscribe, "subscribe"),
            },
            Action::History => match &self.history {
                Some(history) => (history, "history"),
                None => (&self.subscribe, "subscribe"),
            },
        };
        let from_claims = claims
            .and_then(|c| c.get(&self.claim))
            .and_then(|c| c.get(key))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        // The configured lists are plain strings in the public
        // `Authorization`, and the claim's arrive with each request: both are
        // read in place, by the same rule as every `TopicPattern`.
        list.iter()
            .map(String::as_str)
            .chain(from_claims)
            .any(|p| pattern::matches_for(p, name, user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_in_each_place_and_redacted() {
        let mut h = HeaderMap::new();
        assert_eq!(token_from(&h, Some("user=a&token=abc%2Ed")), Some("abc.d".into()));
        h.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            "switchboard.v1, bearer.xyz".parse().unwrap(),
        );
        assert_eq!(token_from(&h, None), Some("xyz".into()));
        h.insert(http::header::AUTHORIZATION, "Bearer hdr".parse().unwrap());
        assert_eq!(token_from(&h, None), Some("hdr".into()));
        assert_eq!(redact_query("a=1&token=secret"), "a=1&token=[redacted]");
        // Only two hex digits make an escape.
        assert_eq!(
            token_from(&HeaderMap::new(), Some("token=a%+5%4")),
            Some("a% 5%4".into())
        );
        // `+` is a space, an escaped `+` stays one, and bytes that are not
        // UTF-8 become U+FFFD.
        assert_eq!(
            token_from(&HeaderMap::new(), Some("token=a+b%2Bc%FF")),
            Some("a b+c\u{FFFD}".into())
        );
    }

    #[test]
    fn patterns_with_sub_and_claims() {
        let a = Authorization {
            subscribe: vec!["chat:*".into(), "inbox:{sub}".into()],
            publish: vec![],
            methods: vec!["echo".into()],
            presence: None,
            history: None,
            claim: "switchboard".into(),
        };
        assert!(a.allows(Action::Subscribe, "chat:x", "u", None));
        assert!(
            a.allows(Action::Presence, "chat:x", "u", None),
            "presence follows subscribe by default"
        );
        assert!(!a.allows(Action::Presence, "other", "u", None));
        let narrow = Authorization {
            presence: Some(vec!["chat:lobby".into()]),
            ..a.clone()
        };
        assert!(narrow.allows(Action::Presence, "chat:lobby", "u", None));
        assert!(
            !narrow.allows(Action::Presence, "chat:x", "u", None),
            "its own list when given"
        );
        assert!(a.allows(Action::Subscribe, "inbox:u", "u", None));
        assert!(!a.allows(Action::Subscribe, "inbox:v", "u", None));
        assert!(!a.allows(Action::Publish, "chat:x", "u", None));
        let claims = serde_json::json!({"switchboard": {"publish": ["chat:*"]}});
        assert!(a.allows(Action::Publish, "chat:x", "u", Some(&claims)));
        assert!(a.allows(Action::Call, "echo", "u", None));
        assert!(!a.allows(Action::Call, "admin", "u", None));
        // A user id is never pattern syntax.
        assert!(!a.allows(Action::Subscribe, "inbox:victim", "v*", None));
        assert!(a.allows(Action::Subscribe, "inbox:v*", "v*", None));
        let suffix = Authorization {
            subscribe: vec!["*{sub}".into()],
            ..a
        };
        assert!(!suffix.allows(Action::Subscribe, "anything", "", None));
        // `{sub}` before the pattern's own `*`: the user's names, and only theirs.
        let own = Authorization {
            subscribe: vec!["inbox:{sub}*".into()],
            ..suffix
        };
        assert!(own.allows(Action::Subscribe, "inbox:u:archive", "u", None));
        assert!(!own.allows(Action::Subscribe, "inbox:victim", "v*", None));
        let claims = serde_json::json!({"switchboard": {"subscribe": ["files:{sub}/*"]}});
        assert!(own.allows(Action::Subscribe, "files:u/a", "u", Some(&claims)));
        assert!(!own.allows(Action::Subscribe, "files:w/a", "u", Some(&claims)));
    }

    #[test]
    fn history_follows_subscribe_until_it_has_patterns_of_its_own() {
        let a = Authorization {
            subscribe: vec!["chat:*".into()],
            ..Authorization::default()
        };
        assert!(a.allows(Action::History, "chat:x", "u", None));
        assert!(!a.allows(Action::History, "news", "u", None));
        let claims = serde_json::json!({"switchboard": {"subscribe": ["news"], "history": ["audit"]}});
        assert!(a.allows(Action::History, "news", "u", Some(&claims)));
        assert!(!a.allows(Action::History, "audit", "u", Some(&claims)));
        let own = Authorization {
            history: Some(vec!["chat:public*".into()]),
            ..a
        };
        assert!(own.allows(Action::History, "chat:public:1", "u", None));
        assert!(!own.allows(Action::History, "chat:x", "u", None));
        assert!(own.allows(Action::Subscribe, "chat:x", "u", None));
        assert!(own.allows(Action::History, "audit", "u", Some(&claims)));
        assert!(!own.allows(Action::History, "news", "u", Some(&claims)));
    }
}

/// Entry points for the fuzz targets in `server/fuzz`: thin wrappers over the
/// crate-private token and authorisation code, so that fuzzing exercises the
/// gateway's own functions rather than copies. Not an API: it may change at
/// any time.
#[doc(hidden)]
pub mod fuzzing {
    use std::sync::Arc;

    use http::HeaderMap;
    use serde_json::Value;

    use super::{Action, AuthConfig, AuthError, Authenticator, Authorization, Identity, JwtKey};

    /// The token a request carries, found as the gateway finds it.
    pub fn token_from(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
        super::token_from(headers, query)
    }

    /// A query string as the gateway logs it, with `token=` redacted.
    pub fn redact_query(query: &str) -> String {
        super::redact_query(query)
    }

    /// Whether `authorization` lets `user` subscribe to (`action` 0), publish on
    /// (1), call (2), read the history of (3) or see the presence of (4) `name`.
    pub fn allows(authorization: &Authorization, action: u8, name: &str, user: &str, claims: Option<&Value>) -> bool {
        let action = match action % 5 {
            0 => Action::Subscribe,
            1 => Action::Publish,
            2 => Action::Call,
            3 => Action::History,
            _ => Action::Presence,
        };
        authorization.allows(action, name, user, claims)
    }

    /// Verifies JWTs as a gateway configured with one HS256 key does.
    pub struct Hs256Verifier(Arc<Authenticator>);

    impl Hs256Verifier {
        /// A verifier for `secret`, with the default leeway and the given
        /// accepted audiences and issuers (empty: not checked).
        pub fn new(secret: &str, audience: Vec<String>, issuer: Vec<String>) -> Self {
            let config = AuthConfig {
                jwt: vec![JwtKey {
                    kid: None,
                    algorithm: "HS256".to_owned(),
                    secret: Some(secret.to_owned()),
                    public_key_pem: None,
                    public_key_file: None,
                }],
                jwks: None,
                audience,
                issuer,
                leeway_s: crate::config::auth::default_leeway(),
                expiry_warning_ms: crate::config::auth::default_warning(),
                connect_hook: None,
            };
            Self(Authenticator::new(&config).expect("an HS256 key with a secret is a valid configuration"))
        }

        /// The leeway allowed for `exp` and `nbf`, in seconds.
        pub fn leeway_s(&self) -> u64 {
            self.0.config.leeway_s
        }

        /// Verifies `token`.
        pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
            self.0.verify(token)
        }
    }
}
