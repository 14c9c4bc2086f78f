//! Fan-out of a realistic 1 KiB JSON object to subscribers that offer
//! permessage-deflate (RFC 7692), or that do not: what goes over the wire per
//! delivery, what the server spends on it, and what an idle session costs.
//!
//! The subscribers speak through yawc, a WebSocket client that implements the
//! extension (tokio-tungstenite does not), each over a TCP stream that counts
//! the bytes it reads. The publisher is an ordinary uncompressed session.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use yawc::frame::{Frame, OpCode};

use super::fanout::{Counter, Window};
use super::{ANSWER_TIMEOUT, FanoutParams, FanoutResult, TOPIC, Target, same_json, stop_all};
use crate::error::LoadError;
use crate::flavor::{Flavor, Incoming};
use crate::procfs;

/// The published object: a chat platform's "message created" event (author,
/// member, mentions with their user objects, a reaction), 1,071 bytes of
/// compact JSON; [`publication`] makes each message of the stream its own.
pub const FIXTURE: &str = include_str!("../../fixtures/chat-message.json");

/// Whether the subscribers offer permessage-deflate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// No offer: plain frames.
    Off,
    /// A plain `permessage-deflate` offer, taken as the server answers it.
    Offered,
}

impl Compression {
    /// Both, plain first.
    pub const BOTH: [Compression; 2] = [Compression::Off, Compression::Offered];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Off => "plain",
            Compression::Offered => "deflate",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct DeflateParams {
    /// The fan-out: subscribers, warm-up and window.
    pub fanout: FanoutParams,
    /// Quiet time before each RSS reading.
    pub settle: Duration,
}

/// What was measured, for one [`Compression`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DeflateResult {
    /// The fan-out's deliveries, CPU and completion times.
    pub fanout: FanoutResult,
    /// Bytes the subscribers read from their sockets in the window: frames,
    /// headers and all.
    pub wire_bytes: u64,
    /// Server RSS before the first connection, KiB.
    pub rss_before_kib: u64,
    /// Server RSS with every subscriber connected, subscribed and idle, KiB.
    pub rss_idle_kib: u64,
    /// Server RSS when idle again after the window, KiB.
    pub rss_after_kib: u64,
    /// Subscribed sessions.
    pub sessions: usize,
}

impl DeflateResult {
    /// Bytes on the wire per delivery.
    pub fn bytes_per_delivery(&self) -> f64 {
        self.wire_bytes as f64 / self.fanout.deliveries.max(1) as f64
    }

    /// KiB per idle subscribed session before any publication.
    pub fn kib_per_session(&self) -> f64 {
        self.rss_idle_kib.saturating_sub(self.rss_before_kib) as f64 / self.sessions.max(1) as f64
    }

    /// KiB per idle subscribed session after the fan-out.
    pub fn kib_per_session_after(&self) -> f64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 / self.sessions.max(1) as f64
    }
}

/// What the authors of successive publications write.
const TEXTS: [&str; 6] = [
    "RC3 is on staging: please run the mobile checkout before 16:00 and report in the thread.",
    "Payments sandbox is slow again, give it a few seconds before you retry.",
    "Found it: the coupon field loses focus on Android when the keyboard opens. Ticket filed.",
    "Can someone with an iPhone SE try the address form? The save button is off screen for me.",
    "Release notes draft is in the doc, comments welcome until tomorrow noon.",
    "All green on the smoke suite, tagging rc3 as the candidate for Thursday.",
];

/// The people who write them.
const AUTHORS: [(&str, &str, &str); 3] = [
    ("1049220518771556383", "ada.lindqvist", "Ada Lindqvist"),
    ("1049221187305869372", "jonas.berg", "Jonas Berg"),
    ("1049222650732036137", "priya.raman", "Priya Raman"),
];

/// Publication `seq`: the fixture as one message of a conversation, with
/// its own `seq`, ids, time, author and text (a stream of identical
/// messages would flatter a compressor that keeps its context), compact.
pub fn publication(seq: u64) -> String {
    static PARSED: LazyLock<serde_json::Value> =
        LazyLock::new(|| serde_json::from_str(FIXTURE).expect("the fixture is JSON"));
    let mut value = PARSED.clone();
    let (author_id, username, name) = AUTHORS[(seq % AUTHORS.len() as u64) as usize];
    value["seq"] = seq.into();
    value["id"] = (1_314_207_764_510_834_688u64 + seq * 4_194_304).to_string().into();
    value["nonce"] = (1_314_207_762_115_887_104u64 + seq * 4_194_304).to_string().into();
    value["timestamp"] = format!(
        "2026-12-04T09:{:02}:{:02}.{:03}000+00:00",
        38 + seq / 60 % 20,
        seq % 60,
        seq * 37 % 1000
    )
    .into();
    value["content"] = TEXTS[(seq % TEXTS.len() as u64) as usize].into();
    value["author"]["id"] = author_id.into();
    value["author"]["username"] = username.into();
    value["author"]["global_name"] = name.into();
    value["reactions"][0]["count"] = (seq % 7 + 1).into();
    value.to_string()
}

