//! Native TLS: with `tls` configured, the one port speaks TLS only, so
//! clients use `wss://…/ws` and `https://…/rpc`.
//!
//! The certificate chain and the private key are PEM files (the chain leaf
//! first; the key in PKCS#8, PKCS#1 or SEC1 form), read once when the gateway
//! is built: replacing them takes a restart. rustls runs with the *ring*
//! provider, TLS 1.2 and 1.3, and ALPN `http/1.1`. The TLS handshake shares
//! `limits.handshake_timeout_ms` with the HTTP upgrade request.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
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
        .map_err(|e| pem_error("tls.cert_path", &config.cert_path, e))?;
    if certs.is_empty() {
        return Err(pem_error("tls.cert_path", &config.cert_path, pem::Error::NoItemsFound));
    }
    let key =
        PrivateKeyDer::from_pem_file(&config.key_path).map_err(|e| pem_error("tls.key_path", &config.key_path, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(Error::Tls)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// A PEM file's failure: a file that cannot be read is an i/o error, kept as
/// the source as it is, rather than wrapped in the PEM reader's error, which
/// does not give it out.
fn pem_error(key: &str, path: &Path, error: pem::Error) -> Error {
    let (key, path) = (key.to_owned(), path.to_owned());
    match error {
        pem::Error::Io(source) => Error::ReadFile { key, path, source },
        source => Error::Pem { key, path, source },
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_missing_file_gives_its_io_error() {
        let config = TlsConfig {
            cert_path: "/nonexistent/switchboard/cert.pem".into(),
            key_path: "/nonexistent/switchboard/key.pem".into(),
        };
        let error = acceptor(&config).err().expect("the certificate is missing");
        assert!(
            matches!(&error, Error::ReadFile { key, path, .. } if key == "tls.cert_path" && *path == config.cert_path),
            "{error:?}"
        );
        let io = error
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the source is the i/o error");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        assert!(error.to_string().contains("tls.cert_path"), "{error}");
    }

    #[test]
    fn a_file_without_a_certificate_says_so() {
        let dir = std::env::temp_dir().join(format!("sb-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let config = TlsConfig {
            cert_path: empty.clone(),
            key_path: empty,
        };
        let error = acceptor(&config).err().expect("no certificate");
        assert!(
            matches!(&error, Error::Pem { key, source: pem::Error::NoItemsFound, .. } if key == "tls.cert_path"),
            "{error:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
