//! `wss://` with the Rust client: a TLS WebSocket server with a certificate
//! made at test time, trusted through `tls_config`; and with the default
//! configuration, an untrusted certificate is an error, never a panic.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use switchboard_client::{Client, Error};
use switchboard_tests::{WAIT, within};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;

/// A JSON-RPC echo server over TLS for `localhost`; returns its port and certificate.
async fn tls_echo_server() -> (u16, CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(Message::Text(text))) = ws.next().await {
                    let request: Value = serde_json::from_str(&text).expect("JSON");
                    let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": request["params"]});
                    if ws.send(Message::text(answer.to_string())).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, cert)
}

#[tokio::test]
async fn wss_works_with_a_trusted_certificate_and_fails_cleanly_without() {
    within(WAIT, async {
        let (port, cert) = tls_echo_server().await;
        let url = format!("wss://localhost:{port}/");

        // The default configuration trusts the public roots only: an error, not a panic.
        let untrusted = Client::builder(&url)
            .connect()
            .await
            .expect_err("untrusted certificate");
        assert!(matches!(untrusted, Error::Connect(_)), "{untrusted:?}");
        assert!(
            untrusted.to_string().to_lowercase().contains("certificate"),
            "{untrusted}"
        );

        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("trust the certificate");
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = Client::builder(&url)
            .tls_config(Arc::new(tls))
            .connect()
            .await
            .expect("connects over TLS");
        let echoed: Vec<String> = client.call("echo", ["over", "tls"]).await.expect("echo");
        assert_eq!(echoed, ["over", "tls"]);
        client.close().await;
    })
    .await;
}
