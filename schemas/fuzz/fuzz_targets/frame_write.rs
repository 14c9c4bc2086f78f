//! The frame builders (`write_request`, `write_notification`,
//! `write_publication`, `write_result`, `write_error`, `push_json_str`) with
//! arbitrary method names, topics, ids, params and error objects: every frame
//! is valid JSON, round-trips through serde_json to what went in, and
//! classifies back as the message it was meant to be.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use switchboard_protocol::ErrorObject;
use switchboard_protocol::frame::{self, Frame, Message};

/// A JSON value, bounded in depth when converted.
#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn value(&self, depth: usize) -> Value {
        if depth > 16 {
            return Value::Null;
        }
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(i) => Value::from(*i),
            Json::UInt(u) => Value::from(*u),
            // JSON has no NaN or infinity: serde_json writes them as null.
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Str(s) => Value::String(s.clone()),
            Json::Array(items) => Value::Array(items.iter().map(|j| j.value(depth + 1)).collect()),
            Json::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, j)| (k.clone(), j.value(depth + 1)))
                    .collect::<Map<_, _>>(),
            ),
        }
    }
}

/// Params of a request: an array or an object.
#[derive(Arbitrary, Debug)]
enum Params {
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Params {
    fn value(&self) -> Value {
        match self {
            Params::Array(items) => Value::Array(items.iter().map(|j| j.value(1)).collect()),
            Params::Object(members) => Value::Object(members.iter().map(|(k, j)| (k.clone(), j.value(1))).collect()),
        }
    }
}

/// A client's id: any JSON string or number, or null.
#[derive(Arbitrary, Debug)]
enum ClientId {
    Str(String),
    Int(i64),
    UInt(u64),
    Float(f64),
    Null,
}

impl ClientId {
    fn text(&self) -> String {
        match self {
            ClientId::Str(s) => serde_json::to_string(s).expect("a string serialises"),
            ClientId::Int(i) => i.to_string(),
            ClientId::UInt(u) => u.to_string(),
            ClientId::Float(f) if f.is_finite() => serde_json::to_string(f).expect("a finite float serialises"),
            ClientId::Float(_) | ClientId::Null => "null".to_owned(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    call_id: u64,
    method: String,
    params: Option<Params>,
    topic: String,
    data: Json,
    position: Option<(u64, String)>,
    client_id: ClientId,
    result: Json,
    code: i32,
    message: String,
    error_data: Option<Json>,
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `expected` as it reads back from its own text: serde_json parses some
/// floats one unit in the last place off (without its `float_roundtrip`
/// feature), so both sides go through the same parser.
fn reread(expected: &Value) -> Value {
    json(&expected.to_string())
}

fuzz_target!(|input: Input| {
    // push_json_str writes the same literal as serde_json.
    let mut quoted = String::new();
    frame::push_json_str(&mut quoted, &input.method);
    assert_eq!(json(&quoted), Value::String(input.method.clone()));

    let params = input.params.as_ref().map(Params::value);
    let params_text = params.as_ref().map(Value::to_string);

    // A request from the server.
    let request = frame::write_request(input.call_id, &input.method, params_text.as_deref());
    let mut expected = json!({"jsonrpc": "2.0", "id": input.call_id, "method": input.method});
    if let Some(p) = &params {
        expected["params"] = p.clone();
    }
    assert_eq!(json(&request), reread(&expected));
    match frame::parse(&request) {
        Frame::Single(Message::Request {
            id,
            method,
            params: got,
        }) => {
            assert_eq!(frame::our_id(id), Some(input.call_id), "our ids read back");
            assert_eq!(method, input.method);
            assert_eq!(got.map(|p| p.get().to_owned()), params_text);
        }
        other => panic!("a request reads back as {other:?}"),
    }

    // A notification.
    let notification = frame::write_notification(&input.method, params_text.as_deref());
    expected.as_object_mut().expect("object").remove("id");
    assert_eq!(json(&notification), reread(&expected));
    assert!(matches!(
        frame::parse(&notification),
        Frame::Single(Message::Notification { ref method, .. }) if *method == input.method
    ));

    // A publication.
    let data = input.data.value(0);
    let data_text = data.to_string();
    let position = input.position.as_ref().map(|(o, e)| (*o, e.as_str()));
    let publication = frame::write_publication(&input.topic, &data_text, position);
    let mut params = json!({"topic": input.topic, "data": data});
    if let Some((offset, epoch)) = position {
        params["offset"] = json!(offset);
        params["epoch"] = json!(epoch);
    }
    assert_eq!(
        json(&publication),
        reread(&json!({"jsonrpc": "2.0", "method": "rpc.message", "params": params}))
    );

    // A result under the client's id, byte for byte.
    let id = input.client_id.text();
    let result_text = input.result.value(0).to_string();
    let answer = frame::write_result(&id, &result_text);
    assert_eq!(json(&answer)["result"], json(&result_text));
    match frame::parse(&answer) {
        Frame::Single(Message::Response {
            id: got,
            outcome: Ok(result),
        }) => {
            assert_eq!(got.get(), id);
            assert_eq!(result.get(), result_text);
        }
        other => panic!("a result reads back as {other:?}"),
    }

    // An error under the client's id, and under null.
    let error = ErrorObject {
        code: input.code,
        message: input.message.clone(),
        data: input.error_data.as_ref().map(|d| d.value(0)).filter(|d| !d.is_null()),
    };
    for id in [Some(id.as_str()), None] {
        let answer = frame::write_error(id, &error);
        let value = json(&answer);
        let sent = serde_json::to_value(&error).expect("serialises");
        assert_eq!(value["error"], reread(&sent));
        match frame::parse(&answer) {
            Frame::Single(Message::Response {
                id: got,
                outcome: Err(e),
            }) => {
                assert_eq!(got.get(), id.unwrap_or("null"));
                assert_eq!(e.code, error.code);
                assert_eq!(e.message, error.message);
                assert_eq!(
                    e.data,
                    reread(&sent).get("data").cloned(),
                    "the error object round-trips"
                );
            }
            other => panic!("an error reads back as {other:?}"),
        }
    }
});
