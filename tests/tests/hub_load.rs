//! The Hub under load: a client that never reads is cut as a slow consumer
//! while the others get everything, and a push to 1,000 sessions is
//! serialised once.

mod hub_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;
use switchboard_protocol::codes;
use switchboard_server::{Config, Target};
use switchboard_tests::{TestServer, WAIT, WsClient, eventually, within};

use hub_support::{assert_silent, presence_becomes, read_until_closed, subscribe};

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
                    assert_eq!(
                        data["seq"].as_u64(),
                        Some(next),
                        "reader {i} receives every message in order"
                    );
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
                hub.publish(TOPIC, &json!({"seq": published, "pad": pad}))
                    .await
                    .expect("publish");
                published += 1;
            }
            let delivered = hub.stats().deliveries - before;
            if let Some(mut c) = slow.take_if(|_| delivered < ((READERS + 1) * BATCH) as u64) {
                // The non-reader's queue overflowed: read it now, to see how it ends.
                cut_after = Some(published);
                slow_reader = Some(tokio::spawn(async move { read_until_closed(&mut c).await }));
            }
            let caught_up = eventually(WAIT, || progress.iter().all(|p| p.load(Ordering::Acquire) >= published)).await;
            assert!(caught_up, "readers fell behind: {:?} of {published}", progress);
            if published >= AT_LEAST && slow.is_none() {
                break;
            }
            assert!(
                published < AT_MOST,
                "the non-reading client was not closed after {published} messages"
            );
        }
        hub.publish(TOPIC, &json!({"seq": published, "last": true}))
            .await
            .expect("publish");
        let total = published as u64 + 1;

        for reader in readers {
            let (mut c, received) = reader.await.expect("reader task");
            assert_eq!(received, total, "a reader receives every message");
            assert_silent(&mut c, "a reader after the last message").await;
        }

        let (frames, closed) = slow_reader
            .expect("the non-reader was cut")
            .await
            .expect("slow reader task");
        let cut_after = cut_after.expect("cut") as u64;
        let read = frames.len();
        eprintln!("slow consumer: cut within {cut_after} of {total} messages, read {read}");
        for (n, f) in frames.iter().enumerate() {
            assert_eq!(f["method"], "rpc.message", "frame {n} of the slow client: {f}");
            assert_eq!(
                f["params"]["data"]["seq"].as_u64(),
                Some(n as u64),
                "the slow client's frames before the close are an unbroken prefix"
            );
        }
        assert!(
            (frames.len() as u64) < cut_after,
            "the slow client did not get everything"
        );
        assert_eq!(
            closed.code,
            Some(codes::close::SLOW_CONSUMER),
            "the non-reader is closed as a slow consumer (after {} frames): {closed:?}",
            frames.len()
        );
        assert_eq!(closed.code, Some(4000));
        assert_eq!(closed.reason, codes::close::reason(codes::close::SLOW_CONSUMER));
        presence_becomes(&hub, Some("slow"), Vec::new()).await;
        assert!(
            !hub.presence(None)
                .await
                .expect("presence")
                .iter()
                .any(|e| e.session == slow_session)
        );
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

        hub.subscribe(Target::All, vec!["big".into()])
            .await
            .expect("subscribe all");
        let before = hub.stats();
        hub.publish("big", &json!({"hello": "everyone"}))
            .await
            .expect("publish");
        let after = hub.stats();
        assert_eq!(
            after.frames_serialised - before.frames_serialised,
            1,
            "one push, one serialisation"
        );
        assert_eq!(
            after.deliveries - before.deliveries,
            SESSIONS as u64,
            "one delivery per session"
        );

        let expected = concat!(
            r#"{"jsonrpc":"2.0","method":"rpc.message","#,
            r#""params":{"topic":"big","data":{"hello":"everyone"}}}"#
        );
        let frames = join_all(clients.iter_mut().map(|c| c.recv_text())).await;
        for (n, f) in frames.iter().enumerate() {
            assert_eq!(f, expected, "client {n}");
        }
        let stats = hub.stats();
        assert_eq!(
            stats.frames_serialised, after.frames_serialised,
            "nothing else was serialised"
        );
    })
    .await;
}
