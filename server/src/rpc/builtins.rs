//! The gateway's own client-facing methods (`rpc.*`).

use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use switchboard_protocol::methods::{
    self, Expiry, HistoryParams, PublishParams, PublishResult, RecoveryGap, RefreshParams, SubscribeParams,
    TopicRequest, TopicResult, UnsubscribeParams,
};
use switchboard_protocol::{ErrorObject, codes, frame};

use crate::auth::{Action, AuthError};
use crate::config::WebhookEvent;
use crate::hub::SubscribeError;
use crate::hub::{Hub, HubError};
use crate::rpc::caller::Caller;
use crate::rpc::dispatch::{Dispatcher, Outcome, reply_error, reply_result};
use crate::rpc::history::{self, HistoryRead};
use crate::rpc::presence;
use crate::session::Delivery;
use crate::session::IdText;
use crate::ws::Outgoing;

pub(crate) fn call(
    d: &Dispatcher,
    caller: &Caller,
    id: Option<&RawValue>,
    method: &str,
    params: Option<&RawValue>,
) -> Outcome {
    match method {
        methods::PING => reply_result(id, &"pong"),
        methods::DISCOVER => match id {
            Some(id) => Outcome::Reply(switchboard_protocol::frame::write_result(id.get(), d.discover.get())),
            None => Outcome::Silent,
        },
        methods::SUBSCRIBE => subscribe(d, caller, id, params),
        methods::UNSUBSCRIBE => unsubscribe(d, caller, id, params),
        methods::PUBLISH => publish(d, caller, id, params),
        methods::PRESENCE => presence(d, caller, id, params),
        methods::HISTORY => history(d, caller, id, params),
        methods::CANCEL => cancel(caller, id, params),
        methods::PROGRESS => progress(caller, id, params),
        methods::REFRESH => refresh(d, caller, id, params),
        _ => reply_error(id, ErrorObject::new(codes::METHOD_NOT_FOUND)),
    }
}

/// `rpc.cancel {id}`: the client gave up on its request `id`. If it is still
/// running, its work is dropped and it is answered `-32011` (its only
/// answer); a cancel for an unknown or finished request changes nothing.
/// Answered `true` when sent with an id of its own.
fn cancel(caller: &Caller, id: Option<&RawValue>, params: Option<&RawValue>) -> Outcome {
    let request = match parse_params::<methods::Cancel>(params) {
        Ok(request) => request,
        Err(error) => return reply_error(id, error),
    };
    if let Some(session) = caller.session()
        && session.shared.requests.cancel(&frame::value_key(&request.id))
    {
        crate::metrics::hot().requests_cancelled.increment(1);
    }
    reply_result(id, &true)
}

/// `rpc.progress {id, progress}`: the client reports progress on the
/// server's call `id`. Forwarded to the call's caller if it asked for
/// progress and the call still waits for its answer; otherwise dropped.
/// Answered `true` when sent with an id of its own.
fn progress(caller: &Caller, id: Option<&RawValue>, params: Option<&RawValue>) -> Outcome {
    /// `methods::Progress` with the report kept as written.
    #[derive(Deserialize)]
    struct Report<'a> {
        id: serde_json::Value,
        #[serde(borrow)]
        progress: &'a RawValue,
    }
    let report = match parse_params::<Report<'_>>(params) {
        Ok(report) => report,
        Err(error) => return reply_error(id, error),
    };
    if let (Some(session), Some(call)) = (caller.session(), report.id.as_u64())
        && let Some(sink) = session.shared.pending.progress_sink(call)
    {
        // A caller that reads slowly loses progress reports, never answers.
        let _ = sink.0.try_send((session.clone(), report.progress.to_owned()));
    }
    reply_result(id, &true)
}

/// Parses params into `T`, or explains in `data` what was wrong.
pub(crate) fn parse_params<'a, T: Deserialize<'a>>(params: Option<&'a RawValue>) -> Result<T, ErrorObject> {
    let text = params.map_or("null", RawValue::get);
    serde_json::from_str(text)
        .map_err(|e| ErrorObject::with_data(codes::INVALID_PARAMS, serde_json::json!({ "reason": e.to_string() })))
}

