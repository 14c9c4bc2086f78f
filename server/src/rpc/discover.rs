//! The document `rpc.discover` answers: the gateway's OpenRPC document, with
//! the application's methods added: the typed ones and the client-direction
//! declarations with their schemas, the others by name.

use serde_json::value::RawValue;

use crate::rpc::table::MethodTable;

pub(crate) fn document(methods: &MethodTable) -> Box<RawValue> {
    let mut untyped: Vec<&str> = methods.untyped().collect();
    untyped.sort_unstable();
    let doc = switchboard_protocol::openrpc::document_with(methods.described(), &untyped);
    serde_json::value::to_raw_value(&doc).expect("a JSON value always serialises")
}
