//! Replays the conformance vectors in `schemas/vectors/` against a real
//! gateway, over WebSocket and over `POST /rpc`.
//!
//! # The vector format
//!
//! Each file is one rule or error case:
//!
//! ```json
//! {"description": "…", "ws_only": false,
//!  "steps": [{"send": "<raw text frame>", "expect": [<frames>], "expect_text_contains": ["…"]}]}
//! ```
//!
//! * `send` is the text frame exactly as sent, so malformed JSON and exact id
//!   spellings can be expressed.
//! * `expect` lists the frames that come back, in order. An empty list means
//!   no frame comes back: the runner then sends the probe
//!   `{"jsonrpc":"2.0","id":"probe","method":"rpc.ping"}` and requires the
//!   very next frame to be its pong. The probe also follows every non-empty
//!   step, so an extra frame is caught too.
//! * A frame matches when it has exactly the expected top-level members
//!   (`jsonrpc`, `id`, `result`/`error`/`method`/`params`) and every member's
//!   value matches: an expected object matches an actual object that has at
//!   least its keys, recursively (so error frames may omit `message` and
//!   `data`); arrays match element by element; numbers match by value. A
//!   batch answer (a top-level array) may come in any order, as JSON-RPC 2.0
//!   allows, so its elements are matched regardless of order.
//! * `expect_text_contains` lists strings each of which must occur in the raw
//!   text of some reply of that step (ids are compared by their exact text,
//!   so `1.50` must come back as `1.50`).
//! * `ws_only: true` marks vectors that need a WebSocket session (topics).
//!   Every other vector is replayed over HTTP too, each step as its own
//!   `POST /rpc`: an empty `expect` is HTTP 204, a single frame is HTTP 200
//!   with that frame as the body.
//!
//! Clients connect as user `vectors` (`?user=vectors`) to a dev-mode gateway
//! with default limits and the demo methods (`echo`, `demo.sleep`, …), plus
//! the methods the JSON-RPC 2.0 specification's examples call (`subtract`,
//! `sum`, `get_data`, `notify_hello`, `notify_sum`), registered here only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use switchboard_server::protocol::ErrorObject;
use switchboard_server::{Config, Gateway, Request};
use switchboard_tests::{TestServer, WAIT, WsClient, http_post, within};
use tokio_tungstenite::tungstenite::Message;

const PROBE: &str = r#"{"jsonrpc":"2.0","id":"probe","method":"rpc.ping"}"#;

/// The fewest vectors the suite must hold.
const MIN_VECTORS: usize = 15;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    description: String,
    #[serde(default)]
    ws_only: bool,
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    send: String,
    expect: Vec<Value>,
    #[serde(default)]
    expect_text_contains: Vec<String>,
}

/// `subtract`'s params, by position or by name, as in the specification.
#[derive(Deserialize)]
#[serde(untagged)]
enum Subtract {
    ByPosition(i64, i64),
    ByName { minuend: i64, subtrahend: i64 },
}

/// The gateway the vectors run against: the demo, and the specification's methods.
async fn vector_server() -> TestServer {
    let gateway = Gateway::builder(Config::default())
        .method("subtract", |r: Request<'_>| {
            Ok(match r.params::<Subtract>()? {
                Subtract::ByPosition(a, b) => a - b,
                Subtract::ByName { minuend, subtrahend } => minuend - subtrahend,
            })
        })
        .and_then(|b| b.method("sum", |r: Request<'_>| Ok(r.params::<Vec<i64>>()?.iter().sum::<i64>())))
        .and_then(|b| b.method("get_data", |_: Request<'_>| Ok::<_, ErrorObject>(("hello", 5))))
        .and_then(|b| b.method("notify_hello", |r: Request<'_>| r.params::<Vec<i64>>().map(|_| ())))
        .and_then(|b| b.method("notify_sum", |r: Request<'_>| r.params::<Vec<i64>>().map(|_| ())))
        .expect("the specification's methods register")
        .build()
        .expect("gateway builds");
    TestServer::serve(gateway).await
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/vectors")
}

/// Every vector, by file name, in name order.
fn load_vectors() -> Vec<(String, Vector)> {
    let dir = vectors_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: cannot read: {e}"));
            let vector: Vector =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not a valid vector: {e}"));
            (name, vector)
        })
        .collect()
}

/// Numbers are equal when their values are (`1000` and `1e3` alike).
fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    a.as_f64() == b.as_f64()
}

/// An expected value matches an actual one; objects need only the expected keys.
fn value_matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            e.iter().all(|(k, ev)| a.get(k).is_some_and(|av| value_matches(ev, av)))
        }
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(ev, av)| value_matches(ev, av))
        }
        (Value::Number(e), Value::Number(a)) => numbers_equal(e, a),
        _ => expected == actual,
    }
}

/// One message: the same top-level members, each matching.
fn message_matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len() && e.iter().all(|(k, ev)| a.get(k).is_some_and(|av| value_matches(ev, av)))
        }
        _ => value_matches(expected, actual),
    }
}

