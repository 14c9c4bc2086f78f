//! The Hub at the wire: pushes by target, multicast calls, presence,
//! disconnects, slow consumers, serialise-once fan-out, subscription limits
//! and the demo chat — the core scenarios run against both the in-process
//! broker and the JSON round-tripping broker.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::join_all;
use serde_json::{Value, json};
use switchboard_protocol::codes;
use switchboard_server::broker::{JsonBroker, LocalBroker, PresenceEntry};
use switchboard_server::{Config, Gateway, Hub, Target};
use switchboard_tests::{TestServer, WAIT, WsClient, error_code, eventually, result, within};
use tokio::time::Instant;

/// Overall limit of one ordinary test.
const LIMIT: Duration = Duration::from_secs(30);

/// How long a client waits for a frame that must not come, before the probe.
const QUIET: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A gateway whose broker round-trips every envelope through JSON.
async fn json_broker_server() -> TestServer {
    let gateway = Gateway::builder(Config::default())
        .broker(Arc::new(JsonBroker::new(LocalBroker::new())))
        .build()
        .expect("gateway builds");
    TestServer::serve(gateway).await
}

/// `{"jsonrpc":"2.0","method":METHOD,"params":PARAMS}`.
fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// The `rpc.message` a subscriber of `topic` receives for `data`.
fn message(topic: &str, data: Value) -> Value {
    notification("rpc.message", json!({"topic": topic, "data": data}))
}

