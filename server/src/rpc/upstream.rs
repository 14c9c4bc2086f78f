//! The upstream proxy: calls for a configured method prefix go to an HTTP
//! JSON-RPC backend, so that a backend in any language serves browser calls.
//!
//! A client call (over WebSocket or `POST /rpc`) whose method is not
//! registered on the gateway but starts with the `prefix` of an entry of
//! `upstreams` (the longest matching prefix wins) is sent to that entry's
//! `url` as a `POST` with a JSON-RPC body. The gateway gives the forwarded
//! request a fresh integer id and puts the client's own id, byte for byte,
//! into the answer; a client notification is forwarded as a notification
//! and its HTTP answer is ignored.
//!
//! # What the backend receives
//!
//! | header                   | value                                                              |
//! |--------------------------|--------------------------------------------------------------------|
//! | `Content-Type`           | `application/json`                                                 |
//! | `X-Switchboard-User`     | the caller's user id (UTF-8)                                       |
//! | `X-Switchboard-Session`  | the caller's session id; absent for calls over `POST /rpc`         |
//! | `X-Switchboard-Claims`   | base64url (no padding) of the JSON of the caller's token claims; `e30` (`{}`) when there are none |
//! | `X-Switchboard-Timestamp`| when the request was signed, in milliseconds since the Unix epoch  |
//! | `X-Switchboard-Signature`| lowercase hex of HMAC-SHA256 with the entry's `secret`, see below  |
//!
//! The signature covers the identity and the exact body bytes, so a backend
//! can trust the headers without trusting the network between them:
//!
//! ```text
//! signed = timestamp + "\n" + user + "\n" + session + "\n" + claims + "\n" + body
//! X-Switchboard-Signature = hex(HMAC-SHA256(secret, signed))
//! ```
//!
//! where each name is the header's value as sent, `session` is the empty
//! string when the header is absent, and `body` is the raw request body.
//! A backend recomputes the HMAC, compares it in constant time, and refuses
//! timestamps too far from its own clock (a minute, say) to stop replays.
//! In Python:
//!
//! ```text
//! signed = "\n".join([ts, user, session, claims]).encode() + b"\n" + body
//! ok = hmac.compare_digest(hmac.new(secret, signed, "sha256").hexdigest(), signature)
//! ```
//!
//! # What the client receives
//!
//! * the backend's `result`, or its `error` object unchanged;
//! * `-32004` (timeout) when the backend has not answered within the entry's
//!   `timeout_ms`;
//! * `-32006` (upstream failed) with a `data.reason` when the backend cannot
//!   be reached, answers with an HTTP status other than 2xx, or answers with
//!   something that is not a JSON-RPC response to the request (the details
//!   are logged, not sent);
//! * `-32003` (overloaded) when the session already has `limits.max_in_flight`
//!   requests in flight: a forwarded call takes a slot like any asynchronous
//!   method.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::HeaderValue;
use serde::Deserialize;
use serde_json::value::RawValue;
use switchboard_protocol::frame::{self, Frame, Message};
use switchboard_protocol::{ErrorObject, codes};

use crate::config::UpstreamConfig;
use crate::error::Error;
use crate::session::IdText;
use crate::signing::{Signer, unix_ms};

/// The configured backends and the one HTTP client they share.
pub(crate) struct Upstreams {
    /// Longest prefix first, so the first match is the most specific.
    routes: Vec<Arc<Route>>,
    client: reqwest::Client,
    next_id: AtomicU64,
    max_response_size: usize,
}

/// One backend, ready to use.
pub(crate) struct Route {
    prefix: String,
    url: reqwest::Url,
    timeout: Duration,
    signer: Signer,
    /// The latency of the calls it forwards, labelled with its prefix and `*`.
    duration: metrics::Histogram,
}

impl Route {
    /// The latency histogram of the calls this route forwards.
    pub(crate) fn duration(&self) -> &metrics::Histogram {
        &self.duration
    }
}

/// Who a forwarded call is made for.
pub(crate) struct Identity {
    pub(crate) user: Arc<str>,
    /// `None` over `POST /rpc`.
    pub(crate) session: Option<String>,
    /// The caller's token claims, when authentication provides them.
    pub(crate) claims: Option<Arc<serde_json::Value>>,
}

