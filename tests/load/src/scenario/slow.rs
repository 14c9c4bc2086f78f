//! What one session that never reads costs the sessions that do: a topic
//! published at a fixed, moderate rate to many reading subscribers, with or
//! without one more subscriber that stops reading after it has subscribed.
//!
//! Every publication carries the time it was sent (microseconds on a clock of
//! this process), so each reader measures the delivery latency of every
//! publication it gets. The stuck subscriber never reads from its socket
//! again; its outbound queue on the server fills until the server closes it
//! (`4000`, slow consumer, once `limits.max_queue_bytes` is passed), and it is
//! then opened and subscribed again, so that there is one stuck session on the
//! server for the whole window, going through its whole life over and over.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::net::TcpSocket;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;

use super::{ANSWER_TIMEOUT, Percentiles, TOPIC, Target, stop_all, subscribe, subscribed_sessions};
use crate::client::Ws;
use crate::error::LoadError;
use crate::flavor::{Flavor, Incoming};

/// What to run.
#[derive(Debug, Clone)]
pub struct SlowConsumerParams {
    /// Reading subscribers when no session is stuck; one fewer when one is,
    /// so that the server has as many subscribers either way.
    pub subscribers: usize,
    /// Publications per second.
    pub rate: u32,
    /// Publishing before the measured window (not recorded).
    pub warmup: Duration,
    /// The measured window: publications sent in it are recorded.
    pub measure: Duration,
    /// `limits.max_queue_bytes` of the server under test: how much a stuck
    /// session may hold before it is closed.
    pub max_queue_bytes: usize,
    /// How often the stuck session writes a ping, which is how it learns
    /// that the server has closed it (the server's side answers a write to a
    /// closed connection with a reset).
    pub probe: Duration,
    /// Check every delivery's data.
    pub verify: bool,
}

/// Whether one session is stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stuck {
    /// Every subscriber reads.
    None,
    /// One subscriber never reads after subscribing, and is opened again whenever the server closes it.
    One,
}

impl Stuck {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Stuck::None => "all read",
            Stuck::One => "one stuck",
        }
    }
}

/// What was measured in one variant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SlowConsumerResult {
    /// Reading subscribers.
    pub readers: usize,
    /// Publications in the measured window.
    pub publications: u64,
    /// Deliveries to the readers of publications of the window.
    pub deliveries: u64,
    /// Delivery latency (publication sent → reader has it) over every delivery of the window.
    pub latency: Percentiles,
    /// How many times the server closed the stuck session (warm-up included).
    pub stuck_closes: u64,
    /// Length of the measured window in seconds.
    pub seconds: f64,
}

/// The filler that brings a publication to about 200 bytes of JSON.
const TEXT: &str = "a moderate stream of small messages, one topic, many readers, and perhaps \
                    one session that never reads again: what does that one cost everyone else";

