//! Native TLS with a self-signed certificate made at test time: `wss://`
//! and `https://` on one port, and plain connections refused.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use switchboard_server::{Config, TlsConfig};
use switchboard_tests::{TestServer, WAIT, http_client_builder, http_send, within};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A gateway with a fresh self-signed certificate for `localhost`, a
/// client configuration that trusts exactly that certificate, and the
/// certificate itself (DER).
async fn start() -> (TestServer, TlsConnector, Vec<u8>, PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let dir = std::env::temp_dir().join(format!(
        "switchboard-tls-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).expect("write cert");
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("write key");

    let config = Config {
        tls: Some(TlsConfig { cert_path, key_path }),
        ..Config::default()
    };
    let server = TestServer::start_with(config, vec![]).await;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(certified.cert.der().to_vec()))
        .expect("trust the certificate");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (
        server,
        TlsConnector::from(Arc::new(client)),
        certified.cert.der().to_vec(),
        dir,
    )
}

/// A TLS connection to the gateway for the `wss://` test, made by hand
/// because tokio-tungstenite is built here without TLS of its own.
async fn tls_connect(server: &TestServer, connector: &TlsConnector) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(server.addr).await.expect("tcp connect");
    let name = ServerName::try_from("localhost").expect("server name");
    connector.connect(name, tcp).await.expect("TLS handshake")
}

async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match ws.next().await.expect("open").expect("frame") {
            Message::Text(t) => return serde_json::from_str(&t).expect("json"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_wss_session_works_with_a_self_signed_certificate() {
    within(
        WAIT,
        Box::pin(async {
            let (server, connector, _, dir) = start().await;
            let stream = tls_connect(&server, &connector).await;
            let mut request = format!("wss://localhost:{}/ws?user=alice", server.addr.port())
                .into_client_request()
                .expect("request");
            request
                .headers_mut()
                .insert("sec-websocket-protocol", "switchboard.v1".parse().expect("header"));
            let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
                .await
                .expect("WebSocket over TLS");
            let welcome = next_json(&mut ws).await;
            assert_eq!(welcome["method"], "rpc.welcome");
            assert_eq!(welcome["params"]["user"], "alice");
            ws.send(Message::text(
                json!({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["over tls"]}).to_string(),
            ))
            .await
            .expect("send");
            assert_eq!(
                next_json(&mut ws).await,
                json!({"jsonrpc": "2.0", "id": 1, "result": ["over tls"]})
            );
            let _ = ws.close(None).await;
            server.stop().await;
            let _ = std::fs::remove_dir_all(dir);
        }),
    )
    .await;
}

#[tokio::test]
async fn https_rpc_works_and_plain_connections_are_refused() {
    within(
        WAIT,
        Box::pin(async {
            let (server, _, cert, dir) = start().await;
            // `localhost` resolves to the gateway, so that the certificate's name matches.
            let client = http_client_builder()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_der(&cert).expect("certificate"))
                .resolve("localhost", server.addr)
                .build()
                .expect("HTTPS client");
            let url = format!("https://localhost:{}/rpc?user=bob", server.addr.port());
            let body = r#"{"jsonrpc":"2.0","id":"h","method":"echo","params":["https"]}"#;
            let response = http_send(client.post(url).header("content-type", "application/json").body(body)).await;
            assert_eq!(response.status, 200, "{}", response.body);
            assert_eq!(
                response.json(),
                json!({"jsonrpc": "2.0", "id": "h", "result": ["https"]})
            );

            // Plain HTTP and ws:// on the TLS port get no answer.
            let plain = tokio_tungstenite::connect_async(format!("ws://{}/ws?user=eve", server.addr)).await;
            assert!(plain.is_err(), "a plain WebSocket must not connect");
            server.stop().await;
            let _ = std::fs::remove_dir_all(dir);
        }),
    )
    .await;
}
