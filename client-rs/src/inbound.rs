//! What the connection task does with each message from the server, and the
//! [`Connection`] state it does it with.
//!
//! `Connection` is defined here rather than in `connection.rs` so that the
//! connection loop imports this module and not the other way round.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use serde_json::value::RawValue;
use switchboard_protocol::frame::{self, Frame, Message};
use switchboard_protocol::methods::{self, Cancel, Disconnect, Publication, SubscribeResult, Welcome};
use switchboard_protocol::{ErrorObject, codes};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::buffer::Buffer;
use crate::error::Error;
use crate::handler::IncomingCall;
use crate::shared::{Answer, MAX_UNCLAIMED, Pending, Shared};
use crate::stats::bump;
use crate::topic::{Resubscribed, SubscriptionEvent, Topic};

/// One live connection, as the connection task sees it.
pub(crate) struct Connection<'a> {
    pub(crate) shared: &'a Arc<Shared>,
    /// Where handlers queue their answers.
    pub(crate) tx: mpsc::Sender<String>,
    /// Frames the task itself answers with, written after each read.
    pub(crate) out: Vec<String>,
    /// Handlers running for server→client calls.
    pub(crate) handlers: JoinSet<()>,
    /// Each running handler's task and call by the canonical text of its
    /// request id (`frame::id_key`), for `rpc.cancel`. A server that reuses
    /// the id of a call still running replaces the entry: the newer call is
    /// the one a cancel can mean.
    pub(crate) running: HashMap<String, (tokio::task::Id, IncomingCall)>,
    /// The key in `running` of each handler's task, to remove its entry when it ends.
    pub(crate) by_task: HashMap<tokio::task::Id, String>,
    /// What the server announced with `rpc.disconnect`.
    pub(crate) disconnect: Option<Disconnect>,
    /// Wakes the token refresher when the server warns with `rpc.expiring`.
    pub(crate) expiring: Option<Arc<Notify>>,
}

/// The params of `rpc.progress`, borrowed from the frame: a report for a
/// call nobody watches is dropped without copying anything.
#[derive(serde::Deserialize)]
struct ProgressParams<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    progress: &'a RawValue,
}

