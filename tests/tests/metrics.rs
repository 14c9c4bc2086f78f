//! `GET /metrics` at the wire: after calls, calls to a client (to one
//! session and to a user), a cancelled request, a call the server gave up on
//! and a slow consumer, the latency histograms, the queue gauges and the
//! counters are scraped over HTTP and have moved by what was done. Only
//! counts are checked, never a duration.
//!
//! Runs under [`within`]; nothing sleeps or polls: every figure is recorded
//! before the frame the test waits for is sent.

use std::collections::HashMap;

use serde_json::json;
use switchboard_protocol::codes::{self, close};
use switchboard_server::{Limits, Target};
use switchboard_tests::{TestServer, WAIT, config_with, error_code, http_get, result, within};

/// The samples of a scrape, by series as written (name and labels).
struct Scrape(HashMap<String, f64>);

impl Scrape {
    /// Parses the text format: `series value` lines, comments skipped.
    fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect();
        Self(samples)
    }

    /// A series' value; 0 for one not written yet.
    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    fn has(&self, series: &str) -> bool {
        self.0.contains_key(series)
    }
}

async fn scrape(server: &TestServer) -> Scrape {
    let reply = http_get(&server.http_url("/metrics"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    Scrape::parse(&reply.body)
}

const QUEUE: usize = 64 * 1024;

fn moved(before: &Scrape, after: &Scrape, series: &str) -> f64 {
    after.get(series) - before.get(series)
}

#[tokio::test]
async fn latency_pressure_and_cancels_are_scraped() {
    within(WAIT * 3, async {
        let server = TestServer::start_with(
            config_with(Limits {
                max_queue_bytes: QUEUE,
                ..Limits::default()
            }),
            Vec::new(),
        )
        .await;
        let hub = server.gateway.hub().clone();
        let before = scrape(&server).await;
        let mut alice = server.connect("alice").await;

        // Three calls of a direct method, one of a typed one, one of an unknown one.
        for id in 1..=3 {
            assert_eq!(alice.call(id, "echo", json!([id])).await, result(json!(id), json!([id])));
        }
        let whoami = alice.call(4, "whoami", json!([])).await;
        assert_eq!(whoami["result"]["user"], "alice", "{whoami}");
        let unknown = alice.call(5, "no.such.method", json!([])).await;
        assert_eq!(error_code(&unknown), Some(i64::from(codes::METHOD_NOT_FOUND)));

        // A call back to the caller's session, answered.
        alice
            .send_json(&json!({"jsonrpc": "2.0", "id": 6, "method": "demo.callback", "params": {"method": "ui.ask"}}))
            .await;
        let request = alice.recv().await;
        assert_eq!(request["method"], "ui.ask");
        alice
            .send_json(&json!({"jsonrpc": "2.0", "id": request["id"], "result": "yes"}))
            .await;
        assert_eq!(alice.recv().await, result(json!(6), json!("yes")));

        // A call back the client never answers: the server gives up and sends `rpc.cancel`.
        alice
            .send_json(&json!({"jsonrpc": "2.0", "id": 7, "method": "demo.callback", "params": {"method": "ui.ask", "timeout_ms": 50}}))
            .await;
        let request = alice.recv().await;
        assert_eq!(request["method"], "ui.ask");
        let mut cancel_seen = false;
        let mut answer_seen = false;
        while !(cancel_seen && answer_seen) {
            let frame = alice.recv().await;
            if frame["method"] == "rpc.cancel" {
                assert_eq!(frame["params"]["id"], request["id"]);
                cancel_seen = true;
            } else if frame["id"] == 7 {
                assert_eq!(error_code(&frame), Some(i64::from(codes::TIMEOUT)), "{frame}");
                answer_seen = true;
            }
        }

        // A running request the client cancels.
        alice
            .send_json(&json!({"jsonrpc": "2.0", "id": 8, "method": "demo.sleep", "params": {"ms": 60_000}}))
            .await;
        alice
            .send_json(&json!({"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": 8}}))
            .await;
        loop {
            let frame = alice.recv().await;
            if frame["id"] == 8 {
                assert_eq!(error_code(&frame), Some(i64::from(codes::CANCELLED)), "{frame}");
                break;
            }
        }

        // A call to every session of a user, through the hub.
        let call = tokio::spawn({
            let hub = hub.clone();
            async move { hub.call(Target::User("alice".into()), "ui.ask", &json!([]), WAIT).await }
        });
        let request = loop {
            let frame = alice.recv().await;
            if frame["method"] == "ui.ask" {
                break frame;
            }
        };
        alice
            .send_json(&json!({"jsonrpc": "2.0", "id": request["id"], "result": 1}))
            .await;
        let entries = call.await.expect("the call's task").expect("the call");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].outcome.as_ref().map(|r| r.get()), Ok("1"));

        // A push larger than the queue's bound closes its session as a slow consumer.
        let mut bob = server.connect("bob").await;
        let big = "x".repeat(QUEUE + 1);
        hub.notify(Target::Session(bob.session.clone()), "feed", &json!([big]))
            .await
            .expect("sent");
        let closed = bob.closed(&mut Vec::new()).await;
        assert_eq!(closed.code, Some(close::SLOW_CONSUMER), "{closed:?}");

        // Every figure is recorded before the frame or answer the test waited for.
        let after = scrape(&server).await;

        let calls = |method: &str| {
            moved(
                &before,
                &after,
                &format!(r#"switchboard_call_duration_seconds_count{{method="{method}"}}"#),
            )
        };
        assert_eq!(calls("echo"), 3.0);
        assert_eq!(calls("whoami"), 1.0);
        assert_eq!(calls("demo.callback"), 2.0);
        assert_eq!(calls("demo.sleep"), 1.0, "a cancelled request is timed too");
        assert!(
            after.has(r#"switchboard_call_duration_seconds_bucket{method="echo",le="0.0001"}"#),
            "buckets start at 100 µs"
        );
        assert!(after.has(r#"switchboard_call_duration_seconds_bucket{method="echo",le="10"}"#));
        assert!(
            !after.0.keys().any(|series| series.contains("no.such.method")),
            "an unknown method makes no label"
        );

        let client_calls = |target: &str| {
            moved(
                &before,
                &after,
                &format!(r#"switchboard_client_call_duration_seconds_count{{target="{target}"}}"#),
            )
        };
        assert_eq!(client_calls("session"), 2.0, "the answered call and the one that timed out");
        assert_eq!(client_calls("user"), 1.0);
        assert_eq!(client_calls("topic"), 0.0);

        assert_eq!(moved(&before, &after, "switchboard_requests_cancelled_total"), 1.0);
        assert!(moved(&before, &after, "switchboard_client_calls_cancelled_total") >= 1.0);
        assert_eq!(moved(&before, &after, "switchboard_slow_consumer_closes_total"), 1.0);
        assert!(
            moved(&before, &after, "switchboard_broker_publish_duration_seconds_count") >= 2.0,
            "the user call and the push went through the broker"
        );
        assert!(after.has("switchboard_broker_errors_total"));
        assert!(after.has("switchboard_outbound_queued_bytes"));
        assert!(after.has("switchboard_outbound_queued_bytes_max"));

        drop((alice, bob));
        server.stop().await;
    })
    .await;
}
