//! Multicast calls to clients at the wire: policies (`first`, `quorum`) with
//! the sessions they no longer need receiving `rpc.cancel`, every target
//! (session, user, users, topic, all), outcomes keyed by node, NDJSON
//! streaming from `POST /api` with clients' progress, and the call cancelled
//! when its caller goes away (an HTTP client leaving, a dropped `Hub` future)
//! or the gateway drains.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use switchboard_server::{CallOptions, CallPolicy, CallUpdate, Config, Target};
use switchboard_tests::{NdjsonLines, TestServer, WAIT, WsClient, error_code, http_post, probe, within};

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// Calls `/api` (dev mode: no key) in a task, so that the test can answer the sessions meanwhile.
fn api_call(server: &TestServer, params: Value) -> tokio::task::JoinHandle<Value> {
    let url = server.http_url("/api");
    tokio::spawn(async move { http_post(&url, &rpc(1, "call", params).to_string(), &[]).await.json() })
}

/// Reads the server's request to this session.
async fn request(c: &mut WsClient, method: &str) -> Value {
    let req = c.recv().await;
    assert_eq!(req["method"], method, "a request for {method}: {req}");
    req
}

async fn answer(c: &mut WsClient, req: &Value, result: Value) {
    c.send_json(&json!({"jsonrpc": "2.0", "id": req["id"], "result": result}))
        .await;
}

async fn answer_error(c: &mut WsClient, req: &Value, code: i64) {
    c.send_json(&json!({"jsonrpc": "2.0", "id": req["id"], "error": {"code": code, "message": "no"}}))
        .await;
}

/// The next frame is `rpc.cancel` for the request `req`.
async fn cancelled(c: &mut WsClient, req: &Value) {
    let frame = c.recv().await;
    assert_eq!(
        frame,
        json!({"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": req["id"]}}),
        "the session is told its call is no longer wanted"
    );
}

fn outcome_of<'a>(outcomes: &'a Value, session: &str) -> &'a Value {
    outcomes
        .as_array()
        .expect("outcomes")
        .iter()
        .find(|o| o["session"] == session)
        .unwrap_or_else(|| panic!("an outcome for {session} in {outcomes}"))
}