/// A whole frame: a single message, or a batch answer in any order.
fn frame_matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return false;
            }
            let mut used = vec![false; a.len()];
            e.iter().all(|ev| {
                let found = a
                    .iter()
                    .enumerate()
                    .find(|(i, av)| !used[*i] && message_matches(ev, av))
                    .map(|(i, _)| i);
                match found {
                    Some(i) => {
                        used[i] = true;
                        true
                    }
                    None => false,
                }
            })
        }
        _ => message_matches(expected, actual),
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 300;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

fn check_text_contains(step: &Step, replies: &[String]) -> Result<(), String> {
    for needle in &step.expect_text_contains {
        if !replies.iter().any(|r| r.contains(needle.as_str())) {
            return Err(format!("no reply contains {needle:?}; replies: {replies:?}"));
        }
    }
    Ok(())
}

/// The next text frame, skipping pings and pongs.
async fn next_text(client: &mut WsClient) -> Result<String, String> {
    loop {
        let next = tokio::time::timeout(WAIT, client.ws.next())
            .await
            .map_err(|_| format!("no frame within {WAIT:?}"))?;
        match next {
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(other)) => return Err(format!("expected a text frame, got {other:?}")),
            Some(Err(e)) => return Err(format!("connection failed: {e}")),
            None => return Err("connection closed".to_owned()),
        }
    }
}

async fn run_step_ws(client: &mut WsClient, step: &Step) -> Result<(), String> {
    client
        .ws
        .send(Message::text(step.send.as_str()))
        .await
        .map_err(|e| format!("send failed: {e}"))?;
    let mut replies = Vec::with_capacity(step.expect.len());
    for (i, expected) in step.expect.iter().enumerate() {
        let text = next_text(client).await.map_err(|e| format!("frame {i}: {e}"))?;
        let actual: Value =
            serde_json::from_str(&text).map_err(|e| format!("frame {i} is not JSON ({e}): {}", shorten(&text)))?;
        if !frame_matches(expected, &actual) {
            return Err(format!(
                "frame {i} does not match\n  expected: {}\n  actual:   {}",
                shorten(&expected.to_string()),
                shorten(&text)
            ));
        }
        replies.push(text);
    }
    check_text_contains(step, &replies)?;
    client
        .ws
        .send(Message::text(PROBE))
        .await
        .map_err(|e| format!("probe send failed: {e}"))?;
    let text = next_text(client)
        .await
        .map_err(|e| format!("waiting for the probe's pong: {e}"))?;
    let pong: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if pong != serde_json::json!({"jsonrpc": "2.0", "id": "probe", "result": "pong"}) {
        return Err(format!(
            "expected no further frame before the probe's pong, got: {}",
            shorten(&text)
        ));
    }
    Ok(())
}

async fn run_vector_ws(server: &TestServer, vector: &Vector) -> Result<(), String> {
    let mut client = server.connect("vectors").await;
    for (i, step) in vector.steps.iter().enumerate() {
        run_step_ws(&mut client, step)
            .await
            .map_err(|e| format!("step {i} (sent {}): {e}", shorten(&step.send)))?;
    }
    drop(client);
    Ok(())
}

async fn run_step_http(server: &TestServer, step: &Step) -> Result<(), String> {
    let response = http_post(&server.http_url("/rpc?user=vectors"), &step.send, &[]).await;
    match step.expect.as_slice() {
        [] => {
            if response.status != 204 || !response.body.is_empty() {
                return Err(format!(
                    "expected HTTP 204 with no body, got {} {}",
                    response.status,
                    shorten(&response.body)
                ));
            }
        }
        [expected] => {
            if response.status != 200 {
                return Err(format!(
                    "expected HTTP 200, got {} {}",
                    response.status,
                    shorten(&response.body)
                ));
            }
            if !response
                .header("content-type")
                .is_some_and(|v| v.starts_with("application/json"))
            {
                return Err(format!(
                    "expected content-type application/json, got {:?}",
                    response.header("content-type")
                ));
            }
            let actual: Value = serde_json::from_str(&response.body)
                .map_err(|e| format!("body is not JSON ({e}): {}", shorten(&response.body)))?;
            if !frame_matches(expected, &actual) {
                return Err(format!(
                    "body does not match\n  expected: {}\n  actual:   {}",
                    shorten(&expected.to_string()),
                    shorten(&response.body)
                ));
            }
            check_text_contains(step, std::slice::from_ref(&response.body))?;
        }
        more => {
            return Err(format!("{} frames expected: such a vector must be ws_only", more.len()));
        }
    }
    Ok(())
}

