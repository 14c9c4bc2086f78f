//! Progress and cancellation in the Rust client, at the wire: the progress
//! of its calls to the gateway, alone or in a batch (`rpc.progress` before
//! the result, never after it), and, for the server's calls it serves, progress reports from
//! its handlers and the one `-32011` answer that follows an `rpc.cancel`.
//!
//! The server's side of most handler tests is a scripted WebSocket peer, so
//! that every frame the client writes can be compared as it is; the last
//! ones run against a real gateway, whose server API calls the handlers:
//! their progress reaches a streamed `/api` `call` before their answer, and
//! the `rpc.cancel` of a call that no longer needs them stops them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_client::protocol::codes;
use switchboard_client::{Client, Error, IncomingCall, RpcError};
use switchboard_tests::{NdjsonLines, TestServer, WAIT, error_code, http_post, within};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

async fn connect(server: &TestServer, user: &str) -> Client {
    Client::builder(server.ws_url(user))
        .call_timeout(WAIT)
        .connect()
        .await
        .expect("connects")
}

/// What `demo.sleep {"ms": 350}` reports after `elapsed` ms.
fn sleep_report(elapsed: u64) -> Value {
    json!({"elapsed_ms": elapsed, "ms": 350})
}

#[tokio::test]
async fn a_calls_progress_arrives_before_its_result() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let client = connect(&server, "pia").await;

        let mut call = client
            .call_with_progress::<_, u64>("demo.sleep", json!({"ms": 350}))
            .await
            .expect("sent");
        let mut reports = Vec::new();
        while let Some(report) = call.next().await {
            reports.push(report.expect("a report"));
        }
        assert!(reports.len() >= 2, "at least two reports: {reports:?}");
        assert_eq!(reports[..2], [sleep_report(100), sleep_report(200)]);
        assert_eq!(call.result().await.expect("the result"), 350);

        // Reading only the result works too; the reports are dropped.
        let call = client
            .call_with_progress::<_, u64>("demo.sleep", json!({"ms": 250}))
            .await
            .expect("sent");
        assert_eq!(call.result().await.expect("the result"), 250);

        // Progress of a call that did not ask for it is dropped on arrival.
        let slept: u64 = client.call("demo.sleep", json!({"ms": 250})).await.expect("the result");
        assert_eq!(slept, 250);
        let stats = client.stats();
        assert_eq!((stats.calls, stats.errors, stats.dropped), (3, 0, 0), "{stats:?}");

        // An error answer ends the stream at once and is the result.
        let mut refused = client
            .call_with_progress::<_, u64>("demo.sleep", json!({"ms": "soon"}))
            .await
            .expect("sent");
        assert!(refused.next().await.is_none());
        match refused.result().await {
            Err(Error::Rpc(e)) => assert_eq!(e.code, codes::INVALID_PARAMS),
            other => panic!("{other:?}"),
        }
        client.close().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_call_with_progress_that_times_out_or_is_dropped_is_cancelled() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let client = connect(&server, "pia").await;

        let mut call = client
            .call_with_progress_timeout::<_, u64>("demo.sleep", json!({"ms": 60_000}), Duration::from_millis(250))
            .await
            .expect("sent");
        let first = call.next().await.expect("a report").expect("not lagged");
        assert_eq!(first["ms"], 60_000);
        // The stream ends at the deadline; the result is the timeout.
        while call.next().await.is_some() {}
        assert!(matches!(call.result().await, Err(Error::Timeout(_))));
        assert_eq!(client.stats().cancels_sent, 1, "rpc.cancel went at the deadline");

        let mut call = client
            .call_with_progress::<_, u64>("demo.sleep", json!({"ms": 60_000}))
            .await
            .expect("sent");
        call.next().await.expect("a report").expect("not lagged");
        drop(call);
        assert_eq!(client.stats().cancels_sent, 2, "dropping the call gives it up");

        // The session goes on, and its in-flight slots came back.
        let slept: u64 = client.call("demo.sleep", json!({"ms": 1})).await.expect("the result");
        assert_eq!(slept, 1);
        client.close().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_batch_calls_progress_arrives_before_the_batchs_results() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let client = connect(&server, "pia").await;

        let mut batch = client.batch();
        let (watched, mut progress) = batch
            .call_with_progress::<_, u64>("demo.sleep", json!({"ms": 350}))
            .expect("params");
        // This one reports progress too, which nobody asked for: dropped.
        let plain = batch.call::<_, u64>("demo.sleep", json!({"ms": 250})).expect("params");
        let mut sending = std::pin::pin!(batch.send());
        let mut reports = Vec::new();
        let mut results = None;
        let mut ended = false;
        // Reports are read first whenever there is one, so a report yielded
        // after the results would be one that arrived after the answer.
        while results.is_none() || !ended {
            tokio::select! {
                biased;
                report = progress.next(), if !ended => match report {
                    Some(report) => {
                        assert!(results.is_none(), "a report after the results: {report:?}");
                        reports.push(report.expect("a report"));
                    }
                    None => ended = true,
                },
                sent = &mut sending, if results.is_none() => {
                    assert!(!reports.is_empty(), "no report before the results");
                    results = Some(sent.expect("sent"));
                }
            }
        }
        // Every report before the answer came through: the stream ended with it.
        assert_eq!(reports, [100, 200, 300].map(sleep_report));
        let mut results = results.expect("the results");
        assert_eq!(results.take(watched).expect("the result"), 350);
        assert_eq!(results.take(plain).expect("the result"), 250);
        let stats = client.stats();
        assert_eq!((stats.calls, stats.errors, stats.dropped), (2, 0, 0), "{stats:?}");
        client.close().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_batch_calls_progress_ends_when_the_batch_times_out_or_is_dropped() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let client = connect(&server, "pia").await;

        let mut batch = client.batch().timeout(Duration::from_millis(250));
        let (call, mut progress) = batch
            .call_with_progress::<_, u64>("demo.sleep", json!({"ms": 60_000}))
            .expect("params");
        let reading = async {
            let mut reports = Vec::new();
            while let Some(report) = progress.next().await {
                reports.push(report.expect("a report"));
            }
            reports
        };
        let (results, reports) = tokio::join!(batch.send(), reading);
        assert_eq!(
            reports.first().map(|r| r["ms"].clone()),
            Some(json!(60_000)),
            "{reports:?}"
        );
        assert!(matches!(results.expect("sent").take(call), Err(Error::Timeout(_))));
        assert_eq!(client.stats().cancels_sent, 1, "rpc.cancel went at the deadline");

        // A batch dropped unsent ends its progress at once.
        let mut batch = client.batch();
        let (_call, mut progress) = batch
            .call_with_progress::<_, u64>("demo.sleep", json!({"ms": 1}))
            .expect("params");
        drop(batch);
        assert!(progress.next().await.is_none());

        let slept: u64 = client.call("demo.sleep", json!({"ms": 1})).await.expect("the result");
        assert_eq!(slept, 1);
        client.close().await;
        server.stop().await;
    })
    .await;
}

