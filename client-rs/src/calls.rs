//! Calls to the server: registering them, sending them, waiting for their
//! answers (and, for a [`ProgressCall`], their progress), and telling the
//! server `rpc.cancel` when the caller gives up.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use switchboard_protocol::{frame, methods};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::{Instant, Sleep, sleep_until, timeout_at};

use crate::buffer::{Buffer, Popped};
use crate::error::Error;
use crate::shared::{Answer, Conn, Pending, Shared};
use crate::stats::bump;

/// A registered call: its id and where its answer will arrive.
pub(crate) type Registered = (u64, oneshot::Receiver<Answer>);

impl Shared {
    /// Registers `count` pending calls made by `make` on the current connection.
    pub(crate) fn register(
        &self,
        count: usize,
        mut make: impl FnMut(oneshot::Sender<Answer>) -> Pending,
    ) -> Result<(Conn, Vec<Registered>), Error> {
        let mut link = self.link.lock();
        let Some(conn) = link.conn.clone() else {
            return Err(link.no_connection());
        };
        let mut calls = Vec::with_capacity(count);
        for _ in 0..count {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            link.pending.insert(id, make(tx));
            calls.push((id, rx));
        }
        Ok((conn, calls))
    }

    /// Calls `method` and waits at most `timeout` for the answer.
    pub(crate) async fn request(&self, method: &str, params: Option<&RawValue>, timeout: Duration) -> Answer {
        self.request_with(method, params, timeout, Pending::Call).await
    }

    /// Like [`request`](Self::request), with the kind of pending entry made by `make`.
    pub(crate) async fn request_with(
        &self,
        method: &str,
        params: Option<&RawValue>,
        timeout: Duration,
        make: impl FnMut(oneshot::Sender<Answer>) -> Pending,
    ) -> Answer {
        let outcome = self.request_inner(method, params, timeout, make).await;
        if outcome.is_err() {
            bump(&self.stats.errors);
        }
        outcome
    }

    async fn request_inner(
        &self,
        method: &str,
        params: Option<&RawValue>,
        timeout: Duration,
        make: impl FnMut(oneshot::Sender<Answer>) -> Pending,
    ) -> Answer {
        let deadline = Instant::now() + timeout;
        let _slot = timeout_at(deadline, self.in_flight.acquire())
            .await
            .map_err(|_| Error::Timeout(timeout))?
            .map_err(|_| Error::Disconnected)?;
        let (conn, mut calls) = self.register(1, make)?;
        let (id, rx) = calls.pop().ok_or(Error::Disconnected)?;
        let mut guard = CallGuard::new(self, vec![id]);
        let frame = frame::write_request(id, method, params.map(RawValue::get));
        send(&conn, frame, deadline, timeout).await?;
        bump(&self.stats.calls);
        let answer = wait(rx, deadline, timeout).await;
        guard.settle(&answer);
        answer
    }
}

/// Queues `frame` on the connection, waiting for room until `deadline`.
pub(crate) async fn send(conn: &Conn, frame: String, deadline: Instant, timeout: Duration) -> Result<(), Error> {
    match timeout_at(deadline, conn.tx.send(frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Error::Disconnected),
        Err(_) => Err(Error::Timeout(timeout)),
    }
}

/// Waits for an answer until `deadline`.
pub(crate) async fn wait(rx: oneshot::Receiver<Answer>, deadline: Instant, timeout: Duration) -> Answer {
    match timeout_at(deadline, rx).await {
        Ok(Ok(answer)) => answer,
        // The connection's teardown dropped the sender without a word.
        Ok(Err(_)) => Err(Error::Disconnected),
        Err(_) => Err(Error::Timeout(timeout)),
    }
}

/// Forgets calls whose caller gave up — by timing out, or by dropping the
/// future — and tells the server `rpc.cancel {id}` for each one still waiting.
pub(crate) struct CallGuard<'a> {
    shared: &'a Shared,
    ids: Vec<u64>,
}

impl<'a> CallGuard<'a> {
    pub(crate) fn new(shared: &'a Shared, ids: Vec<u64>) -> Self {
        Self { shared, ids }
    }

    /// The calls ended: only a timeout leaves anything to cancel.
    pub(crate) fn settle(&mut self, answer: &Answer) {
        if !matches!(answer, Err(Error::Timeout(_))) {
            self.ids.clear();
        }
    }

    /// Call `id` got its answer: nothing to cancel for it.
    pub(crate) fn answered(&mut self, id: u64) {
        self.ids.retain(|&i| i != id);
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if !self.ids.is_empty() {
            self.shared.give_up(&self.ids);
        }
    }
}

impl Shared {
    /// Forgets the calls `ids` and tells the server `rpc.cancel {id}` for
    /// each one still waiting for its answer.
    pub(crate) fn give_up(&self, ids: &[u64]) {
        let waiting: Vec<u64> = {
            let mut link = self.link.lock();
            ids.iter()
                .filter(|id| link.pending.remove(id).is_some())
                .copied()
                .collect()
        };
        if !self.config.send_cancel {
            return;
        }
        for id in waiting {
            let params = serde_json::json!({ "id": id }).to_string();
            // Best effort: a full queue or a lost connection leaves nothing to cancel.
            if self.try_send(frame::write_notification(methods::CANCEL, Some(&params))) {
                bump(&self.stats.cancels_sent);
            }
        }
    }
}

