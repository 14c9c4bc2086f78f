//! The upstream proxy against a real local HTTP JSON-RPC backend: answers,
//! identity headers and their signature, and every way a backend can fail,
//! over WebSocket and over `POST /rpc`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use switchboard_server::{Config, Limits, UpstreamConfig};
use switchboard_tests::{TestServer, WAIT, error_code, http_get, http_post, within};
use tokio::sync::{Notify, mpsc};

const SECRET: &str = "upstream-secret-0123456789";
const SLOW_TIMEOUT_MS: u64 = 300;

/// What the backend saw of one request.
#[derive(Debug)]
struct Seen {
    method: String,
    id: Option<Value>,
    user: Option<String>,
    session: Option<String>,
    claims: Option<Value>,
    signature_ok: bool,
}

struct Backend {
    seen: mpsc::UnboundedSender<Seen>,
    release: Notify,
    /// Notified when a `billing.abandon` request is dropped: its HTTP client went away.
    abandoned: Arc<Notify>,
}

/// Notifies when dropped.
struct OnDrop(Arc<Notify>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The documented recipe, as a backend in any language would write it.
fn verify(headers: &HeaderMap, body: &str) -> bool {
    let get = |name| header(headers, name).unwrap_or_default();
    let signed = format!(
        "{}\n{}\n{}\n{}\n{}",
        get("x-switchboard-timestamp"),
        get("x-switchboard-user"),
        get("x-switchboard-session"),
        get("x-switchboard-claims"),
        body
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let Some(signature) = decode_hex(&get("x-switchboard-signature")) else {
        return false;
    };
    ring::hmac::verify(&key, signed.as_bytes(), &signature).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

async fn handle(State(backend): State<Arc<Backend>>, headers: HeaderMap, body: String) -> Response {
    let request: Value = serde_json::from_str(&body).expect("the gateway sends JSON");
    let method = request["method"].as_str().unwrap_or_default().to_owned();
    let id = request.get("id").cloned();
    let claims = header(&headers, "x-switchboard-claims")
        .and_then(|c| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok())
        .and_then(|c| serde_json::from_slice(&c).ok());
    let seen = Seen {
        method: method.clone(),
        id: id.clone(),
        user: header(&headers, "x-switchboard-user"),
        session: header(&headers, "x-switchboard-session"),
        claims,
        signature_ok: verify(&headers, &body),
    };
    let _ = backend.seen.send(seen);
    let answer = |payload: Value| {
        let mut frame = json!({"jsonrpc": "2.0", "id": id.clone()});
        frame
            .as_object_mut()
            .expect("object")
            .extend(payload.as_object().cloned().unwrap_or_default());
        ([("content-type", "application/json")], frame.to_string()).into_response()
    };
    match method.as_str() {
        "billing.echo" => answer(json!({"result": {"params": request["params"], "id_seen": id}})),
        "billing.fail" => {
            answer(json!({"error": {"code": 1234, "message": "insufficient funds", "data": {"balance": 0}}}))
        }
        "billing.broken" => (StatusCode::INTERNAL_SERVER_ERROR, "it broke").into_response(),
        "billing.html" => ([("content-type", "text/html")], "<html>not json</html>").into_response(),
        "billing.other_id" => (
            [("content-type", "application/json")],
            r#"{"jsonrpc":"2.0","id":999999999,"result":1}"#,
        )
            .into_response(),
        "billing.hold" => {
            backend.release.notified().await;
            answer(json!({"result": "released"}))
        }
        "slow.wait" => std::future::pending().await,
        "billing.abandon" => {
            let _dropped = OnDrop(backend.abandoned.clone());
            std::future::pending().await
        }
        _ if id.is_none() => StatusCode::NO_CONTENT.into_response(),
        _ => answer(json!({"error": {"code": -32601, "message": "Method not found"}})),
    }
}

/// A local HTTP JSON-RPC backend; returns its URL and what it sees.
async fn start_backend() -> (String, Arc<Backend>, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let backend = Arc::new(Backend {
        seen: tx,
        release: Notify::new(),
        abandoned: Arc::new(Notify::new()),
    });
    let app = axum::Router::new()
        .route("/rpc", axum::routing::post(handle))
        .with_state(backend.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/rpc", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, backend, rx)
}

/// A URL where nothing listens (a port bound, then let go).
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/rpc")
}

async fn gateway(url: &str, max_in_flight: usize) -> TestServer {
    let entry = |prefix: &str, url: &str, timeout_ms| UpstreamConfig {
        prefix: prefix.into(),
        url: url.into(),
        timeout_ms,
        secret: SECRET.into(),
    };
    let config = Config {
        limits: Limits {
            max_in_flight,
            ..Limits::default()
        },
        upstreams: vec![
            entry("billing.", url, 10_000),
            entry("slow.", url, SLOW_TIMEOUT_MS),
            entry("down.", &dead_url().await, 10_000),
        ],
        ..Config::default()
    };
    TestServer::start_with(config, vec![]).await
}

async fn next_seen(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the backend saw a request in time")
        .expect("backend running")
}

async fn http_rpc(server: &TestServer, user: &str, body: &str) -> (u16, String) {
    let reply = http_post(&server.http_url(&format!("/rpc?user={user}")), body, &[]).await;
    (reply.status, reply.body)
}

#[tokio::test]
async fn a_call_reaches_the_backend_signed_and_its_answer_keeps_the_clients_id() {
    within(
        WAIT,
        Box::pin(async {
            let (url, _backend, mut seen) = start_backend().await;
            let server = gateway(&url, 64).await;
            let mut alice = server.connect("alice").await;

            // An id written in an unusual way comes back byte for byte.
            alice
                .send(r#"{"jsonrpc":"2.0","id":"c-\u0041","method":"billing.echo","params":{"amount":5}}"#)
                .await;
            let text = alice.recv_text().await;
            assert!(text.contains(r#""id":"c-\u0041""#), "the id is echoed exactly: {text}");
            let reply: Value = serde_json::from_str(&text).expect("json");
            assert_eq!(reply["result"]["params"], json!({"amount": 5}));

            let request = next_seen(&mut seen).await;
            assert_eq!(request.method, "billing.echo");
            assert!(
                request.id.as_ref().is_some_and(Value::is_u64),
                "the backend gets a fresh integer id"
            );
            assert_eq!(reply["result"]["id_seen"], request.id.clone().expect("id"));
            assert_eq!(request.user.as_deref(), Some("alice"));
            assert_eq!(request.session.as_deref(), Some(alice.session.as_str()));
            assert_eq!(request.claims, Some(json!({})));
            assert!(request.signature_ok, "the documented recipe verifies the signature");

            // The same over HTTP: no session header, and the signature still holds.
            let (status, body) = http_rpc(
                &server,
                "bob",
                r#"{"jsonrpc":"2.0","id":7,"method":"billing.echo","params":[1,2]}"#,
            )
            .await;
            assert_eq!(status, 200);
            let reply: Value = serde_json::from_str(&body).expect("json");
            assert_eq!(reply["id"], 7);
            assert_eq!(reply["result"]["params"], json!([1, 2]));
            let request = next_seen(&mut seen).await;
            assert_eq!(request.user.as_deref(), Some("bob"));
            assert_eq!(request.session, None);
            assert!(request.signature_ok);

            // Both calls are timed under their route, never under the method the client named.
            let metrics = http_get(&server.http_url("/metrics"), &[]).await.body;
            let count = metrics
                .lines()
                .find_map(|line| line.strip_prefix(r#"switchboard_call_duration_seconds_count{method="billing.*"} "#))
                .and_then(|n| n.parse::<u64>().ok());
            assert!(count.is_some_and(|n| n >= 2), "{metrics}");
            assert!(!metrics.contains(r#"method="billing.echo""#), "{metrics}");
        }),
    )
    .await;
}

#[tokio::test]
async fn a_backend_error_is_passed_through_unchanged() {
    within(
        WAIT,
        Box::pin(async {
            let (url, _backend, _seen) = start_backend().await;
            let server = gateway(&url, 64).await;
            let mut c = server.connect("alice").await;
            let expected = json!({"code": 1234, "message": "insufficient funds", "data": {"balance": 0}});
            let reply = c.call(1, "billing.fail", json!({})).await;
            assert_eq!(reply, json!({"jsonrpc": "2.0", "id": 1, "error": expected}));
            let (_, body) = http_rpc(&server, "bob", r#"{"jsonrpc":"2.0","id":"x","method":"billing.fail"}"#).await;
            assert_eq!(
                serde_json::from_str::<Value>(&body).expect("json"),
                json!({"jsonrpc": "2.0", "id": "x", "error": expected})
            );
            // A method the backend does not know is the backend's own -32601.
            assert_eq!(error_code(&c.call(2, "billing.nope", json!([])).await), Some(-32601));
            // A method no backend serves is the gateway's -32601.
            assert_eq!(error_code(&c.call(3, "nobody.serves", json!([])).await), Some(-32601));
        }),
    )
    .await;
}

#[tokio::test]
async fn a_failing_backend_is_upstream_failed_with_a_reason() {
    within(
        WAIT,
        Box::pin(async {
            let (url, _backend, _seen) = start_backend().await;
            let server = gateway(&url, 64).await;
            let mut c = server.connect("alice").await;
            for (id, method) in [
                (1, "down.anything"),
                (2, "billing.broken"),
                (3, "billing.html"),
                (4, "billing.other_id"),
            ] {
                let reply = c.call(id, method, json!({})).await;
                assert_eq!(error_code(&reply), Some(-32006), "{method}: {reply}");
                assert!(reply["error"]["data"]["reason"].is_string(), "{method}: {reply}");
                let (status, body) = http_rpc(
                    &server,
                    "bob",
                    &json!({"jsonrpc": "2.0", "id": id, "method": method}).to_string(),
                )
                .await;
                assert_eq!(status, 200);
                let reply: Value = serde_json::from_str(&body).expect("json");
                assert_eq!(error_code(&reply), Some(-32006), "{method} over HTTP: {reply}");
                assert_eq!(reply["id"], id);
            }
            // The session is still fine.
            assert_eq!(
                c.call(9, "billing.echo", json!([])).await["result"]["params"],
                json!([])
            );
        }),
    )
    .await;
}

#[tokio::test]
async fn a_slow_backend_times_out_with_minus_32004() {
    within(
        WAIT,
        Box::pin(async {
            let (url, _backend, _seen) = start_backend().await;
            let server = gateway(&url, 64).await;
            let mut c = server.connect("alice").await;
            let started = Instant::now();
            let reply = c.call(1, "slow.wait", json!({})).await;
            let took = started.elapsed();
            assert_eq!(error_code(&reply), Some(-32004), "{reply}");
            assert_eq!(reply["error"]["data"]["timeout_ms"], SLOW_TIMEOUT_MS);
            assert!(
                took >= Duration::from_millis(SLOW_TIMEOUT_MS),
                "not before the timeout: {took:?}"
            );
            assert!(took < Duration::from_secs(5), "soon after the timeout: {took:?}");

            let (_, body) = http_rpc(&server, "bob", r#"{"jsonrpc":"2.0","id":2,"method":"slow.wait"}"#).await;
            assert_eq!(error_code(&serde_json::from_str(&body).expect("json")), Some(-32004));
        }),
    )
    .await;
}

#[tokio::test]
async fn notifications_are_forwarded_and_get_no_answer() {
    within(
        WAIT,
        Box::pin(async {
            let (url, _backend, mut seen) = start_backend().await;
            let server = gateway(&url, 64).await;
            let mut c = server.connect("alice").await;
            c.send(r#"{"jsonrpc":"2.0","method":"billing.note","params":{"n":1}}"#)
                .await;
            let request = next_seen(&mut seen).await;
            assert_eq!(request.method, "billing.note");
            assert_eq!(request.id, None, "forwarded as a notification");
            assert!(request.signature_ok);
            // Nothing came back: the next frame is the answer to a probe.
            assert_eq!(
                c.call(5, "rpc.ping", json!([])).await,
                switchboard_tests::result(json!(5), json!("pong"))
            );

            let (status, body) = http_rpc(&server, "bob", r#"{"jsonrpc":"2.0","method":"billing.note"}"#).await;
            assert_eq!((status, body.as_str()), (204, ""));
            assert_eq!(next_seen(&mut seen).await.method, "billing.note");
        }),
    )
    .await;
}

#[tokio::test]
async fn forwarded_calls_count_against_the_in_flight_limit() {
    within(
        WAIT,
        Box::pin(async {
            let (url, backend, mut seen) = start_backend().await;
            let server = gateway(&url, 1).await;
            let mut c = server.connect("alice").await;
            c.send(r#"{"jsonrpc":"2.0","id":1,"method":"billing.hold"}"#).await;
            // Once the backend holds the first call, the session has no slot left.
            assert_eq!(next_seen(&mut seen).await.method, "billing.hold");
            let reply = c.call(2, "billing.echo", json!([])).await;
            assert_eq!(error_code(&reply), Some(-32003), "{reply}");
            backend.release.notify_one();
            assert_eq!(c.recv().await, switchboard_tests::result(json!(1), json!("released")));
            // The slot is free again.
            assert_eq!(
                c.call(3, "billing.echo", json!([])).await["result"]["params"],
                json!([])
            );
        }),
    )
    .await;
}

#[tokio::test]
async fn a_cancelled_call_aborts_its_http_request_to_the_backend() {
    within(
        WAIT,
        Box::pin(async {
            let (url, backend, mut seen) = start_backend().await;
            let server = gateway(&url, 1).await;
            let mut alice = server.connect("alice").await;
            alice
                .send(r#"{"jsonrpc":"2.0","id":"a","method":"billing.abandon"}"#)
                .await;
            assert_eq!(next_seen(&mut seen).await.method, "billing.abandon");
            alice
                .send(r#"{"jsonrpc":"2.0","method":"rpc.cancel","params":{"id":"a"}}"#)
                .await;
            assert_eq!(
                alice.recv().await,
                json!({"jsonrpc": "2.0", "id": "a", "error": {"code": -32011, "message": "Cancelled"}})
            );
            // The backend sees its client go: the request to it was aborted.
            backend.abandoned.notified().await;
            // And the session's only slot is free again.
            let echoed = alice.call(2, "billing.echo", json!([1])).await;
            assert_eq!(echoed["result"]["params"], json!([1]), "{echoed}");
            server.stop().await;
        }),
    )
    .await;
}
