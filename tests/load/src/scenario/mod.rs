//! The measurements, each against running server processes.
//!
//! Each scenario opens its sessions, runs a warm-up, then reads the server's
//! CPU time (and RSS) at the start and end of a measured window, and counts
//! what was done in between: CPU per operation is the headline.

mod calls;
mod deflate;
mod fanout;
mod http;
mod memory;
mod multicall;
mod presence;
mod push;
mod slow;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

pub use calls::{CallKind, CallsParams, CallsResult, calls};
pub use deflate::{
    Compression, DeflateParams, DeflateResult, FIXTURE, deflate_fanout, publication as deflate_publication,
};
pub use fanout::{FanoutParams, FanoutResult, fanout, fanout_from};
pub use memory::{MemoryParams, MemoryResult, memory};
pub use multicall::{MulticallParams, MulticallResult, multicall};
pub use presence::{
    Cpu, CrowdResult, IdleWindow, PRESENCE_TOPICS, PresenceParams, PresenceResult, Rewrite, RoundsResult, RoundsWindow,
    Timed, crowd, idle_windows, rounds,
};
pub use push::{PushParams, PushResult, push};
pub use slow::{SlowConsumerParams, SlowConsumerResult, Stuck, slow_consumer};

use crate::client::{Connector, Ws};
use crate::error::LoadError;
use crate::flavor::{Flavor, Incoming};

/// The server under test.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process id, for CPU time and RSS.
    pub pid: u32,
    /// Its dialect.
    pub flavor: Flavor,
    /// How many loopback source addresses the load spreads over.
    pub sources: u8,
}

impl Target {
    /// A connector to this server.
    pub fn connector(&self) -> Connector {
        Connector::new(self.addr, self.flavor, self.sources)
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// How many samples they come from.
    pub samples: usize,
}

impl Percentiles {
    /// Percentiles of `samples` (microseconds).
    pub fn from_samples(mut samples: Vec<u32>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| f64::from(samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)]);
        Self {
            p50_us: at(0.5),
            p99_us: at(0.99),
            p999_us: at(0.999),
            samples: samples.len(),
        }
    }
}

/// How long the load waits for any one answer before calling the run failed.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// The topic every scenario subscribes to.
pub(crate) const TOPIC: &str = "bench";

/// Stops the sessions' tasks; the first error one of them ended with, if any.
pub(crate) async fn stop_all(tasks: Vec<tokio::task::JoinHandle<Result<(), LoadError>>>) -> Result<(), LoadError> {
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        match task.await {
            Ok(result) => result?,
            Err(e) if e.is_cancelled() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Subscribes `ws` to [`TOPIC`] with request id `id` and waits for the answer.
pub(crate) async fn subscribe(ws: &mut Ws, flavor: Flavor, id: u64) -> Result<(), LoadError> {
    ws.send(Message::text(flavor.subscribe_frame(id, TOPIC))).await?;
    wait_response(ws, flavor, id, "a subscription").await
}

/// `count` sessions of `target`, each subscribed to [`TOPIC`], opened 64 at a time.
pub(crate) async fn subscribed_sessions(target: &Target, count: usize) -> Result<Vec<Ws>, LoadError> {
    use futures_util::TryStreamExt;
    let flavor = target.flavor;
    let connector = target.connector();
    futures_util::stream::iter(0..count)
        .map(|n| {
            let connector = &connector;
            async move {
                let mut ws = connector.connect(n).await?;
                subscribe(&mut ws, flavor, 1).await?;
                Ok::<_, LoadError>(ws)
            }
        })
        .buffer_unordered(64)
        .try_collect()
        .await
}

/// Reads until the answer to request `id` arrives; it must not be an error.
pub(crate) async fn wait_response(ws: &mut Ws, flavor: Flavor, id: u64, what: &'static str) -> Result<(), LoadError> {
    loop {
        let message = tokio::time::timeout(ANSWER_TIMEOUT, ws.next())
            .await
            .map_err(|_| LoadError::Timeout(what))?
            .ok_or(LoadError::Closed(what))??;
        let Message::Text(text) = message else { continue };
        match flavor.classify(text.as_str()) {
            Incoming::Response { id: got, outcome } if got == id => {
                return outcome.map(|_| ()).map_err(|e| LoadError::Unexpected {
                    scenario: what,
                    detail: format!("error answer {e}"),
                });
            }
            Incoming::Ping => ws.send(Message::text(flavor.pong())).await?,
            _ => {}
        }
    }
}

/// Whether two JSON texts hold the same value.
pub(crate) fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
