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

#[tokio::main]
async fn main() -> std::process::ExitCode {
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
