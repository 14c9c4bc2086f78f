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
//! `max_retries` times after a full-jitter exponential backoff with a floor
//! (`switchboard_protocol::backoff`: the n-th retry waits a random time
//! between `backoff_min_ms` and `backoff_min_ms`·2ⁿ, at most
//! `backoff_max_ms`; the same formula as the clients' reconnects). While an
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

use serde::Serialize;
use tokio::sync::mpsc;

use switchboard_protocol::backoff::backoff;

use crate::config::{WebhookConfig, WebhookEvent};
use crate::session::SessionHandle;
use crate::signing::{Signer, unix_ms};

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
            signer: Signer::new(&config.secret),
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
    signer: Signer,
    timeout: Duration,
    max_retries: u32,
    backoff_min: Duration,
    backoff_max: Duration,
}

impl Sender {
    /// Posts events in order until every [`Webhook`] handle is gone.
    async fn run(self, mut rx: mpsc::Receiver<Event>) {
        while let Some(event) = rx.recv().await {
            let body = match serde_json::to_string(&event) {
                Ok(body) => body,
                Err(e) => {
                    tracing::error!(error = %e, "webhook event could not be serialised");
                    continue;
                }
            };
            self.deliver(&body).await;
        }
    }

    async fn deliver(&self, body: &str) {
        for attempt in 0..=self.max_retries {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt, self.backoff_min, self.backoff_max, fastrand::f64())).await;
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
        let signature = self.signer.sign(&[&timestamp], body.as_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;

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
