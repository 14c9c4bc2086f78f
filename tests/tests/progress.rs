//! Progress from the server's methods to the client that called:
//! `rpc.progress {id, progress}` before the answer, never after it.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use switchboard_server::{Config, Gateway, Progress};
use switchboard_tests::{TestServer, WAIT, within};

#[tokio::test]
async fn demo_sleep_reports_progress_before_its_answer_and_stops_when_cancelled() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let mut client = server.connect("pat").await;
        client
            .send_json(&json!({"jsonrpc": "2.0", "id": "s", "method": "demo.sleep", "params": {"ms": 350}}))
            .await;
        let mut reports = Vec::new();
        let answer = loop {
            let frame = client.recv().await;
            if frame.get("method") == Some(&json!("rpc.progress")) {
                assert_eq!(frame["params"]["id"], "s", "{frame}");
                reports.push(frame["params"]["progress"].clone());
            } else {
                break frame;
            }
        };
        assert_eq!(answer, json!({"jsonrpc": "2.0", "id": "s", "result": 350}));
        assert_eq!(
            reports,
            [100, 200, 300].map(|elapsed| json!({"elapsed_ms": elapsed, "ms": 350})),
            "one report about every 100 ms"
        );

        client
            .send_json(&json!({"jsonrpc": "2.0", "id": 2, "method": "demo.sleep", "params": {"ms": 60000}}))
            .await;
        let first = client.recv().await;
        assert_eq!(first["method"], "rpc.progress", "{first}");
        client
            .send_json(&json!({"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": 2}}))
            .await;
        // Progress sent before the cancel arrived may still come; then the one answer.
        let answer = loop {
            let frame = client.recv().await;
            if frame.get("method") != Some(&json!("rpc.progress")) {
                break frame;
            }
        };
        assert_eq!(
            answer,
            json!({"jsonrpc": "2.0", "id": 2, "error": {"code": -32011, "message": "Cancelled"}})
        );
        let pong = client.call(3, "rpc.ping", json!([])).await;
        assert_eq!(pong["result"], "pong", "nothing came after the answer: {pong}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_report_after_the_answer_is_dropped() {
    within(WAIT, async {
        let kept: Arc<Mutex<Option<Progress>>> = Arc::default();
        let keep = kept.clone();
        let gateway = Gateway::builder(Config::default())
            .method_async("work.report", move |req| {
                let progress = req.progress();
                assert!(progress.report(&json!("started")), "queued before the answer");
                *keep.lock().expect("lock") = Some(progress);
                Ok(async { Ok("done") })
            })
            .and_then(|b| b.method("work.sync", |req| Ok(req.progress().report(&1))))
            .expect("registers")
            .build()
            .expect("builds");
        let server = TestServer::serve(gateway).await;
        let mut client = server.connect("quin").await;
        client
            .send_json(&json!({"jsonrpc": "2.0", "id": 1, "method": "work.report"}))
            .await;
        assert_eq!(
            client.recv().await,
            json!({"jsonrpc": "2.0", "method": "rpc.progress", "params": {"id": 1, "progress": "started"}})
        );
        assert_eq!(
            client.recv().await,
            json!({"jsonrpc": "2.0", "id": 1, "result": "done"})
        );
        let progress = kept.lock().expect("lock").take().expect("kept");
        assert!(!progress.report(&json!("late")), "answered: the report is dropped");
        let sync = client.call(2, "work.sync", json!([])).await;
        assert_eq!(
            sync["result"],
            Value::Bool(false),
            "a synchronous method reports nothing: {sync}"
        );
        server.stop().await;
    })
    .await;
}

/// The other direction, one session: a method calls its own client and
/// reads the progress that client reports, in order, before the answer.
#[tokio::test]
async fn a_single_session_call_reads_the_clients_progress() {
    within(WAIT, async {
        let gateway = Gateway::builder(Config::default())
            .method_async("relay", |req| {
                let params = serde_json::value::to_raw_value(&json!({"steps": 3})).expect("params");
                let (call, mut reports) = req.call_raw_with_progress("work", Some(&params), WAIT);
                Ok(async move {
                    let answer = call.await.map_err(|e| e.to_error_object())?;
                    let mut seen = Vec::new();
                    while let Some(report) = reports.recv().await {
                        seen.push(serde_json::from_str::<Value>(report.get()).expect("JSON"));
                    }
                    let answer: Value = serde_json::from_str(answer.get()).expect("JSON");
                    Ok(json!({"reports": seen, "answer": answer}))
                })
            })
            .and_then(|b| b.build())
            .expect("builds");
        let server = TestServer::serve(gateway).await;
        let mut client = server.connect("wes").await;
        client
            .send_json(&json!({"jsonrpc": "2.0", "id": 1, "method": "relay"}))
            .await;
        let request = client.recv().await;
        assert_eq!(request["method"], "work", "{request}");
        let id = request["id"].clone();
        for step in 1..=3 {
            client
                .send_json(&json!({"jsonrpc": "2.0", "method": "rpc.progress", "params": {"id": id, "progress": {"step": step}}}))
                .await;
        }
        client
            .send_json(&json!({"jsonrpc": "2.0", "id": id, "result": "done"}))
            .await;
        let answer = client.recv().await;
        assert_eq!(
            answer["result"],
            json!({"reports": [{"step": 1}, {"step": 2}, {"step": 3}], "answer": "done"}),
            "{answer}"
        );
        server.stop().await;
    })
    .await;
}
