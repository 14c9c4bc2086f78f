//! The connection task: connects, serves one connection at a time, and
//! reconnects by the policy until the client is closed.
//!
//! The task is the only owner of the socket. It waits on four things at
//! once: a frame from the server, frames that calls and handlers queued, the
//! ping timer, and the client's shutdown. It never waits for the
//! application: pushes go to bounded buffers, handlers run in their own
//! tasks, and answers to calls complete their callers' futures.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_protocol::codes::{self, CloseClass, close_class};
use switchboard_protocol::frame;
use switchboard_protocol::methods::{self, Welcome};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval, timeout, timeout_at};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::header::{AUTHORIZATION, HeaderName, HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::Error;
use crate::inbound::Connection;
use crate::refresher::spawn_refresher;
use crate::shared::{Conn, Pending, Shared};
use crate::state::ConnectionState;
use crate::stats::bump;
use crate::token::TokenTransport;
use crate::topic::Topic;

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Frames a connection may queue before callers wait for room.
const OUTBOUND_FRAMES: usize = 256;
/// Frames written before one flush.
const WRITE_BATCH: usize = 64;
/// How long a close handshake may take.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// How one connection ended.
#[derive(Debug)]
pub(crate) enum Ending {
    /// The client is being closed.
    Shutdown,
    /// The server closed, with `reconnect` from its `rpc.disconnect` if it sent one.
    Closed {
        code: Option<u16>,
        reason: String,
        reconnect: Option<bool>,
    },
    /// The connection broke (an I/O error, or no frame for a whole ping interval).
    Lost(String),
}

/// A connection just opened: the socket and what the server said first.
pub(crate) struct Opened {
    socket: Socket,
    welcome: Option<Welcome>,
    /// The first frame, when it was not a welcome.
    early: Option<String>,
    token: Option<String>,
}

/// Runs until the client is closed for good. `ready` learns how the first
/// connection attempt went.
pub(crate) async fn run(shared: Arc<Shared>, ready: oneshot::Sender<Result<(), Error>>) {
    let mut ready = Some(ready);
    let mut failures: u32 = 0;
    let mut plain = false;
    let policy = shared.config.reconnect.clone();
    loop {
        shared.set_state(ConnectionState::Connecting);
        let opened = tokio::select! {
            opened = Box::pin(open(&shared, &mut plain)) => opened,
            () = shared.shutdown.cancelled() => {
                close_for_good(&shared, Some(codes::close::NORMAL), "closed by the client".into(), ready.take());
                return;
            }
        };
        let (code, reason, class) = match opened {
            Ok(opened) => {
                failures = 0;
                let ending = Box::pin(serve(&shared, opened, &mut ready)).await;
                tracing::debug!(?ending, "connection ended");
                match ending {
                    Ending::Shutdown => {
                        let reason = "closed by the client".to_owned();
                        close_for_good(&shared, Some(codes::close::NORMAL), reason, ready.take());
                        return;
                    }
                    Ending::Closed {
                        code,
                        reason,
                        reconnect,
                    } => {
                        let mut class = code.map_or(CloseClass::Reconnect, close_class);
                        if reconnect == Some(false) {
                            class = CloseClass::Terminal;
                        }
                        (code, reason, class)
                    }
                    Ending::Lost(reason) => (None, reason, CloseClass::Reconnect),
                }
            }
            Err(error) => {
                if let Some(tx) = ready.take() {
                    close_for_good(&shared, None, error.to_string(), None);
                    let _ = tx.send(Err(error));
                    return;
                }
                failures += 1;
                let class = if is_terminal(&error, shared.config.token.is_source()) {
                    CloseClass::Terminal
                } else {
                    CloseClass::Reconnect
                };
                let code = match &error {
                    Error::Closed { code, .. } => *code,
                    _ => None,
                };
                (code, error.to_string(), class)
            }
        };
        let Some(delay) = policy.delay(class, failures) else {
            close_for_good(&shared, code, reason, None);
            return;
        };
        fail_pending(&shared, None);
        shared.set_state(ConnectionState::Disconnected {
            code,
            reason,
            will_retry: true,
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.shutdown.cancelled() => {
                close_for_good(&shared, Some(codes::close::NORMAL), "closed by the client".into(), None);
                return;
            }
        }
    }
}

/// Whether a failed attempt would fail the same way again: a terminal close
/// code, or a refused token that no token source can replace.
fn is_terminal(error: &Error, token_source: bool) -> bool {
    match error {
        Error::Closed { code: Some(code), .. } => close_class(*code) == CloseClass::Terminal,
        Error::Connect(e) => match error.http_status() {
            Some(status) => (status == 401 || status == 403) && !token_source,
            None => matches!(**e, tungstenite::Error::Url(_)),
        },
        Error::InvalidUrl(_) | Error::InvalidHeader(_) => true,
        _ => false,
    }
}

/// Ends the client: fails what waits, reports the last state and ends
/// every stream.
fn close_for_good(
    shared: &Shared,
    code: Option<u16>,
    reason: String,
    ready: Option<oneshot::Sender<Result<(), Error>>>,
) {
    fail_pending(shared, Some((code, reason.clone())));
    if let Some(tx) = ready {
        let _ = tx.send(Err(Error::Closed {
            code,
            reason: reason.clone(),
        }));
    }
    {
        let pushes = shared.pushes.lock();
        for t in pushes.topics.values() {
            t.buffer.close();
        }
        for b in pushes.methods.values() {
            b.close();
        }
    }
    let mut states = shared.states.lock();
    states.set(ConnectionState::Disconnected {
        code,
        reason,
        will_retry: false,
    });
    states.end();
}

/// Drops the connection from the link and fails every call waiting on it:
/// with `Disconnected`, or with `Closed` when the client is closed for good.
fn fail_pending(shared: &Shared, closed: Option<(Option<u16>, String)>) {
    let pending = {
        let mut link = shared.link.lock();
        link.conn = None;
        if closed.is_some() {
            link.closed = closed.clone();
        }
        std::mem::take(&mut link.pending)
    };
    for p in pending.into_values() {
        p.fail(|| match &closed {
            Some((code, reason)) => Error::Closed {
                code: *code,
                reason: reason.clone(),
            },
            None => Error::Disconnected,
        });
    }
}

/// Opens a connection and reads the welcome, within the connect timeout.
async fn open(shared: &Shared, plain: &mut bool) -> Result<Opened, Error> {
    let config = &shared.config;
    let deadline = Instant::now() + config.connect_timeout;
    let token = timeout_at(deadline, config.token.get())
        .await
        .map_err(|_| Error::Timeout(config.connect_timeout))??;
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_message_size));
    let (mut socket, response) = loop {
        let request = handshake_request(shared, token.as_deref(), *plain)?;
        let tls = config.tls.clone().map(tokio_tungstenite::Connector::Rustls);
        let attempt = tokio_tungstenite::connect_async_tls_with_config(request, Some(ws_config), true, tls);
        match timeout_at(deadline, attempt).await {
            Err(_) => return Err(Error::Timeout(config.connect_timeout)),
            Ok(Ok(pair)) => break pair,
            // A server that ignores subprotocols (any plain JSON-RPC server):
            // talk to it without one.
            Ok(Err(tungstenite::Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(
                SubProtocolError::NoSubProtocol,
            )))) if !*plain => *plain = true,
            Ok(Err(e)) => return Err(Error::Connect(Box::new(e))),
        }
    };
    let switchboard = response
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .is_some_and(|v| v.as_bytes() == methods::PROTOCOL_VERSION.as_bytes());
    let (mut welcome, mut early) = (None, None);
    // A switchboard server sends `rpc.welcome` first; other servers send
    // nothing until asked, so nothing is awaited from them.
    if switchboard {
        loop {
            let next = timeout_at(deadline, socket.next())
                .await
                .map_err(|_| Error::Timeout(config.connect_timeout))?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    shared.stats.received(text.len());
                    match parse_welcome(&text) {
                        Some(w) => welcome = Some(w),
                        None => early = Some(text.as_str().to_owned()),
                    }
                    break;
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = close_parts(frame.as_ref());
                    return Err(Error::Closed { code, reason });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Error::Connect(Box::new(e))),
                None => return Err(Error::Connect(Box::new(tungstenite::Error::ConnectionClosed))),
            }
        }
    }
    Ok(Opened {
        socket,
        welcome,
        early,
        token,
    })
}

