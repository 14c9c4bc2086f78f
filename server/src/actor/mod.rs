//! The session actor: one task per WebSocket connection.
//!
//! The task owns the socket and is its only writer. It is one `select!`
//! over, in this order: what its queue signals (a close request from a slow
//! consumer or a disconnect, shutdown, a call's deadline moved earlier), the
//! one timer set to the earliest of its deadlines (ping and pong, drain,
//! token expiry, the personal topic's hold, the calls to the client waiting
//! in the pending table), the handlers it runs (`handlers.rs`), and the
//! socket: queued frames written
//! out, then the client's next frame read. Asynchronous handlers run on this
//! task between reading and writing, so the reader never waits for one;
//! answers to the server's own calls are matched in the pending table as
//! they arrive. Every answer goes through the session's queue, so whatever
//! a session produces, itself or for others, counts against the same bound.

mod handlers;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use switchboard_protocol::codes::close;
use switchboard_protocol::{ErrorObject, codes, frame, methods};
use tokio::time::Instant;
use tracing::Instrument;

use crate::rpc::caller::Caller;
use crate::rpc::dispatch::Outcome;
use handlers::Handlers;

use crate::session::{CloseRequest, Delivery, OutboundQueue, SessionHandle, Signal};
use crate::state::GatewayShared;
use crate::ws::{CLOSE_TIMEOUT, Incoming, ReadError, Socket};

/// Frames handled in one go before answers are flushed and timers looked at.
const READ_BATCH: usize = 64;

/// Why the session loop ended.
enum Ending {
    /// The connection dropped.
    ClientGone,
    /// The client sent a close frame (with this code, if any).
    ClientClosed(Option<u16>),
    /// A close was requested through the queue (disconnect, slow consumer, protocol error).
    Requested,
    /// The gateway is shutting down.
    Shutdown,
    /// The client stopped answering pings.
    PingTimeout,
    /// The client broke the protocol; close with this code.
    Protocol(u16),
    /// The session's token expired.
    Expired,
}

/// A token bucket: `rate` messages per second, up to `burst` at once.
struct Bucket {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
    refused_in_a_row: u32,
}

impl Bucket {
    fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            tokens: burst,
            last: Instant::now(),
            rate: f64::from(rate),
            burst,
            refused_in_a_row: 0,
        }
    }

    /// Takes a token for a frame that arrived at `now`.
    fn take(&mut self, now: Instant) -> bool {
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused_in_a_row = 0;
            true
        } else {
            self.refused_in_a_row += 1;
            false
        }
    }
}

fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// When to look at the token's expiry next: at the warning time, or at
/// expiry once the warning for this expiry was sent.
fn expiry_check(expires_at: u64, warn_before: Duration, warned_for: Option<u64>) -> Instant {
    let at = Duration::from_secs(expires_at);
    let at = if warned_for == Some(expires_at) {
        at
    } else {
        at.saturating_sub(warn_before)
    };
    // An absurd `exp` (past the year 292 billion) would overflow the clock
    // and panic the session task, leaving the session registered: look again
    // in a century instead.
    Instant::now()
        + at.saturating_sub(unix_now())
            .min(Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Runs a session until it ends, then removes it everywhere.
pub(crate) async fn run(mut socket: Socket, session: SessionHandle, gw: Arc<GatewayShared>, conn_id: usize) {
    let span = tracing::info_span!("session", session = %session.id(), user = %session.user());
    async move {
        gw.hub.register(&session).await;
        if gw.shutdown.is_cancelled() {
            session.shared.queue.shut_down();
        }
        tracing::debug!("connected");
        let ending = serve(&mut socket, &session, &gw, conn_id).await;
        finish(&mut socket, &session, ending).await;
        session.shared.queue.close(CloseRequest {
            code: close::NORMAL,
            reason: String::new(),
            flush_first: false,
        });
        session.shared.pending.close();
        gw.hub.unregister(&session).await;
        tracing::debug!("disconnected");
    }
    .instrument(span)
    .await;
}

/// The session's deadlines; the one timer is set to the earliest of them
/// (and of the calls to the client waiting in the pending table). A new
/// deadline is one more field here, one more entry in [`earliest`](Self::earliest),
/// and one more check in the timer's branch of [`serve`].
struct Deadlines {
    /// The next ping, or the end of the wait for its pong.
    ping: Instant,
    /// When the last ping was sent, while its pong (or any frame) is awaited.
    ping_sent: Option<Instant>,
    /// The end of the shutdown grace, once draining.
    drain: Option<Instant>,
    /// When to look at the token's expiry next (the warning, then the end).
    expiry: Option<Instant>,
    /// The end of the personal topic's hold.
    hold: Option<Instant>,
}

impl Deadlines {
    fn earliest(&self, calls: Option<Instant>) -> Instant {
        [self.drain, self.expiry, self.hold, calls]
            .into_iter()
            .flatten()
            .fold(self.ping, Instant::min)
    }
}

async fn serve(socket: &mut Socket, session: &SessionHandle, gw: &Arc<GatewayShared>, conn_id: usize) -> Ending {
    let limits = &gw.config.limits;

    // The personal topic holds its pushes back briefly, so that a client can
    // resume it with `rpc.subscribe {since}` as its first message and get
    // missed and new pushes in order.
    let personal = gw
        .config
        .personal_topics
        .then(|| crate::hub::personal_topic(session.user()));
    let mut hold = None;
    if let Some(topic) = &personal {
        let held = gw.hub.stream_policy(topic).is_some();
        let delivery = if held {
            Delivery::Held {
                frames: Vec::new(),
                bytes: 0,
                claimed: false,
            }
        } else {
            Delivery::Plain
        };
        if gw.hub.subscribe_local(session, topic, delivery).is_ok() && held {
            hold = Some(Instant::now() + Duration::from_millis(limits.personal_hold_ms));
        }
        gw.hub.interest_settled().await;
    }
    // First frame: the welcome. The personal topic's pushes are held back until after it.
    // (Built here, after the last wait, so it takes no room in the session's future.)
    {
        let welcome = methods::Welcome {
            session: session.id().to_string(),
            user: session.user().to_owned(),
            protocol: methods::PROTOCOL_VERSION.to_owned(),
            limits: methods::Limits {
                max_message_size: limits.max_message_size,
                max_batch: limits.max_batch,
                max_in_flight: limits.max_in_flight,
                ping_interval_ms: limits.ping_interval_ms,
                max_subscriptions: limits.max_subscriptions,
            },
        };
        let _ = session.notify(methods::WELCOME, &welcome);
    }

    let queue = &session.shared.queue;
    // Lent to every frame this session dispatches.
    let caller = Caller::for_session(session.clone(), gw.hub.clone(), conn_id);
    let mut handlers = Handlers::default();
    let mut bucket = Bucket::new(limits.rate_per_second, limits.rate_burst);
    let warn_before = gw.auth.as_ref().map(|a| a.expiry_warning());
    let mut warned_for = None;
    let mut deadlines = Deadlines {
        ping: Instant::now() + limits.ping_interval(),
        ping_sent: None,
        drain: None,
        expiry: None,
        hold,
    };
    let timer = tokio::time::sleep_until(deadlines.ping);
    tokio::pin!(timer);

    loop {
        if let Some(w) = warn_before {
            deadlines.expiry = session.expires_at().map(|exp| expiry_check(exp, w, warned_for));
        }
        if deadlines.drain.is_some() && handlers.len() == 0 {
            return Ending::Shutdown;
        }
        let at = deadlines.earliest(session.shared.pending.next_deadline());
        if timer.deadline() != at {
            timer.as_mut().reset(at);
        }
        tokio::select! {
            biased;
            signal = std::future::poll_fn(|cx| queue.poll_signal(cx)) => match signal {
                Signal::Close => return Ending::Requested,
                Signal::Shutdown => {
                    deadlines.drain.get_or_insert_with(|| Instant::now() + limits.shutdown_grace());
                }
                // A call made elsewhere is due before the timer: the loop sets it again.
                Signal::DeadlineMoved => {}
            },
            // The timer before the socket, so that a session kept busy by its
            // client still meets its deadlines.
            () = &mut timer => {
                let now = Instant::now();
                if deadlines.drain.is_some_and(|at| at <= now) {
                    return Ending::Shutdown;
                }
                if deadlines.ping <= now {
                    if deadlines.ping_sent.is_some() {
                        return Ending::PingTimeout;
                    }
                    // The ping's deadline becomes the wait for its pong.
                    deadlines.ping_sent = Some(now);
                    deadlines.ping = now + limits.pong_timeout();
                    socket.push_ping();
                    handlers.trim();
                }
                if deadlines.expiry.is_some_and(|at| at <= now)
                    && let Some(exp) = session.expires_at()
                {
                    if unix_now().as_secs() >= exp {
                        return Ending::Expired;
                    }
                    if let Some(w) = warn_before
                        && warned_for != Some(exp)
                        && unix_now() + w >= Duration::from_secs(exp)
                    {
                        warned_for = Some(exp);
                        let _ = session.notify(
                            methods::EXPIRING,
                            &methods::Expiry {
                                expires_at_ms: Some(exp.saturating_mul(1000)),
                            },
                        );
                    }
                }
                expire_calls(session, now);
                if deadlines.hold.is_some_and(|at| at <= now) {
                    deadlines.hold = None;
                    if let Some(topic) = &personal {
                        session.release_hold(topic);
                    }
                }
            }
            // Handlers before the socket, so that what they answer leaves in the next write.
            // Every handler that can go on runs, and all that end answer in this turn.
            () = std::future::poll_fn(|cx| handlers.poll_answers(cx, |answer| {
                let _ = session.send_frame(answer);
            })), if handlers.len() > 0 => {}
            ready = std::future::poll_fn(|cx| poll_socket(socket, queue, cx)) => {
                if let Err(e) = ready {
                    return classify_error(e);
                }
                // Every frame that has already arrived (up to a bound) is
                // handled before the next write, so that the answers it calls
                // for leave together; one look at the clock for all of them.
                let now = Instant::now();
                for _ in 0..READ_BATCH {
                    let Poll::Ready(incoming) = socket.try_next() else { break };
                    // Any frame from the client shows it is alive.
                    if let Some(sent) = deadlines.ping_sent.take() {
                        deadlines.ping = sent + limits.ping_interval();
                    }
                    match incoming {
                        Ok(Incoming::Close(code)) => return Ending::ClientClosed(code),
                        Ok(Incoming::Text(text)) => {
                            if !bucket.take(now) && !over_rate(session, text) {
                                if bucket.refused_in_a_row >= limits.rate_abuse_close {
                                    return Ending::Protocol(close::RATE_LIMITED);
                                }
                            } else {
                                if deadlines.hold.is_some() && !text.contains(methods::SUBSCRIBE) {
                                    deadlines.hold = None;
                                    if let Some(topic) = &personal {
                                        session.release_hold(topic);
                                    }
                                }
                                handle_text(session, gw, &caller, text, &mut handlers);
                            }
                        }
                        Ok(Incoming::Binary(_)) => {
                            let error = ErrorObject::with_data(
                                codes::INVALID_REQUEST,
                                serde_json::json!({"reason": "binary frames are not supported; send JSON-RPC as text frames"}),
                            );
                            let _ = session.send_frame(frame::write_error(None, &error));
                        }
                        Ok(Incoming::Ping | Incoming::Pong) => {}
                        Err(e) => return classify_error(e),
                    }
                }
            }
        }
    }
}

/// A frame that arrived past the rate limit. Answers to the server's own
/// calls always get through (returns true: handle it); requests are refused
/// with `-32002`; notifications are dropped.
fn over_rate(session: &SessionHandle, text: &str) -> bool {
    let error = || {
        ErrorObject::with_data(
            codes::RATE_LIMITED,
            serde_json::json!({"reason": "too many messages; slow down"}),
        )
    };
    match frame::parse(text) {
        frame::Frame::Single(frame::Message::Response { .. }) => return true,
        frame::Frame::Single(frame::Message::Request { id, .. }) => {
            let _ = session.send_frame(frame::write_error(Some(id.get()), &error()));
        }
        frame::Frame::Single(frame::Message::Notification { .. }) => {}
        _ => {
            let _ = session.send_frame(frame::write_error(None, &error()));
        }
    }
    metrics::counter!("switchboard_rate_limited_total").increment(1);
    false
}

fn handle_text(session: &SessionHandle, gw: &GatewayShared, caller: &Caller, text: &str, handlers: &mut Handlers) {
    match gw.dispatcher.handle_text(caller, text) {
        Outcome::Reply(reply) => {
            let _ = session.send_frame(reply);
        }
        Outcome::Silent => {}
        Outcome::Later(future) => handlers.push(future),
    }
}

/// The socket's side of the session, as one event source: what is queued
/// is written out ([`poll_write_queued`]), and then the socket is read until
/// a whole frame has arrived. Ready when the client's next frame (or the end
/// of the connection) can be taken with [`Socket::try_next`], or with a write
/// error; a write that cannot go on waits without holding the reading up.
fn poll_socket(socket: &mut Socket, queue: &OutboundQueue, cx: &mut Context<'_>) -> Poll<Result<(), ReadError>> {
    if let Poll::Ready(Err(e)) = poll_write_queued(socket, queue, cx) {
        return Poll::Ready(Err(ReadError::Io(e)));
    }
    socket.poll_ready(cx).map(Ok)
}

/// Queued frames go into the socket's outbox once the last write is out
/// (frames a slow client has not taken yet stay in the queue, which is
/// bounded), and the outbox is written. Ready once both are empty.
fn poll_write_queued(socket: &mut Socket, queue: &OutboundQueue, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
    loop {
        if socket.is_flushed() && queue.poll_frames(cx).is_ready() {
            queue.drain(|frame| socket.push(frame));
        }
        if socket.is_flushed() {
            return Poll::Ready(Ok(()));
        }
        // Written: frames queued meanwhile go next.
        std::task::ready!(socket.poll_flush(cx))?;
    }
}

/// Times out the server's calls whose deadline has passed and tells their
/// clients to stop.
fn expire_calls(session: &SessionHandle, now: Instant) {
    if session.shared.pending.next_deadline().is_some_and(|at| at <= now) {
        for id in session.shared.pending.expire(now) {
            session.cancel(id);
        }
    }
}

/// Writes every queued frame and the outbox, until both are empty.
async fn write_queued(socket: &mut Socket, session: &SessionHandle) -> std::io::Result<()> {
    std::future::poll_fn(|cx| poll_write_queued(socket, &session.shared.queue, cx)).await
}

fn classify_error(error: ReadError) -> Ending {
    match error.close_code() {
        Some(code) => {
            tracing::debug!(%error, "protocol error");
            Ending::Protocol(code)
        }
        None => {
            tracing::debug!(%error, "connection error");
            Ending::ClientGone
        }
    }
}

/// Sends what the ending calls for: remaining frames, then a close frame.
async fn finish(socket: &mut Socket, session: &SessionHandle, ending: Ending) {
    let (code, reason) = match ending {
        Ending::ClientGone => return,
        Ending::ClientClosed(code) => {
            socket.answer_close(code, CLOSE_TIMEOUT).await;
            return;
        }
        Ending::Requested => {
            let Some(request) = session.shared.queue.close_request() else {
                return;
            };
            if request.flush_first {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, write_queued(socket, session)).await;
            }
            (request.code, request.reason)
        }
        Ending::Shutdown => {
            let params = methods::Disconnect {
                code: close::SHUTDOWN,
                reason: close::reason(close::SHUTDOWN).to_owned(),
                reconnect: true,
            };
            let _ = session.notify(methods::DISCONNECT, &params);
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, write_queued(socket, session)).await;
            (close::SHUTDOWN, close::reason(close::SHUTDOWN).to_owned())
        }
        Ending::PingTimeout => (close::PING_TIMEOUT, close::reason(close::PING_TIMEOUT).to_owned()),
        Ending::Protocol(code) => (code, close::reason(code).to_owned()),
        Ending::Expired => {
            let params = methods::Disconnect {
                code: close::TOKEN_EXPIRED,
                reason: close::reason(close::TOKEN_EXPIRED).to_owned(),
                reconnect: true,
            };
            let _ = session.notify(methods::DISCONNECT, &params);
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, write_queued(socket, session)).await;
            (close::TOKEN_EXPIRED, close::reason(close::TOKEN_EXPIRED).to_owned())
        }
    };
    tracing::debug!(code, reason = %reason, "closing");
    socket.close(code, &reason, CLOSE_TIMEOUT).await;
}
