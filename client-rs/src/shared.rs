//! [`Shared`]: the state a client's handles, streams and connection task share.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use parking_lot::{Mutex, RwLock};
use serde_json::value::RawValue;
use switchboard_protocol::methods::Welcome;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::buffer::Buffer;
use crate::config::Config;
use crate::error::Error;
use crate::handler::Handler;
use crate::state::{ConnectionState, States};
use crate::stats::{Counters, bump};
use crate::topic::Topic;

/// How many notification methods, and how many topics, may be buffered
/// without a reader. Pushes for further unknown ones are dropped (and counted):
/// a server cannot make the client grow without bound.
pub(crate) const MAX_UNCLAIMED: usize = 64;

/// Everything shared.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) link: Mutex<Link>,
    pub(crate) next_id: AtomicU64,
    pub(crate) handlers: RwLock<HashMap<String, Handler>>,
    pub(crate) pushes: Mutex<Pushes>,
    pub(crate) states: Mutex<States>,
    pub(crate) welcome: Mutex<Option<Welcome>>,
    pub(crate) stats: Counters,
    pub(crate) shutdown: CancellationToken,
    /// Slots for calls in flight; shared, so that a [`ProgressCall`](crate::ProgressCall) can hold one.
    pub(crate) in_flight: Arc<Semaphore>,
    pub(crate) task: Mutex<Option<JoinHandle<()>>>,
    /// Set by the first `connect` (or a `close` before any).
    pub(crate) started: AtomicBool,
}

/// The current connection and the calls waiting on it, under one lock, so
/// that a call is either registered before a connection ends (and failed by
/// its teardown) or sees that there is no connection.
#[derive(Default)]
pub(crate) struct Link {
    pub(crate) conn: Option<Conn>,
    /// Set once the client is closed for good: the code and reason.
    pub(crate) closed: Option<(Option<u16>, String)>,
    pub(crate) pending: HashMap<u64, Pending>,
}

/// A live connection, as callers see it.
#[derive(Clone)]
pub(crate) struct Conn {
    /// Frames for the connection task to write.
    pub(crate) tx: mpsc::Sender<String>,
    /// The server's batch limit, when it announced one.
    pub(crate) max_batch: Option<usize>,
}

/// The answer to a call: its raw result or why there is none.
pub(crate) type Answer = Result<Box<RawValue>, Error>;

/// A request of ours waiting for its answer.
pub(crate) enum Pending {
    /// An ordinary call: the answer goes to the caller.
    Call(oneshot::Sender<Answer>),
    /// A call whose caller reads its progress: each `rpc.progress` for it
    /// goes into `progress`, which is closed before the answer is sent on.
    Watched {
        reply: oneshot::Sender<Answer>,
        progress: Arc<Buffer<Box<RawValue>>>,
    },
    /// An `rpc.subscribe`: the connection task applies the answer to the
    /// topics at once (before any publication that follows it), then hands
    /// it on to `reply`.
    Subscribe {
        /// The topics asked for, each with whether a position was sent.
        topics: Vec<(String, bool)>,
        /// Whether this renews subscriptions after a reconnect.
        resume: bool,
        reply: Option<oneshot::Sender<Answer>>,
    },
}

impl Pending {
    /// Ends the call with `error`.
    pub(crate) fn fail(self, error: impl Fn() -> Error) {
        match self {
            Self::Call(tx) | Self::Subscribe { reply: Some(tx), .. } => {
                let _ = tx.send(Err(error()));
            }
            Self::Watched { reply, progress } => {
                progress.close();
                let _ = reply.send(Err(error()));
            }
            Self::Subscribe { reply: None, .. } => {}
        }
    }
}

impl Link {
    /// The error for "no connection": closed for good, or between connections.
    pub(crate) fn no_connection(&self) -> Error {
        match &self.closed {
            Some((code, reason)) => Error::Closed {
                code: *code,
                reason: reason.clone(),
            },
            None => Error::Disconnected,
        }
    }
}

/// Pushes waiting for their readers.
#[derive(Default)]
pub(crate) struct Pushes {
    /// Notification params by method.
    pub(crate) methods: HashMap<String, Arc<Buffer<Option<Box<RawValue>>>>>,
    /// Topics, whether the application subscribed to them or not.
    pub(crate) topics: HashMap<String, Topic>,
    /// The personal topic of the current user, when managed.
    pub(crate) personal: Option<String>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("url", &self.config.url)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            config,
            link: Mutex::new(Link::default()),
            next_id: AtomicU64::new(1),
            handlers: RwLock::new(HashMap::new()),
            pushes: Mutex::new(Pushes::default()),
            states: Mutex::new(States::default()),
            welcome: Mutex::new(None),
            stats: Counters::default(),
            shutdown: CancellationToken::new(),
            task: Mutex::new(None),
            started: AtomicBool::new(false),
        }
    }

    pub(crate) fn set_state(&self, state: ConnectionState) {
        tracing::debug!(?state, "connection state");
        self.states.lock().set(state);
    }

    /// Sends a frame on the current connection without waiting (used where
    /// waiting is impossible, such as in `Drop`). Returns whether it was queued.
    pub(crate) fn try_send(&self, frame: String) -> bool {
        let conn = self.link.lock().conn.clone();
        conn.is_some_and(|c| c.tx.try_send(frame).is_ok())
    }

    /// Counts a push that was dropped because its buffer was full.
    pub(crate) fn count_dropped(&self, dropped: bool) {
        if dropped {
            bump(&self.stats.dropped);
        }
    }
}
