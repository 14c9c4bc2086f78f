//! The server API: `POST /api`, JSON-RPC 2.0 over HTTP for backends.
//!
//! Every request carries an API key (`Authorization: Bearer <key>`); each
//! method needs one scope of that key. All methods go through the [`Hub`].
//! In dev mode with no key configured, the API is open (dev mode only ever
//! listens on loopback).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::future::join_all;
use serde::Serialize;
use serde_json::value::RawValue;
use subtle::ConstantTimeEq;
use switchboard_protocol::api::{
    CallParams, DisconnectParams, NotifyParams, PresenceParams, PresenceStatsParams, Scope, StreamLine,
    TargetTopicsParams, method,
};
use switchboard_protocol::frame::{self, Frame, Message};
use switchboard_protocol::methods::{HistoryParams, PublishParams, PublishResult};
use switchboard_protocol::{ErrorObject, codes};

use crate::hub::{CallOptions, CallStream, CallUpdate, Hub};
use crate::rpc::builtins::{check_topic, hub_error, parse_params};
use crate::rpc::history::HistoryRead;
use crate::rpc::presence;
use crate::state::GatewayShared;

/// Compares without leaking, through timing, how much of a key matched or
/// how long it is. `ConstantTimeEq` on slices returns at once when their
/// lengths differ, so both sides are hashed to 32 bytes first.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let digest = |bytes: &[u8]| ring::digest::digest(&ring::digest::SHA256, bytes);
    digest(a).as_ref().ct_eq(digest(b).as_ref()).into()
}

