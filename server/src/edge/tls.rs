//! Native TLS: with `tls` configured, the one port speaks TLS only, so
//! clients use `wss://…/ws` and `https://…/rpc`.
//!
//! The certificate chain and the private key are PEM files (the chain leaf
//! first; the key in PKCS#8, PKCS#1 or SEC1 form), read once when the gateway
//! is built: replacing them takes a restart. rustls runs with the *ring*
//! provider, TLS 1.2 and 1.3, and ALPN `http/1.1`. The TLS handshake shares
//! `limits.handshake_timeout_ms` with the HTTP upgrade request.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::error::Error;

/// Reads the files and makes the acceptor the accept loop uses.
pub(crate) fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, Error> {
    // Other rustls users in the process (clients, for instance) then agree on the provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = CertificateDer::pem_file_iter(&config.cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Config(format!("tls.cert_path {}: {e}", config.cert_path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "tls.cert_path {}: no certificate found",
            config.cert_path.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key_path)
        .map_err(|e| Error::Config(format!("tls.key_path {}: {e}", config.key_path.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("tls: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Config(format!("tls: the certificate and key do not make a usable pair: {e}")))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
