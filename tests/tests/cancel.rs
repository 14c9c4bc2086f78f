//! Cancellation from the client: `rpc.cancel {id}` stops the work of a
//! running request (direct and jsonrpsee methods alike), the request is
//! answered `-32011` exactly once, and its in-flight slot is free — unless
//! the work cannot be interrupted (a blocking method), which keeps its slot
//! until it really ends. Ids match by JSON value; a cancel for an unknown or
//! finished request changes nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonrpsee::RpcModule;
use serde_json::{Value, json};
use switchboard_server::{Config, Gateway, GatewayBuilder, Limits};
use switchboard_tests::{TestServer, WAIT, WsClient, error_code, eventually, within};
use tokio::sync::Notify;

/// Sets its flag when dropped: shows that a handler's future was dropped.
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// What the test methods let the tests see.
#[derive(Default)]
struct Seen {
    /// Moved by `work.count` as long as it runs.
    counter: AtomicU64,
    /// Set when `work.count`'s future is dropped.
    count_dropped: Arc<AtomicBool>,
    /// Set when `rpcs.wait`'s future is dropped.
    jsonrpsee_dropped: Arc<AtomicBool>,
    /// Set by the task `work.observe` spawned, once it saw the cancellation.
    observed: Arc<AtomicBool>,
    /// Notified when `work.count` has counted at least once.
    counting: Notify,
    /// Releases `rpcs.block`'s thread.
    release: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

fn methods(seen: &Arc<Seen>, builder: GatewayBuilder) -> GatewayBuilder {
    let count = seen.clone();
    let observe = seen.clone();
    let mut module = RpcModule::new(());
    let wait = seen.clone();
    module
        .register_async_method("rpcs.wait", move |_, _, _| {
            let guard = Dropped(wait.jsonrpsee_dropped.clone());
            async move {
                let _guard = guard;
                std::future::pending::<()>().await;
                "never"
            }
        })
        .expect("a new name");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    *seen.release.lock().expect("lock") = Some(tx);
    let rx = Arc::new(Mutex::new(rx));
    module
        .register_blocking_method("rpcs.block", move |_, _, _| {
            let _ = rx.lock().expect("lock").recv();
            "unblocked"
        })
        .expect("a new name");
    builder
        .method("work.echo", |req| req.params::<Value>())
        .and_then(|b| {
            b.method_async("work.count", move |_req| {
                let seen = count.clone();
                let guard = Dropped(seen.count_dropped.clone());
                Ok(async move {
                    let _guard = guard;
                    loop {
                        seen.counter.fetch_add(1, Ordering::SeqCst);
                        seen.counting.notify_one();
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    #[allow(unreachable_code)]
                    Ok(0)
                })
            })
        })
        .and_then(|b| {
            b.method_async("work.observe", move |req| {
                let cancelled = req.cancellation();
                let observed = observe.observed.clone();
                // Work handed to a task of its own learns of the cancel through the token.
                tokio::spawn(async move {
                    cancelled.cancelled().await;
                    observed.store(true, Ordering::SeqCst);
                });
                Ok(std::future::pending::<Result<u8, _>>())
            })
        })
        .and_then(|b| {
            b.method_async("work.quick", |_req| {
                Ok(async {
                    tokio::task::yield_now().await;
                    Ok(1)
                })
            })
        })
        .and_then(|b| b.module(module))
        .expect("the test methods register")
}

async fn server(max_in_flight: usize) -> (TestServer, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let config = Config {
        limits: Limits {
            max_in_flight,
            ..Limits::default()
        },
        ..Config::default()
    };
    let gateway = methods(&seen, Gateway::builder(config)).build().expect("builds");
    (TestServer::serve(gateway).await, seen)
}

async fn cancel(client: &mut WsClient, id: Value) {
    client
        .send_json(&json!({"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": id}}))
        .await;
}

fn cancelled(id: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32011, "message": "Cancelled"}})
}

