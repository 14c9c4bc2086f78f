//! The `webhook` section: where session and subscription events are posted.

use serde::{Deserialize, Serialize};

use crate::error::Error;

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
    pub(crate) fn bit(self) -> u8 {
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
        super::http_url("webhook.url".to_owned(), &self.url)?;
        if self.secret.is_empty() {
            return Err(Error::invalid("webhook.secret", "must not be empty"));
        }
        if self.queue_size == 0 {
            return Err(Error::invalid("webhook.queue_size", "must be greater than 0"));
        }
        if self.timeout_ms == 0 {
            return Err(Error::invalid("webhook.timeout_ms", "must be greater than 0"));
        }
        if self.backoff_min_ms > self.backoff_max_ms {
            return Err(Error::invalid(
                "webhook.backoff_min_ms",
                "must not exceed webhook.backoff_max_ms",
            ));
        }
        Ok(())
    }
}
