//! Helpers for the cross-component tests: a real gateway on `127.0.0.1:0`
//! and raw WebSocket clients that send JSON text and read JSON values, and
//! the one HTTP client of the tests ([`http_get`], [`http_post`]).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use switchboard_server::{Config, Gateway};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use jsonrpsee::RpcModule;
pub use switchboard_server;

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Runs a test body with an overall deadline.
pub async fn within<F: Future>(limit: Duration, f: F) -> F::Output {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {limit:?}"),
    }
}

/// A gateway serving on an ephemeral loopback port.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The gateway (for its hub).
    pub gateway: Gateway,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Starts a gateway with `config` (its `listen` is ignored) and extra `modules`.
    pub async fn start_with(config: Config, modules: Vec<RpcModule<()>>) -> Self {
        let mut builder = Gateway::builder(config);
        for m in modules {
            builder = builder.module(m).expect("module registers");
        }
        Self::serve(builder.build().expect("gateway builds")).await
    }

    /// Serves an already built gateway.
    pub async fn serve(gateway: Gateway) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let g = gateway.clone();
        let task = tokio::spawn(async move {
            g.serve(listener, std::future::pending()).await.expect("serve");
        });
        Self { addr, gateway, task }
    }

    /// Starts a dev-mode gateway with default limits (demo methods on).
    pub async fn start() -> Self {
        Self::start_with(Config::default(), Vec::new()).await
    }

    /// `ws://addr/ws?user=NAME`.
    pub fn ws_url(&self, user: &str) -> String {
        format!("ws://{}/ws?user={user}", self.addr)
    }

    /// `http://addr/PATH`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Connects a raw client as `user` and reads its `rpc.welcome`.
    pub async fn connect(&self, user: &str) -> WsClient {
        let mut c = WsClient::connect(&self.ws_url(user)).await;
        let welcome = c.recv().await;
        assert_eq!(
            welcome["method"], "rpc.welcome",
            "first frame is the welcome: {welcome}"
        );
        c.session = welcome["params"]["session"].as_str().unwrap_or_default().to_owned();
        c
    }

    /// Stops the gateway (sessions are closed with 1001) and waits for `serve` to return.
    pub async fn stop(self) {
        self.gateway.shutdown();
        let _ = tokio::time::timeout(WAIT, self.task).await;
    }
}

/// A raw WebSocket client.
pub struct WsClient {
    /// The stream.
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The session id from the welcome (empty until read).
    pub session: String,
}

/// How a connection ended, as a client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The close code, if a close frame arrived.
    pub code: Option<u16>,
    /// The close reason.
    pub reason: String,
}

impl WsClient {
    /// Connects to `url` offering the `switchboard.v1` subprotocol.
    pub async fn connect(url: &str) -> Self {
        let mut request = url.into_client_request().expect("valid url");
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "switchboard.v1".parse().expect("header"));
        let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect in time")
            .expect("connect");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap_or_default()),
            Some("switchboard.v1")
        );
        Self {
            ws,
            session: String::new(),
        }
    }

    /// Connects with a prepared request (headers, subprotocols); returns the
    /// handshake error instead of panicking, to test refusals.
    pub async fn try_connect(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<
        (Self, tokio_tungstenite::tungstenite::handshake::client::Response),
        tokio_tungstenite::tungstenite::Error,
    > {
        let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect in time")?;
        Ok((
            Self {
                ws,
                session: String::new(),
            },
            response,
        ))
    }

    /// Reads the `rpc.welcome` and remembers the session id; returns the welcome's params.
    pub async fn welcome(&mut self) -> Value {
        let welcome = self.recv().await;
        assert_eq!(
            welcome["method"], "rpc.welcome",
            "first frame is the welcome: {welcome}"
        );
        self.session = welcome["params"]["session"].as_str().unwrap_or_default().to_owned();
        welcome["params"].clone()
    }

    /// Sends a text frame.
    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// Sends a JSON value as a text frame.
    pub async fn send_json(&mut self, value: &Value) {
        self.send(&value.to_string()).await;
    }

    /// Sends a raw WebSocket message.
    pub async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// The next text frame as JSON (pings and pongs skipped). Panics on close or timeout.
    pub async fn recv(&mut self) -> Value {
        let text = self.recv_text().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text}"))
    }

    /// The next text frame. Panics on close or timeout.
    pub async fn recv_text(&mut self) -> String {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("connection open")
                .expect("frame");
            match message {
                Message::Text(t) => return t.to_string(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Waits for the next text frame for at most `d`; `None` if none came.
    pub async fn try_recv(&mut self, d: Duration) -> Option<Value> {
        tokio::time::timeout(d, self.recv()).await.ok()
    }

    /// Sends a request and returns the response with the same id, keeping
    /// nothing else (use only where no other frames are expected).
    pub async fn call(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send_json(&serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let v = self.recv().await;
            if v.get("id") == Some(&Value::from(id)) && v.get("method").is_none() {
                return v;
            }
        }
    }

    /// Reads until the server closes; returns the close code and reason.
    /// Text frames before the close are returned through `before`.
    pub async fn closed(&mut self, before: &mut Vec<Value>) -> Closed {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next()).await.expect("close in time");
            match next {
                Some(Ok(Message::Text(t))) => before.push(serde_json::from_str(&t).unwrap_or(Value::Null)),
                Some(Ok(Message::Close(frame))) => {
                    // Completes the close handshake so the server need not wait for it.
                    let _ = self.ws.close(None).await;
                    return Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    return Closed {
                        code: None,
                        reason: String::new(),
                    };
                }
            }
        }
    }
}

