//! Dispatch: from a text frame to the answers it calls for.
//!
//! This is the only module that touches jsonrpsee's `MethodCallback`, so that
//! an upgrade of the pre-1.0 jsonrpsee changes one place. jsonrpsee is used as
//! the method registry only: the gateway invokes the callbacks itself with a
//! placeholder id and splices the client's id, byte for byte, into the answer.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::{AbortRegistration, Abortable, BoxFuture, join_all};
use http::Extensions;
use jsonrpsee::core::server::{MethodCallback, MethodResponse};
use jsonrpsee::types::{Id, Params};
use serde_json::value::RawValue;
use switchboard_protocol::frame::{self, Frame, Message};
use switchboard_protocol::{ErrorObject, codes, methods};
use tokio_util::sync::CancellationToken;

use crate::auth::Action;
use crate::config::Config;
use crate::hub::Hub;
use crate::metrics::Timer;
use crate::rpc::builtins;
use crate::rpc::caller::Caller;
use crate::rpc::direct::{AsyncHandler, Handler, Owes, Request};
use crate::rpc::progress::Progress;
use crate::rpc::table::{Method, MethodTable};
use crate::session::{IdText, SessionHandle};

/// What a frame calls for.
pub(crate) enum Outcome {
    /// Send this frame now.
    Reply(String),
    /// Send nothing (notifications, responses to our calls).
    Silent,
    /// Send what this future yields, when it is done.
    Later(BoxFuture<'static, Option<String>>),
}

/// Shared by every session of a gateway.
pub(crate) struct Dispatcher {
    /// The application's methods, direct and jsonrpsee alike.
    pub(crate) methods: MethodTable,
    pub(crate) config: Arc<Config>,
    pub(crate) hub: Hub,
    /// The OpenRPC document answered by `rpc.discover`.
    pub(crate) discover: Box<RawValue>,
    /// The upstream proxy's backends, for methods not registered here.
    pub(crate) upstreams: crate::rpc::upstream::Upstreams,
    /// Verifies tokens (for `rpc.refresh`); `None` in dev mode.
    pub(crate) auth: Option<Arc<crate::auth::Authenticator>>,
}

const PLACEHOLDER_PREFIX: &str = r#"{"jsonrpc":"2.0","id":null,"#;

impl Dispatcher {
    /// Handles one text frame.
    pub(crate) fn handle_text(&self, caller: &Caller, text: &str) -> Outcome {
        crate::metrics::hot().messages_in.increment(1);
        self.hub.count_message_in();
        if let Some(n) = frame::batch_len(text)
            && n > self.config.limits.max_batch
        {
            {
                let error = ErrorObject::with_data(
                    codes::INVALID_REQUEST,
                    serde_json::json!({"reason": "batch too large", "limit": self.config.limits.max_batch, "size": n}),
                );
                return Outcome::Reply(frame::write_error(None, &error));
            }
        }
        match frame::parse(text) {
            Frame::ParseError => Outcome::Reply(frame::write_error(None, &ErrorObject::new(codes::PARSE_ERROR))),
            Frame::EmptyBatch => Outcome::Reply(frame::write_error(
                None,
                &frame::invalid_request("a batch must not be empty"),
            )),
            Frame::Single(message) => self.handle_message(caller, message),
            Frame::Batch(messages) => self.handle_batch(caller, messages),
        }
    }

    fn handle_batch(&self, caller: &Caller, messages: Vec<Message<'_>>) -> Outcome {
        let mut ready = Vec::with_capacity(messages.len());
        let mut later = Vec::new();
        for message in messages {
            match self.handle_message(caller, message) {
                Outcome::Reply(s) => ready.push(Some(s)),
                Outcome::Silent => {}
                Outcome::Later(f) => {
                    ready.push(None);
                    later.push(f);
                }
            }
        }
        if later.is_empty() {
            let parts: Vec<String> = ready.into_iter().flatten().collect();
            return if parts.is_empty() {
                Outcome::Silent
            } else {
                Outcome::Reply(join_batch(parts))
            };
        }
        Outcome::Later(
            async move {
                let mut done = join_all(later).await.into_iter();
                let parts: Vec<String> = ready
                    .into_iter()
                    .filter_map(|slot| slot.or_else(|| done.next().flatten()))
                    .collect();
                (!parts.is_empty()).then(|| join_batch(parts))
            }
            .boxed(),
        )
    }

