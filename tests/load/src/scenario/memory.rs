//! Resident memory per idle subscribed session, fresh and after a burst.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Message;

use super::{ANSWER_TIMEOUT, TOPIC, Target, stop_all, subscribe, wait_response};
use crate::client::Ws;
use crate::error::LoadError;
use crate::flavor::{Flavor, Incoming};
use crate::procfs;

/// What to run.
#[derive(Debug, Clone)]
pub struct MemoryParams {
    /// Idle sessions.
    pub sessions: usize,
    /// Handshakes at a time while connecting.
    pub concurrency: usize,
    /// Calls each session makes at once in the burst.
    pub burst_calls: usize,
    /// Size of each burst call's params and of the burst publication, in bytes.
    pub burst_bytes: usize,
    /// Quiet time before each RSS reading.
    pub settle: Duration,
}

/// What was measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MemoryResult {
    /// Sessions open.
    pub sessions: usize,
    /// Server RSS before the first connection, KiB.
    pub rss_before_kib: u64,
    /// Server RSS with every session connected, subscribed and idle, KiB.
    pub rss_idle_kib: u64,
    /// Server RSS with every session idle again after the burst, KiB.
    pub rss_after_burst_kib: u64,
}

impl MemoryResult {
    /// KiB per idle subscribed session, fresh.
    pub fn kib_per_session(&self) -> f64 {
        self.rss_idle_kib.saturating_sub(self.rss_before_kib) as f64 / self.sessions.max(1) as f64
    }

    /// KiB per idle subscribed session after the burst.
    pub fn kib_per_session_after_burst(&self) -> f64 {
        self.rss_after_burst_kib.saturating_sub(self.rss_before_kib) as f64 / self.sessions.max(1) as f64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Idle,
    Burst,
}

/// Opens `params.sessions` sessions (each subscribed to one topic where the
/// server has topics), reads RSS, makes a burst of traffic on every session
/// (`burst_calls` calls of `burst_bytes` each at once, and one publication of
/// `burst_bytes` to all), lets them go idle and reads RSS again.
pub async fn memory(target: &Target, params: &MemoryParams) -> Result<MemoryResult, LoadError> {
    let flavor = target.flavor;
    let before = procfs::sample(target.pid)?;
    let connector = target.connector();
    let sessions: Vec<Ws> = futures_util::stream::iter(0..params.sessions)
        .map(|n| {
            let connector = &connector;
            async move {
                let mut ws = connector.connect(n).await?;
                if flavor.subscribes() {
                    subscribe(&mut ws, flavor, 1).await?;
                }
                Ok::<_, LoadError>(ws)
            }
        })
        .buffer_unordered(params.concurrency.max(1))
        .try_collect()
        .await?;
    let mut publisher = connector.connect(params.sessions).await?;
    let (command, commands) = watch::channel(Command::Idle);
    let done = Arc::new((AtomicUsize::new(0), Notify::new()));
    let payload = format!(r#"["{}"]"#, "x".repeat(params.burst_bytes));
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|ws| {
            tokio::spawn(idle(
                ws,
                flavor,
                commands.clone(),
                done.clone(),
                params.burst_calls,
                payload.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(params.settle).await;
    let idle_sample = procfs::sample(target.pid)?;

    command.send_replace(Command::Burst);
    if flavor.subscribes() {
        let data = format!(r#"{{"text":"{}"}}"#, "y".repeat(params.burst_bytes));
        publisher
            .send(Message::text(flavor.publish_frame(1, TOPIC, &data)))
            .await?;
        wait_response(&mut publisher, flavor, 1, "the burst publication's answer").await?;
    }
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT * 3;
    loop {
        let finished = done.1.notified();
        if done.0.load(Ordering::Acquire) >= params.sessions {
            break;
        }
        if tokio::time::timeout_at(deadline, finished).await.is_err() {
            return Err(LoadError::Timeout("every session to finish its burst"));
        }
    }
    tokio::time::sleep(params.settle).await;
    let after = procfs::sample(target.pid)?;
    stop_all(tasks).await?;
    Ok(MemoryResult {
        sessions: params.sessions,
        rss_before_kib: before.rss_kib,
        rss_idle_kib: idle_sample.rss_kib,
        rss_after_burst_kib: after.rss_kib,
    })
}

/// One idle session: answers pings, and on the burst command sends its calls
/// and reports when their answers (and the burst publication) are in.
async fn idle(
    mut ws: Ws,
    flavor: Flavor,
    mut commands: watch::Receiver<Command>,
    done: Arc<(AtomicUsize, Notify)>,
    calls: usize,
    payload: String,
) -> Result<(), LoadError> {
    let mut bursting = false;
    let mut reported = false;
    let mut answers = 0;
    let mut published = !flavor.subscribes();
    loop {
        tokio::select! {
            message = ws.next() => {
                let Some(message) = message else { return Err(LoadError::Closed("the memory run")) };
                let Message::Text(text) = message? else { continue };
                match flavor.classify(text.as_str()) {
                    Incoming::Response { .. } => answers += 1,
                    Incoming::Publication { .. } => published = true,
                    Incoming::Ping => ws.send(Message::text(flavor.pong())).await?,
                    Incoming::ServerCall { id, params } => ws.send(Message::text(flavor.answer(id, params))).await?,
                    Incoming::Other => {}
                }
            }
            changed = commands.changed(), if !bursting => {
                if changed.is_err() {
                    return Ok(());
                }
                if *commands.borrow_and_update() == Command::Burst {
                    bursting = true;
                    for i in 0..calls {
                        ws.feed(Message::text(flavor.call_frame(100 + i as u64, &payload))).await?;
                    }
                    ws.flush().await?;
                }
            }
        }
        if bursting && !reported && answers >= calls && published {
            reported = true;
            done.0.fetch_add(1, Ordering::AcqRel);
            done.1.notify_one();
        }
    }
}
