//! A WebSocket echo on the gateway's own upgrade and framing code, for the
//! Autobahn test suite (`tests/autobahn/run` drives it).
//!
//! ```text
//! cargo run --release -p switchboard-server --example autobahn_echo -- [ADDR] [MAX_MESSAGE_SIZE]
//! ```
//!
//! It listens on `ADDR` (default `127.0.0.1:0`), prints
//! `listening on ws://<address>/` once it does, and runs until it is killed.
//! Messages are limited to `MAX_MESSAGE_SIZE` bytes (default: the gateway's
//! `limits.max_message_size`). permessage-deflate is accepted as the gateway
//! accepts it, and every text message is echoed deflated (a threshold of 0,
//! so that the compression cases exercise the deflating side on small
//! messages too).

use switchboard_server::{Limits, ws_verification};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let mut limits = Limits::default();
    if let Some(max) = args.next() {
        limits.max_message_size = max
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("MAX_MESSAGE_SIZE: {e}")))?;
    }
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    // The one line a driver waits for; written whole, then flushed.
    #[allow(clippy::print_stdout)]
    {
        println!("listening on ws://{}/", listener.local_addr()?);
    }
    axum::serve(listener, ws_verification::echo_router(&limits, Some(0))).await
}
