//! Compress once: a publication to a mix of compressing and plain sessions
//! is deflated once, every compressing session gets the same deflated frame
//! and every plain one the plain text; a publication that no compressing
//! session receives is never deflated. Alone in its file (its own process)
//! because it reads the process's compression counters from `/metrics`.

mod compression_support;

use serde_json::{Value, json};
use switchboard_tests::{TestServer, WAIT, WsClient, http_get, within};

use compression_support::{BROWSER_OFFER, RawClient};

/// A counter's value in the gateway's `/metrics` (0 before its first use).
async fn counter(server: &TestServer, name: &str) -> u64 {
    let body = http_get(&server.http_url("/metrics"), &[]).await.body;
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn subscribe(id: u64, topic: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "rpc.subscribe", "params": {"topics": [{"topic": topic}]}}).to_string()
}

#[tokio::test]
async fn a_publication_is_deflated_once_for_every_compressing_session() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut deflating = Vec::new();
        for i in 0..4 {
            let mut c = RawClient::connect(server.addr, &format!("deflating{i}"), &[BROWSER_OFFER]).await;
            c.send_plain(&subscribe(1, "news")).await;
            assert_eq!(c.next().await.json()["id"], 1);
            deflating.push(c);
        }
        let mut plain: Vec<WsClient> = Vec::new();
        for i in 0..4 {
            let mut c = server.connect(&format!("plain{i}")).await;
            let answer = c
                .call(
                    1,
                    "rpc.subscribe",
                    json!({"topics": [{"topic": "news"}, {"topic": "quiet"}]}),
                )
                .await;
            assert!(answer["result"].is_object(), "{answer}");
            plain.push(c);
        }
        let compressed = counter(&server, "switchboard_messages_compressed_total").await;

        let story = json!({
            "headline": "Compression arrives",
            "body": "Every browser offers permessage-deflate on every connection. ".repeat(30),
            "tags": ["release", "bandwidth", "websocket"],
        });
        server.gateway.hub().publish("news", &story).await.expect("published");
        let expected = json!({"jsonrpc": "2.0", "method": "rpc.message", "params": {"topic": "news", "data": story}});
        let mut frames = Vec::new();
        for c in &mut deflating {
            let frame = c.next().await;
            assert!(frame.rsv1, "a compressing session gets the deflated frame");
            assert_eq!(frame.json(), expected);
            frames.push(frame.payload);
        }
        assert!(frames.windows(2).all(|w| w[0] == w[1]), "one deflated form for all");
        for c in &mut plain {
            assert_eq!(c.recv().await, expected);
        }
        assert_eq!(
            counter(&server, "switchboard_messages_compressed_total").await,
            compressed + 1,
            "deflated once for four sessions"
        );
        let bytes_in = counter(&server, "switchboard_compression_bytes_in_total").await;
        let bytes_out = counter(&server, "switchboard_compression_bytes_out_total").await;
        assert!(bytes_out > 0 && bytes_out * 4 < bytes_in, "{bytes_in} → {bytes_out}");

        // Only plain sessions subscribe to "quiet": nothing is deflated.
        server.gateway.hub().publish("quiet", &story).await.expect("published");
        for c in &mut plain {
            let message: Value = c.recv().await;
            assert_eq!(message["params"]["topic"], "quiet");
        }
        assert_eq!(
            counter(&server, "switchboard_messages_compressed_total").await,
            compressed + 1,
            "nothing deflated for plain sessions"
        );
        drop((deflating, plain));
        server.stop().await;
    })
    .await;
}
