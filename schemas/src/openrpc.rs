//! The OpenRPC document of the client-facing protocol, generated from the
//! Rust types of this crate.
//!
//! The committed copy lives at `schemas/openrpc.json`; a test regenerates it
//! and fails when the two differ (run with `UPDATE_SCHEMAS=1` to rewrite it).

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Value, json};

use crate::codes::{self, close};
use crate::contract::Described;
use crate::methods::{self, *};

/// The committed document, as served by `rpc.discover`.
pub const COMMITTED: &str = include_str!("../openrpc.json");

/// The committed server API document, as served by `rpc.discover` on `/api`.
pub const API_COMMITTED: &str = include_str!("../api-openrpc.json");

struct Builder {
    generator: SchemaGenerator,
    methods: Vec<Value>,
    notifications: Vec<Value>,
}

impl Builder {
    fn schema<T: JsonSchema>(&mut self) -> Value {
        crate::contract::schema_for::<T>(&mut self.generator)
    }

    /// By-name params from the properties of `T`'s object schema.
    fn params<T: JsonSchema>(&mut self) -> Value {
        let reference = self.schema::<T>();
        Value::Array(crate::contract::descriptors(&mut self.generator, reference, &[]).1)
    }

    fn method(&mut self, name: &str, summary: &str, params: Value, result: Value, errors: &[i32]) {
        let errors: Vec<Value> = errors
            .iter()
            .map(|c| json!({"code": c, "message": codes::message_for(*c)}))
            .collect();
        let mut m = json!({
            "name": name,
            "summary": summary,
            "paramStructure": "by-name",
            "params": params,
            "result": {"name": "result", "schema": result},
        });
        if !errors.is_empty() {
            m["errors"] = Value::Array(errors);
        }
        self.methods.push(m);
    }

    fn notification<T: JsonSchema>(&mut self, name: &str, summary: &str) {
        let params = self.params::<T>();
        self.notifications
            .push(json!({"name": name, "summary": summary, "params": params}));
    }
}

/// The generator of every document: JSON Schema draft 7 (the dialect
/// OpenRPC specifies), definitions under `#/components/schemas/`.
pub(crate) fn generator() -> SchemaGenerator {
    SchemaSettings::draft07()
        .with(|s| {
            s.definitions_path = "#/components/schemas/".into();
        })
        .into_generator()
}

fn builder() -> Builder {
    Builder {
        generator: generator(),
        methods: Vec::new(),
        notifications: Vec::new(),
    }
}

