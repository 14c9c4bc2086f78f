//! The `switchboard` binary: parse the configuration, start tracing, serve.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use switchboard_server::{Config, Gateway};
use tracing_subscriber::EnvFilter;

/// A WebSocket gateway that speaks JSON-RPC 2.0 in both directions.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML configuration file.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// The address to listen on (overrides the file and the environment).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

fn main() -> std::process::ExitCode {
    one_malloc_arena();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(start())
}

/// glibc's allocator gives threads arenas of their own (up to eight per
/// core). A session's memory is allocated on whichever worker thread runs it
/// at the time and freed on another, and with connections coming and going
/// each arena fragments on its own: the resident size of a busy node creeps
/// up for hours although nothing leaks. One arena keeps it flat (see
/// SOAK.md) and costs nothing measurable here, since the hot paths allocate
/// little and glibc's per-thread cache serves small blocks without the arena
/// lock. `MALLOC_ARENA_MAX` (or `GLIBC_TUNABLES=glibc.malloc.arena_max=N`)
/// overrides this, e.g. on machines with many cores.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tuned = std::env::var_os("MALLOC_ARENA_MAX").is_some()
            || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
        if !tuned {
            // SAFETY: mallopt only changes a parameter of the allocator; it is
            // called before the runtime starts, while this is the only thread.
            #[allow(unsafe_code)]
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, 1);
            }
        }
    }
}

async fn start() -> std::process::ExitCode {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // At trace, tungstenite logs every frame whole, tokens sent with
    // `rpc.refresh` included: it stays at debug unless RUST_LOG names it.
    if std::env::var("RUST_LOG").is_ok_and(|v| v.contains("trace") && !v.contains("tungstenite")) {
        filter = filter.add_directive("tungstenite=debug".parse().expect("a valid directive"));
    }
    tracing_subscriber::fmt().with_env_filter(filter).init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("switchboard: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), switchboard_server::Error> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    config.validate()?;
    let gateway = Gateway::builder(config).build()?;
    let listener = tokio::net::TcpListener::bind(gateway.config().listen).await?;
    let addr = listener.local_addr()?;
    let shutdown = shutdown_signal()?;
    #[cfg(unix)]
    drain_on_sigusr1(gateway.clone())?;
    announce(&gateway, addr);
    gateway.serve(listener, shutdown).await
}

fn announce(gateway: &Gateway, addr: SocketAddr) {
    let config = gateway.config();
    let mode = match (config.dev_mode(), config.demo.unwrap_or(config.dev_mode())) {
        (true, true) => "dev mode: no authentication, demo methods on",
        (true, false) => "dev mode: no authentication",
        (false, true) => "authenticated, demo methods on",
        (false, false) => "authenticated",
    };
    // With TLS the same port speaks https:// and wss:// only.
    let (http, ws) = if gateway.config().tls.is_some() {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    eprintln!(
        "switchboard listening on {http}://{addr} ({mode})\n\
         \n  WebSocket:  wscat -c '{ws}://{addr}/ws?user=alice'\n\
         \x20             then type {{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"hi\"]}}\n\
         \n  HTTP:       curl -s {http}://{addr}/rpc -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"hi\"]}}'\n\
         \n  Metrics:    {http}://{addr}/metrics\n"
    );
}

/// `kill -USR1 <pid>` drains the node: sessions are sent to other nodes with close 1012.
#[cfg(unix)]
fn drain_on_sigusr1(gateway: Gateway) -> std::io::Result<()> {
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            tracing::info!("draining: sessions are asked to reconnect elsewhere");
            gateway.drain();
        }
    });
    Ok(())
}

/// Registers the shutdown signals at once (before the address is announced,
/// so that a SIGTERM right after start is a clean shutdown, not a kill).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