/// Sends `rpc.ping` with id `"probe"` and requires the very next frame to be
/// its pong: proof that nothing else was sent before it.
pub async fn probe(c: &mut WsClient) {
    c.send(r#"{"jsonrpc":"2.0","id":"probe","method":"rpc.ping"}"#).await;
    assert_eq!(
        c.recv().await,
        result(serde_json::json!("probe"), serde_json::json!("pong")),
        "the next frame is the probe's pong"
    );
}

/// Hangs up `clients` first, so that the gateway need not wait for close
/// handshakes that unread test clients would never complete, then stops it.
pub async fn hang_up_and_stop(server: TestServer, clients: Vec<WsClient>) {
    drop(clients);
    server.stop().await;
}

/// The default configuration with these limits.
pub fn config_with(limits: switchboard_server::Limits) -> switchboard_server::Config {
    switchboard_server::Config {
        limits,
        ..switchboard_server::Config::default()
    }
}

/// `{"jsonrpc":"2.0","id":ID,"result":RESULT}` as a value.
pub fn result(id: Value, result: Value) -> Value {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// The error code of a response.
pub fn error_code(v: &Value) -> Option<i64> {
    v.get("error").and_then(|e| e.get("code")).and_then(Value::as_i64)
}

/// Polls `check` until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The `switchboard` binary built next to the test executables.
pub fn switchboard_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test knows where it runs from");
    // target/<profile>/deps/<test> → target/<profile>/switchboard
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let binary = profile_dir.join("switchboard");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (tests/run does)",
        binary.display()
    );
    binary
}

/// A gateway running as its own process (the real binary).
pub struct Node {
    /// Where it listens.
    pub addr: SocketAddr,
    child: std::process::Child,
}

impl Node {
    /// Starts the binary with `--config file` and `--listen listen`, and waits for it to listen.
    pub fn start(config: &std::path::Path, listen: &str) -> Self {
        Self::start_with_env(config, listen, &[])
    }

    /// Like [`start`](Self::start), with these environment variables set for the process.
    pub fn start_with_env(config: &std::path::Path, listen: &str, env: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(switchboard_binary())
            .arg("--config")
            .arg(config)
            .arg("--listen")
            .arg(listen)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start switchboard");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(rest) = line.strip_prefix("switchboard listening on http://") {
                    let addr = rest.split_whitespace().next().unwrap_or_default().to_owned();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        });
        let addr = rx.recv_timeout(WAIT).expect("the node prints where it listens");
        Self {
            addr: addr.parse().expect("address"),
            child,
        }
    }

    /// `ws://addr/ws?user=NAME`.
    pub fn ws_url(&self, user: &str) -> String {
        format!("ws://{}/ws?user={user}", self.addr)
    }

    /// `http://addr/PATH`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Connects a raw client as `user` and reads its welcome.
    pub async fn connect(&self, user: &str) -> WsClient {
        let mut c = WsClient::connect(&self.ws_url(user)).await;
        c.welcome().await;
        c
    }

    /// Calls the server API (`POST /api`, dev mode) and returns the JSON-RPC answer.
    pub async fn api(&self, method: &str, params: Value) -> Value {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        http_post(&self.http_url("/api"), &body.to_string(), &[]).await.json()
    }

    /// Sends a signal (`"USR1"`, `"TERM"`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Kills the process at once (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP response as a test reads it: the status, the headers, and the
/// whole body as text.
#[derive(Debug)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: http::HeaderMap,
    /// The body, which must be UTF-8.
    pub body: String,
}