/// Builds the server API document (`POST /api`) from the types.
pub fn api_document() -> Value {
    use crate::api::{self, method};
    let mut b = builder();
    let target_errors = [codes::INVALID_PARAMS, codes::FORBIDDEN, codes::BROKER_UNAVAILABLE];
    let params = b.params::<api::NotifyParams>();
    b.method(
        method::NOTIFY,
        "Push a notification to every session of a target connected now. Not recoverable: a client that is away never gets it and is never told. For a push a user's clients must not miss, publish on the personal topic user:{id} instead.",
        params,
        json!({"type": "object"}),
        &target_errors,
    );
    let params = b.params::<api::CallParams>();
    let entries = b.schema::<Vec<api::CallEntry>>();
    let outcomes = b.schema::<api::CallOutcomes>();
    // A streamed call answers NDJSON lines of this shape instead (`"stream": true`).
    let _ = b.schema::<api::StreamLine>();
    b.method(
        method::CALL,
        "Call a method on every session of a target; one outcome per session reached: an array, or {outcomes, met} with a policy. With \"stream\": true the answer is application/x-ndjson, one StreamLine per outcome or progress report as it arrives, the last {\"done\": CallSummary}.",
        params,
        json!({"oneOf": [entries, outcomes]}),
        &target_errors,
    );
    let params = b.params::<PublishParams>();
    let result = b.schema::<PublishResult>();
    b.method(
        method::PUBLISH,
        "Publish on a topic. On a recoverable topic (streams) the publication is kept with an offset, and subscribers that were away receive it when they resume with since (or are told recovered: false with the gap); on the personal topic user:{id} this is the recoverable push to a user.",
        params,
        result,
        &target_errors,
    );
    let params = b.params::<api::PresenceParams>();
    let entries = b.schema::<Vec<api::PresenceEntry>>();
    let page = b.schema::<api::PresencePage>();
    b.method(
        method::PRESENCE,
        "The sessions of a user, of a topic whose presence is kept, or of everybody, sorted by (user, session): the array while it holds at most limits.max_presence_entries (past that -32010 with data.limit), or with limit/after one page {entries, next}.",
        params,
        json!({"oneOf": [entries, page]}),
        &[codes::INVALID_PARAMS, codes::FORBIDDEN, codes::BROKER_UNAVAILABLE, codes::LIMIT_EXCEEDED],
    );
    let params = b.params::<api::PresenceStatsParams>();
    let result = b.schema::<api::PresenceStats>();
    b.method(
        method::PRESENCE_STATS,
        "How many sessions and distinct users a topic or a user has, or the cluster.",
        params,
        result,
        &target_errors,
    );
    let params = b.params::<api::DisconnectParams>();
    b.method(
        method::DISCONNECT,
        "Close every session of a target.",
        params,
        json!({"type": "object"}),
        &target_errors,
    );
    let params = b.params::<api::TargetTopicsParams>();
    b.method(
        method::SUBSCRIBE,
        "Subscribe every session of a target to topics.",
        params.clone(),
        json!({"type": "object"}),
        &target_errors,
    );
    b.method(
        method::UNSUBSCRIBE,
        "Unsubscribe every session of a target from topics.",
        params,
        json!({"type": "object"}),
        &target_errors,
    );
    let params = b.params::<HistoryParams>();
    let result = b.schema::<HistoryResult>();
    b.method(
        method::HISTORY,
        "The publications a recoverable topic keeps, oldest first: after `since` (as in rpc.subscribe; a position outside the kept window answers recovered: false with its gap and no publications), or the most recent ones. Topics without history are refused with -32602.",
        params,
        result,
        &[codes::INVALID_PARAMS, codes::FORBIDDEN, codes::BROKER_UNAVAILABLE],
    );
    let result = b.schema::<api::Stats>();
    b.method(
        method::STATS,
        "Counters and recent connects and disconnects of this node, and the cluster's totals.",
        json!([]),
        result,
        &[codes::FORBIDDEN],
    );
    let _ = b.schema::<api::Scope>();
    let schemas = b.generator.take_definitions(true);
    json!({
        "openrpc": "1.3.2",
        "info": {
            "title": "switchboard server API",
            "version": PROTOCOL_VERSION,
            "description": "POST /api with Authorization: Bearer <api key>. Each method needs the key's scope (components/schemas/Scope)."
        },
        "methods": b.methods,
        "components": {"schemas": schemas},
    })
}

/// Builds the document from the types.
pub fn document() -> Value {
    document_with(&[], &[])
}