#[tokio::test]
async fn a_cancelled_call_answers_once_stops_its_work_and_frees_its_slot() {
    within(WAIT, async {
        let (server, seen) = server(1).await;
        let mut client = server.connect("ann").await;
        client
            .send_json(&json!({"jsonrpc": "2.0", "id": 1, "method": "work.count"}))
            .await;
        seen.counting.notified().await;

        cancel(&mut client, json!(1)).await;
        assert_eq!(client.recv().await, cancelled(json!(1)));
        assert!(
            seen.count_dropped.load(Ordering::SeqCst),
            "the handler's future is dropped before the answer is sent"
        );
        let stopped_at = seen.counter.load(Ordering::SeqCst);

        // Its slot is free: with one in flight at most, another call runs.
        client
            .send_json(&json!({"jsonrpc": "2.0", "id": 2, "method": "work.observe"}))
            .await;
        // A second cancel of the finished request, and a cancel of an unknown
        // one, change nothing; with an id of its own, a cancel is answered true.
        cancel(&mut client, json!(1)).await;
        let asked = client.call(3, "rpc.cancel", json!({"id": 99})).await;
        assert_eq!(asked, json!({"jsonrpc": "2.0", "id": 3, "result": true}));
        cancel(&mut client, json!(2)).await;
        assert_eq!(
            client.recv().await,
            cancelled(json!(2)),
            "the second call held the slot"
        );
        // The task the handler spawned saw the cancellation through its token.
        assert!(eventually(WAIT, || seen.observed.load(Ordering::SeqCst)).await);
        let echoed = client.call(4, "echo", json!(["after"])).await;
        assert_eq!(echoed["result"], json!(["after"]), "nothing else came first: {echoed}");
        assert_eq!(
            seen.counter.load(Ordering::SeqCst),
            stopped_at,
            "the counter stopped when the call was cancelled"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn jsonrpsee_methods_are_cancelled_and_blocking_ones_keep_their_slot_until_they_end() {
    within(WAIT, async {
        let (server, seen) = server(1).await;
        let mut client = server.connect("bo").await;

        client
            .send_json(&json!({"jsonrpc": "2.0", "id": "w", "method": "rpcs.wait"}))
            .await;
        // The request is running once a second one finds the only slot taken.
        let refused = client.call(1, "work.count", json!([])).await;
        assert_eq!(error_code(&refused), Some(-32003), "{refused}");
        cancel(&mut client, json!("w")).await;
        assert_eq!(client.recv().await, cancelled(json!("w")));
        assert!(seen.jsonrpsee_dropped.load(Ordering::SeqCst), "its future was dropped");

        // A blocking method runs on a thread that cannot be stopped: it is
        // answered -32011 at once, but holds its slot until it returns.
        client
            .send_json(&json!({"jsonrpc": "2.0", "id": "b", "method": "rpcs.block"}))
            .await;
        cancel(&mut client, json!("b")).await;
        assert_eq!(client.recv().await, cancelled(json!("b")));
        let refused = client.call(2, "work.observe", json!([])).await;
        assert_eq!(
            error_code(&refused),
            Some(-32003),
            "the blocked thread still holds the slot: {refused}"
        );
        let release = seen.release.lock().expect("lock").take().expect("one sender");
        release.send(()).expect("the thread waits");
        // Once the thread has returned, the slot is free again.
        let mut id = 3;
        loop {
            let answer = client.call(id, "work.quick", json!([])).await;
            if error_code(&answer) != Some(-32003) {
                assert_eq!(answer["result"], 1, "{answer}");
                break;
            }
            id += 1;
            // Refused: the thread has not returned yet; ask again a moment later.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_cancelled_element_of_a_batch_is_answered_inside_the_batch() {
    within(WAIT, async {
        let (server, seen) = server(8).await;
        let mut client = server.connect("cy").await;
        client
            .send(
                r#"[{"jsonrpc":"2.0","id":1,"method":"work.count"},
                    {"jsonrpc":"2.0","id":2,"method":"work.echo","params":[2]},
                    {"jsonrpc":"2.0","id":3,"method":"work.quick"}]"#,
            )
            .await;
        seen.counting.notified().await;
        cancel(&mut client, json!(1)).await;
        let batch = client.recv().await;
        let answers = batch.as_array().expect("one batch answer");
        assert_eq!(answers.len(), 3, "{batch}");
        assert!(answers.contains(&cancelled(json!(1))), "{batch}");
        assert!(
            answers.contains(&json!({"jsonrpc": "2.0", "id": 2, "result": [2]})),
            "{batch}"
        );
        assert!(
            answers.contains(&json!({"jsonrpc": "2.0", "id": 3, "result": 1})),
            "{batch}"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn ids_match_by_json_value() {
    within(WAIT, async {
        let (server, _seen) = server(8).await;
        let mut client = server.connect("di").await;
        client.send(r#"{"jsonrpc":"2.0","id":"1","method":"work.count"}"#).await;
        client.send(r#"{"jsonrpc":"2.0","id":1,"method":"work.count"}"#).await;
        // The number 1 is not the string "1".
        cancel(&mut client, json!(1)).await;
        assert_eq!(client.recv().await, cancelled(json!(1)));
        // "\u0031" is the string "1", however it is written.
        client
            .send(r#"{"jsonrpc":"2.0","method":"rpc.cancel","params":{"id":"\u0031"}}"#)
            .await;
        assert_eq!(client.recv().await, cancelled(json!("1")));
        let bad = client.call(5, "rpc.cancel", json!({"request": 1})).await;
        assert_eq!(error_code(&bad), Some(-32602), "{bad}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_rust_client_cancels_a_call_it_gives_up_on_and_the_work_stops() {
    within(WAIT, async {
        let (server, seen) = server(8).await;
        let client = switchboard_client::Client::builder(server.ws_url("ed"))
            .call_timeout(WAIT)
            .connect()
            .await
            .expect("connects");
        let call = client.call_with_timeout::<_, u64>("work.count", json!([]), Duration::from_millis(50));
        let outcome = tokio::join!(call, seen.counting.notified()).0;
        assert!(
            matches!(outcome, Err(switchboard_client::Error::Timeout(_))),
            "{outcome:?}"
        );
        // The client sent rpc.cancel: the server dropped the work.
        assert!(eventually(WAIT, || seen.count_dropped.load(Ordering::SeqCst)).await);
        server.stop().await;
    })
    .await;
}
