//! The `auth` and `authorization` sections: how tokens are verified and what a session may do.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How clients authenticate. Configuring this section turns dev mode off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Keys that verify JWTs.
    #[serde(default)]
    pub jwt: Vec<JwtKey>,
    /// A JWKS document (file or HTTPS URL) with more keys, refreshed periodically.
    #[serde(default)]
    pub jwks: Option<JwksSource>,
    /// Accepted audiences (`aud`); when set, tokens must carry one of them.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Accepted issuers (`iss`); when set, tokens must carry one of them.
    #[serde(default)]
    pub issuer: Vec<String>,
    /// Clock skew allowed for `exp` and `nbf`, in seconds. Default 30.
    #[serde(default = "default_leeway")]
    pub leeway_s: u64,
    /// How long before `exp` a session is sent `rpc.expiring`, in milliseconds. Default 60 000.
    #[serde(default = "default_warning")]
    pub expiry_warning_ms: u64,
    /// Instead of (or besides) JWTs: ask a backend whether to accept an upgrade.
    #[serde(default)]
    pub connect_hook: Option<ConnectHook>,
}

pub(crate) fn default_leeway() -> u64 {
    30
}

pub(crate) fn default_warning() -> u64 {
    60_000
}

/// One key that verifies JWTs. Its algorithm is pinned: a token signed with
/// another algorithm is refused even if the key would verify it. Its `Debug`
/// output never shows the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKey {
    /// The key id tokens name in their header (`kid`). Without one, the key is
    /// tried for tokens without a `kid`.
    #[serde(default)]
    pub kid: Option<String>,
    /// `HS256`, `RS256` or `ES256`.
    pub algorithm: String,
    /// The shared secret (HS256).
    #[serde(default)]
    pub secret: Option<String>,
    /// The public key in PEM (RS256, ES256).
    #[serde(default)]
    pub public_key_pem: Option<String>,
    /// A file with the public key in PEM (RS256, ES256).
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("public_key_pem", &self.public_key_pem.as_ref().map(|_| "[…]"))
            .field("public_key_file", &self.public_key_file)
            .finish()
    }
}

/// Where a JWKS document comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksSource {
    /// A local file.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// An HTTPS URL.
    #[serde(default)]
    pub url: Option<String>,
    /// A PEM file of certificate authorities to trust for `url` (and for the
    /// connect hook, which shares its client), besides the built-in public
    /// roots: for a JWKS served under a private CA. Nothing turns
    /// certificate checks off.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How often to read it again, in milliseconds. Default 300 000.
    #[serde(default = "default_refresh")]
    pub refresh_ms: u64,
}

fn default_refresh() -> u64 {
    300_000
}

/// A backend that decides on each upgrade. The gateway POSTs
/// `{"headers": {…}, "query": "…"}` (the `Authorization` header and the
/// query included) and expects `200 {"user": "…", "claims": {…}}` to accept;
/// any other answer refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectHook {
    /// The backend URL.
    pub url: String,
    /// How long to wait for it, in milliseconds. Default 5 000.
    #[serde(default = "default_hook_timeout")]
    pub timeout_ms: u64,
}

fn default_hook_timeout() -> u64 {
    5_000
}

/// Which topics and methods users may use. Patterns are exact names or a
/// prefix followed by `*`; `{sub}` stands for the user's id. They are read by
/// the rule of [`TopicPattern`](super::TopicPattern), whose
/// [`matches_for`](super::TopicPattern::matches_for) documents it. Personal
/// topics `user:{sub}` are always allowed to their user and never to anyone
/// else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    /// Topics a user may subscribe to. Default `["*"]`.
    pub subscribe: Vec<String>,
    /// Topics a user may publish on (when `client_publish` is on). Default `["*"]`.
    pub publish: Vec<String>,
    /// Methods a user may call (the gateway's `rpc.*` built-ins are always allowed). Default `["*"]`.
    pub methods: Vec<String>,
    /// Topics whose presence a user may ask for with `rpc.presence`. Default: none given,
    /// and the `subscribe` patterns (the token's included) decide.
    pub presence: Option<Vec<String>>,
    /// Topics whose history a user may read with `rpc.history`. Default
    /// unset: the topics the user may subscribe to (`subscribe`, and the
    /// claim's `subscribe` list). When set, these patterns and the claim's
    /// `history` list apply instead.
    pub history: Option<Vec<String>>,
    /// A token claim holding more patterns for its user: an object with
    /// optional `subscribe`, `publish`, `methods`, `presence` and `history` lists. Default
    /// `"switchboard"`.
    pub claim: String,
}

impl Default for Authorization {
    fn default() -> Self {
        let all = vec!["*".to_owned()];
        Self {
            subscribe: all.clone(),
            publish: all.clone(),
            methods: all,
            presence: None,
            history: None,
            claim: "switchboard".to_owned(),
        }
    }
}