/// Asserts that nothing arrives at `c`: a short wait, then an `rpc.ping`
/// whose pong must be the very next frame.
async fn assert_silent(c: &mut WsClient, what: &str) {
    if let Some(v) = c.try_recv(QUIET).await {
        panic!("{what}: session {} received an unexpected frame: {v}", c.session);
    }
    let id = 9_999_001;
    c.send_json(&json!({"jsonrpc": "2.0", "id": id, "method": "rpc.ping"})).await;
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
async fn request(c: &mut WsClient, id: u64, method: &str, params: Value) -> (Value, Vec<Value>) {
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
async fn subscribe(c: &mut WsClient, topic: &str) {
    let (response, others) = request(c, 7_001, "rpc.subscribe", json!({"topics": [{"topic": topic}]})).await;
    assert!(others.is_empty(), "unexpected frames before the subscribe answer: {others:?}");
    assert_eq!(response["result"]["topics"][0]["topic"], topic, "subscribe failed: {response}");
    assert_eq!(response["result"]["topics"][0]["recovered"], true, "subscribe answer: {response}");
}

/// Presence as the hub reports it now. The in-process brokers answer without
/// waiting; a broker that would make us wait counts as "not yet".
fn presence_now(hub: &Hub, user: Option<&str>) -> Option<Vec<PresenceEntry>> {
    hub.presence(user).now_or_never().map(|r| r.expect("presence"))
}

fn entry(hub: &Hub, c: &WsClient, user: &str) -> PresenceEntry {
    PresenceEntry { session: c.session.clone(), user: user.to_owned(), node: hub.node().to_owned() }
}

fn sorted(mut v: Vec<PresenceEntry>) -> Vec<PresenceEntry> {
    v.sort_by(|a, b| (&a.user, &a.session).cmp(&(&b.user, &b.session)));
    v
}

/// Polls presence until it equals `expected` (order ignored).
async fn presence_becomes(hub: &Hub, user: Option<&str>, expected: Vec<PresenceEntry>) {
    let expected = sorted(expected);
    let ok = eventually(WAIT, || presence_now(hub, user).is_some_and(|p| sorted(p) == expected)).await;
    assert!(
        ok,
        "presence({user:?}) never became {expected:?}; it is {:?}",
        presence_now(hub, user)
    );
}

// ---------------------------------------------------------------------------
// Scenarios run against both brokers
// ---------------------------------------------------------------------------

/// Push to one session, one user (all of the user's sessions and nobody
/// else's), several users, and everyone.
async fn push_by_target(server: &TestServer) {
    let hub = server.gateway.hub();
    let mut a1 = server.connect("alice").await;
    let mut a2 = server.connect("alice").await;
    let mut b1 = server.connect("bob").await;
    let mut c1 = server.connect("carol").await;
    assert_ne!(a1.session, a2.session, "two sessions of one user have distinct ids");

    // One session.
    hub.notify(Target::Session(a2.session.clone()), "app.session", &json!({"n": 1}))
        .await
        .expect("notify session");
    assert_eq!(a2.recv().await, notification("app.session", json!({"n": 1})));
    for (c, who) in [(&mut a2, "a2 (once)"), (&mut a1, "a1"), (&mut b1, "b1"), (&mut c1, "c1")] {
        assert_silent(c, &format!("push to session a2 reached {who}")).await;
    }

    // One user: every session of alice, nobody else.
    hub.notify(Target::User("alice".into()), "app.user", &json!({"n": 2}))
        .await
        .expect("notify user");
    // The params are kept exactly as the application gave them.
    assert_eq!(a1.recv_text().await, r#"{"jsonrpc":"2.0","method":"app.user","params":{"n":2}}"#);
    assert_eq!(a2.recv_text().await, r#"{"jsonrpc":"2.0","method":"app.user","params":{"n":2}}"#);
    for (c, who) in [(&mut a1, "a1 (once)"), (&mut a2, "a2 (once)"), (&mut b1, "b1"), (&mut c1, "c1")] {
        assert_silent(c, &format!("push to user alice reached {who}")).await;
    }

    // Several users, one named twice: each session receives the frame once.
    hub.notify(Target::Users(vec!["alice".into(), "bob".into(), "alice".into()]), "app.users", &[1, 2, 3])
        .await
        .expect("notify users");
    for c in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(c.recv().await, notification("app.users", json!([1, 2, 3])));
    }
    for (c, who) in [(&mut a1, "a1 (once)"), (&mut a2, "a2 (once)"), (&mut b1, "b1 (once)"), (&mut c1, "c1")] {
        assert_silent(c, &format!("push to users [alice, bob] reached {who}")).await;
    }

    // An unknown user: nobody.
    hub.notify(Target::User("nobody".into()), "app.none", &json!({}))
        .await
        .expect("notify unknown user");
    for c in [&mut a1, &mut a2, &mut b1, &mut c1] {
        assert_silent(c, "push to an unknown user").await;
    }

    // Everyone; a notification without params has no `params` member.
    hub.notify_raw(Target::All, "app.all", None).await.expect("notify all");
    for c in [&mut a1, &mut a2, &mut b1, &mut c1] {
        assert_eq!(c.recv_text().await, r#"{"jsonrpc":"2.0","method":"app.all"}"#);
    }
    for c in [&mut a1, &mut a2, &mut b1, &mut c1] {
        assert_silent(c, "push to all (once)").await;
    }
}

/// Topic publications reach exactly the subscribers, through every way of
/// subscribing and publishing.
async fn topic_publish(server: &TestServer) {
    let hub = server.gateway.hub();
    let mut a1 = server.connect("alice").await;
    let mut a2 = server.connect("alice").await;
    let mut b1 = server.connect("bob").await;
    let mut c1 = server.connect("carol").await;

    subscribe(&mut a2, "news").await;
    subscribe(&mut c1, "news").await;
    hub.publish("news", &json!({"headline": "hello"})).await.expect("publish");
    for c in [&mut a2, &mut c1] {
        assert_eq!(c.recv().await, message("news", json!({"headline": "hello"})));
    }
    for (c, who) in [(&mut a1, "a1"), (&mut a2, "a2 (once)"), (&mut b1, "b1"), (&mut c1, "c1 (once)")] {
        assert_silent(c, &format!("publish on news reached {who}")).await;
    }

    // A publication on a topic nobody is subscribed to reaches nobody.
    hub.publish("sports", &json!(1)).await.expect("publish");
    for c in [&mut a1, &mut a2, &mut b1, &mut c1] {
        assert_silent(c, "publish on an unsubscribed topic").await;
    }

    // A client publishes with rpc.publish: subscribers (itself included) receive it.
    let (response, others) = request(&mut b1, 11, "rpc.publish", json!({"topic": "news", "data": [1, "two"]})).await;
    assert_eq!(response, result(json!(11), json!({})));
    assert!(others.is_empty(), "b1 is not subscribed to news: {others:?}");
    for c in [&mut a2, &mut c1] {
        assert_eq!(c.recv().await, message("news", json!([1, "two"])));
    }
    for c in [&mut a1, &mut a2, &mut b1, &mut c1] {
        assert_silent(c, "rpc.publish on news").await;
    }

    // rpc.unsubscribe: c1 no longer receives news.
    let (response, _) = request(&mut c1, 12, "rpc.unsubscribe", json!({"topics": ["news"]})).await;
    assert!(response.get("result").is_some(), "unsubscribe failed: {response}");
    hub.publish("news", &json!("second")).await.expect("publish");
    assert_eq!(a2.recv().await, message("news", json!("second")));
    for c in [&mut a1, &mut a2, &mut b1, &mut c1] {
        assert_silent(c, "publish on news after c1 left").await;
    }

    // Server-side subscribe of a user, then unsubscribe.
    hub.subscribe(Target::User("alice".into()), vec!["ops".into()])
        .await
        .expect("hub subscribe");
    hub.publish("ops", &json!({"deploy": true})).await.expect("publish");
    for c in [&mut a1, &mut a2] {
        assert_eq!(c.recv().await, message("ops", json!({"deploy": true})));
    }
    for c in [&mut a1, &mut a2, &mut b1, &mut c1] {
        assert_silent(c, "publish on ops (alice subscribed by the server)").await;
    }
    hub.unsubscribe(Target::Session(a1.session.clone()), vec!["ops".into()])
        .await
        .expect("hub unsubscribe");
    hub.publish("ops", &json!({"deploy": false})).await.expect("publish");
    assert_eq!(a2.recv().await, message("ops", json!({"deploy": false})));
    for c in [&mut a1, &mut a2, &mut b1, &mut c1] {
        assert_silent(c, "publish on ops after a1 was unsubscribed").await;
    }

    // Publishing to a topic target with notify sends the application's own method.
    hub.notify(Target::Topic("news".into()), "app.topic", &json!({"x": 1}))
        .await
        .expect("notify topic");
    assert_eq!(a2.recv().await, notification("app.topic", json!({"x": 1})));
    for c in [&mut a1, &mut a2, &mut b1, &mut c1] {
        assert_silent(c, "notify to topic news").await;
    }
}

/// A multicast call to a user with three sessions: one answers, one errors,
/// one never answers.
async fn multicast_call(server: &TestServer) {
    let hub = server.gateway.hub().clone();
    let mut s1 = server.connect("alice").await;
    let mut s2 = server.connect("alice").await;
    let mut s3 = server.connect("alice").await;
    let mut bob = server.connect("bob").await;

    let timeout = Duration::from_millis(800);
    let started = Instant::now();
    let call = tokio::spawn(async move {
        hub.call(Target::User("alice".into()), "ui.confirm", &json!({"question": "sure?"}), timeout)
            .await
    });

    let texts = [s1.recv_text().await, s2.recv_text().await, s3.recv_text().await];
    assert!(
        texts.iter().all(|t| t == &texts[0]),
        "every session receives the very same request frame: {texts:?}"
    );
    let request: Value = serde_json::from_str(&texts[0]).expect("request is JSON");
    assert_eq!(request["jsonrpc"], "2.0");
    assert_eq!(request["method"], "ui.confirm");
    assert_eq!(request["params"], json!({"question": "sure?"}));
    let id = request["id"].as_u64().expect("the server's request id is an integer");
    assert!(id < (1 << 53), "the server's ids are safe in JavaScript");

    s1.send_json(&json!({"jsonrpc": "2.0", "id": id, "result": {"ok": true}})).await;
    s2.send_json(&json!({"jsonrpc": "2.0", "id": id, "error": {"code": 4242, "message": "declined", "data": {"why": "no"}}}))
        .await;

    let entries = call.await.expect("call task").expect("call");
    let elapsed = started.elapsed();
    assert!(elapsed >= timeout, "the call cannot end before its timeout while s3 owes an answer ({elapsed:?})");
    assert!(elapsed < timeout + Duration::from_secs(1), "the call returns within its timeout (took {elapsed:?})");

    assert_eq!(entries.len(), 3, "one entry per session: {entries:?}");
    let by_session: HashMap<&str, _> = entries.iter().map(|e| (e.session.as_str(), e)).collect();
    assert_eq!(by_session.len(), 3, "entries name three distinct sessions: {entries:?}");
    for e in &entries {
        assert_eq!(e.user, "alice");
    }
    let e1 = by_session[s1.session.as_str()];
    let r1 = e1.outcome.as_ref().expect("s1 answered");
    assert_eq!(serde_json::from_str::<Value>(r1.get()).expect("result is JSON"), json!({"ok": true}));
    assert_eq!(
        serde_json::to_value(e1).expect("entry serialises"),
        json!({"session": s1.session, "user": "alice", "result": {"ok": true}})
    );
    let e2 = by_session[s2.session.as_str()].outcome.as_ref().expect_err("s2 answered an error");
    assert_eq!((e2.code, e2.message.as_str()), (4242, "declined"));
    assert_eq!(e2.data, Some(json!({"why": "no"})));
    let e3 = by_session[s3.session.as_str()].outcome.as_ref().expect_err("s3 never answered");
    assert_eq!(e3.code, codes::TIMEOUT, "s3's entry is a timeout: {e3:?}");
    assert_eq!(e3.code, -32004);

    // The session that did not answer is told the caller gave up.
    assert_eq!(s3.recv().await, notification("rpc.cancel", json!({"id": id})));
    for (c, who) in [(&mut s1, "s1"), (&mut s2, "s2"), (&mut s3, "s3 (once)"), (&mut bob, "bob")] {
        assert_silent(c, &format!("after the multicast call, {who}")).await;
    }

    // A late answer from s3 is harmless and its session lives on.
    s3.send_json(&json!({"jsonrpc": "2.0", "id": id, "result": "too late"})).await;
    assert_silent(&mut s3, "after a late answer").await;
}

/// Presence follows connects and disconnects.
async fn presence(server: &TestServer) {
    let hub = server.gateway.hub();
    assert_eq!(hub.presence(None).await.expect("presence"), Vec::new());

    let mut a1 = server.connect("alice").await;
    // A session is in presence by the time its welcome arrives.
    assert_eq!(hub.presence(Some("alice")).await.expect("presence"), vec![entry(hub, &a1, "alice")]);

    let a2 = server.connect("alice").await;
    let b1 = server.connect("bob").await;
    assert_eq!(
        sorted(hub.presence(Some("alice")).await.expect("presence")),
        sorted(vec![entry(hub, &a1, "alice"), entry(hub, &a2, "alice")])
    );
    assert_eq!(hub.presence(Some("bob")).await.expect("presence"), vec![entry(hub, &b1, "bob")]);
    assert_eq!(hub.presence(Some("nobody")).await.expect("presence"), Vec::new());
    assert_eq!(
        sorted(hub.presence(None).await.expect("presence")),
        sorted(vec![entry(hub, &a1, "alice"), entry(hub, &a2, "alice"), entry(hub, &b1, "bob")])
    );

    // A client that closes cleanly leaves presence.
    a1.ws.close(None).await.expect("close");
    presence_becomes(hub, Some("alice"), vec![entry(hub, &a2, "alice")]).await;
    presence_becomes(hub, None, vec![entry(hub, &a2, "alice"), entry(hub, &b1, "bob")]).await;

    // A client that just drops its connection leaves too.
    let b1_entry = entry(hub, &b1, "bob");
    drop(b1);
    presence_becomes(hub, Some("bob"), Vec::new()).await;
    presence_becomes(hub, None, vec![entry(hub, &a2, "alice")]).await;
    assert!(!hub.presence(None).await.expect("presence").contains(&b1_entry));

    // And a reconnect comes back with a new session.
    let a3 = server.connect("alice").await;
    assert_ne!(a3.session, a2.session);
    assert_eq!(
        sorted(hub.presence(Some("alice")).await.expect("presence")),
        sorted(vec![entry(hub, &a2, "alice"), entry(hub, &a3, "alice")])
    );
}

/// Disconnecting a user closes all of its sessions with the given code,
/// after `rpc.disconnect`; other users are untouched.
async fn disconnect_user(server: &TestServer) {
    let hub = server.gateway.hub();
    let mut a1 = server.connect("alice").await;
    let mut a2 = server.connect("alice").await;
    let mut b1 = server.connect("bob").await;

    hub.disconnect(Target::User("alice".into()), codes::close::KICKED, "bye")
        .await
        .expect("disconnect");
    assert_eq!(codes::close::KICKED, 4502);
    for c in [&mut a1, &mut a2] {
        let mut before = Vec::new();
        let closed = c.closed(&mut before).await;
        assert_eq!(
            before,
            vec![notification("rpc.disconnect", json!({"code": 4502, "reason": "bye", "reconnect": false}))],
            "session {} is told why before the close",
            c.session
        );
        assert_eq!(closed.code, Some(4502), "session {} closes with the given code", c.session);
        assert_eq!(closed.reason, "bye");
    }

    // Bob's session stays open.
    assert_eq!(b1.call(1, "rpc.ping", json!([])).await, result(json!(1), json!("pong")));
    assert_silent(&mut b1, "bob after alice was disconnected").await;

    // And alice is gone from presence.
    presence_becomes(hub, Some("alice"), Vec::new()).await;
    presence_becomes(hub, None, vec![entry(hub, &b1, "bob")]).await;

    // A reconnectable code is announced as such.
    hub.disconnect(Target::Session(b1.session.clone()), codes::close::RECONNECT, "move along")
        .await
        .expect("disconnect");
    let mut before = Vec::new();
    let closed = b1.closed(&mut before).await;
    assert_eq!(
        before,
        vec![notification(
            "rpc.disconnect",
            json!({"code": codes::close::RECONNECT, "reason": "move along", "reconnect": true})
        )]
    );
    assert_eq!(closed.code, Some(codes::close::RECONNECT));
}

/// Runs each scenario against a gateway on the in-process broker and against
/// one whose broker round-trips every envelope through JSON.
macro_rules! on_both_brokers {
    ($($scenario:ident),* $(,)?) => {
        mod local_broker {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    switchboard_tests::within(super::LIMIT, async {
                        let server = switchboard_tests::TestServer::start().await;
                        super::$scenario(&server).await;
                    })
                    .await;
                }
            )*
        }
        mod json_broker {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    switchboard_tests::within(super::LIMIT, async {
                        let server = super::json_broker_server().await;
                        super::$scenario(&server).await;
                    })
                    .await;
                }
            )*
        }
    };
}

