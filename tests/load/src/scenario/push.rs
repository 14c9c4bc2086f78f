//! Pushes to users through the server API (`POST /api`, `notify` to one
//! user each), as a backend would send them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use super::{ANSWER_TIMEOUT, Percentiles, Target, stop_all};
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
    let mut http = TcpStream::connect(target.addr).await?;
    http.set_nodelay(true)?;
    let mut next_user = poster;
    let mut seq = 0u64;
    let mut buffer = Vec::with_capacity(16 * 1024);
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
        let request = format!(
            "POST /api HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            target.addr,
            body.len()
        );
        let started = Instant::now();
        http.write_all(request.as_bytes()).await?;
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, read_response(&mut http, &mut buffer))
            .await
            .map_err(|_| LoadError::Timeout("an /api answer"))??;
        if !answer.starts_with("HTTP/1.1 200") || answer.contains(r#""error""#) {
            return Err(LoadError::Unexpected {
                scenario: "api-push",
                detail: format!("unexpected /api answer: {}", &answer[..answer.len().min(300)]),
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

/// Reads one HTTP/1.1 response with a Content-Length body; returns it whole.
async fn read_response(http: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<String, LoadError> {
    buffer.clear();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                return Ok(String::from_utf8_lossy(&buffer[..end + 4 + length]).into_owned());
            }
        }
        let n = http.read(&mut chunk).await?;
        if n == 0 {
            return Err(LoadError::Closed("the /api connection"));
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}
