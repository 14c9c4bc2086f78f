//! [`Batch`]: several calls and notifications in one frame.

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use switchboard_protocol::frame;
use tokio::time::{Instant, timeout_at};

use crate::buffer::Buffer;
use crate::calls::{CallGuard, poll_report, send, wait};
use crate::error::Error;
use crate::shared::{Answer, Pending, Shared};
use crate::stats::bump;

/// A batch being put together. Made by [`Client::batch`](crate::Client::batch).
///
/// ```no_run
/// # async fn run(client: switchboard_client::Client) -> Result<(), switchboard_client::Error> {
/// let mut batch = client.batch();
/// let echo = batch.call::<_, Vec<u32>>("echo", [1, 2])?;
/// let whoami = batch.call::<_, serde_json::Value>("whoami", ())?;
/// batch.notify("audit.seen", ["batch"])?;
/// let mut results = batch.send().await?;
/// assert_eq!(results.take(echo)?, [1, 2]);
/// println!("{}", results.take(whoami)?);
/// # Ok(()) }
/// ```
///
/// The progress of a call made with [`call`](Self::call) is dropped as it
/// arrives; to read it, add the call with
/// [`call_with_progress`](Self::call_with_progress).
#[derive(Debug)]
#[must_use = "a batch does nothing until `send`"]
pub struct Batch {
    shared: Arc<Shared>,
    entries: Vec<Entry>,
    calls: usize,
    timeout: Duration,
}

#[derive(Debug)]
struct Entry {
    method: String,
    params: Option<Box<RawValue>>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Notification,
    Call,
    /// A call whose `rpc.progress` reports go into this buffer.
    Watched(Arc<Buffer<Box<RawValue>>>),
}

/// A call in a [`Batch`]: the key to its result in [`BatchResults`].
#[derive(Debug)]
#[must_use = "take the call's result from the batch's results"]
pub struct BatchCall<R> {
    index: usize,
    _result: PhantomData<fn() -> R>,
}

/// The progress of a call in a [`Batch`], made by
/// [`Batch::call_with_progress`]: a [`Stream`] of the `rpc.progress`
/// reports the server sends for it, as [`ProgressCall`](crate::ProgressCall)
/// yields them for a single call.
///
/// It yields every report that arrived before the call's answer, in order,
/// and ends when the answer arrives; no report is yielded after that. It
/// also ends when [`Batch::send`] gives up (the batch's timeout passed, its
/// connection dropped, or the batch or its `send` future was dropped), so
/// read it alongside `send`, not after it. Reports are kept in a bounded
/// buffer ([`ClientBuilder::buffer`](crate::ClientBuilder::buffer)): when it
/// is full the oldest are dropped, and the stream yields
/// `Err(Error::Lagged { missed })` before the reports that were kept.
/// Dropping it drops the reports, not the call.
#[derive(Debug)]
pub struct BatchProgress {
    reports: Arc<Buffer<Box<RawValue>>>,
}

/// The answers to a batch's calls. Take each with [`take`](Self::take).
#[derive(Debug)]
pub struct BatchResults {
    answers: Vec<Option<Answer>>,
}

