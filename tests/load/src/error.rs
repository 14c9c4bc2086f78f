//! The load tool's one error type.

use tokio_tungstenite::tungstenite;

/// Why a measurement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A socket or process operation failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The WebSocket layer failed (handshake, protocol, connection reset).
    #[error("WebSocket: {0}")]
    WebSocket(#[from] tungstenite::Error),
    /// The compressing client's WebSocket layer failed (handshake, protocol, connection reset).
    #[error("WebSocket (compressing client): {0}")]
    Compressing(#[from] yawc::WebSocketError),
    /// The server closed a connection the scenario still needed.
    #[error("the server closed a connection during {0}")]
    Closed(&'static str),
    /// Something the scenario waited for did not come in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// An answer was wrong (checked by `--smoke` and the smoke test).
    #[error("wrong answer in {scenario}: {detail}")]
    Unexpected {
        /// The scenario that saw it.
        scenario: &'static str,
        /// What was expected and what came.
        detail: String,
    },
    /// A server process did not start or stopped early.
    #[error("{server} did not start: {detail}")]
    ServerStart {
        /// The server's name.
        server: String,
        /// Why, with the end of its log.
        detail: String,
    },
    /// A load task panicked.
    #[error("a load task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
