//! Demo methods, registered in dev mode: enough to try every direction by hand.
//!
//! * `echo` — answers its params unchanged.
//! * `whoami` — the caller's session and user.
//! * `demo.callback {method, params?, timeout_ms?}` — calls `method` back on the
//!   caller's own session and answers with what the client answered.
//! * `demo.sleep {ms}` — answers `ms` after `ms` milliseconds (for concurrency),
//!   reporting `rpc.progress {id, progress: {elapsed_ms, ms}}` about every 100 ms;
//!   `rpc.cancel` stops it (answered `-32011`).
//! * `chat.join {room}` — subscribes the caller to `chat:{room}`.
//! * `chat.send {room, text}` — publishes `{from, text}` on `chat:{room}`.
//! * `chat.dm {user, text}` — pushes `chat.message {from, text}` to every session of a user.
//! * `chat.ask {user, method, params?, timeout_ms?, policy?}` — calls a method on
//!   every session of a user and answers with one entry per session; with a
//!   `policy` (`"all"`, `"first"`, `{"quorum": n}`) it answers `{outcomes, met}`,
//!   and the sessions the policy no longer needs are sent `rpc.cancel`.
//!
//! Every one but `echo` (which takes any params) is described in
//! `rpc.discover` through the descriptors below, and so are what the demo
//! calls on clients (`ui.confirm [question]`, `page.info`) and pushes
//! (`chat.message`). `demo.callback` parses its params itself, borrowing
//! them, and `demo.sleep` and `chat.ask` are jsonrpsee methods: those three
//! are described with `GatewayBuilder::describe`; the others are served
//! through their descriptors.

use std::borrow::Cow;
use std::time::Duration;

use jsonrpsee::RpcModule;
use jsonrpsee::types::{ErrorObject, ErrorObjectOwned};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use switchboard_protocol::api::{CallEntry, CallOutcomes};
use switchboard_protocol::contract::{ClientMethod, Method, Push};
use switchboard_protocol::{Target, codes};

use crate::rpc::caller::Caller;
use crate::{CallOptions, CallPolicy, Error, GatewayBuilder, Progress};

fn caller(ext: &http::Extensions) -> Caller {
    ext.get::<Caller>()
        .cloned()
        .expect("the gateway always sets the caller")
}

fn to_rpc(e: switchboard_protocol::ErrorObject) -> ErrorObjectOwned {
    ErrorObject::owned(e.code, e.message, e.data)
}

fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    to_rpc(failed(e))
}

fn failed(e: impl std::fmt::Display) -> switchboard_protocol::ErrorObject {
    tracing::warn!(error = %e, "demo method failed");
    switchboard_protocol::ErrorObject::new(codes::INTERNAL_ERROR)
}

/// Borrowed from the request: nothing of it is copied on the way to the client.
#[derive(Deserialize)]
struct Callback<'a> {
    #[serde(borrow)]
    method: Cow<'a, str>,
    /// Passed on as written, never parsed.
    #[serde(default, borrow)]
    params: Option<&'a RawValue>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// `demo.callback`'s params.
#[derive(Serialize, Deserialize, JsonSchema)]
struct CallbackParams {
    /// The method to call on the caller's own client.
    method: String,
    /// Its params, passed on as written (a bare value is wrapped in an array).
    #[serde(default)]
    params: Option<Value>,
    /// How long to wait for the client's answer (default: the gateway's call timeout).
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// `demo.sleep`'s params (also taken by position, `[ms]`).
#[derive(Serialize, Deserialize, JsonSchema)]
struct SleepParams {
    /// How long to sleep, in milliseconds (at most 60000).
    ms: u64,
}

/// `chat.ask`'s params.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Ask {
    /// Whose sessions are asked.
    user: String,
    /// The method called on each of them.
    method: String,
    /// Its params, passed on as written (a bare value is wrapped in an array).
    #[serde(default)]
    params: Option<Box<RawValue>>,
    /// How long to wait for each session (default: the gateway's call timeout).
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// When the call is complete; with one, the answer is `{outcomes, met}`.
    #[serde(default)]
    policy: Option<CallPolicy>,
}

/// `chat.ask`'s answer: one entry per session, or `{outcomes, met}` with a policy.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
enum Asked {
    Entries(Vec<CallEntry>),
    Outcomes(CallOutcomes),
}

/// `whoami`'s answer.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Whoami {
    /// The caller's session (none over HTTP).
    session: Option<String>,
    /// The caller's user.
    user: String,
}

/// A room to join.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Room {
    room: String,
}

/// `chat.join`'s answer.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Joined {
    /// The topic the session now follows: `chat:{room}`.
    topic: String,
}

/// A message for a room.
#[derive(Serialize, Deserialize, JsonSchema)]
struct RoomText {
    room: String,
    text: String,
}

