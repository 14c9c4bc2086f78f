//! Calls to clients through the hub: one frame to every session of a
//! target, on every node, and one outcome per session reached (its result,
//! its error, a timeout, a disconnect or a cancel) collected by the calling
//! node as a [`CallStream`], which a policy may complete early.
//!
//! The calling node (the origin) broadcasts `Envelope::Call`. Each node that
//! has sessions of the target sends them the frame, acknowledges with the
//! sessions it reached, then reports each answer (and, when asked, each
//! progress report) as it comes. The origin cancels a node's remaining
//! sessions with `Envelope::CallCancel` when it no longer needs them (a
//! policy is met, its caller went away, the gateway stops); it makes those
//! sessions' cancelled outcomes itself and never waits for them.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde_json::value::RawValue;
use switchboard_protocol::api::{CallPolicy, CallSummary};
use switchboard_protocol::contract::{self, ClientMethod};
use switchboard_protocol::{ErrorObject, Target, codes, frame};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Hub, HubError, HubInner, dedup};
use crate::broker::{Envelope, NodeId, SharedFrame};
use crate::error::CallError;
use crate::session::{PROGRESS_QUEUE, ProgressSink, SessionHandle};

/// One outcome of a multicast [`Hub::call`]: a session's answer, or why
/// there is none.
#[derive(Debug, Clone)]
pub struct CallEntry {
    /// The session (empty for a node that never acknowledged the call).
    pub session: String,
    /// Its user (empty for a node that never acknowledged the call).
    pub user: String,
    /// The node the session is connected to (empty for a node that never
    /// acknowledged the call: it cannot be named, only counted).
    pub node: String,
    /// Its result, or why there is none: the client's error, a timeout
    /// (`-32004`), a disconnect (`-32005`), the pending-call limit
    /// (`-32010`), a node that never acknowledged (`-32007`), a cancel (`-32011`).
    pub outcome: Result<Box<RawValue>, ErrorObject>,
}

impl Serialize for CallEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut st = s.serialize_map(None)?;
        if !self.session.is_empty() {
            st.serialize_entry("session", &self.session)?;
            st.serialize_entry("user", &self.user)?;
        }
        st.serialize_entry("node", &(!self.node.is_empty()).then_some(&self.node))?;
        match &self.outcome {
            Ok(result) => st.serialize_entry("result", result)?,
            Err(error) => st.serialize_entry("error", error)?,
        }
        st.end()
    }
}

/// A client's progress report on a call made with [`CallOptions::progress`].
#[derive(Debug, Clone, Serialize)]
pub struct CallProgress {
    /// The session that reported it.
    pub session: String,
    /// Its user.
    pub user: String,
    /// Its node.
    pub node: String,
    /// What the client reported.
    pub progress: Box<RawValue>,
}

/// What a [`CallStream`] yields: outcomes and progress as they arrive, then the totals.
#[derive(Debug, Clone)]
pub enum CallUpdate {
    /// One session's outcome (or one node's that never acknowledged).
    Outcome(CallEntry),
    /// A client's progress report (only with [`CallOptions::progress`]).
    Progress(CallProgress),
    /// The call is complete: always the last item.
    Done(CallSummary),
}

/// How a multicast call is made: [`Hub::call_stream`].
#[derive(Debug, Clone, Copy)]
pub struct CallOptions {
    /// How long each session has to answer (at most `limits.max_call_timeout_ms`).
    pub timeout: Duration,
    /// When the call is complete; `None` is `"all"` with no `met` in the totals.
    pub policy: Option<CallPolicy>,
    /// Whether clients' progress reports are forwarded to the stream.
    pub progress: bool,
}

impl CallOptions {
    /// Every session answers or times out within `timeout`; no progress.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            policy: None,
            progress: false,
        }
    }

    /// Completes the call by `policy`.
    pub fn policy(mut self, policy: CallPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Forwards the clients' progress reports.
    pub fn progress(mut self) -> Self {
        self.progress = true;
        self
    }
}

