//! The `upstreams` section: HTTP JSON-RPC backends that serve a method prefix.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// One backend of the upstream proxy (an entry of `upstreams` in the configuration).
///
/// ```toml
/// [[upstreams]]
/// prefix = "billing."
/// url = "http://127.0.0.1:9000/rpc"
/// timeout_ms = 5000
/// secret = "a long random string shared with the backend"
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The method prefix this backend serves, for example `billing.`. Methods registered on
    /// the gateway win; among backends, the longest matching prefix wins. Must not be empty
    /// or start with `rpc.`.
    pub prefix: String,
    /// The backend's HTTP JSON-RPC endpoint, an `http://` or `https://` URL.
    pub url: String,
    /// How long to wait for the backend's answer, in milliseconds; then the client gets
    /// `-32004`. Default 10 000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The HMAC-SHA256 key of `X-Switchboard-Signature`, shared with the backend.
    pub secret: String,
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("prefix", &self.prefix)
            .field("url", &self.url)
            .field("timeout_ms", &self.timeout_ms)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl UpstreamConfig {
    /// How errors name this entry's keys: the list's entry by its prefix
    /// (`upstreams["billing."].url`).
    pub(crate) fn key(&self, field: &str) -> String {
        format!("upstreams[{:?}].{field}", self.prefix)
    }

    /// Checks what serde cannot.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.prefix.is_empty() {
            return Err(Error::invalid(self.key("prefix"), "must not be empty"));
        }
        if switchboard_protocol::methods::is_reserved(&self.prefix) {
            return Err(Error::invalid(
                self.key("prefix"),
                "must not start with rpc. (those methods are the gateway's own)",
            ));
        }
        super::http_url(self.key("url"), &self.url)?;
        if self.timeout_ms == 0 {
            return Err(Error::invalid(self.key("timeout_ms"), "must be greater than 0"));
        }
        if self.secret.is_empty() {
            return Err(Error::invalid(self.key("secret"), "must not be empty"));
        }
        Ok(())
    }
}