/// Why a forwarded call has no answer from the backend.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("the upstream could not be reached: {0}")]
    Unreachable(reqwest::Error),
    #[error("the upstream answered HTTP {0}")]
    Status(u16),
    #[error("the upstream's answer was too large")]
    TooLarge,
    #[error("the upstream's answer was not a JSON-RPC response to the request: {0}")]
    Invalid(&'static str),
    #[error("the {0} cannot be sent in an HTTP header")]
    Header(&'static str),
}

impl Failure {
    /// What the client is told: a code and a reason without internal details.
    fn to_error_object(&self, timeout: Duration) -> ErrorObject {
        let reason = match self {
            Failure::Timeout => {
                return ErrorObject::with_data(
                    codes::TIMEOUT,
                    serde_json::json!({"reason": "the upstream did not answer in time", "timeout_ms": timeout.as_millis() as u64}),
                );
            }
            Failure::Unreachable(_) => "the upstream could not be reached".to_owned(),
            Failure::Status(status) => format!("the upstream answered HTTP {status}"),
            Failure::TooLarge => "the upstream's answer was too large".to_owned(),
            Failure::Invalid(_) => "the upstream's answer was not a valid JSON-RPC response".to_owned(),
            Failure::Header(what) => format!("the {what} cannot be sent to the upstream in an HTTP header"),
        };
        ErrorObject::with_data(codes::UPSTREAM_FAILED, serde_json::json!({ "reason": reason }))
    }

    fn label(&self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            _ => "failed",
        }
    }
}

impl Upstreams {
    /// Checks the entries and builds the shared HTTP client.
    pub(crate) fn new(configs: &[UpstreamConfig], max_response_size: usize) -> Result<Self, Error> {
        let mut routes = Vec::with_capacity(configs.len());
        for c in configs {
            c.validate()?;
            if routes.iter().any(|r: &Arc<Route>| r.prefix == c.prefix) {
                return Err(Error::invalid(c.key("prefix"), "is configured twice"));
            }
            routes.push(Arc::new(Route {
                prefix: c.prefix.clone(),
                url: crate::config::http_url(c.key("url"), &c.url)?,
                timeout: Duration::from_millis(c.timeout_ms),
                signer: Signer::new(&c.secret),
                duration: crate::metrics::call_duration(&format!("{}*", c.prefix)),
            }));
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(Error::HttpClient)?;
        Ok(Self {
            routes,
            client,
            next_id: AtomicU64::new(1),
            max_response_size,
        })
    }

    /// The backend serving `method`, if any.
    pub(crate) fn route(&self, method: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| method.starts_with(&r.prefix))
    }

    /// Forwards one call. The future yields the client's answer (`None` for a
    /// notification, whose HTTP answer is ignored).
    pub(crate) fn forward(
        &self,
        route: &Arc<Route>,
        identity: Identity,
        id: Option<IdText>,
        method: &str,
        params: Option<&RawValue>,
    ) -> BoxFuture<'static, Option<String>> {
        let our_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let params = params.map(RawValue::get);
        let body = match id {
            Some(_) => frame::write_request(our_id, method, params),
            None => frame::write_notification(method, params),
        };
        let request = self.request(route, &identity, body);
        let route = route.clone();
        let max = self.max_response_size;
        let method: Box<str> = method.into();
        async move {
            let outcome = match request {
                Ok(request) => match tokio::time::timeout(route.timeout, exchange(request, max)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(Failure::Timeout),
                },
                Err(failure) => Err(failure),
            };
            let outcome = match &id {
                Some(id) => outcome.and_then(|text| answer(id.as_str(), our_id, &text)),
                None => outcome.map(|_| String::new()),
            };
            let label = match &outcome {
                Ok(_) => "ok",
                Err(failure) => {
                    tracing::warn!(method = &*method, upstream = %route.prefix, error = %failure, "upstream call failed");
                    failure.label()
                }
            };
            metrics::counter!("switchboard_upstream_requests_total", "outcome" => label).increment(1);
            let id = id?;
            Some(outcome.unwrap_or_else(|failure| {
                frame::write_error(Some(id.as_str()), &failure.to_error_object(route.timeout))
            }))
        }
        .boxed()
    }

    /// The signed HTTP request for `body`.
    fn request(&self, route: &Route, identity: &Identity, body: String) -> Result<reqwest::RequestBuilder, Failure> {
        let timestamp = unix_ms().to_string();
        let claims = match identity.claims.as_deref() {
            Some(claims) if !claims.is_null() => {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string())
            }
            _ => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("{}"),
        };
        let session = identity.session.as_deref().unwrap_or("");
        let signature = route
            .signer
            .sign(&[&timestamp, &identity.user, session, &claims], body.as_bytes());
        let user = HeaderValue::from_bytes(identity.user.as_bytes()).map_err(|_| Failure::Header("user id"))?;
        let mut request = self
            .client
            .post(route.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-switchboard-user", user)
            .header("x-switchboard-claims", claims)
            .header("x-switchboard-timestamp", timestamp)
            .header("x-switchboard-signature", signature);
        if let Some(session) = &identity.session {
            let session = HeaderValue::from_str(session).map_err(|_| Failure::Header("session id"))?;
            request = request.header("x-switchboard-session", session);
        }
        Ok(request.body(body))
    }
}

