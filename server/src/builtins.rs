//! The gateway's own client-facing methods (`rpc.*`).

use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use switchboard_protocol::methods::{self, PublishParams, SubscribeParams, TopicResult, UnsubscribeParams};
use switchboard_protocol::{ErrorObject, codes};

use crate::dispatch::{Dispatcher, Origin, Outcome, reply_error, reply_result};
use crate::registry::SubscribeError;

pub(crate) fn call(
    d: &Dispatcher,
    origin: &Origin<'_>,
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
        methods::SUBSCRIBE => subscribe(d, origin, id, params),
        methods::UNSUBSCRIBE => unsubscribe(d, origin, id, params),
        methods::PUBLISH => publish(d, origin, id, params),
        // The client gave up on one of its requests. Handlers run to completion
        // and their late answers are harmless, so there is nothing to undo.
        methods::CANCEL => reply_result(id, &true),
        methods::REFRESH => reply_error(
            id,
            ErrorObject::with_data(
                codes::METHOD_NOT_FOUND,
                serde_json::json!({"reason": "no authentication is configured, so there is no token to refresh"}),
            ),
        ),
        _ => reply_error(id, ErrorObject::new(codes::METHOD_NOT_FOUND)),
    }
}

/// Parses params into `T`, or explains in `data` what was wrong.
pub(crate) fn parse_params<T: DeserializeOwned>(params: Option<&RawValue>) -> Result<T, ErrorObject> {
    let text = params.map_or("null", RawValue::get);
    serde_json::from_str(text).map_err(|e| {
        ErrorObject::with_data(codes::INVALID_PARAMS, serde_json::json!({ "reason": e.to_string() }))
    })
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

/// `user:{id}` topics are personal: only their user may subscribe.
fn check_personal(topic: &str, user: &str) -> Result<(), ErrorObject> {
    match topic.strip_prefix("user:") {
        Some(owner) if owner != user => Err(ErrorObject::with_data(
            codes::FORBIDDEN,
            serde_json::json!({ "topic": topic, "reason": "personal topics are for their own user only" }),
        )),
        _ => Ok(()),
    }
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

fn subscribe(d: &Dispatcher, origin: &Origin<'_>, id: Option<&RawValue>, params: Option<&RawValue>) -> Outcome {
    let Some(session) = origin.session else { return needs_session(id) };
    let params: SubscribeParams = match parse_params(params) {
        Ok(p) => p,
        Err(e) => return reply_error(id, e),
    };
    let limits = &d.config.limits;
    for t in &params.topics {
        if let Err(e) = check_topic(&t.topic, limits.max_topic_len).and_then(|()| check_personal(&t.topic, origin.user)) {
            return reply_error(id, e);
        }
    }
    let mut added = Vec::new();
    let mut results = Vec::with_capacity(params.topics.len());
    for t in &params.topics {
        match d.hub.subscribe_local(session, &t.topic) {
            Ok(new) => {
                if new {
                    added.push(t.topic.as_str());
                }
                results.push(TopicResult { topic: t.topic.clone(), recovered: t.since.is_none(), offset: None, epoch: None });
            }
            Err(e) => {
                for topic in added {
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
    reply_result(id, &methods::SubscribeResult { topics: results })
}

fn unsubscribe(d: &Dispatcher, origin: &Origin<'_>, id: Option<&RawValue>, params: Option<&RawValue>) -> Outcome {
    let Some(session) = origin.session else { return needs_session(id) };
    let params: UnsubscribeParams = match parse_params(params) {
        Ok(p) => p,
        Err(e) => return reply_error(id, e),
    };
    for topic in &params.topics {
        d.hub.registry().unsubscribe(session, topic);
    }
    reply_result(id, &serde_json::json!({}))
}

fn publish(d: &Dispatcher, _origin: &Origin<'_>, id: Option<&RawValue>, params: Option<&RawValue>) -> Outcome {
    if !d.config.client_publish {
        return reply_error(
            id,
            ErrorObject::with_data(codes::FORBIDDEN, serde_json::json!({"reason": "clients may not publish on this gateway"})),
        );
    }
    #[derive(serde::Deserialize)]
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
    if let Err(e) = check_topic(&raw.topic, d.config.limits.max_topic_len) {
        return reply_error(id, e);
    }
    let hub = d.hub.clone();
    let data: Box<RawValue> = raw.data.to_owned();
    let topic = raw.topic;
    let id: Option<Box<str>> = id.map(|i| i.get().into());
    Outcome::Later(
        async move {
            let outcome = hub.publish_raw(&topic, &data).await;
            let id = id?;
            Some(match outcome {
                Ok(()) => switchboard_protocol::frame::write_result(&id, "{}"),
                Err(e) => switchboard_protocol::frame::write_error(
                    Some(&id),
                    &ErrorObject::with_data(codes::BROKER_UNAVAILABLE, serde_json::json!({"reason": e.to_string()})),
                ),
            })
        }
        .boxed(),
    )
}