    /// Handles one classified message.
    pub(crate) fn handle_message(&self, caller: &Caller, message: Message<'_>) -> Outcome {
        match message {
            Message::Request { id, method, params } => self.call(caller, Some(id), &method, params),
            Message::Notification { method, params } => self.call(caller, None, &method, params),
            Message::Response { id, outcome } => {
                let known = match (caller.session(), frame::our_id(id)) {
                    (Some(session), Some(n)) => session.shared.pending.complete(n, outcome.map(|r| r.to_owned())),
                    _ => false,
                };
                if !known {
                    tracing::debug!(id = id.get(), "dropped a response to an unknown or expired call");
                }
                Outcome::Silent
            }
            Message::Invalid {
                id,
                reason,
                was_response,
            } => {
                if was_response {
                    // A malformed answer to one of our calls fails that call at once
                    // instead of leaving its caller to wait for the timeout.
                    let failed = match (caller.session(), id.and_then(frame::our_id)) {
                        (Some(session), Some(n)) => session.shared.pending.complete(
                            n,
                            Err(ErrorObject::with_data(
                                codes::INVALID_REQUEST,
                                serde_json::json!({"reason": format!("the client's answer was malformed: {reason}")}),
                            )),
                        ),
                        _ => false,
                    };
                    if !failed {
                        tracing::debug!(reason, "dropped an invalid response");
                    }
                    return Outcome::Silent;
                }
                Outcome::Reply(frame::write_error(
                    id.map(RawValue::get),
                    &frame::invalid_request(reason),
                ))
            }
        }
    }

