//! Authentication and authorisation at the wire: JWTs in each place they may
//! travel, refusals in the documented way, key rotation, refresh and expiry,
//! the authorisation matrix, and the limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use switchboard_server::auth::{AuthConfig, Authorization, ConnectHook, JwksSource, JwtKey};
use switchboard_server::{ApiKey, Config};
use switchboard_tests::{TestServer, WAIT, WsClient, http_get, http_post, within};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;

const SECRET: &str = "test-secret-that-is-long-enough-0123456789";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn auth_config() -> AuthConfig {
    AuthConfig {
        jwt: vec![
            JwtKey {
                kid: None,
                algorithm: "HS256".into(),
                secret: Some(SECRET.into()),
                public_key_pem: None,
                public_key_file: None,
            },
            JwtKey {
                kid: Some("rsa-1".into()),
                algorithm: "RS256".into(),
                secret: None,
                public_key_pem: None,
                public_key_file: Some(format!("{FIXTURES}/rsa-public.pem").into()),
            },
            JwtKey {
                kid: Some("ec-2".into()),
                algorithm: "ES256".into(),
                secret: None,
                public_key_pem: Some(std::fs::read_to_string(format!("{FIXTURES}/ec-public.pem")).expect("fixture")),
                public_key_file: None,
            },
        ],
        jwks: None,
        audience: vec!["switchboard".into()],
        issuer: vec![],
        leeway_s: 0,
        expiry_warning_ms: 60_000,
        connect_hook: None,
    }
}

fn config() -> Config {
    Config {
        auth: Some(auth_config()),
        demo: Some(true),
        ..Config::default()
    }
}

fn hs256(claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

fn signed(alg: Algorithm, kid: &str, claims: Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    let key = match alg {
        Algorithm::RS256 => {
            EncodingKey::from_rsa_pem(&std::fs::read(format!("{FIXTURES}/rsa-private.pem")).expect("key"))
        }
        _ => EncodingKey::from_ec_pem(&std::fs::read(format!("{FIXTURES}/ec-private.pem")).expect("key")),
    }
    .expect("key");
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "aud": "switchboard", "exp": now() + 3600})
}

fn request(server: &TestServer, query: &str) -> Request {
    let mut r = format!("ws://{}/ws{query}", server.addr)
        .into_client_request()
        .expect("request");
    r.headers_mut()
        .insert("sec-websocket-protocol", "switchboard.v1".parse().expect("header"));
    r
}

fn with_bearer(mut r: Request, token: &str) -> Request {
    r.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().expect("header"));
    r
}

async fn connect_as(server: &TestServer, token: &str) -> WsClient {
    let (mut c, _) = WsClient::try_connect(with_bearer(request(server, ""), token))
        .await
        .expect("accepted");
    c.welcome().await;
    c
}

