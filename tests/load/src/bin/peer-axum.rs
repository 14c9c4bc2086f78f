//! The minimal axum JSON-RPC peer (see `switchboard_load::peers::axum_min`).
//! `peer-axum --listen 127.0.0.1:PORT`.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(switchboard_load::peers::listen_arg()).await?;
    switchboard_load::peers::axum_min::serve(listener).await
}
