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
