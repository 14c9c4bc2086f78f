//! The client's requests a session is still working on, by id, so that
//! `rpc.cancel {id}` can stop them.
//!
//! Every request that answers later (an asynchronous method, an upstream
//! call) is entered here with its id's key (`frame::id_key`: ids match by
//! JSON value) while it runs, and leaves when it ends, however it ends. A
//! cancel fires the request's token: the future running it is dropped and
//! the request answered `-32011`. A client that reuses an id while a
//! request with it still runs shares that request's token: the id stays in
//! use until its answer has been sent.

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub(crate) struct Requests {
    by_id: Mutex<HashMap<Box<str>, Entry>>,
}

struct Entry {
    token: CancellationToken,
    /// Requests running with this id.
    count: usize,
}

impl Requests {
    /// Enters a request with id key `key`; it must [`end`](Self::end) once.
    pub(crate) fn start(&self, key: &str) -> CancellationToken {
        let mut by_id = self.by_id.lock();
        if let Some(entry) = by_id.get_mut(key) {
            entry.count += 1;
            return entry.token.clone();
        }
        let token = CancellationToken::new();
        by_id.insert(
            key.into(),
            Entry {
                token: token.clone(),
                count: 1,
            },
        );
        token
    }

    /// A request with id key `key` ended.
    pub(crate) fn end(&self, key: &str) {
        let mut by_id = self.by_id.lock();
        if let Some(entry) = by_id.get_mut(key) {
            entry.count -= 1;
            if entry.count == 0 {
                by_id.remove(key);
                if by_id.is_empty() && by_id.capacity() > 16 {
                    // After a burst, an idle session keeps no large table.
                    *by_id = HashMap::new();
                }
            }
        }
    }

    /// Cancels the requests running with id key `key`; false when there is
    /// none (unknown, or already answered).
    pub(crate) fn cancel(&self, key: &str) -> bool {
        match self.by_id.lock().get(key) {
            Some(entry) => {
                entry.token.cancel();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Requests;

    #[test]
    fn a_cancel_reaches_every_request_with_the_id_until_the_last_ends() {
        let requests = Requests::default();
        let first = requests.start("1");
        let again = requests.start("1");
        let other = requests.start("\"1\"");
        requests.end("1");
        assert!(requests.cancel("1"));
        assert!(first.is_cancelled() && again.is_cancelled());
        assert!(!other.is_cancelled(), "\"1\" is another id");
        requests.end("1");
        assert!(!requests.cancel("1"), "ended: nothing left to cancel");
        requests.end("\"1\"");
        assert!(!requests.cancel("\"1\""));
    }
}
