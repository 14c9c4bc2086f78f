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
//! * `chat.dm {user, text}` — sends `chat.dm {from, text}` to every session of a user.
//! * `chat.ask {user, method, params?, timeout_ms?, policy?}` — calls a method on
//!   every session of a user and answers with one entry per session; with a
//!   `policy` (`"all"`, `"first"`, `{"quorum": n}`) it answers `{outcomes, met}`,
//!   and the sessions the policy no longer needs are sent `rpc.cancel`.

use std::borrow::Cow;
use std::time::Duration;

use jsonrpsee::RpcModule;
use jsonrpsee::types::{ErrorObject, ErrorObjectOwned};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
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
    tracing::warn!(error = %e, "demo method failed");
    ErrorObject::owned(codes::INTERNAL_ERROR, "Internal error", None::<()>)
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

#[derive(Deserialize)]
struct Ask {
    user: String,
    method: String,
    #[serde(default)]
    params: Option<Box<RawValue>>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    policy: Option<CallPolicy>,
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

/// Adds the demo methods: `echo`, `whoami` and `demo.callback` as direct
/// methods, the others in a jsonrpsee module (both kinds, as an application
/// would use them).
pub(crate) fn register(builder: GatewayBuilder) -> Result<GatewayBuilder, Error> {
    builder
        .method("echo", |req| req.params::<Value>())?
        .method("whoami", |req| {
            Ok(serde_json::json!({"session": req.session().map(|s| s.id().to_string()), "user": req.user()}))
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
        .module(module())
}

/// The demo methods that wait.
fn module() -> RpcModule<()> {
    let mut m = RpcModule::new(());
    m.register_async_method("demo.sleep", |params, _, ext| async move {
        let (ms,): (u64,) = params.parse().or_else(|_| {
            #[derive(Deserialize)]
            struct P {
                ms: u64,
            }
            params.parse::<P>().map(|p| (p.ms,))
        })?;
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
    m.register_async_method("chat.join", |params, _, ext| async move {
        #[derive(Deserialize)]
        struct P {
            room: String,
        }
        let p: P = params.parse()?;
        let c = caller(&ext);
        let Some(session) = c.session_id() else {
            return Err(ErrorObject::owned(
                codes::INVALID_REQUEST,
                "needs a WebSocket session",
                None::<()>,
            ));
        };
        let topic = format!("chat:{}", p.room);
        c.hub()
            .subscribe(Target::Session(session.to_string()), vec![topic.clone()])
            .await
            .map_err(internal)?;
        Ok(serde_json::json!({"topic": topic}))
    })
    .expect("fresh module");
    m.register_async_method("chat.send", |params, _, ext| async move {
        #[derive(Deserialize)]
        struct P {
            room: String,
            text: String,
        }
        let p: P = params.parse()?;
        let c = caller(&ext);
        let topic = format!("chat:{}", p.room);
        c.hub()
            .publish(&topic, &serde_json::json!({"from": c.user(), "text": p.text}))
            .await
            .map_err(internal)?;
        Ok::<_, ErrorObjectOwned>(true)
    })
    .expect("fresh module");
    m.register_async_method("chat.dm", |params, _, ext| async move {
        #[derive(Deserialize)]
        struct P {
            user: String,
            text: String,
        }
        let p: P = params.parse()?;
        let c = caller(&ext);
        c.hub()
            .notify(
                Target::User(p.user),
                "chat.dm",
                &serde_json::json!({"from": c.user(), "text": p.text}),
            )
            .await
            .map_err(internal)?;
        Ok::<_, ErrorObjectOwned>(true)
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