    fn call(&self, caller: &Caller, id: Option<&RawValue>, method: &str, params: Option<&RawValue>) -> Outcome {
        if methods::is_reserved(method) {
            return builtins::call(self, caller, id, method, params);
        }
        if !self.config.dev_mode()
            && !self
                .config
                .authorization
                .allows(Action::Call, method, caller.user(), caller.claims().as_deref())
        {
            return reply_error(
                id,
                ErrorObject::with_data(
                    codes::FORBIDDEN,
                    serde_json::json!({"reason": "you may not call this method", "method": method}),
                ),
            );
        }
        let Some((name, entry)) = self.methods.get(method) else {
            return match self.upstreams.route(method) {
                Some(route) => self.forward(caller, id, method, params, route),
                // Unknown methods are not timed: their names would make labels without end.
                None => reply_error(id, ErrorObject::new(codes::METHOD_NOT_FOUND)),
            };
        };
        let duration = &entry.duration;
        let callback = match &entry.method {
            Method::Direct(handler) => return self.call_direct(caller, id, name, params, handler, duration),
            Method::Jsonrpsee(callback) => callback,
        };
        let name = Arc::clone(name);
        let max = self.config.limits.max_response_size;
        let extensions = Self::extensions(caller);
        match callback {
            MethodCallback::Sync(f) => {
                let started = Instant::now();
                let params = Params::new(params.map(RawValue::get));
                let faithful = id.and_then(|id| faithful_id(id.get()));
                let jsonrpsee_id = faithful.clone().unwrap_or(Id::Null);
                let ended = std::panic::catch_unwind(AssertUnwindSafe(|| f(jsonrpsee_id, params, max, extensions)));
                duration.record(started.elapsed());
                match ended {
                    Ok(response) if faithful.is_some() && !is_oversized(&response) => {
                        // jsonrpsee wrote the client's id exactly as it came: its answer is ours.
                        Outcome::Reply(Box::<str>::from(response.into_json()).into_string())
                    }
                    Ok(response) => reply_spliced(id.map(RawValue::get), &response),
                    Err(_) => {
                        tracing::error!(method, "method handler panicked");
                        reply_error(id, ErrorObject::new(codes::INTERNAL_ERROR))
                    }
                }
            }
            MethodCallback::Async(f) => {
                // Stops when the method's future ends (or is dropped with its session).
                let timer = Timer::start(duration);
                // A faithful id goes to jsonrpsee and its answer is used as is;
                // any other is kept as text and spliced in.
                let faithful: Option<Id<'static>> = id.and_then(|i| faithful_id(i.get())).map(Id::into_owned);
                let id_text: Option<IdText> = if faithful.is_some() {
                    None
                } else {
                    id.map(|i| IdText::new(i.get()))
                };
                let answered = id.is_some();
                let mut extensions = extensions;
                match self.take_slot(caller) {
                    // The slot travels with the handler's extensions: a blocking
                    // method (run on a thread of its own) keeps it until it
                    // really ends, even when its call was cancelled.
                    Ok(Some(slot)) => {
                        extensions.insert(Arc::new(slot));
                    }
                    Ok(None) => {}
                    Err(error) => return reply_error(id, error),
                }
                let mut cancel = Cancellable::start(caller, id);
                if let Some(cancel) = &cancel {
                    extensions.insert(cancel.token());
                    extensions.insert(Progress::new(Some(cancel)));
                }
                let params = Params::new(params.map(RawValue::get)).into_owned();
                let future = f(
                    faithful.clone().unwrap_or(Id::Null),
                    params,
                    jsonrpsee::ConnectionId(caller.conn_id),
                    max,
                    extensions,
                );
                Outcome::Later(
                    async move {
                        let _timer = timer;
                        if !answered {
                            let _ = AssertUnwindSafe(future).catch_unwind().await;
                            return None;
                        }
                        let id_text = || match (&faithful, &id_text) {
                            (_, Some(text)) => text.as_str().to_owned(),
                            (Some(id), None) => serde_json::to_string(id).unwrap_or_else(|_| "null".into()),
                            (None, None) => "null".into(),
                        };
                        let Some(ended) =
                            unless_cancelled(cancel.as_mut(), AssertUnwindSafe(future).catch_unwind()).await
                        else {
                            return cancel.as_ref().map(Cancellable::answer);
                        };
                        match ended {
                            Ok(response) if faithful.is_some() && !is_oversized(&response) => {
                                Some(Box::<str>::from(response.into_json()).into_string())
                            }
                            Ok(response) => Some(splice(&id_text(), &response)),
                            Err(_) => {
                                tracing::error!(method = &*name, "method handler panicked");
                                Some(frame::write_error(
                                    Some(&id_text()),
                                    &ErrorObject::new(codes::INTERNAL_ERROR),
                                ))
                            }
                        }
                    }
                    .boxed(),
                )
            }
            MethodCallback::Subscription(_) | MethodCallback::Unsubscription(_) => reply_error(
                id,
                ErrorObject::with_data(
                    codes::METHOD_NOT_FOUND,
                    serde_json::json!({"reason": "jsonrpsee subscriptions are not served by the gateway; use topics (rpc.subscribe)"}),
                ),
            ),
        }
    }

    /// Calls a direct method: its result is written straight after the
    /// client's id, byte for byte as it came.
    fn call_direct(
        &self,
        caller: &Caller,
        id: Option<&RawValue>,
        method: &Arc<str>,
        params: Option<&RawValue>,
        handler: &Handler,
        duration: &metrics::Histogram,
    ) -> Outcome {
        let handler = match handler {
            Handler::Sync(handler) => handler,
            Handler::Async(handler) => {
                let timer = Timer::start(duration);
                return self.start_direct(caller, id, method, params, handler, timer);
            }
        };
        let started = Instant::now();
        let request = Request::new(params, caller, None);
        let id = id.map(RawValue::get);
        // A notification's handler runs too; what it writes is dropped.
        let hint = 2 * params.map_or(0, |p| p.get().len()) + 16;
        let reply = write_answer(
            id.unwrap_or("null"),
            self.config.limits.max_response_size,
            hint,
            |out| {
                std::panic::catch_unwind(AssertUnwindSafe(|| handler(request, out))).unwrap_or_else(|_| {
                    tracing::error!(method = &**method, "method handler panicked");
                    Err(ErrorObject::new(codes::INTERNAL_ERROR))
                })
            },
        );
        duration.record(started.elapsed());
        match id {
            Some(_) => Outcome::Reply(reply),
            None => Outcome::Silent,
        }
    }