/// Connects `params.fanout.subscribers` subscribers offering compression or
/// not, reads RSS once they idle, runs the fan-out window counting the bytes
/// they read, lets them idle and reads RSS again.
pub async fn deflate_fanout(
    target: &Target,
    params: &DeflateParams,
    compression: Compression,
) -> Result<DeflateResult, LoadError> {
    let flavor = target.flavor;
    let fanout = &params.fanout;
    let before = procfs::sample(target.pid)?;
    let wire = Arc::new(AtomicU64::new(0));
    let subscribers: Vec<Subscriber> = futures_util::stream::iter(0..fanout.subscribers)
        .map(|n| {
            let wire = wire.clone();
            async move {
                let mut ws = connect(target, n, compression, wire).await?;
                ws.send(Frame::text(flavor.subscribe_frame(1, TOPIC))).await?;
                wait_answer(&mut ws, flavor, 1).await?;
                Ok::<_, LoadError>(ws)
            }
        })
        .buffer_unordered(64)
        .try_collect()
        .await?;
    let mut publisher = target.connector().connect(fanout.subscribers).await?;
    tokio::time::sleep(params.settle).await;
    let idle = procfs::sample(target.pid)?;

    let counter = Arc::new(Counter::default());
    let tasks: Vec<_> = subscribers
        .into_iter()
        .map(|ws| tokio::spawn(receive(ws, flavor, counter.clone(), fanout.verify)))
        .collect();
    let window = Window {
        pid: target.pid,
        flavor,
        subscribers: fanout.subscribers as u64,
        params: fanout,
        counter: &counter,
    };
    let measured = window
        .run(&mut publisher, &publication, || wire.load(Ordering::Acquire))
        .await;
    let after = async {
        tokio::time::sleep(params.settle).await;
        procfs::sample(target.pid)
    }
    .await;
    stop_all(tasks).await?;
    let (fanout_result, wire_bytes) = measured?;
    Ok(DeflateResult {
        fanout: fanout_result,
        wire_bytes,
        rss_before_kib: before.rss_kib,
        rss_idle_kib: idle.rss_kib,
        rss_after_kib: after?.rss_kib,
        sessions: fanout.subscribers,
    })
}

/// A subscriber's session.
type Subscriber = yawc::WebSocket<Counted>;

/// Opens subscriber `n`.
async fn connect(
    target: &Target,
    n: usize,
    compression: Compression,
    wire: Arc<AtomicU64>,
) -> Result<Subscriber, LoadError> {
    let open = async {
        let stream = TcpStream::connect(target.addr).await?;
        stream.set_nodelay(true)?;
        let url = format!("ws://{}{}", target.addr, target.flavor.path(n));
        let url = url.parse().map_err(|e| LoadError::Unexpected {
            scenario: "fanout-deflate",
            detail: format!("{url}: {e}"),
        })?;
        let options = match compression {
            Compression::Off => yawc::Options::default(),
            Compression::Offered => yawc::Options::default().with_compression_level(yawc::CompressionLevel::default()),
        };
        let io = Counted {
            inner: stream,
            read: wire,
        };
        Ok::<_, LoadError>(yawc::WebSocket::handshake(url, io, options).await?)
    };
    tokio::time::timeout(ANSWER_TIMEOUT, open)
        .await
        .map_err(|_| LoadError::Timeout("a compressing subscriber's connection"))?
}

/// Reads until the answer to request `id`, which must not be an error.
async fn wait_answer(ws: &mut Subscriber, flavor: Flavor, id: u64) -> Result<(), LoadError> {
    loop {
        let frame = tokio::time::timeout(ANSWER_TIMEOUT, ws.next())
            .await
            .map_err(|_| LoadError::Timeout("a subscription"))?
            .ok_or(LoadError::Closed("a subscription"))?;
        let Some(text) = text_of(&frame)? else { continue };
        if let Incoming::Response { id: got, outcome } = flavor.classify(text)
            && got == id
        {
            return outcome.map(|_| ()).map_err(|e| LoadError::Unexpected {
                scenario: "fanout-deflate",
                detail: format!("subscription answered {e}"),
            });
        }
    }
}

/// One subscriber: counts publications (yawc answers pings itself).
async fn receive(mut ws: Subscriber, flavor: Flavor, counter: Arc<Counter>, verify: bool) -> Result<(), LoadError> {
    while let Some(frame) = ws.next().await {
        let Some(text) = text_of(&frame)? else { continue };
        if let Incoming::Publication { data } = flavor.classify(text) {
            if verify {
                check(data)?;
            }
            counter.delivered_one();
        }
    }
    Err(LoadError::Closed("fanout-deflate"))
}

fn text_of(frame: &Frame) -> Result<Option<&str>, LoadError> {
    if frame.opcode() != OpCode::Text {
        return Ok(None);
    }
    std::str::from_utf8(frame.payload())
        .map(Some)
        .map_err(|e| LoadError::Unexpected {
            scenario: "fanout-deflate",
            detail: format!("a text frame is not UTF-8: {e}"),
        })
}

fn check(data: &str) -> Result<(), LoadError> {
    let seq = serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v["seq"].as_u64());
    match seq {
        Some(seq) if same_json(data, &publication(seq)) => Ok(()),
        _ => Err(LoadError::Unexpected {
            scenario: "fanout-deflate",
            detail: format!("publication data changed on the way: {data}"),
        }),
    }
}

/// A TCP stream that adds every byte it reads to a shared count.
struct Counted {
    inner: TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let filled = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.read
                .fetch_add((buf.filled().len() - filled) as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
