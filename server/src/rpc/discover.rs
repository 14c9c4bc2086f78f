//! The document `rpc.discover` answers: the gateway's OpenRPC document, with
//! the application's methods added by name.

use serde_json::value::RawValue;

use crate::rpc::table::MethodTable;

pub(crate) fn document(methods: &MethodTable) -> Box<RawValue> {
    let mut doc = switchboard_protocol::openrpc::document();
    let mut names: Vec<&str> = methods.names().collect();
    names.sort_unstable();
    if let Some(list) = doc.get_mut("methods").and_then(|m| m.as_array_mut()) {
        for name in names {
            list.push(serde_json::json!({
                "name": name,
                "description": "An application method.",
                "params": [],
                "result": {"name": "result", "schema": {}}
            }));
        }
    }
    serde_json::value::to_raw_value(&doc).expect("a JSON value always serialises")
}