on_both_brokers!(push_by_target, topic_publish, multicast_call, presence, disconnect_user);

// ---------------------------------------------------------------------------
// Slow consumers
// ---------------------------------------------------------------------------

/// A client that never reads is closed with 4000 while readers on the same
/// topic receive every message, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_consumer_is_closed_while_readers_get_everything() {
    within(Duration::from_secs(120), async {
        let mut config = Config::default();
        config.limits.max_queue_bytes = 64 * 1024;
        let server = TestServer::start_with(config, Vec::new()).await;
        let hub = server.gateway.hub().clone();

        const TOPIC: &str = "firehose";
        const READERS: usize = 3;
        // Published in batches of about 32 KiB, half the queue bound, and the
        // next batch waits until every reader has read the previous one: a
        // reader is never slow, whatever the scheduling of this machine.
        const BATCH: usize = 32;
        const AT_LEAST: usize = 2_000;
        // The socket buffers absorb some data before the queue fills; stop
        // (and fail) if the non-reader is still not cut after this many.
        const AT_MOST: usize = 50_000;

        let progress: Arc<Vec<AtomicUsize>> = Arc::new((0..READERS).map(|_| AtomicUsize::new(0)).collect());
        let mut readers = Vec::new();
        for i in 0..READERS {
            let mut c = server.connect(&format!("reader{i}")).await;
            subscribe(&mut c, TOPIC).await;
            let progress = progress.clone();
            readers.push(tokio::spawn(async move {
                let mut next = 0u64;
                loop {
                    let v = c.recv().await;
                    assert_eq!(v["method"], "rpc.message", "reader {i}: {v}");
                    assert_eq!(v["params"]["topic"], TOPIC);
                    let data = &v["params"]["data"];
                    assert_eq!(data["seq"].as_u64(), Some(next), "reader {i} receives every message in order");
                    next += 1;
                    progress[i].store(next as usize, Ordering::Release);
                    if data["last"] == true {
                        return (c, next);
                    }
                }
            }));
        }
        let mut slow = Some(server.connect("slow").await);
        subscribe(slow.as_mut().expect("slow client"), TOPIC).await;
        let slow_session = slow.as_ref().expect("slow client").session.clone();

        let pad = "x".repeat(1000);
        let mut published = 0usize;
        let mut slow_reader = None;
        let mut cut_after = None;
        loop {
            let before = hub.stats().deliveries;
            for _ in 0..BATCH {
                hub.publish(TOPIC, &json!({"seq": published, "pad": pad})).await.expect("publish");
                published += 1;
            }
            let delivered = hub.stats().deliveries - before;
            if let Some(mut c) = slow.take_if(|_| delivered < ((READERS + 1) * BATCH) as u64) {
                // The non-reader's queue overflowed: read it now, to see how it ends.
                cut_after = Some(published);
                slow_reader = Some(tokio::spawn(async move {
                    let mut frames = Vec::new();
                    let closed = c.closed(&mut frames).await;
                    (frames, closed)
                }));
            }
            let caught_up = eventually(WAIT, || progress.iter().all(|p| p.load(Ordering::Acquire) >= published)).await;
            assert!(caught_up, "readers fell behind: {:?} of {published}", progress);
            if published >= AT_LEAST && slow.is_none() {
                break;
            }
            assert!(published < AT_MOST, "the non-reading client was not closed after {published} messages");
        }
        hub.publish(TOPIC, &json!({"seq": published, "last": true})).await.expect("publish");
        let total = published as u64 + 1;

        for reader in readers {
            let (mut c, received) = reader.await.expect("reader task");
            assert_eq!(received, total, "a reader receives every message");
            assert_silent(&mut c, "a reader after the last message").await;
        }

        let (frames, closed) = slow_reader.expect("the non-reader was cut").await.expect("slow reader task");
        let cut_after = cut_after.expect("cut") as u64;
        for (n, f) in frames.iter().enumerate() {
            assert_eq!(f["method"], "rpc.message", "frame {n} of the slow client: {f}");
            assert_eq!(
                f["params"]["data"]["seq"].as_u64(),
                Some(n as u64),
                "the slow client's frames before the close are an unbroken prefix"
            );
        }
        assert!((frames.len() as u64) < cut_after, "the slow client did not get everything");
        assert_eq!(
            closed.code,
            Some(codes::close::SLOW_CONSUMER),
            "the non-reader is closed as a slow consumer (after {} frames): {closed:?}",
            frames.len()
        );
        assert_eq!(closed.code, Some(4000));
        assert_eq!(closed.reason, codes::close::reason(codes::close::SLOW_CONSUMER));
        presence_becomes(&hub, Some("slow"), Vec::new()).await;
        assert!(!hub.presence(None).await.expect("presence").iter().any(|e| e.session == slow_session));
    })
    .await;
}