/// The document `rpc.discover` answers on a gateway: the protocol's methods,
/// then the application's, described (`described`, in order, with their
/// schemas among the components) or listed by name only (`untyped`: any
/// params, any result).
pub fn document_with(described: &[Described], untyped: &[&str]) -> Value {
    let mut b = builder();

    b.method(
        methods::PING,
        "Liveness check; answers \"pong\".",
        json!([]),
        json!({"const": "pong"}),
        &[],
    );
    b.method(
        methods::DISCOVER,
        "This document, plus the application's methods.",
        json!([]),
        json!({"type": "object"}),
        &[],
    );
    let params = b.params::<SubscribeParams>();
    let result = b.schema::<SubscribeResult>();
    b.method(
        methods::SUBSCRIBE,
        "Subscribe to topics; with `since`, replay what was missed on a recoverable topic, or say why not (recovered: false with the gap). Only publications are recoverable: notifications (the server API's notify) are kept nowhere; a user's recoverable pushes arrive on the personal topic user:{id}.",
        params,
        result,
        &[codes::INVALID_PARAMS, codes::FORBIDDEN, codes::LIMIT_EXCEEDED],
    );
    let params = b.params::<TopicPresenceParams>();
    let entries = b.schema::<Vec<crate::api::PresenceEntry>>();
    let page = b.schema::<crate::api::PresencePage>();
    b.method(
        methods::PRESENCE,
        "The subscribers of a topic whose presence is kept (presence_topics), where authorization.presence allows it: the array, or with limit/after one page {entries, next}.",
        params,
        json!({"oneOf": [entries, page]}),
        &[codes::INVALID_PARAMS, codes::FORBIDDEN, codes::BROKER_UNAVAILABLE, codes::LIMIT_EXCEEDED],
    );
    let params = b.params::<UnsubscribeParams>();
    b.method(
        methods::UNSUBSCRIBE,
        "Leave topics.",
        params,
        json!({"type": "object"}),
        &[codes::INVALID_PARAMS],
    );
    let params = b.params::<PublishParams>();
    let result = b.schema::<PublishResult>();
    b.method(
        methods::PUBLISH,
        "Publish on a topic (when the gateway allows client publishing).",
        params,
        result,
        &[codes::INVALID_PARAMS, codes::FORBIDDEN, codes::BROKER_UNAVAILABLE],
    );
    let params = b.params::<HistoryParams>();
    let result = b.schema::<HistoryResult>();
    b.method(
        methods::HISTORY,
        "The publications a recoverable topic keeps, oldest first: after `since` (a position outside the kept window answers recovered: false with its gap and no publications, as rpc.subscribe would), or the most recent ones. Allowed by authorization.history (default: the topics the session may subscribe to); topics without history are refused with -32602.",
        params,
        result,
        &[codes::INVALID_PARAMS, codes::FORBIDDEN, codes::BROKER_UNAVAILABLE],
    );
    let params = b.params::<Cancel>();
    b.method(
        methods::CANCEL,
        "The client gave up on one of its requests: if it is still running, its work stops and it is answered -32011.",
        params,
        json!({"type": "boolean"}),
        &[],
    );
    let params = b.params::<Progress>();
    b.method(
        methods::PROGRESS,
        "Progress on one of the server's calls, sent before its answer: forwarded to the call's caller if it asked for progress, dropped otherwise. Usually a notification.",
        params,
        json!({"type": "boolean"}),
        &[],
    );
    let params = b.params::<RefreshParams>();
    let result = b.schema::<Expiry>();
    b.method(
        methods::REFRESH,
        "Replace the session's token (same sub required).",
        params,
        result,
        &[codes::UNAUTHORIZED, codes::FORBIDDEN, codes::TOKEN_EXPIRED],
    );

    b.notification::<Welcome>(methods::WELCOME, "Sent first on every session.");
    b.notification::<Publication>(methods::MESSAGE, "A publication on a subscribed topic.");
    b.notification::<Cancel>(methods::CANCEL, "The server gave up on one of its requests.");
    b.notification::<Progress>(
        methods::PROGRESS,
        "Progress of one of the client's requests, sent before its answer and never after it.",
    );
    b.notification::<Disconnect>(methods::DISCONNECT, "Sent just before a deliberate close.");
    b.notification::<Expiry>(
        methods::EXPIRING,
        "The token expires soon: send rpc.refresh before it does.",
    );

    let error_codes: Vec<Value> = [
        codes::PARSE_ERROR,
        codes::INVALID_REQUEST,
        codes::METHOD_NOT_FOUND,
        codes::INVALID_PARAMS,
        codes::INTERNAL_ERROR,
    ]
    .iter()
    .map(|c| json!({"code": c, "message": codes::message_for(*c)}))
    .chain(
        codes::GATEWAY_ERRORS
            .iter()
            .map(|(c, m)| json!({"code": c, "message": m})),
    )
    .collect();
    let close_codes: Vec<Value> = close::ALL
        .iter()
        .map(|(c, r)| json!({"code": c, "reason": r, "class": format!("{:?}", codes::close_class(*c))}))
        .collect();
    let _ = b.schema::<crate::Target>();
    for d in described {
        let entry = d.entry(&mut b.generator);
        b.methods.push(entry);
    }
    for name in untyped {
        b.methods.push(json!({
            "name": name,
            "description": "An application method.",
            "params": [],
            "result": {"name": "result", "schema": {}}
        }));
    }
    let schemas = b.generator.take_definitions(true);

    json!({
        "openrpc": "1.3.2",
        "info": {
            "title": "switchboard client protocol",
            "version": PROTOCOL_VERSION,
            "description": "Methods a client may call on the gateway. Server-to-client notifications are listed under x-notifications."
        },
        "methods": b.methods,
        "components": {"schemas": schemas},
        "x-notifications": b.notifications,
        "x-error-codes": error_codes,
        "x-close-codes": close_codes,
    })
}

/// The document as committed: pretty JSON with a final newline.
pub fn render() -> String {
    pretty(&document())
}

/// The server API document as committed.
pub fn render_api() -> String {
    pretty(&api_document())
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    fn check(file: &str, fresh: &str, committed: &str) {
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(format!("{}/{file}", env!("CARGO_MANIFEST_DIR")), fresh).unwrap();
            return;
        }
        assert!(
            fresh == committed,
            "schemas/{file} is stale: run `UPDATE_SCHEMAS=1 cargo test -p switchboard-protocol` and commit it"
        );
    }

    #[test]
    fn committed_document_matches_the_types() {
        check("openrpc.json", &super::render(), super::COMMITTED);
    }

    #[test]
    fn committed_api_document_matches_the_types() {
        check("api-openrpc.json", &super::render_api(), super::API_COMMITTED);
    }
}
