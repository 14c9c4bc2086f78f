//! The server's errors.

use switchboard_protocol::{ErrorObject, codes};

/// Errors from building, configuring or running a gateway.
///
/// A configuration error names the key that failed (`limits.max_batch`,
/// `tls.cert_path`, `upstreams["billing."].url`) and says why. Where the
/// failure comes from another error (a file that cannot be read, a key that
/// does not parse) that error is kept as the
/// [`source`](std::error::Error::source), so the chain can be walked and the
/// cause matched; its text is also part of the message, so that printing the
/// error alone, as the `switchboard` binary does, says the whole story.
///
/// ```
/// use std::error::Error as _;
/// use switchboard_server::{Config, Error, Gateway, TlsConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut config = Config::default();
/// config.limits.max_batch = 0;
/// let Err(error) = config.validate() else { panic!("a batch of at most 0 is refused") };
/// assert!(matches!(&error, Error::Invalid { key, .. } if key == "limits.max_batch"));
///
/// config.limits.max_batch = 100;
/// config.tls = Some(TlsConfig { cert_path: "/nowhere/cert.pem".into(), key_path: "/nowhere/key.pem".into() });
/// let Err(error) = Gateway::builder(config).build() else { panic!("the files are missing") };
/// assert!(matches!(&error, Error::ReadFile { key, .. } if key == "tls.cert_path"));
/// let io = error.source().and_then(|s| s.downcast_ref::<std::io::Error>()).expect("an i/o error");
/// assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration could not be read into a [`Config`](crate::Config): the file is
    /// not TOML, or a value in it or in the environment has the wrong type or an unknown key.
    /// figment's error names the key and where its value came from; it is boxed, as it is
    /// large, and the source is that box.
    #[error("invalid configuration: {0}")]
    Load(#[source] Box<figment::Error>),
    /// A configuration value breaks a rule that its type cannot express: a limit of 0, an
    /// empty secret, a URL that is not `http(s)://`, dev mode on a public address.
    #[error("invalid configuration: {key}: {why}")]
    Invalid {
        /// The key, dotted (`limits.max_batch`); a list's entry is named by its identifying
        /// field in brackets (`upstreams["billing."].prefix`).
        key: String,
        /// What is wrong with its value.
        why: String,
    },
    /// A file the configuration names (or the configuration file itself) could not be read.
    #[error("invalid configuration: {key}: cannot read {}: {source}", path.display())]
    ReadFile {
        /// The key that names the file (`tls.cert_path`; `--config` for the configuration
        /// file itself).
        key: String,
        /// The file.
        path: std::path::PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file was read but holds no usable certificate or key.
    #[error("invalid configuration: {key}: {}: {source}", path.display())]
    Pem {
        /// The key that names the file (`tls.cert_path`, `tls.key_path`).
        key: String,
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with its contents.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the TLS setup: for example, the certificate and the key do not make
    /// a usable pair.
    #[error("invalid configuration: tls: {0}")]
    Tls(#[source] rustls::Error),
    /// A key that verifies JWTs could not be made from its PEM or secret.
    #[error("invalid configuration: {key}: {source}")]
    JwtKey {
        /// The key's entry (`auth.jwt["kid"]`, or `auth.jwt[]` for a key without a `kid`).
        key: String,
        /// Why jsonwebtoken refused it.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// The JWKS file is not a JWKS document.
    #[error("invalid configuration: auth.jwks.file {}: {source}", path.display())]
    Jwks {
        /// The file.
        path: std::path::PathBuf,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A URL in the configuration does not parse.
    #[error("invalid configuration: {key}: {source}")]
    Url {
        /// The key (`webhook.url`, `upstreams["billing."].url`).
        key: String,
        /// Why it does not parse.
        #[source]
        source: url::ParseError,
    },
    /// The HTTP client that upstream calls and the webhook use could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The broker the configuration asks for could not be set up (for Redis: `redis.url`
    /// does not parse). The source is the broker's error, a
    /// [`BrokerError`](crate::broker::BrokerError).
    #[error("invalid configuration: broker: {0}")]
    Broker(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A socket operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A module tried to register a name reserved for the gateway (`rpc.*`).
    #[error("method name {0:?} is reserved for the gateway (names starting with \"rpc.\")")]
    ReservedMethod(String),
    /// Two modules registered the same method.
    #[error(transparent)]
    Register(#[from] jsonrpsee::core::RegisterMethodError),
}

impl Error {
    /// A value that breaks a rule: `key` and what is wrong with it.
    pub(crate) fn invalid(key: impl Into<String>, why: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            why: why.into(),
        }
    }
}

/// Why a call from the server to a client produced no result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The client answered with a JSON-RPC error.
    #[error("the client answered with an error: {0}")]
    Rpc(ErrorObject),
    /// The client did not answer in time (it was sent `rpc.cancel`).
    #[error("the client did not answer in time")]
    Timeout,
    /// The session ended before it answered.
    #[error("the session is gone")]
    SessionGone,
    /// The session already has as many pending calls as allowed.
    #[error("too many pending calls on the session")]
    TooManyPending,
    /// The target was not reached because a limit was hit (for example the fan-in limit).
    #[error("not called: {0}")]
    NotCalled(&'static str),
}

impl CallError {
    /// The error as it appears on the wire (an entry of a multicast call, or an
    /// error answer of a method that called a client).
    pub fn to_error_object(&self) -> ErrorObject {
        match self {
            CallError::Rpc(e) => e.clone(),
            CallError::Timeout => ErrorObject::new(codes::TIMEOUT),
            CallError::SessionGone => ErrorObject::new(codes::SESSION_GONE),
            CallError::TooManyPending => ErrorObject::with_data(
                codes::LIMIT_EXCEEDED,
                serde_json::json!({"reason": "too many pending calls on the session"}),
            ),
            CallError::NotCalled(why) => {
                ErrorObject::with_data(codes::LIMIT_EXCEEDED, serde_json::json!({ "reason": why }))
            }
        }
    }
}
