//! The session actor: one task per WebSocket connection.
//!
//! The task owns the socket and is its only writer. It waits on its queue's
//! signals alone: frames to write, a close request from a slow consumer or
//! a disconnect, shutdown, a call due earlier than the timer, and the
//! wake-ups of its socket (`reader.rs`), of the handlers it runs
//! (`running.rs`) and of its one timer for all its deadlines (ping, pong,
//! drain, token expiry, personal hold, calls to the client). Asynchronous
//! handlers are polled by this task between reading and writing, so the
//! reader never waits for one; answers to the server's own calls are
//! matched in the pending table as they arrive.

mod reader;
mod running;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use switchboard_protocol::codes::close;
use switchboard_protocol::{ErrorObject, codes, frame, methods};
use tokio::time::Instant;
use tracing::Instrument;

use crate::rpc::dispatch::{Origin, Outcome};
use crate::session::{CloseRequest, Delivery, SessionHandle, signal, signal_waker};
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

async fn serve(socket: &mut Socket, session: &SessionHandle, gw: &Arc<GatewayShared>, conn_id: usize) -> Ending {
    let limits = &gw.config.limits;

    // The personal topic holds its pushes back briefly, so that a client can
    // resume it with `rpc.subscribe {since}` as its first message and get
    // missed and new pushes in order.
    let personal = gw
        .config
        .personal_topics
        .then(|| crate::hub::personal_topic(session.user()));
    let mut hold_until = None;
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
            hold_until = Some(Instant::now() + Duration::from_millis(limits.personal_hold_ms));
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

    let reader = reader::Reader::new(&session.shared);
    let mut running = running::Running::default();
    let ping_every = limits.ping_interval();
    let mut ping_at = Instant::now() + ping_every;
    let mut ping_sent: Option<Instant> = None;
    let mut drain_until: Option<Instant> = None;
    let queue = &session.shared.queue;
    let mut bucket = Bucket::new(limits.rate_per_second, limits.rate_burst);
    let warn_before = gw.auth.as_ref().map(|a| a.expiry_warning());
    let mut warned_for = None;

    // A session wakes for every frame it sends or receives, so what it
    // waits on is cheap to wait on again: everything it waits for is a
    // signal on its queue (frames, close, shutdown, and the wake-ups of its
    // socket, its handlers and its timer), one waker and an atomic. The
    // deadlines (ping, drain, expiry, hold, calls) share one pinned timer,
    // reset only when the earliest of them changes; it is polled with a
    // waker of its own that raises `TIMER`, so only when it was just set
    // (to register that waker) or has fired, not on every wake-up.
    let timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(timer);
    let timer_waker = signal_waker(&session.shared, signal::TIMER);
    let mut armed: Option<Instant> = None;

    // The expiry deadline, recomputed only when the token or the warning changes.
    let mut expiry_for = None;
    let mut expiry = None;

    // The deadlines are looked at again after anything but a plain write
    // (a push to a session that mostly receives touches nothing else).
    let mut recompute = true;
    loop {
        if recompute {
            if let Some(w) = warn_before {
                let key = (session.expires_at(), warned_for);
                if expiry_for != Some(key) {
                    expiry_for = Some(key);
                    expiry = key.0.map(|exp| expiry_check(exp, w, warned_for));
                }
            }
            if drain_until.is_some() && running.len() == 0 {
                return Ending::Shutdown;
            }
            let next = [
                Some(ping_at),
                drain_until,
                expiry,
                hold_until,
                session.shared.pending.next_deadline(),
            ]
            .into_iter()
            .flatten()
            .min();
            if next != armed {
                armed = next;
                if let Some(at) = next {
                    timer.as_mut().reset(at);
                    // Polled next, to register its waker.
                    queue.mark(signal::TIMER);
                }
            }
        }
        let raised = std::future::poll_fn(|cx| queue.poll_signals(cx)).await;
        recompute = raised != signal::FRAMES;
        // The timer first, so that a session kept busy by its socket or its
        // queue still meets its deadlines (ping, drain, expiry).
        if raised & signal::TIMER != 0
            && armed.is_some()
            && timer.as_mut().poll(&mut Context::from_waker(&timer_waker)).is_ready()
        {
            armed = None;
            let now = Instant::now();
            if drain_until.is_some_and(|at| at <= now) {
                return Ending::Shutdown;
            }
            if ping_at <= now {
                ping_at = now + ping_every;
                // Once a ping interval, the handlers' slots are given back if none is running.
                running.trim();
                if let Some(sent) = ping_sent {
                    if sent.elapsed() >= limits.pong_timeout() {
                        return Ending::PingTimeout;
                    }
                } else {
                    ping_sent = Some(now);
                    socket.push_ping();
                    if let Err(ending) = flush(socket, session, timer.as_mut(), &timer_waker, &mut armed).await {
                        return ending;
                    }
                }
            }
            if expiry.is_some_and(|at| at <= now)
                && let Some(exp) = session.expires_at()
            {
                if unix_now().as_secs() >= exp {
                    return Ending::Expired;
                }
                if warned_for != Some(exp)
                    && let Some(w) = warn_before
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
            if hold_until.is_some_and(|at| at <= now) {
                hold_until = None;
                if let Some(topic) = &personal {
                    session.release_hold(topic);
                }
            }
        }
        if raised & signal::CLOSE != 0 {
            return Ending::Requested;
        }
        if raised & signal::SHUTDOWN != 0 && drain_until.is_none() {
            drain_until = Some(Instant::now() + limits.shutdown_grace());
        }
        // Handlers the last read started, or that the last answers woke,
        // run before the queue is written, so that what they send goes too.
        let raised = if raised & signal::HANDLERS != 0 {
            running.run(session);
            raised | queue.raised()
        } else {
            raised
        };
        if raised & signal::FRAMES != 0 {
            let before = armed;
            if let Err(ending) = flush(socket, session, timer.as_mut(), &timer_waker, &mut armed).await {
                return ending;
            }
            // A write that waited may have set the timer, or seen it fire.
            recompute |= armed != before;
        }
        if raised & signal::READ == 0 {
            continue;
        }
        // Handle every frame that has already arrived (up to a bound)
        // before going back to the select, so that the answers they
        // produce leave in one flush instead of one write each.
        let mut incoming = match reader.try_next(socket) {
            Poll::Ready(incoming) => incoming,
            Poll::Pending => continue,
        };
        let mut taken = 0;
        // The frames of one batch arrived together: one look at the clock.
        let now = Instant::now();
        loop {
            ping_sent = None;
            match incoming {
                Ok(Incoming::Close(code)) => return Ending::ClientClosed(code),
                Ok(Incoming::Text(text)) => {
                    if !bucket.take(now) && !over_rate(session, text) {
                        if bucket.refused_in_a_row >= limits.rate_abuse_close {
                            return Ending::Protocol(close::RATE_LIMITED);
                        }
                    } else {
                        if hold_until.is_some() && !text.contains(methods::SUBSCRIBE) {
                            hold_until = None;
                            if let Some(topic) = &personal {
                                session.release_hold(topic);
                            }
                        }
                        handle_text(session, gw, conn_id, text, &mut running);
                    }
                }
                Ok(Incoming::Binary(_)) => {
                    let error = ErrorObject::with_data(
                        codes::INVALID_REQUEST,
                        serde_json::json!({"reason": "binary frames are not supported; send JSON-RPC as text frames"}),
                    );
                    let _ = session.send_frame(frame::write_error(None, &error).into());
                }
                Ok(Incoming::Ping | Incoming::Pong) => {}
                Err(e) => return classify_error(e),
            }
            taken += 1;
            if taken >= READ_BATCH {
                break;
            }
            match reader.try_next(socket) {
                Poll::Ready(next) => incoming = next,
                Poll::Pending => break,
            }
        }
        // A ping read above left its pong in the outbox.
        if !socket.is_flushed()
            && let Err(ending) = flush(socket, session, timer.as_mut(), &timer_waker, &mut armed).await
        {
            return ending;
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
            let _ = session.send_frame(frame::write_error(Some(id.get()), &error()).into());
        }
        frame::Frame::Single(frame::Message::Notification { .. }) => {}
        _ => {
            let _ = session.send_frame(frame::write_error(None, &error()).into());
        }
    }
    metrics::counter!("switchboard_rate_limited_total").increment(1);
    false
}

fn handle_text(
    session: &SessionHandle,
    gw: &Arc<GatewayShared>,
    conn_id: usize,
    text: &str,
    running: &mut running::Running,
) {
    let origin = Origin {
        session: Some(session),
        user: &session.shared.user,
        conn_id,
        claims: None,
    };
    match gw.dispatcher.handle_text(&origin, text) {
        Outcome::Reply(reply) => {
            let _ = session.send_frame(reply.into());
        }
        Outcome::Silent => {}
        Outcome::Later(future) => running.push(session, future),
    }
}

/// Writes every queued frame, then flushes once: frames queued together
/// leave in as few writes as the write buffer allows. The frames go
/// straight into the socket's outbox.
fn poll_write_queued(socket: &mut Socket, session: &SessionHandle, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
    // Only once the last write is out: frames a slow client has not taken
    // yet stay in the queue, which is bounded.
    if socket.is_flushed() {
        session.shared.queue.drain(|frame| socket.push_text(frame));
    }
    socket.poll_flush(cx)
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

/// Writes the outbox and the queued frames. Blocked on a slow client, a
/// close request still gets through, and calls to the client still time out
/// (when the timer fires meanwhile, it is left disarmed for the loop to set
/// again, and the loop meets its other deadlines once the write is done).
async fn flush(
    socket: &mut Socket,
    session: &SessionHandle,
    mut timer: Pin<&mut tokio::time::Sleep>,
    timer_waker: &Waker,
    armed: &mut Option<Instant>,
) -> Result<(), Ending> {
    let queue = &session.shared.queue;
    let written = std::future::poll_fn(|cx| match poll_write_queued(socket, session, cx) {
        Poll::Ready(result) => Poll::Ready(Some(result)),
        Poll::Pending => {
            // Registered first, so that a call made after the look below still wakes us.
            let closed = queue.poll_closed(cx);
            // A call made meanwhile may be due before the timer.
            if let Some(at) = session.shared.pending.next_deadline()
                && armed.is_none_or(|armed| at < armed)
            {
                timer.as_mut().reset(at);
                *armed = Some(at);
            }
            // The timer's waker raises `TIMER`, which wakes this wait too.
            if armed.is_some() && timer.as_mut().poll(&mut Context::from_waker(timer_waker)).is_ready() {
                *armed = None;
                expire_calls(session, Instant::now());
            }
            closed.map(|()| None)
        }
    })
    .await;
    match written {
        None => Err(Ending::Requested),
        Some(Err(_)) => Err(Ending::ClientGone),
        Some(Ok(())) => Ok(()),
    }
}

async fn write_queued(socket: &mut Socket, session: &SessionHandle) -> std::io::Result<()> {
    std::future::poll_fn(|cx| poll_write_queued(socket, session, cx)).await
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