fn report(failures: &[String], over: &str) {
    assert!(
        failures.is_empty(),
        "{} vector(s) failed over {over}:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn vectors_are_well_formed() {
    let vectors = load_vectors();
    assert!(
        vectors.len() >= MIN_VECTORS,
        "expected at least {MIN_VECTORS} vectors in {}, found {}",
        vectors_dir().display(),
        vectors.len()
    );
    for (name, vector) in &vectors {
        assert!(!vector.description.trim().is_empty(), "{name}: empty description");
        assert!(!vector.steps.is_empty(), "{name}: no steps");
        for (i, step) in vector.steps.iter().enumerate() {
            if !vector.ws_only {
                assert!(
                    step.expect.len() <= 1,
                    "{name}: step {i} expects several frames, so mark it ws_only"
                );
            }
            let messages = step.expect.iter().flat_map(|f| match f {
                Value::Array(items) => items.iter().collect::<Vec<_>>(),
                other => vec![other],
            });
            for message in messages {
                assert_eq!(
                    message.get("jsonrpc"),
                    Some(&Value::from("2.0")),
                    "{name}: step {i}: {message}"
                );
                if let Some(error) = message.get("error") {
                    assert!(
                        error.get("code").is_some_and(Value::is_i64),
                        "{name}: step {i}: an expected error needs at least its code: {message}"
                    );
                }
            }
        }
    }
}

#[test]
fn matcher_rules() {
    use serde_json::json;
    let actual = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "Method not found"}});
    assert!(frame_matches(
        &json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601}}),
        &actual
    ));
    assert!(!frame_matches(
        &json!({"jsonrpc": "2.0", "id": 2, "error": {"code": -32601}}),
        &actual
    ));
    assert!(
        !frame_matches(&json!({"jsonrpc": "2.0", "error": {"code": -32601}}), &actual),
        "top level is exact"
    );
    assert!(!frame_matches(
        &json!({"jsonrpc": "2.0", "id": 1, "result": null}),
        &actual
    ));
    let batch = json!([{"jsonrpc": "2.0", "id": 1, "result": 1}, {"jsonrpc": "2.0", "id": 2, "result": 2}]);
    assert!(frame_matches(
        &json!([{"jsonrpc": "2.0", "id": 2, "result": 2}, {"jsonrpc": "2.0", "id": 1, "result": 1}]),
        &batch
    ));
    assert!(!frame_matches(
        &json!([{"jsonrpc": "2.0", "id": 1, "result": 1}]),
        &batch
    ));
    assert!(value_matches(
        &json!(1000.0),
        &serde_json::from_str::<Value>("1e3").expect("json")
    ));
    assert!(
        !value_matches(&json!([1, 2]), &json!([2, 1])),
        "nested arrays keep their order"
    );
}

#[tokio::test]
async fn vectors_over_websocket() {
    let vectors = load_vectors();
    // Each vector has its own guard; this one only catches a hang between them.
    within(WAIT * (vectors.len() as u32 + 1), async {
        let server = vector_server().await;
        let mut failures = Vec::new();
        for (name, vector) in &vectors {
            let outcome = tokio::time::timeout(WAIT, run_vector_ws(&server, vector))
                .await
                .unwrap_or_else(|_| Err(format!("did not finish within {WAIT:?}")));
            if let Err(e) = outcome {
                failures.push(format!("{name} ({}): {e}", vector.description));
            }
        }
        server.stop().await;
        report(&failures, "WebSocket");
    })
    .await;
}

#[tokio::test]
async fn vectors_over_http() {
    let vectors = load_vectors();
    // Each vector has its own guard; this one only catches a hang between them.
    within(WAIT * (vectors.len() as u32 + 1), async {
        let server = vector_server().await;
        let mut failures = Vec::new();
        let mut replayed = 0;
        for (name, vector) in vectors.iter().filter(|(_, v)| !v.ws_only) {
            replayed += 1;
            for (i, step) in vector.steps.iter().enumerate() {
                let outcome = tokio::time::timeout(WAIT, run_step_http(&server, step))
                    .await
                    .unwrap_or_else(|_| Err(format!("did not finish within {WAIT:?}")));
                if let Err(e) = outcome {
                    failures.push(format!(
                        "{name} ({}): step {i} (sent {}): {e}",
                        vector.description,
                        shorten(&step.send)
                    ));
                }
            }
        }
        assert!(replayed >= MIN_VECTORS, "only {replayed} vectors replayed over HTTP");
        server.stop().await;
        report(&failures, "HTTP POST /rpc");
    })
    .await;
}

/// The probe that proves "no frame came back" is itself answered as expected.
#[tokio::test]
async fn probe_is_answered_first() {
    within(WAIT, async {
        let server = vector_server().await;
        let mut client = server.connect("vectors").await;
        client.send(PROBE).await;
        let pong = tokio::time::timeout(Duration::from_secs(5), client.recv())
            .await
            .expect("pong in time");
        assert_eq!(
            pong,
            serde_json::json!({"jsonrpc": "2.0", "id": "probe", "result": "pong"})
        );
        drop(client);
        server.stop().await;
    })
    .await;
}
