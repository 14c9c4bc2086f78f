//! jsonrpsee's own WebSocket server as a peer (see
//! `switchboard_load::peers::jsonrpsee_peer`). `peer-jsonrpsee --listen 127.0.0.1:PORT`.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(switchboard_load::peers::listen_arg())?;
    let handle = switchboard_load::peers::jsonrpsee_peer::start(listener)?;
    handle.stopped().await;
    Ok(())
}