/// Every outcome of a complete call and its totals ([`CallStream::finish`]).
/// Serialised as a call's answer: the array of outcomes, or `{outcomes, met}`
/// when the call had a policy.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// One entry per session reached (and per node that never acknowledged).
    pub outcomes: Vec<CallEntry>,
    /// The totals; `met` is set when the call had a policy.
    pub summary: CallSummary,
}

impl Serialize for CallReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let Some(met) = self.summary.met else {
            return self.outcomes.serialize(s);
        };
        let mut st = s.serialize_struct("CallReport", 2)?;
        st.serialize_field("outcomes", &self.outcomes)?;
        st.serialize_field("met", &met)?;
        st.end()
    }
}

/// What the nodes tell the origin about one call.
pub(super) enum CallEvent {
    Ack {
        node: NodeId,
        sessions: Vec<(String, String)>,
        skipped: Vec<(String, String)>,
    },
    Result(CallEntry),
    Progress(CallProgress),
}

/// Where the origin's inbox puts a call's reports, in the order they came.
#[derive(Clone)]
pub(super) struct CallSink {
    pub(super) events: mpsc::UnboundedSender<CallEvent>,
    /// How many progress reports are queued, when the caller wants them:
    /// beyond [`PROGRESS_QUEUE`] they are dropped rather than queued without
    /// end for a slow reader (outcomes never are).
    pub(super) progress: Option<Arc<AtomicUsize>>,
}