impl HttpReply {
    /// The value of header `name` (any case), if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON: `null` for an empty body, and a panic naming the
    /// body for anything that is not JSON.
    pub fn json(&self) -> Value {
        if self.body.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// A client builder for the tests' HTTP requests: proxies from the
/// environment are ignored, because the gateway is always on loopback, and
/// every request must finish within [`WAIT`]. Tests that need more (a
/// certificate to trust) add it and send through [`http_send`].
pub fn http_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().no_proxy().timeout(WAIT)
}

/// Sends `request` and reads the whole response; panics if there is none in time.
pub async fn http_send(request: reqwest::RequestBuilder) -> HttpReply {
    let response = request.send().await.unwrap_or_else(|e| panic!("HTTP request: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap_or_else(|e| panic!("HTTP body: {e}"));
    HttpReply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).expect("UTF-8 body"),
    }
}

/// Builds a request on a fresh client, with `headers` added.
fn http_request(method: reqwest::Method, url: &str, headers: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let client = http_client_builder().build().expect("HTTP client");
    headers
        .iter()
        .fold(client.request(method, url), |r, (name, value)| r.header(*name, *value))
}

/// `GET url` with `headers`.
pub async fn http_get(url: &str, headers: &[(&str, &str)]) -> HttpReply {
    http_send(http_request(reqwest::Method::GET, url, headers)).await
}

/// `POST url` with `body` sent exactly as given, as `application/json`
/// unless `headers` name another content type.
pub async fn http_post(url: &str, body: &str, headers: &[(&str, &str)]) -> HttpReply {
    let mut request = http_request(reqwest::Method::POST, url, headers);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        request = request.header("content-type", "application/json");
    }
    http_send(request.body(body.to_owned())).await
}

/// [`http_get`] for code that is not async. It runs on a thread and runtime
/// of its own, because the caller may be inside a runtime (where blocking on
/// another would panic) or outside any.
pub fn http_get_blocking(url: &str) -> HttpReply {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(http_get(url, &[]))
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The lines of a streamed (`application/x-ndjson`) answer, read as they arrive.
pub struct NdjsonLines {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl NdjsonLines {
    /// Posts `body` to `url` and returns the response once its head arrived.
    pub async fn post(url: &str, body: &Value) -> reqwest::Response {
        let client = http_client_builder().build().expect("HTTP client");
        let request = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string());
        tokio::time::timeout(WAIT, request.send())
            .await
            .expect("the response's head in time")
            .expect("response")
    }

    /// Reads the lines of `response`.
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next line as JSON, or `None` at the end of the body. Panics on a
    /// partial last line or when nothing comes within [`WAIT`].
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).expect("each line is JSON"));
            }
            match tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("a line in time")
                .expect("body")
            {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => {
                    assert!(self.buffer.is_empty(), "a partial last line");
                    return None;
                }
            }
        }
    }
}

/// The Redis the suite shares: `SWITCHBOARD_TEST_REDIS_URL` (set by
/// `tests/run`), otherwise the local one. Tests that share it keep to keys
/// of their own ([`unique_prefix`]).
pub fn redis_url() -> String {
    std::env::var("SWITCHBOARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A Redis key prefix no other test, and no other run, uses.
pub fn unique_prefix(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{tag}{nanos}")
}

/// Writes `contents` as the config file of one test (`suite`, `name`) and
/// returns its path, for [`Node::start`].
pub fn config_file(suite: &str, name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-{suite}-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("config.toml");
    std::fs::write(&file, contents).expect("write config");
    file
}

/// A `redis-server` of one test's own, on a free port, for tests that
/// restart, flush or cut off Redis (the others share [`redis_url`]).
pub struct PrivateRedis {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
    persistent: bool,
}

impl PrivateRedis {
    /// Starts one on a port the system found free, with a directory of its
    /// own: `persistent` writes every command to an append-only file (fsync
    /// always), so a restart keeps the data; otherwise a restart loses it.
    pub fn on_a_free_port(persistent: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("sb-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        Self::start(port, &dir, persistent)
    }

    fn start(port: u16, dir: &std::path::Path, persistent: bool) -> Self {
        let appendonly: &[&str] = if persistent {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(appendonly)
            .arg("--dir")
            .arg(dir)
            .args(["--save", ""])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (tests/run installs it)");
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the private redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            dir: dir.to_owned(),
            persistent,
        }
    }

    /// Where it listens.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs one command with `redis-cli` and asserts that it succeeded.
    pub fn cli(&self, args: &[&str]) {
        let status = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("redis-cli comes with redis-server");
        assert!(status.success(), "redis-cli {args:?}");
    }

    /// Stops it with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// Stops it and starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        *self = Self::start(self.port, &self.dir.clone(), self.persistent);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
