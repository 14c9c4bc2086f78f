//! History and missed-message recovery, at the wire.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_server::{Config, StreamConfig};
use switchboard_tests::{TestServer, WAIT, WsClient, within};

fn config(history_size: usize) -> Config {
    let mut config = Config::default();
    config.streams.push(StreamConfig {
        pattern: "chat:*".into(),
        history_size,
        history_ttl_ms: 600_000,
    });
    config
}

fn subscribe_frame(id: u64, topic: &str, since: Option<(u64, &str)>) -> Value {
    let mut t = json!({ "topic": topic });
    if let Some((offset, epoch)) = since {
        t["since"] = json!({ "offset": offset, "epoch": epoch });
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "rpc.subscribe", "params": {"topics": [t]}})
}

/// Sends `rpc.subscribe` and returns the topic's result; publications that
/// arrive before the answer are kept in `early`.
async fn subscribe(c: &mut WsClient, topic: &str, since: Option<(u64, &str)>, early: &mut Vec<Value>) -> Value {
    c.send_json(&subscribe_frame(77, topic, since)).await;
    loop {
        let v = c.recv().await;
        if v["id"] == 77 {
            assert!(v.get("result").is_some(), "subscribe failed: {v}");
            return v["result"]["topics"][0].clone();
        }
        early.push(v);
    }
}

/// Reads publications until one with offset `last` arrives; returns their offsets.
async fn offsets_until(c: &mut WsClient, topic: &str, mut seen: Vec<Value>, last: u64) -> Vec<u64> {
    let mut offsets = Vec::new();
    loop {
        let v = if seen.is_empty() {
            c.recv().await
        } else {
            seen.remove(0)
        };
        if v["method"] != "rpc.message" || v["params"]["topic"] != topic {
            continue;
        }
        let offset = v["params"]["offset"]
            .as_u64()
            .expect("recoverable publications carry an offset");
        offsets.push(offset);
        if offset == last {
            return offsets;
        }
    }
}