/// A call to the server that is under way, with its progress: a
/// [`Stream`] of the `rpc.progress` reports the server sends for it, then
/// its result with [`result`](Self::result). Made by
/// [`Client::call_with_progress`](crate::Client::call_with_progress).
///
/// The stream yields every report that arrived before the answer, in order,
/// and ends when the answer arrives (or the call times out or its
/// connection drops); no report is yielded after that. Reports are kept in a
/// bounded buffer ([`ClientBuilder::buffer`](crate::ClientBuilder::buffer)):
/// when it is full the oldest are dropped, and the stream yields
/// `Err(Error::Lagged { missed })` before the reports that were kept.
/// Calling [`result`](Self::result) without reading the stream drops the
/// reports not read.
///
/// Dropping it before the answer gives the call up, and the server is sent
/// `rpc.cancel {id}`, as for a dropped [`Client::call`](crate::Client::call).
/// It holds one of the client's in-flight slots until it is dropped.
#[must_use = "a call in progress is cancelled when dropped"]
pub struct ProgressCall<R> {
    shared: Arc<Shared>,
    id: u64,
    progress: Arc<Buffer<Box<RawValue>>>,
    reply: oneshot::Receiver<Answer>,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
    /// The answer, once it is known: the server's, or why there is none.
    answer: Option<Answer>,
    /// Whether nothing is left to give up when this is dropped.
    settled: bool,
    _slot: OwnedSemaphorePermit,
    _result: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for ProgressCall<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressCall")
            .field("id", &self.id)
            .field("answered", &self.answer.is_some())
            .finish_non_exhaustive()
    }
}

impl<R> ProgressCall<R> {
    /// Sends the call `method(params)` and returns it under way.
    pub(crate) async fn start(
        shared: Arc<Shared>,
        method: &str,
        params: Option<&RawValue>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let errors = shared.clone();
        let started = Self::send(shared, method, params, timeout).await;
        if started.is_err() {
            bump(&errors.stats.errors);
        }
        started
    }

    async fn send(
        shared: Arc<Shared>,
        method: &str,
        params: Option<&RawValue>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let deadline = Instant::now() + timeout;
        let slot = timeout_at(deadline, shared.in_flight.clone().acquire_owned())
            .await
            .map_err(|_| Error::Timeout(timeout))?
            .map_err(|_| Error::Disconnected)?;
        let progress = Arc::new(Buffer::new(shared.config.buffer));
        let (conn, mut calls) = shared.register(1, |reply| Pending::Watched {
            reply,
            progress: progress.clone(),
        })?;
        let (id, reply) = calls.pop().ok_or(Error::Disconnected)?;
        // From here on, dropping the call (when sending fails, or the caller
        // gives up) forgets it and cancels it.
        let call = Self {
            shared,
            id,
            progress,
            reply,
            deadline: Box::pin(sleep_until(deadline)),
            timeout,
            answer: None,
            settled: false,
            _slot: slot,
            _result: PhantomData,
        };
        let frame = frame::write_request(id, method, params.map(RawValue::get));
        send(&conn, frame, deadline, timeout).await?;
        bump(&call.shared.stats.calls);
        Ok(call)
    }

    /// Waits for the answer (or the deadline, or the end of the connection)
    /// and keeps it.
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.answer.is_some() {
            return Poll::Ready(());
        }
        let answer = match Pin::new(&mut self.reply).poll(cx) {
            Poll::Ready(Ok(answer)) => answer,
            // The connection's teardown dropped the sender without a word.
            Poll::Ready(Err(_)) => Err(Error::Disconnected),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Err(Error::Timeout(self.timeout)),
                Poll::Pending => return Poll::Pending,
            },
        };
        if matches!(answer, Err(Error::Timeout(_))) {
            self.shared.give_up(&[self.id]);
        }
        if answer.is_err() {
            bump(&self.shared.stats.errors);
        }
        // An answer closed the buffer already; a timeout or a lost
        // connection ends the progress here.
        self.progress.close();
        self.settled = true;
        self.answer = Some(answer);
        Poll::Ready(())
    }

    /// Waits for the call's result (within its timeout) and decodes it as
    /// `R`. Progress not read yet is dropped.
    pub async fn result(mut self) -> Result<R, Error>
    where
        R: DeserializeOwned,
    {
        std::future::poll_fn(|cx| self.poll_answer(cx)).await;
        let raw = self.answer.take().unwrap_or(Err(Error::Disconnected))?;
        serde_json::from_str(raw.get()).map_err(Error::Decode)
    }
}

impl<R> Stream for ProgressCall<R> {
    type Item = Result<serde_json::Value, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Poll::Ready(report) = poll_report(&this.progress, cx) {
                return Poll::Ready(report);
            }
            // Nothing queued: the next report or the answer, whichever comes
            // first. Once the answer is in, the buffer is closed, and the
            // reports queued before it come out before the end.
            std::task::ready!(this.poll_answer(cx));
        }
    }
}

/// The next progress report in `reports`, decoded; `Pending` while none is
/// queued and the buffer is open.
pub(crate) fn poll_report(
    reports: &Buffer<Box<RawValue>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<serde_json::Value, Error>>> {
    reports.poll_pop(cx).map(|popped| {
        popped.map(|popped| match popped {
            Popped::Item(raw) => serde_json::from_str(raw.get()).map_err(Error::Decode),
            Popped::Lagged(missed) => Err(Error::Lagged { missed }),
        })
    })
}

impl<R> Drop for ProgressCall<R> {
    fn drop(&mut self) {
        if !self.settled {
            self.shared.give_up(&[self.id]);
        }
    }
}
