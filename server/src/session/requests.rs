//! The client's requests a session is still working on, by id, so that
//! `rpc.cancel {id}` can stop them.
//!
//! Every request that answers later (an asynchronous method, an upstream
//! call) is entered here with its id's key (`frame::id_key`: ids match by
//! JSON value) while it runs, and leaves when it ends, however it ends. A
//! cancel aborts the future running the request, which is then answered
//! `-32011`, and fires the request's `CancellationToken` if a handler asked
//! for one. A client that reuses an id while a request with it still runs
//! gets both cancelled by one cancel: the id stays in use until its answer
//! has been sent. The table is a short vector: it holds at most
//! `limits.max_in_flight` entries, each looked at only when a request starts,
//! ends or is cancelled.

use futures_util::future::{AbortHandle, AbortRegistration};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// A request's id as the client wrote it, kept for an answer that comes
/// later. Most ids are short numbers or strings, kept without an allocation.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum IdText {
    Inline { len: u8, bytes: [u8; 22] },
    Long(Box<str>),
}

impl IdText {
    pub(crate) fn new(id: &str) -> Self {
        let mut bytes = [0; 22];
        match bytes.get_mut(..id.len()) {
            Some(inline) => {
                inline.copy_from_slice(id.as_bytes());
                Self::Inline {
                    len: id.len() as u8,
                    bytes,
                }
            }
            None => Self::Long(id.into()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Whole characters of a `str` were copied.
            Self::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or("null"),
            Self::Long(id) => id,
        }
    }
}

#[derive(Default)]
pub(crate) struct Requests {
    running: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    entries: Vec<Entry>,
    /// Numbers the requests, so that each ends its own entry even when ids repeat.
    next: u64,
}

struct Entry {
    /// The request's own number.
    serial: u64,
    key: IdText,
    /// Stops the future running the request.
    abort: AbortHandle,
    /// For the handler, to see the cancellation; made when it asks.
    token: Option<CancellationToken>,
    cancelled: bool,
}

/// A request entered in the table: it must [`end`](Requests::end) once.
pub(crate) struct Started {
    pub(crate) serial: u64,
    /// For `futures_util::future::Abortable`: the request's future ends when cancelled.
    pub(crate) abort: AbortRegistration,
}

/// Entries kept between bursts; a larger vector is freed once empty.
const KEPT_CAPACITY: usize = 8;

impl Requests {
    /// Enters a request with id key `key`.
    pub(crate) fn start(&self, key: &str) -> Started {
        let (abort, registration) = AbortHandle::new_pair();
        let mut table = self.running.lock();
        let serial = table.next;
        table.next += 1;
        table.entries.push(Entry {
            serial,
            key: IdText::new(key),
            abort,
            token: None,
            cancelled: false,
        });
        Started {
            serial,
            abort: registration,
        }
    }

    /// Request `serial` ended.
    pub(crate) fn end(&self, serial: u64) {
        let mut table = self.running.lock();
        if let Some(i) = table.entries.iter().position(|e| e.serial == serial) {
            table.entries.swap_remove(i);
        }
        if table.entries.is_empty() && table.entries.capacity() > KEPT_CAPACITY {
            // After a burst, an idle session keeps no large table.
            table.entries = Vec::new();
        }
    }

    /// The token that fires when request `serial` is cancelled.
    pub(crate) fn token(&self, serial: u64) -> CancellationToken {
        let mut table = self.running.lock();
        match table.entries.iter_mut().find(|e| e.serial == serial) {
            Some(entry) => {
                let token = entry.token.get_or_insert_with(CancellationToken::new);
                if entry.cancelled {
                    token.cancel();
                }
                token.clone()
            }
            None => CancellationToken::new(),
        }
    }

    /// Runs `f` if request `serial` is running and not cancelled, holding
    /// the table so that the request cannot end meanwhile (its answer is
    /// queued after it ends): what `f` queues comes before the answer.
    /// `None` when it is not.
    pub(crate) fn while_running<R>(&self, serial: u64, f: impl FnOnce() -> R) -> Option<R> {
        let table = self.running.lock();
        table.entries.iter().any(|e| e.serial == serial && !e.cancelled).then(f)
    }

    /// Cancels the requests running with id key `key`; false when there is
    /// none (unknown, or already answered).
    pub(crate) fn cancel(&self, key: &str) -> bool {
        let mut found = false;
        for entry in self.running.lock().entries.iter_mut().filter(|e| e.key.as_str() == key) {
            found = true;
            entry.cancelled = true;
            entry.abort.abort();
            if let Some(token) = &entry.token {
                token.cancel();
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;
    use futures_util::future::{AbortRegistration, Abortable};

    use super::Requests;

    fn aborted(registration: AbortRegistration) -> bool {
        matches!(
            Abortable::new(std::future::pending::<()>(), registration).now_or_never(),
            Some(Err(_))
        )
    }

    #[test]
    fn a_cancel_reaches_every_request_with_the_id_until_the_last_ends() {
        let requests = Requests::default();
        let first = requests.start("1");
        let token = requests.token(first.serial);
        let again = requests.start("1");
        let other = requests.start("\"1\"");
        assert!(requests.cancel("1"));
        assert!(token.is_cancelled());
        assert!(
            requests.while_running(again.serial, || ()).is_none(),
            "no progress once cancelled"
        );
        assert!(aborted(first.abort) && aborted(again.abort), "both futures end");
        assert!(!aborted(other.abort), "\"1\" is another id");
        requests.end(first.serial);
        requests.end(again.serial);
        assert!(!requests.cancel("1"), "ended: nothing left to cancel");
        requests.end(other.serial);
        assert!(!requests.cancel("\"1\""));
    }

    #[test]
    fn each_request_ends_its_own_entry_when_ids_repeat() {
        let requests = Requests::default();
        let finished = requests.start("7");
        let running = requests.start("7");
        requests.end(finished.serial);
        assert!(requests.while_running(running.serial, || ()).is_some());
        assert!(requests.cancel("7"));
        assert!(aborted(running.abort), "the one still running is the one cancelled");
    }
}
