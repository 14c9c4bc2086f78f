//! One typed contract for both directions: the descriptors in `shared` are
//! the only definition of the methods, used by the embedded server (its
//! handlers, its calls on clients, its pushes) and by the Rust client (its
//! calls, its handler, its listener); `rpc.discover` describes them with
//! their schemas, the client-direction ones marked as such.

use futures_util::StreamExt;
use serde_json::{Value, json};
use switchboard_client::{Client, Error, RpcError};
use switchboard_server::protocol::codes;
use switchboard_server::{Config, Gateway, Target};
use switchboard_tests::{TestServer, WAIT, within};

/// What a crate shared by the server and its clients would hold.
mod shared {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use switchboard_protocol::contract::{ClientMethod, Method, Push};

    /// `math.add [a, b]`: by position.
    pub(crate) struct Add;
    impl Method for Add {
        const NAME: &'static str = "math.add";
        const SUMMARY: &'static str = "The sum of two numbers.";
        const PARAM_NAMES: &'static [&'static str] = &["a", "b"];
        type Params = (i64, i64);
        type Result = i64;
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub(crate) struct Order {
        /// What is ordered.
        pub(crate) item: String,
        pub(crate) quantity: u32,
        /// Where it goes, when not to the account's address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub(crate) address: Option<Address>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub(crate) struct Address {
        pub(crate) street: String,
        pub(crate) city: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    pub(crate) enum Placed {
        Confirmed,
        Declined,
    }

    /// `shop.order {item, quantity, address?}`: by name. The server asks
    /// the ordering client to confirm, then pushes a notice to the user.
    pub(crate) struct PlaceOrder;
    impl Method for PlaceOrder {
        const NAME: &'static str = "shop.order";
        const ERRORS: &'static [i32] = &[-32004];
        type Params = Order;
        type Result = Placed;
    }

    /// `ui.confirm [question]`, called on clients.
    pub(crate) struct Confirm;
    impl ClientMethod for Confirm {
        const NAME: &'static str = "ui.confirm";
        const PARAM_NAMES: &'static [&'static str] = &["question"];
        type Params = (String,);
        type Result = bool;
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub(crate) struct Notice {
        pub(crate) text: String,
    }

    /// `shop.notice {text}`, pushed to clients.
    pub(crate) struct OrderNotice;
    impl Push for OrderNotice {
        const NAME: &'static str = "shop.notice";
        type Params = Notice;
    }
}

use shared::{Add, Confirm, Notice, Order, OrderNotice, PlaceOrder, Placed};

fn gateway() -> Gateway {
    Gateway::builder(Config {
        demo: Some(false),
        ..Config::default()
    })
    .serve::<Add, _>(|_req, (a, b)| Ok(a + b))
    .and_then(|b| {
        b.serve_async::<PlaceOrder, _, _>(|req, order| {
            let question = format!("Order {} × {}?", order.quantity, order.item);
            let confirmed = req.call_method::<Confirm>(&(question,), WAIT);
            let hub = req.hub().clone();
            let user = req.user().to_owned();
            Ok(async move {
                let yes = confirmed.await.map_err(|e| e.to_error_object())?;
                let text = format!("{} {}", if yes { "ordered" } else { "not ordered" }, order.item);
                hub.push::<OrderNotice>(Target::User(user), &Notice { text })
                    .await
                    .map_err(|_| switchboard_server::protocol::ErrorObject::new(codes::INTERNAL_ERROR))?;
                Ok(if yes { Placed::Confirmed } else { Placed::Declined })
            })
        })
    })
    .and_then(|b| b.method("plain", |req| req.params::<Value>()))
    .and_then(|b| b.declare_client_method::<Confirm>())
    .and_then(|b| b.declare_push::<OrderNotice>())
    .and_then(|b| b.build())
    .expect("the gateway builds")
}

#[tokio::test]
async fn one_definition_serves_calls_and_pushes_both_ways() {
    within(WAIT, async {
        let server = TestServer::serve(gateway()).await;
        let client = Client::builder(server.ws_url("ada"))
            .call_timeout(WAIT)
            .build()
            .expect("builds");
        client.handle_method::<Confirm, _, _>(|(question,), _call| async move {
            Ok::<_, RpcError>(question.contains("tea"))
        });
        let mut notices = client.on_push::<OrderNotice>();
        client.connect().await.expect("connects");

        assert_eq!(client.call_method::<Add>((2, 40)).await.expect("adds"), 42);

        let tea = Order {
            item: "tea".into(),
            quantity: 2,
            address: None,
        };
        assert_eq!(
            client.call_method::<PlaceOrder>(tea).await.expect("orders"),
            Placed::Confirmed
        );
        let notice = notices.next().await.expect("open").expect("a notice");
        assert_eq!(notice.text, "ordered tea");

        let coffee = Order {
            item: "coffee".into(),
            quantity: 1,
            address: Some(shared::Address {
                street: "1 Main St".into(),
                city: "Springfield".into(),
            }),
        };
        assert_eq!(
            client.call_method::<PlaceOrder>(coffee).await.expect("orders"),
            Placed::Declined
        );
        let notice = notices.next().await.expect("open").expect("a notice");
        assert_eq!(notice.text, "not ordered coffee");

        // Params that are not the descriptor's are refused with serde's reason.
        match client.call::<_, Value>("math.add", json!(["two", 40])).await {
            Err(Error::Rpc(e)) => {
                assert_eq!(e.code, codes::INVALID_PARAMS);
                let reason = e.data.as_ref().and_then(|d| d["reason"].as_str()).unwrap_or_default();
                assert!(reason.contains("invalid type"), "{reason}");
            }
            other => panic!("expected -32602, got {other:?}"),
        }
        match client.call::<_, Value>("shop.order", json!({"item": "tea"})).await {
            Err(Error::Rpc(e)) => assert_eq!(e.code, codes::INVALID_PARAMS),
            other => panic!("expected -32602, got {other:?}"),
        }
        client.close().await;
        server.stop().await;
    })
    .await;
}

fn method<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["methods"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("{name} is listed"))
}

