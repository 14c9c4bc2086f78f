//! The hub's ends of the broker: the inbox through which envelopes reach
//! this node's sessions, and the worker that keeps the broker's interest in
//! step with the topics and users this node has sessions for.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::HubInner;
use super::calls::{CallEntry, CallEvent, CallProgress, cancel_on, start_call};
use crate::broker::{Envelope, Inbox};
use crate::config::WebhookEvent;
use crate::session::Delivery;
use tokio::sync::mpsc::error::SendError;

/// The broker's way into this node.
pub(super) struct NodeInbox(pub(super) Weak<HubInner>);

impl Inbox for NodeInbox {
    fn figures(&self) -> crate::broker::NodeFigures {
        self.0.upgrade().map(|hub| hub.figures()).unwrap_or_default()
    }

    fn deliver(&self, envelope: Envelope) {
        let Some(hub) = self.0.upgrade() else { return };
        match envelope {
            Envelope::Deliver { target, frame } => {
                let mut n = 0u64;
                hub.registry.for_each(&target, |s| {
                    if s.send_frame(frame.0.clone()).is_ok() {
                        n += 1;
                    }
                });
                hub.deliveries.fetch_add(n, Ordering::Relaxed);
                crate::metrics::hot().messages_out.increment(n);
            }
            Envelope::Publication {
                topic,
                offset,
                epoch,
                frame,
            } => {
                let mut n = 0u64;
                if let Some(subs) = hub.registry.subscribers(&topic) {
                    let epoch = crate::session::epoch_tag(&epoch);
                    for s in subs.iter() {
                        if s.deliver_at(&topic, offset, epoch, &frame.0).is_ok() {
                            n += 1;
                        }
                    }
                }
                hub.deliveries.fetch_add(n, Ordering::Relaxed);
                crate::metrics::hot().messages_out.increment(n);
            }
            Envelope::Call {
                call,
                origin,
                target,
                frame,
                timeout_ms,
                max_sessions,
                progress,
            } => {
                start_call(
                    &hub,
                    call,
                    origin,
                    &target,
                    frame,
                    Duration::from_millis(timeout_ms),
                    max_sessions,
                    progress,
                );
            }
            Envelope::CallAck {
                call,
                node,
                sessions,
                skipped,
            } => {
                let events = hub.calls.get(&call).map(|t| t.events.clone());
                let ack = CallEvent::Ack {
                    node,
                    sessions,
                    skipped,
                };
                let refused = match events {
                    Some(tx) => tx.send(ack).err().map(|SendError(ack)| ack),
                    None => Some(ack),
                };
                // The caller is gone, or its policy was met: this node's sessions are not needed.
                if let Some(CallEvent::Ack { node, .. }) = refused {
                    cancel_on(&hub, call, vec![node]);
                }
            }
            Envelope::CallResult {
                call,
                session,
                user,
                node,
                outcome,
            } => {
                if let Some(tx) = hub.calls.get(&call).map(|t| t.events.clone()) {
                    let node = node.to_string();
                    let _ = tx.send(CallEvent::Result(CallEntry {
                        session,
                        user,
                        node,
                        outcome,
                    }));
                }
            }
            Envelope::CallProgress {
                call,
                session,
                user,
                node,
                progress,
            } => {
                if let Some(sink) = hub.calls.get(&call) {
                    let node = node.to_string();
                    sink.progress(CallProgress {
                        session,
                        user,
                        node,
                        progress,
                    });
                }
            }
            Envelope::CallCancel { call, origin } => {
                if let Some(running) = hub.running.get(&(origin, call)) {
                    running.0.cancel();
                }
            }
            Envelope::Disconnect { target, code, reason } => {
                hub.registry.for_each(&target, |s| s.disconnect(code, &reason));
            }
            Envelope::Subscribe { target, topics } => {
                hub.registry.for_each(&target, |s| {
                    for topic in &topics {
                        let delivery = if hub.streams.iter().any(|p| p.matches(topic)) {
                            Delivery::Live { last: 0, epoch: 0 }
                        } else {
                            Delivery::Plain
                        };
                        match hub.registry.subscribe(s, topic, hub.limits.max_subscriptions, delivery) {
                            Ok(true) => hub.emit(WebhookEvent::Subscribe, s, Some(topic)),
                            Ok(false) => {}
                            Err(e) => tracing::debug!(session = %s.id(), topic, ?e, "server-side subscribe refused"),
                        }
                    }
                });
            }
            Envelope::Unsubscribe { target, topics } => {
                hub.registry.for_each(&target, |s| {
                    for topic in &topics {
                        if hub.registry.unsubscribe(s, topic) {
                            hub.emit(WebhookEvent::Unsubscribe, s, Some(topic));
                        }
                    }
                });
            }
        }
    }
}

/// Hands interest changes to the broker, in order, and reports how far it got.
pub(super) async fn interest_worker(hub: std::sync::Weak<HubInner>, applied: tokio::sync::watch::Sender<u64>) {
    loop {
        let Some(inner) = hub.upgrade() else { return };
        let Some(q) = inner.registry.interest.clone() else {
            return;
        };
        let next = q.changes.lock().pop_front();
        match next {
            Some((seq, change)) => {
                if let Err(e) = inner.broker.interest(change).await {
                    tracing::warn!(error = %e, "broker interest change failed; it is retried on reconnect");
                }
                applied.send_replace(seq);
            }
            None => {
                let woken = q.wake.notified();
                drop(inner);
                // Wake up now and then to notice a dropped hub.
                let _ = tokio::time::timeout(Duration::from_secs(1), woken).await;
            }
        }
    }
}
