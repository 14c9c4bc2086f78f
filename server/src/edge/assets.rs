//! The gateway's own pages, embedded in the binary: the live dashboard at `/`,
//! the chat demo at `/demo`, and under `/assets/` their scripts, their style
//! sheet and the browser build of the TypeScript client
//! (`/assets/switchboard-client.js`, an ES module).
//!
//! The files live in `server/assets/`. They are built from `web-client/` by
//! `npm run build` and committed, so `cargo run` serves them on a machine
//! without Node; a web-client test rebuilds them and fails if a byte differs,
//! and the browser tests check that the running binary serves these bytes.
//!
//! The pages are static: the dashboard reads its numbers from the server API
//! (`POST /api`) and connects to `/ws` like any other client.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::GatewayShared;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Everything under `/assets/`, by file name.
const ASSETS: &[Asset] = &[
    Asset {
        name: "switchboard-client.js",
        content_type: JS,
        body: include_str!("../../assets/switchboard-client.js"),
    },
    Asset {
        name: "dashboard.js",
        content_type: JS,
        body: include_str!("../../assets/dashboard.js"),
    },
    Asset {
        name: "demo.js",
        content_type: JS,
        body: include_str!("../../assets/demo.js"),
    },
    Asset {
        name: "style.css",
        content_type: CSS,
        body: include_str!("../../assets/style.css"),
    },
];

const DASHBOARD: Asset = Asset {
    name: "dashboard.html",
    content_type: HTML,
    body: include_str!("../../assets/dashboard.html"),
};

const DEMO: Asset = Asset {
    name: "demo.html",
    content_type: HTML,
    body: include_str!("../../assets/demo.html"),
};

/// Routes for the gateway's own pages.
pub(crate) fn router() -> Router<Arc<GatewayShared>> {
    Router::new()
        .route("/", get(|| async { serve(&DASHBOARD) }))
        .route("/demo", get(|| async { serve(&DEMO) }))
        .route("/assets/{name}", get(asset))
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => serve(a),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

fn serve(asset: &'static Asset) -> Response {
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // The names carry no content hash, so browsers must revalidate: a new
    // binary serves new files under the same names.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_refers_only_to_embedded_assets() {
        for page in [&DASHBOARD, &DEMO] {
            for part in page.body.split("assets/").skip(1) {
                let name: String = part.chars().take_while(|c| *c != '"').collect();
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "{} refers to assets/{name}, which is not embedded",
                    page.name
                );
            }
        }
    }

    #[test]
    fn scripts_import_the_embedded_client() {
        for a in ASSETS
            .iter()
            .filter(|a| a.name != "switchboard-client.js" && a.content_type == JS)
        {
            assert!(a.body.contains("from \"./switchboard-client.js\""), "{}", a.name);
        }
    }
}
