//! The Rust client across reconnects: a server restarted on the same port,
//! a server-side disconnect with recovery of missed publications, terminal
//! closes, and the state stream that reports all of it.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use switchboard_client::{
    Client, ConnectionState, Error, ReconnectPolicy, RecoveryGap, RpcError, StateStream, Subscription,
    SubscriptionEvent,
};
use switchboard_server::{Config, Gateway, StreamConfig, Target};
use switchboard_tests::{TestServer, WAIT, within};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

fn config() -> Config {
    let mut config = Config::default();
    config.streams.push(StreamConfig {
        pattern: "news:*".into(),
        history_size: 100,
        history_ttl_ms: 600_000,
    });
    // Sessions close at once on shutdown instead of waiting for their calls.
    config.limits.shutdown_grace_ms = 0;
    config
}

fn fast_reconnect(min_ms: u64) -> ReconnectPolicy {
    ReconnectPolicy::between(Duration::from_millis(min_ms), Duration::from_millis(min_ms * 2))
}

/// A gateway serving on a listener the test bound (so it can come back on the same port).
struct Node {
    gateway: Gateway,
    task: JoinHandle<()>,
}

fn serve(listener: TcpListener) -> Node {
    let gateway = Gateway::builder(config()).build().expect("builds");
    let g = gateway.clone();
    let task = tokio::spawn(async move {
        g.serve(listener, std::future::pending()).await.expect("serves");
    });
    Node { gateway, task }
}

/// Binds `addr` again once the previous gateway let go of it.
async fn bind_again(addr: SocketAddr) -> TcpListener {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            // Polls until the port is free again, within the deadline.
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => panic!("could not bind {addr} again: {e}"),
        }
    }
}

/// Reads states until one matches; returns it.
async fn state_where(states: &mut StateStream, want: impl Fn(&ConnectionState) -> bool) -> ConnectionState {
    loop {
        let state = tokio::time::timeout(WAIT, states.next())
            .await
            .expect("a state change in time")
            .expect("the state stream goes on");
        if want(&state) {
            return state;
        }
    }
}

async fn next_event(sub: &mut Subscription) -> SubscriptionEvent {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("an event in time")
        .expect("the subscription goes on")
}

fn offset_of(event: &SubscriptionEvent) -> u64 {
    match event {
        SubscriptionEvent::Publication(p) => p.offset.expect("recoverable"),
        other => panic!("expected a publication, got {other:?}"),
    }
}