#[tokio::test]
async fn first_completes_on_the_first_result_and_cancels_the_others() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut devices = Vec::new();
        for _ in 0..3 {
            devices.push(server.connect("alice").await);
        }
        let call = api_call(
            &server,
            json!({"target": {"user": "alice"}, "method": "confirm", "params": {"code": 7}, "policy": "first", "timeout_ms": 30000}),
        );
        let mut reqs = Vec::new();
        for d in &mut devices {
            reqs.push(request(d, "confirm").await);
        }
        // The first device refuses: an error is never a success. The second confirms.
        answer_error(&mut devices[0], &reqs[0], 1).await;
        answer(&mut devices[1], &reqs[1], json!("ok")).await;
        let reply = call.await.expect("call");
        let result = &reply["result"];
        assert_eq!(result["met"], true, "{reply}");
        let outcomes = &result["outcomes"];
        assert_eq!(outcomes.as_array().expect("outcomes").len(), 3, "{outcomes}");
        assert_eq!(outcome_of(outcomes, &devices[0].session)["error"]["code"], 1);
        assert_eq!(outcome_of(outcomes, &devices[1].session)["result"], "ok");
        let third = outcome_of(outcomes, &devices[2].session);
        assert_eq!(third["error"]["code"], -32011, "made by the gateway: {third}");
        assert_eq!(third["user"], "alice");
        assert_eq!(third["node"], json!(server.gateway.hub().node()));
        cancelled(&mut devices[2], &reqs[2]).await;
        // The loser's late answer changes nothing and costs the session nothing.
        answer(&mut devices[2], &reqs[2], json!("late")).await;
        for d in &mut devices {
            probe(d).await;
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn quorum_completes_after_n_results_or_as_soon_as_it_cannot_be_met() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut voters = Vec::new();
        for _ in 0..4 {
            voters.push(server.connect("voter").await);
        }
        let call = api_call(
            &server,
            json!({"target": {"user": "voter"}, "method": "vote", "policy": {"quorum": 2}, "timeout_ms": 30000}),
        );
        let mut reqs = Vec::new();
        for v in &mut voters {
            reqs.push(request(v, "vote").await);
        }
        answer(&mut voters[0], &reqs[0], json!("yes")).await;
        answer_error(&mut voters[1], &reqs[1], 5).await;
        answer(&mut voters[2], &reqs[2], json!("yes")).await;
        let reply = call.await.expect("call");
        assert_eq!(reply["result"]["met"], true, "{reply}");
        let outcomes = &reply["result"]["outcomes"];
        assert_eq!(outcome_of(outcomes, &voters[3].session)["error"]["code"], -32011);
        cancelled(&mut voters[3], &reqs[3]).await;

        // Two of three must agree; once two refused, it can no longer be met.
        let call = api_call(
            &server,
            json!({"target": {"user": "voter"}, "method": "vote", "policy": {"quorum": 3}, "timeout_ms": 30000}),
        );
        let mut reqs = Vec::new();
        for v in &mut voters {
            reqs.push(request(v, "vote").await);
        }
        answer_error(&mut voters[0], &reqs[0], 5).await;
        answer_error(&mut voters[1], &reqs[1], 5).await;
        let reply = call.await.expect("call");
        assert_eq!(reply["result"]["met"], false, "{reply}");
        let outcomes = &reply["result"]["outcomes"];
        assert_eq!(outcomes.as_array().expect("outcomes").len(), 4, "{outcomes}");
        for i in [2, 3] {
            assert_eq!(outcome_of(outcomes, &voters[i].session)["error"]["code"], -32011);
            cancelled(&mut voters[i], &reqs[i]).await;
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn first_without_any_result_waits_for_every_answer_and_is_not_met() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut a = server.connect("pair").await;
        let mut b = server.connect("pair").await;
        let call = api_call(
            &server,
            json!({"target": {"user": "pair"}, "method": "m", "policy": "first", "timeout_ms": 30000}),
        );
        let (ra, rb) = (request(&mut a, "m").await, request(&mut b, "m").await);
        answer_error(&mut a, &ra, 1).await;
        answer_error(&mut b, &rb, 2).await;
        let reply = call.await.expect("call");
        assert_eq!(reply["result"]["met"], false);
        assert_eq!(reply["result"]["outcomes"].as_array().expect("outcomes").len(), 2);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bad_policies_and_misplaced_streams_are_refused_before_anything_is_sent() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut c = server.connect("x").await;
        for (policy, needle) in [
            (json!("most"), "unknown policy"),
            (json!({"quorum": 0}), "at least 1"),
            (json!({"majority": 2}), "unknown policy"),
        ] {
            let reply = api_call(&server, json!({"target": "all", "method": "m", "policy": policy}))
                .await
                .expect("call");
            assert_eq!(error_code(&reply), Some(-32602), "{reply}");
            let reason = reply["error"]["data"]["reason"].as_str().expect("a reason");
            assert!(reason.contains(needle), "{reason}");
        }
        let url = server.http_url("/api");
        let batch = json!([rpc(1, "call", json!({"target": "all", "method": "m", "stream": true}))]);
        let reply = http_post(&url, &batch.to_string(), &[]).await.json();
        assert_eq!(reply[0]["error"]["code"], -32602, "{reply}");
        let notification =
            json!({"jsonrpc": "2.0", "method": "call", "params": {"target": "all", "method": "m", "stream": true}});
        let status = http_post(&url, &notification.to_string(), &[]).await.status;
        assert_eq!(status, 204);
        // Nothing reached the session.
        probe(&mut c).await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn every_target_is_called_and_outcomes_name_session_user_and_node() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut a = server.connect("ann").await;
        let mut b = server.connect("bob").await;
        let mut c = server.connect("cat").await;
        for client in [&mut b, &mut c] {
            let reply = client
                .call(2, "rpc.subscribe", json!({"topics": [{"topic": "room"}]}))
                .await;
            assert!(reply.get("result").is_some(), "{reply}");
        }
        let node = json!(server.gateway.hub().node());
        let targets = [
            (json!({"session": a.session}), vec![0]),
            (json!({"user": "bob"}), vec![1]),
            (json!({"users": ["ann", "cat", "ann"]}), vec![0, 2]),
            (json!({"topic": "room"}), vec![1, 2]),
            (json!("all"), vec![0, 1, 2]),
        ];
        for (target, called) in targets {
            let call = api_call(&server, json!({"target": target, "method": "who", "timeout_ms": 30000}));
            let clients = [&mut a, &mut b, &mut c];
            let mut expected = Vec::new();
            for (i, client) in clients.into_iter().enumerate() {
                if called.contains(&i) {
                    let req = request(client, "who").await;
                    answer(client, &req, json!(i)).await;
                    expected.push((client.session.clone(), i));
                } else {
                    probe(client).await;
                }
            }
            let reply = call.await.expect("call");
            let outcomes = &reply["result"];
            assert_eq!(
                outcomes.as_array().expect("the v1 array").len(),
                called.len(),
                "{target}: {reply}"
            );
            for (session, i) in expected {
                let o = outcome_of(outcomes, &session);
                assert_eq!(o["result"], i);
                assert_eq!(o["node"], node);
                assert!(o["user"].is_string());
            }
        }
        server.stop().await;
    })
    .await;
}

