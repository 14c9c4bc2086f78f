//! Calls from the server to its clients at the wire: answers, errors,
//! timeouts and `rpc.cancel`, answers inside batches and from the wrong
//! session, the pending and in-flight limits, and sessions that drop.
//!
//! Every test runs under [`within`]; nothing sleeps to wait for a condition:
//! tests wait on frames, or poll server state with a deadline.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_server::{CallError, Caller, Config, Limits, SessionHandle, Target};
use switchboard_tests::{
    RpcModule, TestServer, WAIT, config_with, error_code, hang_up_and_stop, http_post, probe, result, within,
};

#[tokio::test]
async fn server_call_answered_by_the_client() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut c = server.connect("answerer").await;
        c.send(
            r#"{"jsonrpc":"2.0","id":"x","method":"demo.callback","params":{"method":"ui.ask","params":{"q":"ok?"}}}"#,
        )
        .await;
        let request = c.recv().await;
        assert_eq!(request["jsonrpc"], "2.0");
        assert_eq!(request["method"], "ui.ask");
        assert_eq!(request["params"], json!({"q": "ok?"}));
        let id = request["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("server ids are integers: {request}"));
        assert!(id < (1 << 53), "server ids are safe in JavaScript: {id}");
        c.send_json(&json!({"jsonrpc": "2.0", "id": id, "result": {"answer": 42}}))
            .await;
        assert_eq!(c.recv().await, result(json!("x"), json!({"answer": 42})));

        // Ids of the server's calls are not reused.
        c.send(r#"{"jsonrpc":"2.0","id":"y","method":"demo.callback","params":{"method":"ui.ask"}}"#)
            .await;
        let second = c.recv().await;
        assert_ne!(second["id"], json!(id), "a new call gets a new id");
        c.send_json(&json!({"jsonrpc": "2.0", "id": second["id"], "result": null}))
            .await;
        assert_eq!(c.recv().await, result(json!("y"), Value::Null));
        probe(&mut c).await;
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

#[tokio::test]
async fn server_call_answered_inside_a_batch() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut c = server.connect("batcher").await;
        c.send(r#"{"jsonrpc":"2.0","id":"x","method":"demo.callback","params":{"method":"ui.ask"}}"#)
            .await;
        let request = c.recv().await;
        assert_eq!(request["method"], "ui.ask");
        // The answer to the server's call travels in a batch with a request of
        // our own: the batch answer holds only the request's answer.
        let batch = json!([
            {"jsonrpc": "2.0", "id": request["id"], "result": "from a batch"},
            {"jsonrpc": "2.0", "id": "z", "method": "echo", "params": [1]}
        ]);
        c.send_json(&batch).await;
        let (a, b) = (c.recv().await, c.recv().await);
        let (batch_answer, call_answer) = if a.is_array() { (a, b) } else { (b, a) };
        assert_eq!(batch_answer, json!([result(json!("z"), json!([1]))]));
        assert_eq!(call_answer, result(json!("x"), json!("from a batch")));
        probe(&mut c).await;
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

#[tokio::test]
async fn answers_complete_only_calls_made_on_their_own_session() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut asked = server.connect("asked").await;
        let mut other = server.connect("other").await;
        asked
            .send(r#"{"jsonrpc":"2.0","id":"q","method":"demo.callback","params":{"method":"ui.ask"}}"#)
            .await;
        let request = asked.recv().await;
        let id = request["id"].clone();
        // Ids are per direction and per session: another session, or an HTTP
        // client, answering the same id completes nothing.
        other
            .send_json(&json!({"jsonrpc": "2.0", "id": id, "result": "impostor"}))
            .await;
        probe(&mut other).await;
        let body = json!({"jsonrpc": "2.0", "id": id, "result": "impostor"});
        let over_http = http_post(&server.http_url("/rpc"), &body.to_string(), &[]).await.json();
        assert_eq!(over_http, Value::Null, "nothing is answered over HTTP: {over_http}");
        probe(&mut asked).await;
        asked
            .send_json(&json!({"jsonrpc": "2.0", "id": id, "result": "genuine"}))
            .await;
        assert_eq!(asked.recv().await, result(json!("q"), json!("genuine")));
        hang_up_and_stop(server, vec![asked, other]).await;
    })
    .await;
}

#[tokio::test]
async fn server_call_answered_with_an_error() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut c = server.connect("refuser").await;
        c.send(r#"{"jsonrpc":"2.0","id":"e","method":"demo.callback","params":{"method":"ui.ask"}}"#)
            .await;
        let request = c.recv().await;
        assert_eq!(request["method"], "ui.ask");
        let error = json!({"code": 1234, "message": "nope", "data": {"why": "test"}});
        c.send_json(&json!({"jsonrpc": "2.0", "id": request["id"], "error": error}))
            .await;
        assert_eq!(c.recv().await, json!({"jsonrpc": "2.0", "id": "e", "error": error}));
        probe(&mut c).await;
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

#[tokio::test]
async fn server_call_times_out_and_is_cancelled() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut c = server.connect("silent").await;
        c.send(r#"{"jsonrpc":"2.0","id":"t","method":"demo.callback","params":{"method":"ui.ask","timeout_ms":200}}"#)
            .await;
        let request = c.recv().await;
        assert_eq!(request["method"], "ui.ask");
        let id = request["id"].clone();
        // Do not answer: the next two frames are the cancel and the caller's timeout, in either order.
        let (a, b) = (c.recv().await, c.recv().await);
        let (cancel, answer) = if a.get("method").is_some() { (a, b) } else { (b, a) };
        assert_eq!(
            cancel,
            json!({"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": id}})
        );
        assert_eq!(answer["id"], "t", "{answer}");
        assert_eq!(error_code(&answer), Some(-32004), "{answer}");
        // A late answer to the cancelled call is dropped quietly.
        c.send_json(&json!({"jsonrpc": "2.0", "id": id, "result": "too late"}))
            .await;
        probe(&mut c).await;
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

/// A session whose client stopped reading is stuck writing; a call to that
/// client from another task still times out on time.
#[tokio::test]
async fn a_call_to_a_client_that_stopped_reading_still_times_out() {
    within(WAIT, async {
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let (outcome_tx, outcome) = tokio::sync::oneshot::channel::<Result<Value, CallError>>();
        let channels = Arc::new(Mutex::new(Some((started_tx, outcome_tx))));
        let mut module = RpcModule::new(());
        module
            .register_async_method("ask_back", move |_, _, ext| {
                let channels = channels.lock().unwrap().take();
                async move {
                    // Called from a task of its own, not from the session's.
                    let session = ext
                        .get::<Caller>()
                        .and_then(Caller::session)
                        .expect("a session")
                        .clone();
                    let (started, outcome) = channels.expect("called once");
                    tokio::spawn(async move {
                        let _ = started.send(());
                        let answer = session.call::<_, Value>("ui.ask", &[0], Duration::from_secs(2)).await;
                        let _ = outcome.send(answer);
                    });
                }
            })
            .unwrap();
        let server = TestServer::start_with(
            config_with(Limits {
                max_queue_bytes: 512 << 20,
                ..Limits::default()
            }),
            vec![module],
        )
        .await;
        let mut c = server.connect("stuck").await;
        c.send(r#"{"jsonrpc":"2.0","id":1,"method":"ask_back"}"#).await;
        started.await.expect("the handler runs");
        // The client reads no more. Far more than loopback's socket buffers
        // take: the session's write waits while the call's deadline passes.
        let chunk = serde_json::value::to_raw_value(&["x".repeat(64 * 1024)]).unwrap();
        for _ in 0..384 {
            server
                .gateway
                .hub()
                .notify_raw(Target::Session(c.session.clone()), "flood", Some(&chunk))
                .await
                .expect("queued");
        }
        let answer = outcome.await.expect("the handler finishes");
        assert!(matches!(answer, Err(CallError::Timeout)), "{answer:?}");
        drop(c);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn callbacks_complete_at_the_in_flight_limit() {
    within(WAIT, async {
        let server = TestServer::start_with(
            config_with(Limits {
                max_in_flight: 2,
                ..Limits::default()
            }),
            Vec::new(),
        )
        .await;
        let mut c = server.connect("busy").await;
        c.send(r#"{"jsonrpc":"2.0","id":"a","method":"demo.callback","params":{"method":"ui.a"}}"#)
            .await;
        c.send(r#"{"jsonrpc":"2.0","id":"b","method":"demo.callback","params":{"method":"ui.b"}}"#)
            .await;
        c.send(r#"{"jsonrpc":"2.0","id":"c","method":"demo.sleep","params":[0]}"#)
            .await;

        // Two server requests and one overloaded answer, in any order.
        let mut requests = Vec::new();
        let mut overloaded = None;
        while requests.len() < 2 || overloaded.is_none() {
            let v = c.recv().await;
            if v.get("method").is_some() {
                requests.push(v);
            } else {
                assert!(overloaded.is_none(), "only one answer is expected yet: {v}");
                overloaded = Some(v);
            }
        }
        let overloaded = overloaded.unwrap_or_default();
        assert_eq!(overloaded["id"], "c", "{overloaded}");
        assert_eq!(error_code(&overloaded), Some(-32003), "{overloaded}");

        // Answers to the server's calls get through although both slots are taken.
        requests.sort_by_key(|r| r["method"].as_str().unwrap_or_default().to_owned());
        assert_eq!(requests[0]["method"], "ui.a");
        assert_eq!(requests[1]["method"], "ui.b");
        c.send_json(&json!({"jsonrpc": "2.0", "id": requests[1]["id"], "result": "B"}))
            .await;
        c.send_json(&json!({"jsonrpc": "2.0", "id": requests[0]["id"], "result": "A"}))
            .await;
        let (x, y) = (c.recv().await, c.recv().await);
        let mut answers = vec![x, y];
        answers.sort_by_key(|v| v["id"].as_str().unwrap_or_default().to_owned());
        assert_eq!(
            answers,
            vec![result(json!("a"), json!("A")), result(json!("b"), json!("B"))]
        );

        // Both slots are free again.
        assert_eq!(c.call(9, "demo.sleep", json!([0])).await, result(json!(9), json!(0)));
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

#[tokio::test]
async fn hub_calls_fail_at_once_when_the_session_drops() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut c = server.connect("leaver").await;
        let hub = server.gateway.hub().clone();
        let session = c.session.clone();
        let timeout = Duration::from_secs(30);
        let call = tokio::spawn(async move {
            let started = Instant::now();
            let entries = hub.call(Target::Session(session), "ui.wait", &json!([]), timeout).await;
            (entries, started.elapsed())
        });
        let request = c.recv().await;
        assert_eq!(request["method"], "ui.wait");
        drop(c);
        let (entries, elapsed) = call.await.expect("the call task");
        let entries = entries.expect("the hub call");
        assert_eq!(entries.len(), 1, "one entry for the one session");
        let code = entries[0].outcome.as_ref().err().map(|e| e.code);
        assert_eq!(code, Some(-32005), "session gone: {:?}", entries[0]);
        assert!(
            elapsed < timeout / 2,
            "the call ended when the session did, not at its timeout ({elapsed:?})"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn session_handle_calls_fail_at_once_when_the_session_drops() {
    within(WAIT, async {
        let parked: Arc<Mutex<Option<SessionHandle>>> = Arc::default();
        let mut module = RpcModule::new(());
        let slot = parked.clone();
        module
            .register_async_method("park", move |_, _, ext| {
                let slot = slot.clone();
                async move {
                    let caller = ext.get::<Caller>().expect("the gateway sets the caller").clone();
                    let session = caller.session().cloned();
                    let found = session.is_some();
                    *slot.lock().expect("lock") = session;
                    found
                }
            })
            .expect("register");
        let server = TestServer::start_with(Config::default(), vec![module]).await;
        let mut c = server.connect("parker").await;
        assert_eq!(c.call(1, "park", json!([])).await, result(json!(1), json!(true)));
        let handle = parked.lock().expect("lock").take().expect("the caller's session");
        assert_eq!(handle.id().as_str(), c.session);
        assert_eq!(handle.user(), "parker");

        let timeout = Duration::from_secs(30);
        let in_call = handle.clone();
        let call = tokio::spawn(async move {
            let started = Instant::now();
            let outcome = in_call.call_raw("ui.wait", None, timeout).await;
            (outcome, started.elapsed())
        });
        let request = c.recv().await;
        assert_eq!(request["method"], "ui.wait");
        drop(c);
        let (outcome, elapsed) = call.await.expect("the call task");
        assert_eq!(outcome.map(|r| r.get().to_owned()), Err(CallError::SessionGone));
        assert!(
            elapsed < timeout / 2,
            "the call ended when the session did ({elapsed:?})"
        );
        // Later calls on the gone session fail at once too.
        assert!(handle.is_closed());
        let late = handle.call_raw("ui.wait", None, timeout).await;
        assert_eq!(late.map(|r| r.get().to_owned()), Err(CallError::SessionGone));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn server_calls_beyond_the_pending_limit_fail_at_once() {
    within(WAIT, async {
        let limits = Limits {
            max_pending_calls: 1,
            ..Limits::default()
        };
        let server = TestServer::start_with(config_with(limits), Vec::new()).await;
        let mut c = server.connect("pending").await;
        c.send(r#"{"jsonrpc":"2.0","id":"first","method":"demo.callback","params":{"method":"ui.one"}}"#)
            .await;
        let request = c.recv().await;
        assert_eq!(request["method"], "ui.one");
        c.send(r#"{"jsonrpc":"2.0","id":"second","method":"demo.callback","params":{"method":"ui.two"}}"#)
            .await;
        let refused = c.recv().await;
        assert_eq!(
            refused["id"], "second",
            "the second call is refused, not sent: {refused}"
        );
        assert_eq!(error_code(&refused), Some(-32010), "{refused}");
        c.send_json(&json!({"jsonrpc": "2.0", "id": request["id"], "result": 1}))
            .await;
        assert_eq!(c.recv().await, result(json!("first"), json!(1)));
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

#[tokio::test]
async fn server_call_timeouts_are_clamped_to_the_maximum() {
    within(WAIT, async {
        let limits = Limits {
            max_call_timeout_ms: 200,
            ..Limits::default()
        };
        let server = TestServer::start_with(config_with(limits), Vec::new()).await;
        let mut c = server.connect("clamped").await;
        let started = Instant::now();
        c.send(
            r#"{"jsonrpc":"2.0","id":"t","method":"demo.callback","params":{"method":"ui.ask","timeout_ms":600000}}"#,
        )
        .await;
        let request = c.recv().await;
        assert_eq!(request["method"], "ui.ask");
        let mut seen = Vec::new();
        let answer = loop {
            let v = c.recv().await;
            if v.get("method").is_none() {
                break v;
            }
            seen.push(v);
        };
        assert_eq!(error_code(&answer), Some(-32004), "{answer}");
        assert!(started.elapsed() < WAIT, "the 10-minute timeout was clamped to 200 ms");
        assert_eq!(
            seen,
            vec![json!({"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": request["id"]}})]
        );
        hang_up_and_stop(server, vec![c]).await;
    })
    .await;
}

// --- Frames the gateway refuses -------------------------------------------------------
