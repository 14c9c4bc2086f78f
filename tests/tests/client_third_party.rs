//! The same client against a JSON-RPC 2.0 WebSocket server that is not
//! switchboard: jsonrpsee's own server. No subprotocol, no `rpc.welcome`,
//! no topics — plain calls, batches and notifications still work.

use futures_util::StreamExt;
use jsonrpsee::RpcModule;
use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::server::{Server, ServerHandle, SubscriptionMessage};
use jsonrpsee::types::ErrorObjectOwned;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_client::protocol::codes;
use switchboard_client::{Client, ConnectionState, Error};
use switchboard_tests::{WAIT, within};

async fn start() -> (String, ServerHandle) {
    let mut module = RpcModule::new(());
    module
        .register_method("add", |params, _, _| {
            let (a, b): (i64, i64) = params.parse()?;
            Ok::<_, ErrorObjectOwned>(a + b)
        })
        .expect("registers");
    module
        .register_method("refuse", |_, _, _| {
            Err::<(), _>(ErrorObjectOwned::owned(
                1234,
                "refused",
                Some(json!({"why": "testing"})),
            ))
        })
        .expect("registers");
    module
        .register_subscription(
            "ticks_subscribe",
            "tick",
            "ticks_unsubscribe",
            |params, pending, _, _| async move {
                let count: u64 = params.one()?;
                let sink = pending.accept().await?;
                for n in 0..count {
                    let message = SubscriptionMessage::from(serde_json::value::to_raw_value(&n)?);
                    sink.send(message).await?;
                }
                SubscriptionResult::Ok(())
            },
        )
        .expect("registers");
    let server = Server::builder().build("127.0.0.1:0").await.expect("binds");
    let addr = server.local_addr().expect("addr");
    (format!("ws://{addr}"), server.start(module))
}

/// How jsonrpsee wraps a subscription's notifications.
#[derive(Debug, Deserialize)]
struct Tick {
    subscription: Value,
    result: u64,
}

#[tokio::test]
async fn plain_calls_batches_and_notifications_with_jsonrpsee() {
    within(WAIT, async {
        let (url, handle) = start().await;
        let client = Client::builder(url)
            .call_timeout(WAIT)
            .connect()
            .await
            .expect("connects");
        assert_eq!(client.state(), Some(ConnectionState::Connected));
        assert!(client.welcome().is_none());
        assert!(client.personal_topic().is_none());

        let sum: i64 = client.call("add", (40, 2)).await.expect("adds");
        assert_eq!(sum, 42);
        match client.call::<_, Value>("refuse", ()).await {
            Err(Error::Rpc(e)) => assert_eq!((e.code, e.data), (1234, Some(json!({"why": "testing"})))),
            other => panic!("{other:?}"),
        }
        let missing = client.call::<_, Value>("nope", ()).await;
        assert!(matches!(missing, Err(Error::Rpc(e)) if e.code == codes::METHOD_NOT_FOUND));

        let mut batch = client.batch();
        let a = batch.call::<_, i64>("add", (1, 2)).expect("params");
        let b = batch.call::<_, i64>("add", (3, 4)).expect("params");
        let mut results = batch.send().await.expect("sent");
        assert_eq!((results.take(a).expect("a"), results.take(b).expect("b")), (3, 7));

        // Server → client notifications: jsonrpsee sends a subscription's items as such.
        let subscription: Value = client.call("ticks_subscribe", [3]).await.expect("subscribes");
        let mut ticks = client.on_notification::<Tick>("tick");
        for n in 0..3 {
            let tick = ticks.next().await.expect("open").expect("a tick");
            assert_eq!((tick.result, &tick.subscription), (n, &subscription));
        }
        // Client → server notifications are sent (jsonrpsee ignores them).
        client.notify("add", (1, 1)).await.expect("notifies");
        let sum: i64 = client.call("add", (1, 1)).await.expect("still connected");
        assert_eq!(sum, 2);
        assert_eq!(client.stats().errors, 2);
        client.close().await;
        handle.stop().expect("stops");
        handle.stopped().await;
    })
    .await;
}
