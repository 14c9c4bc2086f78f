//! The `tls` section: the certificate and key the gateway serves with.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Certificate and key files for native TLS (`tls` in the configuration).
///
/// ```toml
/// [tls]
/// cert_path = "/etc/switchboard/fullchain.pem"
/// key_path = "/etc/switchboard/key.pem"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM, the server's own certificate first.
    pub cert_path: PathBuf,
    /// The private key, PEM.
    pub key_path: PathBuf,
}
