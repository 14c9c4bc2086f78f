//! The first thing anyone tries: connect, echo, call back.

use serde_json::json;
use switchboard_tests::{TestServer, WAIT, result, within};

#[tokio::test]
async fn echo_and_callback_over_websocket() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut c = server.connect("alice").await;
        assert_eq!(c.call(1, "echo", json!(["hi"])).await, result(json!(1), json!(["hi"])));
        c.send(r#"{"jsonrpc":"2.0","id":"x","method":"demo.callback","params":{"method":"ui.ask","params":[1]}}"#)
            .await;
        let request = c.recv().await;
        assert_eq!(request["method"], "ui.ask");
        let id = request["id"].clone();
        c.send_json(&json!({"jsonrpc":"2.0","id":id,"result":"yes"})).await;
        assert_eq!(c.recv().await, result(json!("x"), json!("yes")));
        server.stop().await;
    })
    .await;
}