/// A hub operation's failure as the caller sees it.
pub(crate) fn hub_error(e: HubError) -> ErrorObject {
    match e {
        HubError::Broker(b) => {
            ErrorObject::with_data(codes::BROKER_UNAVAILABLE, serde_json::json!({"reason": b.to_string()}))
        }
        HubError::Params(p) => ErrorObject::with_data(codes::INVALID_PARAMS, serde_json::json!({ "reason": p })),
    }
}

/// Topic names: 1 to `max_len` bytes of letters, digits and `. _ - : / @ =`.
pub(crate) fn check_topic(topic: &str, max_len: usize) -> Result<(), ErrorObject> {
    let reason = if topic.is_empty() {
        Some("a topic name must not be empty".to_owned())
    } else if topic.len() > max_len {
        Some(format!("a topic name must be at most {max_len} bytes"))
    } else if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".:_-/@=".contains(&b))
    {
        Some("a topic name may contain only letters, digits and . _ - : / @ =".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ErrorObject::with_data(
            codes::INVALID_PARAMS,
            serde_json::json!({ "topic": topic, "reason": reason }),
        )),
        None => Ok(()),
    }
}

/// `user:{id}` topics are personal: only their user may subscribe, publish
/// or read their history.
fn check_personal(topic: &str, user: &str) -> Result<(), ErrorObject> {
    match topic.strip_prefix("user:") {
        Some(owner) if owner != user => Err(ErrorObject::with_data(
            codes::FORBIDDEN,
            serde_json::json!({ "topic": topic, "reason": "personal topics are for their own user only" }),
        )),
        _ => Ok(()),
    }
}

/// Authorisation by pattern (everything is allowed in dev mode). Personal
/// topics are checked separately and always belong to their user, who may
/// always subscribe to theirs and read its history.
fn check_allowed(
    d: &Dispatcher,
    action: Action,
    topic: &str,
    user: &str,
    claims: Option<&serde_json::Value>,
) -> Result<(), ErrorObject> {
    if d.config.dev_mode()
        || (matches!(action, Action::Subscribe | Action::History) && topic == crate::hub::personal_topic(user))
        || d.config.authorization.allows(action, topic, user, claims)
    {
        return Ok(());
    }
    let what = match action {
        Action::Subscribe => "subscribe to",
        Action::Presence => "see the presence of",
        Action::History => "read the history of",
        Action::Publish | Action::Call => "publish on",
    };
    Err(ErrorObject::with_data(
        codes::FORBIDDEN,
        serde_json::json!({ "topic": topic, "reason": format!("you may not {what} this topic") }),
    ))
}

fn refresh(d: &Dispatcher, caller: &Caller, id: Option<&RawValue>, params: Option<&RawValue>) -> Outcome {
    let Some(session) = caller.session() else {
        return needs_session(id);
    };
    let Some(auth) = &d.auth else {
        return reply_error(
            id,
            ErrorObject::with_data(
                codes::METHOD_NOT_FOUND,
                serde_json::json!({"reason": "no authentication is configured, so there is no token to refresh"}),
            ),
        );
    };
    let params: RefreshParams = match parse_params(params) {
        Ok(p) => p,
        Err(e) => return reply_error(id, e),
    };
    let identity = match auth.verify(&params.token) {
        Ok(i) => i,
        Err(AuthError::Expired) => return reply_error(id, ErrorObject::new(codes::TOKEN_EXPIRED)),
        Err(e) => {
            return reply_error(
                id,
                ErrorObject::with_data(codes::UNAUTHORIZED, serde_json::json!({"reason": e.to_string()})),
            );
        }
    };
    if *identity.user != *session.user() {
        return reply_error(
            id,
            ErrorObject::with_data(
                codes::FORBIDDEN,
                serde_json::json!({"reason": "the new token is for another user (sub differs)"}),
            ),
        );
    }
    session.set_auth(Some(identity.claims), identity.expires_at);
    reply_result(
        id,
        &Expiry {
            expires_at_ms: identity.expires_at.map(|s| s.saturating_mul(1000)),
        },
    )
}

