//! One typed contract for both directions.
//!
//! An application describes each of its methods once, as a unit struct
//! implementing one of three traits, in a crate both its server and its
//! clients depend on:
//!
//! * [`Method`]: a method clients call on the gateway;
//! * [`ClientMethod`]: a method the server calls on clients;
//! * [`Push`]: a notification the server pushes to clients.
//!
//! The server registers its handler through the descriptor
//! (`GatewayBuilder::serve`), calls clients through it (`Caller::call_method`)
//! and declares what it calls and pushes; the Rust client calls, handles and
//! listens through the same descriptors. A handler or a call whose types
//! differ from the descriptor's does not compile. The gateway's `rpc.discover`
//! describes every registered descriptor with JSON Schemas generated from
//! the types (through `schemars`), so the TypeScript client can be generated
//! from the same contract.
//!
//! Params are a struct (sent by name, as a JSON object), a tuple (by
//! position, as a JSON array) or `()` (none).
//!
//! ```
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//! use switchboard_protocol::contract::{ClientMethod, Method, Push};
//!
//! /// `add`: the sum of two numbers, by position.
//! pub struct Add;
//! impl Method for Add {
//!     const NAME: &'static str = "add";
//!     const SUMMARY: &'static str = "The sum of two numbers.";
//!     type Params = (i64, i64);
//!     type Result = i64;
//! }
//!
//! /// `ui.confirm`: the server asks the user a yes/no question.
//! pub struct Confirm;
//! impl ClientMethod for Confirm {
//!     const NAME: &'static str = "ui.confirm";
//!     type Params = (String,);
//!     type Result = bool;
//! }
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! pub struct ChatMessage {
//!     /// Who wrote it.
//!     pub from: String,
//!     pub text: String,
//! }
//!
//! /// `chat.message`: pushed to the users a message is for.
//! pub struct Message;
//! impl Push for Message {
//!     const NAME: &'static str = "chat.message";
//!     type Params = ChatMessage;
//! }
//! ```

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::ErrorObject;
use crate::codes;

/// A method clients call on the gateway: its name, the types of its params
/// and result, and what `rpc.discover` says of it.
pub trait Method: 'static {
    /// The JSON-RPC method name (never `rpc.*`, which is the gateway's own).
    const NAME: &'static str;
    /// One line on what it does.
    const SUMMARY: &'static str = "";
    /// The error codes it may answer, besides the protocol's own.
    const ERRORS: &'static [i32] = &[];
    /// The names of a tuple's params, in order (by default their indexes).
    const PARAM_NAMES: &'static [&'static str] = &[];
    /// A struct (by name), a tuple (by position) or `()` (none).
    type Params: Serialize + DeserializeOwned + JsonSchema + Send + 'static;
    /// What it answers.
    type Result: Serialize + DeserializeOwned + JsonSchema + Send + 'static;
}

/// A method the server calls on clients (`"x-switchboard-direction":
/// "client"` in `rpc.discover`).
pub trait ClientMethod: 'static {
    /// The JSON-RPC method name (never `rpc.*`).
    const NAME: &'static str;
    /// One line on what it does.
    const SUMMARY: &'static str = "";
    /// The error codes a client may answer.
    const ERRORS: &'static [i32] = &[];
    /// The names of a tuple's params, in order (by default their indexes).
    const PARAM_NAMES: &'static [&'static str] = &[];
    /// A struct (by name), a tuple (by position) or `()` (none).
    type Params: Serialize + DeserializeOwned + JsonSchema + Send + 'static;
    /// What the client answers.
    type Result: Serialize + DeserializeOwned + JsonSchema + Send + 'static;
}

/// A notification the server pushes to clients (`"x-switchboard-direction":
/// "client"` and no result in `rpc.discover`).
pub trait Push: 'static {
    /// The JSON-RPC method name (never `rpc.*`).
    const NAME: &'static str;
    /// One line on what it says.
    const SUMMARY: &'static str = "";
    /// The names of a tuple's params, in order (by default their indexes).
    const PARAM_NAMES: &'static [&'static str] = &[];
    /// A struct (by name) or a tuple (by position).
    type Params: Serialize + DeserializeOwned + JsonSchema + Send + 'static;
}

/// Params parsed as `T`, as both ends parse a typed method's params: see
/// [`parse_lenient`]. A failure is `-32602` with serde's `reason` in its
/// `data`.
pub fn parse_params<T: DeserializeOwned>(params: Option<&str>) -> Result<T, ErrorObject> {
    parse_lenient(params).map_err(|e| ErrorObject::with_data(codes::INVALID_PARAMS, json!({ "reason": e.to_string() })))
}

/// Params parsed as `T`: absent params parse as `null`, and so do empty
/// ones (`[]`, `{}`) when `T` does not take them, so that `()` and
/// `Option<T>` take "no params" in whatever shape the other end sends it.
pub fn parse_lenient<T: DeserializeOwned>(params: Option<&str>) -> serde_json::Result<T> {
    let text = params.unwrap_or("null");
    serde_json::from_str(text).or_else(|e| match text.trim() {
        "[]" | "{}" => serde_json::from_str("null").map_err(|_| e),
        _ => Err(e),
    })
}