/// A WebSocket peer that plays the server frame by frame: it speaks
/// `switchboard.v1`, welcomes the client, and then sends what the test
/// gives it and hands over every text frame the client writes.
struct Peer {
    url: String,
    to_client: mpsc::UnboundedSender<String>,
    from_client: mpsc::UnboundedReceiver<String>,
}

impl Peer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}/ws", listener.local_addr().expect("addr"));
        let (to_client, mut outgoing) = mpsc::unbounded_channel::<String>();
        let (incoming, from_client) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            // The callback's signature, with its large error type, is tungstenite's.
            #[allow(clippy::result_large_err)]
            let speak_switchboard = |_: &Request, mut response: Response| {
                response
                    .headers_mut()
                    .insert("sec-websocket-protocol", HeaderValue::from_static("switchboard.v1"));
                Ok(response)
            };
            let mut ws = tokio_tungstenite::accept_hdr_async(tcp, speak_switchboard)
                .await
                .expect("handshake");
            let welcome = json!({"jsonrpc": "2.0", "method": "rpc.welcome", "params": {
                "session": "s1", "user": "worker", "protocol": "switchboard.v1",
                "limits": {"max_message_size": 1_048_576, "max_batch": 100, "max_in_flight": 64,
                           "ping_interval_ms": 25_000, "max_subscriptions": 128},
            }});
            ws.send(Message::text(welcome.to_string())).await.expect("welcome");
            loop {
                tokio::select! {
                    frame = outgoing.recv() => match frame {
                        Some(frame) => ws.send(Message::text(frame)).await.expect("send"),
                        None => break,
                    },
                    message = ws.next() => match message {
                        Some(Ok(Message::Text(text))) => {
                            let _ = incoming.send(text.as_str().to_owned());
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break,
                    },
                }
            }
        });
        Self {
            url,
            to_client,
            from_client,
        }
    }

    /// A client of this peer with the handlers `register` adds.
    async fn client(&self, register: impl FnOnce(&Client)) -> Client {
        let client = Client::builder(self.url.clone())
            .personal_topic(false)
            .ping_interval(None)
            .build()
            .expect("builds");
        register(&client);
        client.connect().await.expect("connects");
        client
    }

    fn send(&self, frame: Value) {
        self.send_text(&frame.to_string());
    }

    fn send_text(&self, frame: &str) {
        self.to_client.send(frame.to_owned()).expect("the peer runs");
    }

    async fn recv_text(&mut self) -> String {
        self.from_client.recv().await.expect("a frame from the client")
    }

    async fn recv(&mut self) -> Value {
        serde_json::from_str(&self.recv_text().await).expect("JSON")
    }

    /// Shows that the client wrote nothing more for earlier calls: a call
    /// of a method it does not serve is answered at once, so its `-32601`
    /// must be the very next frame.
    async fn assert_nothing_more(&mut self, id: u64) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": "nobody.serves.this"}));
        assert_eq!(
            self.recv().await,
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}})
        );
    }
}