/// The scopes the request's key grants, or why it is refused.
pub(crate) fn authorise(shared: &GatewayShared, headers: &HeaderMap) -> Result<HashSet<Scope>, &'static str> {
    let keys = &shared.config.api_keys;
    if keys.is_empty() {
        return if shared.config.dev_mode() {
            Ok(Scope::ALL.into_iter().collect())
        } else {
            Err("no API keys are configured")
        };
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or("missing Authorization: Bearer <api key>")?;
    keys.iter()
        .find(|k| same_secret(presented.as_bytes(), k.key.as_bytes()))
        .map(|k| {
            tracing::debug!(key = %k.name, "server API request");
            k.scopes.iter().copied().collect()
        })
        .ok_or("unknown API key")
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(crate) async fn handle(State(shared): State<Arc<GatewayShared>>, headers: HeaderMap, body: String) -> Response {
    let scopes = match authorise(&shared, &headers) {
        Ok(s) => s,
        Err(reason) => {
            let error = ErrorObject::with_data(codes::UNAUTHORIZED, serde_json::json!({ "reason": reason }));
            return json_response(StatusCode::UNAUTHORIZED, frame::write_error(None, &error));
        }
    };
    let hub = &shared.hub;
    let reply = match frame::parse(&body) {
        Frame::ParseError => Some(frame::write_error(None, &ErrorObject::new(codes::PARSE_ERROR))),
        Frame::EmptyBatch => Some(frame::write_error(
            None,
            &frame::invalid_request("a batch must not be empty"),
        )),
        Frame::Single(m) => match answer(&shared, hub, &scopes, m, true).await {
            Answered::Stream(call) => return ndjson(shared.clone(), *call),
            Answered::Frame(frame) => Some(frame),
            Answered::Nothing => None,
        },
        Frame::Batch(messages) => {
            if messages.len() > shared.config.limits.max_batch {
                let error = ErrorObject::with_data(
                    codes::INVALID_REQUEST,
                    serde_json::json!({"reason": "batch too large", "limit": shared.config.limits.max_batch}),
                );
                Some(frame::write_error(None, &error))
            } else {
                let answers = join_all(messages.into_iter().map(|m| answer(&shared, hub, &scopes, m, false))).await;
                let parts: Vec<String> = answers
                    .into_iter()
                    .filter_map(|a| match a {
                        Answered::Frame(frame) => Some(frame),
                        // Only a single request is ever streamed.
                        Answered::Stream(_) | Answered::Nothing => None,
                    })
                    .collect();
                (!parts.is_empty()).then(|| format!("[{}]", parts.join(",")))
            }
        }
    };
    match reply {
        Some(json) => json_response(StatusCode::OK, json),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// What one message of a request body calls for.
enum Answered {
    /// A JSON-RPC answer.
    Frame(String),
    /// A streamed `call`: NDJSON lines instead of an answer.
    Stream(Box<CallStream>),
    /// Nothing (a notification, or a response).
    Nothing,
}

/// What a method produced.
enum Reply {
    Value(Box<RawValue>),
    Stream(Box<CallStream>),
}

/// The answer to one message, if it calls for one. Only a single request
/// with an id (`streamable`) may ask for a streamed `call`.
async fn answer(
    shared: &GatewayShared,
    hub: &Hub,
    scopes: &HashSet<Scope>,
    message: Message<'_>,
    single: bool,
) -> Answered {
    let (id, method, params) = match message {
        Message::Request { id, method, params } => (Some(id), method, params),
        Message::Notification { method, params } => (None, method, params),
        Message::Response { .. } => return Answered::Nothing,
        Message::Invalid {
            id,
            reason,
            was_response,
        } => {
            if was_response {
                return Answered::Nothing;
            }
            return Answered::Frame(frame::write_error(
                id.map(RawValue::get),
                &frame::invalid_request(reason),
            ));
        }
    };
    let streamable = single && id.is_some();
    let outcome = run(shared, hub, scopes, &method, params, streamable).await;
    let Some(id) = id else { return Answered::Nothing };
    match outcome {
        Ok(Reply::Value(result)) => Answered::Frame(frame::write_result(id.get(), result.get())),
        Ok(Reply::Stream(call)) => Answered::Stream(call),
        Err(error) => Answered::Frame(frame::write_error(Some(id.get()), &error)),
    }
}

/// A streamed `call`'s answer: `200` with one JSON line per outcome (and
/// per progress report) as it arrives, then `{"done": …}`. A client that
/// goes away drops the body, which cancels the call; draining or shutting
/// down ends it at once, the sessions still owing an answer cancelled.
fn ndjson(shared: Arc<GatewayShared>, call: CallStream) -> Response {
    struct Lines {
        call: CallStream,
        shared: Arc<GatewayShared>,
        stopping: bool,
    }
    let lines = futures_util::stream::unfold(
        Lines {
            call,
            shared,
            stopping: false,
        },
        |mut s| async move {
            if !s.stopping {
                tokio::select! {
                    biased;
                    () = s.shared.shutdown.cancelled() => {}
                    () = s.shared.draining.cancelled() => {}
                    update = s.call.next() => return update.map(|u| (ndjson_line(&u), s)),
                }
                // The gateway is going: what is still owed is cancelled, then the totals.
                s.stopping = true;
                s.call.cancel();
            }
            let update = s.call.next().await?;
            Some((ndjson_line(&update), s))
        },
    );
    let mut response = Response::new(Body::from_stream(lines));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    response
}

/// One line of a streamed `call`.
fn ndjson_line(update: &CallUpdate) -> Result<String, std::convert::Infallible> {
    let mut line = match update {
        CallUpdate::Outcome(entry) => serde_json::to_string(entry),
        CallUpdate::Progress(progress) => serde_json::to_string(progress),
        CallUpdate::Done(summary) => serde_json::to_string(&StreamLine::Done { done: *summary }),
    }
    .unwrap_or_default();
    line.push('\n');
    Ok(line)
}

fn to_raw<T: Serialize>(value: &T) -> Result<Box<RawValue>, ErrorObject> {
    serde_json::value::to_raw_value(value).map_err(|_| ErrorObject::new(codes::INTERNAL_ERROR))
}

fn structured(params: Option<&serde_json::Value>) -> Result<Option<Box<RawValue>>, ErrorObject> {
    match params {
        None => Ok(None),
        Some(v @ (serde_json::Value::Array(_) | serde_json::Value::Object(_))) => to_raw(v).map(Some),
        Some(_) => Err(ErrorObject::with_data(
            codes::INVALID_PARAMS,
            serde_json::json!({"reason": "params must be an array or an object"}),
        )),
    }
}

fn empty() -> Result<Box<RawValue>, ErrorObject> {
    RawValue::from_string("{}".to_owned()).map_err(|_| ErrorObject::new(codes::INTERNAL_ERROR))
}

async fn run(
    shared: &GatewayShared,
    hub: &Hub,
    scopes: &HashSet<Scope>,
    name: &str,
    params: Option<&RawValue>,
    streamable: bool,
) -> Result<Reply, ErrorObject> {
    if name == switchboard_protocol::methods::DISCOVER {
        return RawValue::from_string(switchboard_protocol::openrpc::API_COMMITTED.trim_end().to_owned())
            .map(Reply::Value)
            .map_err(|_| ErrorObject::new(codes::INTERNAL_ERROR));
    }
    let Some(scope) = Scope::of(name) else {
        return Err(ErrorObject::new(codes::METHOD_NOT_FOUND));
    };
    if !scopes.contains(&scope) {
        return Err(ErrorObject::with_data(
            codes::FORBIDDEN,
            serde_json::json!({"reason": "the API key lacks the scope this method needs", "scope": scope}),
        ));
    }
    if name == method::CALL {
        return call(hub, params, streamable).await;
    }
    let max_topic = shared.config.limits.max_topic_len;
    let value = match name {
        method::NOTIFY => {
            let p: NotifyParams = parse_params(params)?;
            let inner = structured(p.params.as_ref())?;
            hub.notify_raw(p.target, &p.method, inner.as_deref())
                .await
                .map_err(hub_error)?;
            empty()
        }
        method::PUBLISH => {
            let p: PublishParams = parse_params(params)?;
            check_topic(&p.topic, max_topic)?;
            let data = to_raw(&p.data)?;
            let position = hub.publish_raw(&p.topic, &data).await.map_err(hub_error)?;
            to_raw(&PublishResult {
                offset: position.as_ref().map(|p| p.offset),
                epoch: position.map(|p| p.epoch),
            })
        }
        method::PRESENCE => {
            let p: PresenceParams = if params.is_some() {
                parse_params(params)?
            } else {
                PresenceParams::default()
            };
            let query = presence::query(hub, p.user, p.topic)?;
            let max = shared.config.limits.max_presence_entries;
            presence::answer(hub, max, query, p.limit, p.after.as_deref()).await
        }
        method::PRESENCE_STATS => {
            let p: PresenceStatsParams = if params.is_some() {
                parse_params(params)?
            } else {
                PresenceStatsParams::default()
            };
            let query = presence::query(hub, p.user, p.topic)?;
            to_raw(&hub.presence_stats(query).await.map_err(hub_error)?)
        }
        method::DISCONNECT => {
            let p: DisconnectParams = parse_params(params)?;
            let code = p.code.unwrap_or(switchboard_protocol::codes::close::KICKED);
            if !(4000..=4999).contains(&code) && code != switchboard_protocol::codes::close::DRAINING {
                return Err(ErrorObject::with_data(
                    codes::INVALID_PARAMS,
                    serde_json::json!({"reason": "code must be 4000-4999 or 1012"}),
                ));
            }
            let reason = p
                .reason
                .unwrap_or_else(|| switchboard_protocol::codes::close::reason(code).to_owned());
            hub.disconnect(p.target, code, &reason).await.map_err(hub_error)?;
            empty()
        }
        method::SUBSCRIBE | method::UNSUBSCRIBE => {
            let p: TargetTopicsParams = parse_params(params)?;
            for topic in &p.topics {
                check_topic(topic, max_topic)?;
            }
            let outcome = if name == method::SUBSCRIBE {
                hub.subscribe(p.target, p.topics).await
            } else {
                hub.unsubscribe(p.target, p.topics).await
            };
            outcome.map_err(hub_error)?;
            empty()
        }
        method::STATS => to_raw(&hub.node_stats().await.map_err(hub_error)?),

        method::HISTORY => {
            let p: HistoryParams = parse_params(params)?;
            check_topic(&p.topic, max_topic)?;
            let read = HistoryRead::new(hub, p, shared.config.limits.max_replay)?;
            to_raw(&read.run(hub).await?)
        }
        _ => Err(ErrorObject::new(codes::METHOD_NOT_FOUND)),
    };
    value.map(Reply::Value)
}

/// `call`: one outcome per session reached, as an array, as
/// `{outcomes, met}` with a policy, or streamed as NDJSON.
async fn call(hub: &Hub, params: Option<&RawValue>, streamable: bool) -> Result<Reply, ErrorObject> {
    let p: CallParams = parse_params(params)?;
    let inner = structured(p.params.as_ref())?;
    if p.stream && !streamable {
        return Err(ErrorObject::with_data(
            codes::INVALID_PARAMS,
            serde_json::json!({"reason": "\"stream\": true needs a single request with an id, not a batch or a notification"}),
        ));
    }
    let timeout = p
        .timeout_ms
        .map_or_else(|| hub.default_call_timeout(), Duration::from_millis);
    let options = CallOptions {
        timeout,
        policy: p.policy,
        progress: p.stream,
    };
    let call = hub
        .call_stream(p.target, &p.method, inner.as_deref(), options)
        .await
        .map_err(hub_error)?;
    if p.stream {
        return Ok(Reply::Stream(Box::new(call)));
    }
    to_raw(&call.finish().await).map(Reply::Value)
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
        assert!(!same_secret(b"a", b""));
    }
}