// ---------------------------------------------------------------------------
// Serialise once
// ---------------------------------------------------------------------------

/// A frame pushed to 1,000 sessions is serialised once and delivered 1,000 times.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn push_to_a_thousand_sessions_is_serialised_once() {
    within(Duration::from_secs(120), async {
        const SESSIONS: usize = 1_000;
        let server = TestServer::start().await;
        let hub = server.gateway.hub();

        let mut clients: Vec<WsClient> = Vec::with_capacity(SESSIONS);
        for chunk in 0..SESSIONS / 100 {
            let batch = join_all((0..100).map(|i| {
                let user = format!("u{}", chunk * 100 + i);
                let server = &server;
                async move { server.connect(&user).await }
            }))
            .await;
            clients.extend(batch);
        }
        assert_eq!(hub.presence(None).await.expect("presence").len(), SESSIONS);

        hub.subscribe(Target::All, vec!["big".into()]).await.expect("subscribe all");
        let before = hub.stats();
        hub.publish("big", &json!({"hello": "everyone"})).await.expect("publish");
        let after = hub.stats();
        assert_eq!(after.frames_serialised - before.frames_serialised, 1, "one push, one serialisation");
        assert_eq!(after.deliveries - before.deliveries, SESSIONS as u64, "one delivery per session");

        let expected = r#"{"jsonrpc":"2.0","method":"rpc.message","params":{"topic":"big","data":{"hello":"everyone"}}}"#;
        let frames = join_all(clients.iter_mut().map(|c| c.recv_text())).await;
        for (n, f) in frames.iter().enumerate() {
            assert_eq!(f, expected, "client {n}");
        }
        let stats = hub.stats();
        assert_eq!(stats.frames_serialised, after.frames_serialised, "nothing else was serialised");
    })
    .await;
}