fn parse_welcome(text: &str) -> Option<Welcome> {
    #[derive(serde::Deserialize)]
    struct Frame {
        method: String,
        params: Welcome,
    }
    serde_json::from_str::<Frame>(text)
        .ok()
        .filter(|f| f.method == methods::WELCOME)
        .map(|f| f.params)
}

fn close_parts(frame: Option<&CloseFrame>) -> (Option<u16>, String) {
    match frame {
        Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
        None => (None, String::new()),
    }
}

/// The handshake request: the URL, the subprotocol, the token and extra headers.
fn handshake_request(shared: &Shared, token: Option<&str>, plain: bool) -> Result<Request, Error> {
    let config = &shared.config;
    let mut request = config
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::InvalidUrl(e.to_string()))?;
    let header = |value: String| {
        HeaderValue::from_str(&value).map_err(|_| Error::InvalidHeader("the token is not a valid header value".into()))
    };
    let headers = request.headers_mut();
    let in_subprotocol = config.token_transport == TokenTransport::Subprotocol && !plain;
    if !plain {
        let mut protocols = methods::PROTOCOL_VERSION.to_owned();
        if let Some(token) = token.filter(|_| in_subprotocol) {
            protocols.push_str(", bearer.");
            protocols.push_str(token);
        }
        headers.insert(SEC_WEBSOCKET_PROTOCOL, header(protocols)?);
    }
    if let Some(token) = token.filter(|_| !in_subprotocol) {
        headers.insert(AUTHORIZATION, header(format!("Bearer {token}"))?);
    }
    for (name, value) in &config.headers.0 {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Error::InvalidHeader(name.clone()))?;
        let value = HeaderValue::from_str(value).map_err(|_| Error::InvalidHeader(name.to_string()))?;
        headers.append(name, value);
    }
    Ok(request)
}

