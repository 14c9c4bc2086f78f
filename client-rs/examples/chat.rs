//! A terminal chat on the gateway's dev-mode demo methods: `chat.join`,
//! `chat.send` and `chat.dm`.
//!
//! ```sh
//! cargo run -p switchboard-server                              # a dev-mode gateway
//! cargo run -p switchboard-client --example chat -- alice lobby
//! cargo run -p switchboard-client --example chat -- bob lobby
//! ```
//!
//! Type a line to say it in the room, `/dm USER TEXT` to message one user
//! (all of their sessions), `/quit` to leave.

// An example program talks to its user on stdout.
#![allow(clippy::print_stdout)]

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use switchboard_client::{Client, SubscriptionEvent};
use tokio::io::AsyncBufReadExt;

#[derive(Debug, Deserialize)]
struct Line {
    from: String,
    text: String,
}

#[tokio::main]
async fn main() -> Result<(), switchboard_client::Error> {
    let mut args = std::env::args().skip(1);
    let user = args.next().unwrap_or_else(|| "alice".to_owned());
    let room = args.next().unwrap_or_else(|| "lobby".to_owned());
    let base = std::env::var("SWITCHBOARD_URL").unwrap_or_else(|_| "ws://127.0.0.1:8080/ws".to_owned());

    let client = Client::builder(format!("{base}?user={user}")).build()?;
    // Direct messages wait in a buffer until read: none is lost to a late reader.
    let mut dms = client.on_notification::<Line>("chat.message");
    client.connect().await?;

    // `chat.join` subscribes the session on the server's side; subscribing
    // from the client too gives the room a stream that survives reconnects.
    let _: serde_json::Value = client.call("chat.join", json!({ "room": room })).await?;
    let mut messages = client.subscribe(format!("chat:{room}")).await?;
    println!("{user} in #{room}: type to talk, /dm USER TEXT, /quit");

    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            event = messages.next() => match event {
                Some(SubscriptionEvent::Publication(p)) => match serde_json::from_value::<Line>(p.data) {
                    Ok(line) => println!("#{room} <{}> {}", line.from, line.text),
                    Err(_) => println!("#{room} (a message in another shape)"),
                },
                Some(SubscriptionEvent::Resubscribed(r)) if !r.recovered => {
                    println!("(reconnected; messages sent meanwhile are lost)");
                }
                Some(_) => {}
                None => break,
            },
            dm = dms.next() => match dm {
                Some(Ok(line)) => println!("(dm) <{}> {}", line.from, line.text),
                Some(Err(e)) => println!("(dm) {e}"),
                None => break,
            },
            line = stdin.next_line() => {
                let Ok(Some(line)) = line else { break };
                let sent = if line == "/quit" {
                    break;
                } else if let Some(rest) = line.strip_prefix("/dm ") {
                    let (to, text) = rest.split_once(' ').unwrap_or((rest, ""));
                    client.call::<_, bool>("chat.dm", json!({"user": to, "text": text})).await
                } else {
                    client.call::<_, bool>("chat.send", json!({"room": room, "text": line})).await
                };
                if let Err(e) = sent {
                    println!("(not sent: {e})");
                }
            }
        }
    }
    client.close().await;
    Ok(())
}