fn progress(id: Value, progress: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": "rpc.progress", "params": {"id": id, "progress": progress}})
}

fn cancelled(id: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32011, "message": "Cancelled"}})
}

#[tokio::test]
async fn a_handler_reports_progress_before_its_answer_and_never_after() {
    within(WAIT, async {
        let mut peer = Peer::start().await;
        let (kept_tx, kept) = mpsc::unbounded_channel::<IncomingCall>();
        let (release_tx, release) = mpsc::unbounded_channel::<()>();
        let release = std::sync::Arc::new(tokio::sync::Mutex::new(release));
        let client = peer
            .client(|c| {
                c.handle_with("job.run", move |(steps,): (u32,), call: IncomingCall| {
                    let (kept_tx, release) = (kept_tx.clone(), release.clone());
                    async move {
                        assert_eq!(call.method(), "job.run");
                        for step in 1..=steps {
                            assert!(call.progress(&json!({"step": step})), "queued");
                        }
                        release.lock().await.recv().await;
                        let _ = kept_tx.send(call);
                        Ok::<_, RpcError>("done")
                    }
                });
                c.handle("plain", |()| async { Ok::<_, RpcError>(1) });
            })
            .await;

        peer.send(json!({"jsonrpc": "2.0", "id": "j-1", "method": "job.run", "params": [2]}));
        assert_eq!(peer.recv().await, progress(json!("j-1"), json!({"step": 1})));
        assert_eq!(peer.recv().await, progress(json!("j-1"), json!({"step": 2})));
        release_tx.send(()).expect("the handler waits");
        assert_eq!(
            peer.recv().await,
            json!({"jsonrpc": "2.0", "id": "j-1", "result": "done"})
        );
        let mut kept = kept;
        let call = kept.recv().await.expect("the handler kept its call");
        assert!(!call.progress(&"late"), "answered: a report is not sent");
        peer.assert_nothing_more(90).await;

        // Handlers without a context are served as before.
        peer.send(json!({"jsonrpc": "2.0", "id": 2, "method": "plain"}));
        assert_eq!(peer.recv().await, json!({"jsonrpc": "2.0", "id": 2, "result": 1}));
        assert_eq!(client.stats().handled, 2);
        client.close().await;
    })
    .await;
}

