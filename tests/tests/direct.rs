//! Direct methods (`GatewayBuilder::method`) at the wire: results, errors,
//! panics, notifications, batches, the response limit, the caller, HTTP,
//! discovery, and the rules for names.

use serde_json::{Value, json};
use switchboard_server::protocol::{ErrorObject, codes};
use switchboard_server::{Config, Error, Gateway, GatewayBuilder, Limits};
use switchboard_tests::{RpcModule, TestServer, WAIT, error_code, http_post, result, within};

/// A gateway with the test's direct methods (and the demo ones).
fn builder(config: Config) -> GatewayBuilder {
    Gateway::builder(config)
        .method("add", |req| {
            let (a, b): (i64, i64) = req.params()?;
            Ok(a + b)
        })
        .expect("add")
        .method("refuse", |req| -> Result<(), _> {
            Err(ErrorObject::with_data(
                4321,
                json!({"asked": req.raw_params().map(|p| p.get().to_owned())}),
            ))
        })
        .expect("refuse")
        .method("boom", |_| -> Result<(), ErrorObject> {
            if std::hint::black_box(true) {
                panic!("kaboom (direct, expected by the test)");
            }
            Ok(())
        })
        .expect("boom")
        .method("repeat", |req| {
            let (text, times): (&str, usize) = req.params()?;
            Ok(text.repeat(times))
        })
        .expect("repeat")
        .method_async("ask", |req| {
            let (question,): (&str,) = req.params()?;
            // Sent now, from the borrowed params; the future keeps only the call.
            let asked = req.call::<_, String>("ui.ask", &[question], std::time::Duration::from_secs(5));
            Ok(async move {
                let answer = asked.await.map_err(|e| e.to_error_object())?;
                if answer == "boom" {
                    panic!("kaboom (direct async, expected by the test)");
                }
                Ok(format!("you said {answer}"))
            })
        })
        .expect("ask")
        .method("me", |req| {
            Ok(json!({
                "user": req.user(),
                "session": req.session().map(|s| s.id().to_string()),
                "owned": req.caller().user(),
            }))
        })
        .expect("me")
}

async fn server() -> TestServer {
    let config = Config {
        limits: Limits {
            max_response_size: 1000,
            ..Limits::default()
        },
        ..Config::default()
    };
    TestServer::serve(builder(config).build().expect("gateway builds")).await
}

