//! Client→server calls, and calls whose handler calls the client back.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::{ANSWER_TIMEOUT, Percentiles, Target, same_json};
use crate::client::Ws;
use crate::error::LoadError;
use crate::flavor::{Flavor, Incoming};
use crate::procfs;

/// Which call the sessions make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// `echo`: one frame in, one frame out.
    Echo,
    /// A call whose handler calls the client back (`demo.callback` on
    /// switchboard): the server sends a request, the client answers it, then
    /// the server answers the original call.
    Callback,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct CallsParams {
    /// Which call.
    pub kind: CallKind,
    /// Sessions.
    pub connections: usize,
    /// Calls in flight per session.
    pub in_flight: usize,
    /// Time before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
    /// Stop each session after this many calls (the smoke run stays under rate limits).
    pub calls_per_connection: Option<u64>,
    /// The params of every call (a JSON array).
    pub params: String,
    /// Check every answer.
    pub verify: bool,
}

/// What was measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallsResult {
    /// Calls answered in the measured window.
    pub calls: u64,
    /// Length of the window in seconds.
    pub seconds: f64,
    /// Server CPU seconds in the window.
    pub cpu_seconds: f64,
    /// Latency from sending a call to reading its answer.
    pub latency: Percentiles,
}

impl CallsResult {
    /// Calls per second.
    pub fn rate(&self) -> f64 {
        self.calls as f64 / self.seconds.max(f64::EPSILON)
    }

    /// Server CPU microseconds per call.
    pub fn cpu_us_per_call(&self) -> f64 {
        self.cpu_seconds * 1e6 / (self.calls.max(1) as f64)
    }
}

// Phases: 0 is the warm-up (the default), then the measured window, then stop.
const MEASURE: u8 = 1;
const STOP: u8 = 2;

#[derive(Default)]
struct Progress {
    phase: AtomicU8,
    completed: AtomicU64,
}

/// Runs `params.connections` sessions, each keeping `params.in_flight` calls
/// in flight, and measures the server's CPU per call.
pub async fn calls(target: &Target, params: &CallsParams) -> Result<CallsResult, LoadError> {
    let connector = target.connector();
    let sessions = connector.connect_many(0, params.connections, 64).await?;
    let progress = Arc::new(Progress::default());
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|ws| tokio::spawn(drive(ws, target.flavor, params.clone(), progress.clone())))
        .collect();

    tokio::time::sleep(params.warmup).await;
    let done_before = progress.completed.load(Ordering::Relaxed);
    let before = procfs::sample(target.pid)?;
    progress.phase.store(MEASURE, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(params.measure).await;
    let after = procfs::sample(target.pid)?;
    let done_after = progress.completed.load(Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    progress.phase.store(STOP, Ordering::Relaxed);

    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(CallsResult {
        calls: done_after - done_before,
        seconds,
        cpu_seconds: after.cpu_seconds_since(&before),
        latency: Percentiles::from_samples(latencies),
    })
}

/// One session: keeps `in_flight` calls going, answers the server's calls and
/// pings, batches what it sends per read, and records latencies while the
/// window is open.
async fn drive(
    mut ws: Ws,
    flavor: Flavor,
    params: CallsParams,
    progress: Arc<Progress>,
) -> Result<Vec<u32>, LoadError> {
    let expected = params.verify.then(|| flavor.expected_result(&params.params));
    let mut sent: HashMap<u64, Instant> = HashMap::with_capacity(params.in_flight * 2);
    let mut latencies = Vec::new();
    let mut next_id = 1u64;
    let limit = params.calls_per_connection.unwrap_or(u64::MAX);
    loop {
        let phase = progress.phase.load(Ordering::Relaxed);
        if phase != STOP {
            while sent.len() < params.in_flight && next_id <= limit {
                let frame = match params.kind {
                    CallKind::Echo => flavor.call_frame(next_id, &params.params),
                    CallKind::Callback => flavor.callback_frame(next_id, &params.params),
                };
                ws.feed(Message::text(frame)).await?;
                sent.insert(next_id, Instant::now());
                next_id += 1;
            }
        }
        if sent.is_empty() && (phase == STOP || next_id > limit) {
            return Ok(latencies);
        }
        ws.flush().await?;
        let first = tokio::time::timeout(ANSWER_TIMEOUT, ws.next())
            .await
            .map_err(|_| LoadError::Timeout("an answer to a call"))?;
        let mut message = Some(first.ok_or(LoadError::Closed("calls"))??);
        while let Some(m) = message.take() {
            if let Message::Text(text) = &m {
                match flavor.classify(text.as_str()) {
                    Incoming::Response { id, outcome } => {
                        if let Some(at) = sent.remove(&id) {
                            progress.completed.fetch_add(1, Ordering::Relaxed);
                            if phase == MEASURE {
                                latencies.push(at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                            }
                            if let Some(expected) = &expected {
                                check(outcome, expected)?;
                            }
                        }
                    }
                    Incoming::ServerCall { id, params } => ws.feed(Message::text(flavor.answer(id, params))).await?,
                    Incoming::Ping => ws.feed(Message::text(flavor.pong())).await?,
                    Incoming::Publication { .. } | Incoming::Other => {}
                }
            }
            // Take whatever else has already arrived before flushing, so
            // that answers and new calls leave together.
            message = match ws.next().now_or_never() {
                Some(Some(m)) => Some(m?),
                Some(None) => return Err(LoadError::Closed("calls")),
                None => None,
            };
        }
    }
}

fn check(outcome: Result<&str, &str>, expected: &str) -> Result<(), LoadError> {
    match outcome {
        Ok(result) if same_json(result, expected) => Ok(()),
        Ok(result) => Err(LoadError::Unexpected {
            scenario: "calls",
            detail: format!("expected {expected}, got {result}"),
        }),
        Err(error) => Err(LoadError::Unexpected {
            scenario: "calls",
            detail: format!("expected {expected}, got the error {error}"),
        }),
    }
}
