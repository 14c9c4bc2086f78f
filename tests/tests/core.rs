//! The gateway's core behaviour at the wire: notifications, ids, limits,
//! close codes, shutdown and the HTTP endpoints (calls to clients are in
//! `server_calls.rs`).
//!
//! Every test runs under [`within`]; nothing sleeps to wait for a condition:
//! tests wait on frames, or poll server state with a deadline.

use std::time::Duration;

use futures_util::StreamExt;
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use switchboard_server::{Config, Error, Gateway, Limits, Target};
use switchboard_tests::{
    RpcModule, TestServer, WAIT, WsClient, config_with, error_code, hang_up_and_stop, http_get, http_post, probe,
    result, within,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// The id of a frame exactly as the server wrote it.
fn raw_id(text: &str) -> String {
    #[derive(serde::Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow)]
        id: &'a RawValue,
    }
    serde_json::from_str::<IdOnly<'_>>(text)
        .unwrap_or_else(|e| panic!("frame without an id ({e}): {text}"))
        .id
        .get()
        .to_owned()
}

// --- Notifications -----------------------------------------------------------

#[tokio::test]
async fn client_notifications_reach_handlers() {
    within(WAIT, async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(&'static str, Value)>();
        let mut module = RpcModule::new(());
        let sync_tx = tx.clone();
        module
            .register_method("note.sync", move |params, _, _| {
                let _ = sync_tx.send(("sync", params.parse::<Value>().unwrap_or(Value::Null)));
                true
            })
            .expect("register");
        let async_tx = tx.clone();
        module
            .register_async_method("note.async", move |params, _, _| {
                let tx = async_tx.clone();
                async move {
                    let _ = tx.send(("async", params.parse::<Value>().unwrap_or(Value::Null)));
                    true
                }
            })
            .expect("register");
        let server = TestServer::start_with(Config::default(), vec![module]).await;
        let mut c = server.connect("notes").await;

        c.send(r#"{"jsonrpc":"2.0","method":"note.sync","params":{"n":1}}"#).await;
        c.send(r#"{"jsonrpc":"2.0","method":"note.async","params":{"n":2}}"#).await;
        let mut got = vec![rx.recv().await.expect("a call"), rx.recv().await.expect("a call")];
        got.sort_by_key(|(kind, _)| *kind);
        assert_eq!(got, vec![("async", json!({"n": 2})), ("sync", json!({"n": 1}))]);
        probe(&mut c).await;

        // Notifications inside a batch reach their handlers too, and a batch
        // of notifications gets no answer at all.
        c.send(
            r#"[{"jsonrpc":"2.0","method":"note.sync","params":[3]},{"jsonrpc":"2.0","method":"note.async","params":[4]}]"#,
        )
        .await;
        let mut got = vec![rx.recv().await.expect("a call"), rx.recv().await.expect("a call")];
        got.sort_by_key(|(kind, _)| *kind);
        assert_eq!(got, vec![("async", json!([4])), ("sync", json!([3]))]);
        probe(&mut c).await;
        assert!(rx.try_recv().is_err(), "each notification is handled once");
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

// --- Ids -----------------------------------------------------------------------

#[tokio::test]
async fn ids_of_every_legal_type_are_echoed_exactly() {
    within(WAIT, async {
        let mut module = RpcModule::new(());
        module.register_method("sync.one", |_, _, _| 1).expect("register");
        let server = TestServer::start_with(Config::default(), vec![module]).await;
        let mut c = server.connect("ids").await;
        let ids = [
            r#""plain""#,
            r#""a\"b\\c\u00e9\n\t/""#,
            r#""\ud83d\ude00 \/""#,
            r#""""#,
            "42",
            "0",
            "-7",
            "-0",
            "1.50",
            "1e3",
            "-2.5E-3",
            "12345678901234567890123",
            "null",
        ];
        // A direct method, a synchronous and an asynchronous jsonrpsee
        // method, a built-in, and an error.
        let methods = [
            ("echo", r#"[1]"#, true),
            ("sync.one", r#"[]"#, true),
            ("demo.sleep", r#"[0]"#, true),
            ("rpc.ping", r#"[]"#, true),
            ("no.such.method", r#"[]"#, false),
        ];
        for id in ids {
            for (method, params, ok) in methods {
                c.send(&format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#
                ))
                .await;
                let text = c.recv_text().await;
                assert_eq!(raw_id(&text), id, "{method}: the id comes back byte for byte: {text}");
                let v: Value = serde_json::from_str(&text).expect("JSON");
                assert_eq!(v.get("result").is_some(), ok, "{method} with id {id}: {text}");
                if !ok {
                    assert_eq!(error_code(&v), Some(-32601), "{text}");
                }
            }
        }
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

// --- Server → client calls -------------------------------------------------------

#[tokio::test]
async fn oversized_frame_closes_with_1009() {
    within(WAIT, async {
        let server = TestServer::start_with(
            config_with(Limits {
                max_message_size: 1024,
                ..Limits::default()
            }),
            Vec::new(),
        )
        .await;
        let mut c = server.connect("big").await;
        // Just under the limit is fine.
        let filler = "x".repeat(900);
        assert_eq!(
            c.call(1, "echo", json!([filler])).await,
            result(json!(1), json!([filler]))
        );
        let too_big = format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"echo","params":["{}"]}}"#,
            "y".repeat(2000)
        );
        c.send(&too_big).await;
        let mut before = Vec::new();
        let closed = c.closed(&mut before).await;
        assert_eq!(closed.code, Some(1009), "{closed:?}, frames before: {before:?}");
        assert!(
            closed.reason.len() <= 123,
            "close reasons fit a close frame: {closed:?}"
        );
        assert!(before.is_empty(), "no answer to the oversized frame: {before:?}");
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

#[tokio::test]
async fn invalid_utf8_text_frame_closes_with_1007() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut c = server.connect("garbled").await;
        let payload: Vec<u8> = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"\xff\xfe\"]}".to_vec();
        c.send_message(Message::Frame(Frame::message(payload, OpCode::Data(Data::Text), true)))
            .await;
        let mut before = Vec::new();
        let closed = c.closed(&mut before).await;
        assert_eq!(closed.code, Some(1007), "{closed:?}, frames before: {before:?}");
        assert!(
            closed.reason.len() <= 123,
            "close reasons fit a close frame: {closed:?}"
        );
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

#[tokio::test]
async fn slow_consumer_is_closed_with_4000() {
    within(WAIT, async {
        let limits = Limits {
            max_queue_bytes: 64 * 1024,
            ..Limits::default()
        };
        let server = TestServer::start_with(config_with(limits), Vec::new()).await;
        let mut slow = server.connect("slow").await;
        let hub = server.gateway.hub().clone();
        // Pushing never waits for the client: far more than the queue holds is
        // pushed while the client reads nothing.
        let payload = "x".repeat(1024);
        for i in 0..1024 {
            hub.notify(Target::Session(slow.session.clone()), "flood", &json!([i, payload]))
                .await
                .expect("a push never fails because of a slow client");
        }
        let mut before = Vec::new();
        let closed = slow.closed(&mut before).await;
        assert_eq!(closed.code, Some(4000), "{closed:?} after {} frames", before.len());
        assert_eq!(closed.reason, "slow consumer");
        assert!(
            before.iter().all(|f| f["method"] == "flood"),
            "only pushes came before the close"
        );
        hang_up_and_stop(server, vec![slow]).await;
    })
    .await;
}

#[tokio::test]
async fn binary_frame_gets_an_invalid_request_and_the_session_lives() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut c = server.connect("binary").await;
        c.send_message(Message::Binary(
            br#"{"jsonrpc":"2.0","id":1,"method":"echo"}"#.to_vec().into(),
        ))
        .await;
        let answer = c.recv().await;
        assert_eq!(answer["jsonrpc"], "2.0");
        assert_eq!(answer["id"], Value::Null, "{answer}");
        assert_eq!(error_code(&answer), Some(-32600), "{answer}");
        assert_eq!(
            c.call(2, "echo", json!(["still here"])).await,
            result(json!(2), json!(["still here"]))
        );
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

#[tokio::test]
async fn malformed_json_gets_a_parse_error_and_the_session_lives() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut c = server.connect("sloppy").await;
        c.send(r#"{"jsonrpc":"2.0","id":1,"method":"echo","params":[1"#).await;
        let answer = c.recv().await;
        assert_eq!(answer["id"], Value::Null, "{answer}");
        assert_eq!(error_code(&answer), Some(-32700), "{answer}");
        assert_eq!(c.call(2, "echo", json!([2])).await, result(json!(2), json!([2])));
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

#[tokio::test]
async fn handler_panics_become_internal_errors_and_the_session_lives() {
    within(WAIT, async {
        let mut module = RpcModule::new(());
        module
            .register_method("boom.sync", |_, _, _| -> Result<Value, ErrorObjectOwned> {
                panic!("kaboom (sync, expected by the test)")
            })
            .expect("register");
        module
            .register_async_method("boom.async", |_, _, _| async move {
                if std::hint::black_box(true) {
                    panic!("kaboom (async, expected by the test)");
                }
                Ok::<Value, ErrorObjectOwned>(Value::Null)
            })
            .expect("register");
        // One slot only: a panicking asynchronous handler must give its slot back.
        let config = config_with(Limits {
            max_in_flight: 1,
            ..Limits::default()
        });
        let server = TestServer::start_with(config, vec![module]).await;
        let mut c = server.connect("panicky").await;
        for (i, method) in ["boom.sync", "boom.async", "boom.async", "boom.sync", "boom.async"]
            .into_iter()
            .enumerate()
        {
            c.send(&format!(
                r#"{{"jsonrpc":"2.0","id":"{i}","method":"{method}","params":[]}}"#
            ))
            .await;
            let text = c.recv_text().await;
            let answer: Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(answer["id"], json!(i.to_string()), "{text}");
            assert_eq!(error_code(&answer), Some(-32603), "{method}: {text}");
            assert!(!text.contains("kaboom"), "panic details are logged, not sent: {text}");
        }
        // Panicking notification handlers answer nothing.
        c.send(r#"{"jsonrpc":"2.0","method":"boom.sync"}"#).await;
        c.send(r#"{"jsonrpc":"2.0","method":"boom.async"}"#).await;
        probe(&mut c).await;
        assert_eq!(c.call(9, "demo.sleep", json!([0])).await, result(json!(9), json!(0)));
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

#[tokio::test]
async fn deeply_nested_json_is_refused_and_the_session_lives() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut c = server.connect("deep").await;
        let depth = 100_000;
        let params = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        for frame in [
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"echo","params":{params}}}"#),
            format!(r#"[{{"jsonrpc":"2.0","id":1,"method":"echo","params":{params}}}]"#),
            params.clone(),
        ] {
            c.send(&frame).await;
            let answer = c.recv().await;
            // Which code is a matter of where the depth is noticed (parser,
            // classifier or handler); what matters is an error and a live session.
            let single = answer.as_array().and_then(|a| a.first()).unwrap_or(&answer);
            let code = error_code(single).unwrap_or_default();
            assert!(
                (-32768..=-32000).contains(&code),
                "nesting {depth} deep is refused with an error: {answer}"
            );
        }
        assert_eq!(
            c.call(2, "echo", json!([[[1]]])).await,
            result(json!(2), json!([[[1]]]))
        );
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

// --- Shutdown ------------------------------------------------------------------------

#[tokio::test]
async fn graceful_shutdown_disconnects_with_1001() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut c = server.connect("stayer").await;
        // A call in flight when the shutdown begins is given time to finish.
        c.send(r#"{"jsonrpc":"2.0","id":"slow","method":"demo.sleep","params":[300]}"#)
            .await;
        probe(&mut c).await;
        let stopping = tokio::spawn(server.stop());
        let mut before = Vec::new();
        let closed = c.closed(&mut before).await;
        assert_eq!(closed.code, Some(1001), "{closed:?}, frames before: {before:?}");
        // demo.sleep reports its progress before it answers.
        before.retain(|frame| frame["method"] != "rpc.progress");
        assert_eq!(
            before.first(),
            Some(&result(json!("slow"), json!(300))),
            "the call in flight finished first: {before:?}"
        );
        let disconnect = before.last().cloned().unwrap_or_default();
        assert_eq!(
            disconnect["method"], "rpc.disconnect",
            "the last frame announces the close: {before:?}"
        );
        assert_eq!(disconnect["params"]["code"], 1001, "{disconnect}");
        assert_eq!(disconnect["params"]["reconnect"], true, "{disconnect}");
        assert!(disconnect["params"]["reason"].is_string(), "{disconnect}");
        assert!(
            disconnect.get("id").is_none(),
            "rpc.disconnect is a notification: {disconnect}"
        );
        drop(c);
        stopping.await.expect("stop");
    })
    .await;
}

// --- HTTP --------------------------------------------------------------------------------

#[tokio::test]
async fn http_endpoints() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let rpc = server.http_url("/rpc");

        let single = http_post(&rpc, r#"{"jsonrpc":"2.0","id":1.50,"method":"echo","params":["hi"]}"#, &[]).await;
        assert_eq!(single.status, 200, "{}", single.body);
        assert!(single.header("content-type").is_some_and(|v| v.starts_with("application/json")));
        assert_eq!(single.json(), result(json!(1.5), json!(["hi"])));
        assert_eq!(raw_id(&single.body), "1.50");

        let batch = http_post(
            &rpc,
            r#"[{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]},{"jsonrpc":"2.0","method":"echo","params":[2]},{"jsonrpc":"2.0","id":2,"method":"demo.sleep","params":[1]}]"#,
            &[],
        )
        .await;
        assert_eq!(batch.status, 200, "{}", batch.body);
        let mut answers = batch.json().as_array().cloned().unwrap_or_default();
        answers.sort_by_key(|v| v["id"].as_i64());
        assert_eq!(answers, vec![result(json!(1), json!([1])), result(json!(2), json!(1))]);

        let notification = http_post(&rpc, r#"{"jsonrpc":"2.0","method":"echo","params":[1]}"#, &[]).await;
        assert_eq!(notification.status, 204, "{}", notification.body);
        assert!(notification.body.is_empty());

        let who = http_post(
            &server.http_url("/rpc?user=hank"),
            r#"{"jsonrpc":"2.0","id":1,"method":"whoami"}"#,
            &[],
        )
        .await;
        assert_eq!(who.json()["result"], json!({"session": null, "user": "hank"}));

        // Without a session there is nobody to call back, and no session to subscribe.
        let callback = http_post(
            &rpc,
            r#"{"jsonrpc":"2.0","id":3,"method":"demo.callback","params":{"method":"ui.ask"}}"#,
            &[],
        )
        .await;
        assert_eq!(error_code(&callback.json()), Some(-32005), "{}", callback.body);
        let subscribe = http_post(
            &rpc,
            r#"{"jsonrpc":"2.0","id":4,"method":"rpc.subscribe","params":{"topics":[{"topic":"t"}]}}"#,
            &[],
        )
        .await;
        assert_eq!(error_code(&subscribe.json()), Some(-32600), "{}", subscribe.body);

        let health = http_get(&server.http_url("/healthz"), &[]).await;
        assert_eq!(health.status, 200);
        assert_eq!(health.body, "ok");

        let metrics = http_get(&server.http_url("/metrics"), &[]).await;
        assert_eq!(metrics.status, 200);
        assert!(metrics.body.contains("switchboard_"), "{}", metrics.body);

        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn http_body_over_the_message_limit_is_refused() {
    within(WAIT, async {
        let limits = Limits {
            max_message_size: 1024,
            ..Limits::default()
        };
        let server = TestServer::start_with(config_with(limits), Vec::new()).await;
        let big = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"echo","params":["{}"]}}"#,
            "x".repeat(2000)
        );
        let response = http_post(&server.http_url("/rpc"), &big, &[]).await;
        assert_eq!(response.status, 413, "{}", response.body);
        let small = http_post(
            &server.http_url("/rpc"),
            r#"{"jsonrpc":"2.0","id":1,"method":"rpc.ping"}"#,
            &[],
        )
        .await;
        assert_eq!(small.json(), result(json!(1), json!("pong")));
        server.stop().await;
    })
    .await;
}

// --- Welcome and discovery ----------------------------------------------------------

#[tokio::test]
async fn welcome_frame_announces_session_user_protocol_and_limits() {
    within(WAIT, async {
        let limits = Limits {
            max_message_size: 4096,
            max_batch: 7,
            max_in_flight: 3,
            ping_interval_ms: 60_000,
            max_subscriptions: 9,
            ..Limits::default()
        };
        let server = TestServer::start_with(config_with(limits), Vec::new()).await;
        let mut c = WsClient::connect(&server.ws_url("wendy")).await;
        let welcome = c.recv().await;
        assert_eq!(welcome["jsonrpc"], "2.0");
        assert_eq!(welcome["method"], "rpc.welcome");
        assert!(welcome.get("id").is_none(), "the welcome is a notification: {welcome}");
        let params = &welcome["params"];
        let session = params["session"].as_str().unwrap_or_default().to_owned();
        assert!(!session.is_empty(), "{welcome}");
        assert_eq!(params["user"], "wendy");
        assert_eq!(params["protocol"], "switchboard.v1");
        assert_eq!(
            params["limits"],
            json!({
                "max_message_size": 4096,
                "max_batch": 7,
                "max_in_flight": 3,
                "ping_interval_ms": 60_000,
                "max_subscriptions": 9
            })
        );

        // Each connection is its own session; without ?user= a dev gateway says "anonymous".
        let mut other = WsClient::connect(&format!("ws://{}/ws", server.addr)).await;
        let welcome = other.recv().await;
        assert_eq!(welcome["params"]["user"], "anonymous");
        assert_ne!(welcome["params"]["session"], json!(session));
        hang_up_and_stop(server, vec![c, other]).await;
    })
    .await;
}

/// Connects with exactly these `Sec-WebSocket-Protocol` offers (none when empty)
/// and returns the client with the subprotocol the server chose.
async fn connect_offering(url: &str, offers: &str) -> (WsClient, Option<String>) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().expect("valid url");
    if !offers.is_empty() {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", offers.parse().expect("header"));
    }
    let (ws, response) = tokio_tungstenite::connect_async(request).await.expect("connect");
    let chosen = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    (
        WsClient {
            ws,
            session: String::new(),
        },
        chosen,
    )
}

#[tokio::test]
async fn handshake_echoes_only_the_protocol_and_works_without_one() {
    within(WAIT, async {
        let server = TestServer::start().await;
        // A browser may offer its token as a subprotocol: it is never echoed.
        let (mut browser, chosen) = connect_offering(&server.ws_url("b"), "bearer.secret-token, switchboard.v1").await;
        assert_eq!(chosen.as_deref(), Some("switchboard.v1"));
        assert_eq!(browser.recv().await["method"], "rpc.welcome");
        // wscat offers no subprotocol at all and must still be served.
        let (mut wscat, chosen) = connect_offering(&server.ws_url("w"), "").await;
        assert_eq!(chosen, None);
        assert_eq!(wscat.recv().await["method"], "rpc.welcome");
        assert_eq!(
            wscat.call(1, "echo", json!(["hi"])).await,
            result(json!(1), json!(["hi"]))
        );
        hang_up_and_stop(server, vec![browser, wscat]).await;
    })
    .await;
}

#[tokio::test]
async fn discover_lists_builtin_and_application_methods() {
    within(WAIT, async {
        let mut module = RpcModule::new(());
        module
            .register_method("app.hello", |_, _, _| "hello")
            .expect("register");
        let server = TestServer::start_with(Config::default(), vec![module]).await;
        let mut c = server.connect("curious").await;
        let answer = c.call(1, "rpc.discover", json!([])).await;
        let doc = &answer["result"];
        assert!(doc.is_object(), "{answer}");
        assert!(doc.get("openrpc").is_some(), "{doc}");
        let names: Vec<&str> = doc["methods"]
            .as_array()
            .unwrap_or_else(|| panic!("methods is a list: {doc}"))
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        for name in ["rpc.subscribe", "echo", "app.hello"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

#[test]
fn reserved_method_names_are_refused() {
    let mut module = RpcModule::new(());
    module
        .register_method("rpc.foo", |_, _, _| true)
        .expect("jsonrpsee itself accepts the name");
    match Gateway::builder(Config::default()).module(module) {
        Err(Error::ReservedMethod(name)) => assert_eq!(name, "rpc.foo"),
        Err(other) => panic!("expected Error::ReservedMethod, got {other:?}"),
        Ok(_) => panic!("a module with rpc.foo must be refused"),
    }
}

// --- Liveness ----------------------------------------------------------------------

#[tokio::test]
async fn client_that_does_not_answer_pings_is_closed_with_4001() {
    // The pong timeout is the unanswered client's expected outcome, but it is
    // also how long `lively` has to answer each ping: a machine that stalls
    // for a moment must not cut it too, so that timeout gets ample room
    // (ping every 100 ms, `mute` is closed about 2 s in). The test's timers
    // (that wait and the shutdown) take about 4 s of the overall limit.
    within(WAIT * 3, async {
        let limits = Limits {
            ping_interval_ms: 100,
            pong_timeout_ms: 2_000,
            ..Limits::default()
        };
        let server = TestServer::start_with(config_with(limits), Vec::new()).await;
        // `mute` is not read, so its pings go unanswered.
        let mut mute = server.connect("mute").await;
        // `lively` is read all along, so tungstenite answers its pings.
        let lively = server.connect("lively").await;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let reader = tokio::spawn(async move {
            let mut lively = lively;
            let mut stop_rx = stop_rx;
            loop {
                tokio::select! {
                    _ = &mut stop_rx => return lively,
                    next = lively.ws.next() => match next {
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        other => panic!("lively got {other:?}"),
                    },
                }
            }
        });

        // Wait until the gateway has dropped `mute` (its presence is gone).
        let hub = server.gateway.hub().clone();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let present = hub.presence(Some("mute")).await.expect("presence");
            if present.is_empty() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "mute was never closed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut before = Vec::new();
        let closed = mute.closed(&mut before).await;
        assert_eq!(closed.code, Some(4001), "{closed:?}, frames before: {before:?}");
        assert!(
            closed.reason.len() <= 123,
            "close reasons fit a close frame: {closed:?}"
        );

        // The client that read its pings is still served.
        let _ = stop_tx.send(());
        let mut lively = reader.await.expect("reader");
        assert_eq!(hub.presence(Some("lively")).await.expect("presence").len(), 1);
        assert_eq!(
            lively.call(1, "rpc.ping", json!([])).await,
            result(json!(1), json!("pong"))
        );
        hang_up_and_stop(server, vec![mute, lively]).await;
    })
    .await;
}