/// Serves one connection until it ends. Once it is usable, tells `ready`
/// (the first `connect`), or counts a reconnect.
async fn serve(shared: &Arc<Shared>, opened: Opened, ready: &mut Option<oneshot::Sender<Result<(), Error>>>) -> Ending {
    let Opened {
        mut socket,
        welcome,
        early,
        token,
    } = opened;
    let (tx, mut rx) = mpsc::channel::<String>(OUTBOUND_FRAMES);
    let mut conn = Connection {
        shared,
        tx: tx.clone(),
        out: Vec::new(),
        handlers: JoinSet::new(),
        running: HashMap::new(),
        by_task: HashMap::new(),
        disconnect: None,
        expiring: None,
    };
    let max_batch = welcome.as_ref().map(|w| w.limits.max_batch);
    // The first message renews the subscriptions (and resumes the personal
    // topic, whose pushes the server holds back until then).
    if let Some(welcome) = welcome {
        let frames = conn.welcomed(welcome);
        if let Err(e) = write(&mut socket, shared, frames).await {
            return Ending::Lost(e.to_string());
        }
    }
    shared.link.lock().conn = Some(Conn { tx, max_batch });
    shared.set_state(ConnectionState::Connected);
    match ready.take() {
        Some(tx) => {
            let _ = tx.send(Ok(()));
        }
        None => bump(&shared.stats.reconnects),
    }
    let (_refresher, expiring) = spawn_refresher(shared, token.as_deref()).unzip();
    conn.expiring = expiring;
    if let Some(text) = early {
        conn.on_text(&text);
    }

    let ping_every = shared.config.ping_interval;
    let mut ping = ping_every.map(|every| {
        let mut i = tokio::time::interval_at(Instant::now() + every, every);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let mut last_seen = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    let ending = loop {
        if !conn.out.is_empty() {
            let frames = std::mem::take(&mut conn.out);
            if let Err(e) = write(&mut socket, shared, frames).await {
                break Ending::Lost(e.to_string());
            }
        }
        tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => {
                let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                let _ = timeout(CLOSE_WAIT, async {
                    socket.close(Some(close)).await?;
                    while socket.next().await.is_some() {}
                    Ok::<_, tungstenite::Error>(())
                }).await;
                break Ending::Shutdown;
            }
            Some(first) = rx.recv() => {
                let mut frames = vec![first];
                while frames.len() < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(f) => frames.push(f),
                        Err(_) => break,
                    }
                }
                if let Err(e) = write(&mut socket, shared, frames).await {
                    break Ending::Lost(e.to_string());
                }
            }
            incoming = socket.next() => {
                last_seen = Instant::now();
                match incoming {
                    Some(Ok(Message::Text(text))) => {
                        shared.stats.received(text.len());
                        conn.on_text(text.as_str());
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let (code, mut reason) = close_parts(frame.as_ref());
                        let announced = conn.disconnect.take();
                        if reason.is_empty() {
                            reason = announced.as_ref().map(|d| d.reason.clone()).unwrap_or_default();
                        }
                        // Completes the close handshake (tungstenite answers the close frame).
                        let _ = timeout(CLOSE_WAIT, async { while socket.next().await.is_some() {} }).await;
                        break Ending::Closed { code, reason, reconnect: announced.map(|d| d.reconnect) };
                    }
                    Some(Ok(Message::Binary(_))) => {
                        tracing::warn!("ignored a binary frame: switchboard speaks JSON text frames");
                        bump(&shared.stats.errors);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break Ending::Lost(e.to_string()),
                    None => break Ending::Lost("the connection closed without a close frame".into()),
                }
            }
            Some(done) = conn.handlers.join_next_with_id(), if !conn.handlers.is_empty() => {
                let id = match done {
                    Ok((id, _)) => id,
                    Err(e) => e.id(),
                };
                // The entry may be a newer call's that reused the id: only this task's goes.
                if let Some(key) = conn.by_task.remove(&id)
                    && conn.running.get(&key).is_some_and(|(task, _)| *task == id)
                {
                    conn.running.remove(&key);
                }
            }
            () = tick(&mut ping) => {
                if ping_sent.is_some_and(|sent| last_seen < sent) {
                    break Ending::Lost("no answer to a ping within the ping interval".into());
                }
                ping_sent = Some(Instant::now());
                if let Err(e) = socket.send(Message::Ping(Default::default())).await {
                    break Ending::Lost(e.to_string());
                }
            }
        }
    };
    // Handlers of this connection can no longer answer: stop them.
    conn.handlers.abort_all();
    ending
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Writes `frames`, then flushes once.
async fn write(socket: &mut Socket, shared: &Shared, frames: Vec<String>) -> Result<(), tungstenite::Error> {
    for frame in frames {
        shared.stats.sent(frame.len());
        socket.feed(Message::text(frame)).await?;
    }
    socket.flush().await
}

impl Connection<'_> {
    /// Takes in a welcome: remembers it, sets up the personal topic, and
    /// returns the first frames to send: the `rpc.subscribe` that renews
    /// every wanted topic, and before it, when the personal topic has no
    /// position yet, an `rpc.ping` notification.
    ///
    /// The ping is there because the server holds the personal topic's
    /// pushes until the first message, and a first `rpc.subscribe` of it
    /// *without* a position drops what was held (the answer's offset counts
    /// them as seen). Any other first message releases them instead; the
    /// subscribe that follows then only reads the position.
    fn welcomed(&mut self, welcome: Welcome) -> Vec<String> {
        let shared = self.shared;
        let resume = shared.welcome.lock().is_some();
        let mut pushes = shared.pushes.lock();
        if shared.config.personal_topic {
            let personal = format!("user:{}", welcome.user);
            if let Some(old) = pushes.personal.take().filter(|old| *old != personal) {
                // Another user now: the old personal topic is not ours any more.
                if let Some(t) = pushes.topics.remove(&old) {
                    t.buffer.close();
                }
            }
            let capacity = shared.config.buffer;
            pushes
                .topics
                .entry(personal.clone())
                .or_insert_with(|| Topic::new(capacity, true))
                .wanted = true;
            pushes.personal = Some(personal);
        }
        *shared.welcome.lock() = Some(welcome);
        let mut topics = Vec::new();
        let mut requests = Vec::new();
        for (name, t) in pushes.topics.iter().filter(|(_, t)| t.wanted) {
            topics.push((name.clone(), t.position.is_some()));
            requests.push(methods::TopicRequest {
                topic: name.clone(),
                since: t.position.clone(),
            });
        }
        let mut frames = Vec::new();
        let personal_unknown = pushes
            .personal
            .as_ref()
            .and_then(|p| pushes.topics.get(p))
            .is_some_and(|t| t.position.is_none());
        if personal_unknown {
            frames.push(frame::write_notification(methods::PING, None));
        }
        drop(pushes);
        if requests.is_empty() {
            return frames;
        }
        let id = shared.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Ok(params) = serde_json::to_string(&methods::SubscribeParams { topics: requests }) else {
            return frames;
        };
        shared.link.lock().pending.insert(
            id,
            Pending::Subscribe {
                topics,
                resume,
                reply: None,
            },
        );
        frames.push(frame::write_request(id, methods::SUBSCRIBE, Some(&params)));
        frames
    }
}