/// A direct message for every session of a user.
#[derive(Serialize, Deserialize, JsonSchema)]
struct UserText {
    user: String,
    text: String,
}

/// A chat message as it is published on a room's topic and pushed to a user.
#[derive(Serialize, Deserialize, JsonSchema)]
struct ChatMessage {
    /// Who sent it.
    from: String,
    text: String,
}

/// `whoami`.
struct WhoamiMethod;
impl Method for WhoamiMethod {
    const NAME: &'static str = "whoami";
    const SUMMARY: &'static str = "The caller's session and user.";
    type Params = ();
    type Result = Whoami;
}

/// `demo.callback`.
struct CallbackMethod;
impl Method for CallbackMethod {
    const NAME: &'static str = "demo.callback";
    const SUMMARY: &'static str =
        "Calls a method back on the caller's own session and answers with what the client answered.";
    const ERRORS: &'static [i32] = &[codes::TIMEOUT, codes::SESSION_GONE];
    type Params = CallbackParams;
    type Result = Value;
}

/// `demo.sleep`.
struct SleepMethod;
impl Method for SleepMethod {
    const NAME: &'static str = "demo.sleep";
    const SUMMARY: &'static str = "Answers ms after ms milliseconds, reporting rpc.progress {elapsed_ms, ms} about every 100 ms; rpc.cancel stops it.";
    const ERRORS: &'static [i32] = &[codes::CANCELLED];
    type Params = SleepParams;
    type Result = u64;
}

/// `chat.join`.
struct JoinMethod;
impl Method for JoinMethod {
    const NAME: &'static str = "chat.join";
    const SUMMARY: &'static str = "Subscribes the caller's session to the room's topic, chat:{room}.";
    type Params = Room;
    type Result = Joined;
}

/// `chat.send`.
struct SendMethod;
impl Method for SendMethod {
    const NAME: &'static str = "chat.send";
    const SUMMARY: &'static str = "Publishes {from, text} on the room's topic, chat:{room}.";
    type Params = RoomText;
    type Result = bool;
}

/// `chat.dm`.
struct DmMethod;
impl Method for DmMethod {
    const NAME: &'static str = "chat.dm";
    const SUMMARY: &'static str = "Pushes chat.message {from, text} to every session of a user.";
    type Params = UserText;
    type Result = bool;
}

/// `chat.ask`.
struct AskMethod;
impl Method for AskMethod {
    const NAME: &'static str = "chat.ask";
    const SUMMARY: &'static str = "Calls a method on every session of a user and answers one entry per session; with a policy, {outcomes, met}, and the sessions the policy no longer needs are sent rpc.cancel.";
    type Params = Ask;
    type Result = Asked;
}

/// `ui.confirm`, called on clients: a yes/no question for the user.
struct Confirm;
impl ClientMethod for Confirm {
    const NAME: &'static str = "ui.confirm";
    const SUMMARY: &'static str = "Ask the user a yes/no question; answer whether they said yes.";
    const PARAM_NAMES: &'static [&'static str] = &["question"];
    type Params = (String,);
    type Result = bool;
}

/// `page.info`, called on clients: what the page is.
struct PageInfo;
impl ClientMethod for PageInfo {
    const NAME: &'static str = "page.info";
    const SUMMARY: &'static str = "Describe the page the client runs in (any members).";
    type Params = ();
    type Result = serde_json::Map<String, Value>;
}

/// `chat.message`, pushed to every session of a user by `chat.dm`.
struct MessagePush;
impl Push for MessagePush {
    const NAME: &'static str = "chat.message";
    const SUMMARY: &'static str = "A direct message from another user.";
    type Params = ChatMessage;
}

fn timeout(c: &Caller, ms: Option<u64>) -> Duration {
    ms.map_or_else(|| c.hub().default_call_timeout(), Duration::from_millis)
}

/// `params` as JSON-RPC structured params (an array or an object), without parsing them.
fn structured(params: Option<&RawValue>) -> Result<Cow<'_, RawValue>, switchboard_protocol::ErrorObject> {
    let wrapped = match params {
        Some(raw) if raw.get().starts_with(['[', '{']) => return Ok(Cow::Borrowed(raw)),
        Some(raw) => format!("[{}]", raw.get()),
        None => "[]".to_owned(),
    };
    RawValue::from_string(wrapped).map(Cow::Owned).map_err(|e| {
        tracing::warn!(error = %e, "demo method failed");
        switchboard_protocol::ErrorObject::new(codes::INTERNAL_ERROR)
    })
}

