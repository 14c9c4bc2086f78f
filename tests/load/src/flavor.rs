//! How the load tool talks to each server: the URL, the frames it sends, and
//! how it reads what comes back.
//!
//! Every server under test answers the same four things in its own dialect:
//! a call of `echo`, a subscription to a topic, a publication on it, and a
//! call that makes the server call the client back. Reading answers is a
//! text search on the compact JSON the servers write (no full parse), so that
//! the load tool, which has one core like the server, stays cheap; `--smoke`
//! checks answers fully instead.

use std::fmt;

/// A server's wire dialect, one per server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flavor {
    /// switchboard itself: `echo`, `rpc.subscribe`, `rpc.publish`, `demo.callback`.
    Switchboard,
    /// The minimal axum 0.8 JSON-RPC peer ([`crate::peers::axum_min`]).
    Axum,
    /// jsonrpsee's own WebSocket server ([`crate::peers::jsonrpsee_peer`]).
    Jsonrpsee,
    /// The raw tokio-tungstenite echo ([`crate::peers::echo`]): every frame comes back as sent.
    Echo,
    /// rpc-websockets on Node (`peers/node/rpc-websockets.js`).
    RpcWebsockets,
    /// Socket.IO on Node (`peers/node/socketio.js`), spoken as Engine.IO v4 over WebSocket.
    SocketIo,
    /// The `ws` package on Node with permessage-deflate, compressing for each
    /// connection on its own (`peers/node/ws-deflate.js`); JSON-RPC like the axum peer.
    WsDeflate,
}

/// What the load tool asks a server to do, one kind per scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// Client→server calls of `echo`, several in flight per session.
    Calls,
    /// Client→server calls of `echo`, one in flight per session (request, answer, request…).
    CallsSerial,
    /// One publication delivered to many subscribed sessions.
    Fanout,
    /// Fan-out of a 1 KiB JSON fixture to subscribers that negotiate
    /// permessage-deflate, and to subscribers that do not: bytes on the wire,
    /// CPU per delivery and memory per idle session (switchboard, and the
    /// `ws` peer that compresses per connection).
    FanoutDeflate,
    /// Fan-out across two nodes joined by Redis: the publisher on one node,
    /// the subscribers on the other (switchboard only).
    FanoutRedis,
    /// Pushes to users through the server API (`POST /api`, `notify`; switchboard only).
    ApiPush,
    /// A client call whose handler calls the client back before it answers.
    Reverse,
    /// A backend's multicast call to every session of one topic, all
    /// answering at once (switchboard's `POST /api` `call`, Socket.IO's
    /// `emitWithAck` to a room).
    Multicall,
    /// Idle subscribed sessions, fresh and after a burst of traffic.
    Memory,
    /// What topic presence costs: subscribing to a topic with presence
    /// against a plain one (one node, two on Redis), the heartbeat and a
    /// whole rewrite of presence on Redis, and `presence_stats` on a large
    /// topic (switchboard only; it starts its own nodes and Redis).
    Presence,
    /// What one subscribed session that never reads costs the others: the
    /// readers' delivery latency at a fixed publication rate, with every
    /// subscriber reading and with one of them stuck (switchboard only).
    SlowConsumer,
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: [Scenario; 11] = [
        Scenario::Calls,
        Scenario::CallsSerial,
        Scenario::Fanout,
        Scenario::FanoutDeflate,
        Scenario::FanoutRedis,
        Scenario::ApiPush,
        Scenario::Reverse,
        Scenario::Multicall,
        Scenario::Memory,
        Scenario::Presence,
        Scenario::SlowConsumer,
    ];

    /// The scenario's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Calls => "calls",
            Scenario::CallsSerial => "calls-k1",
            Scenario::Fanout => "fanout",
            Scenario::FanoutDeflate => "fanout-deflate",
            Scenario::FanoutRedis => "fanout-redis",
            Scenario::ApiPush => "api-push",
            Scenario::Reverse => "reverse",
            Scenario::Multicall => "multicall",
            Scenario::Memory => "memory",
            Scenario::Presence => "presence",
            Scenario::SlowConsumer => "slow-consumer",
        }
    }
}