/// Sends the request and reads the body, at most `max` bytes of it.
async fn exchange(request: reqwest::RequestBuilder, max: usize) -> Result<String, Failure> {
    let mut response = request.send().await.map_err(Failure::Unreachable)?;
    let status = response.status();
    if !status.is_success() {
        return Err(Failure::Status(status.as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Failure::Unreachable)? {
        if body.len() + chunk.len() > max {
            return Err(Failure::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| Failure::Invalid("not UTF-8"))
}

/// The client's answer from the backend's: its result, or its error object
/// unchanged, under the client's id.
fn answer(id: &str, our_id: u64, text: &str) -> Result<String, Failure> {
    #[derive(Deserialize)]
    struct ErrorMember<'a> {
        #[serde(borrow)]
        error: &'a RawValue,
    }
    let Frame::Single(message) = frame::parse(text) else {
        return Err(Failure::Invalid("not a single JSON object"));
    };
    match message {
        Message::Response { id: theirs, outcome } => {
            let ours = frame::our_id(theirs) == Some(our_id);
            match outcome {
                Ok(result) if ours => Ok(frame::write_result(id, result.get())),
                // A backend that could not read the request's id answers errors with id null.
                Err(_) if ours || theirs.get() == "null" => {
                    let error = serde_json::from_str::<ErrorMember<'_>>(text)
                        .map_err(|_| Failure::Invalid("unreadable error member"))?;
                    Ok(frame::write_error_raw(Some(id), error.error.get()))
                }
                _ => Err(Failure::Invalid("the answer's id is not the request's")),
            }
        }
        Message::Invalid { reason, .. } => Err(Failure::Invalid(reason)),
        Message::Request { .. } | Message::Notification { .. } => Err(Failure::Invalid("a request, not a response")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_keep_the_clients_id_and_the_backends_error() {
        assert_eq!(
            answer("\"a\"", 7, r#"{"jsonrpc":"2.0","id":7,"result":{"x":1}}"#).unwrap(),
            r#"{"jsonrpc":"2.0","id":"a","result":{"x":1}}"#
        );
        let error = r#"{"code":-1,"message":"no","data":{"k":[1, 2]}}"#;
        let text = format!(r#"{{"jsonrpc":"2.0","id":7,"error":{error}}}"#);
        assert_eq!(
            answer("1", 7, &text).unwrap(),
            format!(r#"{{"jsonrpc":"2.0","id":1,"error":{error}}}"#)
        );
        assert!(answer("1", 7, r#"{"jsonrpc":"2.0","id":8,"result":1}"#).is_err());
        assert!(answer("1", 7, "<html>").is_err());
        assert!(answer("1", 7, "[]").is_err());
    }

    #[test]
    fn the_longest_prefix_wins() {
        let entry = |prefix: &str| UpstreamConfig {
            prefix: prefix.to_owned(),
            url: "http://127.0.0.1:1/".to_owned(),
            timeout_ms: 10,
            secret: "s".to_owned(),
        };
        let upstreams = Upstreams::new(&[entry("a."), entry("a.b.")], 1024).unwrap();
        assert_eq!(upstreams.route("a.b.c").unwrap().prefix, "a.b.");
        assert_eq!(upstreams.route("a.c").unwrap().prefix, "a.");
        assert!(upstreams.route("b.c").is_none());
        assert!(Upstreams::new(&[entry("rpc.x")], 1).is_err());
        assert!(Upstreams::new(&[entry("")], 1).is_err());
    }
}