impl CallSink {
    /// Queues a progress report, unless the caller does not want them or is behind.
    pub(super) fn progress(&self, report: CallProgress) {
        let Some(queued) = &self.progress else { return };
        if queued.fetch_add(1, Ordering::Relaxed) < PROGRESS_QUEUE {
            let _ = self.events.send(CallEvent::Progress(report));
        } else {
            queued.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Extra time the caller waits past the per-session timeout for remote nodes' reports.
pub(super) const REPORT_GRACE: Duration = Duration::from_millis(250);

impl Hub {
    /// Calls `method(params)` on every session of the target and collects one
    /// entry per session reached: its result, its error, or a timeout or
    /// disconnect error. Never waits much longer than `timeout`. Dropping the
    /// future cancels the call: the sessions still owing an answer are sent
    /// `rpc.cancel`.
    pub async fn call<P: Serialize + ?Sized>(
        &self,
        target: Target,
        method: &str,
        params: &P,
        timeout: Duration,
    ) -> Result<Vec<CallEntry>, HubError> {
        let params = serde_json::value::to_raw_value(params).map_err(|e| HubError::Params(e.to_string()))?;
        self.call_raw(target, method, Some(&params), timeout).await
    }

    /// Calls the client method `M` on every session of the target, as
    /// [`call_stream`](Self::call_stream) does, with `M`'s params; each
    /// outcome's result is the client's JSON, which decodes as `M::Result`.
    pub async fn call_method<M: ClientMethod>(
        &self,
        target: Target,
        params: &M::Params,
        options: CallOptions,
    ) -> Result<CallStream, HubError> {
        let params = contract::encode_params(params).map_err(|e| HubError::Params(e.to_string()))?;
        self.call_stream(target, M::NAME, params.as_deref(), options).await
    }

    /// Like [`call`](Self::call) with params already serialised.
    pub async fn call_raw(
        &self,
        target: Target,
        method: &str,
        params: Option<&RawValue>,
        timeout: Duration,
    ) -> Result<Vec<CallEntry>, HubError> {
        let call = self
            .call_stream(target, method, params, CallOptions::new(timeout))
            .await?;
        Ok(call.finish().await.outcomes)
    }

    /// Starts a call and returns its outcomes as a [`Stream`], as they
    /// arrive: with a policy, the call completes as soon as the policy is met
    /// (or can no longer be), and the sessions still owing an answer are sent
    /// `rpc.cancel` and listed as cancelled; with
    /// [`progress`](CallOptions::progress), the clients' progress reports
    /// come too. The last item is [`CallUpdate::Done`]. Dropping the stream
    /// before it cancels the call.
    ///
    /// ```no_run
    /// # async fn f(hub: switchboard_server::Hub) -> Result<(), switchboard_server::HubError> {
    /// use futures_util::StreamExt;
    /// use std::time::Duration;
    /// use switchboard_server::{CallOptions, CallPolicy, CallUpdate, Target};
    ///
    /// // The first of alice's devices to confirm wins; the others are cancelled.
    /// let options = CallOptions::new(Duration::from_secs(10)).policy(CallPolicy::First);
    /// let params = serde_json::value::to_raw_value(&serde_json::json!({"code": 1234})).unwrap();
    /// let mut call = hub.call_stream(Target::User("alice".into()), "confirm", Some(&params), options).await?;
    /// while let Some(update) = call.next().await {
    ///     match update {
    ///         CallUpdate::Outcome(entry) => println!("{}: {:?}", entry.session, entry.outcome),
    ///         CallUpdate::Progress(p) => println!("{} reports {}", p.session, p.progress),
    ///         CallUpdate::Done(summary) => println!("met: {:?}", summary.met),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn call_stream(
        &self,
        target: Target,
        method: &str,
        params: Option<&RawValue>,
        options: CallOptions,
    ) -> Result<CallStream, HubError> {
        let started = Instant::now();
        let timeout = self.inner.limits.clamp_timeout(options.timeout);
        let id = crate::session::next_call_id();
        let frame: SharedFrame = frame::write_request(id, method, params.map(RawValue::get)).into();
        self.count_frame();
        let (events, rx) = mpsc::unbounded_channel();
        let progress = options.progress.then(|| Arc::new(AtomicUsize::new(0)));
        self.inner.calls.insert(
            id,
            CallSink {
                events,
                progress: progress.clone(),
            },
        );
        let mut call = CallStream {
            hub: self.inner.clone(),
            id,
            rx,
            progress,
            deadline: Box::pin(tokio::time::sleep(timeout + REPORT_GRACE)),
            nodes: usize::MAX,
            acks: 0,
            owing: HashMap::new(),
            reached: 0,
            policy: options.policy,
            summary: CallSummary {
                met: options.policy.map(|_| false),
                ..CallSummary::default()
            },
            out: VecDeque::new(),
            finished: false,
            started,
            target: crate::metrics::target_index(&target),
        };
        let envelope = Envelope::Call {
            call: id,
            origin: self.inner.node.clone(),
            target: dedup(target),
            frame,
            timeout_ms: timeout.as_millis() as u64,
            max_sessions: self.inner.limits.max_call_fanout,
            progress: options.progress,
        };
        // Should this future be dropped while broadcasting, the stream's drop cancels what started.
        call.nodes = super::timed_publish(|| self.inner.broker.broadcast(envelope)).await?;
        Ok(call)
    }
}

/// The outcomes of a multicast call as they arrive ([`Hub::call_stream`]).
/// Dropped before its [`Done`](CallUpdate::Done), it cancels the call.
pub struct CallStream {
    hub: Arc<HubInner>,
    id: u64,
    rx: mpsc::UnboundedReceiver<CallEvent>,
    /// Progress reports queued in `rx` (when the caller wants them).
    progress: Option<Arc<AtomicUsize>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// How many nodes the call reached, and how many acknowledged it.
    nodes: usize,
    acks: usize,
    /// Sessions reached that have not answered: session → (user, node).
    owing: HashMap<String, (String, NodeId)>,
    reached: usize,
    policy: Option<CallPolicy>,
    summary: CallSummary,
    out: VecDeque<CallUpdate>,
    finished: bool,
    /// When the call started, for its latency, recorded under its target's kind when it completes.
    started: Instant,
    target: usize,
}

impl std::fmt::Debug for CallStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallStream")
            .field("id", &self.id)
            .field("owing", &self.owing.len())
            .field("summary", &self.summary)
            .finish()
    }
}

