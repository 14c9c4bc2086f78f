//! The lifecycle webhook against a real local HTTP receiver: events in
//! order, signed as documented, retried when the receiver fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use switchboard_server::{Config, Target, WebhookConfig, WebhookEvent};
use switchboard_tests::{TestServer, WAIT, within};
use tokio::sync::mpsc;

const SECRET: &str = "webhook-secret-0123456789";

/// One request the receiver got.
struct Delivery {
    event: Value,
    signature_ok: bool,
    attempt: usize,
}

struct Receiver {
    tx: mpsc::UnboundedSender<Delivery>,
    /// Requests answered 503 before the receiver starts accepting.
    fail_first: usize,
    attempts: AtomicUsize,
}

/// The documented recipe: HMAC-SHA256 over timestamp, a newline, and the body.
fn verify(headers: &HeaderMap, body: &str) -> bool {
    let get = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let timestamp = get("x-switchboard-timestamp");
    let signature = get("x-switchboard-signature");
    let Ok(bytes) = (0..signature.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(signature.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    !timestamp.is_empty() && ring::hmac::verify(&key, format!("{timestamp}\n{body}").as_bytes(), &bytes).is_ok()
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> StatusCode {
    let attempt = r.attempts.fetch_add(1, Ordering::SeqCst) + 1;
    if attempt <= r.fail_first {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let _ = r.tx.send(Delivery {
        event: serde_json::from_str(&body).expect("events are JSON"),
        signature_ok: verify(&headers, &body),
        attempt,
    });
    StatusCode::NO_CONTENT
}

/// Starts a receiver that fails its first `fail_first` requests; returns its URL.
async fn start_receiver(fail_first: usize) -> (String, mpsc::UnboundedReceiver<Delivery>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let receiver = Arc::new(Receiver {
        tx,
        fail_first,
        attempts: AtomicUsize::new(0),
    });
    let app = axum::Router::new()
        .route("/events", axum::routing::post(receive))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/events", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx)
}

fn config(url: &str, events: Vec<WebhookEvent>) -> Config {
    Config {
        webhook: Some(WebhookConfig {
            url: url.to_owned(),
            secret: SECRET.to_owned(),
            events,
            queue_size: 100,
            max_retries: 5,
            timeout_ms: 2_000,
            backoff_min_ms: 10,
            backoff_max_ms: 50,
        }),
        ..Config::default()
    }
}

fn all() -> Vec<WebhookEvent> {
    vec![
        WebhookEvent::Connect,
        WebhookEvent::Disconnect,
        WebhookEvent::Subscribe,
        WebhookEvent::Unsubscribe,
    ]
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Delivery {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an event in time")
        .expect("receiver running")
}

/// Checks an event's documented fields and returns `(event, topic)`.
fn shape(d: &Delivery, session: &str, node: &str) -> (String, Option<String>) {
    assert!(d.signature_ok, "signature verifies: {}", d.event);
    assert_eq!(d.event["session"], session, "{}", d.event);
    assert_eq!(d.event["user"], "alice");
    assert_eq!(d.event["node"], node);
    assert!(d.event["at_ms"].as_u64().is_some_and(|t| t > 0));
    (
        d.event["event"].as_str().expect("event name").to_owned(),
        d.event.get("topic").and_then(Value::as_str).map(str::to_owned),
    )
}

#[tokio::test]
async fn a_session_s_life_reaches_the_webhook_in_order_and_signed() {
    within(
        WAIT,
        Box::pin(async {
            let (url, mut rx) = start_receiver(0).await;
            let server = TestServer::start_with(config(&url, all()), vec![]).await;
            let node = server.gateway.hub().node().to_owned();
            let mut alice = server.connect("alice").await;
            let session = alice.session.clone();
            let subscribed = alice
                .call(1, "rpc.subscribe", json!({"topics": [{"topic": "news"}]}))
                .await;
            assert!(subscribed.get("result").is_some(), "{subscribed}");
            // Subscribing again changes nothing and is not reported.
            alice
                .call(2, "rpc.subscribe", json!({"topics": [{"topic": "news"}]}))
                .await;
            alice.call(3, "rpc.unsubscribe", json!({"topics": ["news"]})).await;
            // A backend subscribes the session through the hub.
            server
                .gateway
                .hub()
                .subscribe(Target::Session(session.clone()), vec!["alerts".into()])
                .await
                .expect("subscribe");
            alice.ws.close(None).await.expect("close");

            let expected = [
                ("connect", None),
                ("subscribe", Some("news")),
                ("unsubscribe", Some("news")),
                ("subscribe", Some("alerts")),
                ("disconnect", None),
            ];
            for (event, topic) in expected {
                let d = next(&mut rx).await;
                assert_eq!(
                    shape(&d, &session, &node),
                    (event.to_owned(), topic.map(str::to_owned)),
                    "{}",
                    d.event
                );
            }
        }),
    )
    .await;
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_on_a_retry() {
    within(
        WAIT,
        Box::pin(async {
            let (url, mut rx) = start_receiver(2).await;
            let server = TestServer::start_with(config(&url, all()), vec![]).await;
            let node = server.gateway.hub().node().to_owned();
            let alice = server.connect("alice").await;
            let d = next(&mut rx).await;
            assert_eq!(shape(&d, &alice.session, &node).0, "connect");
            assert_eq!(d.attempt, 3, "two failures, then the third attempt");
        }),
    )
    .await;
}

#[tokio::test]
async fn only_the_configured_events_are_sent() {
    within(
        WAIT,
        Box::pin(async {
            let (url, mut rx) = start_receiver(0).await;
            let server = TestServer::start_with(config(&url, vec![WebhookEvent::Connect]), vec![]).await;
            let node = server.gateway.hub().node().to_owned();
            let mut first = server.connect("alice").await;
            first
                .call(1, "rpc.subscribe", json!({"topics": [{"topic": "news"}]}))
                .await;
            first.ws.close(None).await.expect("close");
            // Events are sent in order, so the second connect following the first
            // directly shows that nothing else was sent in between.
            let second = wait_for_no_sessions_then_connect(&server).await;
            assert_eq!(shape(&next(&mut rx).await, &first.session, &node).0, "connect");
            assert_eq!(shape(&next(&mut rx).await, &second.session, &node).0, "connect");
        }),
    )
    .await;
}

/// Waits until the first session is gone (so its disconnect was emitted), then connects again.
async fn wait_for_no_sessions_then_connect(server: &TestServer) -> switchboard_tests::WsClient {
    let hub = server.gateway.hub().clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if hub.presence(None).await.expect("presence").is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first session ended in time"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    server.connect("alice").await
}
