//! A session as the rest of the gateway sees it: its handle, its bounded
//! outbound queue (the mailbox the session actor drains), its table of
//! calls waiting for the client's answer, the client's requests it is
//! working on (for `rpc.cancel`), and its topic subscriptions.
//!
//! Everything here is shared between the session actor (`crate::actor`),
//! which owns the socket, and whoever sends to the session (the hub,
//! dispatch, library users): they enqueue through the handle, the actor
//! writes.

mod handle;
mod pending;
mod queue;
mod requests;
mod topics;

pub use handle::{ClientCall, ClientCallOf, ProgressReports, SessionHandle, SessionId};
pub(crate) use handle::{encode_params, truncate_reason};
pub(crate) use pending::{PROGRESS_QUEUE, ProgressSink, next_call_id};
pub use queue::SendError;
pub(crate) use queue::{CloseRequest, OutboundQueue, Signal};
pub(crate) use requests::IdText;
pub(crate) use topics::{Delivery, Subscription, epoch_tag};
