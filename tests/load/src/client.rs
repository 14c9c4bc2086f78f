//! Opening client sessions: source addresses, buffer sizes, handshakes.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::LoadError;
use crate::flavor::Flavor;

/// A client session.
pub type Ws = WebSocketStream<TcpStream>;

/// How long one connection attempt (TCP, WebSocket handshake, Socket.IO
/// connect) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens sessions to one server, spreading them over several loopback source
/// addresses (127.0.0.1, 127.0.0.2, …) so that more sessions can be open, and
/// more closed ones wait in TIME_WAIT, than one address's ~28k ports allow.
#[derive(Debug)]
pub struct Connector {
    addr: SocketAddr,
    flavor: Flavor,
    sources: Vec<Ipv4Addr>,
    next: AtomicUsize,
    config: WebSocketConfig,
}

impl Connector {
    /// A connector to `addr`, speaking `flavor`, from `sources` loopback addresses.
    pub fn new(addr: SocketAddr, flavor: Flavor, sources: u8) -> Self {
        let sources = (1..=sources.max(1)).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
        Self {
            addr,
            flavor,
            sources,
            next: AtomicUsize::new(0),
            // Small buffers: thousands of idle client sessions share one process.
            config: WebSocketConfig::default()
                .read_buffer_size(4096)
                .write_buffer_size(16 * 1024),
        }
    }

    /// The server's flavor.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Opens session number `n` and completes the flavor's handshake.
    pub async fn connect(&self, n: usize) -> Result<Ws, LoadError> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect_inner(n))
            .await
            .map_err(|_| LoadError::Timeout("a connection"))?
    }

    async fn connect_inner(&self, n: usize) -> Result<Ws, LoadError> {
        let source = self.sources[self.next.fetch_add(1, Ordering::Relaxed) % self.sources.len()];
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source.into(), 0))?;
        let stream = socket.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let url = format!("ws://{}{}", self.addr, self.flavor.path(n));
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(self.config)).await?;
        if self.flavor == Flavor::SocketIo {
            // Engine.IO open packet `0{...}`, then connect to the main namespace.
            expect_prefix(&mut ws, "0").await?;
            ws.send(Message::text("40")).await?;
            expect_prefix(&mut ws, "40").await?;
        }
        Ok(ws)
    }

    /// Opens `count` sessions, numbered from `first`, `concurrency` handshakes at a time.
    pub async fn connect_many(&self, first: usize, count: usize, concurrency: usize) -> Result<Vec<Ws>, LoadError> {
        futures_util::stream::iter(first..first + count)
            .map(|n| self.connect(n))
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await
    }
}

async fn expect_prefix(ws: &mut Ws, prefix: &'static str) -> Result<(), LoadError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().starts_with(prefix) => return Ok(()),
            Some(Ok(Message::Text(t))) => {
                return Err(LoadError::Unexpected {
                    scenario: "socket.io handshake",
                    detail: format!("expected a {prefix}… packet, got {}", t.as_str()),
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err(LoadError::Closed("the handshake")),
        }
    }
}
