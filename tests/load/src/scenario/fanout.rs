//! One publication delivered to many subscribed sessions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use super::{ANSWER_TIMEOUT, Percentiles, TOPIC, Target, stop_all, subscribed_sessions, wait_response};
use crate::client::Ws;
use crate::error::LoadError;
use crate::flavor::{Flavor, Incoming};
use crate::procfs;

/// What to run.
#[derive(Debug, Clone)]
pub struct FanoutParams {
    /// Subscribed sessions.
    pub subscribers: usize,
    /// Publications before the measured window.
    pub warmup_publications: u64,
    /// The measured window (at least `min_publications` are made).
    pub measure: Duration,
    /// Fewest publications in the window.
    pub min_publications: u64,
    /// Most publications in the window.
    pub max_publications: u64,
    /// Check every delivery.
    pub verify: bool,
}

/// What was measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FanoutResult {
    /// Publications in the window.
    pub publications: u64,
    /// Deliveries in the window (publications × subscribers).
    pub deliveries: u64,
    /// Length of the window in seconds.
    pub seconds: f64,
    /// Server CPU seconds in the window.
    pub cpu_seconds: f64,
    /// Time from sending a publication to its last delivery.
    pub completion: Percentiles,
}

impl FanoutResult {
    /// Deliveries per second.
    pub fn rate(&self) -> f64 {
        self.deliveries as f64 / self.seconds.max(f64::EPSILON)
    }

    /// Server CPU microseconds per delivery (the publication's own call included, spread over its deliveries).
    pub fn cpu_us_per_delivery(&self) -> f64 {
        self.cpu_seconds * 1e6 / (self.deliveries.max(1) as f64)
    }
}