#[tokio::test]
async fn reconnect_with_since_gets_exactly_the_missed_messages_then_live_ones() {
    within(WAIT * 2, async {
        let server = TestServer::start_with(config(100), vec![]).await;
        let hub = server.gateway.hub().clone();
        let mut a = server.connect("alice").await;
        let first = subscribe(&mut a, "chat:r", None, &mut Vec::new()).await;
        assert_eq!(first["recovered"], true);
        assert_eq!(first["offset"], 0);
        let epoch = first["epoch"].as_str().expect("epoch").to_owned();
        for i in 1..=3 {
            let pos = hub
                .publish("chat:r", &json!({ "n": i }))
                .await
                .expect("publish")
                .expect("recoverable");
            assert_eq!(pos.offset, i);
        }
        assert_eq!(offsets_until(&mut a, "chat:r", vec![], 3).await, vec![1, 2, 3]);
        drop(a);
        for i in 4..=8 {
            hub.publish("chat:r", &json!({ "n": i })).await.expect("publish");
        }
        let mut b = server.connect("alice").await;
        let mut early = Vec::new();
        let result = subscribe(&mut b, "chat:r", Some((3, &epoch)), &mut early).await;
        assert_eq!(
            result,
            json!({"topic": "chat:r", "recovered": true, "offset": 8, "epoch": epoch})
        );
        hub.publish("chat:r", &json!({ "n": 9 })).await.expect("publish");
        assert_eq!(offsets_until(&mut b, "chat:r", early, 9).await, vec![4, 5, 6, 7, 8, 9]);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn publications_racing_the_resubscribe_arrive_once_and_in_order() {
    within(WAIT * 3, async {
        let server = TestServer::start_with(config(10_000), vec![]).await;
        let hub = server.gateway.hub().clone();
        let mut a = server.connect("alice").await;
        let first = subscribe(&mut a, "chat:race", None, &mut Vec::new()).await;
        let epoch = first["epoch"].as_str().expect("epoch").to_owned();
        for i in 0..50 {
            hub.publish("chat:race", &json!(i)).await.expect("publish");
        }
        drop(a);
        let publisher = {
            let hub = hub.clone();
            tokio::spawn(async move {
                for i in 50..1_000 {
                    hub.publish("chat:race", &json!(i)).await.expect("publish");
                    if i % 10 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        let mut b = server.connect("alice").await;
        let mut early = Vec::new();
        let result = subscribe(&mut b, "chat:race", Some((20, &epoch)), &mut early).await;
        assert_eq!(result["recovered"], true, "{result}");
        publisher.await.expect("publisher");
        let offsets = offsets_until(&mut b, "chat:race", early, 1_000).await;
        assert_eq!(offsets, (21..=1_000).collect::<Vec<u64>>());
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn past_the_window_is_not_recovered() {
    within(WAIT, async {
        let server = TestServer::start_with(config(5), vec![]).await;
        let hub = server.gateway.hub().clone();
        let mut a = server.connect("alice").await;
        let epoch = subscribe(&mut a, "chat:w", None, &mut Vec::new()).await["epoch"]
            .as_str()
            .expect("epoch")
            .to_owned();
        for i in 0..12 {
            hub.publish("chat:w", &json!(i)).await.expect("publish");
        }
        let mut b = server.connect("bob").await;
        let result = subscribe(&mut b, "chat:w", Some((2, &epoch)), &mut Vec::new()).await;
        assert_eq!(result["recovered"], false);
        assert_eq!(result["gap"], "window_exceeded");
        assert_eq!(result["offset"], 12);
        // Live publications still flow after an unrecovered subscribe.
        hub.publish("chat:w", &json!("live")).await.expect("publish");
        assert_eq!(offsets_until(&mut b, "chat:w", vec![], 13).await, vec![13]);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_replay_larger_than_allowed_is_not_recovered() {
    within(WAIT, async {
        let mut cfg = config(100);
        cfg.limits.max_replay = 3;
        let server = TestServer::start_with(cfg, vec![]).await;
        let hub = server.gateway.hub().clone();
        let mut a = server.connect("alice").await;
        let epoch = subscribe(&mut a, "chat:big", None, &mut Vec::new()).await["epoch"]
            .as_str()
            .expect("epoch")
            .to_owned();
        for i in 0..5 {
            hub.publish("chat:big", &json!(i)).await.expect("publish");
        }
        let mut b = server.connect("alice").await;
        let result = subscribe(&mut b, "chat:big", Some((0, &epoch)), &mut Vec::new()).await;
        assert_eq!(result["gap"], "replay_too_large");
        let result = subscribe(&mut b, "chat:other", Some((0, &epoch)), &mut Vec::new()).await;
        assert_eq!(
            result["gap"], "epoch_changed",
            "another stream's epoch does not fit: {result}"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_changed_epoch_is_not_recovered() {
    within(WAIT, async {
        let first = TestServer::start_with(config(100), vec![]).await;
        let mut a = first.connect("alice").await;
        let old = subscribe(&mut a, "chat:e", None, &mut Vec::new()).await["epoch"]
            .as_str()
            .expect("epoch")
            .to_owned();
        first.gateway.hub().publish("chat:e", &json!(1)).await.expect("publish");
        drop(a);
        first.stop().await;
        // A restarted gateway has lost its in-process history: a new epoch.
        let second = TestServer::start_with(config(100), vec![]).await;
        second
            .gateway
            .hub()
            .publish("chat:e", &json!(1))
            .await
            .expect("publish");
        let mut b = second.connect("alice").await;
        let result = subscribe(&mut b, "chat:e", Some((1, &old)), &mut Vec::new()).await;
        assert_eq!(result["recovered"], false);
        assert_eq!(result["gap"], "epoch_changed");
        assert_ne!(result["epoch"], json!(old));
        second.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_users_recoverable_pushes_are_recovered_through_the_personal_topic() {
    within(WAIT * 2, async {
        let server = TestServer::start_with(Config::default(), vec![]).await;
        let hub = server.gateway.hub().clone();
        let mut a = server.connect("carol").await;
        // Any first message other than a subscribe releases the personal topic at once.
        assert_eq!(a.call(1, "rpc.ping", json!([])).await["result"], "pong");
        let pos = hub
            .publish_to_user("carol", &json!({"note": 1}))
            .await
            .expect("publish")
            .expect("recoverable");
        let got = a.recv().await;
        assert_eq!(got["method"], "rpc.message");
        assert_eq!(got["params"]["topic"], "user:carol");
        assert_eq!(got["params"]["data"], json!({"note": 1}));
        assert_eq!(got["params"]["offset"], 1);
        assert_eq!(got["params"]["epoch"], json!(pos.epoch));
        drop(a);
        for n in 2..=4 {
            hub.publish_to_user("carol", &json!({ "note": n }))
                .await
                .expect("publish");
        }
        let mut b = server.connect("carol").await;
        // Pushed after connecting but before the resume: held back, delivered after the replay.
        hub.publish_to_user("carol", &json!({"note": 5}))
            .await
            .expect("publish");
        let mut early = Vec::new();
        let result = subscribe(&mut b, "user:carol", Some((1, &pos.epoch)), &mut early).await;
        assert_eq!(result["recovered"], true, "{result}");
        assert_eq!(offsets_until(&mut b, "user:carol", early, 5).await, vec![2, 3, 4, 5]);
        // Another user's sessions never see carol's pushes.
        let mut other = server.connect("dave").await;
        hub.publish_to_user("carol", &json!({"note": 6}))
            .await
            .expect("publish");
        assert_eq!(offsets_until(&mut b, "user:carol", vec![], 6).await, vec![6]);
        assert!(other.try_recv(Duration::from_millis(100)).await.is_none());
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn held_personal_pushes_are_delivered_to_a_first_subscribe_without_a_position() {
    within(WAIT, async {
        let server = TestServer::start_with(Config::default(), vec![]).await;
        let mut c = server.connect("zed").await;
        server
            .gateway
            .hub()
            .publish_to_user("zed", &json!("held"))
            .await
            .expect("publish");
        let mut early = Vec::new();
        let result = subscribe(&mut c, "user:zed", None, &mut early).await;
        assert_eq!(result["offset"], 1);
        assert_eq!(offsets_until(&mut c, "user:zed", early, 1).await, vec![1]);
        server.stop().await;
    })
    .await;
}

/// `rpc.history` on `c`; returns the answer (result or error).
async fn history(c: &mut WsClient, id: u64, params: Value) -> Value {
    c.call(id, "rpc.history", params).await
}

/// The offsets of a history result's publications.
fn offsets(result: &Value) -> Vec<u64> {
    result["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| p["offset"].as_u64().expect("offset"))
        .collect()
}

#[tokio::test]
async fn history_pages_after_a_position_and_answers_a_lost_one_like_subscribe() {
    within(WAIT, async {
        let server = TestServer::start_with(config(5), vec![]).await;
        let hub = server.gateway.hub().clone();
        let mut c = server.connect("alice").await;
        let empty = history(&mut c, 1, json!({"topic": "chat:h"})).await;
        let epoch = empty["result"]["epoch"].as_str().expect("epoch").to_owned();
        assert_eq!(
            empty["result"],
            json!({"publications": [], "offset": 0, "epoch": epoch, "recovered": true})
        );
        for i in 1..=8 {
            hub.publish("chat:h", &json!({ "n": i })).await.expect("publish");
        }
        // Without a position: the most recent, oldest first, with their data.
        let r = history(&mut c, 2, json!({"topic": "chat:h", "limit": 2})).await;
        assert_eq!(
            r["result"],
            json!({"publications": [{"offset": 7, "data": {"n": 7}}, {"offset": 8, "data": {"n": 8}}],
                   "offset": 8, "epoch": epoch, "recovered": true})
        );
        // Only five are kept: without a limit, those five.
        assert_eq!(
            offsets(&history(&mut c, 3, json!({"topic": "chat:h"})).await["result"]),
            vec![4, 5, 6, 7, 8]
        );
        // After a position, a page at a time.
        let since = |offset: u64| json!({"offset": offset, "epoch": epoch});
        let r = history(&mut c, 4, json!({"topic": "chat:h", "since": since(3), "limit": 2})).await;
        assert_eq!(offsets(&r["result"]), vec![4, 5]);
        let r = history(&mut c, 5, json!({"topic": "chat:h", "since": since(5)})).await;
        assert_eq!(offsets(&r["result"]), vec![6, 7, 8]);
        let r = history(&mut c, 6, json!({"topic": "chat:h", "since": since(8)})).await;
        assert_eq!(r["result"]["publications"], json!([]));
        assert_eq!(r["result"]["recovered"], true);
        // Outside the kept window, or from another stream: no publications, and why.
        for (id, position, gap) in [
            (7, since(2), "window_exceeded"),
            (8, since(9), "epoch_changed"),
            (9, json!({"offset": 4, "epoch": "another"}), "epoch_changed"),
        ] {
            let r = history(&mut c, id, json!({"topic": "chat:h", "since": position})).await;
            assert_eq!(
                r["result"],
                json!({"publications": [], "offset": 8, "epoch": epoch, "recovered": false, "gap": gap})
            );
        }
        // The same position answers the same gap in rpc.subscribe.
        let sub = subscribe(&mut c, "chat:h", Some((2, &epoch)), &mut Vec::new()).await;
        assert_eq!(sub["gap"], "window_exceeded");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn history_refuses_what_it_cannot_answer_with_the_reason() {
    within(WAIT, async {
        let mut cfg = config(100);
        cfg.limits.max_replay = 10;
        let server = TestServer::start_with(cfg, vec![]).await;
        let mut c = server.connect("alice").await;
        let refused = |r: &Value, code: i64| {
            assert_eq!(r["error"]["code"], code, "{r}");
            assert!(r["error"]["data"]["reason"].is_string(), "{r}");
        };
        // Not recoverable.
        let r = history(&mut c, 1, json!({"topic": "news"})).await;
        refused(&r, -32602);
        assert_eq!(r["error"]["data"]["topic"], "news");
        // Over the maximum, which is also the default when lower than 100.
        let r = history(&mut c, 2, json!({"topic": "chat:x", "limit": 11})).await;
        refused(&r, -32602);
        assert_eq!(r["error"]["data"]["limit"], 10);
        assert_eq!(
            history(&mut c, 3, json!({"topic": "chat:x", "limit": 10})).await["result"]["recovered"],
            true
        );
        // Malformed: a bad name, a bad limit, a field it does not know.
        for (id, params) in [
            (4, json!({"topic": ""})),
            (5, json!({"topic": "chat:x", "limit": -1})),
            (6, json!({"topic": "chat:x", "from": 3})),
            (7, json!([])),
        ] {
            refused(&history(&mut c, id, params).await, -32602);
        }
        // Personal topics: one's own (recoverable by default), never another's.
        assert_eq!(
            history(&mut c, 8, json!({"topic": "user:alice"})).await["result"]["recovered"],
            true
        );
        refused(&history(&mut c, 9, json!({"topic": "user:bob"})).await, -32001);
        server.stop().await;
    })
    .await;
}