impl Connection<'_> {
    /// Queues an error answer to request `id`.
    pub(crate) fn answer_error(&mut self, id: &str, error: &ErrorObject) {
        self.out.push(frame::write_error(Some(id), error));
    }

    /// Handles one text frame.
    pub(crate) fn on_text(&mut self, text: &str) {
        match frame::parse(text) {
            Frame::Single(message) => self.on_message(message),
            Frame::Batch(messages) => {
                for message in messages {
                    self.on_message(message);
                }
            }
            Frame::ParseError | Frame::EmptyBatch => {
                tracing::warn!("ignored a frame from the server that is not JSON-RPC");
                bump(&self.shared.stats.errors);
            }
        }
    }

    fn on_message(&mut self, message: Message<'_>) {
        match message {
            Message::Response { id, outcome } => {
                let answer = outcome.map(|r| r.to_owned()).map_err(Error::Rpc);
                self.on_response(id, answer);
            }
            Message::Request { id, method, params } => self.on_request(id, &method, params),
            Message::Notification { method, params } => self.on_notification(&method, params),
            Message::Invalid {
                id,
                reason,
                was_response,
            } => {
                tracing::warn!(reason, "invalid message from the server");
                bump(&self.shared.stats.errors);
                match id {
                    Some(id) if was_response => self.on_response(id, Err(Error::InvalidResponse(reason))),
                    Some(id) => self.answer_error(id.get(), &frame::invalid_request(reason)),
                    None => {}
                }
            }
        }
    }

    /// An answer to one of our calls.
    fn on_response(&mut self, id: &RawValue, answer: Answer) {
        let Some(id) = frame::our_id(id) else {
            return;
        };
        // A missing entry is a late answer to a call its caller gave up.
        let Some(pending) = self.shared.link.lock().pending.remove(&id) else {
            return;
        };
        match pending {
            Pending::Call(tx) => {
                let _ = tx.send(answer);
            }
            Pending::Watched { reply, progress } => {
                // Closed first: whoever reads the progress sees its end no
                // later than the answer, and nothing after it.
                progress.close();
                let _ = reply.send(answer);
            }
            Pending::Subscribe { topics, resume, reply } => {
                self.apply_subscribe(&topics, resume, &answer);
                if let Some(tx) = reply {
                    let _ = tx.send(answer);
                }
            }
        }
    }

    /// Applies the answer to an `rpc.subscribe` to the topics, before any
    /// publication that follows it: the positions to resume from, and (after
    /// a reconnect) whether each topic was recovered.
    fn apply_subscribe(&mut self, asked: &[(String, bool)], resume: bool, answer: &Answer) {
        let result = match answer {
            Ok(raw) => match serde_json::from_str::<SubscribeResult>(raw.get()) {
                Ok(r) => r,
                Err(_) => {
                    bump(&self.shared.stats.errors);
                    return;
                }
            },
            Err(Error::Rpc(e)) if resume => {
                tracing::warn!(error = %e, "topics could not be renewed");
                let pushes = self.shared.pushes.lock();
                for (topic, _) in asked {
                    if let Some(t) = pushes.topics.get(topic) {
                        let dropped = t.buffer.push(SubscriptionEvent::ResubscribeFailed(e.clone()));
                        self.shared.count_dropped(dropped);
                    }
                }
                return;
            }
            Err(_) => return,
        };
        let mut pushes = self.shared.pushes.lock();
        for r in result.topics {
            let Some(t) = pushes.topics.get_mut(&r.topic) else {
                continue;
            };
            if let (Some(offset), Some(epoch)) = (r.offset, &r.epoch) {
                let same_epoch = t.position.as_ref().is_some_and(|p| &p.epoch == epoch);
                // A recovered topic moves forward with the replayed publications
                // themselves; otherwise the stream continues after `offset`.
                if !(r.recovered && same_epoch) {
                    t.position = Some(methods::StreamPosition {
                        offset,
                        epoch: epoch.clone(),
                    });
                }
            }
            if resume {
                let since_sent = asked.iter().any(|(topic, since)| *topic == r.topic && *since);
                let event = SubscriptionEvent::Resubscribed(Resubscribed {
                    recovered: r.recovered && since_sent && r.offset.is_some(),
                    gap: r.gap,
                    position: t.position.clone(),
                });
                let dropped = t.buffer.push(event);
                self.shared.count_dropped(dropped);
            }
        }
    }

    /// A call from the server: run its handler in a task of its own.
    fn on_request(&mut self, id: &RawValue, method: &str, params: Option<&RawValue>) {
        let handler = if methods::is_reserved(method) {
            None
        } else {
            self.shared.handlers.read().get(method).cloned()
        };
        let Some(handler) = handler else {
            self.answer_error(id.get(), &ErrorObject::new(codes::METHOD_NOT_FOUND));
            return;
        };
        if self.handlers.len() >= self.shared.config.max_handlers {
            self.answer_error(id.get(), &ErrorObject::new(codes::OVERLOADED));
            return;
        }
        let call = IncomingCall::new(method.to_owned(), id.to_owned(), self.tx.clone());
        let key = frame::id_key(id.get()).into_owned();
        let params = params.map(ToOwned::to_owned);
        let shared = Arc::downgrade(self.shared);
        let watched = call.clone();
        let abort = self.handlers.spawn(async move {
            let id_text = call.id().get();
            // The handler is called inside the guarded future, so a panic
            // while making its future is caught too.
            let handled = call.clone();
            let work = AssertUnwindSafe(async move { handler(params, handled).await }).catch_unwind();
            // An `rpc.cancel` drops the handler's future and answers -32011 in
            // its place: this task sends the call's one answer either way.
            let outcome = tokio::select! {
                biased;
                () = call.cancelled() => None,
                outcome = work => Some(outcome),
            };
            let (frame, ok) = match outcome {
                None => {
                    tracing::debug!(
                        method = call.method(),
                        "the server cancelled a call; its handler was dropped"
                    );
                    let error = ErrorObject::new(codes::CANCELLED);
                    (frame::write_error(Some(id_text), &error), None)
                }
                Some(Ok(Ok(result))) => (frame::write_result(id_text, result.get()), Some(true)),
                Some(Ok(Err(error))) => (frame::write_error(Some(id_text), &error), Some(false)),
                Some(Err(_)) => {
                    tracing::error!(method = call.method(), "a handler panicked");
                    let error = ErrorObject::new(codes::INTERNAL_ERROR);
                    (frame::write_error(Some(id_text), &error), Some(false))
                }
            };
            // A cancelled call counts neither as handled nor as an error.
            if let (Some(shared), Some(ok)) = (shared.upgrade(), ok) {
                bump(&shared.stats.handled);
                if !ok {
                    bump(&shared.stats.errors);
                }
            }
            call.answer(frame).await;
        });
        self.by_task.insert(abort.id(), key.clone());
        self.running.insert(key, (abort.id(), watched));
    }

    fn on_notification(&mut self, method: &str, params: Option<&RawValue>) {
        let text = params.map_or("null", RawValue::get);
        match method {
            methods::MESSAGE => match serde_json::from_str::<Publication>(text) {
                Ok(p) => self.on_publication(p),
                Err(_) => bump(&self.shared.stats.errors),
            },
            methods::CANCEL => {
                // The handler's task answers -32011 in its place, unless its answer was already on its way.
                if let Ok(cancel) = serde_json::from_str::<Cancel>(text)
                    && let Some((_, call)) = self.running.remove(&frame::value_key(&cancel.id))
                {
                    call.cancel();
                }
            }
            methods::PROGRESS => self.on_progress(text),
            methods::EXPIRING => match &self.expiring {
                Some(refresher) => refresher.notify_one(),
                None => tracing::warn!("the session's token expires soon, and there is no token source to refresh it"),
            },
            methods::DISCONNECT => self.disconnect = serde_json::from_str::<Disconnect>(text).ok(),
            methods::WELCOME => {
                if let Ok(w) = serde_json::from_str::<Welcome>(text) {
                    *self.shared.welcome.lock() = Some(w);
                }
            }
            // The gateway's own notifications this client does not use are not
            // the application's.
            _ if methods::is_reserved(method) => {}
            _ => self.on_push(method, params),
        }
    }

    /// Progress of one of our calls: to its caller if it watches the
    /// call's progress, otherwise dropped. Reports for a call that has its
    /// answer (or was given up) find no pending entry and are dropped too.
    fn on_progress(&mut self, text: &str) {
        let Ok(report) = serde_json::from_str::<ProgressParams<'_>>(text) else {
            bump(&self.shared.stats.errors);
            return;
        };
        let Some(id) = frame::our_id(report.id) else {
            return;
        };
        let link = self.shared.link.lock();
        if let Some(Pending::Watched { progress, .. }) = link.pending.get(&id) {
            let dropped = progress.push(report.progress.to_owned());
            self.shared.count_dropped(dropped);
        }
    }

    /// A notification for the application: into its method's buffer.
    fn on_push(&mut self, method: &str, params: Option<&RawValue>) {
        let mut pushes = self.shared.pushes.lock();
        if !pushes.methods.contains_key(method) {
            // A stream holds the only other reference to a claimed buffer.
            let unclaimed = pushes.methods.values().filter(|b| Arc::strong_count(b) == 1).count();
            if unclaimed >= MAX_UNCLAIMED {
                drop(pushes);
                tracing::debug!(method, "dropped a notification nobody reads");
                self.shared.count_dropped(true);
                return;
            }
            let buffer = Arc::new(Buffer::new(self.shared.config.buffer));
            pushes.methods.insert(method.to_owned(), buffer);
        }
        if let Some(buffer) = pushes.methods.get(method) {
            let dropped = buffer.push(params.map(ToOwned::to_owned));
            self.shared.count_dropped(dropped);
        }
    }

    /// A publication: into its topic's buffer, remembering its position.
    fn on_publication(&mut self, p: Publication) {
        let mut pushes = self.shared.pushes.lock();
        if !pushes.topics.contains_key(&p.topic) {
            let unclaimed = pushes.topics.values().filter(|t| !t.wanted).count();
            if unclaimed >= MAX_UNCLAIMED {
                drop(pushes);
                self.shared.count_dropped(true);
                return;
            }
            let topic = Topic::new(self.shared.config.buffer, false);
            pushes.topics.insert(p.topic.clone(), topic);
        }
        let Some(t) = pushes.topics.get_mut(&p.topic) else {
            return;
        };
        if let (Some(offset), Some(epoch)) = (p.offset, &p.epoch) {
            if t.last.as_ref().is_some_and(|(e, o)| e == epoch && offset <= *o) {
                // Already delivered: the server's replay and live stream overlap nowhere,
                // but a duplicate must never reach the application.
                return;
            }
            t.last = Some((epoch.clone(), offset));
            t.advance(epoch, offset);
        }
        let dropped = t.buffer.push(SubscriptionEvent::Publication(p));
        self.shared.count_dropped(dropped);
    }
}