/// One incoming text frame, as far as the load tool cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// The answer to our request `id`: its raw result, or its raw error.
    Response {
        /// Our request id.
        id: u64,
        /// The raw `result` (for Socket.IO: the acknowledgement's argument array), or the raw `error`.
        outcome: Result<&'a str, &'a str>,
    },
    /// A publication on a subscribed topic, with its raw data.
    Publication {
        /// The published data as sent by the publisher (re-encoded by the server).
        data: &'a str,
    },
    /// A call from the server, to be answered with [`Flavor::answer`].
    ServerCall {
        /// The server's request id, raw.
        id: &'a str,
        /// The raw params (for Socket.IO: the event array).
        params: &'a str,
    },
    /// An Engine.IO ping, to be answered with [`Flavor::pong`].
    Ping,
    /// Anything else: welcome frames, open and connect packets.
    Other,
}

const ID: &str = "\"id\":";
const METHOD: &str = "\"method\":";
const PARAMS: &str = "\"params\":";
const RESULT: &str = "\"result\":";
const ERROR: &str = "\"error\":";
const DATA: &str = "\"data\":";
const NOTIFICATION: &str = "\"notification\":";

impl Flavor {
    /// Every flavor, in report order.
    pub const ALL: [Flavor; 7] = [
        Flavor::Echo,
        Flavor::Axum,
        Flavor::Jsonrpsee,
        Flavor::Switchboard,
        Flavor::RpcWebsockets,
        Flavor::SocketIo,
        Flavor::WsDeflate,
    ];