/// Starts a streamed `/api call`.
async fn stream(server: &TestServer, params: Value) -> reqwest::Response {
    NdjsonLines::post(&server.http_url("/api"), &rpc(1, "call", params)).await
}

#[tokio::test]
async fn a_streamed_call_sends_each_outcome_and_progress_as_it_arrives() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut fast = server.connect("team").await;
        let mut slow = server.connect("team").await;
        let response = stream(
            &server,
            json!({"target": {"user": "team"}, "method": "build", "stream": true, "timeout_ms": 30000}),
        )
        .await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/x-ndjson",
            "{:?}",
            response.headers()
        );
        let mut lines = NdjsonLines::new(response);
        let rf = request(&mut fast, "build").await;
        let rs = request(&mut slow, "build").await;
        slow.send_json(&json!({"jsonrpc": "2.0", "method": "rpc.progress", "params": {"id": rs["id"], "progress": {"done": 1}}}))
            .await;
        let line = lines.next().await.expect("a progress line");
        assert_eq!(line["progress"], json!({"done": 1}), "{line}");
        assert_eq!(line["session"], slow.session);
        assert_eq!(line["user"], "team");
        answer(&mut fast, &rf, json!("fast")).await;
        // The fast outcome arrives while the slow session has not answered.
        let line = lines.next().await.expect("an outcome line");
        assert_eq!(line["session"], fast.session);
        assert_eq!(line["result"], "fast");
        assert_eq!(line["node"], json!(server.gateway.hub().node()));
        answer_error(&mut slow, &rs, 3).await;
        // Progress after the answer is not forwarded.
        slow.send_json(&json!({"jsonrpc": "2.0", "method": "rpc.progress", "params": {"id": rs["id"], "progress": 2}}))
            .await;
        let line = lines.next().await.expect("the slow outcome");
        assert_eq!(line["error"]["code"], 3);
        let done = lines.next().await.expect("the done line");
        assert_eq!(
            done,
            json!({"done": {"results": 1, "errors": 1, "timeouts": 0, "cancelled": 0}})
        );
        assert!(lines.next().await.is_none(), "done is the last line");
        // With a policy the totals say whether it was met.
        let response = stream(
            &server,
            json!({"target": {"user": "team"}, "method": "build", "stream": true, "policy": "first", "timeout_ms": 30000}),
        )
        .await;
        let mut lines = NdjsonLines::new(response);
        let rf = request(&mut fast, "build").await;
        let rs = request(&mut slow, "build").await;
        answer(&mut fast, &rf, json!(1)).await;
        assert_eq!(lines.next().await.expect("outcome")["result"], 1);
        let line = lines.next().await.expect("the cancelled one");
        assert_eq!((&line["session"], &line["error"]["code"]), (&json!(slow.session), &json!(-32011)));
        assert_eq!(
            lines.next().await.expect("done"),
            json!({"done": {"results": 1, "errors": 0, "timeouts": 0, "cancelled": 1, "met": true}})
        );
        cancelled(&mut slow, &rs).await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_http_client_leaving_before_or_after_the_first_line_cancels_the_call() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut a = server.connect("pair").await;
        let mut b = server.connect("pair").await;
        // Before the first line: the response's head arrives, then the client goes.
        let response = stream(
            &server,
            json!({"target": {"user": "pair"}, "method": "wait", "stream": true, "timeout_ms": 60000}),
        )
        .await;
        let (ra, rb) = (request(&mut a, "wait").await, request(&mut b, "wait").await);
        drop(response);
        cancelled(&mut a, &ra).await;
        cancelled(&mut b, &rb).await;
        // After the first line.
        let response = stream(
            &server,
            json!({"target": {"user": "pair"}, "method": "wait", "stream": true, "timeout_ms": 60000}),
        )
        .await;
        let mut lines = NdjsonLines::new(response);
        let (ra, rb) = (request(&mut a, "wait").await, request(&mut b, "wait").await);
        answer(&mut a, &ra, json!(1)).await;
        assert_eq!(lines.next().await.expect("a line")["result"], 1);
        drop(lines);
        cancelled(&mut b, &rb).await;
        // A plain (not streamed) call whose client goes away is cancelled too.
        let url = server.http_url("/api");
        let plain = tokio::spawn(async move {
            http_post(
                &url,
                &rpc(
                    1,
                    "call",
                    json!({"target": {"user": "pair"}, "method": "wait", "timeout_ms": 60000}),
                )
                .to_string(),
                &[],
            )
            .await
        });
        let (ra, rb) = (request(&mut a, "wait").await, request(&mut b, "wait").await);
        plain.abort();
        cancelled(&mut a, &ra).await;
        cancelled(&mut b, &rb).await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn draining_ends_a_stream_at_once_with_the_rest_cancelled() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut a = server.connect("pair").await;
        let mut b = server.connect("pair").await;
        let response = stream(
            &server,
            json!({"target": {"user": "pair"}, "method": "wait", "stream": true, "timeout_ms": 60000}),
        )
        .await;
        let mut lines = NdjsonLines::new(response);
        let (ra, _rb) = (request(&mut a, "wait").await, request(&mut b, "wait").await);
        answer(&mut a, &ra, json!(1)).await;
        assert_eq!(lines.next().await.expect("a line")["result"], 1);
        server.gateway.drain();
        let line = lines.next().await.expect("the rest, cancelled");
        assert_eq!(
            (&line["session"], &line["error"]["code"]),
            (&json!(b.session), &json!(-32011))
        );
        assert_eq!(
            lines.next().await.expect("done"),
            json!({"done": {"results": 1, "errors": 0, "timeouts": 0, "cancelled": 1}})
        );
        assert!(lines.next().await.is_none());
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_hub_streams_outcomes_and_progress_and_a_dropped_call_is_cancelled() {
    within(WAIT, async {
        let server = TestServer::start_with(Config::default(), vec![]).await;
        let hub = server.gateway.hub().clone();
        let mut a = server.connect("dev").await;
        let mut b = server.connect("dev").await;
        let options = CallOptions::new(Duration::from_secs(30))
            .policy(CallPolicy::All)
            .progress();
        let mut call = hub
            .call_stream(Target::User("dev".into()), "sync", None, options)
            .await
            .expect("call starts");
        let (ra, rb) = (request(&mut a, "sync").await, request(&mut b, "sync").await);
        a.send_json(&json!({"jsonrpc": "2.0", "method": "rpc.progress", "params": {"id": ra["id"], "progress": 50}}))
            .await;
        match call.next().await.expect("an update") {
            CallUpdate::Progress(p) => {
                assert_eq!((p.session.as_str(), p.progress.get()), (a.session.as_str(), "50"));
            }
            other => panic!("progress first: {other:?}"),
        }
        answer(&mut a, &ra, json!("a")).await;
        match call.next().await.expect("an update") {
            CallUpdate::Outcome(e) => assert_eq!(e.outcome.expect("a result").get(), "\"a\""),
            other => panic!("an outcome: {other:?}"),
        }
        // The caller goes away: the session still owing an answer is told.
        drop(call);
        cancelled(&mut b, &rb).await;
        // And a `Hub::call` future dropped before the answers does the same.
        let pending = tokio::spawn({
            let hub = hub.clone();
            async move { hub.call(Target::User("dev".into()), "sync", &json!([]), WAIT).await }
        });
        let (ra, rb) = (request(&mut a, "sync").await, request(&mut b, "sync").await);
        pending.abort();
        cancelled(&mut a, &ra).await;
        cancelled(&mut b, &rb).await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn chat_ask_takes_a_policy() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut asker = server.connect("asker").await;
        let mut d1 = server.connect("target").await;
        let mut d2 = server.connect("target").await;
        asker
            .send_json(&rpc(
                5,
                "chat.ask",
                json!({"user": "target", "method": "ping", "policy": "first", "timeout_ms": 30000}),
            ))
            .await;
        let (r1, r2) = (request(&mut d1, "ping").await, request(&mut d2, "ping").await);
        answer(&mut d2, &r2, json!("pong")).await;
        let reply = asker.recv().await;
        assert_eq!(reply["id"], 5);
        assert_eq!(reply["result"]["met"], true, "{reply}");
        assert_eq!(
            outcome_of(&reply["result"]["outcomes"], &d1.session)["error"]["code"],
            -32011
        );
        cancelled(&mut d1, &r1).await;
        server.stop().await;
    })
    .await;
}
