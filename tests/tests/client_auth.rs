//! The Rust client with authentication: a token in a header or a
//! subprotocol, a token source asked on every connection and when the
//! server warns that the token expires, and refusals that stop retrying.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use switchboard_client::{Client, ConnectionState, ReconnectPolicy, StateStream, TokenTransport};
use switchboard_server::auth::{AuthConfig, JwtKey};
use switchboard_server::{Config, Target};
use switchboard_tests::{TestServer, WAIT, eventually, within};

const SECRET: &str = "client-test-secret-that-is-long-enough-42";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn config(expiry_warning_ms: u64) -> Config {
    Config {
        auth: Some(AuthConfig {
            jwt: vec![JwtKey {
                kid: None,
                algorithm: "HS256".into(),
                secret: Some(SECRET.into()),
                public_key_pem: None,
                public_key_file: None,
            }],
            jwks: None,
            audience: vec!["switchboard".into()],
            issuer: vec![],
            leeway_s: 0,
            expiry_warning_ms,
            connect_hook: None,
        }),
        demo: Some(true),
        ..Config::default()
    }
}

fn token(user: &str, lifetime_s: u64) -> String {
    let claims = json!({"sub": user, "aud": "switchboard", "exp": now() + lifetime_s});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

fn url(server: &TestServer) -> String {
    format!("ws://{}/ws", server.addr)
}

async fn state_where(states: &mut StateStream, want: impl Fn(&ConnectionState) -> bool) -> ConnectionState {
    loop {
        let state = tokio::time::timeout(WAIT, states.next())
            .await
            .expect("a state change in time")
            .expect("the state stream goes on");
        if want(&state) {
            return state;
        }
    }
}

#[tokio::test]
async fn a_token_travels_in_a_header_or_in_a_subprotocol() {
    within(WAIT, async {
        let server = TestServer::start_with(config(60_000), vec![]).await;
        for (user, transport) in [("alice", TokenTransport::Header), ("bob", TokenTransport::Subprotocol)] {
            let client = Client::builder(url(&server))
                .token(token(user, 3_600))
                .token_transport(transport)
                .connect()
                .await
                .expect("connects");
            assert_eq!(client.welcome().expect("welcome").user, user);
            let me: Value = client.call("whoami", ()).await.expect("whoami");
            assert_eq!(me["user"], user);
            client.close().await;
        }
        // No token, or a bad one: the handshake is refused with 401, and that is final.
        for builder in [
            Client::builder(url(&server)),
            Client::builder(url(&server)).token("not-a-jwt"),
        ] {
            let refused = builder.connect().await.expect_err("refused");
            assert_eq!(refused.http_status(), Some(401), "{refused:?}");
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_token_source_is_asked_on_every_connection_and_when_the_token_expires() {
    within(WAIT * 2, async {
        // Sessions are warned 69 s before their token expires.
        let server = TestServer::start_with(config(69_000), vec![]).await;
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = asked.clone();
        let refreshing = Client::builder(url(&server))
            .reconnect(ReconnectPolicy::between(
                Duration::from_millis(20),
                Duration::from_millis(40),
            ))
            .token_source(move || {
                let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
                // The first token lives 70 s, so the warning comes about a second
                // after connecting, long before the client's own schedule would refresh it.
                let lifetime = if first { 70 } else { 3_600 };
                async move { Ok::<_, std::io::Error>(token("sam", lifetime)) }
            })
            .connect()
            .await
            .expect("connects");
        let mut states = refreshing.states();
        // A fixed token that expires in 3 s, and no source to replace it.
        let fixed = Client::builder(url(&server))
            .reconnect(ReconnectPolicy::between(
                Duration::from_millis(20),
                Duration::from_millis(40),
            ))
            .token(token("sam", 3))
            .connect()
            .await
            .expect("connects");
        let mut fixed_states = fixed.states();

        // `rpc.expiring` → the source is asked → `rpc.refresh` with the new token.
        assert!(
            eventually(WAIT, || asked.load(Ordering::SeqCst) == 2).await,
            "refreshed on the warning"
        );
        // The fixed token expires: closed with 4002, and its reconnect is refused (401), which is final.
        let expired = state_where(&mut fixed_states, |s| matches!(s, ConnectionState::Disconnected { .. })).await;
        assert!(matches!(
            expired,
            ConnectionState::Disconnected {
                code: Some(4002),
                will_retry: true,
                ..
            }
        ));
        let last = state_where(&mut fixed_states, |s| {
            matches!(s, ConnectionState::Disconnected { will_retry: false, .. })
        })
        .await;
        assert!(
            matches!(last, ConnectionState::Disconnected { code: None, .. }),
            "{last:?}"
        );
        assert!(fixed.is_closed());

        // The refreshed session outlived the fixed token's expiry.
        let pong: String = refreshing.call("rpc.ping", ()).await.expect("pong");
        assert_eq!(pong, "pong");
        assert_eq!(refreshing.stats().reconnects, 0);
        assert_eq!(refreshing.state(), Some(ConnectionState::Connected));

        // A reconnect asks the source again.
        let session = refreshing.welcome().expect("welcome").session;
        server
            .gateway
            .hub()
            .disconnect(Target::Session(session), 4003, "test")
            .await
            .expect("disconnect");
        state_where(&mut states, |s| matches!(s, ConnectionState::Disconnected { .. })).await;
        state_where(&mut states, |s| *s == ConnectionState::Connected).await;
        assert_eq!(asked.load(Ordering::SeqCst), 3);
        assert_eq!(refreshing.welcome().expect("welcome").user, "sam");
        refreshing.close().await;
        server.stop().await;
    })
    .await;
}
