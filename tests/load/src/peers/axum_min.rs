//! The minimal axum 0.8 WebSocket JSON-RPC server: the least work any
//! gateway on this stack must do, with nothing of a gateway in it.
//!
//! Frozen specification (BENCHMARKS.md repeats it):
//!
//! * `GET /ws` upgrades with switchboard's default buffers (read 2048 B,
//!   write 4096 B, messages up to 1 MiB), served by `axum::serve` with
//!   `TCP_NODELAY`.
//! * Per connection a reader (the upgrade's task) and a writer task, joined
//!   by a bounded tokio mpsc channel of 1024 frames; the writer writes every
//!   frame it can take without waiting, then flushes once.
//! * Hand-written serde_json dispatch on borrowed fields:
//!   `echo` parses its params into a `serde_json::Value` and writes it back
//!   (the same work as switchboard's demo `echo`); `subscribe ["topic"]`;
//!   `publish ["topic", data]` serialises `message {topic, data}` once and
//!   hands the shared bytes to every subscriber's channel (`try_send`, a full
//!   channel drops); `callback {method, params}` sends `method(params)` to
//!   the caller with a connection-local id and answers the original call
//!   with the client's result when it comes (no timeout, no cancel: the
//!   least work). Anything else is answered `-32601`.
//! * Topics live in one `Mutex<HashMap<topic, Vec<(connection, sender)>>>`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Frames one connection's writer may have waiting.
const CHANNEL_FRAMES: usize = 1024;

type Subscribers = Vec<(u64, mpsc::Sender<Utf8Bytes>)>;

#[derive(Default)]
struct Shared {
    topics: Mutex<HashMap<String, Subscribers>>,
    next_connection: AtomicU64,
}

/// The peer's routes: `GET /ws`.
pub fn router() -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .with_state(Arc::new(Shared::default()))
}

/// Serves the peer on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router()).await
}

async fn upgrade(ws: WebSocketUpgrade, State(shared): State<Arc<Shared>>) -> Response {
    ws.read_buffer_size(super::READ_BUFFER_SIZE)
        .write_buffer_size(super::WRITE_BUFFER_SIZE)
        .max_message_size(super::MAX_MESSAGE_SIZE)
        .on_upgrade(move |socket| connection(socket, shared))
}

#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Callback<'a> {
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

/// One connection's reader state.
struct Connection {
    id: u64,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Utf8Bytes>,
    /// Our calls to the client: our id → the id of the client call waiting for it.
    pending: HashMap<u64, Box<RawValue>>,
    next_call: u64,
    topics: Vec<String>,
}

async fn connection(socket: WebSocket, shared: Arc<Shared>) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(CHANNEL_FRAMES);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.feed(Message::Text(frame)).await.is_err() {
                return;
            }
            while let Ok(frame) = rx.try_recv() {
                if sink.feed(Message::Text(frame)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let mut conn = Connection {
        id: shared.next_connection.fetch_add(1, Ordering::Relaxed),
        shared,
        tx,
        pending: HashMap::new(),
        next_call: 1,
        topics: Vec::new(),
    };
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(text) => conn.handle(text.as_str()),
            Message::Close(_) => break,
            _ => {}
        }
    }
    conn.leave_topics();
    drop(conn);
    let _ = writer.await;
}

impl Connection {
    fn leave_topics(&self) {
        let mut topics = self.shared.topics.lock();
        for topic in &self.topics {
            if let Some(subs) = topics.get_mut(topic) {
                subs.retain(|(id, _)| *id != self.id);
            }
        }
    }

    fn send(&self, frame: String) {
        let _ = self.tx.try_send(frame.into());
    }

    fn handle(&mut self, text: &str) {
        let Ok(msg) = serde_json::from_str::<Incoming<'_>>(text) else {
            self.send(error(None, -32700, "Parse error"));
            return;
        };
        let Some(method) = msg.method else {
            // An answer to one of our calls: answer the client call that made it.
            if let (Some(id), Some(result)) = (msg.id, msg.result)
                && let Some(caller) = id.get().parse().ok().and_then(|id: u64| self.pending.remove(&id))
            {
                self.send(result_frame(caller.get(), result.get()));
            }
            return;
        };
        let params = msg.params.map_or("null", RawValue::get);
        let answer = match &*method {
            "echo" => match serde_json::from_str::<serde_json::Value>(params) {
                Ok(value) => Ok(serde_json::to_string(&value).unwrap_or_default()),
                Err(_) => Err((-32602, "Invalid params")),
            },
            "subscribe" => match serde_json::from_str::<(String,)>(params) {
                Ok((topic,)) => {
                    self.shared
                        .topics
                        .lock()
                        .entry(topic.clone())
                        .or_default()
                        .push((self.id, self.tx.clone()));
                    self.topics.push(topic);
                    Ok("true".to_owned())
                }
                Err(_) => Err((-32602, "Invalid params")),
            },
            "publish" => match serde_json::from_str::<(Cow<'_, str>, &RawValue)>(params) {
                Ok((topic, data)) => {
                    let mut frame = String::with_capacity(64 + topic.len() + data.get().len());
                    frame.push_str(r#"{"jsonrpc":"2.0","method":"message","params":{"topic":"#);
                    frame.push_str(&serde_json::to_string(&topic).unwrap_or_default());
                    frame.push_str(r#","data":"#);
                    frame.push_str(data.get());
                    frame.push_str("}}");
                    let frame = Utf8Bytes::from(frame);
                    if let Some(subs) = self.shared.topics.lock().get(&*topic) {
                        for (_, tx) in subs {
                            let _ = tx.try_send(frame.clone());
                        }
                    }
                    Ok("true".to_owned())
                }
                Err(_) => Err((-32602, "Invalid params")),
            },
            "callback" => match (msg.id, serde_json::from_str::<Callback<'_>>(params)) {
                (Some(caller), Ok(callback)) => {
                    let ours = self.next_call;
                    self.next_call += 1;
                    self.pending.insert(ours, caller.to_owned());
                    let mut frame = format!(r#"{{"jsonrpc":"2.0","id":{ours},"method":"#);
                    frame.push_str(&serde_json::to_string(&callback.method).unwrap_or_default());
                    if let Some(p) = callback.params {
                        frame.push_str(r#","params":"#);
                        frame.push_str(p.get());
                    }
                    frame.push('}');
                    self.send(frame);
                    return;
                }
                (None, _) => return,
                (Some(_), Err(_)) => Err((-32602, "Invalid params")),
            },
            _ => Err((-32601, "Method not found")),
        };
        let Some(id) = msg.id else { return };
        match answer {
            Ok(result) => self.send(result_frame(id.get(), &result)),
            Err((code, message)) => self.send(error(Some(id.get()), code, message)),
        }
    }
}

fn result_frame(id: &str, result: &str) -> String {
    let mut s = String::with_capacity(32 + id.len() + result.len());
    s.push_str(r#"{"jsonrpc":"2.0","id":"#);
    s.push_str(id);
    s.push_str(r#","result":"#);
    s.push_str(result);
    s.push('}');
    s
}

fn error(id: Option<&str>, code: i32, message: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{code},"message":"{message}"}}}}"#,
        id.unwrap_or("null")
    )
}
