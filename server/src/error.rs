//! The server's errors.

use switchboard_protocol::{ErrorObject, codes};

/// Errors from building, configuring or running a gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A socket operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A module tried to register a name reserved for the gateway (`rpc.*`).
    #[error("method name {0:?} is reserved for the gateway (names starting with \"rpc.\")")]
    ReservedMethod(String),
    /// Two modules registered the same method.
    #[error(transparent)]
    Register(#[from] jsonrpsee::core::RegisterMethodError),
}

/// Why a call from the server to a client produced no result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The client answered with a JSON-RPC error.
    #[error("the client answered with an error: {0}")]
    Rpc(ErrorObject),
    /// The client did not answer in time (it was sent `rpc.cancel`).
    #[error("the client did not answer in time")]
    Timeout,
    /// The session ended before it answered.
    #[error("the session is gone")]
    SessionGone,
    /// The session already has as many pending calls as allowed.
    #[error("too many pending calls on the session")]
    TooManyPending,
    /// The target was not reached because a limit was hit (for example the fan-in limit).
    #[error("not called: {0}")]
    NotCalled(&'static str),
}

impl CallError {
    /// The error as it appears on the wire (an entry of a multicast call, or an
    /// error answer of a method that called a client).
    pub fn to_error_object(&self) -> ErrorObject {
        match self {
            CallError::Rpc(e) => e.clone(),
            CallError::Timeout => ErrorObject::new(codes::TIMEOUT),
            CallError::SessionGone => ErrorObject::new(codes::SESSION_GONE),
            CallError::TooManyPending => ErrorObject::with_data(
                codes::LIMIT_EXCEEDED,
                serde_json::json!({"reason": "too many pending calls on the session"}),
            ),
            CallError::NotCalled(why) => {
                ErrorObject::with_data(codes::LIMIT_EXCEEDED, serde_json::json!({ "reason": why }))
            }
        }
    }
}