impl CallStream {
    /// Waits for the call to complete and returns every outcome (progress is dropped).
    pub async fn finish(mut self) -> CallReport {
        let mut outcomes = Vec::new();
        while let Some(update) = self.next().await {
            match update {
                CallUpdate::Outcome(entry) => outcomes.push(entry),
                CallUpdate::Progress(_) => {}
                CallUpdate::Done(summary) => {
                    return CallReport { outcomes, summary };
                }
            }
        }
        // A stream always ends with its totals; this is only for completeness.
        CallReport {
            outcomes,
            summary: self.summary,
        }
    }

    /// Completes the call now: the sessions still owing an answer are sent
    /// `rpc.cancel` and listed as cancelled, then the totals follow.
    pub fn cancel(&mut self) {
        if !self.finished {
            self.complete(Ending::Cancel, None);
        }
    }

    fn on_event(&mut self, event: CallEvent) {
        match event {
            CallEvent::Ack {
                node,
                sessions,
                skipped,
            } => self.acknowledged(node, sessions, skipped),
            CallEvent::Result(entry) => self.answered(entry),
            CallEvent::Progress(report) => {
                if let Some(queued) = &self.progress {
                    queued.fetch_sub(1, Ordering::Relaxed);
                }
                // Only from a session that has not answered: never after its outcome.
                if self.owing.contains_key(&report.session) {
                    self.out.push_back(CallUpdate::Progress(report));
                }
                return;
            }
        }
        self.check();
    }

    /// A node says which of its sessions the call reached.
    fn acknowledged(&mut self, node: NodeId, sessions: Vec<(String, String)>, skipped: Vec<(String, String)>) {
        self.acks += 1;
        self.reached += sessions.len();
        for (session, user) in sessions {
            self.owing.insert(session, (user, node.clone()));
        }
        for (session, user) in skipped {
            let error = CallError::NotCalled("fan-in limit reached").to_error_object();
            self.outcome(CallEntry {
                session,
                user,
                node: node.to_string(),
                outcome: Err(error),
            });
        }
    }

    /// A session's answer, counted once.
    fn answered(&mut self, entry: CallEntry) {
        if self.owing.remove(&entry.session).is_some() {
            self.outcome(entry);
        }
    }

    /// Stops taking events and takes in those already queued, so that a node
    /// whose acknowledgement was on its way is cancelled too: once the
    /// channel is closed, the inbox cancels a late node itself.
    fn close_events(&mut self) {
        self.rx.close();
        while let Ok(event) = self.rx.try_recv() {
            match event {
                CallEvent::Ack {
                    node,
                    sessions,
                    skipped,
                } => self.acknowledged(node, sessions, skipped),
                CallEvent::Result(entry) => self.answered(entry),
                CallEvent::Progress(_) => {}
            }
        }
    }

    fn outcome(&mut self, entry: CallEntry) {
        let s = &mut self.summary;
        match &entry.outcome {
            Ok(_) => s.results += 1,
            Err(e) if e.code == codes::TIMEOUT => s.timeouts += 1,
            Err(e) if e.code == codes::CANCELLED => s.cancelled += 1,
            Err(_) => s.errors += 1,
        }
        self.out.push_back(CallUpdate::Outcome(entry));
    }

    /// Completes the call if its policy is met, or can no longer be, or nobody owes an answer.
    fn check(&mut self) {
        let all_acked = self.acks >= self.nodes;
        let results = self.summary.results;
        match self.policy {
            Some(policy @ (CallPolicy::First | CallPolicy::Quorum(_))) => {
                let needed = policy.needed(self.reached);
                if results >= needed {
                    self.complete(Ending::Cancel, Some(true));
                } else if all_acked && results + self.owing.len() < needed {
                    self.complete(Ending::Cancel, Some(false));
                }
            }
            _ => {
                if all_acked && self.owing.is_empty() {
                    let met = self.only_results();
                    self.complete(Ending::Cancel, Some(met));
                }
            }
        }
    }

