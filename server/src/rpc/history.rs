//! Reading a recoverable topic's history for a client that names a position:
//! the one decision of whether what came after that position can still be
//! read (`rpc.subscribe` with `since` replays it).

use switchboard_protocol::methods::{RecoveryGap, StreamPosition};

use crate::broker::History;

/// Why the publications after `since` cannot all be read from `history`, or
/// `None` when they can.
///
/// A position from another epoch, or beyond the stream's newest offset, is
/// from a stream that no longer exists (lost history, a restarted Redis
/// without persistence, another topic's position): `EpochChanged`. A
/// position older than the oldest publication kept: `WindowExceeded`. With
/// `max_replay`, a reader that must take every missed publication at once
/// (a subscription's replay) also refuses more than that: `ReplayTooLarge`.
pub(crate) fn gap(since: &StreamPosition, history: &History, max_replay: Option<usize>) -> Option<RecoveryGap> {
    if since.epoch != history.epoch || since.offset > history.top {
        Some(RecoveryGap::EpochChanged)
    } else if since.offset + 1 < history.first {
        Some(RecoveryGap::WindowExceeded)
    } else if max_replay.is_some_and(|max| history.top - since.offset > max as u64) {
        Some(RecoveryGap::ReplayTooLarge)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(epoch: &str, first: u64, top: u64) -> History {
        History {
            epoch: epoch.to_owned(),
            top,
            first,
            entries: Vec::new(),
        }
    }

    fn at(offset: u64, epoch: &str) -> StreamPosition {
        StreamPosition {
            offset,
            epoch: epoch.to_owned(),
        }
    }

    #[test]
    fn a_position_is_judged_against_the_epoch_the_window_and_the_replay_limit() {
        let h = history("e", 5, 20);
        assert_eq!(gap(&at(4, "e"), &h, None), None, "the next one is the oldest kept");
        assert_eq!(gap(&at(20, "e"), &h, None), None, "nothing missed");
        assert_eq!(gap(&at(3, "e"), &h, None), Some(RecoveryGap::WindowExceeded));
        assert_eq!(gap(&at(21, "e"), &h, None), Some(RecoveryGap::EpochChanged));
        assert_eq!(gap(&at(10, "other"), &h, None), Some(RecoveryGap::EpochChanged));
        assert_eq!(gap(&at(10, "e"), &h, Some(10)), None);
        assert_eq!(gap(&at(9, "e"), &h, Some(10)), Some(RecoveryGap::ReplayTooLarge));
        // A stream whose publications all expired keeps its top: only the top itself is complete.
        let empty = history("e", 21, 20);
        assert_eq!(gap(&at(20, "e"), &empty, None), None);
        assert_eq!(gap(&at(19, "e"), &empty, None), Some(RecoveryGap::WindowExceeded));
    }
}
