//! Calls to the server: registering them, sending them, waiting for their
//! answers, and telling the server `rpc.cancel` when the caller gives up.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::value::RawValue;
use switchboard_protocol::{frame, methods};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};

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
        if self.ids.is_empty() {
            return;
        }
        let waiting: Vec<u64> = {
            let mut link = self.shared.link.lock();
            self.ids
                .iter()
                .filter(|id| link.pending.remove(id).is_some())
                .copied()
                .collect()
        };
        if !self.shared.config.send_cancel {
            return;
        }
        for id in waiting {
            let params = serde_json::json!({ "id": id }).to_string();
            // Best effort: a full queue or a lost connection leaves nothing to cancel.
            if self
                .shared
                .try_send(frame::write_notification(methods::CANCEL, Some(&params)))
            {
                bump(&self.shared.stats.cancels_sent);
            }
        }
    }
}
