//! The Rust client serving the server's calls: typed handlers, errors,
//! panics, concurrency, cancellation, and a multicast call to every session
//! of a user.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_client::protocol::codes;
use switchboard_client::{Client, Error, RpcError};
use switchboard_tests::{TestServer, WAIT, within};
use tokio::sync::Notify;

async fn connect(server: &TestServer, user: &str, register: impl FnOnce(&Client)) -> Client {
    let client = Client::builder(server.ws_url(user))
        .call_timeout(WAIT)
        .build()
        .expect("builds");
    register(&client);
    client.connect().await.expect("connects");
    client
}

/// Asks the server to call `method(params)` back on this client.
async fn callback(client: &Client, method: &str, params: Value, timeout_ms: u64) -> Result<Value, Error> {
    client
        .call(
            "demo.callback",
            json!({"method": method, "params": params, "timeout_ms": timeout_ms}),
        )
        .await
}

fn rpc_code(result: Result<Value, Error>) -> i32 {
    match result {
        Err(Error::Rpc(e)) => e.code,
        other => panic!("expected an error answer, got {other:?}"),
    }
}

#[tokio::test]
async fn handlers_answer_the_servers_calls() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let client = connect(&server, "alice", |c| {
            c.handle("math.add", |(a, b): (i64, i64)| async move { Ok::<_, RpcError>(a + b) });
            c.handle("math.div", |(a, b): (i64, i64)| async move {
                if b == 0 {
                    return Err(RpcError::with_data(1, json!({"reason": "division by zero"})));
                }
                Ok(a / b)
            });
            c.handle("ui.noop", |()| async { Ok::<_, RpcError>("done") });
            c.handle("boom", |_: Value| async move {
                if true {
                    panic!("this handler panics");
                }
                Ok::<_, RpcError>(0)
            });
        })
        .await;

        assert_eq!(
            callback(&client, "math.add", json!([2, 3]), 5_000).await.expect("adds"),
            5
        );
        assert_eq!(
            callback(&client, "ui.noop", json!([]), 5_000).await.expect("no params"),
            "done"
        );
        match callback(&client, "math.div", json!([1, 0]), 5_000).await {
            Err(Error::Rpc(e)) => {
                assert_eq!(e.code, 1);
                assert_eq!(e.data, Some(json!({"reason": "division by zero"})));
            }
            other => panic!("{other:?}"),
        }
        let bad_params = callback(&client, "math.add", json!({"a": 1}), 5_000).await;
        assert_eq!(rpc_code(bad_params), codes::INVALID_PARAMS);
        assert_eq!(
            rpc_code(callback(&client, "boom", json!([]), 5_000).await),
            codes::INTERNAL_ERROR
        );
        assert_eq!(
            rpc_code(callback(&client, "nobody.home", json!([]), 5_000).await),
            codes::METHOD_NOT_FOUND
        );
        assert_eq!(
            rpc_code(callback(&client, "rpc.anything", json!([]), 5_000).await),
            codes::METHOD_NOT_FOUND,
            "rpc.* names are the gateway's"
        );
        // The session survived the panic.
        assert_eq!(
            callback(&client, "math.add", json!([20, 22]), 5_000)
                .await
                .expect("adds"),
            42
        );
        assert!(client.remove_handler("math.add"));
        assert_eq!(
            rpc_code(callback(&client, "math.add", json!([1, 1]), 5_000).await),
            codes::METHOD_NOT_FOUND
        );
        let stats = client.stats();
        assert_eq!(
            stats.handled, 6,
            "unknown methods are answered without a handler: {stats:?}"
        );
        client.close().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn handlers_run_concurrently() {
    within(WAIT, async {
        let server = TestServer::start().await;
        // Each call waits for the other: they only finish if both run at once.
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let client = connect(&server, "alice", |c| {
            c.handle("meet", move |(n,): (u32,)| {
                let barrier = barrier.clone();
                async move {
                    barrier.wait().await;
                    Ok::<_, RpcError>(n)
                }
            });
        })
        .await;
        let (a, b) = tokio::join!(
            callback(&client, "meet", json!([1]), 5_000),
            callback(&client, "meet", json!([2]), 5_000)
        );
        assert_eq!((a.expect("first"), b.expect("second")), (json!(1), json!(2)));
        client.close().await;
        server.stop().await;
    })
    .await;
}

/// Sets its flag when dropped: shows that a handler's future was dropped.
struct DropFlag(Arc<AtomicBool>, Arc<Notify>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
        self.1.notify_one();
    }
}

#[tokio::test]
async fn the_servers_rpc_cancel_aborts_the_handler() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let started = Arc::new(Notify::new());
        let dropped = Arc::new(AtomicBool::new(false));
        let dropped_signal = Arc::new(Notify::new());
        let finished = Arc::new(AtomicBool::new(false));
        let client = connect(&server, "alice", |c| {
            let (started, dropped, signal, finished) = (
                started.clone(),
                dropped.clone(),
                dropped_signal.clone(),
                finished.clone(),
            );
            c.handle("slow", move |()| {
                let guard = DropFlag(dropped.clone(), signal.clone());
                let (started, finished) = (started.clone(), finished.clone());
                async move {
                    let _guard = guard;
                    started.notify_one();
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    finished.store(true, Ordering::SeqCst);
                    Ok::<_, RpcError>("too late")
                }
            });
        })
        .await;
        let outcome = tokio::join!(callback(&client, "slow", json!([]), 200), started.notified()).0;
        assert_eq!(rpc_code(outcome), codes::TIMEOUT, "the server gave up after 200 ms");
        // The server sent `rpc.cancel {id}`: the handler's future is dropped
        // (and the call answered -32011, which the server no longer awaits).
        tokio::time::timeout(WAIT, dropped_signal.notified())
            .await
            .expect("the handler is aborted");
        assert!(dropped.load(Ordering::SeqCst));
        assert!(!finished.load(Ordering::SeqCst));
        assert_eq!(client.stats().handled, 0, "a cancelled call is not counted as handled");
        client.close().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_multicast_call_reaches_every_session_of_a_user() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut workers = Vec::new();
        for label in ["laptop", "phone"] {
            let worker = connect(&server, "bob", |c| {
                c.handle("device.name", move |()| async move { Ok::<_, RpcError>(label) });
            })
            .await;
            workers.push(worker);
        }
        let sessions: BTreeSet<String> = workers.iter().map(|w| w.welcome().expect("welcome").session).collect();
        let alice = connect(&server, "alice", |_| {}).await;
        let entries: Vec<Value> = alice
            .call(
                "chat.ask",
                json!({"user": "bob", "method": "device.name", "timeout_ms": 5_000}),
            )
            .await
            .expect("asks");
        assert_eq!(entries.len(), 2, "{entries:?}");
        let answered: BTreeSet<String> = entries
            .iter()
            .map(|e| e["session"].as_str().expect("session").to_owned())
            .collect();
        assert_eq!(answered, sessions);
        let names: BTreeSet<&str> = entries.iter().map(|e| e["result"].as_str().expect("result")).collect();
        assert_eq!(names, BTreeSet::from(["laptop", "phone"]));
        assert!(entries.iter().all(|e| e["user"] == "bob"));
        for w in workers {
            w.close().await;
        }
        alice.close().await;
        server.stop().await;
    })
    .await;
}
