//! Presence answers, the same for the server API's `presence` and
//! `presence_stats` and for a client's `rpc.presence`: which topics have
//! presence, paging, and the bound on an answer.

use serde_json::value::RawValue;
use switchboard_protocol::api::PresencePage;
use switchboard_protocol::{ErrorObject, codes};

use crate::broker::{PresenceEntry, PresenceQuery, PresenceWindow};
use crate::hub::Hub;
use crate::rpc::builtins::hub_error;

fn invalid(reason: impl Into<String>) -> ErrorObject {
    ErrorObject::with_data(codes::INVALID_PARAMS, serde_json::json!({ "reason": reason.into() }))
}

/// The query that `user` and `topic` ask for (at most one of them), refused
/// with `-32602` for both together or for a topic whose presence is not kept.
pub(crate) fn query(hub: &Hub, user: Option<String>, topic: Option<String>) -> Result<PresenceQuery, ErrorObject> {
    match (user, topic) {
        (Some(_), Some(_)) => Err(invalid("give user or topic, not both")),
        (Some(user), None) => Ok(PresenceQuery::User(user)),
        (None, Some(topic)) if !hub.keeps_presence(&topic) => Err(ErrorObject::with_data(
            codes::INVALID_PARAMS,
            serde_json::json!({
                "topic": topic,
                "reason": "presence is not kept for this topic (see presence_topics)",
            }),
        )),
        (None, Some(topic)) => Ok(PresenceQuery::Topic(topic)),
        (None, None) => Ok(PresenceQuery::Everyone),
    }
}

/// The answer to a presence question: without `limit` and `after`, the
/// array of entries while it holds at most `max` (past that `-32010` with
/// `data.limit`); with them, one page `{entries, next}` of at most `limit`
/// (1 to `max`, default `max`) entries after the cursor `after`.
pub(crate) async fn answer(
    hub: &Hub,
    max: usize,
    query: PresenceQuery,
    limit: Option<usize>,
    after: Option<&str>,
) -> Result<Box<RawValue>, ErrorObject> {
    let paged = limit.is_some() || after.is_some();
    let limit = limit.unwrap_or(max);
    if paged && !(1..=max).contains(&limit) {
        return Err(invalid(format!("limit must be 1 to {max}")));
    }
    let after = after.map(cursor).transpose()?;
    // One entry past the window says whether there is more.
    let window = PresenceWindow {
        after: after.map(|(u, s)| (u.to_owned(), s.to_owned())),
        limit: limit.saturating_add(1),
    };
    let mut entries = hub.presence_of(query, window).await.map_err(hub_error)?;
    let more = entries.len() > limit;
    entries.truncate(limit);
    let json = if paged {
        let next = more
            .then(|| entries.last().map(|e| format!("{}/{}", e.user, e.session)))
            .flatten();
        serde_json::to_string(&PresencePage {
            entries: entries.into_iter().map(wire).collect(),
            next,
        })
    } else if more {
        return Err(ErrorObject::with_data(
            codes::LIMIT_EXCEEDED,
            serde_json::json!({
                "limit": max,
                "reason": "more sessions than one answer may hold; ask for pages with limit and after",
            }),
        ));
    } else {
        serde_json::to_string(&entries)
    };
    json.ok()
        .and_then(|j| RawValue::from_string(j).ok())
        .ok_or_else(|| ErrorObject::new(codes::INTERNAL_ERROR))
}

/// A cursor is `user/session` (session ids hold no `/`).
fn cursor(after: &str) -> Result<(&str, &str), ErrorObject> {
    after
        .rsplit_once('/')
        .ok_or_else(|| invalid("after must be the next cursor of a previous page"))
}

fn wire(e: PresenceEntry) -> switchboard_protocol::api::PresenceEntry {
    switchboard_protocol::api::PresenceEntry {
        session: e.session,
        user: e.user,
        node: e.node,
    }
}
