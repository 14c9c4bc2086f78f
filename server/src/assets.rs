//! Pages and static assets served by the gateway.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;

use crate::gateway::GatewayShared;

/// Routes for the gateway's own pages.
pub(crate) fn router() -> Router<Arc<GatewayShared>> {
    Router::new().route("/", get(index))
}

async fn index(State(shared): State<Arc<GatewayShared>>) -> Html<String> {
    let registry = shared.hub.registry();
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>switchboard</title>\
         <h1>switchboard</h1><p>A JSON-RPC 2.0 gateway, both directions.</p>\
         <ul><li>WebSocket: <code>/ws</code> (subprotocol <code>switchboard.v1</code>)</li>\
         <li>HTTP JSON-RPC: <code>POST /rpc</code></li><li><a href=/metrics>/metrics</a></li>\
         <li><a href=/healthz>/healthz</a></li></ul>\
         <p>Node <code>{}</code>: {} sessions, {} users, {} topics.</p>",
        shared.hub.node(),
        registry.session_count(),
        registry.user_count(),
        registry.topic_count()
    ))
}