    /// Starts an asynchronous direct method: its first step runs now, its
    /// future on the session's task, holding one of its in-flight slots.
    fn start_direct(
        &self,
        caller: &Caller,
        raw_id: Option<&RawValue>,
        method: &Arc<str>,
        params: Option<&RawValue>,
        handler: &AsyncHandler,
        timer: Timer,
    ) -> Outcome {
        let id = raw_id.map(RawValue::get);
        let slot = match self.take_slot(caller) {
            Ok(slot) => slot,
            Err(error) => return reply_error_text(id, error),
        };
        let cancel = Cancellable::start(caller, raw_id);
        let owes = Owes {
            id: id.map(IdText::new),
            max: self.config.limits.max_response_size,
            method: method.clone(),
            slot,
            cancel,
            timer,
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| handler(params, caller, owes))) {
            Ok(Ok(future)) => Outcome::Later(future),
            Ok(Err(error)) => reply_error_text(id, error),
            Err(_) => {
                tracing::error!(method = &**method, "method handler panicked");
                reply_error_text(id, ErrorObject::new(codes::INTERNAL_ERROR))
            }
        }
    }

    /// One of the session's in-flight slots for a call that answers later
    /// (none over HTTP), or `-32003` when all are taken.
    fn take_slot(&self, caller: &Caller) -> Result<Option<InFlight>, ErrorObject> {
        match caller.session() {
            Some(session) if !session.try_begin_request() => {
                metrics::counter!("switchboard_overloaded_total").increment(1);
                Err(ErrorObject::with_data(
                    codes::OVERLOADED,
                    serde_json::json!({"reason": "too many requests in flight", "limit": self.config.limits.max_in_flight}),
                ))
            }
            Some(session) => Ok(Some(InFlight(session.clone()))),
            None => Ok(None),
        }
    }

    fn extensions(caller: &Caller) -> Extensions {
        let mut extensions = Extensions::new();
        extensions.insert(caller.clone());
        extensions
    }
}

impl Dispatcher {
    /// Forwards a call to its upstream backend. Like an asynchronous method it
    /// holds one of the session's in-flight slots until the backend answers,
    /// or is answered `-32003` at once when there is none.
    fn forward(
        &self,
        caller: &Caller,
        id: Option<&RawValue>,
        method: &str,
        params: Option<&RawValue>,
        route: &Arc<crate::rpc::upstream::Route>,
    ) -> Outcome {
        let slot = match self.take_slot(caller) {
            Ok(slot) => slot,
            Err(error) => return reply_error(id, error),
        };
        let identity = crate::rpc::upstream::Identity {
            user: caller.user.clone(),
            session: caller.session_id().map(ToString::to_string),
            claims: caller.claims(),
        };
        let timer = Timer::start(route.duration());
        let mut cancel = Cancellable::start(caller, id);
        let answer = self
            .upstreams
            .forward(route, identity, id.map(|i| IdText::new(i.get())), method, params);
        Outcome::Later(
            async move {
                let _slot = slot;
                let _timer = timer;
                // Cancelled: the HTTP request to the backend is dropped, which aborts it.
                match unless_cancelled(cancel.as_mut(), answer).await {
                    Some(answer) => answer,
                    None => cancel.as_ref().map(Cancellable::answer),
                }
            }
            .boxed(),
        )
    }
}

/// Releases an in-flight slot when the request's future ends, however it ends.
pub(crate) struct InFlight(SessionHandle);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

