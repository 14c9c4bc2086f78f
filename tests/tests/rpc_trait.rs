//! A jsonrpsee `#[rpc(server)]` trait mounts unchanged beside direct
//! methods: its methods answer at the wire (positional and named params,
//! synchronous and asynchronous, errors and bad params), `rpc.discover`
//! lists them, and one name cannot be registered in both. Both kinds get
//! the same request context, `Caller`: who called, and the way back to
//! their client.

use jsonrpsee::Extensions;
use jsonrpsee::core::{RpcResult, async_trait};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::json;
use switchboard_server::{Caller, Config, Error, Gateway, Request};
use switchboard_tests::{TestServer, WAIT, error_code, within};

#[rpc(server, namespace = "calc", namespace_separator = ".")]
trait Calc {
    /// Adds two numbers.
    #[method(name = "add", param_kind = map)]
    fn add(&self, a: i64, b: i64) -> RpcResult<i64>;

    /// Doubles a number after yielding to the runtime.
    #[method(name = "double")]
    async fn double(&self, n: i64) -> RpcResult<i64>;

    /// Always fails with an application error.
    #[method(name = "fail")]
    fn fail(&self) -> RpcResult<()>;

    /// Who called, and what their client answers to `ui.name`.
    #[method(name = "who", with_extensions)]
    async fn who(&self) -> RpcResult<serde_json::Value>;
}

/// What a handler learns from its `Caller`, and what the caller's client answers when asked back.
async fn describe(caller: Caller, asked: Result<String, switchboard_server::CallError>) -> serde_json::Value {
    json!({
        "user": caller.user(),
        "session": caller.session_id().map(ToString::to_string),
        "claims": caller.claims().map(|c| (*c).clone()),
        "node": !caller.hub().node().is_empty(),
        "answered": asked.map_err(|e| e.to_string()),
    })
}

struct Calculator;

#[async_trait]
impl CalcServer for Calculator {
    fn add(&self, a: i64, b: i64) -> RpcResult<i64> {
        Ok(a + b)
    }

    async fn double(&self, n: i64) -> RpcResult<i64> {
        tokio::task::yield_now().await;
        Ok(n * 2)
    }

    fn fail(&self) -> RpcResult<()> {
        Err(ErrorObjectOwned::owned(7, "no", Some(json!({"why": "always"}))))
    }

    async fn who(&self, ext: &Extensions) -> RpcResult<serde_json::Value> {
        let caller = ext.get::<Caller>().expect("the gateway sets the caller").clone();
        let asked = caller.call::<_, String>("ui.name", &json!([]), WAIT).await;
        Ok(describe(caller, asked).await)
    }
}

#[tokio::test]
async fn an_rpc_server_trait_answers_at_the_wire_beside_direct_methods() {
    within(WAIT, async {
        let gateway = Gateway::builder(Config::default())
            .module(Calculator.into_rpc())
            .and_then(|b| b.method("calc.negate", |r: Request<'_>| r.params::<(i64,)>().map(|(n,)| -n)))
            .expect("the trait's module and a direct method register")
            .build()
            .expect("gateway builds");
        let server = TestServer::serve(gateway).await;
        let mut client = server.connect("alice").await;

        let added = client.call(1, "calc.add", json!({"a": 2, "b": 3})).await;
        assert_eq!(added, json!({"jsonrpc": "2.0", "id": 1, "result": 5}));
        let doubled = client.call(2, "calc.double", json!([21])).await;
        assert_eq!(doubled, json!({"jsonrpc": "2.0", "id": 2, "result": 42}));
        let negated = client.call(3, "calc.negate", json!([4])).await;
        assert_eq!(negated, json!({"jsonrpc": "2.0", "id": 3, "result": -4}));
        let failed = client.call(4, "calc.fail", json!([])).await;
        assert_eq!(
            failed,
            json!({"jsonrpc": "2.0", "id": 4, "error": {"code": 7, "message": "no", "data": {"why": "always"}}})
        );
        let bad = client.call(5, "calc.double", json!(["two"])).await;
        assert_eq!(error_code(&bad), Some(-32602), "{bad}");

        let discover = client.call(6, "rpc.discover", json!([])).await;
        let names: Vec<&str> = discover["result"]["methods"]
            .as_array()
            .expect("a list of methods")
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        for name in ["calc.add", "calc.double", "calc.fail", "calc.negate"] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn direct_and_jsonrpsee_handlers_get_the_same_caller() {
    within(WAIT, async {
        let gateway = Gateway::builder(Config::default())
            .module(Calculator.into_rpc())
            .and_then(|b| {
                b.method_async("direct.who", |req| {
                    // Started in the first step, from the borrowed request.
                    let asked = req.call::<_, String>("ui.name", &json!([]), WAIT);
                    let caller = req.caller().clone();
                    Ok(async move { Ok(describe(caller, asked.await).await) })
                })
            })
            .expect("both register")
            .build()
            .expect("gateway builds");
        let server = TestServer::serve(gateway).await;
        let mut client = server.connect("carol").await;
        let session = client.session.clone();

        let mut answers = Vec::new();
        for (id, method) in [(1, "calc.who"), (2, "direct.who")] {
            client
                .send_json(&json!({"jsonrpc": "2.0", "id": id, "method": method}))
                .await;
            let asked = client.recv().await;
            assert_eq!(asked["method"], "ui.name", "{asked}");
            client
                .send_json(&json!({"jsonrpc": "2.0", "id": asked["id"], "result": format!("carol via {method}")}))
                .await;
            let answer = client.recv().await;
            assert_eq!(answer["id"], id, "{answer}");
            answers.push(answer["result"].clone());
        }
        for (answer, method) in answers.iter().zip(["calc.who", "direct.who"]) {
            assert_eq!(
                *answer,
                json!({"user": "carol", "session": session, "claims": null, "node": true,
                       "answered": {"Ok": format!("carol via {method}")}}),
                "{method}"
            );
        }
        server.stop().await;
    })
    .await;
}

#[test]
fn a_name_is_registered_once_across_modules_and_direct_methods() {
    let direct_first = Gateway::builder(Config::default())
        .method("calc.add", |_: Request<'_>| {
            Ok::<_, switchboard_server::protocol::ErrorObject>(0)
        })
        .and_then(|b| b.module(Calculator.into_rpc()));
    assert!(
        matches!(direct_first, Err(Error::Register(_))),
        "a direct method's name taken again by a module"
    );
    let module_first = Gateway::builder(Config::default())
        .module(Calculator.into_rpc())
        .and_then(|b| {
            b.method("calc.add", |_: Request<'_>| {
                Ok::<_, switchboard_server::protocol::ErrorObject>(0)
            })
        });
    assert!(
        matches!(module_first, Err(Error::Register(_))),
        "a module's name taken again by a direct method"
    );
}
