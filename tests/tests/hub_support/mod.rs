//! Helpers shared by the Hub tests (`hub*.rs`): gateways on either broker,
//! frame builders, silence probes and presence polling.
//!
//! Each test file uses only some of them.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use serde_json::{Value, json};
use switchboard_server::broker::{JsonBroker, LocalBroker, PresenceEntry};
use switchboard_server::{Config, Gateway, Hub};
use switchboard_tests::{Closed, TestServer, WAIT, WsClient, eventually, result};

/// Overall limit of one ordinary test.
pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// How long a client waits for a frame that must not come, before the probe.
pub(crate) const QUIET: Duration = Duration::from_millis(50);

/// A gateway whose broker round-trips every envelope through JSON.
pub(crate) async fn json_broker_server() -> TestServer {
    let gateway = Gateway::builder(Config::default())
        .broker(Arc::new(JsonBroker::new(LocalBroker::new())))
        .build()
        .expect("gateway builds");
    TestServer::serve(gateway).await
}

/// `{"jsonrpc":"2.0","method":METHOD,"params":PARAMS}`.
pub(crate) fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// The `rpc.message` a subscriber of `topic` receives for `data`.
pub(crate) fn message(topic: &str, data: Value) -> Value {
    notification("rpc.message", json!({"topic": topic, "data": data}))
}

/// Asserts that nothing arrives at `c`: a short wait, then an `rpc.ping`
/// whose pong must be the very next frame.
pub(crate) async fn assert_silent(c: &mut WsClient, what: &str) {
    if let Some(v) = c.try_recv(QUIET).await {
        panic!("{what}: session {} received an unexpected frame: {v}", c.session);
    }
    let id = 9_999_001;
    c.send_json(&json!({"jsonrpc": "2.0", "id": id, "method": "rpc.ping"}))
        .await;
    let next = c.recv().await;
    assert_eq!(
        next,
        result(json!(id), json!("pong")),
        "{what}: session {} received something before the probe's pong",
        c.session
    );
}

/// Sends a request and returns its response together with every other frame
/// that arrived before it, in order.
pub(crate) async fn request(c: &mut WsClient, id: u64, method: &str, params: Value) -> (Value, Vec<Value>) {
    c.send_json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
        .await;
    let mut others = Vec::new();
    loop {
        let v = c.recv().await;
        if v.get("id") == Some(&json!(id)) && v.get("method").is_none() {
            return (v, others);
        }
        others.push(v);
    }
}

/// `rpc.subscribe` to one topic; asserts success and that nothing else came first.
pub(crate) async fn subscribe(c: &mut WsClient, topic: &str) {
    let (response, others) = request(c, 7_001, "rpc.subscribe", json!({"topics": [{"topic": topic}]})).await;
    assert!(
        others.is_empty(),
        "unexpected frames before the subscribe answer: {others:?}"
    );
    assert_eq!(
        response["result"]["topics"][0]["topic"], topic,
        "subscribe failed: {response}"
    );
    assert_eq!(
        response["result"]["topics"][0]["recovered"], true,
        "subscribe answer: {response}"
    );
}

/// Reads until the server closes, then completes the close handshake (the
/// client's close reply goes out on its next read), so that the server does
/// not wait for it. Returns the text frames before the close, and the close.
pub(crate) async fn read_until_closed(c: &mut WsClient) -> (Vec<Value>, Closed) {
    let mut before = Vec::new();
    let closed = c.closed(&mut before).await;
    let _ = tokio::time::timeout(WAIT, c.ws.next()).await;
    (before, closed)
}

/// Presence as the hub reports it now. The in-process brokers answer without
/// waiting; a broker that would make us wait counts as "not yet".
pub(crate) fn presence_now(hub: &Hub, user: Option<&str>) -> Option<Vec<PresenceEntry>> {
    hub.presence(user).now_or_never().map(|r| r.expect("presence"))
}

/// The presence entry of client `c`, connected as `user` to this node.
pub(crate) fn entry(hub: &Hub, c: &WsClient, user: &str) -> PresenceEntry {
    PresenceEntry {
        session: c.session.clone(),
        user: user.to_owned(),
        node: hub.node().to_owned(),
    }
}

/// Presence entries in the order the in-process broker reports them.
pub(crate) fn sorted(mut v: Vec<PresenceEntry>) -> Vec<PresenceEntry> {
    v.sort_by(|a, b| (&a.user, &a.session).cmp(&(&b.user, &b.session)));
    v
}

/// Polls presence until it equals `expected` (order ignored).
pub(crate) async fn presence_becomes(hub: &Hub, user: Option<&str>, expected: Vec<PresenceEntry>) {
    let expected = sorted(expected);
    let ok = eventually(WAIT, || presence_now(hub, user).is_some_and(|p| sorted(p) == expected)).await;
    assert!(
        ok,
        "presence({user:?}) never became {expected:?}; it is {:?}",
        presence_now(hub, user)
    );
}