/// Adds the demo methods: `echo` and `demo.callback` as direct methods,
/// `whoami` and `chat.join`, `chat.send`, `chat.dm` through their
/// descriptors, `demo.sleep` and `chat.ask` in a jsonrpsee module (every
/// kind, as an application would use them), and declares what the demo
/// calls on clients and pushes to them.
pub(crate) fn register(builder: GatewayBuilder) -> Result<GatewayBuilder, Error> {
    builder
        .method("echo", |req| req.params::<Value>())?
        .serve::<WhoamiMethod, _>(|req, ()| {
            Ok(Whoami {
                session: req.session().map(|s| s.id().to_string()),
                user: req.user().to_owned(),
            })
        })?
        .method_async("demo.callback", |req| {
            let p: Callback<'_> = req.params()?;
            let timeout = p
                .timeout_ms
                .map_or_else(|| req.hub().default_call_timeout(), Duration::from_millis);
            // Sent now, from the request's own bytes: the future keeps only the call.
            let call = req.call_raw(&p.method, Some(&structured(p.params)?), timeout);
            // The client's answer is handed back as it came.
            Ok(async move { call.await.map_err(|e| e.to_error_object()) })
        })?
        .describe::<CallbackMethod>()?
        .serve_async::<JoinMethod, _, _>(|req, Room { room }| {
            let c = req.caller().clone();
            Ok(async move {
                let Some(session) = c.session_id() else {
                    return Err(switchboard_protocol::ErrorObject::with_message(
                        codes::INVALID_REQUEST,
                        "needs a WebSocket session",
                    ));
                };
                let topic = format!("chat:{room}");
                c.hub()
                    .subscribe(Target::Session(session.to_string()), vec![topic.clone()])
                    .await
                    .map_err(failed)?;
                Ok(Joined { topic })
            })
        })?
        .serve_async::<SendMethod, _, _>(|req, RoomText { room, text }| {
            let c = req.caller().clone();
            Ok(async move {
                let message = ChatMessage {
                    from: c.user().to_owned(),
                    text,
                };
                c.hub()
                    .publish(&format!("chat:{room}"), &message)
                    .await
                    .map_err(failed)?;
                Ok(true)
            })
        })?
        .serve_async::<DmMethod, _, _>(|req, UserText { user, text }| {
            let c = req.caller().clone();
            Ok(async move {
                let message = ChatMessage {
                    from: c.user().to_owned(),
                    text,
                };
                c.hub()
                    .push::<MessagePush>(Target::User(user), &message)
                    .await
                    .map_err(failed)?;
                Ok(true)
            })
        })?
        .module(module())?
        .describe::<SleepMethod>()?
        .describe::<AskMethod>()?
        .declare_client_method::<Confirm>()?
        .declare_client_method::<PageInfo>()?
        .declare_push::<MessagePush>()
}

/// The demo methods that wait.
fn module() -> RpcModule<()> {
    let mut m = RpcModule::new(());
    m.register_async_method("demo.sleep", |params, _, ext| async move {
        // By name or by position: serde takes a struct from an array too.
        let SleepParams { ms } = params.parse()?;
        let ms = ms.min(60_000);
        let progress = ext.get::<Progress>().cloned();
        let mut elapsed = 0;
        while elapsed < ms {
            let step = (ms - elapsed).min(100);
            tokio::time::sleep(Duration::from_millis(step)).await;
            elapsed += step;
            if elapsed < ms
                && let Some(progress) = &progress
            {
                progress.report(&serde_json::json!({"elapsed_ms": elapsed, "ms": ms}));
            }
        }
        Ok::<_, ErrorObjectOwned>(ms)
    })
    .expect("fresh module");
    m.register_async_method("chat.ask", |params, _, ext| async move {
        let p: Ask = params.parse()?;
        let c = caller(&ext);
        let params = structured(p.params.as_deref()).map_err(to_rpc)?;
        let options = CallOptions {
            timeout: timeout(&c, p.timeout_ms),
            policy: p.policy,
            progress: false,
        };
        let report = c
            .hub()
            .call_stream(Target::User(p.user), &p.method, Some(&*params), options)
            .await
            .map_err(internal)?
            .finish()
            .await;
        serde_json::to_value(report).map_err(internal)
    })
    .expect("fresh module");
    m
}

#[cfg(test)]
mod tests {
    use crate::{Config, Gateway};

    /// The dev gateway's `rpc.discover` document is committed as
    /// `schemas/demo-openrpc.json`, for the demo page's generated types:
    /// rewrite it with `UPDATE_SCHEMAS=1`.
    #[test]
    fn committed_demo_document_matches() {
        let builder = super::register(Gateway::builder(Config::default())).expect("the demo registers");
        let doc: serde_json::Value =
            serde_json::from_str(builder.discover_document().get()).expect("the document is JSON");
        let mut fresh = serde_json::to_string_pretty(&doc).expect("serialises");
        fresh.push('\n');
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/demo-openrpc.json");
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(path, &fresh).expect("writable");
            return;
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            fresh == committed,
            "schemas/demo-openrpc.json is stale: run `UPDATE_SCHEMAS=1 cargo test -p switchboard-server demo` and commit it"
        );
    }
}