/// The HTTP status of a refused upgrade.
async fn refused_status(r: Request) -> u16 {
    match WsClient::try_connect(r).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

#[tokio::test]
async fn a_token_is_accepted_from_header_query_and_subprotocol() {
    within(WAIT, async {
        let server = TestServer::start_with(config(), vec![]).await;
        let token = hs256(claims("alice"));
        let (mut a, _) = WsClient::try_connect(with_bearer(request(&server, ""), &token))
            .await
            .expect("header");
        assert_eq!(a.welcome().await["user"], "alice");
        let (mut b, _) = WsClient::try_connect(request(&server, &format!("?token={token}")))
            .await
            .expect("query");
        assert_eq!(b.welcome().await["user"], "alice");
        let mut r = format!("ws://{}/ws", server.addr)
            .into_client_request()
            .expect("request");
        r.headers_mut().insert(
            "sec-websocket-protocol",
            format!("switchboard.v1, bearer.{token}").parse().expect("header"),
        );
        let (mut c, response) = WsClient::try_connect(r).await.expect("subprotocol");
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "switchboard.v1",
            "the token is never echoed"
        );
        assert_eq!(c.welcome().await["user"], "alice");
        // The handler sees the caller's user.
        assert_eq!(c.call(1, "whoami", json!([])).await["result"]["user"], "alice");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bad_tokens_are_refused_before_the_upgrade_or_with_a_terminal_close_for_browsers() {
    within(WAIT, async {
        let server = TestServer::start_with(config(), vec![]).await;
        let cases = [
            ("missing", None),
            ("garbage", Some("not-a-jwt".to_owned())),
            (
                "bad signature",
                Some(
                    jsonwebtoken::encode(
                        &Header::new(Algorithm::HS256),
                        &claims("a"),
                        &EncodingKey::from_secret(b"other"),
                    )
                    .expect("sign"),
                ),
            ),
            (
                "expired",
                Some(hs256(json!({"sub": "a", "aud": "switchboard", "exp": now() - 10}))),
            ),
            (
                "wrong audience",
                Some(hs256(json!({"sub": "a", "aud": "elsewhere", "exp": now() + 60}))),
            ),
            (
                "not yet valid",
                Some(hs256(
                    json!({"sub": "a", "aud": "switchboard", "exp": now() + 60, "nbf": now() + 600}),
                )),
            ),
            ("no sub", Some(hs256(json!({"aud": "switchboard", "exp": now() + 60})))),
            ("unknown kid", Some(signed(Algorithm::RS256, "nope", claims("a")))),
            // A key pinned to RS256 never verifies an HS256 token, even under its kid.
            (
                "algorithm not pinned",
                Some({
                    let mut h = Header::new(Algorithm::HS256);
                    h.kid = Some("rsa-1".into());
                    jsonwebtoken::encode(&h, &claims("a"), &EncodingKey::from_secret(SECRET.as_bytes())).expect("sign")
                }),
            ),
        ];
        for (name, token) in cases {
            let r = request(&server, "");
            let r = match &token {
                Some(t) => with_bearer(r, t),
                None => r,
            };
            assert_eq!(refused_status(r).await, 401, "{name}");
        }
        // ?user= is a dev-mode convenience only.
        assert_eq!(refused_status(request(&server, "?user=alice")).await, 401);
        // A browser (it sends Origin) gets the upgrade and an immediate terminal close it can read.
        let mut r = request(&server, "");
        r.headers_mut()
            .insert("origin", "http://app.example".parse().expect("header"));
        let (mut c, _) = WsClient::try_connect(r).await.expect("browsers get the upgrade");
        let closed = c.closed(&mut Vec::new()).await;
        assert_eq!(closed.code, Some(4500));
        assert!(closed.reason.contains("no token"), "{}", closed.reason);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn keys_rotate_by_kid_across_algorithms_and_jwks() {
    within(WAIT * 2, async {
        let dir = std::env::temp_dir().join(format!("sb-jwks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let jwks = dir.join("jwks.json");
        let write_jwks = |kid: &str, secret: &str| {
            let k = base64url(secret.as_bytes());
            std::fs::write(
                &jwks,
                json!({"keys": [{"kty": "oct", "kid": kid, "alg": "HS256", "k": k}]}).to_string(),
            )
            .expect("write jwks");
        };
        write_jwks("j1", "jwks-secret-one-0123456789abcdef");
        let mut cfg = config();
        let auth = cfg.auth.as_mut().expect("auth");
        auth.jwks = Some(JwksSource {
            file: Some(jwks.clone()),
            url: None,
            ca_file: None,
            refresh_ms: 1_000,
        });
        let server = TestServer::start_with(cfg, vec![]).await;
        let rs = signed(Algorithm::RS256, "rsa-1", claims("rita"));
        let es = signed(Algorithm::ES256, "ec-2", claims("erin"));
        assert_eq!(
            connect_as(&server, &rs).await.call(1, "whoami", json!([])).await["result"]["user"],
            "rita"
        );
        assert_eq!(
            connect_as(&server, &es).await.call(1, "whoami", json!([])).await["result"]["user"],
            "erin"
        );
        let jwk_token = |kid: &str, secret: &str| {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some(kid.into());
            jsonwebtoken::encode(&h, &claims("jay"), &EncodingKey::from_secret(secret.as_bytes())).expect("sign")
        };
        connect_as(&server, &jwk_token("j1", "jwks-secret-one-0123456789abcdef")).await;
        // Rotate: the JWKS now has j2 only. After a refresh, j2 works and j1 does not.
        write_jwks("j2", "jwks-secret-two-0123456789abcdef");
        let j2 = jwk_token("j2", "jwks-secret-two-0123456789abcdef");
        let addr = server.addr;
        let mut accepted = false;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        while tokio::time::Instant::now() < deadline {
            let mut r = format!("ws://{addr}/ws").into_client_request().expect("request");
            r.headers_mut()
                .insert("authorization", format!("Bearer {j2}").parse().expect("header"));
            if WsClient::try_connect(r).await.is_ok() {
                accepted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(accepted, "the refreshed JWKS key was not picked up");
        let old = jwk_token("j1", "jwks-secret-one-0123456789abcdef");
        assert_eq!(refused_status(with_bearer(request(&server, ""), &old)).await, 401);
        server.stop().await;
    })
    .await;
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn refresh_keeps_a_session_alive_and_expiry_closes_the_others() {
    within(WAIT * 2, async {
        let mut cfg = config();
        cfg.auth.as_mut().expect("auth").expiry_warning_ms = 1_500;
        let server = TestServer::start_with(cfg, vec![]).await;
        let exp = now() + 2;
        let short = hs256(json!({"sub": "sam", "aud": "switchboard", "exp": exp}));
        let mut kept = connect_as(&server, &short).await;
        let mut lapsed = connect_as(&server, &short).await;
        // Warned before expiry...
        let warning = kept.recv().await;
        assert_eq!(warning["method"], "rpc.expiring");
        assert_eq!(warning["params"]["expires_at_ms"], exp * 1000);
        // ...a token for another user is refused...
        let other = hs256(claims("mallory"));
        let r = kept.call(1, "rpc.refresh", json!({"token": other})).await;
        assert_eq!(r["error"]["code"], -32001, "{r}");
        // ...and a fresh one for the same user keeps the session.
        let later = now() + 3600;
        let fresh = hs256(json!({"sub": "sam", "aud": "switchboard", "exp": later}));
        let r = kept.call(2, "rpc.refresh", json!({"token": fresh})).await;
        assert_eq!(r["result"]["expires_at_ms"], later * 1000, "{r}");
        // The session that did not refresh is warned, then closed with 4002 at expiry.
        let mut before = Vec::new();
        let closed = lapsed.closed(&mut before).await;
        assert_eq!(closed.code, Some(4002));
        assert!(before.iter().any(|f| f["method"] == "rpc.expiring"));
        assert_eq!(before.last().expect("disconnect")["params"]["code"], 4002);
        // By now the old expiry has passed: the refreshed session still answers.
        assert!(now() >= exp);
        assert_eq!(kept.call(3, "rpc.ping", json!([])).await["result"], "pong");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_authorisation_matrix_holds_and_denied_publications_reach_nobody() {
    within(WAIT, async {
        let mut cfg = config();
        cfg.authorization = Authorization {
            subscribe: vec!["chat:*".into(), "inbox:{sub}".into()],
            publish: vec!["chat:public".into()],
            methods: vec!["echo".into(), "whoami".into()],
            history: None,
            claim: "switchboard".into(),
            ..Authorization::default()
        };
        let server = TestServer::start_with(cfg, vec![]).await;
        let mut alice = connect_as(&server, &hs256(claims("alice"))).await;
        let bob_claims = json!({"sub": "bob", "aud": "switchboard", "exp": now() + 3600,
            "switchboard": {"publish": ["chat:*"], "methods": ["chat.send"]}});
        let mut bob = connect_as(&server, &hs256(bob_claims)).await;
        let sub = |topic: &str| json!({"topics": [{"topic": topic}]});
        let code = |v: &Value| v["error"]["code"].as_i64();
        // Subscribe: users × topics.
        for (who, topic, allowed) in [
            ("alice", "chat:x", true),
            ("alice", "news", false),
            ("alice", "inbox:alice", true),
            ("alice", "inbox:bob", false),
            ("alice", "user:alice", true),
            ("alice", "user:bob", false),
            ("bob", "chat:public", true),
            ("bob", "inbox:bob", true),
        ] {
            let c = if who == "alice" { &mut alice } else { &mut bob };
            let r = c.call(10, "rpc.subscribe", sub(topic)).await;
            assert_eq!(r.get("result").is_some(), allowed, "{who} subscribe {topic}: {r}");
            if !allowed {
                assert_eq!(code(&r), Some(-32001), "{r}");
            }
        }
        // Publish: alice only on chat:public; bob (by claim) on any chat topic.
        let r = alice
            .call(20, "rpc.publish", json!({"topic": "chat:x", "data": "denied"}))
            .await;
        assert_eq!(code(&r), Some(-32001));
        let r = alice
            .call(21, "rpc.publish", json!({"topic": "chat:public", "data": "ok"}))
            .await;
        assert!(r.get("result").is_some(), "{r}");
        let m = bob.recv().await;
        assert_eq!(m["params"]["data"], "ok", "bob is subscribed to chat:public: {m}");
        let r = bob
            .call(22, "rpc.publish", json!({"topic": "chat:x", "data": "from bob"}))
            .await;
        assert!(r.get("result").is_some(), "{r}");
        // alice (subscribed to chat:x) receives bob's publication, but never her denied one.
        loop {
            let m = alice.recv().await;
            if m["method"] == "rpc.message" {
                assert_eq!(m["params"]["data"], "from bob");
                break;
            }
        }
        // Methods.
        assert_eq!(alice.call(30, "echo", json!([1])).await["result"], json!([1]));
        let r = alice.call(31, "chat.send", json!({"room": "x", "text": "no"})).await;
        assert_eq!(code(&r), Some(-32001), "{r}");
        assert_eq!(r["error"]["data"]["method"], "chat.send");
        let r = bob.call(32, "chat.send", json!({"room": "x", "text": "yes"})).await;
        assert!(r.get("result").is_some() || r["method"] == "rpc.message", "{r}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn http_rpc_and_metrics_need_credentials() {
    within(WAIT, async {
        let mut cfg = config();
        cfg.api_keys = vec![ApiKey {
            name: "ops".into(),
            key: "api-key-0123456789".into(),
            scopes: vec![],
        }];
        let server = TestServer::start_with(cfg, vec![]).await;
        let rpc = server.http_url("/rpc");
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "whoami"}).to_string();
        let r = http_post(&rpc, &body, &[]).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"]["code"], -32000);
        let bearer = format!("Bearer {}", hs256(claims("hank")));
        let r = http_post(&rpc, &body, &[("authorization", &bearer)]).await;
        assert_eq!(r.json()["result"]["user"], "hank");
        let metrics = server.http_url("/metrics");
        let r = http_get(&metrics, &[]).await;
        assert_eq!(r.status, 401);
        let r = http_get(&metrics, &[("authorization", "Bearer api-key-0123456789")]).await;
        assert_eq!(r.status, 200);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn origin_session_and_rate_limits_trip_with_their_documented_errors() {
    within(WAIT, async {
        let mut cfg = config();
        cfg.allowed_origins = vec!["http://good.example".into()];
        cfg.limits.max_sessions_per_user = 2;
        cfg.limits.rate_per_second = 1;
        cfg.limits.rate_burst = 5;
        cfg.limits.rate_abuse_close = 20;
        let server = TestServer::start_with(cfg, vec![]).await;
        let token = hs256(claims("lim"));
        let with_origin = |origin: &str| {
            let mut r = with_bearer(request(&server, ""), &token);
            r.headers_mut().insert("origin", origin.parse().expect("header"));
            r
        };
        assert_eq!(refused_status(with_origin("http://evil.example")).await, 403);
        let (mut first, _) = WsClient::try_connect(with_origin("http://good.example"))
            .await
            .expect("allowed origin");
        first.welcome().await;
        let _second = connect_as(&server, &token).await;
        assert_eq!(
            refused_status(with_bearer(request(&server, ""), &token)).await,
            429,
            "the newest is refused"
        );
        // Rate: a burst of 5 passes, the rest are refused with -32002, and abuse closes with 4004.
        for id in 0..10 {
            first
                .send_json(&json!({"jsonrpc": "2.0", "id": id, "method": "rpc.ping"}))
                .await;
        }
        let mut ok = 0;
        let mut limited = 0;
        for _ in 0..10 {
            let r = first.recv().await;
            if r["result"] == "pong" {
                ok += 1;
            } else {
                assert_eq!(r["error"]["code"], -32002, "{r}");
                limited += 1;
            }
        }
        assert!(ok >= 5 && limited >= 3, "ok {ok}, limited {limited}");
        for id in 100..140 {
            first
                .send_json(&json!({"jsonrpc": "2.0", "id": id, "method": "rpc.ping"}))
                .await;
        }
        let closed = first.closed(&mut Vec::new()).await;
        assert_eq!(closed.code, Some(4004));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_connect_hook_decides_on_upgrades() {
    within(WAIT, async {
        use axum::routing::post;
        let hook = axum::Router::new().route(
            "/hook",
            post(|axum::Json(req): axum::Json<Value>| async move {
                if req["headers"]["authorization"] == "Bearer let-me-in" {
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"user": "hooked", "claims": {"role": "tester"}})),
                    )
                } else {
                    (axum::http::StatusCode::FORBIDDEN, axum::Json(json!({})))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let hook_addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, hook).await.expect("hook") });
        let cfg = Config {
            demo: Some(true),
            auth: Some(AuthConfig {
                jwt: vec![],
                jwks: None,
                audience: vec![],
                issuer: vec![],
                leeway_s: 0,
                expiry_warning_ms: 60_000,
                connect_hook: Some(ConnectHook {
                    url: format!("http://{hook_addr}/hook"),
                    timeout_ms: 2_000,
                }),
            }),
            ..Config::default()
        };
        let server = TestServer::start_with(cfg, vec![]).await;
        let mut c = connect_as(&server, "let-me-in").await;
        assert_eq!(c.call(1, "whoami", json!([])).await["result"]["user"], "hooked");
        assert_eq!(refused_status(with_bearer(request(&server, ""), "wrong")).await, 401);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn upgrades_are_limited_per_client_address_behind_trusted_proxies() {
    within(WAIT, async {
        let limits = switchboard_server::Limits {
            upgrades_per_ip_per_minute: 3,
            ..Default::default()
        };
        let cfg = Config {
            limits,
            trusted_proxies: vec!["127.0.0.1".parse().expect("ip")],
            ..config()
        };
        let server = TestServer::start_with(cfg, vec![]).await;
        let token = hs256(claims("ivan"));
        let from = |forwarded: &str| {
            let mut r = with_bearer(request(&server, ""), &token);
            r.headers_mut()
                .insert("x-forwarded-for", forwarded.parse().expect("header"));
            r
        };
        let mut open = Vec::new();
        for _ in 0..3 {
            let (c, _) = WsClient::try_connect(from("203.0.113.7"))
                .await
                .expect("within the limit");
            open.push(c);
        }
        assert_eq!(
            refused_status(from("203.0.113.7")).await,
            429,
            "the fourth upgrade in a minute is refused"
        );
        // Another client behind the same proxy has its own allowance.
        let (c, _) = WsClient::try_connect(from("203.0.113.8"))
            .await
            .expect("another address");
        drop(c);
        // Entries a client prepends itself do not help it: the rightmost untrusted address counts.
        assert_eq!(refused_status(from("198.51.100.9, 203.0.113.7")).await, 429);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn rpc_presence_is_refused_outside_authorization_presence() {
    within(WAIT, async {
        let mut cfg = config();
        cfg.presence_topics = Some(vec!["room:*".into()]);
        cfg.authorization = Authorization {
            subscribe: vec!["room:*".into()],
            presence: Some(vec!["room:lobby".into()]),
            ..Authorization::default()
        };
        let server = TestServer::start_with(cfg, vec![]).await;
        let token = |sub: &str, extra: Value| {
            let mut claims = json!({"sub": sub, "aud": "switchboard", "exp": now() + 3600});
            if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
                c.extend(e.clone());
            }
            hs256(claims)
        };
        let mut amy = connect_as(&server, &token("amy", json!({}))).await;
        for (id, topic) in [(1, "room:lobby"), (2, "room:quiet")] {
            let r = amy
                .call(id, "rpc.subscribe", json!({"topics": [{"topic": topic}]}))
                .await;
            assert!(r.get("result").is_some(), "{r}");
        }
        let r = amy.call(3, "rpc.presence", json!({"topic": "room:lobby"})).await;
        assert_eq!(r["result"][0]["user"], "amy", "allowed: {r}");
        // She may subscribe to room:quiet but not see who else is there.
        let r = amy.call(4, "rpc.presence", json!({"topic": "room:quiet"})).await;
        assert_eq!(r["error"]["code"], -32001, "{r}");
        assert!(r["error"]["data"]["reason"].is_string(), "{r}");
        // A token's claim may add presence patterns for its user.
        let mut bo = connect_as(
            &server,
            &token("bo", json!({"switchboard": {"presence": ["room:quiet"]}})),
        )
        .await;
        let r = bo.call(5, "rpc.presence", json!({"topic": "room:quiet"})).await;
        assert_eq!(r["result"][0]["user"], "amy", "{r}");
    })
    .await;
}

/// Accepts TLS connections for `axum::serve`, counting the handshakes
/// that fail (a client that does not trust the certificate).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    refused: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            match self.tls.accept(tcp).await {
                Ok(tls) => return (tls, addr),
                Err(_) => {
                    self.refused.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A JWKS served at `/jwks.json` over HTTPS, with a certificate for
/// `localhost` issued by a private CA made here.
struct HttpsJwks {
    port: u16,
    /// The CA's certificate, PEM.
    authority: String,
    /// How many TLS handshakes failed.
    refused: Arc<AtomicUsize>,
}

async fn https_jwks(jwks: String) -> HttpsJwks {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut authority = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    authority.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let authority =
        rcgen::CertifiedIssuer::self_signed(authority, rcgen::KeyPair::generate().expect("key")).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &authority)
        .expect("certificate");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = tcp.local_addr().expect("addr").port();
    let refused = Arc::new(AtomicUsize::new(0));
    let listener = TlsListener {
        tcp,
        tls: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        refused: refused.clone(),
    };
    let app = axum::Router::new().route("/jwks.json", axum::routing::get(move || async move { jwks }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    HttpsJwks {
        port,
        authority: authority.pem(),
        refused,
    }
}

fn jwks_config(port: u16, ca_file: Option<std::path::PathBuf>) -> Config {
    let mut cfg = config();
    cfg.auth.as_mut().expect("auth").jwks = Some(JwksSource {
        file: None,
        url: Some(format!("https://localhost:{port}/jwks.json")),
        ca_file,
        refresh_ms: 1_000,
    });
    cfg
}

#[tokio::test]
async fn a_jwks_over_https_under_a_private_ca_is_trusted_through_ca_file() {
    within(WAIT * 2, async {
        let secret = "jwks-over-https-secret-0123456789abcdef";
        let jwks = json!({"keys": [{"kty": "oct", "kid": "web-1", "alg": "HS256", "k": base64url(secret.as_bytes())}]});
        let served = https_jwks(jwks.to_string()).await;
        let dir = std::env::temp_dir().join(format!("sb-jwks-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, &served.authority).expect("write the CA");
        let token = {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some("web-1".into());
            jsonwebtoken::encode(&h, &claims("wendy"), &EncodingKey::from_secret(secret.as_bytes())).expect("sign")
        };

        // Without the CA file the gateway does not trust the JWKS server: its
        // fetch fails the handshake, it has no key, and the token is refused.
        let untrusting = TestServer::start_with(jwks_config(served.port, None), vec![]).await;
        assert!(
            switchboard_tests::eventually(WAIT, || served.refused.load(Ordering::SeqCst) > 0).await,
            "the gateway never tried the JWKS URL"
        );
        assert_eq!(refused_status(with_bearer(request(&untrusting, ""), &token)).await, 401);
        untrusting.stop().await;

        // Trusted through the CA file: the key is fetched, and a token it signed is accepted.
        let server = TestServer::start_with(jwks_config(served.port, Some(ca_file.clone())), vec![]).await;
        let mut welcomed = None;
        let deadline = tokio::time::Instant::now() + WAIT;
        while welcomed.is_none() && tokio::time::Instant::now() < deadline {
            match WsClient::try_connect(with_bearer(request(&server, ""), &token)).await {
                Ok((mut c, _)) => {
                    c.welcome().await;
                    welcomed = Some(c);
                }
                // The first fetch has not landed yet: ask again shortly.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let mut c = welcomed.expect("the JWKS fetched over HTTPS verifies the token");
        assert_eq!(c.call(1, "whoami", json!([])).await["result"]["user"], "wendy");
        server.stop().await;

        // A CA file that holds no certificate is refused when the gateway is built.
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let built = switchboard_server::Gateway::builder(jwks_config(served.port, Some(empty))).build();
        let error = built.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("auth.jwks.ca_file"), "{error}");
        std::fs::remove_dir_all(&dir).ok();
    })
    .await;
}