impl Batch {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let timeout = shared.config.call_timeout;
        Self {
            shared,
            entries: Vec::new(),
            calls: 0,
            timeout,
        }
    }

    /// Adds a call of `method`; its result decodes as `R`. Its progress is
    /// dropped as it arrives.
    pub fn call<P: Serialize, R: DeserializeOwned>(&mut self, method: &str, params: P) -> Result<BatchCall<R>, Error> {
        self.push(method, &params, Kind::Call)?;
        Ok(self.next_call())
    }

    /// Adds a call of `method`, whose result decodes as `R`, with the
    /// progress the server reports for it (`rpc.progress`): the
    /// [`BatchProgress`] stream yields the reports while the batch is under
    /// way and ends when the call's answer arrives.
    ///
    /// ```no_run
    /// # async fn run(client: switchboard_client::Client) -> Result<(), switchboard_client::Error> {
    /// use futures_util::StreamExt;
    ///
    /// let mut batch = client.batch();
    /// let (slept, mut progress) = batch.call_with_progress::<_, u64>("demo.sleep", serde_json::json!({"ms": 350}))?;
    /// let echo = batch.call::<_, Vec<u32>>("echo", [1, 2])?;
    /// let reading = async {
    ///     while let Some(report) = progress.next().await {
    ///         println!("progress: {}", report?);
    ///     }
    ///     Ok::<_, switchboard_client::Error>(())
    /// };
    /// let (results, read) = tokio::join!(batch.send(), reading);
    /// read?;
    /// let mut results = results?;
    /// assert_eq!(results.take(slept)?, 350);
    /// assert_eq!(results.take(echo)?, [1, 2]);
    /// # Ok(()) }
    /// ```
    pub fn call_with_progress<P: Serialize, R: DeserializeOwned>(
        &mut self,
        method: &str,
        params: P,
    ) -> Result<(BatchCall<R>, BatchProgress), Error> {
        let reports = Arc::new(Buffer::new(self.shared.config.buffer));
        self.push(method, &params, Kind::Watched(reports.clone()))?;
        Ok((self.next_call(), BatchProgress { reports }))
    }

    /// Adds a notification of `method`.
    pub fn notify<P: Serialize>(&mut self, method: &str, params: P) -> Result<(), Error> {
        self.push(method, &params, Kind::Notification)
    }

    fn push<P: Serialize>(&mut self, method: &str, params: &P, kind: Kind) -> Result<(), Error> {
        let raw = serde_json::value::to_raw_value(params).map_err(Error::Params)?;
        self.entries.push(Entry {
            method: method.to_owned(),
            params: (raw.get() != "null").then_some(raw),
            kind,
        });
        Ok(())
    }

    /// The key to the call just added.
    fn next_call<R>(&mut self) -> BatchCall<R> {
        self.calls += 1;
        BatchCall {
            index: self.calls - 1,
            _result: PhantomData,
        }
    }

    /// The timeout for the whole batch (default: the client's call timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many messages the batch holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sends the batch in one frame and waits for every call's answer (or
    /// the timeout). A batch of notifications only returns once it is sent.
    /// Dropping the future gives up on the calls and sends `rpc.cancel` for each.
    pub async fn send(self) -> Result<BatchResults, Error> {
        if self.entries.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let shared = &*self.shared;
        let max_batch = shared.link.lock().conn.as_ref().and_then(|c| c.max_batch);
        if let Some(max) = max_batch.filter(|max| self.entries.len() > *max) {
            return Err(Error::BatchTooLarge {
                len: self.entries.len(),
                max,
            });
        }
        let deadline = Instant::now() + self.timeout;
        let slots = self.calls.min(shared.config.max_in_flight) as u32;
        let _slots = timeout_at(deadline, shared.in_flight.acquire_many(slots))
            .await
            .map_err(|_| Error::Timeout(self.timeout))?
            .map_err(|_| Error::Disconnected)?;
        // Calls register in the order they were added, each as what it asked for.
        let mut calls = self
            .entries
            .iter()
            .filter(|entry| !matches!(entry.kind, Kind::Notification));
        let (conn, calls) = shared.register(self.calls, |reply| match calls.next().map(|entry| &entry.kind) {
            Some(Kind::Watched(reports)) => Pending::Watched {
                reply,
                progress: reports.clone(),
            },
            _ => Pending::Call(reply),
        })?;
        let mut guard = CallGuard::new(shared, calls.iter().map(|(id, _)| *id).collect());
        let mut text = String::from("[");
        let mut ids = calls.iter().map(|(id, _)| *id);
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let params = entry.params.as_deref().map(RawValue::get);
            let id = match entry.kind {
                Kind::Notification => None,
                Kind::Call | Kind::Watched(_) => ids.next(),
            };
            match id {
                Some(id) => text.push_str(&frame::write_request(id, &entry.method, params)),
                None => text.push_str(&frame::write_notification(&entry.method, params)),
            }
        }
        text.push(']');
        send(&conn, text, deadline, self.timeout).await?;
        shared
            .stats
            .calls
            .fetch_add(self.calls as u64, std::sync::atomic::Ordering::Relaxed);
        let mut answers = Vec::with_capacity(calls.len());
        for (id, rx) in calls {
            let answer = wait(rx, deadline, self.timeout).await;
            if answer.is_err() {
                bump(&shared.stats.errors);
            }
            if !matches!(answer, Err(Error::Timeout(_))) {
                guard.answered(id);
            }
            answers.push(Some(answer));
        }
        Ok(BatchResults { answers })
    }
}

impl Drop for Batch {
    /// Ends the progress streams of its calls. An answer has ended a call's
    /// stream already; this ends the others, whose answer will not come:
    /// the batch was never sent, or `send` gave up (a timeout, a lost
    /// connection, its future dropped) and forgot the call.
    fn drop(&mut self) {
        for entry in &self.entries {
            if let Kind::Watched(reports) = &entry.kind {
                reports.close();
            }
        }
    }
}

impl Stream for BatchProgress {
    type Item = Result<serde_json::Value, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        poll_report(&self.reports, cx)
    }
}

impl BatchResults {
    /// Takes the result of `call`, decoded.
    pub fn take<R: DeserializeOwned>(&mut self, call: BatchCall<R>) -> Result<R, Error> {
        let raw = self.take_raw(call.index)?;
        serde_json::from_str(raw.get()).map_err(Error::Decode)
    }

    /// Takes the raw result of the call at `index` (in the order calls were added).
    pub fn take_raw(&mut self, index: usize) -> Result<Box<RawValue>, Error> {
        self.answers
            .get_mut(index)
            .and_then(Option::take)
            .unwrap_or(Err(Error::InvalidResponse("this call's result was already taken")))
    }

    /// How many calls the batch had.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// Whether the batch had no calls.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }
}