fn needs_session(id: Option<&RawValue>) -> Outcome {
    reply_error(
        id,
        ErrorObject::with_data(
            codes::INVALID_REQUEST,
            serde_json::json!({"reason": "this method needs a WebSocket session"}),
        ),
    )
}

fn subscribe(d: &Dispatcher, caller: &Caller, id: Option<&RawValue>, params: Option<&RawValue>) -> Outcome {
    let Some(session) = caller.session() else {
        return needs_session(id);
    };
    let params: SubscribeParams = match parse_params(params) {
        Ok(p) => p,
        Err(e) => return reply_error(id, e),
    };
    let limits = &d.config.limits;
    let claims = caller.claims();
    for t in &params.topics {
        if let Err(e) = check_topic(&t.topic, limits.max_topic_len)
            .and_then(|()| check_personal(&t.topic, caller.user()))
            .and_then(|()| check_allowed(d, Action::Subscribe, &t.topic, caller.user(), claims.as_deref()))
        {
            return reply_error(id, e);
        }
    }
    // Subscribe first (recoverable topics hold live publications back), then
    // read history, then merge: no gap and no duplicate at the seam.
    let mut added = Vec::new();
    let mut plan = Vec::with_capacity(params.topics.len());
    for t in params.topics {
        let recoverable = d.hub.stream_policy(&t.topic).is_some();
        let delivery = if recoverable {
            Delivery::Held {
                frames: Vec::new(),
                bytes: 0,
                claimed: true,
            }
        } else {
            Delivery::Plain
        };
        match d.hub.subscribe_local(session, &t.topic, delivery) {
            Ok(new) => {
                if new {
                    added.push(t.topic.clone());
                }
                // An existing subscription recovers only while it still holds publications back.
                let recover = recoverable && (new || session.claim_hold(&t.topic));
                plan.push((t, recoverable, recover));
            }
            Err(e) => {
                for topic in &added {
                    d.hub.registry().unsubscribe(session, topic);
                }
                let error = match e {
                    SubscribeError::TooMany => ErrorObject::with_data(
                        codes::LIMIT_EXCEEDED,
                        serde_json::json!({"reason": "too many subscriptions", "limit": limits.max_subscriptions}),
                    ),
                    SubscribeError::Gone => ErrorObject::new(codes::SESSION_GONE),
                };
                return reply_error(id, error);
            }
        }
    }
    // Announced once this node listens on the topics (at once on a broker
    // without interest tracking), so that every subscriber, the new one
    // included, gets the join whichever node it is on.
    let tracks_interest = d.hub.tracks_interest();
    if !tracks_interest {
        for topic in &added {
            d.hub.emit_topic_event(WebhookEvent::Subscribe, session, topic);
        }
    }
    if plan.iter().all(|(_, recoverable, _)| !recoverable) && !tracks_interest {
        let topics = plan
            .into_iter()
            .map(|(t, _, _)| TopicResult {
                topic: t.topic,
                recovered: true,
                offset: None,
                epoch: None,
                gap: None,
            })
            .collect();
        return reply_result(id, &methods::SubscribeResult { topics });
    }
    let hub = d.hub.clone();
    let session = session.clone();
    let max_replay = limits.max_replay;
    let id: Option<IdText> = id.map(|i| IdText::new(i.get()));
    Outcome::Later(
        async move {
            // A broker that listens only where there is interest must listen
            // before the subscription is confirmed.
            hub.interest_settled().await;
            if tracks_interest {
                for topic in &added {
                    hub.emit_topic_event(WebhookEvent::Subscribe, &session, topic);
                }
            }
            let mut results = Vec::with_capacity(plan.len());
            let mut replays = Vec::new();
            for (t, recoverable, recover) in plan {
                if !recoverable {
                    results.push(TopicResult {
                        topic: t.topic,
                        recovered: true,
                        offset: None,
                        epoch: None,
                        gap: None,
                    });
                    continue;
                }
                let (result, replay) = recover_topic(&hub, &t, max_replay).await;
                if recover {
                    // After a replay, what was held up to the top is already in it.
                    // Without one (no position, or a gap), everything held since the
                    // subscription began is new to the client and is delivered.
                    let seam = if t.since.is_some() && result.recovered {
                        result.offset.unwrap_or(0)
                    } else {
                        0
                    };
                    let epoch = result.epoch.as_deref().map_or(0, crate::session::epoch_tag);
                    replays.push((t.topic, replay, seam, epoch));
                }
                results.push(result);
            }
            // The answer first, then each topic's replay followed by what was held back.
            if let Some(id) = &id {
                let json = serde_json::to_string(&methods::SubscribeResult { topics: results }).unwrap_or_default();
                let _ = session.send_frame(switchboard_protocol::frame::write_result(id.as_str(), &json));
            }
            for (topic, replay, top, epoch) in replays {
                session.finish_recovery(&topic, replay, top, epoch);
            }
            None
        }
        .boxed(),
    )
}