#[tokio::test]
async fn rpc_cancel_answers_the_call_cancelled_exactly_once() {
    within(WAIT, async {
        let mut peer = Peer::start().await;
        let (stopped_tx, mut stopped) = mpsc::unbounded_channel::<String>();
        let client = peer
            .client(|c| {
                c.handle_with("slow", move |(): (), call: IncomingCall| {
                    // Work handed to another task sees the cancellation.
                    let (watcher, stopped_tx) = (call.clone(), stopped_tx.clone());
                    tokio::spawn(async move {
                        watcher.cancelled().await;
                        let _ = stopped_tx.send(watcher.id().get().to_owned());
                    });
                    async move {
                        call.progress(&"started");
                        std::future::pending::<()>().await;
                        Ok::<_, RpcError>("never")
                    }
                });
                c.handle("quick", |()| async { Ok::<_, RpcError>("fast") });
            })
            .await;

        peer.send(json!({"jsonrpc": "2.0", "id": 5, "method": "slow"}));
        assert_eq!(peer.recv().await, progress(json!(5), json!("started")));
        peer.send(json!({"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": 5}}));
        assert_eq!(peer.recv().await, cancelled(json!(5)));
        assert_eq!(stopped.recv().await.as_deref(), Some("5"));
        // A second cancel of the same id gets nothing.
        peer.send(json!({"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": 5}}));
        peer.assert_nothing_more(91).await;

        // Ids match by JSON value: a cancel of "ab" is one of "\u0061b"; the
        // answer keeps the server's spelling of the id.
        peer.send_text(r#"{"jsonrpc":"2.0","id":"\u0061b","method":"slow"}"#);
        assert_eq!(
            peer.recv_text().await,
            r#"{"jsonrpc":"2.0","method":"rpc.progress","params":{"id":"\u0061b","progress":"started"}}"#
        );
        peer.send(json!({"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": "ab"}}));
        assert_eq!(
            peer.recv_text().await,
            r#"{"jsonrpc":"2.0","id":"\u0061b","error":{"code":-32011,"message":"Cancelled"}}"#
        );
        assert_eq!(stopped.recv().await.as_deref(), Some(r#""\u0061b""#));

        // A cancel after the answer was sent is ignored.
        peer.send(json!({"jsonrpc": "2.0", "id": 6, "method": "quick"}));
        assert_eq!(peer.recv().await, json!({"jsonrpc": "2.0", "id": 6, "result": "fast"}));
        peer.send(json!({"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": 6}}));
        peer.assert_nothing_more(92).await;
        let stats = client.stats();
        assert_eq!(
            (stats.handled, stats.errors),
            (1, 0),
            "cancelled calls are neither handled nor errors: {stats:?}"
        );
        client.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_cancel_of_a_reused_id_reaches_the_newer_call() {
    within(WAIT, async {
        let mut peer = Peer::start().await;
        let (release_tx, release) = mpsc::unbounded_channel::<()>();
        let release = std::sync::Arc::new(tokio::sync::Mutex::new(release));
        let client = peer
            .client(|c| {
                c.handle("gate", move |()| {
                    let release = release.clone();
                    async move {
                        release.lock().await.recv().await;
                        Ok::<_, RpcError>("opened")
                    }
                });
                c.handle_with("slow", |(): (), call: IncomingCall| async move {
                    call.progress(&"started");
                    std::future::pending::<()>().await;
                    Ok::<_, RpcError>("never")
                });
            })
            .await;
        // The server reuses id 3 while the first call with it still runs.
        peer.send(json!({"jsonrpc": "2.0", "id": 3, "method": "gate"}));
        peer.send(json!({"jsonrpc": "2.0", "id": 3, "method": "slow"}));
        assert_eq!(peer.recv().await, progress(json!(3), json!("started")));
        release_tx.send(()).expect("the gate waits");
        assert_eq!(
            peer.recv().await,
            json!({"jsonrpc": "2.0", "id": 3, "result": "opened"})
        );
        // The first call's end leaves the newer call's entry in place.
        peer.send(json!({"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": 3}}));
        assert_eq!(peer.recv().await, cancelled(json!(3)));
        peer.assert_nothing_more(93).await;
        client.close().await;
    })
    .await;
}

/// Calls `/api` `call` with `params` and `"stream": true` (dev mode: no
/// key) and reads its NDJSON lines once the response's head has arrived.
async fn streamed_call(server: &TestServer, mut params: Value) -> NdjsonLines {
    params["stream"] = json!(true);
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "call", "params": params});
    let response = NdjsonLines::post(&server.http_url("/api"), &request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/x-ndjson")
    );
    NdjsonLines::new(response)
}

/// A client of `user` on the real gateway with the handlers `register` adds.
async fn serving(server: &TestServer, user: &str, register: impl FnOnce(&Client)) -> Client {
    let client = Client::builder(server.ws_url(user))
        .call_timeout(WAIT)
        .build()
        .expect("builds");
    register(&client);
    client.connect().await.expect("connects");
    client
}