// ---------------------------------------------------------------------------
// rpc.subscribe and rpc.publish limits
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_limits_and_topic_rules() {
    within(LIMIT, async {
        let mut config = Config::default();
        config.limits.max_subscriptions = 4;
        config.limits.max_topic_len = 16;
        // Only the client's own subscriptions here: no automatic personal topic.
        config.personal_topics = false;
        let server = TestServer::start_with(config, Vec::new()).await;
        let hub = server.gateway.hub();
        let mut alice = server.connect("alice").await;

        // More topics in one request than allowed: refused, and nothing is kept.
        let topics: Vec<Value> = (0..5).map(|i| json!({"topic": format!("t{i}")})).collect();
        let (r, _) = request(&mut alice, 1, "rpc.subscribe", json!({ "topics": topics })).await;
        assert_eq!(error_code(&r), Some(-32010), "too many subscriptions: {r}");
        assert_eq!(error_code(&r), Some(i64::from(codes::LIMIT_EXCEEDED)));
        assert_eq!(r["id"], 1);
        hub.publish("t0", &json!("x")).await.expect("publish");
        assert_silent(&mut alice, "a refused subscription is rolled back").await;

        // Up to the limit is fine, one more is not; an existing one is still fine.
        let topics: Vec<Value> = (0..4).map(|i| json!({"topic": format!("t{i}")})).collect();
        let (r, _) = request(&mut alice, 2, "rpc.subscribe", json!({ "topics": topics })).await;
        assert_eq!(r["result"]["topics"].as_array().map(Vec::len), Some(4), "{r}");
        let (r, _) = request(&mut alice, 3, "rpc.subscribe", json!({"topics": [{"topic": "t4"}]})).await;
        assert_eq!(error_code(&r), Some(-32010), "{r}");
        assert!(r["error"]["data"]["reason"].is_string(), "{r}");
        let (r, _) = request(&mut alice, 4, "rpc.subscribe", json!({"topics": [{"topic": "t3"}]})).await;
        assert!(r.get("result").is_some(), "re-subscribing is not a new subscription: {r}");
        let (r, _) = request(&mut alice, 5, "rpc.unsubscribe", json!({"topics": ["t0"]})).await;
        assert!(r.get("result").is_some(), "{r}");
        let (r, _) = request(&mut alice, 6, "rpc.subscribe", json!({"topics": [{"topic": "t4"}]})).await;
        assert!(r.get("result").is_some(), "a freed slot can be used again: {r}");
        let (r, _) = request(&mut alice, 7, "rpc.unsubscribe", json!({"topics": ["t1", "t2", "t3", "t4"]})).await;
        assert!(r.get("result").is_some(), "{r}");

        // Invalid names: -32602 with a reason.
        for (n, bad) in ["", "x".repeat(17).as_str(), "with space", "tab\there", "émoji"].into_iter().enumerate() {
            let id = 100 + n as u64;
            let (r, _) = request(&mut alice, id, "rpc.subscribe", json!({"topics": [{"topic": bad}]})).await;
            assert_eq!(error_code(&r), Some(-32602), "topic {bad:?}: {r}");
            assert!(
                r["error"]["data"]["reason"].as_str().is_some_and(|s| !s.is_empty()),
                "topic {bad:?} is refused with a reason: {r}"
            );
        }
        // Exactly max_topic_len is fine.
        let (r, _) = request(&mut alice, 120, "rpc.subscribe", json!({"topics": [{"topic": "x".repeat(16)}]})).await;
        assert!(r.get("result").is_some(), "a 16-byte topic is allowed: {r}");
        // Malformed params: -32602 with a reason.
        let (r, _) = request(&mut alice, 121, "rpc.subscribe", json!({"topics": "t0"})).await;
        assert_eq!(error_code(&r), Some(-32602), "{r}");
        assert!(r["error"]["data"]["reason"].is_string(), "{r}");

        // Personal topics: only their own user.
        let (r, _) = request(&mut alice, 200, "rpc.subscribe", json!({"topics": [{"topic": "user:bob"}]})).await;
        assert_eq!(error_code(&r), Some(-32001), "alice may not subscribe to bob's topic: {r}");
        let (r, _) = request(&mut alice, 201, "rpc.subscribe", json!({"topics": [{"topic": "user:alice"}]})).await;
        assert!(r.get("result").is_some(), "alice may subscribe to her own topic: {r}");
        let mut bob = server.connect("bob").await;
        hub.publish("user:bob", &json!("for bob")).await.expect("publish");
        assert_silent(&mut alice, "bob's personal topic").await;
        assert_silent(&mut bob, "bob is not subscribed to his topic").await;
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
        let config = Config { client_publish: false, ..Config::default() };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_chat_rooms_direct_messages_and_asks() {
    within(LIMIT, async {
        let server = TestServer::start().await;
        let mut a1 = server.connect("alice").await;
        let mut b1 = server.connect("bob").await;
        let mut b2 = server.connect("bob").await;
        let mut c1 = server.connect("carol").await;

        // chat.join and chat.send.
        let (r, others) = request(&mut a1, 1, "chat.join", json!({"room": "lobby"})).await;
        assert_eq!(r, result(json!(1), json!({"topic": "chat:lobby"})));
        assert!(others.is_empty());
        let (r, _) = request(&mut b1, 1, "chat.join", json!({"room": "lobby"})).await;
        assert_eq!(r, result(json!(1), json!({"topic": "chat:lobby"})));

        let (r, others) = request(&mut a1, 2, "chat.send", json!({"room": "lobby", "text": "hi"})).await;
        assert_eq!(r, result(json!(2), json!(true)));
        let said = message("chat:lobby", json!({"from": "alice", "text": "hi"}));
        // The sender is in the room too: the message comes before the answer.
        assert_eq!(others, vec![said.clone()]);
        assert_eq!(b1.recv().await, said);
        for (c, who) in [(&mut a1, "a1"), (&mut b1, "b1 (once)"), (&mut b2, "b2"), (&mut c1, "c1")] {
            assert_silent(c, &format!("chat.send to lobby reached {who}")).await;
        }

        // Someone outside the room may send to it.
        let (r, others) = request(&mut c1, 3, "chat.send", json!({"room": "lobby", "text": "knock"})).await;
        assert_eq!(r, result(json!(3), json!(true)));
        assert!(others.is_empty());
        let knock = message("chat:lobby", json!({"from": "carol", "text": "knock"}));
        assert_eq!(a1.recv().await, knock);
        assert_eq!(b1.recv().await, knock);
        for c in [&mut a1, &mut b1, &mut b2, &mut c1] {
            assert_silent(c, "chat.send from carol").await;
        }

        // chat.dm reaches every session of the user, nobody else.
        let (r, others) = request(&mut c1, 4, "chat.dm", json!({"user": "bob", "text": "yo"})).await;
        assert_eq!(r, result(json!(4), json!(true)));
        assert!(others.is_empty());
        for c in [&mut b1, &mut b2] {
            assert_eq!(c.recv().await, notification("chat.dm", json!({"from": "carol", "text": "yo"})));
        }
        for (c, who) in [(&mut a1, "a1"), (&mut b1, "b1 (once)"), (&mut b2, "b2 (once)"), (&mut c1, "c1")] {
            assert_silent(c, &format!("chat.dm to bob reached {who}")).await;
        }

        // chat.ask: one entry per session of the user.
        a1.send_json(&json!({"jsonrpc": "2.0", "id": 5, "method": "chat.ask",
            "params": {"user": "bob", "method": "ui.poll", "params": {"q": "lunch?"}, "timeout_ms": 5000}}))
            .await;
        let q1 = b1.recv().await;
        let q2 = b2.recv().await;
        assert_eq!(q1, q2, "both of bob's sessions receive the same request");
        assert_eq!(q1["method"], "ui.poll");
        assert_eq!(q1["params"], json!({"q": "lunch?"}));
        let id = q1["id"].clone();
        assert!(id.is_u64(), "{q1}");
        b1.send_json(&json!({"jsonrpc": "2.0", "id": id, "result": "yes"})).await;
        b2.send_json(&json!({"jsonrpc": "2.0", "id": id, "error": {"code": 7, "message": "busy"}}))
            .await;
        let r = a1.recv().await;
        assert_eq!(r["id"], 5, "{r}");
        let mut entries = r["result"].as_array().cloned().unwrap_or_else(|| panic!("chat.ask answers a list: {r}"));
        entries.sort_by_key(|e| e["session"] != json!(b1.session));
        assert_eq!(
            entries,
            vec![
                json!({"session": b1.session, "user": "bob", "result": "yes"}),
                json!({"session": b2.session, "user": "bob", "error": {"code": 7, "message": "busy"}}),
            ]
        );

        // chat.ask with a session that does not answer: its entry is a timeout.
        let (r, _) = request(&mut c1, 6, "chat.ask", json!({"user": "alice", "method": "ui.poll", "timeout_ms": 200})).await;
        let q = a1.recv().await;
        assert_eq!(q["method"], "ui.poll", "{q}");
        assert_eq!(
            r,
            result(
                json!(6),
                json!([{"session": a1.session, "user": "alice", "error": {"code": -32004, "message": r["result"][0]["error"]["message"]}}])
            ),
        );
        assert_eq!(a1.recv().await, notification("rpc.cancel", json!({"id": q["id"]})));

        // chat.ask for a user with no session: an empty list.
        let (r, _) = request(&mut c1, 7, "chat.ask", json!({"user": "nobody", "method": "ui.poll", "timeout_ms": 200})).await;
        assert_eq!(r, result(json!(7), json!([])));
    })
    .await;
}
