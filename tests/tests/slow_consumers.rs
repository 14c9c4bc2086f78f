//! Slow consumers at scale, against the real binary: 1,000 sessions
//! subscribed to one stream, one of which never reads. It is closed with
//! 4000 "slow consumer" while every other session receives every message in
//! order, and the server's resident memory stays bounded (the numbers are
//! printed; only a generous bound is asserted — latency is the load tool's
//! business, not a test's).
//!
//! Runs under [`within`]; nothing sleeps to wait for a condition.

mod hostile_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::join_all;
use serde_json::{Value, json};
use switchboard_protocol::codes::close;
use switchboard_tests::{WAIT, WsClient, eventually, within};
use tokio_tungstenite::tungstenite::Message;

use hostile_support::{Binary, limits};

/// Sessions in all: readers, plus the one that never reads.
const SESSIONS: usize = 1_000;

/// The outbound queue bound of the node (small, so the slow one is cut soon).
const QUEUE: usize = 64 * 1024;

/// Messages published in one go; well under half the queue, so a reader that
/// keeps up is never near the bound.
const BATCH: usize = 32;

/// Messages published at least, whenever the slow one is cut.
const AT_LEAST: u64 = 640;

const TOPIC: &str = "stream";

/// How long a reader waits for its next frame, and the publisher for every
/// reader to catch up with a round: a hang guard, not a budget. A round (32
/// messages to 999 readers) takes about 2 s in a debug build on two cores,
/// and a reader that is done with one waits for the slowest before the next
/// begins, so the usual wait for one frame (`WAIT`) would be a budget for
/// most of a round.
const ROUND: Duration = Duration::from_secs(120);

/// The whole test: about 50 s in a debug build on two cores (27 rounds of
/// about 2 s); a hang guard with room for a machine many times slower that
/// runs other tests alongside. A hang is caught sooner, by [`ROUND`].
const LIMIT: Duration = Duration::from_secs(1_200);

/// A second topic only the slow session subscribes to. The kernel lets a
/// socket whose reader is idle buffer about 4 MiB on loopback (send buffer
/// autotuning), which the ~600-byte stream would take minutes to fill with a
/// thousand readers and a debug build; 128 KiB of private pushes per round
/// fill it in seconds. The cut is the same: the session's queue overflows.
const PRIVATE: &str = "slow-feed";

async fn subscribe(c: &mut WsClient, topic: &str) {
    let r = c.call(1, "rpc.subscribe", json!({"topics": [{"topic": topic}]})).await;
    assert_eq!(r["result"]["topics"][0]["topic"], topic, "{r}");
}

