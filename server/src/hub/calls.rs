//! Calls to clients through the hub: one frame to every session of a
//! target, on every node, and one entry per session reached (its result,
//! its error, or a timeout or disconnect) collected by the calling node.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Serialize;
use serde_json::value::RawValue;
use switchboard_protocol::{ErrorObject, Target, frame};
use tokio::sync::mpsc;

use super::{Hub, HubError, HubInner, dedup};
use crate::broker::{Envelope, NodeId, SharedFrame};
use crate::error::CallError;
use crate::session::SessionHandle;

/// One session's answer to a multicast [`Hub::call`].
#[derive(Debug, Clone)]
pub struct CallEntry {
    /// The session.
    pub session: String,
    /// Its user.
    pub user: String,
    /// Its result, or why there is none (its error, a timeout, a disconnect).
    pub outcome: Result<Box<RawValue>, ErrorObject>,
}

impl Serialize for CallEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("CallEntry", 3)?;
        st.serialize_field("session", &self.session)?;
        st.serialize_field("user", &self.user)?;
        match &self.outcome {
            Ok(result) => st.serialize_field("result", result)?,
            Err(error) => st.serialize_field("error", error)?,
        }
        st.end()
    }
}

pub(super) enum CallEvent {
    Ack {
        sessions: Vec<(String, String)>,
        skipped: Vec<(String, String)>,
    },
    Result(CallEntry),
}

/// Extra time the caller waits past the per-session timeout for remote nodes' reports.
pub(super) const REPORT_GRACE: Duration = Duration::from_millis(250);

impl Hub {
    /// Calls `method(params)` on every session of the target and collects one
    /// entry per session reached: its result, its error, or a timeout or
    /// disconnect error. Never waits much longer than `timeout`.
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

    /// Like [`call`](Self::call) with params already serialised.
    pub async fn call_raw(
        &self,
        target: Target,
        method: &str,
        params: Option<&RawValue>,
        timeout: Duration,
    ) -> Result<Vec<CallEntry>, HubError> {
        let timeout = self.inner.limits.clamp_timeout(timeout);
        let id = crate::session::next_call_id();
        let frame: SharedFrame = frame::write_request(id, method, params.map(RawValue::get)).into();
        self.count_frame();
        let (tx, mut rx) = mpsc::channel(self.inner.limits.max_call_fanout + 64);
        self.inner.calls.insert(id, tx);
        let _forget = ForgetCall { hub: &self.inner, id };

        let nodes = self
            .inner
            .broker
            .broadcast(Envelope::Call {
                call: id,
                origin: self.inner.node.clone(),
                target: dedup(target),
                frame,
                timeout_ms: timeout.as_millis() as u64,
                max_sessions: self.inner.limits.max_call_fanout,
            })
            .await?;

        let deadline = tokio::time::Instant::now() + timeout + REPORT_GRACE;
        let mut acks = 0;
        let mut reached: HashMap<String, String> = HashMap::new();
        let mut entries: Vec<CallEntry> = Vec::new();
        let mut answered = 0;
        while acks < nodes || answered < reached.len() {
            let event = tokio::select! {
                event = rx.recv() => event,
                _ = tokio::time::sleep_until(deadline) => None,
            };
            match event {
                Some(CallEvent::Ack { sessions, skipped }) => {
                    acks += 1;
                    reached.extend(sessions);
                    for (session, user) in skipped {
                        let error = CallError::NotCalled("fan-in limit reached").to_error_object();
                        entries.push(CallEntry {
                            session,
                            user,
                            outcome: Err(error),
                        });
                    }
                }
                Some(CallEvent::Result(entry)) => {
                    answered += 1;
                    entries.push(entry);
                }
                None => break,
            }
        }
        // Sessions reached whose report never arrived (a node went away) count as timed out.
        for (session, user) in reached {
            if !entries.iter().any(|e| e.session == session) {
                entries.push(CallEntry {
                    session,
                    user,
                    outcome: Err(CallError::Timeout.to_error_object()),
                });
            }
        }
        Ok(entries)
    }
}

/// Removes a finished call's collector, however the caller's future ends.
struct ForgetCall<'a> {
    hub: &'a HubInner,
    id: u64,
}

impl Drop for ForgetCall<'_> {
    fn drop(&mut self) {
        self.hub.calls.remove(&self.id);
    }
}

/// Sends a call's frame to this node's sessions of the target and reports
/// who was reached and, as they come, their answers to the origin node.
pub(super) fn start_call(
    hub: &Arc<HubInner>,
    call: u64,
    origin: NodeId,
    target: &Target,
    frame: SharedFrame,
    timeout: Duration,
    max_sessions: usize,
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
    let mut waiting = FuturesUnordered::new();
    let mut reached = Vec::with_capacity(sessions.len());
    let mut immediate = Vec::new();
    for session in sessions {
        reached.push((session.id().to_string(), session.user().to_owned()));
        match session.expect_answer(call, timeout) {
            Ok(()) => {
                if session.send_frame(frame.0.clone()).is_err() {
                    session.shared.pending.remove(call);
                    immediate.push((session, CallError::SessionGone));
                    continue;
                }
                hub.deliveries.fetch_add(1, Ordering::Relaxed);
                waiting.push(async move {
                    let outcome = session.answer_to(call).await;
                    (session, outcome)
                });
            }
            Err(e) => immediate.push((session, e)),
        }
    }
    let broker = hub.broker.clone();
    tokio::spawn(async move {
        let ack = Envelope::CallAck {
            call,
            node: origin.clone(),
            sessions: reached,
            skipped,
        };
        if let Err(e) = broker.send_to(&origin, ack).await {
            tracing::warn!(error = %e, "could not report a call's sessions");
        }
        let report = |session: SessionHandle, outcome: Result<Box<RawValue>, CallError>| Envelope::CallResult {
            call,
            session: session.id().to_string(),
            user: session.user().to_owned(),
            outcome: outcome.map_err(|e| e.to_error_object()),
        };
        for (session, error) in immediate {
            let _ = broker.send_to(&origin, report(session, Err(error))).await;
        }
        while let Some((session, outcome)) = waiting.next().await {
            let _ = broker.send_to(&origin, report(session, outcome)).await;
        }
    });
}