#[tokio::test]
async fn after_a_restart_on_the_same_port_pending_calls_fail_and_everything_comes_back() {
    within(WAIT * 3, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let first = serve(listener);

        let client = Client::builder(format!("ws://{addr}/ws?user=alice"))
            .reconnect(fast_reconnect(50))
            .call_timeout(WAIT * 3)
            .build()
            .expect("builds");
        client.handle("who", |()| async { Ok::<_, RpcError>("alice's worker") });
        let mut states = client.states();
        client.connect().await.expect("connects");
        assert_eq!(state_where(&mut states, |_| true).await, ConnectionState::Connecting);
        assert_eq!(state_where(&mut states, |_| true).await, ConnectionState::Connected);

        let mut news = client.subscribe("news:x").await.expect("subscribes");
        let old_epoch = news.result().epoch.clone().expect("recoverable");
        first
            .gateway
            .hub()
            .publish("news:x", &json!("before"))
            .await
            .expect("publish");
        assert_eq!(offset_of(&next_event(&mut news).await), 1);

        // A call the old server will never answer: it fails as soon as the connection goes.
        let sleeper = client.clone();
        let pending = tokio::spawn(async move { sleeper.call::<_, u64>("demo.sleep", json!({"ms": 30_000})).await });
        let sent = switchboard_tests::eventually(WAIT, || client.stats().calls == 2).await;
        assert!(sent, "the call was sent");
        let old_session = client.welcome().expect("welcome").session;
        first.gateway.shutdown();
        let failed = tokio::time::timeout(WAIT, pending)
            .await
            .expect("fails fast")
            .expect("task");
        assert!(matches!(failed, Err(Error::Disconnected)), "{failed:?}");
        let down = state_where(&mut states, |s| matches!(s, ConnectionState::Disconnected { .. })).await;
        assert_eq!(
            down,
            ConnectionState::Disconnected {
                code: Some(1001),
                reason: "server shutting down".into(),
                will_retry: true
            }
        );
        // Calls without a connection fail at once too.
        assert!(matches!(
            client.call::<_, Value>("echo", [1]).await,
            Err(Error::Disconnected)
        ));

        let second = serve(bind_again(addr).await);
        state_where(&mut states, |s| *s == ConnectionState::Connected).await;
        assert_ne!(client.welcome().expect("welcome").session, old_session);

        // The new server's in-process history is new: a new epoch, so the
        // subscription is renewed but what was missed cannot be recovered.
        match next_event(&mut news).await {
            SubscriptionEvent::Resubscribed(r) => {
                assert!(!r.recovered);
                assert_eq!(r.gap, Some(RecoveryGap::EpochChanged));
                let position = r.position.expect("a position in the new stream");
                assert_ne!(position.epoch, old_epoch);
            }
            other => panic!("expected the resubscription first, got {other:?}"),
        }
        second
            .gateway
            .hub()
            .publish("news:x", &json!("after"))
            .await
            .expect("publish");
        let p = news.next_publication().await.expect("a publication");
        assert_eq!((p.data, p.offset), (json!("after"), Some(1)));
        assert_ne!(p.epoch.as_deref(), Some(old_epoch.as_str()));

        // Handlers stay registered across the reconnect.
        let answer: String = client
            .call("demo.callback", json!({"method": "who", "timeout_ms": 5_000}))
            .await
            .expect("called back");
        assert_eq!(answer, "alice's worker");
        assert_eq!(client.stats().reconnects, 1);
        client.close().await;
        second.gateway.shutdown();
        first.task.abort();
        let _ = tokio::time::timeout(WAIT, second.task).await;
    })
    .await;
}