/// Params as a request carries them: serialised, and absent when they
/// serialise to `null` (`()`, `None`), since JSON-RPC params are an array
/// or an object.
pub fn encode_params<P: Serialize + ?Sized>(params: &P) -> serde_json::Result<Option<Box<RawValue>>> {
    let raw = serde_json::value::to_raw_value(params)?;
    Ok((raw.get() != "null").then_some(raw))
}

/// Which way an entry goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Clients call it on the gateway.
    Server,
    /// The server calls it on clients, or pushes it to them.
    Client,
}

/// One descriptor as `rpc.discover` lists it: its name, its direction and
/// how to write its entry.
#[derive(Clone, Copy)]
pub struct Described {
    name: &'static str,
    direction: Direction,
    entry: fn(&mut SchemaGenerator) -> Value,
}

impl std::fmt::Debug for Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Described")
            .field("name", &self.name)
            .field("direction", &self.direction)
            .finish_non_exhaustive()
    }
}

impl Described {
    /// A method clients call.
    pub fn method<M: Method>() -> Self {
        Self {
            name: M::NAME,
            direction: Direction::Server,
            entry: |g| {
                let result = Some(result::<M::Result>(g));
                entry::<M::Params>(g, (M::NAME, M::PARAM_NAMES), M::SUMMARY, result, M::ERRORS, None)
            },
        }
    }

    /// A method the server calls on clients.
    pub fn client_method<M: ClientMethod>() -> Self {
        Self {
            name: M::NAME,
            direction: Direction::Client,
            entry: |g| {
                let result = Some(result::<M::Result>(g));
                let names = (M::NAME, M::PARAM_NAMES);
                entry::<M::Params>(g, names, M::SUMMARY, result, M::ERRORS, Some(Direction::Client))
            },
        }
    }

    /// A notification the server pushes.
    pub fn push<P: Push>() -> Self {
        Self {
            name: P::NAME,
            direction: Direction::Client,
            entry: |g| {
                let names = (P::NAME, P::PARAM_NAMES);
                entry::<P::Params>(g, names, P::SUMMARY, None, &[], Some(Direction::Client))
            },
        }
    }

    /// The method's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Which way it goes.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Its OpenRPC method entry; the schemas it refers to are added to
    /// `generator`'s definitions.
    pub fn entry(&self, generator: &mut SchemaGenerator) -> Value {
        (self.entry)(generator)
    }
}

fn result<R: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    json!({"name": "result", "schema": schema_for::<R>(generator)})
}

/// `T`'s schema as it appears where it is used: a reference to its
/// definition, or inline in the generator's dialect (the generator applies
/// its dialect's transforms to definitions only when they are taken).
pub(crate) fn schema_for<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    let schema = generator.subschema_for::<T>();
    in_dialect(generator, schema)
}

fn in_dialect(generator: &mut SchemaGenerator, mut schema: Schema) -> Value {
    for transform in generator.transforms_mut() {
        transform.transform(&mut schema);
    }
    schema.to_value()
}

/// An OpenRPC method entry for params of type `P`.
fn entry<P: JsonSchema>(
    generator: &mut SchemaGenerator,
    (name, param_names): (&str, &[&str]),
    summary: &str,
    result: Option<Value>,
    errors: &[i32],
    direction: Option<Direction>,
) -> Value {
    let schema = schema_for::<P>(generator);
    let (structure, params) = descriptors(generator, schema, param_names);
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    if !summary.is_empty() {
        m.insert("summary".into(), json!(summary));
    }
    m.insert("paramStructure".into(), json!(structure));
    m.insert("params".into(), Value::Array(params));
    if let Some(result) = result {
        m.insert("result".into(), result);
    }
    if !errors.is_empty() {
        let errors = errors
            .iter()
            .map(|c| json!({"code": c, "message": codes::message_for(*c)}))
            .collect();
        m.insert("errors".into(), Value::Array(errors));
    }
    if direction == Some(Direction::Client) {
        m.insert("x-switchboard-direction".into(), json!("client"));
    }
    Value::Object(m)
}