#[tokio::test]
async fn discover_describes_both_directions_with_their_schemas() {
    within(WAIT, async {
        let server = TestServer::serve(gateway()).await;
        let mut ws = server.connect("ada").await;
        let answer = ws.call(1, "rpc.discover", json!([])).await;
        let doc = &answer["result"];
        assert_eq!(doc["openrpc"], "1.3.2");

        let add = method(doc, "math.add");
        assert_eq!(add["paramStructure"], "by-position");
        assert_eq!(add["summary"], "The sum of two numbers.");
        assert_eq!(add["params"][0]["name"], "a");
        assert_eq!(add["params"][1]["schema"]["type"], "integer");
        assert_eq!(add["result"]["schema"]["type"], "integer");
        assert!(add.get("x-switchboard-direction").is_none());

        let order = method(doc, "shop.order");
        assert_eq!(order["paramStructure"], "by-name");
        let params: Vec<(&str, bool)> = order["params"]
            .as_array()
            .expect("params")
            .iter()
            .map(|p| (p["name"].as_str().unwrap_or_default(), p["required"] == true))
            .collect();
        assert_eq!(params, [("address", false), ("item", true), ("quantity", true)]);
        assert_eq!(order["params"][1]["description"], "What is ordered.");
        assert_eq!(order["errors"][0]["code"], -32004);
        let placed = order["result"]["schema"]["$ref"].as_str().expect("a reference");
        let placed = placed.rsplit('/').next().unwrap_or_default();
        assert_eq!(
            doc["components"]["schemas"][placed]["enum"],
            json!(["confirmed", "declined"])
        );
        assert!(doc["components"]["schemas"]["Address"]["properties"]["city"].is_object());

        let confirm = method(doc, "ui.confirm");
        assert_eq!(confirm["x-switchboard-direction"], "client");
        assert_eq!(confirm["params"][0]["name"], "question");
        assert_eq!(confirm["result"]["schema"]["type"], "boolean");

        let notice = method(doc, "shop.notice");
        assert_eq!(notice["x-switchboard-direction"], "client");
        assert!(notice.get("result").is_none(), "a push has no result");
        assert_eq!(notice["params"][0]["name"], "text");

        // An untyped method is still listed, by name.
        let plain = method(doc, "plain");
        assert_eq!(plain["params"], json!([]));
        assert!(plain.get("paramStructure").is_none());

        // The gateway's own methods come first, as before.
        assert_eq!(doc["methods"][0]["name"], "rpc.ping");
        server.stop().await;
    })
    .await;
}

#[test]
fn names_stay_unique_whichever_way_they_go() {
    let builder = || {
        Gateway::builder(Config {
            demo: Some(false),
            ..Config::default()
        })
    };
    // A method the server serves cannot also be one it calls on clients.
    let served_then_declared = builder()
        .method("ui.confirm", |_| Ok(true))
        .and_then(|b| b.declare_client_method::<Confirm>());
    assert!(served_then_declared.is_err());
    let declared_then_served = builder()
        .declare_push::<OrderNotice>()
        .and_then(|b| b.method("shop.notice", |_| Ok(true)));
    assert!(declared_then_served.is_err());
    // Describing needs a method to describe, once.
    assert!(builder().describe::<Add>().is_err());
    let twice = builder()
        .serve::<Add, _>(|_req, (a, b)| Ok(a + b))
        .and_then(|b| b.describe::<Add>());
    assert!(twice.is_err());
    let described = builder()
        .method("math.add", |req| {
            let (a, b): (i64, i64) = req.params()?;
            Ok(a + b)
        })
        .and_then(|b| b.describe::<Add>());
    assert!(described.is_ok());
}