#[tokio::test]
async fn publications_missed_during_a_disconnect_are_replayed_exactly_once_in_order() {
    within(WAIT * 2, async {
        let server = TestServer::start_with(config(), vec![]).await;
        let hub = server.gateway.hub().clone();
        let client = Client::builder(server.ws_url("carol"))
            .reconnect(fast_reconnect(200))
            .call_timeout(WAIT)
            .connect()
            .await
            .expect("connects");
        let mut states = client.states();
        let mut news = client.subscribe("news:y").await.expect("subscribes");
        let personal = client.personal_topic().expect("the personal topic");
        let mut mine = client.subscribe(personal.clone()).await.expect("subscribes");
        for n in 1..=3 {
            hub.publish("news:y", &json!(n)).await.expect("publish");
        }
        for n in 1..=3 {
            assert_eq!(offset_of(&next_event(&mut news).await), n);
        }

        let session = client.welcome().expect("welcome").session;
        hub.disconnect(Target::Session(session), 4003, "test")
            .await
            .expect("disconnect");
        let down = state_where(&mut states, |s| matches!(s, ConnectionState::Disconnected { .. })).await;
        assert_eq!(
            down,
            ConnectionState::Disconnected {
                code: Some(4003),
                reason: "test".into(),
                will_retry: true
            }
        );
        // Made while the client is away (it waits at least 200 ms to come back).
        for n in 4..=6 {
            hub.publish("news:y", &json!(n)).await.expect("publish");
        }
        hub.publish_to_user("carol", &json!({"note": "while away"}))
            .await
            .expect("publish");
        state_where(&mut states, |s| *s == ConnectionState::Connected).await;
        hub.publish("news:y", &json!(7)).await.expect("publish");

        match next_event(&mut news).await {
            SubscriptionEvent::Resubscribed(r) => {
                assert!(r.recovered, "{r:?}");
                assert_eq!(r.gap, None);
            }
            other => panic!("expected the resubscription first, got {other:?}"),
        }
        let mut offsets = Vec::new();
        while offsets.last() != Some(&7) {
            offsets.push(offset_of(&next_event(&mut news).await));
        }
        assert_eq!(
            offsets,
            [4, 5, 6, 7],
            "each missed publication once, in order, then live ones"
        );
        assert_eq!(news.position().map(|p| p.offset), Some(7));

        // The personal topic was resumed first thing, so the push made while away arrives too.
        match next_event(&mut mine).await {
            SubscriptionEvent::Resubscribed(r) => assert!(r.recovered, "{r:?}"),
            other => panic!("expected the resubscription first, got {other:?}"),
        }
        let p = mine.next_publication().await.expect("the push");
        assert_eq!((p.topic, p.data), (personal, json!({"note": "while away"})));
        client.close().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_terminal_close_stops_the_client_without_retrying() {
    within(WAIT, async {
        let server = TestServer::start_with(config(), vec![]).await;
        let client = Client::builder(server.ws_url("mallory"))
            .reconnect(fast_reconnect(10))
            .connect()
            .await
            .expect("connects");
        let mut states = client.states();
        assert_eq!(states.next().await, Some(ConnectionState::Connected));
        let mut news = client.subscribe("news:z").await.expect("subscribes");
        let session = client.welcome().expect("welcome").session;
        server
            .gateway
            .hub()
            .disconnect(Target::Session(session), 4502, "kicked")
            .await
            .expect("disconnect");
        let mut rest = Vec::new();
        while let Some(state) = tokio::time::timeout(WAIT, states.next())
            .await
            .expect("the stream ends")
        {
            rest.push(state);
        }
        assert_eq!(
            rest,
            [ConnectionState::Disconnected {
                code: Some(4502),
                reason: "kicked".into(),
                will_retry: false
            }],
            "one last state, no reconnect attempt"
        );
        assert!(client.is_closed());
        assert_eq!(tokio::time::timeout(WAIT, news.next()).await.expect("ends"), None);
        let refused = client.call::<_, Value>("echo", [1]).await;
        assert!(
            matches!(refused, Err(Error::Closed { code: Some(4502), .. })),
            "{refused:?}"
        );
        assert!(matches!(client.connect().await, Err(Error::Closed { .. })));
        assert_eq!(client.stats().reconnects, 0);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn without_reconnects_the_first_lost_connection_closes_the_client() {
    within(WAIT, async {
        let server = TestServer::start_with(config(), vec![]).await;
        let client = Client::builder(server.ws_url("dave"))
            .reconnect(ReconnectPolicy::never())
            .connect()
            .await
            .expect("connects");
        let mut states = client.states();
        let session = client.welcome().expect("welcome").session;
        server
            .gateway
            .hub()
            .disconnect(Target::Session(session), 4003, "test")
            .await
            .expect("disconnect");
        let last = state_where(&mut states, |s| matches!(s, ConnectionState::Disconnected { .. })).await;
        assert!(matches!(
            last,
            ConnectionState::Disconnected {
                will_retry: false,
                code: Some(4003),
                ..
            }
        ));
        assert_eq!(tokio::time::timeout(WAIT, states.next()).await.expect("ends"), None);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_first_connect_that_fails_returns_its_error() {
    within(WAIT, async {
        // A port nobody listens on: bind one, note it, let it go.
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("addr");
        let client = Client::builder(format!("ws://{addr}/ws")).build().expect("builds");
        let error = client.connect().await.expect_err("nobody listens");
        assert!(matches!(error, Error::Connect(_)), "{error:?}");
        assert!(client.is_closed());
        assert!(matches!(
            client.state(),
            Some(ConnectionState::Disconnected { will_retry: false, .. })
        ));
        assert!(matches!(
            Client::builder("http://example.invalid/").build(),
            Err(Error::InvalidUrl(_))
        ));
    })
    .await;
}