/// Reads what a subscriber missed since its position and decides whether it
/// can be recovered. Returns the topic's result and the publications to replay.
async fn recover_topic(hub: &Hub, t: &TopicRequest, max_replay: usize) -> (TopicResult, Vec<(u64, Outgoing)>) {
    let since = t.since.as_ref().map_or(u64::MAX, |s| s.offset);
    let history = match hub.history(&t.topic, since, max_replay).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(topic = %t.topic, error = %e, "history unavailable");
            let gap = t.since.as_ref().map(|_| RecoveryGap::Unavailable);
            let result = TopicResult {
                topic: t.topic.clone(),
                recovered: gap.is_none(),
                offset: None,
                epoch: None,
                gap,
            };
            return (result, Vec::new());
        }
    };
    // A replay carries every missed publication at once, so it is bounded too.
    let gap = t
        .since
        .as_ref()
        .and_then(|pos| history::gap(pos, &history, Some(max_replay)));
    let replay = if t.since.is_some() && gap.is_none() {
        history.entries.into_iter().map(|(o, f)| (o, f.0)).collect()
    } else {
        Vec::new()
    };
    let result = TopicResult {
        topic: t.topic.clone(),
        recovered: gap.is_none(),
        offset: Some(history.top),
        epoch: Some(history.epoch),
        gap,
    };
    (result, replay)
}

/// `rpc.presence {topic, limit?, after?}`: the subscribers of a topic whose
/// presence is kept, where `authorization.presence` allows it; answered like
/// the server API's `presence {topic}`.
fn presence(d: &Dispatcher, caller: &Caller, id: Option<&RawValue>, params: Option<&RawValue>) -> Outcome {
    let p: methods::TopicPresenceParams = match parse_params(params) {
        Ok(p) => p,
        Err(e) => return reply_error(id, e),
    };
    let claims = caller.claims();
    let query = check_topic(&p.topic, d.config.limits.max_topic_len)
        .and_then(|()| check_allowed(d, Action::Presence, &p.topic, caller.user(), claims.as_deref()))
        .and_then(|()| presence::query(&d.hub, None, Some(p.topic)));
    let query = match query {
        Ok(q) => q,
        Err(e) => return reply_error(id, e),
    };
    let Some(id) = id.map(|id| IdText::new(id.get())) else {
        return Outcome::Silent;
    };
    let hub = d.hub.clone();
    let max = d.config.limits.max_presence_entries;
    Outcome::Later(
        async move {
            Some(
                match presence::answer(&hub, max, query, p.limit, p.after.as_deref()).await {
                    Ok(json) => switchboard_protocol::frame::write_result(id.as_str(), json.get()),
                    Err(e) => switchboard_protocol::frame::write_error(Some(id.as_str()), &e),
                },
            )
        }
        .boxed(),
    )
}