/// Deliveries so far, and how many the publisher waits for.
#[derive(Default)]
pub(crate) struct Counter {
    delivered: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

impl Counter {
    /// One more delivery; wakes the publisher when it was the last one it waits for.
    pub(crate) fn delivered_one(&self) {
        let n = self.delivered.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= self.target.load(Ordering::Acquire) {
            self.reached.notify_one();
        }
    }
}

/// The data of publication `seq`: about 80 bytes of JSON.
fn publication(seq: u64) -> String {
    format!(r#"{{"seq":{seq},"text":"the quick brown fox jumps over the lazy dog 0123456789"}}"#)
}

/// Subscribes `params.subscribers` sessions to one topic, then publishes on
/// it from one more session, one publication at a time: the next goes out
/// once every subscriber has the last one.
pub async fn fanout(target: &Target, params: &FanoutParams) -> Result<FanoutResult, LoadError> {
    fanout_from(target, None, params).await
}

/// Like [`fanout`], with the publisher connected to another node of the
/// same cluster (`publisher_node`) when given; CPU is `target`'s, the node
/// that delivers.
pub async fn fanout_from(
    target: &Target,
    publisher_node: Option<&Target>,
    params: &FanoutParams,
) -> Result<FanoutResult, LoadError> {
    let flavor = target.flavor;
    let connector = target.connector();
    let subscribers = subscribed_sessions(target, params.subscribers).await?;
    let mut publisher = match publisher_node {
        Some(node) => node.connector().connect(params.subscribers).await?,
        None => connector.connect(params.subscribers).await?,
    };
    let counter = Arc::new(Counter::default());
    let tasks: Vec<_> = subscribers
        .into_iter()
        .map(|ws| tokio::spawn(receive(ws, flavor, counter.clone(), params.verify)))
        .collect();
    let window = Window {
        pid: target.pid,
        flavor,
        subscribers: params.subscribers as u64,
        params,
        counter: &counter,
    };
    let result = window.run(&mut publisher, &publication, || 0).await;
    stop_all(tasks).await?;
    Ok(result?.0)
}

/// The publishing side of a fan-out: subscribers are connected and counted
/// in `counter`; publications go out one at a time, each once every
/// subscriber has the one before.
pub(crate) struct Window<'a> {
    /// The server's process, whose CPU time is read.
    pub(crate) pid: u32,
    /// The server's dialect.
    pub(crate) flavor: Flavor,
    /// Subscribed sessions.
    pub(crate) subscribers: u64,
    /// Warm-up and window.
    pub(crate) params: &'a FanoutParams,
    /// Where the subscribers count deliveries.
    pub(crate) counter: &'a Counter,
}

impl Window<'_> {
    /// Warms up, then publishes for the measured window; also returns how far
    /// `probe` (a counter the subscribers advance, e.g. bytes read) moved in it.
    pub(crate) async fn run(
        &self,
        publisher: &mut Ws,
        publication: &dyn Fn(u64) -> String,
        probe: impl Fn() -> u64,
    ) -> Result<(FanoutResult, u64), LoadError> {
        let (flavor, counter, params, n) = (self.flavor, self.counter, self.params, self.subscribers);
        let mut seq = 0u64;
        let mut publish = async |seq: u64| -> Result<Duration, LoadError> {
            let started = Instant::now();
            counter.target.store((seq + 1) * n, Ordering::Release);
            let frame = flavor.publish_frame(seq + 1, TOPIC, &publication(seq));
            publisher.send(Message::text(frame)).await?;
            wait_response(publisher, flavor, seq + 1, "a publication's answer").await?;
            wait_delivered(counter, (seq + 1) * n).await?;
            Ok(started.elapsed())
        };
        while seq < params.warmup_publications {
            publish(seq).await?;
            seq += 1;
        }
        let delivered_before = counter.delivered.load(Ordering::Acquire);
        let probe_before = probe();
        let before = procfs::sample(self.pid)?;
        let started = Instant::now();
        let mut completions = Vec::new();
        let mut made = 0;
        while made < params.max_publications && (made < params.min_publications || started.elapsed() < params.measure) {
            let took = publish(seq).await?;
            completions.push(took.as_micros().min(u128::from(u32::MAX)) as u32);
            seq += 1;
            made += 1;
        }
        let after = procfs::sample(self.pid)?;
        let probe_after = probe();
        let delivered_after = counter.delivered.load(Ordering::Acquire);
        let seconds = started.elapsed().as_secs_f64();
        let result = FanoutResult {
            publications: made,
            deliveries: delivered_after - delivered_before,
            seconds,
            cpu_seconds: after.cpu_seconds_since(&before),
            completion: Percentiles::from_samples(completions),
        };
        Ok((result, probe_after - probe_before))
    }
}

async fn wait_delivered(counter: &Counter, target: u64) -> Result<(), LoadError> {
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    loop {
        let reached = counter.reached.notified();
        if counter.delivered.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        tokio::time::timeout_at(deadline, reached)
            .await
            .map_err(|_| LoadError::Timeout("every subscriber to receive a publication"))?;
    }
}

/// One subscriber: counts publications, answers pings.
async fn receive(mut ws: Ws, flavor: Flavor, counter: Arc<Counter>, verify: bool) -> Result<(), LoadError> {
    while let Some(message) = ws.next().await {
        let Message::Text(text) = message? else { continue };
        match flavor.classify(text.as_str()) {
            Incoming::Publication { data } => {
                if verify {
                    check(data)?;
                }
                counter.delivered_one();
            }
            Incoming::Ping => ws.send(Message::text(flavor.pong())).await?,
            _ => {}
        }
    }
    Err(LoadError::Closed("fan-out"))
}

fn check(data: &str) -> Result<(), LoadError> {
    let value: serde_json::Value = serde_json::from_str(data).map_err(|e| LoadError::Unexpected {
        scenario: "fanout",
        detail: format!("publication data is not JSON ({e}): {data}"),
    })?;
    let seq = value["seq"].as_u64().unwrap_or(u64::MAX);
    if serde_json::to_string(&value).ok() != Some(publication(seq)) {
        return Err(LoadError::Unexpected {
            scenario: "fanout",
            detail: format!("publication data changed on the way: {data}"),
        });
    }
    Ok(())
}