    /// Whether every outcome so far is a result.
    fn only_results(&self) -> bool {
        let s = &self.summary;
        s.errors + s.timeouts + s.cancelled == 0
    }

    /// Ends the call: the sessions still owing an answer get their outcome
    /// (cancelled, or timed out at the deadline), the nodes are told to stop,
    /// and the totals are queued.
    fn complete(&mut self, ending: Ending, met: Option<bool>) {
        self.close_events();
        let nodes = self.owing_nodes();
        for (session, (user, node)) in std::mem::take(&mut self.owing) {
            let error = match ending {
                Ending::Cancel => ErrorObject::new(codes::CANCELLED),
                Ending::Deadline => CallError::Timeout.to_error_object(),
            };
            self.outcome(CallEntry {
                session,
                user,
                node: node.to_string(),
                outcome: Err(error),
            });
        }
        if matches!(ending, Ending::Deadline) && self.nodes != usize::MAX {
            for _ in self.acks..self.nodes {
                let error = ErrorObject::with_data(
                    codes::BROKER_UNAVAILABLE,
                    serde_json::json!({"reason": "a node the call reached never acknowledged it"}),
                );
                self.outcome(CallEntry {
                    session: String::new(),
                    user: String::new(),
                    node: String::new(),
                    outcome: Err(error),
                });
            }
        }
        if let Some(met) = met
            && self.policy.is_some()
        {
            self.summary.met = Some(met);
        }
        self.out.push_back(CallUpdate::Done(self.summary));
        self.finished = true;
        crate::metrics::hot().client_call_duration[self.target].record(self.started.elapsed());
        self.hub.calls.remove(&self.id);
        cancel_on(&self.hub, self.id, nodes);
    }

    /// The nodes whose sessions still owe an answer, each once.
    fn owing_nodes(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = Vec::new();
        for (_, node) in self.owing.values() {
            if !nodes.contains(node) {
                nodes.push(node.clone());
            }
        }
        nodes
    }

    fn met_at_deadline(&self) -> bool {
        match self.policy {
            Some(CallPolicy::All) | None => self.acks >= self.nodes && self.owing.is_empty() && self.only_results(),
            Some(policy) => self.summary.results >= policy.needed(self.reached),
        }
    }
}

#[derive(Clone, Copy)]
enum Ending {
    /// The caller no longer wants the answers still owed.
    Cancel,
    /// The deadline passed: what is still owed timed out.
    Deadline,
}

/// Tells `nodes` to stop calling their sessions for call `id` of this node.
pub(super) fn cancel_on(hub: &Arc<HubInner>, id: u64, nodes: Vec<NodeId>) {
    if nodes.is_empty() {
        return;
    }
    let broker = hub.broker.clone();
    let origin = hub.node.clone();
    tokio::spawn(async move {
        for node in nodes {
            let cancel = Envelope::CallCancel {
                call: id,
                origin: origin.clone(),
            };
            if let Err(e) = broker.send_to(&node, cancel).await {
                tracing::debug!(error = %e, "could not cancel a call on a node");
            }
        }
    });
}

impl Stream for CallStream {
    type Item = CallUpdate;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<CallUpdate>> {
        let this = &mut *self;
        loop {
            if let Some(update) = this.out.pop_front() {
                return Poll::Ready(Some(update));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            if let Poll::Ready(Some(event)) = this.rx.poll_recv(cx) {
                this.on_event(event);
                continue;
            }
            if this.deadline.as_mut().poll(cx).is_ready() {
                let met = this.met_at_deadline();
                this.complete(Ending::Deadline, Some(met));
                continue;
            }
            return Poll::Pending;
        }
    }
}

impl Drop for CallStream {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The caller went away: whoever still owes an answer is cancelled.
        // Nodes that have not acknowledged yet are cancelled when their
        // acknowledgement finds the call gone.
        self.hub.calls.remove(&self.id);
        self.close_events();
        cancel_on(&self.hub, self.id, self.owing_nodes());
    }
}