    /// The server's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Switchboard => "switchboard",
            Flavor::Axum => "axum-minimal",
            Flavor::Jsonrpsee => "jsonrpsee",
            Flavor::Echo => "tungstenite-echo",
            Flavor::RpcWebsockets => "rpc-websockets",
            Flavor::SocketIo => "socket.io",
            Flavor::WsDeflate => "ws-deflate",
        }
    }

    /// The flavor named `name` (as printed by [`Flavor::name`]).
    pub fn from_name(name: &str) -> Option<Flavor> {
        Flavor::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the server can take part in `scenario`.
    pub fn supports(self, scenario: Scenario) -> bool {
        match scenario {
            Scenario::Calls | Scenario::CallsSerial | Scenario::Memory => self != Flavor::WsDeflate,
            Scenario::Fanout => !matches!(self, Flavor::Echo | Flavor::WsDeflate),
            Scenario::FanoutDeflate => matches!(self, Flavor::Switchboard | Flavor::WsDeflate),
            Scenario::FanoutRedis | Scenario::ApiPush | Scenario::Presence | Scenario::SlowConsumer => {
                self == Flavor::Switchboard
            }
            Scenario::Reverse => matches!(self, Flavor::Switchboard | Flavor::Axum | Flavor::SocketIo),
            Scenario::Multicall => matches!(self, Flavor::Switchboard | Flavor::SocketIo),
        }
    }

    /// Whether sessions of this server subscribe to a topic in the memory scenario.
    pub fn subscribes(self) -> bool {
        self.supports(Scenario::Fanout)
    }

    /// The request path of connection number `n`. switchboard's sessions each
    /// get their own user, as real sessions would.
    pub fn path(self, n: usize) -> String {
        match self {
            Flavor::Switchboard => format!("/ws?user=u{n}"),
            Flavor::Axum => "/ws".to_owned(),
            Flavor::Jsonrpsee | Flavor::Echo | Flavor::RpcWebsockets | Flavor::WsDeflate => "/".to_owned(),
            Flavor::SocketIo => "/socket.io/?EIO=4&transport=websocket".to_owned(),
        }
    }

    /// A call of `echo` with `params` (a JSON array).
    pub fn call_frame(self, id: u64, params: &str) -> String {
        match self {
            Flavor::SocketIo => format!(r#"42{id}["echo",{params}]"#),
            _ => format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"echo","params":{params}}}"#),
        }
    }

    /// A call whose handler calls the client's `bench.ask` with `params` and
    /// answers with the client's answer. Only for flavors that support
    /// [`Scenario::Reverse`].
    pub fn callback_frame(self, id: u64, params: &str) -> String {
        match self {
            Flavor::Switchboard => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"demo.callback","params":{{"method":"bench.ask","params":{params}}}}}"#
            ),
            Flavor::SocketIo => format!(r#"42{id}["callback",{params}]"#),
            _ => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"callback","params":{{"method":"bench.ask","params":{params}}}}}"#
            ),
        }
    }

    /// A subscription to `topic` (plain letters only: it is not escaped).
    pub fn subscribe_frame(self, id: u64, topic: &str) -> String {
        match self {
            Flavor::Switchboard => {
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"rpc.subscribe","params":{{"topics":[{{"topic":"{topic}"}}]}}}}"#
                )
            }
            Flavor::RpcWebsockets => format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"rpc.on","params":["{topic}"]}}"#),
            Flavor::SocketIo => format!(r#"42{id}["subscribe","{topic}"]"#),
            _ => format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"subscribe","params":["{topic}"]}}"#),
        }
    }

    /// A publication of `data` (any JSON value) on `topic`.
    pub fn publish_frame(self, id: u64, topic: &str, data: &str) -> String {
        match self {
            Flavor::Switchboard => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"rpc.publish","params":{{"topic":"{topic}","data":{data}}}}}"#
            ),
            Flavor::SocketIo => format!(r#"42{id}["publish","{topic}",{data}]"#),
            _ => format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"publish","params":["{topic}",{data}]}}"#),
        }
    }

    /// The answer to a server call: its params, sent back as the result.
    pub fn answer(self, id: &str, params: &str) -> String {
        match self {
            // `params` is the event array `["bench.ask", data]`: acknowledge with `[data]`.
            Flavor::SocketIo => {
                let data = params
                    .strip_prefix('[')
                    .and_then(|p| p.strip_suffix(']'))
                    .and_then(|p| p.split_once(',').map(|(_, data)| data))
                    .unwrap_or("null");
                format!("43{id}[{data}]")
            }
            _ => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{params}}}"#),
        }
    }

    /// The answer to an Engine.IO ping.
    pub fn pong(self) -> &'static str {
        "3"
    }

    /// What the result of a call (or callback) with `params` must be.
    pub fn expected_result(self, params: &str) -> String {
        match self {
            Flavor::SocketIo => format!("[{params}]"),
            _ => params.to_owned(),
        }
    }

    /// Classifies an incoming text frame.
    pub fn classify(self, text: &str) -> Incoming<'_> {
        match self {
            Flavor::SocketIo => classify_socketio(text),
            Flavor::Echo => match member(text, ID).and_then(|id| id.parse().ok()) {
                Some(id) => Incoming::Response {
                    id,
                    outcome: Ok(member(text, PARAMS).unwrap_or("null")),
                },
                None => Incoming::Other,
            },
            _ => self.classify_jsonrpc(text),
        }
    }

    fn classify_jsonrpc(self, text: &str) -> Incoming<'_> {
        if let Some(method) = member(text, METHOD) {
            let params = member(text, PARAMS).unwrap_or("null");
            // A server call's `id` comes before its params; an `id` inside a
            // notification's params (published data has them) is not one.
            let head = &text[..text.find(PARAMS).unwrap_or(text.len())];
            if let Some(id) = member(head, ID) {
                return Incoming::ServerCall { id, params };
            }
            let data = match (self, method) {
                (Flavor::Switchboard, "\"rpc.message\"") | (Flavor::Axum | Flavor::WsDeflate, "\"message\"") => {
                    member(params, DATA)
                }
                (Flavor::Jsonrpsee, "\"message\"") => member(params, RESULT),
                _ => None,
            };
            return data.map_or(Incoming::Other, |data| Incoming::Publication { data });
        }
        if self == Flavor::RpcWebsockets && member(text, NOTIFICATION).is_some() {
            return Incoming::Publication {
                data: member(text, PARAMS).unwrap_or("null"),
            };
        }
        let Some(id) = member(text, ID).and_then(|id| id.parse().ok()) else {
            return Incoming::Other;
        };
        let outcome = match member(text, RESULT) {
            Some(result) => Ok(result),
            None => Err(member(text, ERROR).unwrap_or("null")),
        };
        Incoming::Response { id, outcome }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Engine.IO v4 / Socket.IO v5 text packets: `2` ping, `42[...]` event,