/// A request of the session's client that answers later, entered in the
/// session's table of running requests (for `rpc.cancel`) until it ends.
pub(crate) struct Cancellable {
    session: SessionHandle,
    /// The id as the client wrote it, for the answer.
    id: IdText,
    /// The request's own number in the session's table.
    serial: u64,
    /// Taken by [`unless_cancelled`] for the request's future.
    abort: Option<AbortRegistration>,
}

impl Cancellable {
    /// Enters request `id` of `caller`'s session; none over HTTP or for a notification.
    pub(crate) fn start(caller: &Caller, id: Option<&RawValue>) -> Option<Self> {
        let (session, id) = (caller.session()?, id?);
        let started = session.shared.requests.start(&frame::id_key(id.get()));
        Some(Self {
            session: session.clone(),
            id: IdText::new(id.get()),
            serial: started.serial,
            abort: Some(started.abort),
        })
    }

    /// What a progress report needs: the session, the id as the client wrote it, the request's number.
    pub(crate) fn progress_to(&self) -> (SessionHandle, IdText, u64) {
        (self.session.clone(), self.id.clone(), self.serial)
    }

    /// A token that fires when the request is cancelled, for its handler.
    pub(crate) fn token(&self) -> CancellationToken {
        self.session.shared.requests.token(self.serial)
    }

    /// The answer to the request, cancelled: `-32011`.
    pub(crate) fn answer(&self) -> String {
        frame::write_error(Some(self.id.as_str()), &ErrorObject::new(codes::CANCELLED))
    }
}

impl Drop for Cancellable {
    fn drop(&mut self) {
        self.session.shared.requests.end(self.serial);
    }
}

/// Runs `work` to its end, unless its request is cancelled first: then the
/// work is dropped (`None`).
pub(crate) async fn unless_cancelled<F: Future>(cancel: Option<&mut Cancellable>, work: F) -> Option<F::Output> {
    match cancel.and_then(|cancel| cancel.abort.take()) {
        Some(abort) => Abortable::new(work, abort).await.ok(),
        None => Some(work.await),
    }
}

/// How a direct method's answer starts, before the client's id.
const PREFIX: &str = r#"{"jsonrpc":"2.0","id":"#;
/// Between the id and a direct method's result.
const RESULT: &str = r#","result":"#;

/// A direct method's answer to request `id`: `{"jsonrpc":"2.0","id":<id>,
/// "result":` and what `write` writes (`hint` bytes are reserved for it),
/// then `}`; or the error frame for what it failed with, or for a result
/// over `max` bytes.
pub(crate) fn write_answer(
    id: &str,
    max: usize,
    hint: usize,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), ErrorObject>,
) -> String {
    let mut out = Vec::with_capacity(PREFIX.len() + id.len() + RESULT.len() + hint + 1);
    out.extend_from_slice(PREFIX.as_bytes());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(RESULT.as_bytes());
    let start = out.len();
    match write(&mut out) {
        Ok(()) if out.len() - start > max => frame::write_error(Some(id), &too_large()),
        Ok(()) => {
            out.push(b'}');
            // serde_json writes UTF-8 and the id is the client's own text.
            String::from_utf8(out)
                .unwrap_or_else(|_| frame::write_error(Some(id), &ErrorObject::new(codes::INTERNAL_ERROR)))
        }
        Err(error) => frame::write_error(Some(id), &error),
    }
}

/// A result over `limits.max_response_size`.
fn too_large() -> ErrorObject {
    ErrorObject::with_data(
        codes::LIMIT_EXCEEDED,
        serde_json::json!({"reason": "the response is larger than limits.max_response_size"}),
    )
}

fn reply_error_text(id: Option<&str>, error: ErrorObject) -> Outcome {
    match id {
        Some(id) => Outcome::Reply(frame::write_error(Some(id), &error)),
        None => Outcome::Silent,
    }
}

pub(crate) fn reply_error(id: Option<&RawValue>, error: ErrorObject) -> Outcome {
    match id {
        Some(id) => Outcome::Reply(frame::write_error(Some(id.get()), &error)),
        None => Outcome::Silent,
    }
}