/// A call this node runs for an origin: how to cancel it, and how many of
/// its envelopes run here (a call to several users arrives once per user's
/// channel on Redis).
pub(super) type Running = (CancellationToken, usize);

/// Sends a call's frame to this node's sessions of the target and reports
/// who was reached and, as they come, their answers (and progress, when
/// asked) to the origin node, until the origin cancels it.
#[allow(clippy::too_many_arguments)]
pub(super) fn start_call(
    hub: &Arc<HubInner>,
    call: u64,
    origin: NodeId,
    target: &Target,
    frame: SharedFrame,
    timeout: Duration,
    max_sessions: usize,
    progress: bool,
) {
    let mut sessions = hub.registry.collect(target);
    let skipped: Vec<(String, String)> = if sessions.len() > max_sessions {
        sessions
            .split_off(max_sessions)
            .iter()
            .map(|s| (s.id().to_string(), s.user().to_owned()))
            .collect()
    } else {
        Vec::new()
    };
    let (progress_tx, mut progress_rx) = if progress {
        let (tx, rx) = mpsc::channel::<(SessionHandle, Box<RawValue>)>(PROGRESS_QUEUE);
        (Some(ProgressSink(tx)), Some(rx))
    } else {
        (None, None)
    };
    let mut waiting = FuturesUnordered::new();
    let mut reached = Vec::with_capacity(sessions.len());
    let mut immediate = Vec::new();
    for session in sessions {
        reached.push((session.id().to_string(), session.user().to_owned()));
        match session.expect_answer(call, timeout, progress_tx.clone()) {
            Ok(()) => {
                if session.send_frame(frame.0.clone()).is_err() {
                    session.shared.pending.remove(call);
                    immediate.push((session, CallError::SessionGone));
                    continue;
                }
                hub.deliveries.fetch_add(1, Ordering::Relaxed);
                // Made now, not when first polled: a cancel that comes
                // before then drops it, and so tells the client to stop.
                let answer = session.answer_to(call);
                waiting.push(async move { (session, answer.await) });
            }
            Err(e) => immediate.push((session, e)),
        }
    }
    drop(progress_tx);
    let cancelled = {
        let mut running = hub.running.entry((origin.clone(), call)).or_default();
        running.1 += 1;
        running.0.clone()
    };
    let hub = hub.clone();
    tokio::spawn(async move {
        let broker = hub.broker.clone();
        let node = hub.node.clone();
        let ack = Envelope::CallAck {
            call,
            node: node.clone(),
            sessions: reached,
            skipped,
        };
        if let Err(e) = broker.send_to(&origin, ack).await {
            tracing::warn!(error = %e, "could not report a call's sessions");
        }
        let report = |session: &SessionHandle, outcome: Result<Box<RawValue>, CallError>| Envelope::CallResult {
            call,
            session: session.id().to_string(),
            user: session.user().to_owned(),
            node: node.clone(),
            outcome: outcome.map_err(|e| e.to_error_object()),
        };
        for (session, error) in immediate {
            let _ = broker.send_to(&origin, report(&session, Err(error))).await;
        }
        let next_progress = async |rx: &mut Option<mpsc::Receiver<(SessionHandle, Box<RawValue>)>>| match rx {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        };
        while !waiting.is_empty() {
            tokio::select! {
                biased;
                () = cancelled.cancelled() => break,
                Some((session, progress)) = next_progress(&mut progress_rx) => {
                    let report = Envelope::CallProgress {
                        call,
                        session: session.id().to_string(),
                        user: session.user().to_owned(),
                        node: node.clone(),
                        progress,
                    };
                    let _ = broker.send_to(&origin, report).await;
                }
                Some((session, outcome)) = waiting.next() => {
                    let _ = broker.send_to(&origin, report(&session, outcome)).await;
                }
            }
        }
        // Dropping the calls still waiting sends their sessions `rpc.cancel`.
        drop(waiting);
        let key = (origin, call);
        hub.running.remove_if_mut(&key, |_, running| {
            running.1 -= 1;
            running.1 == 0
        });
    });
}
