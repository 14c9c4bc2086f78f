//! `soak`: mixed traffic from thousands of sessions against the real
//! `switchboard` binary for minutes, sampling the server's resident memory
//! and open file descriptors from `/proc`, and a report that says whether
//! either grows. Run by `tests/soak/run` (not by `tests/run`), which writes
//! `SOAK.md`.
//!
//! Every session connects, subscribes to two of twenty recoverable rooms and
//! then, about every four seconds, does one of: an echo call (sometimes with
//! 16 KiB), a batch, a notification, a publication to a room (which fans out
//! to about two hundred sessions), a call the server makes back to it
//! (`demo.callback`), or a subscribe/unsubscribe of a third room; now and then
//! it hangs up and connects again. A backend pushes through the server API
//! every second (`notify` to a user, `publish` to a room, a multicast `call`
//! to a user's sessions). Every answer is checked; unexpected closes and
//! failed calls are counted and reported.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Mixed traffic against the switchboard binary for minutes; samples RSS and
/// open fds and writes a report with a trend analysis.
#[derive(Parser)]
#[command(about)]
struct Cli {
    /// The `switchboard` binary (default: next to this one).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Sessions kept open.
    #[arg(long, default_value_t = 2_000)]
    sessions: usize,
    /// Minutes of traffic: by default 26, more than twice the history's
    /// time to live (10 minutes), so that the verdict's window (the second
    /// half) starts once every kept publication has begun to expire.
    #[arg(long, default_value_t = 26.0)]
    minutes: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 5)]
    sample_every: u64,
    /// Seconds at the start of the traffic before the trend's window, at
    /// least (the window is the second half of the traffic, or what follows
    /// the warm-up when that is later).
    #[arg(long, default_value_t = 120)]
    warmup: u64,
    /// Mean seconds between two operations of one session.
    #[arg(long, default_value_t = 4.0)]
    op_every: f64,
    /// One operation in this many hangs up and connects again.
    #[arg(long, default_value_t = 200)]
    hangup_one_in: usize,
    /// Where to write the Markdown report (default: print it only).
    #[arg(long)]
    report: Option<PathBuf>,
}

/// Rooms every session may subscribe to; each session takes two.
const ROOMS: usize = 20;
/// Sessions per user: pushes to a user reach several sessions.
const SESSIONS_PER_USER: usize = 5;
/// How long a session waits for any answer before counting it as lost.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Counters shared by every session and the backend.
#[derive(Default)]
struct Counters {
    connects: AtomicU64,
    connect_failures: AtomicU64,
    requests: AtomicU64,
    answers_ok: AtomicU64,
    answers_error: AtomicU64,
    answers_lost: AtomicU64,
    notifications_sent: AtomicU64,
    deliveries: AtomicU64,
    pushes: AtomicU64,
    server_calls: AtomicU64,
    hangups: AtomicU64,
    backend_ok: AtomicU64,
    backend_errors: AtomicU64,
    unexpected_closes: Mutex<BTreeMap<String, u64>>,
    error_codes: Mutex<BTreeMap<i64, u64>>,
}

