//! The lifecycle webhook: an HTTP `POST` to a backend when a session connects
//! or disconnects, or subscribes to or unsubscribes from a topic.
//!
//! Each event is one JSON object:
//!
//! ```json
//! {"event": "subscribe", "session": "n1a2b3c4d.7", "user": "alice", "node": "n1a2b3c4d",
//!  "at_ms": 1767225600000, "topic": "chat:lobby"}
//! ```
//!
//! `event` is `connect`, `disconnect`, `subscribe` or `unsubscribe`; `topic` is
//! there for the last two only; `at_ms` is when it happened, in milliseconds
//! since the Unix epoch. Subscriptions count when a client's `rpc.subscribe` or
//! `rpc.unsubscribe` changes them, or the server API's `subscribe` and
//! `unsubscribe`. The personal topic `user:{id}`, which the gateway manages
//! itself, is never reported, and neither are the subscriptions that a
//! disconnect ends (the `disconnect` event implies them).
//!
//! # Signature
//!
//! Each request carries `X-Switchboard-Timestamp` (milliseconds since the Unix
//! epoch, fresh for every attempt) and
//!
//! ```text
//! X-Switchboard-Signature = hex(HMAC-SHA256(secret, timestamp + "\n" + body))
//! ```
//!
//! in lowercase hex over the raw body bytes. A receiver recomputes it, compares
//! in constant time and refuses stale timestamps.
//!
//! # Delivery
//!
//! Events wait in a queue of `queue_size` events; one background task posts
//! them one at a time, in order. An attempt fails on a connection error, after
//! `timeout_ms`, or on an HTTP status other than 2xx; it is retried up to
//! `max_retries` times after a full-jitter exponential backoff (a random wait
//! between zero and `backoff_min_ms`·2ⁿ, at most `backoff_max_ms`). While an
//! event is being retried the next ones wait, and when the queue is full new
//! events are dropped: the webhook never slows a session down. Delivery is at
//! least once while the process runs (an attempt that timed out may have
//! arrived); events still queued when the process exits are lost.
//!
//! Metrics: `switchboard_webhook_delivered_total`,
//! `switchboard_webhook_failed_total` (given up after the retries) and
//! `switchboard_webhook_dropped_total` (the queue was full).

use std::sync::Arc;
use std::time::Duration;

use ring::hmac;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::session::SessionHandle;
use crate::upstream::{hex, unix_ms};

/// The lifecycle webhook (`webhook` in the configuration).
///
/// ```toml
/// [webhook]
/// url = "http://127.0.0.1:9000/switchboard/events"
/// secret = "a long random string shared with the receiver"
/// events = ["connect", "disconnect"]
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events are posted, an `http://` or `https://` URL.
    pub url: String,
    /// The HMAC-SHA256 key of `X-Switchboard-Signature`, shared with the receiver.
    pub secret: String,
    /// Which events to send. Default: all of them.
    #[serde(default = "all_events")]
    pub events: Vec<WebhookEvent>,
    /// Events waiting to be sent; when it is full, new events are dropped and counted in
    /// `switchboard_webhook_dropped_total`. Default 10 000.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// Retries of a failed attempt before the event is given up. Default 5.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// How long one attempt may take, in milliseconds. Default 5 000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The first retry waits up to this long, in milliseconds; each next one up to twice as
    /// long. Default 200.
    #[serde(default = "default_backoff_min_ms")]
    pub backoff_min_ms: u64,
    /// The longest wait between two attempts, in milliseconds. Default 30 000.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
}

/// A kind of lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEvent {
    /// A session connected.
    Connect,
    /// A session ended.
    Disconnect,
    /// A session subscribed to a topic.
    Subscribe,
    /// A session unsubscribed from a topic.
    Unsubscribe,
}

impl WebhookEvent {
    fn bit(self) -> u8 {
        1 << self as u8
    }
}

fn all_events() -> Vec<WebhookEvent> {
    vec![
        WebhookEvent::Connect,
        WebhookEvent::Disconnect,
        WebhookEvent::Subscribe,
        WebhookEvent::Unsubscribe,
    ]
}

fn default_queue_size() -> usize {
    10_000
}

fn default_max_retries() -> u32 {
    5
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn default_backoff_min_ms() -> u64 {
    200
}

fn default_backoff_max_ms() -> u64 {
    30_000
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("events", &self.events)
            .field("queue_size", &self.queue_size)
            .field("max_retries", &self.max_retries)
            .field("timeout_ms", &self.timeout_ms)
            .field("backoff_min_ms", &self.backoff_min_ms)
            .field("backoff_max_ms", &self.backoff_max_ms)
            .finish()
    }
}

impl WebhookConfig {
    /// Checks what serde cannot.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let fail = |why: &str| Err(Error::Config(format!("webhook: {why}")));
        match reqwest::Url::parse(&self.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => return fail("url must be an http:// or https:// URL"),
        }
        if self.secret.is_empty() {
            return fail("secret must not be empty");
        }
        if self.queue_size == 0 || self.timeout_ms == 0 {
            return fail("queue_size and timeout_ms must be greater than 0");
        }
        if self.backoff_min_ms > self.backoff_max_ms {
            return fail("backoff_min_ms must not exceed backoff_max_ms");
        }
        Ok(())
    }
}

/// One event on its way to the receiver.
#[derive(Serialize)]
struct Event {
    event: WebhookEvent,
    session: String,
    user: String,
    node: Arc<str>,
    at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
}