#[tokio::test]
async fn a_handlers_progress_reaches_a_streamed_api_call_before_its_outcome() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let worker = serving(&server, "worker", |c| {
            c.handle_with("job.run", |(steps,): (u32,), call: IncomingCall| async move {
                for step in 1..=steps {
                    assert!(call.progress(&json!({"step": step})), "queued");
                }
                Ok::<_, RpcError>(json!({"steps": steps}))
            });
        })
        .await;
        let session = worker.welcome().expect("welcomed").session;
        let node = server.gateway.hub().node().to_owned();

        let mut lines = streamed_call(
            &server,
            json!({"target": {"user": "worker"}, "method": "job.run", "params": [2], "timeout_ms": 30_000}),
        )
        .await;
        let from_worker = |event: (&str, Value)| {
            let mut line = json!({"session": session, "user": "worker", "node": node});
            line[event.0] = event.1;
            Some(line)
        };
        assert_eq!(lines.next().await, from_worker(("progress", json!({"step": 1}))));
        assert_eq!(lines.next().await, from_worker(("progress", json!({"step": 2}))));
        assert_eq!(lines.next().await, from_worker(("result", json!({"steps": 2}))));
        assert_eq!(
            lines.next().await,
            Some(json!({"done": {"results": 1, "errors": 0, "timeouts": 0, "cancelled": 0}}))
        );
        assert_eq!(lines.next().await, None, "done is the last line");
        assert_eq!(worker.stats().handled, 1);
        worker.close().await;
        server.stop().await;
    })
    .await;
}

/// Sends on drop: shows that a handler's future was dropped.
struct DropSignal(Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn the_first_policy_cancels_the_slower_handler_which_stops() {
    within(WAIT, async {
        let server = TestServer::start().await;
        // The quick device answers once the slow one is running, so that the
        // gateway's rpc.cancel finds the slow handler under way.
        let slow_started = Arc::new(Notify::new());
        let (cancelled_tx, cancelled) = oneshot::channel::<String>();
        let (dropped_tx, dropped) = oneshot::channel::<()>();
        let (cancelled_tx, dropped_tx) = (Mutex::new(Some(cancelled_tx)), Mutex::new(Some(dropped_tx)));
        let started = slow_started.clone();
        let slow = serving(&server, "pair", move |c| {
            c.handle_with("confirm", move |(): (), call: IncomingCall| {
                let watcher = call.clone();
                let cancelled_tx = cancelled_tx.lock().expect("lock").take();
                tokio::spawn(async move {
                    watcher.cancelled().await;
                    if let Some(tx) = cancelled_tx {
                        let _ = tx.send(watcher.method().to_owned());
                    }
                });
                let guard = DropSignal(dropped_tx.lock().expect("lock").take());
                let started = started.clone();
                async move {
                    let _guard = guard;
                    started.notify_one();
                    std::future::pending::<()>().await;
                    Ok::<_, RpcError>("never")
                }
            });
        })
        .await;
        let started = slow_started.clone();
        let quick = serving(&server, "pair", move |c| {
            c.handle("confirm", move |()| {
                let started = started.clone();
                async move {
                    started.notified().await;
                    Ok::<_, RpcError>("yes")
                }
            });
        })
        .await;
        let (slow_session, quick_session) = (
            slow.welcome().expect("welcomed").session,
            quick.welcome().expect("welcomed").session,
        );

        let request = json!({"jsonrpc": "2.0", "id": 1, "method": "call", "params": {
            "target": {"user": "pair"}, "method": "confirm", "policy": "first", "timeout_ms": 30_000,
        }});
        let reply = http_post(&server.http_url("/api"), &request.to_string(), &[])
            .await
            .json();
        let result = &reply["result"];
        assert_eq!(result["met"], true, "{reply}");
        let outcomes = result["outcomes"].as_array().expect("outcomes");
        let outcome = |session: &str| {
            outcomes
                .iter()
                .find(|o| o["session"] == session)
                .unwrap_or_else(|| panic!("an outcome for {session} in {reply}"))
        };
        assert_eq!(outcome(&quick_session)["result"], "yes");
        assert_eq!(error_code(outcome(&slow_session)), Some(i64::from(codes::CANCELLED)));

        // The gateway's rpc.cancel reached the slow client: the call's
        // cancellation is seen by work handed elsewhere, and the handler's
        // future is dropped.
        assert_eq!(cancelled.await.expect("the watcher saw the cancel"), "confirm");
        dropped.await.expect("the handler was dropped");
        assert_eq!((quick.stats().handled, slow.stats().handled), (1, 0));
        for client in [quick, slow] {
            client.close().await;
        }
        server.stop().await;
    })
    .await;
}
