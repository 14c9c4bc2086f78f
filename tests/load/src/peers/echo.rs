//! The floor: a raw tokio-tungstenite server that sends every text or binary
//! frame back as it came. It does no JSON work at all. Like switchboard it
//! takes every frame already received before flushing once.

use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Serves the echo on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors and the like: wait, keep serving.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        tokio::spawn(connection(stream));
    }
}

async fn connection(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(super::READ_BUFFER_SIZE)
        .write_buffer_size(super::WRITE_BUFFER_SIZE)
        .max_message_size(Some(super::MAX_MESSAGE_SIZE));
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    while let Some(first) = ws.next().await {
        let mut message = Some(first);
        while let Some(m) = message.take() {
            match m {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                    if ws.feed(m).await.is_err() {
                        return;
                    }
                }
                Ok(Message::Close(_)) | Err(_) => return,
                Ok(_) => {}
            }
            message = match ws.next().now_or_never() {
                Some(Some(m)) => Some(m),
                Some(None) => return,
                None => None,
            };
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}
