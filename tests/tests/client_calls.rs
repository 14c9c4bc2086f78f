//! The Rust client against the real gateway: typed calls, batches,
//! notifications both ways, topic streams, timeouts and cancellation.

use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_client::protocol::codes;
use switchboard_client::{Client, ClientBuilder, Error, HistoryResult, RecoveryGap, StreamPosition};
use switchboard_server::{Config, StreamConfig};
use switchboard_tests::{TestServer, WAIT, within};
use tokio_tungstenite::tungstenite::Message;

fn builder(server: &TestServer, user: &str) -> ClientBuilder {
    Client::builder(server.ws_url(user)).call_timeout(WAIT)
}

async fn connect(server: &TestServer, user: &str) -> Client {
    builder(server, user).connect().await.expect("connects")
}

fn rpc_code(result: Result<Value, Error>) -> i32 {
    match result {
        Err(Error::Rpc(e)) => e.code,
        other => panic!("expected an error answer, got {other:?}"),
    }
}

#[derive(Debug, Deserialize, PartialEq)]
struct Dm {
    from: String,
    text: String,
}

#[tokio::test]
async fn typed_calls_answers_errors_and_the_welcome() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let client = connect(&server, "alice").await;

        let welcome = client.welcome().expect("switchboard sends a welcome");
        assert_eq!(welcome.user, "alice");
        assert_eq!(welcome.protocol, "switchboard.v1");
        assert_eq!(welcome.limits.max_batch, server.gateway.config().limits.max_batch);
        assert_eq!(client.personal_topic().as_deref(), Some("user:alice"));

        let echoed: (u32, String, bool) = client.call("echo", (7, "seven", true)).await.expect("echo");
        assert_eq!(echoed, (7, "seven".to_owned(), true));
        #[derive(Deserialize)]
        struct WhoAmI {
            session: String,
            user: String,
        }
        let me: WhoAmI = client.call("whoami", ()).await.expect("whoami");
        assert_eq!((me.session, me.user), (welcome.session, "alice".to_owned()));

        assert_eq!(
            rpc_code(client.call("no.such.method", ()).await),
            codes::METHOD_NOT_FOUND
        );
        assert_eq!(
            rpc_code(client.call("demo.sleep", json!({"ms": "soon"})).await),
            codes::INVALID_PARAMS
        );
        let wrong_shape = client.call::<_, String>("echo", [1]).await;
        assert!(matches!(wrong_shape, Err(Error::Decode(_))), "{wrong_shape:?}");

        let stats = client.stats();
        assert_eq!(stats.calls, 5);
        assert_eq!(stats.errors, 2, "the decode failure is the caller's, not the call's");
        assert!(stats.messages_out >= 6 && stats.messages_in >= 7, "{stats:?}");
        assert!(stats.bytes_in > 0 && stats.bytes_out > 0);
        client.close().await;
        assert!(matches!(
            client.call::<_, Value>("echo", [1]).await,
            Err(Error::Closed { .. })
        ));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_batch_answers_each_call_and_respects_the_servers_limit() {
    within(WAIT, async {
        let mut config = Config::default();
        config.limits.max_batch = 4;
        let server = TestServer::start_with(config, vec![]).await;
        let client = connect(&server, "alice").await;

        let mut batch = client.batch();
        let first = batch.call::<_, Vec<u8>>("echo", [1, 2]).expect("params");
        let missing = batch.call::<_, Value>("no.such.method", ()).expect("params");
        batch
            .notify("chat.send", json!({"room": "b", "text": "from a batch"}))
            .expect("params");
        let last = batch.call::<_, [String; 1]>("echo", ["last"]).expect("params");
        assert_eq!(batch.len(), 4);
        let mut results = batch.send().await.expect("sent");
        assert_eq!(results.len(), 3, "one result per call, none for the notification");
        assert_eq!(results.take(last).expect("echo"), ["last"]);
        assert_eq!(results.take(first).expect("echo"), [1, 2]);
        assert!(matches!(results.take(missing), Err(Error::Rpc(e)) if e.code == codes::METHOD_NOT_FOUND));

        let mut too_big = client.batch();
        for i in 0..5 {
            too_big.notify("echo", [i]).expect("params");
        }
        assert!(matches!(
            too_big.send().await,
            Err(Error::BatchTooLarge { len: 5, max: 4 })
        ));
        assert!(matches!(client.batch().send().await, Err(Error::EmptyBatch)));
        client.close().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn notify_reaches_the_server_and_topics_stream_publications() {
    within(WAIT, async {
        let mut config = Config::default();
        config.streams.push(StreamConfig {
            pattern: "news:*".into(),
            history_size: 100,
            history_ttl_ms: 600_000,
        });
        let server = TestServer::start_with(config, vec![]).await;
        let hub = server.gateway.hub().clone();
        let client = connect(&server, "alice").await;

        // A plain topic: a client notification makes the server publish on it.
        let mut lobby = client.subscribe("chat:lobby").await.expect("subscribes");
        assert_eq!(lobby.result().offset, None, "chat:* keeps no history here");
        client
            .notify("chat.send", json!({"room": "lobby", "text": "hi"}))
            .await
            .expect("notifies");
        let p = lobby.next_publication().await.expect("a publication");
        assert_eq!(
            (p.topic.as_str(), &p.data),
            ("chat:lobby", &json!({"from": "alice", "text": "hi"}))
        );
        assert_eq!((p.offset, p.epoch), (None, None));

        // A recoverable topic: publications carry their stream position.
        let mut news = client.subscribe("news:rust").await.expect("subscribes");
        let epoch = news.result().epoch.clone().expect("recoverable");
        assert_eq!(news.result().offset, Some(0));
        for n in 1..=3 {
            hub.publish("news:rust", &json!({ "n": n })).await.expect("publish");
        }
        client
            .publish("news:rust", json!({"n": 4}))
            .await
            .expect("client publishes");
        for n in 1..=4u64 {
            let p = news.next_publication().await.expect("a publication");
            assert_eq!((p.offset, p.epoch.as_deref()), (Some(n), Some(epoch.as_str())));
            assert_eq!(p.data, json!({ "n": n }));
        }
        assert_eq!(news.position().map(|p| p.offset), Some(4));

        // Dropping a subscription unsubscribes: a publication made after
        // that (the ping orders it after the unsubscribe) is not delivered,
        // so a new subscriber's first publication is the next one.
        drop(lobby);
        let _: String = client.call("rpc.ping", ()).await.expect("pong");
        hub.publish("chat:lobby", &json!("while away")).await.expect("publish");
        let _: String = client.call("rpc.ping", ()).await.expect("pong");
        let mut lobby = client.subscribe("chat:lobby").await.expect("subscribes");
        hub.publish("chat:lobby", &json!("back")).await.expect("publish");
        assert_eq!(lobby.next_publication().await.expect("a publication").data, "back");
        client.close().await;
        assert_eq!(lobby.next().await, None, "streams end when the client closes");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn history_reads_the_latest_or_a_page_after_a_position() {
    within(WAIT, async {
        let mut config = Config::default();
        config.streams.push(StreamConfig {
            pattern: "news:*".into(),
            history_size: 100,
            history_ttl_ms: 600_000,
        });
        let server = TestServer::start_with(config, vec![]).await;
        let hub = server.gateway.hub().clone();
        let client = connect(&server, "alice").await;
        for n in 1..=5 {
            hub.publish("news:h", &json!({ "n": n })).await.expect("publish");
        }
        let offsets = |r: &HistoryResult| r.publications.iter().map(|p| p.offset).collect::<Vec<_>>();
        let latest = client.history("news:h", None, Some(2)).await.expect("history");
        assert_eq!(offsets(&latest), vec![4, 5]);
        assert_eq!(latest.publications[0].data, json!({"n": 4}));
        assert_eq!((latest.offset, latest.recovered, latest.gap), (5, true, None));
        let since = StreamPosition {
            offset: 2,
            epoch: latest.epoch.clone(),
        };
        let page = client.history("news:h", Some(since), None).await.expect("history");
        assert_eq!(offsets(&page), vec![3, 4, 5]);
        let lost = StreamPosition {
            offset: 2,
            epoch: "another".into(),
        };
        let gap = client.history("news:h", Some(lost), None).await.expect("history");
        assert_eq!((gap.recovered, gap.gap), (false, Some(RecoveryGap::EpochChanged)));
        assert!(gap.publications.is_empty());
        match client.history("chat:plain", None, None).await {
            Err(Error::Rpc(e)) => assert_eq!(e.code, codes::INVALID_PARAMS),
            other => panic!("a topic without history is refused: {other:?}"),
        }
        client.close().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn notifications_that_arrive_before_their_reader_are_kept() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let alice = connect(&server, "alice").await;
        let bob = builder(&server, "bob").buffer(3).connect().await.expect("connects");
        for i in 0..2 {
            let sent: bool = alice
                .call("chat.dm", json!({"user": "bob", "text": format!("early {i}")}))
                .await
                .expect("dm");
            assert!(sent);
        }
        // The pushes were queued on bob's session before this answer.
        let _: String = bob.call("rpc.ping", ()).await.expect("pong");
        let mut dms = bob.on_notification::<Dm>("chat.message");
        for i in 0..2 {
            let dm = dms.next().await.expect("open").expect("a dm");
            assert_eq!(
                dm,
                Dm {
                    from: "alice".into(),
                    text: format!("early {i}")
                }
            );
        }

        // Five more than a buffer of three can hold: the oldest two are dropped, and said so.
        for i in 0..5 {
            let _: bool = alice
                .call("chat.dm", json!({"user": "bob", "text": format!("burst {i}")}))
                .await
                .expect("dm");
        }
        let _: String = bob.call("rpc.ping", ()).await.expect("pong");
        assert!(matches!(dms.next().await, Some(Err(Error::Lagged { missed: 2 }))));
        for i in 2..5 {
            assert_eq!(
                dms.next().await.expect("open").expect("a dm").text,
                format!("burst {i}")
            );
        }
        assert_eq!(bob.stats().dropped, 2);

        // Params of the wrong shape are reported, and the stream goes on.
        let mut numbers = bob.on_notification::<u64>("chat.message");
        let _: bool = alice
            .call("chat.dm", json!({"user": "bob", "text": "x"}))
            .await
            .expect("dm");
        assert!(matches!(numbers.next().await, Some(Err(Error::Decode(_)))));
        assert_eq!(
            dms.next().await.map(|r| r.is_ok()),
            None,
            "the newer reader took the method over"
        );
        alice.close().await;
        bob.close().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_call_times_out_and_a_dropped_call_is_cancelled() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let client = connect(&server, "alice").await;
        let timed_out = client
            .call_with_timeout::<_, u64>("demo.sleep", json!({"ms": 1_500}), Duration::from_millis(100))
            .await;
        assert!(matches!(timed_out, Err(Error::Timeout(d)) if d == Duration::from_millis(100)));
        assert_eq!(client.stats().cancels_sent, 1);

        let call = client.call::<_, u64>("demo.sleep", json!({"ms": 1_500}));
        tokio::select! {
            _ = call => panic!("the call cannot finish first"),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        assert_eq!(client.stats().cancels_sent, 2, "dropping the call cancelled it");
        // The connection is unharmed: the late answers are ignored.
        let n: u64 = client.call("demo.sleep", json!({"ms": 1})).await.expect("sleeps");
        assert_eq!(n, 1);

        // Calls beyond max_in_flight wait for a slot instead of failing.
        let limited = builder(&server, "carol")
            .max_in_flight(1)
            .connect()
            .await
            .expect("connects");
        let calls = (0..4u64).map(|i| limited.call::<_, u64>("demo.sleep", json!({ "ms": i })));
        let slept: Vec<u64> = futures_util::future::try_join_all(calls).await.expect("all succeed");
        assert_eq!(slept, [0, 1, 2, 3]);
        client.close().await;
        limited.close().await;
        server.stop().await;
    })
    .await;
}

/// A bare WebSocket server that never answers: it shows what the client
/// puts on the wire for a call it gives up on.
#[tokio::test]
async fn a_cancelled_call_sends_rpc_cancel_with_its_id() {
    within(WAIT, async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}/", listener.local_addr().expect("addr"));
        let (frames_tx, mut frames) = tokio::sync::mpsc::unbounded_channel::<Value>();
        let peer = tokio::spawn(async move {
            // The client's first handshake offers `switchboard.v1`, which this
            // server ignores; the client then connects again without it.
            loop {
                let (tcp, _) = listener.accept().await.expect("accept");
                let frames_tx = frames_tx.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    while let Some(Ok(message)) = ws.next().await {
                        if let Message::Text(text) = message {
                            let _ = frames_tx.send(serde_json::from_str(&text).expect("JSON"));
                        }
                    }
                });
            }
        });
        let client = Client::builder(url)
            .connect()
            .await
            .expect("connects without a subprotocol");
        assert!(
            client.welcome().is_none(),
            "no welcome from a plain server, and none awaited"
        );
        let gave_up = client
            .call_with_timeout::<_, Value>("slow", [1], Duration::from_millis(50))
            .await;
        assert!(matches!(gave_up, Err(Error::Timeout(_))));
        let call = frames.recv().await.expect("the call");
        assert_eq!(call["method"], "slow");
        assert_eq!(
            frames.recv().await.expect("the cancel"),
            json!({"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": call["id"]}})
        );
        client.notify("note", json!({"a": 1})).await.expect("notifies");
        assert_eq!(
            frames.recv().await.expect("the notification"),
            json!({"jsonrpc": "2.0", "method": "note", "params": {"a": 1}})
        );
        client.close().await;
        peer.abort();
    })
    .await;
}

#[tokio::test]
async fn pushes_to_the_user_right_after_connecting_are_delivered() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let hub = server.gateway.hub().clone();
        for round in 0..20 {
            let client = connect(&server, "erin").await;
            // Published while the client's first messages may still be on their way.
            hub.publish_to_user("erin", &json!({ "round": round }))
                .await
                .expect("publish");
            let mut mine = client
                .subscribe(client.personal_topic().expect("personal topic"))
                .await
                .expect("subscribes");
            let p = mine.next_publication().await.expect("the push");
            assert_eq!(p.data, json!({ "round": round }));
            client.close().await;
        }
        server.stop().await;
    })
    .await;
}
