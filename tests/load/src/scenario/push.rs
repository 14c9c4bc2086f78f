//! Pushes to users through the server API (`POST /api`, `notify` to one
//! user each), as a backend would send them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::http::Backend;
use super::{Percentiles, Target, stop_all};
use crate::client::Ws;
use crate::error::LoadError;
use crate::flavor::{Flavor, Incoming};
use crate::procfs;

/// What to run.
#[derive(Debug, Clone)]
pub struct PushParams {
    /// Connected users (one session each).
    pub users: usize,
    /// HTTP connections posting at once.
    pub posters: usize,
    /// `notify` requests per POST (a JSON-RPC batch).
    pub batch: usize,
    /// Warm-up before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
}

/// What was measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PushResult {
    /// Pushes received by the sessions in the window.
    pub pushes: u64,
    /// Length of the window in seconds.
    pub seconds: f64,
    /// Server CPU seconds in the window.
    pub cpu_seconds: f64,
    /// Time from sending a POST to its HTTP answer.
    pub post_latency: Percentiles,
}

impl PushResult {
    /// Pushes delivered per second.
    pub fn rate(&self) -> f64 {
        self.pushes as f64 / self.seconds.max(f64::EPSILON)
    }

    /// Server CPU microseconds per push (the HTTP request's share included).
    pub fn cpu_us_per_push(&self) -> f64 {
        self.cpu_seconds * 1e6 / (self.pushes.max(1) as f64)
    }
}

/// Connects `params.users` sessions (user `u<n>` each), then posts batches of
/// `notify` to one user each from `params.posters` HTTP connections, round
/// robin over the users, and counts what the sessions receive.
pub async fn push(target: &Target, params: &PushParams) -> Result<PushResult, LoadError> {
    if target.flavor != Flavor::Switchboard {
        return Err(LoadError::Unexpected {
            scenario: "api-push",
            detail: "only switchboard has a server API".to_owned(),
        });
    }
    let connector = target.connector();
    let sessions: Vec<Ws> = futures_util::stream::iter(0..params.users)
        .map(|n| connector.connect(n))
        .buffer_unordered(64)
        .try_collect()
        .await?;
    let received = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = sessions
        .into_iter()
        .map(|ws| tokio::spawn(receive(ws, received.clone())))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let measuring = Arc::new(AtomicBool::new(false));
    let posters: Vec<_> = (0..params.posters)
        .map(|p| {
            tokio::spawn(post_loop(
                *target,
                p,
                params.clone(),
                stop.clone(),
                measuring.clone(),
                latencies.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(params.warmup).await;
    let before = procfs::sample(target.pid)?;
    let received_before = received.load(Ordering::Acquire);
    measuring.store(true, Ordering::Release);
    let started = Instant::now();
    tokio::time::sleep(params.measure).await;
    let after = procfs::sample(target.pid)?;
    let received_after = received.load(Ordering::Acquire);
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    for poster in posters {
        poster.await??;
    }
    stop_all(readers).await?;
    let samples = std::mem::take(&mut *latencies.lock());
    Ok(PushResult {
        pushes: received_after - received_before,
        seconds,
        cpu_seconds: after.cpu_seconds_since(&before),
        post_latency: Percentiles::from_samples(samples),
    })
}

/// One session: counts `bench.push` notifications, answers pings.
async fn receive(mut ws: Ws, received: Arc<AtomicU64>) -> Result<(), LoadError> {
    while let Some(message) = ws.next().await {
        let Message::Text(text) = message? else { continue };
        if text.as_str().contains(r#""method":"bench.push""#) {
            received.fetch_add(1, Ordering::AcqRel);
        } else if let Incoming::Ping = Flavor::Switchboard.classify(text.as_str()) {
            ws.send(Message::text(Flavor::Switchboard.pong())).await?;
        }
    }
    Err(LoadError::Closed("api-push"))
}

/// One HTTP connection posting batches until told to stop.
async fn post_loop(
    target: Target,
    poster: usize,
    params: PushParams,
    stop: Arc<AtomicBool>,
    measuring: Arc<AtomicBool>,
    latencies: Arc<parking_lot::Mutex<Vec<u32>>>,
) -> Result<(), LoadError> {
    let mut backend = Backend::connect(target.addr).await?;
    let mut next_user = poster;
    let mut seq = 0u64;
    while !stop.load(Ordering::Acquire) {
        let mut body = String::with_capacity(params.batch * 120);
        body.push('[');
        for i in 0..params.batch {
            if i > 0 {
                body.push(',');
            }
            seq += 1;
            body.push_str(&format!(
                r#"{{"jsonrpc":"2.0","id":{seq},"method":"notify","params":{{"target":{{"user":"u{}"}},"method":"bench.push","params":{{"seq":{seq}}}}}}}"#,
                next_user % params.users
            ));
            next_user += params.posters;
        }
        body.push(']');
        let started = Instant::now();
        let answer = backend.post("/api", &body).await?;
        if answer.status != 200 || answer.body.contains(r#""error""#) {
            return Err(LoadError::Unexpected {
                scenario: "api-push",
                detail: format!("unexpected /api answer: {}", answer.excerpt()),
            });
        }
        if measuring.load(Ordering::Acquire) {
            latencies
                .lock()
                .push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        }
    }
    Ok(())
}