impl Counters {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One reading of the server.
#[derive(Clone, Debug)]
struct Sample {
    /// Seconds since the traffic started (negative: before).
    t: f64,
    phase: &'static str,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    sessions: u64,
    messages_in: u64,
    messages_out: u64,
    requests: u64,
    deliveries: u64,
}

/// A small xorshift generator: the driver needs cheap, seeded randomness only.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Ctx {
    addr: SocketAddr,
    counters: Counters,
    stop: AtomicBool,
    op_every: f64,
    hangup_one_in: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("soak: a growth trend or an error was found (see the report)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The server process, killed when dropped.
struct Server {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const CONFIG: &str = r#"# The soak's configuration: dev mode, limits at their defaults except
# that one address may open every session.
client_publish = true

[limits]
upgrades_per_ip_per_minute = 1000000

[[streams]]
pattern = "user:*"

[[streams]]
pattern = "room:*"
history_size = 100
"#;

fn start_server(bin: &Path) -> Result<Server, String> {
    let dir = std::env::temp_dir().join(format!("switchboard-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let config = dir.join("config.toml");
    std::fs::write(&config, CONFIG).map_err(|e| format!("{}: {e}", config.display()))?;
    let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
    let banner = dir.join("banner.log");
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(log)
        .stderr(std::fs::File::create(&banner).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&banner).unwrap_or_default();
        // Only whole lines: the banner may be caught half written.
        let whole = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        if let Some(addr) = whole
            .lines()
            .find_map(|l| l.split("switchboard listening on http://").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
        {
            let addr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
            return Ok(Server {
                pid: child.id(),
                child,
                addr,
                dir,
            });
        }
        if Instant::now() > deadline || child.try_wait().map_err(|e| e.to_string())?.is_some() {
            let _ = child.kill();
            return Err(format!("the server did not start: {text}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// POSTs a JSON-RPC request to the server API and returns the answer.
async fn api(addr: SocketAddr, method: &str, params: Value) -> Result<Value, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let request = format!(
            "POST /api HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&response);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        serde_json::from_str::<Value>(body.trim()).map_err(|e| format!("{e}: {body}"))
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| "the server API did not answer in 30 s".to_owned())?
}

async fn sample(server: &Server, ctx: &Ctx, t: f64, phase: &'static str) -> Sample {
    let stats = api(server.addr, "stats", json!({}))
        .await
        .ok()
        .and_then(|v| v.get("result").cloned())
        .unwrap_or(Value::Null);
    let number = |v: &Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    };
    Sample {
        t,
        phase,
        rss_kib: proc_status(server.pid, "VmRSS:"),
        fds: open_fds(server.pid),
        threads: proc_status(server.pid, "Threads:"),
        sessions: number(&stats["sessions"]),
        messages_in: number(&stats["messages_in"]),
        messages_out: number(&stats["messages_out"]),
        requests: Counters::get(&ctx.counters.requests),
        deliveries: Counters::get(&ctx.counters.deliveries),
    }
}

async fn run(cli: Cli) -> Result<bool, String> {
    let bin = match cli.bin.clone() {
        Some(b) => b,
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("switchboard"),
    };
    let server = start_server(&bin)?;
    eprintln!(
        "soak: switchboard (pid {}) on {}; {} sessions, {} minutes",
        server.pid, server.addr, cli.sessions, cli.minutes
    );
    let ctx = Arc::new(Ctx {
        addr: server.addr,
        counters: Counters::default(),
        stop: AtomicBool::new(false),
        op_every: cli.op_every,
        hangup_one_in: cli.hangup_one_in.max(1),
    });
    let mut samples = vec![sample(&server, &ctx, -2.0, "idle").await];

    // Connect every session, a hundred at a time.
    let mut sessions = Vec::with_capacity(cli.sessions);
    for start in (0..cli.sessions).step_by(100) {
        let connected = Arc::new(AtomicU64::new(0));
        for i in start..(start + 100).min(cli.sessions) {
            let ctx = ctx.clone();
            let connected = connected.clone();
            sessions.push(tokio::spawn(session(ctx, i, connected)));
        }
        let wanted = ((start + 100).min(cli.sessions) - start) as u64;
        let deadline = Instant::now() + Duration::from_secs(30);
        while connected.load(Ordering::Relaxed) < wanted && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    samples.push(sample(&server, &ctx, -1.0, "connected").await);
    let backend = tokio::spawn(backend(ctx.clone(), cli.sessions));

    // Traffic, sampled.
    let started = Instant::now();
    let duration = Duration::from_secs_f64(cli.minutes * 60.0);
    let every = Duration::from_secs(cli.sample_every.max(1));
    let mut next = started + every;
    while started.elapsed() < duration {
        tokio::time::sleep_until(next.into()).await;
        next += every;
        let s = sample(&server, &ctx, started.elapsed().as_secs_f64(), "traffic").await;
        eprintln!(
            "soak: t={:>5.0}s rss={} KiB fds={} threads={} sessions={} requests={} deliveries={}",
            s.t, s.rss_kib, s.fds, s.threads, s.sessions, s.requests, s.deliveries
        );
        samples.push(s);
    }
    let traffic_seconds = started.elapsed().as_secs_f64();

    // Stop: every session hangs up; the server should let go of everything.
    ctx.stop.store(true, Ordering::Relaxed);
    let _ = backend.await;
    for s in sessions {
        let _ = s.await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = sample(&server, &ctx, started.elapsed().as_secs_f64(), "closed").await;
        if s.sessions == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    samples.push(sample(&server, &ctx, started.elapsed().as_secs_f64(), "closed").await);

    let warnings = std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
    let report = report(&cli, &ctx.counters, &samples, traffic_seconds, &warnings);
    eprintln!("{}", report.text);
    if let Some(path) = &cli.report {
        std::fs::write(path, &report.text).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("soak: wrote {}", path.display());
    } else {
        let _ = std::io::stdout().write_all(report.text.as_bytes());
    }
    Ok(report.passed)
}

/// One session: connect, subscribe, traffic until told to stop; hang up and
/// connect again now and then.
async fn session(ctx: Arc<Ctx>, index: usize, connected: Arc<AtomicU64>) {
    let mut rng = Rng::new(index as u64 + 1);
    let user = format!("u{}", index / SESSIONS_PER_USER);
    let rooms = [rng.below(ROOMS), rng.below(ROOMS)];
    let mut first = true;
    while !ctx.stop.load(Ordering::Relaxed) {
        let url = format!("ws://{}/ws?user={user}", ctx.addr);
        let ws = match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => ws,
            Err(_) => {
                Counters::add(&ctx.counters.connect_failures);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        Counters::add(&ctx.counters.connects);
        if first {
            connected.fetch_add(1, Ordering::Relaxed);
            first = false;
        }
        match converse(&ctx, ws, &mut rng, rooms).await {
            End::Stop | End::HungUp => {}
            End::Closed(why) => {
                *ctx.counters.unexpected_closes.lock().entry(why).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

enum End {
    Stop,
    HungUp,
    Closed(String),
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// What a session is waiting for, by request id.
enum Expect {
    /// A result equal to this.
    Equal(Value),
    /// Any result.
    Any,
    /// A batch answer with this many entries.
    Batch(usize),
}

async fn converse(ctx: &Ctx, ws: Ws, rng: &mut Rng, rooms: [usize; 2]) -> End {
    let (mut sink, mut stream) = ws.split();
    let mut pending: HashMap<u64, (Instant, Expect)> = HashMap::new();
    let mut next_id = 1u64;
    let mut third_room: Option<usize> = None;
    let subscribe = json!({"jsonrpc": "2.0", "id": 0, "method": "rpc.subscribe",
        "params": {"topics": [{"topic": format!("room:{}", rooms[0])}, {"topic": format!("room:{}", rooms[1])}]}});
    if sink.send(Message::text(subscribe.to_string())).await.is_err() {
        return End::Closed("send failed".into());
    }
    pending.insert(0, (Instant::now(), Expect::Any));
    Counters::add(&ctx.counters.requests);
    // A 16 KiB echo first: tungstenite keeps a buffer's capacity after a large
    // frame, so every session reaches its working size at once, in the
    // warm-up, instead of one large echo at a time over the whole run.
    let large = json!(["x".repeat(16 * 1024)]);
    let first = json!({"jsonrpc": "2.0", "id": u64::MAX, "method": "echo", "params": large});
    if sink.send(Message::text(first.to_string())).await.is_err() {
        return End::Closed("send failed".into());
    }
    pending.insert(u64::MAX, (Instant::now(), Expect::Equal(large)));
    Counters::add(&ctx.counters.requests);
    let mut next_op = tokio::time::Instant::now() + Duration::from_secs_f64(rng.unit() * ctx.op_every * 2.0);
    loop {
        tokio::select! {
            frame = stream.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(c))) => {
                        return End::Closed(c.map_or("close without a code".into(), |c| format!("close {}", u16::from(c.code))));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return End::Closed(format!("error: {e}")),
                    None => return End::Closed("connection ended".into()),
                };
                let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                    return End::Closed("a frame that is not JSON".into());
                };
                if let Some(reply) = handle_frame(ctx, &v, &mut pending)
                    && sink.send(Message::text(reply)).await.is_err()
                {
                    return End::Closed("send failed".into());
                }
            }
            () = tokio::time::sleep_until(next_op) => {
                next_op += Duration::from_secs_f64(ctx.op_every * (0.5 + rng.unit()));
                if ctx.stop.load(Ordering::Relaxed) {
                    let _ = sink.send(Message::Close(None)).await;
                    return End::Stop;
                }
                let now = Instant::now();
                pending.retain(|_, (sent, _)| {
                    let lost = now.duration_since(*sent) > ANSWER_TIMEOUT;
                    if lost {
                        Counters::add(&ctx.counters.answers_lost);
                    }
                    !lost
                });
                // Now and then: hang up and connect again.
                if rng.below(ctx.hangup_one_in) == 0 {
                    Counters::add(&ctx.counters.hangups);
                    let _ = sink.send(Message::Close(None)).await;
                    return End::HungUp;
                }
                let id = next_id;
                next_id += 1;
                let (frame, expect) = operation(rng, id, rooms, &mut third_room);
                if let Some(expect) = expect {
                    Counters::add(&ctx.counters.requests);
                    pending.insert(id, (now, expect));
                } else {
                    Counters::add(&ctx.counters.notifications_sent);
                }
                if sink.send(Message::text(frame)).await.is_err() {
                    return End::Closed("send failed".into());
                }
            }
        }
    }
}

/// Picks the next operation: the frame to send and what its answer must be.
fn operation(rng: &mut Rng, id: u64, rooms: [usize; 2], third_room: &mut Option<usize>) -> (String, Option<Expect>) {
    let request = |method: &str, params: Value| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let roll = rng.below(100);
    let (frame, expect) = match roll {
        0..=39 => {
            let params = json!([id, "soak"]);
            (request("echo", params.clone()), Some(Expect::Equal(params)))
        }
        40..=41 => {
            let params = json!(["x".repeat(16 * 1024)]);
            (request("echo", params.clone()), Some(Expect::Equal(params)))
        }
        42..=56 => (
            json!([
                {"jsonrpc": "2.0", "id": id, "method": "rpc.ping"},
                {"jsonrpc": "2.0", "method": "echo", "params": ["not answered"]},
                {"jsonrpc": "2.0", "id": id, "method": "echo", "params": {"dup": id}},
            ]),
            Some(Expect::Batch(2)),
        ),
        57..=66 => (json!({"jsonrpc": "2.0", "method": "echo", "params": [id]}), None),
        67..=76 => (
            request(
                "rpc.publish",
                json!({"topic": format!("room:{}", rooms[rng.below(2)]), "data": {"from": id}}),
            ),
            Some(Expect::Any),
        ),
        77..=89 => (
            request(
                "demo.callback",
                json!({"method": "ui.confirm", "params": [id], "timeout_ms": 10_000}),
            ),
            Some(Expect::Equal(json!({"confirmed": id}))),
        ),
        _ => match third_room.take() {
            Some(room) => (
                request("rpc.unsubscribe", json!({"topics": [format!("room:{room}")]})),
                Some(Expect::Any),
            ),
            None => {
                let room = rng.below(ROOMS);
                *third_room = Some(room);
                (
                    request("rpc.subscribe", json!({"topics": [{"topic": format!("room:{room}")}]})),
                    Some(Expect::Any),
                )
            }
        },
    };
    (frame.to_string(), expect)
}

/// Handles one frame from the server; returns the answer to send, if any.
fn handle_frame(ctx: &Ctx, v: &Value, pending: &mut HashMap<u64, (Instant, Expect)>) -> Option<String> {
    let c = &ctx.counters;
    if let Some(answers) = v.as_array() {
        // A batch answer: its requests shared one id.
        let id = answers.first().and_then(|a| a["id"].as_u64())?;
        match pending.remove(&id) {
            Some((_, Expect::Batch(n))) if answers.len() == n && answers.iter().all(|a| a.get("result").is_some()) => {
                Counters::add(&c.answers_ok);
            }
            _ => Counters::add(&c.answers_error),
        }
        return None;
    }
    match v.get("method").and_then(Value::as_str) {
        Some("rpc.message") => {
            Counters::add(&c.deliveries);
            None
        }
        Some(method) if v.get("id").is_some() => {
            // The server calls us: demo.callback's ui.confirm, or the backend's call.
            Counters::add(&c.server_calls);
            let answer = if method == "ui.confirm" {
                json!({"confirmed": v["params"][0]})
            } else {
                json!(true)
            };
            Some(json!({"jsonrpc": "2.0", "id": v["id"], "result": answer}).to_string())
        }
        Some(_) => {
            // rpc.welcome, rpc.cancel, the backend's notifications.
            Counters::add(&c.pushes);
            None
        }
        None => {
            let id = v["id"].as_u64()?;
            let (_, expect) = pending.remove(&id)?;
            let ok = match (&expect, v.get("result")) {
                (Expect::Equal(want), Some(got)) => want == got,
                (Expect::Any, Some(_)) => true,
                _ => false,
            };
            if ok {
                Counters::add(&c.answers_ok);
            } else {
                Counters::add(&c.answers_error);
                if let Some(code) = v["error"]["code"].as_i64() {
                    *c.error_codes.lock().entry(code).or_default() += 1;
                }
            }
            None
        }
    }
}

/// A backend using the server API: a push to a user, a publication and a
/// multicast call every second.
async fn backend(ctx: Arc<Ctx>, sessions: usize) {
    let users = sessions.div_ceil(SESSIONS_PER_USER).max(1);
    let mut rng = Rng::new(0xBAC0);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !ctx.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let user = format!("u{}", rng.below(users));
        let calls = [
            (
                "notify",
                json!({"target": {"user": user}, "method": "backend.news", "params": {"n": rng.next() % 1000}}),
            ),
            (
                "publish",
                json!({"topic": format!("room:{}", rng.below(ROOMS)), "data": {"from": "backend"}}),
            ),
            (
                "call",
                json!({"target": {"user": user}, "method": "backend.ask", "params": [], "timeout_ms": 5000}),
            ),
            ("presence", json!({"user": user})),
        ];
        for (method, params) in calls {
            match api(ctx.addr, method, params).await {
                Ok(v) if v.get("result").is_some() => Counters::add(&ctx.counters.backend_ok),
                _ => Counters::add(&ctx.counters.backend_errors),
            }
        }
    }
}

struct Report {
    text: String,
    passed: bool,
}

/// Least-squares slope of `y` over `x`, per unit of `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let num: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let den: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if den == 0.0 { 0.0 } else { num / den }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// One measure's trend over the steady window.
struct Trend {
    mean: f64,
    /// Growth over the window by the fitted line.
    fitted_growth: f64,
    first_third: f64,
    last_third: f64,
    min: f64,
    max: f64,
}

fn trend(window: &[&Sample], value: impl Fn(&Sample) -> f64) -> Trend {
    let points: Vec<(f64, f64)> = window.iter().map(|s| (s.t, value(s))).collect();
    let span = points.last().map_or(0.0, |p| p.0) - points.first().map_or(0.0, |p| p.0);
    let third = (points.len() / 3).max(1);
    Trend {
        mean: mean(points.iter().map(|p| p.1)),
        fitted_growth: slope(&points) * span,
        first_third: mean(points.iter().take(third).map(|p| p.1)),
        last_third: mean(points.iter().rev().take(third).map(|p| p.1)),
        min: points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
        max: points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max),
    }
}

fn report(cli: &Cli, c: &Counters, samples: &[Sample], traffic_seconds: f64, server_log: &str) -> Report {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let traffic: Vec<&Sample> = samples.iter().filter(|s| s.phase == "traffic").collect();
    // The verdict is read from the second half: growth that is still going on
    // once buffers, tables and history have reached their working size.
    let from = (traffic_seconds / 2.0).max(cli.warmup as f64);
    let window: Vec<&Sample> = traffic.iter().copied().filter(|s| s.t >= from).collect();
    let rss = trend(&window, |s| s.rss_kib as f64);
    let fds = trend(&window, |s| s.fds as f64);
    let sessions = trend(&window, |s| s.sessions as f64);
    // The bounds a healthy run stays within; a leak of a few bytes per
    // operation or one descriptor per reconnect crosses them.
    let rss_bound = 1024.0;
    let fd_bound = (cli.sessions as f64 * 0.01).max(10.0);
    let rss_ok = rss.fitted_growth <= rss_bound;
    let fds_ok = fds.fitted_growth < fd_bound && fds.last_third - fds.first_third < fd_bound;
    let idle = samples.first();
    let closed = samples.last().filter(|s| s.phase == "closed");
    let released = match (idle, closed) {
        (Some(i), Some(cl)) => cl.sessions == 0 && cl.fds <= i.fds + 5,
        _ => false,
    };
    let unexpected: u64 = c.unexpected_closes.lock().values().sum();
    let errors_ok = unexpected == 0 && Counters::get(&c.answers_lost) == 0 && Counters::get(&c.answers_error) == 0;
    let passed = rss_ok && fds_ok && released && errors_ok && !window.is_empty();
    let warn_lines = server_log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count();

    line("# Soak report".into());
    line(String::new());
    line(format!(
        "Produced by `tests/soak/run` (the `soak` driver in `tests/load/src/bin/soak.rs`) against a release build \
         of the `switchboard` binary on {} ({} CPUs): {} sessions of mixed traffic for {:.1} minutes, the server's \
         resident memory (`VmRSS`), open file descriptors (`/proc/<pid>/fd`) and threads sampled every {} s. Not \
         part of `tests/run`.",
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cli.sessions,
        traffic_seconds / 60.0,
        cli.sample_every,
    ));
    line(String::new());
    line("## Verdict".into());
    line(String::new());
    line(format!(
        "**{}**. Over the second half of the traffic (t ≥ {:.0} s, {} samples):",
        if passed { "No growth trend" } else { "Check failed" },
        from,
        window.len()
    ));
    line(String::new());
    line(format!(
        "- RSS: mean {:.1} MiB (min {:.1}, max {:.1}); fitted growth over the window {:+.0} KiB (last third minus \
         first third {:+.0} KiB); bound: a fitted growth of at most {:.0} KiB: **{}**.",
        rss.mean / 1024.0,
        rss.min / 1024.0,
        rss.max / 1024.0,
        rss.fitted_growth,
        rss.last_third - rss.first_third,
        rss_bound,
        if rss_ok { "flat" } else { "grows" }
    ));
    line(format!(
        "- Open fds: mean {:.0} (min {:.0}, max {:.0}) for {:.0} sessions on average; fitted growth {:+.1}, last \
         third minus first third {:+.1}; bound ±{:.0} (1% of the sessions, at least 10): **{}**.",
        fds.mean,
        fds.min,
        fds.max,
        sessions.mean,
        fds.fitted_growth,
        fds.last_third - fds.first_third,
        fd_bound,
        if fds_ok { "flat" } else { "grows" }
    ));
    if let (Some(i), Some(cl)) = (idle, closed) {
        line(format!(
            "- After every session hung up: {} sessions, {} open fds (idle before the run: {}), RSS {:.1} MiB \
             (idle before: {:.1} MiB; the allocator keeps some freed memory): **{}**.",
            cl.sessions,
            cl.fds,
            i.fds,
            cl.rss_kib as f64 / 1024.0,
            i.rss_kib as f64 / 1024.0,
            if released { "released" } else { "not released" }
        ));
    }
    line(format!(
        "- Errors: {} unexpected closes, {} wrong answers, {} answers lost (none came within {} s): **{}**.",
        unexpected,
        Counters::get(&c.answers_error),
        Counters::get(&c.answers_lost),
        ANSWER_TIMEOUT.as_secs(),
        if errors_ok { "none" } else { "see below" }
    ));
    line(format!(
        "- Server log: {warn_lines} WARN or ERROR lines (RUST_LOG=warn)."
    ));
    line(String::new());
    line("## Traffic".into());
    line(String::new());
    let per_s = |n: u64| n as f64 / traffic_seconds.max(1.0);
    line(format!(
        "Each session starts with an `echo` of 16 KiB (so that its buffers reach their working size during the \
         warm-up: tungstenite keeps a buffer's capacity after a large frame), then does one operation every {:.0} s \
         on average: 40% `echo`, 2% `echo` of 16 KiB, 15% a batch \
         (two requests with the same id and a notification), 10% a notification, 10% `rpc.publish` to one of its \
         two rooms (20 recoverable rooms, ~{} subscribers each), 13% `demo.callback` (the server calls the session \
         back, the session answers), 10% subscribe to or unsubscribe from a third room; one operation in {} hangs \
         up and connects again. {} sessions per user. A backend calls the server API every second: `notify` to a user, \
         `publish` to a room, a multicast `call` to a user's sessions (5 s timeout), `presence`.",
        cli.op_every,
        cli.sessions * 2 / ROOMS,
        cli.hangup_one_in,
        SESSIONS_PER_USER
    ));
    line(String::new());
    line("| Counter | Total | Per second |".into());
    line("|---|---:|---:|".into());
    for (name, value) in [
        ("Connects (incl. reconnects)", Counters::get(&c.connects)),
        ("Hang-ups by the driver", Counters::get(&c.hangups)),
        ("Connect failures", Counters::get(&c.connect_failures)),
        ("Requests sent", Counters::get(&c.requests)),
        ("Answers correct", Counters::get(&c.answers_ok)),
        ("Answers wrong", Counters::get(&c.answers_error)),
        ("Answers lost", Counters::get(&c.answers_lost)),
        ("Notifications sent", Counters::get(&c.notifications_sent)),
        ("Publications received (`rpc.message`)", Counters::get(&c.deliveries)),
        ("Server calls answered", Counters::get(&c.server_calls)),
        ("Other pushes received", Counters::get(&c.pushes)),
        ("Server API calls ok", Counters::get(&c.backend_ok)),
        ("Server API calls failed", Counters::get(&c.backend_errors)),
    ] {
        line(format!("| {name} | {value} | {:.1} |", per_s(value)));
    }
    let closes = c.unexpected_closes.lock();
    if !closes.is_empty() {
        line(String::new());
        line("Unexpected ends of sessions:".into());
        line(String::new());
        for (why, n) in closes.iter() {
            line(format!("- {why}: {n}"));
        }
    }
    let codes = c.error_codes.lock();
    if !codes.is_empty() {
        line(String::new());
        line("Error codes in wrong answers:".into());
        line(String::new());
        for (code, n) in codes.iter() {
            line(format!("- {code}: {n}"));
        }
    }
    line(String::new());
    line("## Samples".into());
    line(String::new());
    line(
        "`t` is seconds since the traffic started; `idle` is before any session, `connected` after every session \
         connected, `closed` after every session hung up (the last one 10 s later). Messages in/out are the \
         server's own counters (`stats`)."
            .into(),
    );
    line(String::new());
    line("| t (s) | Phase | RSS (KiB) | Open fds | Threads | Sessions | Messages in | Messages out |".into());
    line("|---:|---|---:|---:|---:|---:|---:|---:|".into());
    for s in samples {
        line(format!(
            "| {:.0} | {} | {} | {} | {} | {} | {} | {} |",
            s.t, s.phase, s.rss_kib, s.fds, s.threads, s.sessions, s.messages_in, s.messages_out
        ));
    }
    Report { text: out, passed }
}
