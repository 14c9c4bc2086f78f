//! The `api_keys` section: the keys backends use on `POST /api`.

use serde::{Deserialize, Serialize};
use switchboard_protocol::api::Scope;

/// An API key and what it may do. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// A name for logs (the key itself is never logged).
    pub name: String,
    /// The secret a backend sends as `Authorization: Bearer <key>`.
    pub key: String,
    /// What the key may do. Default: everything.
    #[serde(default = "all_scopes")]
    pub scopes: Vec<Scope>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("key", &"[redacted]")
            .field("scopes", &self.scopes)
            .finish()
    }
}

fn all_scopes() -> Vec<Scope> {
    Scope::ALL.to_vec()
}
