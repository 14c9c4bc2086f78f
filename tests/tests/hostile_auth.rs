//! Hostile input around authentication, against the real binary with
//! JWT authentication on: tokens with odd but validly signed expiry times,
//! and what the gateway writes to its log (never a token, a key or a
//! secret, whatever the log level).
//!
//! Every test runs under [`within`]; nothing sleeps to wait for a condition.

mod hostile_support;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use switchboard_protocol::codes::close;
use switchboard_tests::{WAIT, WsClient, http_get, http_post, switchboard_binary, within};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use hostile_support::{Binary, limits, ping};

const SECRET: &str = "hostile-auth-test-secret-0123456789";
const API_KEY: &str = "hostile-auth-test-api-key-0123456789";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// An HS256 token with these claims.
fn token(claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("encode")
}

/// A configuration with HS256 authentication and an API key.
fn auth_config(extra_limits: &str) -> String {
    format!(
        "{}\n[auth]\nexpiry_warning_ms = 1000\n\n[[auth.jwt]]\nalgorithm = \"HS256\"\nsecret = \"{SECRET}\"\n\n\
         [[api_keys]]\nname = \"tests\"\nkey = \"{API_KEY}\"\n",
        limits(extra_limits)
    )
}

/// Connects with `?token=`.
async fn connect(addr: std::net::SocketAddr, token: &str) -> WsClient {
    let mut c = WsClient::connect(&format!("ws://{addr}/ws?token={token}")).await;
    c.welcome().await;
    c
}

/// `stats` of the server API, with the key.
async fn sessions(addr: std::net::SocketAddr) -> u64 {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "stats"}).to_string();
    let r = http_post(
        &format!("http://{addr}/api"),
        &body,
        &[("authorization", &format!("Bearer {API_KEY}"))],
    )
    .await
    .json();
    r["result"]["sessions"].as_u64().unwrap_or_else(|| panic!("stats: {r}"))
}

async fn sessions_become(addr: std::net::SocketAddr, n: u64) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if sessions(addr).await == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A token valid for centuries past any clock (an `exp` near `u64::MAX`)
/// gives an ordinary session that can refresh, be used and end cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_expiry_gives_an_ordinary_session() {
    within(Duration::from_secs(60), async {
        let node = Binary::start("absurd-exp", &auth_config(""));
        let addr = node.addr();
        let absurd = token(json!({"sub": "methuselah", "exp": 10_000_000_000_000_000_000u64}));
        let mut c = connect(addr, &absurd).await;
        ping(&mut c, "alive").await;
        let r = c
            .call(
                1,
                "rpc.refresh",
                json!({"token": token(json!({"sub": "methuselah", "exp": u64::MAX}))}),
            )
            .await;
        assert!(r.get("result").is_some(), "refreshed: {r}");
        ping(&mut c, "still-alive").await;
        assert_eq!(sessions(addr).await, 1);
        c.ws.close(None).await.expect("close");
        assert!(
            sessions_become(addr, 0).await,
            "the session ends cleanly, nothing left behind"
        );
        let mut fresh = connect(addr, &token(json!({"sub": "fresh", "exp": now() + 600}))).await;
        ping(&mut fresh, "fresh").await;
    })
    .await;
}

