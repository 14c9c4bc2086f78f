//! jsonrpsee's own WebSocket server, used the way its documentation shows.
//!
//! Frozen specification (BENCHMARKS.md repeats it): jsonrpsee 0.26
//! `Server` with its default configuration except `max_connections` raised
//! from 100 to 20,000; `echo` does the same work as switchboard's demo
//! `echo` (params into a `serde_json::Value` and back), as a jsonrpsee method; `publish [topic,
//! data]` sends `(topic, data)` on a tokio broadcast channel (capacity 1024);
//! `subscribe ["topic"]` / `unsubscribe` is a jsonrpsee subscription whose
//! task forwards the broadcast's publications on its topic as `message`
//! notifications (`{"subscription": id, "result": data}`).

use std::sync::Arc;

use jsonrpsee::RpcModule;
use jsonrpsee::server::{Server, ServerConfig, ServerHandle};
use jsonrpsee::types::{ErrorObject, ErrorObjectOwned, Params};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::broadcast;

/// A publication: its topic and data.
type Publication = Arc<(String, Box<RawValue>)>;

/// Connections the peer accepts at once (jsonrpsee's default is 100).
pub const MAX_CONNECTIONS: u32 = 20_000;

/// The peer's methods.
pub fn module() -> RpcModule<broadcast::Sender<Publication>> {
    let (tx, _) = broadcast::channel::<Publication>(1024);
    let mut module = RpcModule::new(tx);
    module
        .register_method("echo", |params: Params<'_>, _, _| -> Result<Value, ErrorObjectOwned> {
            Ok(params
                .as_str()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| ErrorObject::owned(-32603, "Internal error", None::<()>))?
                .unwrap_or(Value::Null))
        })
        .expect("fresh module");
    module
        .register_method("publish", |params, tx, _| -> Result<bool, ErrorObjectOwned> {
            let (topic, data): (String, Box<RawValue>) = params.parse()?;
            let _ = tx.send(Arc::new((topic, data)));
            Ok(true)
        })
        .expect("fresh module");
    module
        .register_subscription(
            "subscribe",
            "message",
            "unsubscribe",
            |params, pending, tx, _| async move {
                let (topic,): (String,) = params.parse()?;
                let mut publications = tx.subscribe();
                let sink = pending.accept().await?;
                loop {
                    tokio::select! {
                        publication = publications.recv() => match publication {
                            Ok(p) if p.0 == topic => sink.send(p.1.clone()).await?,
                            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(broadcast::error::RecvError::Closed) => break,
                        },
                        () = sink.closed() => break,
                    }
                }
                Ok(())
            },
        )
        .expect("fresh module");
    module
}

/// Starts the peer on `listener`; it runs until the handle is stopped or dropped.
pub fn start(listener: std::net::TcpListener) -> std::io::Result<ServerHandle> {
    listener.set_nonblocking(true)?;
    let config = ServerConfig::builder().max_connections(MAX_CONNECTIONS).build();
    let server = Server::builder().set_config(config).build_from_tcp(listener)?;
    Ok(server.start(module()))
}
