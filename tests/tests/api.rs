//! The server API (`POST /api`) end to end: a backend's request in, what the
//! right sessions receive out, and nothing reaching anyone else.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_server::{ApiKey, Config, StreamConfig, protocol::api::Scope};
use switchboard_tests::{TestServer, WAIT, WsClient, http_post, within};

const KEY: &str = "k-full-0123456789";
const NOTIFY_ONLY: &str = "k-notify-0123456789";

fn config() -> Config {
    Config {
        api_keys: vec![
            ApiKey {
                name: "full".into(),
                key: KEY.into(),
                scopes: Scope::ALL.to_vec(),
            },
            ApiKey {
                name: "notify".into(),
                key: NOTIFY_ONLY.into(),
                scopes: vec![Scope::Notify],
            },
        ],
        ..Config::default()
    }
}

async fn api(server: &TestServer, key: Option<&str>, body: Value) -> (u16, Value) {
    let bearer = key.map(|key| format!("Bearer {key}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("authorization", b.as_str())).collect();
    let reply = http_post(&server.http_url("/api"), &body.to_string(), &headers).await;
    (reply.status, reply.json())
}

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// Nothing arrives: the next frame is the pong to a probe.
async fn silent(c: &mut WsClient) {
    assert!(c.try_recv(Duration::from_millis(50)).await.is_none());
    assert_eq!(c.call(424_242, "rpc.ping", json!([])).await["result"], "pong");
}

#[tokio::test]
async fn notify_reaches_the_target_and_nobody_else() {
    within(WAIT, async {
        let server = TestServer::start_with(config(), vec![]).await;
        let mut a1 = server.connect("alice").await;
        let mut a2 = server.connect("alice").await;
        let mut b = server.connect("bob").await;
        let (status, reply) = api(
            &server,
            Some(KEY),
            rpc(
                1,
                "notify",
                json!({"target": {"user": "alice"}, "method": "news", "params": {"n": 1}}),
            ),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(reply, json!({"jsonrpc": "2.0", "id": 1, "result": {}}));
        for c in [&mut a1, &mut a2] {
            assert_eq!(
                c.recv().await,
                json!({"jsonrpc": "2.0", "method": "news", "params": {"n": 1}})
            );
        }
        silent(&mut b).await;
        let session = b.session.clone();
        api(
            &server,
            Some(KEY),
            rpc(2, "notify", json!({"target": {"session": session}, "method": "only-b"})),
        )
        .await;
        assert_eq!(b.recv().await["method"], "only-b");
        silent(&mut a1).await;
        api(
            &server,
            Some(KEY),
            rpc(
                3,
                "notify",
                json!({"target": "all", "method": "everyone", "params": []}),
            ),
        )
        .await;
        for c in [&mut a1, &mut a2, &mut b] {
            assert_eq!(c.recv().await["method"], "everyone");
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn call_collects_one_entry_per_session() {
    within(WAIT, async {
        let server = TestServer::start_with(config(), vec![]).await;
        let mut w1 = server.connect("worker").await;
        let mut w2 = server.connect("worker").await;
        let addr = server.http_url("/api");
        let call = tokio::spawn(async move {
            let body = rpc(
                9,
                "call",
                json!({"target": {"user": "worker"}, "method": "work", "params": [2], "timeout_ms": 5000}),
            );
            http_post(&addr, &body.to_string(), &[("authorization", &format!("Bearer {KEY}"))])
                .await
                .json()
        });
        for (c, answer) in [(&mut w1, 4), (&mut w2, 6)] {
            let req = c.recv().await;
            assert_eq!(req["method"], "work");
            c.send_json(&json!({"jsonrpc": "2.0", "id": req["id"], "result": answer}))
                .await;
        }
        let reply = call.await.expect("call task");
        let mut results: Vec<i64> = reply["result"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["result"].as_i64().expect("result"))
            .collect();
        results.sort();
        assert_eq!(results, vec![4, 6]);
        for e in reply["result"].as_array().expect("entries") {
            assert_eq!(e["user"], "worker");
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn publish_presence_subscribe_disconnect_and_stats() {
    within(WAIT, async {
        let server = TestServer::start_with(config(), vec![]).await;
        let mut a = server.connect("alice").await;
        let mut b = server.connect("bob").await;
        let (_, r) = api(
            &server,
            Some(KEY),
            rpc(1, "subscribe", json!({"target": {"user": "alice"}, "topics": ["news"]})),
        )
        .await;
        assert_eq!(r["result"], json!({}));
        let (_, r) = api(
            &server,
            Some(KEY),
            rpc(2, "publish", json!({"topic": "news", "data": {"h": 1}})),
        )
        .await;
        assert_eq!(r["result"], json!({}), "a topic without history has no position");
        assert_eq!(
            a.recv().await,
            json!({"jsonrpc": "2.0", "method": "rpc.message", "params": {"topic": "news", "data": {"h": 1}}})
        );
        silent(&mut b).await;
        let (_, r) = api(
            &server,
            Some(KEY),
            rpc(3, "publish", json!({"topic": "user:bob", "data": "hi"})),
        )
        .await;
        assert_eq!(r["result"]["offset"], 1, "personal topics keep history: {r}");
        let m = b.recv().await;
        assert_eq!(m["params"]["data"], "hi");
        let (_, r) = api(&server, Some(KEY), rpc(4, "presence", json!({"user": "alice"}))).await;
        assert_eq!(r["result"].as_array().expect("list").len(), 1);
        assert_eq!(r["result"][0]["session"], json!(a.session));
        let (_, r) = api(&server, Some(KEY), rpc(5, "stats", json!({}))).await;
        assert_eq!(r["result"]["sessions"], 2);
        assert_eq!(r["result"]["users"], 2);
        assert!(
            r["result"]["events"]
                .as_array()
                .expect("events")
                .iter()
                .any(|e| e["kind"] == "connect")
        );
        let (_, r) = api(
            &server,
            Some(KEY),
            rpc(
                6,
                "unsubscribe",
                json!({"target": {"user": "alice"}, "topics": ["news"]}),
            ),
        )
        .await;
        assert_eq!(r["result"], json!({}));
        api(
            &server,
            Some(KEY),
            rpc(7, "publish", json!({"topic": "news", "data": 2})),
        )
        .await;
        silent(&mut a).await;
        let (_, r) = api(
            &server,
            Some(KEY),
            rpc(8, "disconnect", json!({"target": {"user": "bob"}, "reason": "bye"})),
        )
        .await;
        assert_eq!(r["result"], json!({}));
        let mut before = Vec::new();
        let closed = b.closed(&mut before).await;
        assert_eq!(closed.code, Some(4502));
        assert_eq!(closed.reason, "bye");
        assert_eq!(before.last().expect("rpc.disconnect")["method"], "rpc.disconnect");
        silent(&mut a).await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn keys_and_scopes_are_enforced() {
    within(WAIT, async {
        let server = TestServer::start_with(config(), vec![]).await;
        let mut a = server.connect("alice").await;
        let (status, r) = api(&server, None, rpc(1, "notify", json!({"target": "all", "method": "x"}))).await;
        assert_eq!(status, 401);
        assert_eq!(r["error"]["code"], -32000);
        let (status, _) = api(
            &server,
            Some("wrong"),
            rpc(1, "notify", json!({"target": "all", "method": "x"})),
        )
        .await;
        assert_eq!(status, 401);
        let (status, r) = api(
            &server,
            Some(NOTIFY_ONLY),
            rpc(2, "publish", json!({"topic": "t", "data": 1})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(r["error"]["code"], -32001);
        assert_eq!(r["error"]["data"]["scope"], "publish");
        let (_, r) = api(
            &server,
            Some(NOTIFY_ONLY),
            rpc(3, "call", json!({"target": "all", "method": "x"})),
        )
        .await;
        assert_eq!(r["error"]["code"], -32001);
        silent(&mut a).await;
        let (_, r) = api(
            &server,
            Some(KEY),
            rpc(4, "notify", json!({"target": {"nobody": 1}, "method": "x"})),
        )
        .await;
        assert_eq!(r["error"]["code"], -32602);
        assert!(r["error"]["data"]["reason"].is_string());
        let (_, r) = api(&server, Some(KEY), rpc(5, "nope", json!({}))).await;
        assert_eq!(r["error"]["code"], -32601);
        let (_, r) = api(
            &server,
            Some(KEY),
            rpc(6, "disconnect", json!({"target": "all", "code": 1000})),
        )
        .await;
        assert_eq!(r["error"]["code"], -32602);
        let (_, r) = api(
            &server,
            Some(KEY),
            json!([rpc(7, "presence", json!({})), rpc(8, "rpc.discover", json!([]))]),
        )
        .await;
        let batch = r.as_array().expect("batch");
        assert_eq!(batch.len(), 2);
        assert!(batch.iter().any(|e| e["result"]["openrpc"].is_string()));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn history_answers_the_kept_publications_to_a_key_with_its_scope() {
    within(WAIT, async {
        let mut cfg = config();
        cfg.streams.push(StreamConfig {
            pattern: "orders:*".into(),
            history_size: 100,
            history_ttl_ms: 600_000,
        });
        let server = TestServer::start_with(cfg, vec![]).await;
        let mut epoch = Value::Null;
        for n in 1..=4 {
            let (_, r) = api(
                &server,
                Some(KEY),
                rpc(n, "publish", json!({"topic": "orders:7", "data": {"n": n}})),
            )
            .await;
            assert_eq!(r["result"]["offset"], n, "{r}");
            epoch = r["result"]["epoch"].clone();
        }
        let (status, r) = api(
            &server,
            Some(KEY),
            rpc(
                5,
                "history",
                json!({"topic": "orders:7", "since": {"offset": 1, "epoch": epoch}, "limit": 2}),
            ),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            r,
            json!({"jsonrpc": "2.0", "id": 5, "result": {
                "publications": [{"offset": 2, "data": {"n": 2}}, {"offset": 3, "data": {"n": 3}}],
                "offset": 4, "epoch": epoch, "recovered": true}})
        );
        // A key without the `history` scope is refused, and says which scope it lacks.
        let (status, r) = api(
            &server,
            Some(NOTIFY_ONLY),
            rpc(6, "history", json!({"topic": "orders:7"})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(r["error"]["code"], -32001, "{r}");
        assert_eq!(r["error"]["data"]["scope"], "history");
        // Only recoverable topics have history; the limit has a maximum.
        let (_, r) = api(&server, Some(KEY), rpc(7, "history", json!({"topic": "news"}))).await;
        assert_eq!(r["error"]["code"], -32602, "{r}");
        assert!(r["error"]["data"]["reason"].is_string());
        let (_, r) = api(
            &server,
            Some(KEY),
            rpc(8, "history", json!({"topic": "orders:7", "limit": 1001})),
        )
        .await;
        assert_eq!(r["error"]["code"], -32602, "{r}");
        assert_eq!(r["error"]["data"]["limit"], 1000);
        server.stop().await;
    })
    .await;
}