#[tokio::test]
async fn direct_methods_answer_with_their_results_and_errors_and_the_session_lives() {
    within(WAIT, async {
        let server = server().await;
        let mut c = server.connect("direct").await;

        assert_eq!(c.call(1, "add", json!([2, 3])).await, result(json!(1), json!(5)));

        let bad = c.call(2, "add", json!(["two", 3])).await;
        assert_eq!(error_code(&bad), Some(-32602), "{bad}");
        assert!(
            bad["error"]["data"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("invalid type")),
            "the reason says what was wrong: {bad}"
        );

        let refused = c.call(3, "refuse", json!({"x": 1})).await;
        assert_eq!(refused["id"], json!(3), "{refused}");
        assert_eq!(refused["error"]["code"], json!(4321), "{refused}");
        assert_eq!(refused["error"]["data"], json!({"asked": r#"{"x":1}"#}), "{refused}");

        let boom = c.call(4, "boom", json!([])).await;
        assert_eq!(error_code(&boom), Some(-32603), "{boom}");
        assert!(
            !boom.to_string().contains("kaboom"),
            "panic details are logged, not sent: {boom}"
        );

        // Within the limit, and one byte of result too many.
        let fits = c.call(5, "repeat", json!(["a", 998])).await;
        assert_eq!(fits["result"].as_str().map(str::len), Some(998), "{fits}");
        let over = c.call(6, "repeat", json!(["a", 999])).await;
        assert_eq!(error_code(&over), Some(i64::from(codes::LIMIT_EXCEEDED)), "{over}");

        // Notifications get no answer, even a panicking one; the next frame
        // is the answer to the call after them.
        c.send(r#"{"jsonrpc":"2.0","method":"add","params":[1,1]}"#).await;
        c.send(r#"{"jsonrpc":"2.0","method":"boom"}"#).await;
        assert_eq!(c.call(7, "add", json!([40, 2])).await, result(json!(7), json!(42)));

        // In a batch, next to a jsonrpsee method and a built-in.
        c.send(
            r#"[{"jsonrpc":"2.0","id":"a","method":"add","params":[1,2]},
                {"jsonrpc":"2.0","id":"b","method":"demo.sleep","params":[0]},
                {"jsonrpc":"2.0","id":"c","method":"rpc.ping"}]"#,
        )
        .await;
        let batch = c.recv().await;
        let mut answers = batch
            .as_array()
            .unwrap_or_else(|| panic!("a batch answer: {batch}"))
            .clone();
        answers.sort_by_key(|a| a["id"].as_str().unwrap_or_default().to_owned());
        assert_eq!(
            answers,
            vec![
                result(json!("a"), json!(3)),
                result(json!("b"), json!(0)),
                result(json!("c"), json!("pong")),
            ]
        );

        // The caller, borrowed and owned.
        let me = c.call(8, "me", json!([])).await;
        assert_eq!(
            me["result"],
            json!({"user": "direct", "session": c.session, "owned": "direct"}),
            "{me}"
        );
        drop(c);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn asynchronous_direct_methods_wait_and_answer_later() {
    within(WAIT, async {
        let server = server().await;
        let mut c = server.connect("patient").await;
        for (id, said, expected) in [
            (1, "yes", json!({"jsonrpc": "2.0", "id": 1, "result": "you said yes"})),
            (2, "boom", json!(-32603)),
        ] {
            c.send(&format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"ask","params":["well?"]}}"#
            ))
            .await;
            let ask = c.recv().await;
            assert_eq!(ask["method"], "ui.ask", "the server calls the client back: {ask}");
            assert_eq!(ask["params"], json!(["well?"]));
            // Something else is answered while the call waits.
            assert_eq!(
                c.call(10 + id, "add", json!([id, id])).await,
                result(json!(10 + id), json!(2 * id))
            );
            c.send_json(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": said}))
                .await;
            let answer = c.recv().await;
            if expected.is_object() {
                assert_eq!(answer, expected);
            } else {
                assert_eq!(
                    error_code(&answer),
                    expected.as_i64(),
                    "a panicking future answers -32603: {answer}"
                );
            }
        }
        // The first step refuses bad params at once; the client's error comes back as the call's error.
        let bad = c.call(3, "ask", json!([1])).await;
        assert_eq!(error_code(&bad), Some(-32602), "{bad}");
        c.send(r#"{"jsonrpc":"2.0","id":4,"method":"ask","params":["again?"]}"#)
            .await;
        let ask = c.recv().await;
        c.send_json(&json!({"jsonrpc": "2.0", "id": ask["id"], "error": {"code": 4100, "message": "no"}}))
            .await;
        let refused = c.recv().await;
        assert_eq!(refused["id"], json!(4), "{refused}");
        assert_eq!(refused["error"]["code"], json!(4100), "{refused}");
        drop(c);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn direct_methods_answer_over_http_and_are_discovered() {
    within(WAIT, async {
        let server = server().await;
        let rpc = server.http_url("/rpc");
        let answer = http_post(
            &rpc,
            &json!({"jsonrpc": "2.0", "id": 1, "method": "add", "params": [20, 22]}).to_string(),
            &[],
        )
        .await
        .json();
        assert_eq!(answer, result(json!(1), json!(42)));
        let me = http_post(
            &rpc,
            &json!({"jsonrpc": "2.0", "id": 2, "method": "me"}).to_string(),
            &[],
        )
        .await
        .json();
        assert_eq!(me["result"]["session"], Value::Null, "no session over HTTP: {me}");
        // Over HTTP there is no client to call back.
        let ask = http_post(
            &rpc,
            &json!({"jsonrpc": "2.0", "id": 3, "method": "ask", "params": ["anyone?"]}).to_string(),
            &[],
        )
        .await
        .json();
        assert_eq!(error_code(&ask), Some(-32005), "session gone: {ask}");

        let mut c = server.connect("curious").await;
        let doc = c.call(1, "rpc.discover", json!([])).await;
        let names: Vec<&str> = doc["result"]["methods"]
            .as_array()
            .unwrap_or_else(|| panic!("methods is a list: {doc}"))
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        for name in ["add", "me", "echo", "demo.sleep", "rpc.ping"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        drop(c);
        server.stop().await;
    })
    .await;
}

#[test]
fn a_name_is_registered_once_and_rpc_names_are_refused() {
    let direct = |name: &str| Gateway::builder(Config::default()).method(name, |_| Ok(true));
    match direct("rpc.mine") {
        Err(Error::ReservedMethod(name)) => assert_eq!(name, "rpc.mine"),
        other => panic!("rpc.mine must be refused, got {:?}", other.err()),
    }
    let twice = direct("twice").and_then(|b| b.method("twice", |_| Ok(false)));
    assert!(matches!(twice, Err(Error::Register(_))), "{:?}", twice.err());

    let module = || {
        let mut m = RpcModule::new(());
        m.register_method("shared", |_, _, _| 1).expect("register");
        m
    };
    let direct_first = direct("shared").and_then(|b| b.module(module()));
    assert!(
        matches!(direct_first, Err(Error::Register(_))),
        "{:?}",
        direct_first.err()
    );
    let module_first = Gateway::builder(Config::default())
        .module(module())
        .and_then(|b| b.method("shared", |_| Ok(2)));
    assert!(
        matches!(module_first, Err(Error::Register(_))),
        "{:?}",
        module_first.err()
    );
    // The demo's direct `echo` collides with an application's `echo` at build time.
    let mut echo = RpcModule::new(());
    echo.register_method("echo", |_, _, _| "mine").expect("register");
    let built = Gateway::builder(Config::default())
        .module(echo)
        .and_then(GatewayBuilder::build);
    assert!(matches!(built, Err(Error::Register(_))), "{:?}", built.err());
}