/// `rpc.history {topic, since?, limit?}`: a recoverable topic's
/// publications, for a caller that may read them (`authorization.history`,
/// by default the topics it may subscribe to). Works over `POST /rpc` too.
fn history(d: &Dispatcher, caller: &Caller, id: Option<&RawValue>, params: Option<&RawValue>) -> Outcome {
    let params: HistoryParams = match parse_params(params) {
        Ok(p) => p,
        Err(e) => return reply_error(id, e),
    };
    let read = check_topic(&params.topic, d.config.limits.max_topic_len)
        .and_then(|()| check_personal(&params.topic, caller.user()))
        .and_then(|()| {
            check_allowed(
                d,
                Action::History,
                &params.topic,
                caller.user(),
                caller.claims().as_deref(),
            )
        })
        .and_then(|()| HistoryRead::new(&d.hub, params, d.config.limits.max_replay));
    let read = match read {
        Ok(read) => read,
        Err(e) => return reply_error(id, e),
    };
    let hub = d.hub.clone();
    let id: Option<IdText> = id.map(|i| IdText::new(i.get()));
    Outcome::Later(
        async move {
            let outcome = read.run(&hub).await;
            let id = id?;
            Some(match outcome {
                Ok(result) => {
                    let json = serde_json::to_string(&result).unwrap_or_default();
                    switchboard_protocol::frame::write_result(id.as_str(), &json)
                }
                Err(error) => switchboard_protocol::frame::write_error(Some(id.as_str()), &error),
            })
        }
        .boxed(),
    )
}

fn unsubscribe(d: &Dispatcher, caller: &Caller, id: Option<&RawValue>, params: Option<&RawValue>) -> Outcome {
    let Some(session) = caller.session() else {
        return needs_session(id);
    };
    let params: UnsubscribeParams = match parse_params(params) {
        Ok(p) => p,
        Err(e) => return reply_error(id, e),
    };
    for topic in &params.topics {
        if d.hub.registry().unsubscribe(session, topic) {
            d.hub.emit_topic_event(WebhookEvent::Unsubscribe, session, topic);
        }
    }
    reply_result(id, &serde_json::json!({}))
}

fn publish(d: &Dispatcher, caller: &Caller, id: Option<&RawValue>, params: Option<&RawValue>) -> Outcome {
    if !d.config.client_publish {
        return reply_error(
            id,
            ErrorObject::with_data(
                codes::FORBIDDEN,
                serde_json::json!({"reason": "clients may not publish on this gateway"}),
            ),
        );
    }
    #[derive(Deserialize)]
    struct Raw<'a> {
        topic: String,
        #[serde(borrow)]
        data: &'a RawValue,
    }
    // Validate the shape with the documented type, then keep `data` as raw text.
    if let Err(e) = parse_params::<PublishParams>(params) {
        return reply_error(id, e);
    }
    let Some(raw) = params.and_then(|p| serde_json::from_str::<Raw<'_>>(p.get()).ok()) else {
        return reply_error(id, ErrorObject::new(codes::INVALID_PARAMS));
    };
    if let Err(e) = check_topic(&raw.topic, d.config.limits.max_topic_len)
        .and_then(|()| check_personal(&raw.topic, caller.user()))
        .and_then(|()| {
            check_allowed(
                d,
                Action::Publish,
                &raw.topic,
                caller.user(),
                caller.claims().as_deref(),
            )
        })
    {
        return reply_error(id, e);
    }
    let hub = d.hub.clone();
    let data: Box<RawValue> = raw.data.to_owned();
    let topic = raw.topic;
    let id: Option<IdText> = id.map(|i| IdText::new(i.get()));
    Outcome::Later(
        async move {
            let outcome = hub.publish_raw(&topic, &data).await;
            let id = id?;
            Some(match outcome {
                Ok(position) => {
                    let result = PublishResult {
                        offset: position.as_ref().map(|p| p.offset),
                        epoch: position.map(|p| p.epoch),
                    };
                    let json = serde_json::to_string(&result).unwrap_or_default();
                    switchboard_protocol::frame::write_result(id.as_str(), &json)
                }
                Err(e) => switchboard_protocol::frame::write_error(Some(id.as_str()), &hub_error(e)),
            })
        }
        .boxed(),
    )
}
