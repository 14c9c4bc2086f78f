//! The Rust peers switchboard is measured against, frozen as BENCHMARKS.md
//! specifies them. Each has a thin binary (`peer-echo`, `peer-axum`,
//! `peer-jsonrpsee`) and can run in-process for the smoke test.

pub mod axum_min;
pub mod echo;
pub mod jsonrpsee_peer;

/// switchboard's default WebSocket read buffer (`limits.read_buffer_size`),
/// used by the Rust peers too so that they are compared like for like.
pub const READ_BUFFER_SIZE: usize = 2048;

/// switchboard's default WebSocket write buffer (`limits.write_buffer_size`).
pub const WRITE_BUFFER_SIZE: usize = 4096;

/// switchboard's default largest message (`limits.max_message_size`).
pub const MAX_MESSAGE_SIZE: usize = 1 << 20;

/// The address a peer binary listens on: `--listen ADDR` (default `127.0.0.1:0`).
pub fn listen_arg() -> std::net::SocketAddr {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--listen"
            && let Some(addr) = args.next().and_then(|a| a.parse().ok())
        {
            return addr;
        }
    }
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}
