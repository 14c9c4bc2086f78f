//! [`Stats`]: what the client has done since it was built.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one client, over all its connections. Read them with
/// [`Client::stats`](crate::Client::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// WebSocket text messages received (a batch answer counts once).
    pub messages_in: u64,
    /// WebSocket text messages sent.
    pub messages_out: u64,
    /// Bytes of text received.
    pub bytes_in: u64,
    /// Bytes of text sent.
    pub bytes_out: u64,
    /// Calls sent to the server (each call of a batch counts).
    pub calls: u64,
    /// Failures: calls that ended in an error, handlers that failed or
    /// panicked, and frames from the server that could not be understood.
    pub errors: u64,
    /// Successful reconnects (the first connection does not count).
    pub reconnects: u64,
    /// Server→client calls answered by a handler.
    pub handled: u64,
    /// `rpc.cancel` notifications sent for calls given up (timed out or dropped).
    pub cancels_sent: u64,
    /// Pushes dropped because a stream's buffer was full.
    pub dropped: u64,
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) calls: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) handled: AtomicU64,
    pub(crate) cancels_sent: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn sent(&self, bytes: usize) {
        bump(&self.messages_out);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn received(&self, bytes: usize) {
        bump(&self.messages_in);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            messages_in: get(&self.messages_in),
            messages_out: get(&self.messages_out),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            calls: get(&self.calls),
            errors: get(&self.errors),
            reconnects: get(&self.reconnects),
            handled: get(&self.handled),
            cancels_sent: get(&self.cancels_sent),
            dropped: get(&self.dropped),
        }
    }
}