/// The sending end of the webhook's queue: cheap to clone, never waits.
#[derive(Clone)]
pub(crate) struct Webhook {
    tx: mpsc::Sender<Event>,
    wanted: u8,
    node: Arc<str>,
}

impl Webhook {
    /// Starts the background task that posts the events of `node`. Needs a
    /// tokio runtime; without one the webhook is off (and says so).
    pub(crate) fn start(config: &WebhookConfig, node: Arc<str>) -> Option<Self> {
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime,
            Err(_) => {
                tracing::error!("the webhook needs a tokio runtime: build the gateway inside one; webhook off");
                return None;
            }
        };
        let url = match reqwest::Url::parse(&config.url) {
            Ok(url) => url,
            Err(e) => {
                tracing::error!(error = %e, "webhook url is invalid; webhook off");
                return None;
            }
        };
        let client = match reqwest::Client::builder().build() {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "webhook HTTP client failed; webhook off");
                return None;
            }
        };
        let (tx, rx) = mpsc::channel(config.queue_size.max(1));
        let sender = Sender {
            client,
            url,
            key: hmac::Key::new(hmac::HMAC_SHA256, config.secret.as_bytes()),
            timeout: Duration::from_millis(config.timeout_ms),
            max_retries: config.max_retries,
            backoff_min: Duration::from_millis(config.backoff_min_ms),
            backoff_max: Duration::from_millis(config.backoff_max_ms),
        };
        runtime.spawn(sender.run(rx));
        Some(Self {
            tx,
            wanted: config.events.iter().fold(0, |bits, e| bits | e.bit()),
            node,
        })
    }

    /// Queues an event about `session` (and `topic`), unless it is not wanted
    /// or the queue is full.
    pub(crate) fn emit(&self, event: WebhookEvent, session: &SessionHandle, topic: Option<&str>) {
        if self.wanted & event.bit() == 0 {
            return;
        }
        let event = Event {
            event,
            session: session.id().to_string(),
            user: session.user().to_owned(),
            node: self.node.clone(),
            at_ms: unix_ms(),
            topic: topic.map(str::to_owned),
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event) {
            metrics::counter!("switchboard_webhook_dropped_total").increment(1);
        }
    }
}

/// The background task's side.
struct Sender {
    client: reqwest::Client,
    url: reqwest::Url,
    key: hmac::Key,
    timeout: Duration,
    max_retries: u32,
    backoff_min: Duration,
    backoff_max: Duration,
}

impl Sender {
    /// Posts events in order until every [`Webhook`] handle is gone.
    async fn run(self, mut rx: mpsc::Receiver<Event>) {
        let mut random = Random::new();
        while let Some(event) = rx.recv().await {
            let body = match serde_json::to_string(&event) {
                Ok(body) => body,
                Err(e) => {
                    tracing::error!(error = %e, "webhook event could not be serialised");
                    continue;
                }
            };
            self.deliver(&body, &mut random).await;
        }
    }

    async fn deliver(&self, body: &str, random: &mut Random) {
        for attempt in 0..=self.max_retries {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt, self.backoff_min, self.backoff_max, random.unit())).await;
            }
            match self.attempt(body).await {
                Ok(()) => {
                    metrics::counter!("switchboard_webhook_delivered_total").increment(1);
                    return;
                }
                Err(why) => tracing::debug!(attempt, %why, "webhook attempt failed"),
            }
        }
        tracing::warn!(retries = self.max_retries, "webhook event given up");
        metrics::counter!("switchboard_webhook_failed_total").increment(1);
    }

    async fn attempt(&self, body: &str) -> Result<(), String> {
        let timestamp = unix_ms().to_string();
        let mut context = hmac::Context::with_key(&self.key);
        context.update(timestamp.as_bytes());
        context.update(b"\n");
        context.update(body.as_bytes());
        let signature = hex(context.sign().as_ref());
        let response = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-switchboard-timestamp", timestamp)
            .header("x-switchboard-signature", signature)
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", response.status().as_u16()))
        }
    }
}

/// Full-jitter exponential backoff: a wait between zero and
/// `min`·2^(attempt−1), capped at `max`; `unit` is a random number in [0, 1).
fn backoff(attempt: u32, min: Duration, max: Duration, unit: f64) -> Duration {
    let ceiling = min.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(max);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

/// A small xorshift generator: jitter needs spread, not secrecy.
struct Random(u64);

impl Random {
    fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
        Self(seed | 1)
    }

    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_full_jitter() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(1000));
        assert_eq!(
            backoff(1, min, max, 0.999_999),
            Duration::from_millis(100).mul_f64(0.999_999)
        );
        assert_eq!(backoff(3, min, max, 0.5), Duration::from_millis(200));
        assert_eq!(backoff(30, min, max, 0.5), Duration::from_millis(500));
        assert_eq!(backoff(2, min, max, 0.0), Duration::ZERO);
        let mut random = Random::new();
        for _ in 0..1000 {
            let u = random.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn events_serialise_as_documented() {
        let event = Event {
            event: WebhookEvent::Subscribe,
            session: "n1.2".into(),
            user: "alice".into(),
            node: "n1".into(),
            at_ms: 5,
            topic: Some("news".into()),
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"event": "subscribe", "session": "n1.2", "user": "alice", "node": "n1", "at_ms": 5, "topic": "news"})
        );
    }
}
