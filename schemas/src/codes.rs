//! Error codes and WebSocket close codes, each with its meaning.
//!
//! JSON-RPC error codes come in three ranges:
//!
//! * the specification's own codes (`-32700`, `-32600` … `-32603`);
//! * the gateway's codes in `-32000 … -32099`, listed in [`GATEWAY_ERRORS`];
//! * everything outside `-32768 … -32000`, which belongs to applications.
//!
//! Close codes follow the same idea: clients act on *ranges*
//! ([`close_class`]), so new codes inside a range need no client change.

/// Invalid JSON was received.
pub const PARSE_ERROR: i32 = -32700;
/// The JSON sent is not a valid request object (or a batch was empty or too large).
pub const INVALID_REQUEST: i32 = -32600;
/// The method does not exist or is not available.
pub const METHOD_NOT_FOUND: i32 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i32 = -32602;
/// Internal error (a handler failed or panicked; details are logged, not sent).
pub const INTERNAL_ERROR: i32 = -32603;

/// The caller is not authenticated.
pub const UNAUTHORIZED: i32 = -32000;
/// The caller is authenticated but not allowed to do this.
pub const FORBIDDEN: i32 = -32001;
/// The caller sent more than its rate allows.
pub const RATE_LIMITED: i32 = -32002;
/// Too many requests are in flight on this session; retry later.
pub const OVERLOADED: i32 = -32003;
/// The peer did not answer within the timeout.
pub const TIMEOUT: i32 = -32004;
/// The target session is gone (disconnected before it answered).
pub const SESSION_GONE: i32 = -32005;
/// An upstream backend failed.
pub const UPSTREAM_FAILED: i32 = -32006;
/// The broker that connects the nodes is unavailable.
pub const BROKER_UNAVAILABLE: i32 = -32007;
/// The session's token has expired.
pub const TOKEN_EXPIRED: i32 = -32008;
/// History could not fill the gap since the given position.
pub const RECOVERY_INCOMPLETE: i32 = -32009;
/// A configured limit was reached (subscriptions, pending calls, message size …).
pub const LIMIT_EXCEEDED: i32 = -32010;
/// The call was cancelled by its caller.
pub const CANCELLED: i32 = -32011;
/// No session matched the target.
pub const NO_TARGET: i32 = -32012;

/// Every gateway error code with its message, in code order.
pub const GATEWAY_ERRORS: &[(i32, &str)] = &[
    (UNAUTHORIZED, "Unauthorized"),
    (FORBIDDEN, "Forbidden"),
    (RATE_LIMITED, "Rate limited"),
    (OVERLOADED, "Overloaded"),
    (TIMEOUT, "Timeout"),
    (SESSION_GONE, "Session gone"),
    (UPSTREAM_FAILED, "Upstream failed"),
    (BROKER_UNAVAILABLE, "Broker unavailable"),
    (TOKEN_EXPIRED, "Token expired"),
    (RECOVERY_INCOMPLETE, "Recovery incomplete"),
    (LIMIT_EXCEEDED, "Limit exceeded"),
    (CANCELLED, "Cancelled"),
    (NO_TARGET, "No target"),
];

/// The standard message for a code of the specification or the gateway.
pub fn message_for(code: i32) -> &'static str {
    match code {
        PARSE_ERROR => "Parse error",
        INVALID_REQUEST => "Invalid request",
        METHOD_NOT_FOUND => "Method not found",
        INVALID_PARAMS => "Invalid params",
        INTERNAL_ERROR => "Internal error",
        _ => GATEWAY_ERRORS
            .iter()
            .find(|(c, _)| *c == code)
            .map_or("Server error", |(_, m)| m),
    }
}

/// WebSocket close codes used by the gateway.
pub mod close {
    /// Normal closure (the client asked, or the session ended cleanly).
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const SHUTDOWN: u16 = 1001;
    /// The client broke the WebSocket protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame was not valid UTF-8.
    pub const INVALID_UTF8: u16 = 1007;
    /// A message exceeded the configured maximum size.
    pub const TOO_BIG: u16 = 1009;
    /// An unexpected server error.
    pub const INTERNAL: u16 = 1011;
    /// The node is draining: reconnect now (with jitter), preferably elsewhere.
    pub const DRAINING: u16 = 1012;
    /// The server is overloaded (for example at its session limit): retry later.
    pub const OVERLOADED: u16 = 1013;

    /// The session's outbound queue overflowed: the client read too slowly.
    pub const SLOW_CONSUMER: u16 = 4000;
    /// The client did not answer pings in time.
    pub const PING_TIMEOUT: u16 = 4001;
    /// The session's token expired.
    pub const TOKEN_EXPIRED: u16 = 4002;
    /// The server asked the client to reconnect.
    pub const RECONNECT: u16 = 4003;
    /// The client kept sending past its rate limit.
    pub const RATE_LIMITED: u16 = 4004;

    /// The credentials were missing or invalid: do not retry with the same ones.
    pub const UNAUTHORIZED: u16 = 4500;
    /// The user is not allowed to connect.
    pub const FORBIDDEN: u16 = 4501;
    /// The session was disconnected on purpose by the server or a backend.
    pub const KICKED: u16 = 4502;

    /// Every close code the gateway sends, with its reason text.
    pub const ALL: &[(u16, &str)] = &[
        (NORMAL, "normal"),
        (SHUTDOWN, "server shutting down"),
        (PROTOCOL_ERROR, "protocol error"),
        (INVALID_UTF8, "invalid UTF-8 in text frame"),
        (TOO_BIG, "message too big"),
        (INTERNAL, "internal error"),
        (DRAINING, "node draining, reconnect"),
        (OVERLOADED, "server overloaded, retry later"),
        (SLOW_CONSUMER, "slow consumer"),
        (PING_TIMEOUT, "ping timeout"),
        (TOKEN_EXPIRED, "token expired"),
        (RECONNECT, "reconnect requested"),
        (RATE_LIMITED, "rate limit exceeded"),
        (UNAUTHORIZED, "unauthorized"),
        (FORBIDDEN, "forbidden"),
        (KICKED, "kicked"),
    ];

    /// The default reason text for a close code.
    pub fn reason(code: u16) -> &'static str {
        ALL.iter().find(|(c, _)| *c == code).map_or("", |(_, r)| r)
    }
}

/// How a client should react to a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseClass {
    /// Reconnect with the usual backoff.
    Reconnect,
    /// Reconnect at once (with a little jitter): the node is draining.
    ReconnectNow,
    /// Do not reconnect: the same attempt would fail again.
    Terminal,
}

/// Classifies a close code by range: 4500–4999 are terminal, 1012 means
/// "reconnect now", and everything else is reconnectable.
pub fn close_class(code: u16) -> CloseClass {
    match code {
        close::DRAINING => CloseClass::ReconnectNow,
        4500..=4999 => CloseClass::Terminal,
        _ => CloseClass::Reconnect,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_codes_stay_in_their_range_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for (code, _) in GATEWAY_ERRORS {
            assert!((-32099..=-32000).contains(code));
            assert!(seen.insert(*code));
        }
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        for (code, reason) in close::ALL {
            assert!(reason.len() <= 123, "{code}");
        }
        assert_eq!(close_class(close::UNAUTHORIZED), CloseClass::Terminal);
        assert_eq!(close_class(close::SLOW_CONSUMER), CloseClass::Reconnect);
        assert_eq!(close_class(close::DRAINING), CloseClass::ReconnectNow);
    }
}
