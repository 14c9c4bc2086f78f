//! The Hub at the wire: pushes to a session, a user, users, a topic and
//! everyone; multicast calls; presence; disconnects. Every scenario runs
//! against the in-process broker and against a broker that round-trips every
//! envelope through JSON, which proves the hub relies on no shared memory.
//!
//! More Hub tests: `hub_load.rs` (slow consumers, serialise once) and
//! `hub_builtins.rs` (subscription rules, client publish, the demo chat).

mod hub_support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_protocol::codes;
use switchboard_server::Target;
use switchboard_tests::{TestServer, result};
use tokio::time::Instant;

use hub_support::{
    assert_silent, entry, message, notification, presence_becomes, read_until_closed, request, sorted, subscribe,
};

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
    for (c, who) in [
        (&mut a2, "a2 (once)"),
        (&mut a1, "a1"),
        (&mut b1, "b1"),
        (&mut c1, "c1"),
    ] {
        assert_silent(c, &format!("push to session a2 reached {who}")).await;
    }

    // One user: every session of alice, nobody else.
    hub.notify(Target::User("alice".into()), "app.user", &json!({"n": 2}))
        .await
        .expect("notify user");
    // The params are kept exactly as the application gave them.
    assert_eq!(
        a1.recv_text().await,
        r#"{"jsonrpc":"2.0","method":"app.user","params":{"n":2}}"#
    );
    assert_eq!(
        a2.recv_text().await,
        r#"{"jsonrpc":"2.0","method":"app.user","params":{"n":2}}"#
    );
    for (c, who) in [
        (&mut a1, "a1 (once)"),
        (&mut a2, "a2 (once)"),
        (&mut b1, "b1"),
        (&mut c1, "c1"),
    ] {
        assert_silent(c, &format!("push to user alice reached {who}")).await;
    }

    // Several users, one named twice: each session receives the frame once.
    hub.notify(
        Target::Users(vec!["alice".into(), "bob".into(), "alice".into()]),
        "app.users",
        &[1, 2, 3],
    )
    .await
    .expect("notify users");
    for c in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(c.recv().await, notification("app.users", json!([1, 2, 3])));
    }
    for (c, who) in [
        (&mut a1, "a1 (once)"),
        (&mut a2, "a2 (once)"),
        (&mut b1, "b1 (once)"),
        (&mut c1, "c1"),
    ] {
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
    hub.publish("news", &json!({"headline": "hello"}))
        .await
        .expect("publish");
    for c in [&mut a2, &mut c1] {
        assert_eq!(c.recv().await, message("news", json!({"headline": "hello"})));
    }
    for (c, who) in [
        (&mut a1, "a1"),
        (&mut a2, "a2 (once)"),
        (&mut b1, "b1"),
        (&mut c1, "c1 (once)"),
    ] {
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
        hub.call(
            Target::User("alice".into()),
            "ui.confirm",
            &json!({"question": "sure?"}),
            timeout,
        )
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

    s1.send_json(&json!({"jsonrpc": "2.0", "id": id, "result": {"ok": true}}))
        .await;
    let declined = json!({"code": 4242, "message": "declined", "data": {"why": "no"}});
    s2.send_json(&json!({"jsonrpc": "2.0", "id": id, "error": declined}))
        .await;

    let entries = call.await.expect("call task").expect("call");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout,
        "the call cannot end before its timeout while s3 owes an answer ({elapsed:?})"
    );
    assert!(
        elapsed < timeout + Duration::from_secs(1),
        "the call returns within its timeout (took {elapsed:?})"
    );

    assert_eq!(entries.len(), 3, "one entry per session: {entries:?}");
    let by_session: HashMap<&str, _> = entries.iter().map(|e| (e.session.as_str(), e)).collect();
    assert_eq!(by_session.len(), 3, "entries name three distinct sessions: {entries:?}");
    for e in &entries {
        assert_eq!(e.user, "alice");
    }
    let e1 = by_session[s1.session.as_str()];
    let r1 = e1.outcome.as_ref().expect("s1 answered");
    assert_eq!(
        serde_json::from_str::<Value>(r1.get()).expect("result is JSON"),
        json!({"ok": true})
    );
    assert_eq!(
        serde_json::to_value(e1).expect("entry serialises"),
        json!({"session": s1.session, "user": "alice", "node": server.gateway.hub().node(), "result": {"ok": true}})
    );
    let e2 = by_session[s2.session.as_str()]
        .outcome
        .as_ref()
        .expect_err("s2 answered an error");
    assert_eq!((e2.code, e2.message.as_str()), (4242, "declined"));
    assert_eq!(e2.data, Some(json!({"why": "no"})));
    let e3 = by_session[s3.session.as_str()]
        .outcome
        .as_ref()
        .expect_err("s3 never answered");
    assert_eq!(e3.code, codes::TIMEOUT, "s3's entry is a timeout: {e3:?}");
    assert_eq!(e3.code, -32004);

    // The session that did not answer is told the caller gave up.
    assert_eq!(s3.recv().await, notification("rpc.cancel", json!({"id": id})));
    for (c, who) in [
        (&mut s1, "s1"),
        (&mut s2, "s2"),
        (&mut s3, "s3 (once)"),
        (&mut bob, "bob"),
    ] {
        assert_silent(c, &format!("after the multicast call, {who}")).await;
    }

    // A late answer from s3 is harmless and its session lives on.
    s3.send_json(&json!({"jsonrpc": "2.0", "id": id, "result": "too late"}))
        .await;
    assert_silent(&mut s3, "after a late answer").await;
}