/// RFC 7519 allows a fraction in `exp`: such a session is warned and closed
/// with 4002 when its token expires, like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fractional_expiry_still_expires() {
    within(Duration::from_secs(60), async {
        let node = Binary::start("fraction-exp", &auth_config(""));
        let exp = now() as f64 + 2.4;
        let mut c = connect(node.addr(), &token(json!({"sub": "fraction", "exp": exp}))).await;
        let mut before = Vec::new();
        let closed = c.closed(&mut before).await;
        assert_eq!(
            closed.code,
            Some(close::TOKEN_EXPIRED),
            "{closed:?}, frames before: {before:?}"
        );
        assert!(
            before.iter().any(|f| f["method"] == "rpc.expiring"),
            "warned before the close: {before:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expires_even_while_its_client_floods() {
    within(Duration::from_secs(60), async {
        // No rate limit to speak of: the flood must not be cut for its rate.
        let node = Binary::start(
            "flood-exp",
            &auth_config("rate_per_second = 100000000\nrate_burst = 100000000"),
        );
        let exp = now() + 3;
        let c = connect(node.addr(), &token(json!({"sub": "flooder", "exp": exp}))).await;
        let (mut tx, mut rx) = futures_util::StreamExt::split(c.ws);
        // Notifications nobody answers, as fast as the socket takes them: the
        // session always has something to read.
        let flood = tokio::spawn(async move {
            let frame = r#"{"jsonrpc":"2.0","method":"nothing.here","params":[0]}"#;
            let mut sent = 0u64;
            while futures_util::SinkExt::send(&mut tx, Message::text(frame)).await.is_ok() {
                sent += 1;
            }
            sent
        });
        let code = loop {
            match futures_util::StreamExt::next(&mut rx).await {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break None,
            }
        };
        let sent = flood.await.expect("the flooder ends when the connection does");
        assert_eq!(
            code,
            Some(close::TOKEN_EXPIRED),
            "closed for its expiry after {sent} notifications"
        );
    })
    .await;
}

/// The binary with authentication on and every log line kept, at `trace`.
struct Logged {
    child: Child,
    log: PathBuf,
    addr: std::net::SocketAddr,
}

impl Logged {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("switchboard-logged-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let config = dir.join("config.toml");
        std::fs::write(&config, auth_config("")).expect("write the configuration");
        let log = dir.join("stderr.log");
        let child = Command::new(switchboard_binary())
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("RUST_LOG", "trace")
            // tracing writes to stdout, the banner to stderr: keep both.
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(std::fs::File::create(dir.join("banner.log")).expect("banner file"))
            .spawn()
            .expect("start switchboard");
        let deadline = std::time::Instant::now() + WAIT;
        let addr = loop {
            let text = std::fs::read_to_string(dir.join("banner.log")).unwrap_or_default();
            // Only whole lines: the banner may be caught half written.
            let whole = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
            if let Some(addr) = whole
                .lines()
                .find_map(|l| l.split("switchboard listening on http://").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
            {
                break addr.parse().expect("address");
            }
            assert!(std::time::Instant::now() < deadline, "the binary did not start: {text}");
            std::thread::sleep(Duration::from_millis(10));
        };
        Self { child, log, addr }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = self.log.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Tokens (valid, invalid, expired; in the query, the header, the
/// subprotocol and `rpc.refresh`), API keys and the JWT secret never reach
/// the log, even at `trace`; a query's `token=` is logged redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_keys_and_secrets_never_reach_the_log() {
    within(Duration::from_secs(60), async {
        let mut node = Logged::start();
        let addr = node.addr;
        let good = token(json!({"sub": "logged", "exp": now() + 600}));
        let expired = token(json!({"sub": "logged", "exp": now() - 3600}));
        let forged = {
            let t = token(json!({"sub": "admin", "exp": now() + 600}));
            format!("{}forged", &t[..t.len() - 6])
        };

        // Refused upgrades: token in the query, the header, the subprotocol.
        for bad in [&expired, &forged] {
            let bearer = format!("Bearer {bad}");
            let upgrade = http_get(
                &format!("http://{addr}/ws?token={bad}&room=1"),
                &[
                    ("upgrade", "websocket"),
                    ("connection", "upgrade"),
                    ("sec-websocket-version", "13"),
                    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ],
            )
            .await;
            assert_eq!(upgrade.status, 401);
            let rpc = http_post(
                &format!("http://{addr}/rpc"),
                r#"{"jsonrpc":"2.0","id":1,"method":"rpc.ping"}"#,
                &[("authorization", &bearer)],
            )
            .await;
            assert_eq!(rpc.status, 401);
            let mut request = format!("ws://{addr}/ws").into_client_request().expect("request");
            request.headers_mut().insert(
                "sec-websocket-protocol",
                format!("switchboard.v1, bearer.{bad}").parse().expect("header"),
            );
            assert!(WsClient::try_connect(request).await.is_err(), "refused");
        }
        // Accepted sessions, each way, and a refresh with a bad and a good token.
        let mut c = connect(addr, &good).await;
        let r = c.call(1, "rpc.refresh", json!({"token": forged})).await;
        assert!(r.get("error").is_some(), "{r}");
        let r = c.call(2, "rpc.refresh", json!({"token": good})).await;
        assert!(r.get("result").is_some(), "{r}");
        let mut request = format!("ws://{addr}/ws").into_client_request().expect("request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            format!("switchboard.v1, bearer.{good}").parse().expect("header"),
        );
        let (mut by_protocol, _) = WsClient::try_connect(request).await.expect("accepted");
        by_protocol.welcome().await;
        // The server API with a wrong key and the right one.
        for key in ["wrong-key-0123456789", API_KEY] {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "stats"}).to_string();
            http_post(
                &format!("http://{addr}/api"),
                &body,
                &[("authorization", &format!("Bearer {key}"))],
            )
            .await;
        }
        drop((c, by_protocol));
        assert!(sessions_become(addr, 0).await);
        node.child.kill().expect("kill");
        node.child.wait().expect("wait");

        let log = std::fs::read_to_string(&node.log).expect("the log");
        eprintln!("{} log lines at trace", log.lines().count());
        for (what, secret) in [
            ("a valid token", good.as_str()),
            ("an expired token", expired.as_str()),
            ("a forged token", forged.as_str()),
            ("a token's signature", good.rsplit('.').next().expect("signature")),
            ("the API key", API_KEY),
            ("a wrong API key", "wrong-key-0123456789"),
            ("the JWT secret", SECRET),
        ] {
            assert!(!log.contains(secret), "{what} is in the log");
        }
        assert!(log.contains("token=[redacted]"), "a refused query is logged redacted");
    })
    .await;
}