/// `42<id>[...]` event with an acknowledgement, `43<id>[...]` acknowledgement.
fn classify_socketio(text: &str) -> Incoming<'_> {
    if text == "2" {
        return Incoming::Ping;
    }
    if let Some(rest) = text.strip_prefix("43") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        return match rest[..digits].parse() {
            Ok(id) => Incoming::Response {
                id,
                outcome: Ok(&rest[digits..]),
            },
            Err(_) => Incoming::Other,
        };
    }
    if let Some(rest) = text.strip_prefix("42") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            return Incoming::ServerCall {
                id: &rest[..digits],
                params: &rest[digits..],
            };
        }
        if let Some(data) = rest.strip_prefix(r#"["message","#).and_then(|r| r.strip_suffix(']')) {
            return Incoming::Publication { data };
        }
    }
    Incoming::Other
}

/// The raw value of the first member named by `key` (written as `"name":`)
/// in compact JSON. A text search: good for frames whose shape is known.
pub fn member<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let end = value_end(text.as_bytes(), start);
    Some(&text[start..end])
}

/// Where the JSON value starting at `start` ends.
fn value_end(b: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = start;
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => {
                    in_string = false;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    if depth == 0 {
                        return i;
                    }
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                b',' if depth == 0 => return i,
                _ => {}
            }
        }
        i += 1;
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_found_with_their_extent() {
        let text = r#"{"jsonrpc":"2.0","id":12,"result":{"a":[1,"x\"]"],"b":2}}"#;
        assert_eq!(member(text, ID), Some("12"));
        assert_eq!(member(text, RESULT), Some(r#"{"a":[1,"x\"]"],"b":2}"#));
        assert_eq!(member(r#"{"result":"s","id":3}"#, RESULT), Some(r#""s""#));
        assert_eq!(member(r#"{"result":"s","id":3}"#, ID), Some("3"));
    }

    #[test]
    fn jsonrpc_frames_are_classified() {
        let f = Flavor::Switchboard;
        assert_eq!(
            f.classify(r#"{"jsonrpc":"2.0","id":4,"result":["x"]}"#),
            Incoming::Response {
                id: 4,
                outcome: Ok(r#"["x"]"#)
            }
        );
        assert_eq!(
            f.classify(r#"{"jsonrpc":"2.0","id":9,"method":"bench.ask","params":["x"]}"#),
            Incoming::ServerCall {
                id: "9",
                params: r#"["x"]"#
            }
        );
        assert_eq!(
            f.classify(r#"{"jsonrpc":"2.0","method":"rpc.message","params":{"topic":"t","data":{"seq":1}}}"#),
            Incoming::Publication { data: r#"{"seq":1}"# }
        );
        assert_eq!(
            f.classify(r#"{"jsonrpc":"2.0","method":"rpc.message","params":{"topic":"t","data":{"id":"m1"}}}"#),
            Incoming::Publication { data: r#"{"id":"m1"}"# }
        );
        assert_eq!(
            f.classify(r#"{"jsonrpc":"2.0","method":"rpc.welcome","params":{"session":"s"}}"#),
            Incoming::Other
        );
        assert_eq!(
            Flavor::Jsonrpsee
                .classify(r#"{"jsonrpc":"2.0","method":"message","params":{"subscription":77,"result":{"seq":2}}}"#),
            Incoming::Publication { data: r#"{"seq":2}"# }
        );
        assert_eq!(
            Flavor::RpcWebsockets.classify(r#"{"notification":"bench","params":{"seq":3}}"#),
            Incoming::Publication { data: r#"{"seq":3}"# }
        );
    }

    #[test]
    fn socketio_packets_are_classified_and_answered() {
        let f = Flavor::SocketIo;
        assert_eq!(f.classify("2"), Incoming::Ping);
        assert_eq!(
            f.classify(r#"4312[["x"]]"#),
            Incoming::Response {
                id: 12,
                outcome: Ok(r#"[["x"]]"#)
            }
        );
        assert_eq!(
            f.classify(r#"425["ask",["x"]]"#),
            Incoming::ServerCall {
                id: "5",
                params: r#"["ask",["x"]]"#
            }
        );
        assert_eq!(f.answer("5", r#"["ask",["x"]]"#), r#"435[["x"]]"#);
        assert_eq!(
            f.classify(r#"42["message",{"seq":1}]"#),
            Incoming::Publication { data: r#"{"seq":1}"# }
        );
    }
}