/// The next text frame as JSON (pings and pongs skipped), waiting at most [`ROUND`].
async fn next_frame(c: &mut WsClient) -> Value {
    loop {
        let message = tokio::time::timeout(ROUND, c.ws.next())
            .await
            .expect("a frame in time")
            .expect("connection open")
            .expect("frame");
        match message {
            Message::Text(t) => {
                return serde_json::from_str(&t).unwrap_or_else(|e| panic!("frame is not JSON ({e}): {t}"));
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_never_reading_session_among_a_thousand_is_cut_and_the_others_get_everything() {
    within(LIMIT, async {
        let node = Binary::start(
            "slow-consumers",
            // Pings are left out of it (an hour apart): a client that never
            // reads never answers one either, and on a slow machine the
            // default pong timeout could cut it before its queue overflows.
            &limits(&format!(
                "max_queue_bytes = {QUEUE}\nrate_per_second = 1000000\nrate_burst = 1000000\nping_interval_ms = 3600000"
            )),
        );
        let rss_idle = node.rss_kib();

        // 999 readers, subscribed, reading in their own tasks.
        let mut readers = Vec::with_capacity(SESSIONS - 1);
        for chunk in 0..(SESSIONS - 1).div_ceil(100) {
            let batch = join_all((chunk * 100..((chunk + 1) * 100).min(SESSIONS - 1)).map(|i| {
                let node = &node;
                async move {
                    let mut c = node.connect(&format!("reader{i}")).await;
                    subscribe(&mut c, TOPIC).await;
                    c
                }
            }))
            .await;
            readers.extend(batch);
        }
        let progress: Arc<Vec<AtomicU64>> = Arc::new((0..readers.len()).map(|_| AtomicU64::new(0)).collect());
        let tasks: Vec<_> = readers
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                let progress = progress.clone();
                tokio::spawn(async move {
                    let mut next = 0u64;
                    loop {
                        let v = next_frame(&mut c).await;
                        assert_eq!(v["method"], "rpc.message", "reader {i}: {v}");
                        let data = &v["params"]["data"];
                        assert_eq!(
                            data["seq"].as_u64(),
                            Some(next),
                            "reader {i} gets every message, in order"
                        );
                        next += 1;
                        progress[i].store(next, Ordering::Release);
                        if data["last"] == true {
                            return (c, next);
                        }
                    }
                })
            })
            .collect();

        // The one that never reads.
        let mut slow = node.connect("slow").await;
        subscribe(&mut slow, TOPIC).await;
        subscribe(&mut slow, PRIVATE).await;
        let mut slow = Some(slow);
        let mut publisher = node.connect("publisher").await;
        let rss_connected = node.rss_kib();
        let sessions = node.sessions().await;
        assert_eq!(
            sessions,
            SESSIONS as u64 + 1,
            "the readers, the slow one and the publisher"
        );

        let pad = "x".repeat(512);
        let heavy = "h".repeat(32 * 1024);
        let mut published = 0u64;
        let mut rss_peak = rss_connected;
        let mut slow_reader = None;
        let mut cut_after = None;
        let started = Instant::now();
        loop {
            for _ in 0..BATCH {
                let r = publisher
                    .call(
                        1_000_000 + published,
                        "rpc.publish",
                        json!({"topic": TOPIC, "data": {"seq": published, "pad": pad}}),
                    )
                    .await;
                assert!(r.get("result").is_some(), "{r}");
                published += 1;
            }
            for n in 0..4 {
                let r = publisher
                    .call(n, "rpc.publish", json!({"topic": PRIVATE, "data": heavy}))
                    .await;
                assert!(r.get("result").is_some(), "{r}");
            }
            let caught_up = eventually(ROUND, || {
                progress.iter().all(|p| p.load(Ordering::Acquire) >= published)
            })
            .await;
            assert!(caught_up, "the readers keep up with {published} messages");
            rss_peak = rss_peak.max(node.rss_kib());
            if slow.is_some() && node.metric("switchboard_slow_consumer_closes_total").await >= 1.0 {
                // Cut: read it now, so that its close frame can come through.
                let mut c = slow.take().expect("slow client");
                cut_after = Some(published);
                slow_reader = Some(tokio::spawn(async move {
                    let mut frames = Vec::new();
                    let closed = c.closed(&mut frames).await;
                    (frames, closed)
                }));
            }
            if slow.is_none() && published >= AT_LEAST {
                break;
            }
            assert!(published < 200_000, "the never-reading session was not cut");
        }
        let r = publisher
            .call(
                9,
                "rpc.publish",
                json!({"topic": TOPIC, "data": {"seq": published, "last": true}}),
            )
            .await;
        assert!(r.get("result").is_some(), "{r}");
        let total = published + 1;
        let streaming = started.elapsed();

        let mut done = Vec::with_capacity(tasks.len());
        for task in tasks {
            let (c, received) = task.await.expect("a reader");
            assert_eq!(received, total, "every reader receives every message");
            done.push(c);
        }
        let complete = done.len();
        let (frames, closed) = slow_reader.expect("the slow one was cut").await.expect("slow reader");
        assert_eq!(closed.code, Some(close::SLOW_CONSUMER), "{closed:?}");
        assert_eq!(closed.reason, close::reason(close::SLOW_CONSUMER));
        let stream: Vec<&Value> = frames.iter().filter(|f| f["params"]["topic"] == TOPIC).collect();
        for (n, f) in stream.iter().enumerate() {
            assert_eq!(
                f["params"]["data"]["seq"], n,
                "the slow one's stream is an unbroken prefix"
            );
        }
        assert!(
            node.sessions_become(SESSIONS as u64, WAIT).await,
            "every session but the slow one is still there"
        );
        let rss_end = node.rss_kib();
        let rss_peak = rss_peak.max(rss_end);
        eprintln!(
            "slow consumers: {complete} readers received all {total} messages of ~600 bytes in {streaming:?}; \
             the never-reading session was cut within {} messages, after {} of the stream had reached it; \
             server RSS: {rss_idle} KiB idle, {rss_connected} KiB with {} sessions, peak {rss_peak} KiB, \
             {rss_end} KiB at the end",
            cut_after.expect("cut"),
            stream.len(),
            SESSIONS + 1,
        );
        assert!(rss_peak < 1024 * 1024, "server RSS stays under 1 GiB: {rss_peak} KiB");
        let mut fresh = node.connect("fresh").await;
        hostile_support::ping(&mut fresh, "fresh").await;
    })
    .await;
}

/// A client that pipelines requests and never reads their answers is cut
/// the same way: the answers a session produces itself wait in the same
/// bounded queue as pushes, so they cannot grow without bound either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pipelines_requests_and_never_reads_is_closed_with_4000() {
    within(LIMIT, async {
        let node = Binary::start(
            "pipelines-never-reads",
            &limits(&format!(
                "max_queue_bytes = {QUEUE}\nrate_per_second = 1000000\nrate_burst = 1000000\nping_interval_ms = 3600000"
            )),
        );
        let mut bystander = node.connect("bystander").await;
        let mut sloth = node.connect("sloth").await;
        let sessions = node.sessions().await;
        // Echo requests of 4 KiB, sent in bursts, never reading an answer.
        let pad = "p".repeat(4 * 1024);
        let mut sent = 0u64;
        while node.metric("switchboard_slow_consumer_closes_total").await < 1.0 {
            for _ in 0..32 {
                let request = json!({"jsonrpc": "2.0", "id": sent, "method": "echo", "params": [pad]});
                // Once the session is cut, the server stops reading and a send may fail or wait.
                match tokio::time::timeout(
                    WAIT,
                    futures_util::SinkExt::send(&mut sloth.ws, Message::text(request.to_string())),
                )
                .await
                {
                    Ok(Ok(())) => sent += 1,
                    _ => break,
                }
            }
            assert!(sent < 200_000, "the sloth was never cut");
        }
        let mut before = Vec::new();
        let closed = sloth.closed(&mut before).await;
        assert!(
            before
                .iter()
                .enumerate()
                .all(|(i, f)| f["id"] == i && f["result"][0].as_str() == Some(pad.as_str())),
            "the answers the sloth got before the close are an unbroken prefix"
        );
        assert!(
            (before.len() as u64) < sent,
            "the session was cut before it answered everything ({} of {sent})",
            before.len()
        );
        assert_eq!(closed.code, Some(close::SLOW_CONSUMER), "{closed:?}");
        assert!(
            node.sessions_become(sessions - 1, WAIT).await,
            "the sloth's session is gone"
        );
        node.still_serves(&mut [&mut bystander]).await;
    })
    .await;
}
