//! The client-facing built-ins that route through the Hub — `rpc.subscribe`
//! limits and topic rules, `rpc.publish` when clients may not publish — and
//! the demo chat (`chat.join`, `chat.send`, `chat.dm`, `chat.ask`).

mod hub_support;

use serde_json::{Value, json};
use switchboard_protocol::codes;
use switchboard_server::Config;
use switchboard_tests::{TestServer, WsClient, error_code, result, within};

use hub_support::{LIMIT, assert_silent, message, notification, request, subscribe};

/// A gateway with 4 subscriptions per session and topic names of at most 16
/// bytes. The automatic personal topic is on: it must not use up a slot.
async fn small_limits_server() -> TestServer {
    let mut config = Config::default();
    config.limits.max_subscriptions = 4;
    config.limits.max_topic_len = 16;
    TestServer::start_with(config, Vec::new()).await
}

/// `rpc.subscribe` to `topics`; returns the answer.
async fn subscribe_to(c: &mut WsClient, id: u64, topics: &[&str]) -> Value {
    let topics: Vec<Value> = topics.iter().map(|t| json!({ "topic": t })).collect();
    let (answer, others) = request(c, id, "rpc.subscribe", json!({ "topics": topics })).await;
    assert!(others.is_empty(), "{others:?}");
    answer
}