/// The content descriptors of params with this schema, and how they are
/// sent: a struct's properties by name, a tuple's items by position (named
/// `names[i]`, else by their index), `()` as none. Other types (a map, a list of any length,
/// any JSON) cannot be spelled as content descriptors: they are one
/// by-position descriptor, `params`, holding the whole value.
pub(crate) fn descriptors(
    generator: &mut SchemaGenerator,
    schema: Value,
    names: &[&str],
) -> (&'static str, Vec<Value>) {
    let definition = schema["$ref"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .and_then(|name| generator.definitions().get(name).cloned())
        .and_then(|d| Schema::try_from(d).ok())
        .map_or(schema, |d| in_dialect(generator, d));
    if let Some(props) = definition["properties"].as_object() {
        let required: Vec<&str> = definition["required"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let params = props
            .iter()
            .map(|(key, schema)| descriptor(key, required.contains(&key.as_str()), schema))
            .collect();
        return ("by-name", params);
    }
    if definition["type"] == "null" {
        return ("by-name", Vec::new());
    }
    if let Some(items) = definition["items"].as_array() {
        let min = definition["minItems"].as_u64().unwrap_or(items.len() as u64);
        let params = items
            .iter()
            .enumerate()
            .map(|(i, schema)| {
                let name = names.get(i).map_or_else(|| i.to_string(), |n| (*n).to_owned());
                descriptor(&name, (i as u64) < min, schema)
            })
            .collect();
        return ("by-position", params);
    }
    ("by-position", vec![descriptor("params", true, &definition)])
}

/// One content descriptor; a schema's description becomes the descriptor's.
fn descriptor(name: &str, required: bool, schema: &Value) -> Value {
    let mut d = Map::new();
    d.insert("name".into(), json!(name));
    let mut schema = schema.clone();
    if let Some(desc) = schema.as_object_mut().and_then(|o| o.remove("description")) {
        d.insert("description".into(), desc);
    }
    // Draft 7 wraps a described reference as `allOf: [{$ref}]`; with the
    // description moved to the descriptor, the reference stands alone again.
    if let Some(only) = schema
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("allOf"))
        .and_then(Value::as_array)
        .filter(|all| all.len() == 1)
    {
        schema = only[0].clone();
    }
    d.insert("required".into(), json!(required));
    d.insert("schema".into(), schema);
    Value::Object(d)
}

#[cfg(test)]
mod tests {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use super::{ClientMethod, Described, Method, Push, parse_params};

    #[derive(Serialize, Deserialize, JsonSchema)]
    struct Greet {
        /// Whom to greet.
        name: String,
        #[serde(default)]
        loud: Option<bool>,
    }

    struct Hello;
    impl Method for Hello {
        const NAME: &'static str = "hello";
        const SUMMARY: &'static str = "Greets.";
        const ERRORS: &'static [i32] = &[-32602];
        type Params = Greet;
        type Result = String;
    }

    struct Add;
    impl Method for Add {
        const NAME: &'static str = "add";
        const PARAM_NAMES: &'static [&'static str] = &["a"];
        type Params = (i64, i64);
        type Result = i64;
    }

    struct Now;
    impl ClientMethod for Now {
        const NAME: &'static str = "clock.now";
        type Params = ();
        type Result = u64;
    }

    struct Greeted;
    impl Push for Greeted {
        const NAME: &'static str = "greeted";
        type Params = Greet;
    }

    fn entry(d: Described) -> serde_json::Value {
        d.entry(&mut crate::openrpc::generator())
    }

    #[test]
    fn a_struct_is_by_name_with_its_descriptions_and_errors() {
        let e = entry(Described::method::<Hello>());
        assert_eq!(e["paramStructure"], "by-name");
        assert_eq!(e["summary"], "Greets.");
        assert_eq!(
            e["params"][1],
            json!({"name": "name", "description": "Whom to greet.", "required": true, "schema": {"type": "string"}})
        );
        assert_eq!(e["params"][0]["name"], "loud");
        assert_eq!(e["params"][0]["required"], false);
        assert_eq!(e["result"]["schema"], json!({"type": "string"}));
        assert_eq!(e["errors"], json!([{"code": -32602, "message": "Invalid params"}]));
        assert!(e.get("x-switchboard-direction").is_none());
    }

    #[test]
    fn a_tuple_is_by_position_and_unit_is_no_params() {
        let e = entry(Described::method::<Add>());
        assert_eq!(e["paramStructure"], "by-position");
        assert_eq!(e["params"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            (&e["params"][0]["name"], &e["params"][1]["name"]),
            (&json!("a"), &json!("1"))
        );
        let e = entry(Described::client_method::<Now>());
        assert_eq!(e["params"], json!([]));
        assert_eq!(e["x-switchboard-direction"], "client");
        assert!(e.get("result").is_some());
    }

    #[test]
    fn a_push_has_no_result() {
        let e = entry(Described::push::<Greeted>());
        assert_eq!(e["x-switchboard-direction"], "client");
        assert!(e.get("result").is_none());
    }

    #[test]
    fn params_parse_like_the_wire() {
        assert_eq!(parse_params::<(i64, i64)>(Some("[1,2]")).ok(), Some((1, 2)));
        assert!(parse_params::<()>(None).is_ok());
        assert!(parse_params::<()>(Some("[]")).is_ok());
        assert!(parse_params::<()>(Some("{}")).is_ok());
        let err = parse_params::<(i64, i64)>(Some(r#"["a",2]"#)).err().map(|e| e.code);
        assert_eq!(err, Some(-32602));
        let err = parse_params::<Greet>(Some("{}")).err();
        assert!(err.is_some_and(|e| {
            e.data
                .is_some_and(|d| d["reason"].as_str().is_some_and(|r| r.contains("name")))
        }));
    }
}
