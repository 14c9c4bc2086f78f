//! Reading a recoverable topic's history: the one decision of whether what
//! came after a client's position can still be read (`rpc.subscribe` with
//! `since` replays it), and the history read of `rpc.history` and of the
//! server API's `history`, which differ only in who may ask.

use serde::Deserialize;
use switchboard_protocol::methods::{
    DEFAULT_HISTORY_LIMIT, HistoryParams, HistoryPublication, HistoryResult, Publication, RecoveryGap, StreamPosition,
};
use switchboard_protocol::{ErrorObject, codes};

use crate::broker::{History, SharedFrame};
use crate::hub::Hub;
use crate::rpc::builtins::hub_error;

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

/// A history request whose topic keeps history and whose limit is allowed.
/// Whether the caller may read that topic is checked before.
pub(crate) struct HistoryRead {
    params: HistoryParams,
    limit: usize,
}

impl HistoryRead {
    /// Checks that the topic keeps history and that the limit is at most
    /// `max` (`limits.max_replay`); the default limit is 100, or `max` if lower.
    pub(crate) fn new(hub: &Hub, params: HistoryParams, max: usize) -> Result<Self, ErrorObject> {
        if hub.stream_policy(&params.topic).is_none() {
            return Err(ErrorObject::with_data(
                codes::INVALID_PARAMS,
                serde_json::json!({
                    "topic": params.topic,
                    "reason": "this topic keeps no history: only topics matching `streams` are recoverable",
                }),
            ));
        }
        let limit = match params.limit {
            None => DEFAULT_HISTORY_LIMIT.min(max as u64),
            Some(limit) if limit <= max as u64 => limit,
            Some(_) => {
                return Err(ErrorObject::with_data(
                    codes::INVALID_PARAMS,
                    serde_json::json!({
                        "reason": format!("limit must be at most {max} (limits.max_replay)"),
                        "limit": max,
                    }),
                ));
            }
        };
        Ok(Self {
            // At most `max`, so it fits.
            limit: limit as usize,
            params,
        })
    }

    /// Reads the history: with `since`, the first `limit` publications after
    /// it, unless a gap stands between (then none, and the gap); without, the
    /// most recent `limit`. Oldest first either way.
    pub(crate) async fn run(self, hub: &Hub) -> Result<HistoryResult, ErrorObject> {
        let topic = &self.params.topic;
        let (history, gap) = match &self.params.since {
            Some(since) => {
                let history = hub.history(topic, since.offset, self.limit).await.map_err(hub_error)?;
                // A page at a time, so no replay limit: the caller asks again from where it got to.
                let gap = gap(since, &history, None);
                (history, gap)
            }
            None => {
                // The newest offset first, then the `limit` publications up to it.
                let newest = hub.history(topic, u64::MAX, 0).await.map_err(hub_error)?;
                if newest.top == 0 || self.limit == 0 {
                    (newest, None)
                } else {
                    let from = newest.top.saturating_sub(self.limit as u64);
                    (hub.history(topic, from, self.limit).await.map_err(hub_error)?, None)
                }
            }
        };
        let publications = if gap.is_none() {
            history
                .entries
                .iter()
                .map(|(offset, frame)| publication(*offset, frame))
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        Ok(HistoryResult {
            publications,
            offset: history.top,
            epoch: history.epoch,
            recovered: gap.is_none(),
            gap,
        })
    }
}

/// A stored publication (the `rpc.message` frame its subscribers received)
/// as history answers it: its offset and its data.
fn publication(offset: u64, frame: &SharedFrame) -> Result<HistoryPublication, ErrorObject> {
    #[derive(Deserialize)]
    struct Stored {
        params: Publication,
    }
    match serde_json::from_str::<Stored>(frame.0.as_str()) {
        Ok(stored) => Ok(HistoryPublication {
            offset,
            data: stored.params.data,
        }),
        Err(error) => {
            // Skipping it would be a silent gap: the whole read fails instead.
            tracing::error!(offset, %error, "a stored publication could not be read");
            Err(ErrorObject::new(codes::INTERNAL_ERROR))
        }
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
