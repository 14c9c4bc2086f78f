//! Helpers for the hostile-client and slow-consumer suites: the real
//! `switchboard` binary with a configuration of the test's own, its process
//! read from `/proc` (resident memory, open file descriptors), raw TCP and
//! HTTP exchanges, and raw WebSocket frames. Ordinary HTTP requests go
//! through the shared client of `switchboard_tests`; the raw helpers here
//! are for bytes that client would never send.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::{Node, WAIT, WsClient, http_get, result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The real binary, started with a configuration written for one test.
pub(crate) struct Binary {
    /// The running process (killed on drop).
    pub(crate) node: Node,
    /// Its process id, for `/proc`.
    pub(crate) pid: u32,
    dir: PathBuf,
}

impl Binary {
    /// Writes `toml` to a fresh directory and starts the binary on it,
    /// listening on an ephemeral loopback port.
    pub(crate) fn start(name: &str, toml: &str) -> Self {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchboard-{name}-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let config = dir.join("config.toml");
        std::fs::write(&config, toml).expect("write the configuration");
        let node = Node::start(&config, "127.0.0.1:0");
        let pid = pid_running(&config).expect("the binary runs with this configuration");
        Self { node, pid, dir }
    }

    /// Where it listens.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.node.addr
    }

    /// Connects a client as `user` and reads its welcome.
    pub(crate) async fn connect(&self, user: &str) -> WsClient {
        self.node.connect(user).await
    }

    /// Resident memory of the process, in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        rss_kib(self.pid)
    }

    /// Open file descriptors of the process.
    pub(crate) fn open_fds(&self) -> usize {
        open_fds(self.pid)
    }

    /// The server API's `stats` (dev mode: no key needed).
    pub(crate) async fn stats(&self) -> Value {
        let r = self.node.api("stats", json!({})).await;
        r.get("result").cloned().unwrap_or_else(|| panic!("stats: {r}"))
    }

    /// The value of a Prometheus metric from `GET /metrics` (0 when absent).
    pub(crate) async fn metric(&self, name: &str) -> f64 {
        let metrics = http_get(&self.node.http_url("/metrics"), &[]).await;
        assert_eq!(metrics.status, 200, "GET /metrics: {}", metrics.body);
        metrics
            .body
            .lines()
            .filter_map(|l| l.strip_prefix(name))
            .filter_map(|rest| rest.rsplit(' ').next())
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .sum()
    }

    /// Sessions on the node, by the server API.
    pub(crate) async fn sessions(&self) -> u64 {
        self.stats().await["sessions"].as_u64().expect("stats has sessions")
    }

    /// Polls the server API until the node has `n` sessions; returns whether it did within `limit`.
    pub(crate) async fn sessions_become(&self, n: u64, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.sessions().await == n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until the process has at most `n` open descriptors; returns the last count seen.
    pub(crate) async fn fds_fall_to(&self, n: usize, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let now = self.open_fds();
            if now <= n || tokio::time::Instant::now() >= deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server still serves: a fresh session answers `rpc.ping`, and so
    /// does every bystander that was connected all along.
    pub(crate) async fn still_serves(&self, bystanders: &mut [&mut WsClient]) {
        let mut fresh = self.connect("fresh").await;
        ping(&mut fresh, "fresh").await;
        for (n, b) in bystanders.iter_mut().enumerate() {
            ping(b, &format!("bystander-{n}")).await;
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.node.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `rpc.ping` and requires its pong to be the very next frame.
pub(crate) async fn ping(c: &mut WsClient, id: &str) {
    c.send_json(&json!({"jsonrpc": "2.0", "id": id, "method": "rpc.ping"}))
        .await;
    assert_eq!(
        c.recv().await,
        result(json!(id), json!("pong")),
        "the next frame is the pong of {id}"
    );
}

/// The process whose command line names `config`.
fn pid_running(config: &Path) -> Option<u32> {
    let needle = config.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.contains(&needle.as_bytes()).then_some(pid)
    })
}

/// `VmRSS` of `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or_else(|| panic!("no VmRSS for process {pid}"))
}

/// Entries of `/proc/<pid>/fd`.
pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .count()
}

/// What a raw TCP peer saw of the server.
#[derive(Debug)]
pub(crate) struct Seen {
    /// Bytes read before the connection ended.
    pub(crate) bytes: Vec<u8>,
    /// Whether the server ended the connection (EOF or reset) within the wait.
    pub(crate) closed: bool,
}

impl Seen {
    /// The HTTP status in the first line, if the server answered.
    pub(crate) fn status(&self) -> Option<u16> {
        let text = String::from_utf8_lossy(&self.bytes);
        text.strip_prefix("HTTP/1.")
            .and_then(|rest| rest.get(2..5))
            .and_then(|s| s.parse().ok())
    }
}

/// Reads from `stream` until the server closes it or `limit` passes. It is
/// raw because the connections it watches are left unfinished on purpose.
pub(crate) async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Seen {
    read_until(stream, limit, |_| false).await
}

/// Reads from `stream` until `enough` holds for what was read, the server
/// closes it, or `limit` passes.
async fn read_until(stream: &mut TcpStream, limit: Duration, enough: impl Fn(&[u8]) -> bool) -> Seen {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    while !enough(&bytes) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Seen { bytes, closed: true },
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Err(_) => return Seen { bytes, closed: false },
        }
    }
    Seen { bytes, closed: false }
}

/// Sends `request` as raw bytes on a fresh connection and reads until the
/// answer's head is complete or the server closes the connection. It is
/// raw because the requests it carries are malformed on purpose, which no
/// HTTP client would send.
pub(crate) async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Seen {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading everything.
    let _ = stream.write_all(request).await;
    read_until(&mut stream, WAIT, |bytes| bytes.windows(4).any(|w| w == b"\r\n\r\n")).await
}

/// A WebSocket upgrade request for `path`, with `extra` header lines.
pub(crate) fn upgrade_request(addr: SocketAddr, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Upgrades a raw TCP connection by hand and returns it right after the
/// `101`, with nothing of the WebSocket read yet. It is raw because the
/// tests then write frames no WebSocket client would, or none at all.
pub(crate) async fn raw_upgrade(addr: SocketAddr, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(upgrade_request(addr, path, "").as_bytes())
        .await
        .expect("write the upgrade");
    // Read the response head byte by byte, so that no frame is consumed.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("the upgrade answer in time")
            .expect("read");
        assert_eq!(
            n,
            1,
            "the server closed during the upgrade: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "not upgraded: {head}");
    stream
}

/// Wraps an upgraded raw connection as a client WebSocket, to read frames.
pub(crate) async fn as_client(stream: TcpStream) -> WsClient {
    let ws = WebSocketStream::from_raw_socket(MaybeTlsStream::Plain(stream), Role::Client, None).await;
    WsClient {
        ws,
        session: String::new(),
    }
}

/// One WebSocket frame as raw bytes: `first` is the FIN/RSV/opcode byte; a
/// client must mask (`mask` Some), a server must not.
pub(crate) fn raw_frame(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![first];
    let masked = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(masked | n as u8),
        n if n <= 0xffff => {
            out.push(masked | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(masked | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A `[limits]` table for a test's configuration: the defaults, except
/// that one address may open as many sessions as a test needs.
pub(crate) fn limits(extra: &str) -> String {
    format!("[limits]\nupgrades_per_ip_per_minute = 1000000\n{extra}\n")
}