pub(crate) fn reply_result<T: serde::Serialize>(id: Option<&RawValue>, result: &T) -> Outcome {
    match (id, serde_json::to_string(result)) {
        (Some(id), Ok(json)) => Outcome::Reply(frame::write_result(id.get(), &json)),
        (Some(id), Err(_)) => Outcome::Reply(frame::write_error(
            Some(id.get()),
            &ErrorObject::new(codes::INTERNAL_ERROR),
        )),
        (None, _) => Outcome::Silent,
    }
}

fn reply_spliced(id: Option<&str>, response: &MethodResponse) -> Outcome {
    match id {
        Some(id) => Outcome::Reply(splice(id, response)),
        None => Outcome::Silent,
    }
}

/// The client's id as a jsonrpsee [`Id`], when jsonrpsee would write it back
/// byte for byte: a plain decimal integer, or a string without escapes.
/// Other ids (negative, fractional, escaped) go in as `null` and are spliced.
fn faithful_id(raw: &str) -> Option<Id<'_>> {
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let plain = inner.bytes().all(|b| b != b'\\' && b != b'"' && b >= 0x20);
        return plain.then(|| Id::Str(inner.into()));
    }
    let canonical = !raw.is_empty()
        && raw.len() <= 19
        && raw.bytes().all(|b| b.is_ascii_digit())
        && (raw == "0" || !raw.starts_with('0'));
    if canonical {
        raw.parse().ok().map(Id::Number)
    } else {
        None
    }
}

/// jsonrpsee's own code for an oversized answer collides with the gateway's
/// range: such answers are rewritten in the gateway's words.
fn is_oversized(response: &MethodResponse) -> bool {
    response.as_error_code() == Some(jsonrpsee::types::error::OVERSIZED_RESPONSE_CODE)
}

/// Puts the client's id into jsonrpsee's answer, which was made with id `null`.
fn splice(id: &str, response: &MethodResponse) -> String {
    if is_oversized(response) {
        let error = ErrorObject::with_data(
            codes::LIMIT_EXCEEDED,
            serde_json::json!({"reason": "the response is larger than limits.max_response_size"}),
        );
        return frame::write_error(Some(id), &error);
    }
    let json = response.as_json().get();
    if let Some(rest) = json.strip_prefix(PLACEHOLDER_PREFIX) {
        let mut out = String::with_capacity(json.len() - PLACEHOLDER_PREFIX.len() + 23 + id.len());
        out.push_str(r#"{"jsonrpc":"2.0","id":"#);
        out.push_str(id);
        out.push(',');
        out.push_str(rest);
        return out;
    }
    // A jsonrpsee that orders its fields differently: rebuild the answer.
    let value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    if let Some(error) = value.get("error") {
        frame::write_error_raw(Some(id), &error.to_string())
    } else {
        frame::write_result(id, &value.get("result").cloned().unwrap_or_default().to_string())
    }
}

fn join_batch(parts: Vec<String>) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum::<usize>() + 2);
    out.push('[');
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(part);
    }
    out.push(']');
    out
}

#[cfg(test)]
mod faithful_ids {
    use super::faithful_id;
    use jsonrpsee::types::Id;

    #[test]
    fn only_ids_jsonrpsee_writes_back_unchanged_pass() {
        assert_eq!(faithful_id("0"), Some(Id::Number(0)));
        assert_eq!(faithful_id("42"), Some(Id::Number(42)));
        assert_eq!(faithful_id(r#""abc-1""#), Some(Id::Str("abc-1".into())));
        assert_eq!(faithful_id(r#""""#), Some(Id::Str("".into())));
        for raw in [
            "-1",
            "1.5",
            "1e3",
            "007",
            "99999999999999999999",
            r#""a\"b""#,
            r#""a\nb""#,
            "null",
            "true",
            "[1]",
        ] {
            assert_eq!(faithful_id(raw), None, "{raw}");
        }
    }
}