/// Publication `seq`, sent `sent_us` microseconds after the scenario's start.
fn publication(seq: u64, sent_us: u64) -> String {
    format!(r#"{{"seq":{seq},"sent_us":{sent_us},"text":"{TEXT}"}}"#)
}

/// The number after `key` in `data`.
fn number(data: &str, key: &str) -> Option<u64> {
    let at = data.find(key)? + key.len();
    let digits = &data[at..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// What the readers share: the clock, where the window starts, the samples.
struct Shared {
    /// The clock publications carry.
    epoch: Instant,
    /// The first publication of the measured window (`u64::MAX` before it is known).
    first_measured: AtomicU64,
    /// Deliveries so far, of any publication.
    delivered: AtomicU64,
    /// Latencies of the window's deliveries, µs.
    samples: Mutex<Vec<u32>>,
    /// Times the stuck session was closed.
    stuck_closes: AtomicU64,
}

/// Subscribes the readers (and the stuck session, if any), publishes at
/// `params.rate` through the warm-up and the window, waits for every reader
/// to have every publication, and returns the latencies of the window's.
pub async fn slow_consumer(
    target: &Target,
    params: &SlowConsumerParams,
    stuck: Stuck,
) -> Result<SlowConsumerResult, LoadError> {
    let flavor = target.flavor;
    let connector = target.connector();
    let readers = match stuck {
        Stuck::None => params.subscribers,
        Stuck::One => params.subscribers.saturating_sub(1),
    };
    let sessions = subscribed_sessions(target, readers).await?;
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        first_measured: AtomicU64::new(u64::MAX),
        delivered: AtomicU64::new(0),
        samples: Mutex::new(Vec::new()),
        stuck_closes: AtomicU64::new(0),
    });
    let mut tasks: Vec<_> = sessions
        .into_iter()
        .map(|ws| tokio::spawn(read(ws, flavor, shared.clone(), params.verify)))
        .collect();
    if stuck == Stuck::One {
        let first = open_stuck(target, readers).await?;
        tasks.push(tokio::spawn(keep_stuck(
            *target,
            readers,
            first,
            params.probe,
            shared.clone(),
        )));
    }
    let mut publisher = connector.connect(params.subscribers + 1).await?;
    let published = publish(&mut publisher, flavor, params, &shared).await;
    let delivered = match &published {
        Ok(window) => wait_delivered(&shared, window.total * readers as u64).await,
        Err(_) => Ok(()),
    };
    stop_all(tasks).await?;
    let window = published?;
    delivered?;
    let samples = std::mem::take(&mut *shared.samples.lock());
    Ok(SlowConsumerResult {
        readers,
        publications: window.measured,
        deliveries: samples.len() as u64,
        latency: Percentiles::from_samples(samples),
        stuck_closes: shared.stuck_closes.load(Ordering::Acquire),
        seconds: window.seconds,
    })
}

/// What the publisher did.
struct Published {
    /// Every publication, warm-up included.
    total: u64,
    /// Publications of the measured window.
    measured: u64,
    /// Length of the window, seconds.
    seconds: f64,
}

/// Publishes at a fixed rate (a missed tick is made up at once, so the count
/// is the rate times the time) and reads the answers as they come.
async fn publish(
    ws: &mut Ws,
    flavor: Flavor,
    params: &SlowConsumerParams,
    shared: &Shared,
) -> Result<Published, LoadError> {
    let period = Duration::from_secs_f64(1.0 / f64::from(params.rate.max(1)));
    let warmup = (params.warmup.as_secs_f64() * f64::from(params.rate)).round() as u64;
    let measured = ((params.measure.as_secs_f64() * f64::from(params.rate)).round() as u64).max(1);
    let total = warmup + measured;
    shared.first_measured.store(warmup, Ordering::Release);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let (mut sent, mut answered) = (0u64, 0u64);
    let mut window_start = Instant::now();
    while answered < total {
        tokio::select! {
            _ = ticks.tick(), if sent < total => {
                if sent == warmup {
                    window_start = Instant::now();
                }
                let sent_us = shared.epoch.elapsed().as_micros() as u64;
                let frame = flavor.publish_frame(sent + 1, TOPIC, &publication(sent, sent_us));
                ws.send(Message::text(frame)).await?;
                sent += 1;
            }
            message = tokio::time::timeout(ANSWER_TIMEOUT, ws.next()) => {
                let message = message
                    .map_err(|_| LoadError::Timeout("a publication's answer"))?
                    .ok_or(LoadError::Closed("slow-consumer publishing"))??;
                let Message::Text(text) = message else { continue };
                match flavor.classify(text.as_str()) {
                    Incoming::Response { outcome: Ok(_), .. } => answered += 1,
                    Incoming::Response { outcome: Err(e), .. } => {
                        return Err(LoadError::Unexpected {
                            scenario: "slow-consumer",
                            detail: format!("a publication was answered {e}"),
                        });
                    }
                    Incoming::Ping => ws.send(Message::text(flavor.pong())).await?,
                    _ => {}
                }
            }
        }
    }
    Ok(Published {
        total,
        measured,
        seconds: window_start.elapsed().as_secs_f64(),
    })
}

/// Waits (polling, with a deadline) until `target` deliveries have been made.
async fn wait_delivered(shared: &Shared, target: u64) -> Result<(), LoadError> {
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    while shared.delivered.load(Ordering::Acquire) < target {
        if Instant::now() > deadline {
            return Err(LoadError::Timeout("every reader to receive every publication"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// One reader: records the latency of each publication of the window.
async fn read(mut ws: Ws, flavor: Flavor, shared: Arc<Shared>, verify: bool) -> Result<(), LoadError> {
    while let Some(message) = ws.next().await {
        let Message::Text(text) = message? else { continue };
        match flavor.classify(text.as_str()) {
            Incoming::Publication { data } => {
                let now_us = shared.epoch.elapsed().as_micros() as u64;
                let (Some(seq), Some(sent_us)) = (number(data, "\"seq\":"), number(data, "\"sent_us\":")) else {
                    return Err(unexpected(data));
                };
                if verify && !super::same_json(data, &publication(seq, sent_us)) {
                    return Err(unexpected(data));
                }
                if seq >= shared.first_measured.load(Ordering::Acquire) {
                    let latency = now_us.saturating_sub(sent_us).min(u64::from(u32::MAX)) as u32;
                    shared.samples.lock().push(latency);
                }
                shared.delivered.fetch_add(1, Ordering::AcqRel);
            }
            Incoming::Ping => ws.send(Message::text(flavor.pong())).await?,
            _ => {}
        }
    }
    Err(LoadError::Closed("slow-consumer reading"))
}

fn unexpected(data: &str) -> LoadError {
    LoadError::Unexpected {
        scenario: "slow-consumer",
        detail: format!("publication data changed on the way: {data}"),
    }
}

/// The receive buffer the stuck session asks the kernel for, so that little
/// of what the server sends it waits in the client's socket.
const STUCK_RECEIVE_BUFFER: u32 = 4096;

/// The segment size the stuck session announces. On loopback the server's
/// kernel grows a connection's send buffer in proportion to the segment size
/// (64 KiB there), up to `net.ipv4.tcp_wmem`'s 4 MiB, which at this
/// scenario's rate would take minutes to fill before anything waits in the
/// server's own queue; with ordinary Ethernet-sized segments it stays near
/// what it would be across a network, and the queue is what fills.
const STUCK_SEGMENT_SIZE: u32 = 1460;

/// Opens session `n` with a small receive buffer and subscribes it; it reads
/// nothing after the subscription's answer.
async fn open_stuck(target: &Target, n: usize) -> Result<Ws, LoadError> {
    let open = async {
        let socket = TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(STUCK_RECEIVE_BUFFER)?;
        socket2::SockRef::from(&socket).set_tcp_mss(STUCK_SEGMENT_SIZE)?;
        let stream = socket.connect(target.addr).await?;
        stream.set_nodelay(true)?;
        let url = format!("ws://{}{}", target.addr, target.flavor.path(n));
        let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await?;
        subscribe(&mut ws, target.flavor, 1).await?;
        Ok::<_, LoadError>(ws)
    };
    tokio::time::timeout(ANSWER_TIMEOUT, open)
        .await
        .map_err(|_| LoadError::Timeout("the stuck session's connection"))?
}

/// Keeps one stuck session on the server: never reads from it, writes a ping
/// every `probe` (a write to a connection the server has closed is answered
/// with a reset, which the next write reports), and opens a new one, stuck
/// again, once the server has closed it.
async fn keep_stuck(
    target: Target,
    n: usize,
    mut ws: Ws,
    probe: Duration,
    shared: Arc<Shared>,
) -> Result<(), LoadError> {
    let mut ticks = tokio::time::interval(probe);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
            shared.stuck_closes.fetch_add(1, Ordering::AcqRel);
            ws = open_stuck(&target, n).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publication_is_about_200_bytes_and_carries_its_numbers() {
        let data = publication(1234, 5_678_901);
        assert!((180..=240).contains(&data.len()), "{} bytes", data.len());
        assert_eq!(number(&data, "\"seq\":"), Some(1234));
        assert_eq!(number(&data, "\"sent_us\":"), Some(5_678_901));
        assert!(serde_json::from_str::<serde_json::Value>(&data).is_ok());
    }
}
