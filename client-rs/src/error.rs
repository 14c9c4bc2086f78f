//! [`Error`]: everything that can go wrong in this crate, in one enum.

use std::time::Duration;

use switchboard_protocol::ErrorObject;

/// The error a handler of a server→client call returns: a JSON-RPC error
/// object, sent to the server as it is.
///
/// Use a code outside `-32768 … -32000` for application errors, for example
/// `RpcError::with_message(1, "no such job")`.
pub type RpcError = ErrorObject;

/// A boxed error from a token source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an operation of the client failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered the call with an error object.
    #[error("the server answered with an error: {0}")]
    Rpc(ErrorObject),
    /// No answer arrived within the call's timeout. A `rpc.cancel` was sent.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection dropped before the answer arrived, or there is no
    /// connection right now. The client reconnects on its own; the call may
    /// be retried once it has.
    #[error("disconnected from the server")]
    Disconnected,
    /// The client is closed for good: [`Client::close`](crate::Client::close)
    /// was called, the server closed with a terminal code (4500–4999), or the
    /// reconnect policy gave up.
    #[error("the client is closed (code {code:?}: {reason})")]
    Closed {
        /// The close code that ended it, when there was one.
        code: Option<u16>,
        /// Why.
        reason: String,
    },
    /// The WebSocket connection could not be established.
    #[error("could not connect: {0}")]
    Connect(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// The URL is not a `ws://` or `wss://` URL the client can use.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// A header for the handshake (a token, or one set with
    /// [`ClientBuilder::header`](crate::ClientBuilder::header)) is not valid.
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// The token source failed to produce a token.
    #[error("the token source failed: {0}")]
    Token(#[source] BoxError),
    /// The params could not be serialised to JSON.
    #[error("params could not be serialised: {0}")]
    Params(#[source] serde_json::Error),
    /// A result or notification did not have the expected shape.
    #[error("unexpected shape: {0}")]
    Decode(#[source] serde_json::Error),
    /// The server answered something that is not a valid JSON-RPC response.
    #[error("invalid response: {0}")]
    InvalidResponse(&'static str),
    /// A stream's buffer was full and its oldest `missed` items were dropped.
    /// The stream goes on with the items that were kept.
    #[error("{missed} items were dropped because the stream was read too slowly")]
    Lagged {
        /// How many items were dropped.
        missed: u64,
    },
    /// A batch is larger than the server accepts (`max_batch` in `rpc.welcome`).
    #[error("a batch of {len} messages is larger than the server's limit of {max}")]
    BatchTooLarge {
        /// The batch's length.
        len: usize,
        /// The server's limit.
        max: usize,
    },
    /// A batch without any message cannot be sent.
    #[error("a batch must contain at least one message")]
    EmptyBatch,
}

impl Error {
    /// The JSON-RPC error object, when the server answered with one.
    pub fn rpc(&self) -> Option<&ErrorObject> {
        match self {
            Self::Rpc(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status of a refused WebSocket handshake (for example 401
    /// for a missing or invalid token, 503 for a full or draining server).
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Connect(e) => match &**e {
                tokio_tungstenite::tungstenite::Error::Http(response) => Some(response.status().as_u16()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether retrying after a reconnect may succeed (the connection was
    /// lost, or the call timed out).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Disconnected | Self::Timeout(_) | Self::Connect(_))
    }
}

impl From<ErrorObject> for Error {
    fn from(e: ErrorObject) -> Self {
        Self::Rpc(e)
    }
}