/// A multicast call does not wait for sessions that are gone, and a call
/// that reaches nobody returns at once with no entries.
async fn multicast_call_edges(server: &TestServer) {
    let hub = server.gateway.hub().clone();
    let timeout = Duration::from_secs(5);

    let started = Instant::now();
    let entries = hub
        .call(Target::User("nobody".into()), "ui.confirm", &json!([]), timeout)
        .await
        .expect("call");
    assert!(entries.is_empty(), "nobody to call: {entries:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a call that reaches nobody returns at once"
    );

    let mut s1 = server.connect("alice").await;
    let mut s2 = server.connect("alice").await;
    let started = Instant::now();
    let call = {
        let hub = hub.clone();
        tokio::spawn(async move {
            hub.call(Target::User("alice".into()), "ui.confirm", &json!([1]), timeout)
                .await
        })
    };
    let r1 = s1.recv().await;
    let r2 = s2.recv().await;
    assert_eq!(r1, r2);
    s1.send_json(&json!({"jsonrpc": "2.0", "id": r1["id"], "result": 1}))
        .await;
    // s2 goes away without answering.
    s2.ws.close(None).await.expect("close");
    let entries = call.await.expect("call task").expect("call");
    let elapsed = started.elapsed();
    assert!(
        elapsed < timeout - Duration::from_secs(2),
        "a session that is gone is not waited for (took {elapsed:?})"
    );
    assert_eq!(entries.len(), 2, "{entries:?}");
    let by_session: HashMap<&str, _> = entries.iter().map(|e| (e.session.as_str(), e)).collect();
    let e1 = by_session[s1.session.as_str()].outcome.as_ref().expect("s1 answered");
    assert_eq!(e1.get(), "1");
    let e2 = by_session[s2.session.as_str()].outcome.as_ref().expect_err("s2 left");
    assert_eq!(
        e2.code,
        codes::SESSION_GONE,
        "s2's entry says its session is gone: {e2:?}"
    );
    assert_silent(&mut s1, "s1 after answering").await;
}

/// Presence follows connects and disconnects.
async fn presence(server: &TestServer) {
    let hub = server.gateway.hub();
    assert_eq!(hub.presence(None).await.expect("presence"), Vec::new());

    let mut a1 = server.connect("alice").await;
    // A session is in presence by the time its welcome arrives.
    assert_eq!(
        hub.presence(Some("alice")).await.expect("presence"),
        vec![entry(hub, &a1, "alice")]
    );

    let a2 = server.connect("alice").await;
    let b1 = server.connect("bob").await;
    assert_eq!(
        sorted(hub.presence(Some("alice")).await.expect("presence")),
        sorted(vec![entry(hub, &a1, "alice"), entry(hub, &a2, "alice")])
    );
    assert_eq!(
        hub.presence(Some("bob")).await.expect("presence"),
        vec![entry(hub, &b1, "bob")]
    );
    assert_eq!(hub.presence(Some("nobody")).await.expect("presence"), Vec::new());
    assert_eq!(
        sorted(hub.presence(None).await.expect("presence")),
        sorted(vec![
            entry(hub, &a1, "alice"),
            entry(hub, &a2, "alice"),
            entry(hub, &b1, "bob")
        ])
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
        let (before, closed) = read_until_closed(c).await;
        assert_eq!(
            before,
            vec![notification(
                "rpc.disconnect",
                json!({"code": 4502, "reason": "bye", "reconnect": false})
            )],
            "session {} is told why before the close",
            c.session
        );
        assert_eq!(
            closed.code,
            Some(4502),
            "session {} closes with the given code",
            c.session
        );
        assert_eq!(closed.reason, "bye");
    }

    // Bob's session stays open.
    assert_eq!(b1.call(1, "rpc.ping", json!([])).await, result(json!(1), json!("pong")));
    assert_silent(&mut b1, "bob after alice was disconnected").await;

    // And alice is gone from presence.
    presence_becomes(hub, Some("alice"), Vec::new()).await;
    presence_becomes(hub, None, vec![entry(hub, &b1, "bob")]).await;

    // A reconnectable code is announced as such.
    hub.disconnect(
        Target::Session(b1.session.clone()),
        codes::close::RECONNECT,
        "move along",
    )
    .await
    .expect("disconnect");
    let (before, closed) = read_until_closed(&mut b1).await;
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
                    switchboard_tests::within(super::hub_support::LIMIT, async {
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
                    switchboard_tests::within(super::hub_support::LIMIT, async {
                        let server = super::hub_support::json_broker_server().await;
                        super::$scenario(&server).await;
                    })
                    .await;
                }
            )*
        }
    };
}

on_both_brokers!(
    push_by_target,
    topic_publish,
    multicast_call,
    multicast_call_edges,
    presence,
    disconnect_user
);