/// `rpc.unsubscribe` from `topics`; asserts success.
async fn unsubscribe_from(c: &mut WsClient, id: u64, topics: &[&str]) {
    let (answer, _) = request(c, id, "rpc.unsubscribe", json!({ "topics": topics })).await;
    assert!(answer.get("result").is_some(), "unsubscribe: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_limited_per_session() {
    within(LIMIT, async {
        let server = small_limits_server().await;
        let hub = server.gateway.hub();
        let mut alice = server.connect("alice").await;

        // More topics in one request than allowed: refused, and nothing is kept.
        let r = subscribe_to(&mut alice, 1, &["t0", "t1", "t2", "t3", "t4"]).await;
        assert_eq!(error_code(&r), Some(-32010), "too many subscriptions: {r}");
        assert_eq!(error_code(&r), Some(i64::from(codes::LIMIT_EXCEEDED)));
        assert!(r["error"]["data"]["reason"].is_string(), "{r}");
        assert_eq!(r["id"], 1);
        hub.publish("t0", &json!("x")).await.expect("publish");
        assert_silent(&mut alice, "a refused subscription is rolled back").await;

        // Up to the limit is fine, one more is not.
        let r = subscribe_to(&mut alice, 2, &["t0", "t1", "t2", "t3"]).await;
        assert_eq!(r["result"]["topics"].as_array().map(Vec::len), Some(4), "{r}");
        let r = subscribe_to(&mut alice, 3, &["t4"]).await;
        assert_eq!(error_code(&r), Some(-32010), "{r}");
        // Subscribing again to a topic is not a new subscription.
        let r = subscribe_to(&mut alice, 4, &["t3"]).await;
        assert!(r.get("result").is_some(), "{r}");
        // A freed slot can be used again.
        unsubscribe_from(&mut alice, 5, &["t0"]).await;
        let r = subscribe_to(&mut alice, 6, &["t4"]).await;
        assert!(r.get("result").is_some(), "{r}");
        hub.publish("t4", &json!("four")).await.expect("publish");
        assert_eq!(alice.recv().await, message("t4", json!("four")));
        assert_silent(&mut alice, "after the publication on t4").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_topic_names_are_refused_with_a_reason() {
    within(LIMIT, async {
        let server = small_limits_server().await;
        let mut alice = server.connect("alice").await;

        let too_long = "x".repeat(17);
        let invalid = ["", too_long.as_str(), "with space", "tab\there", "émoji"];
        for (n, bad) in invalid.into_iter().enumerate() {
            let r = subscribe_to(&mut alice, 100 + n as u64, &[bad]).await;
            assert_eq!(error_code(&r), Some(-32602), "topic {bad:?}: {r}");
            let reason = r["error"]["data"]["reason"].as_str();
            assert!(reason.is_some_and(|s| !s.is_empty()), "topic {bad:?}: {r}");
        }
        // Exactly max_topic_len is fine.
        let r = subscribe_to(&mut alice, 120, &["x".repeat(16).as_str()]).await;
        assert!(r.get("result").is_some(), "a 16-byte topic is allowed: {r}");
        // Params of the wrong shape: -32602 with a reason.
        let (r, _) = request(&mut alice, 121, "rpc.subscribe", json!({"topics": "t0"})).await;
        assert_eq!(error_code(&r), Some(-32602), "{r}");
        assert!(r["error"]["data"]["reason"].is_string(), "{r}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_topics_are_for_their_own_user() {
    within(LIMIT, async {
        let server = small_limits_server().await;
        let hub = server.gateway.hub();
        let mut alice = server.connect("alice").await;
        let mut bob = server.connect("bob").await;

        let r = subscribe_to(&mut alice, 1, &["user:bob"]).await;
        assert_eq!(
            error_code(&r),
            Some(-32001),
            "alice may not subscribe to bob's topic: {r}"
        );
        assert!(r["error"]["data"]["reason"].is_string(), "{r}");
        let r = subscribe_to(&mut alice, 2, &["user:alice"]).await;
        assert!(r.get("result").is_some(), "alice may subscribe to her own topic: {r}");

        hub.publish("user:bob", &json!("for bob")).await.expect("publish");
        assert_silent(&mut alice, "bob's personal topic").await;
        // Every session is subscribed to its own personal topic.
        let m = bob.recv().await;
        assert_eq!(m["params"]["topic"], "user:bob", "{m}");
        assert_eq!(m["params"]["data"], "for bob", "{m}");
        hub.publish("user:alice", &json!("for alice")).await.expect("publish");
        // Personal topics may carry a stream position (offset, epoch) as well.
        let m = alice.recv().await;
        assert_eq!(m["method"], "rpc.message", "{m}");
        assert_eq!(m["params"]["topic"], "user:alice", "{m}");
        assert_eq!(m["params"]["data"], "for alice", "{m}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_publish_can_be_switched_off() {
    within(LIMIT, async {
        let config = Config {
            client_publish: false,
            ..Config::default()
        };
        let server = TestServer::start_with(config, Vec::new()).await;
        let mut alice = server.connect("alice").await;
        let mut bob = server.connect("bob").await;
        subscribe(&mut bob, "news").await;

        let (r, others) = request(&mut alice, 1, "rpc.publish", json!({"topic": "news", "data": 1})).await;
        assert_eq!(error_code(&r), Some(-32001), "clients may not publish: {r}");
        assert!(others.is_empty());
        assert_silent(&mut bob, "a refused rpc.publish").await;

        // The hub still publishes.
        server.gateway.hub().publish("news", &json!(2)).await.expect("publish");
        assert_eq!(bob.recv().await, message("news", json!(2)));
    })
    .await;
}

// ---------------------------------------------------------------------------
// Demo chat
// ---------------------------------------------------------------------------

/// `chat.join` subscribes to `chat:{room}`; `chat.send` reaches the joined
/// sessions (the sender's too) as `rpc.message {from, text}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_chat_rooms() {
    within(LIMIT, async {
        let server = TestServer::start().await;
        let mut a1 = server.connect("alice").await;
        let mut b1 = server.connect("bob").await;
        let mut b2 = server.connect("bob").await;
        let mut c1 = server.connect("carol").await;

        let lobby = json!({"room": "lobby"});
        let (r, others) = request(&mut a1, 1, "chat.join", lobby.clone()).await;
        assert_eq!(r, result(json!(1), json!({"topic": "chat:lobby"})));
        assert!(others.is_empty(), "{others:?}");
        let (r, _) = request(&mut b1, 1, "chat.join", lobby).await;
        assert_eq!(r, result(json!(1), json!({"topic": "chat:lobby"})));

        let hi = json!({"room": "lobby", "text": "hi"});
        let (r, others) = request(&mut a1, 2, "chat.send", hi).await;
        assert_eq!(r, result(json!(2), json!(true)));
        let said = message("chat:lobby", json!({"from": "alice", "text": "hi"}));
        // The sender is in the room too: the message comes before the answer.
        assert_eq!(others, vec![said.clone()]);
        assert_eq!(b1.recv().await, said);
        for (c, who) in [
            (&mut a1, "a1 (once)"),
            (&mut b1, "b1 (once)"),
            (&mut b2, "b2"),
            (&mut c1, "c1"),
        ] {
            assert_silent(c, &format!("chat.send to lobby reached {who}")).await;
        }

        // Someone outside the room may send to it, and does not hear it.
        let knock = json!({"room": "lobby", "text": "knock"});
        let (r, others) = request(&mut c1, 3, "chat.send", knock).await;
        assert_eq!(r, result(json!(3), json!(true)));
        assert!(others.is_empty(), "{others:?}");
        let knock = message("chat:lobby", json!({"from": "carol", "text": "knock"}));
        assert_eq!(a1.recv().await, knock);
        assert_eq!(b1.recv().await, knock);
        for c in [&mut a1, &mut b1, &mut b2, &mut c1] {
            assert_silent(c, "chat.send from carol").await;
        }
    })
    .await;
}

/// `chat.dm` reaches every session of the user as a `chat.dm` notification,
/// and nobody else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_chat_direct_messages() {
    within(LIMIT, async {
        let server = TestServer::start().await;
        let mut a1 = server.connect("alice").await;
        let mut b1 = server.connect("bob").await;
        let mut b2 = server.connect("bob").await;
        let mut c1 = server.connect("carol").await;

        let dm = json!({"user": "bob", "text": "yo"});
        let (r, others) = request(&mut c1, 4, "chat.dm", dm).await;
        assert_eq!(r, result(json!(4), json!(true)));
        assert!(others.is_empty(), "{others:?}");
        let expected = notification("chat.message", json!({"from": "carol", "text": "yo"}));
        assert_eq!(b1.recv().await, expected);
        assert_eq!(b2.recv().await, expected);
        for (c, who) in [
            (&mut a1, "a1"),
            (&mut b1, "b1 (once)"),
            (&mut b2, "b2 (once)"),
            (&mut c1, "c1"),
        ] {
            assert_silent(c, &format!("chat.dm to bob reached {who}")).await;
        }
    })
    .await;
}

/// `chat.ask` calls a method on every session of a user and answers one
/// entry per session: `{session, user, result}` or `{session, user, error}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_chat_ask() {
    within(LIMIT, async {
        let server = TestServer::start().await;
        let mut a1 = server.connect("alice").await;
        let mut b1 = server.connect("bob").await;
        let mut b2 = server.connect("bob").await;
        let mut c1 = server.connect("carol").await;

        // One session answers, the other answers an error.
        let ask = json!({
            "user": "bob",
            "method": "ui.poll",
            "params": {"q": "lunch?"},
            "timeout_ms": 5000,
        });
        a1.send_json(&json!({"jsonrpc": "2.0", "id": 5, "method": "chat.ask", "params": ask}))
            .await;
        let q1 = b1.recv().await;
        let q2 = b2.recv().await;
        assert_eq!(q1, q2, "both of bob's sessions receive the same request");
        assert_eq!(q1["method"], "ui.poll");
        assert_eq!(q1["params"], json!({"q": "lunch?"}));
        let id = q1["id"].clone();
        assert!(id.is_u64(), "{q1}");
        b1.send_json(&json!({"jsonrpc": "2.0", "id": id, "result": "yes"}))
            .await;
        let busy = json!({"code": 7, "message": "busy"});
        b2.send_json(&json!({"jsonrpc": "2.0", "id": id, "error": busy})).await;
        let r = a1.recv().await;
        assert_eq!(r["id"], 5, "{r}");
        let mut entries = r["result"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("chat.ask answers a list: {r}"));
        entries.sort_by_key(|e| e["session"] != json!(b1.session));
        let node = server.gateway.hub().node();
        assert_eq!(
            entries,
            vec![
                json!({"session": b1.session, "user": "bob", "node": node, "result": "yes"}),
                json!({"session": b2.session, "user": "bob", "node": node, "error": busy}),
            ]
        );

        // A session that does not answer: its entry is a timeout, and it is
        // told the caller gave up.
        let ask = json!({"user": "alice", "method": "ui.poll", "timeout_ms": 200});
        let (r, _) = request(&mut c1, 6, "chat.ask", ask).await;
        let q = a1.recv().await;
        assert_eq!(q["method"], "ui.poll", "{q}");
        assert_eq!(r["id"], 6, "{r}");
        let entries = r["result"].as_array().cloned().unwrap_or_default();
        assert_eq!(entries.len(), 1, "{r}");
        assert_eq!(entries[0]["session"], json!(a1.session));
        assert_eq!(entries[0]["user"], "alice");
        assert_eq!(entries[0]["error"]["code"], -32004, "{r}");
        assert!(entries[0]["error"]["message"].is_string(), "{r}");
        assert!(entries[0].get("result").is_none(), "{r}");
        let cancel = notification("rpc.cancel", json!({"id": q["id"]}));
        assert_eq!(a1.recv().await, cancel);

        // A user with no session: an empty list.
        let ask = json!({"user": "nobody", "method": "ui.poll", "timeout_ms": 200});
        let (r, _) = request(&mut c1, 7, "chat.ask", ask).await;
        assert_eq!(r, result(json!(7), json!([])));
        for c in [&mut a1, &mut b1, &mut b2, &mut c1] {
            assert_silent(c, "after chat.ask").await;
        }
    })
    .await;
}
