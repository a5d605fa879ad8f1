//! The web dashboard: `GET /ui` serves a single page whose files are
//! compiled into the binary (`crates/swimnet/ui/`), so it works on a host
//! without internet access; and `GET /v1/networks/{nid}/tables`, the one
//! figure the page needs that no other endpoint gives (which tables a
//! network holds).
//!
//! The page reads the JSON API with `fetch` and follows
//! `GET /v1/events?format=sse` for live changes; it changes nothing in the
//! cluster unless the user confirms an action. Its files pass the API's
//! guard like every request (Host and Origin rules); a configured token
//! is not needed to load them (see [`crate::http_guard::is_dashboard_asset`]),
//! but every request the page makes carries it: open
//! `http://API/ui#token=TOKEN` (kept in the tab's session storage).
//!
//! Every answer has a Content-Security-Policy that allows scripts, styles,
//! images and connections only from the agent itself.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::api::{ask, ApiError, ApiState};
use crate::commands::{Command, TableCommand, TableReply};

/// The policy every dashboard file is served with: nothing from anywhere
/// but the agent, no inline scripts, no framing, no form posts.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One file of the page: its path under `/ui`, type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The page's files. `include_bytes!` puts them in the binary.
const ASSETS: &[Asset] = &[
    Asset {
        path: "",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../ui/index.html"),
    },
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../ui/app.js"),
    },
    Asset {
        path: "views.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../ui/views.js"),
    },
    Asset {
        path: "overlays.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../ui/overlays.js"),
    },
    Asset {
        path: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../ui/app.css"),
    },
    Asset {
        path: "vendor/uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../ui/vendor/uplot/uPlot.iife.min.js"),
    },
    Asset {
        path: "vendor/uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../ui/vendor/uplot/uPlot.min.css"),
    },
];

/// Total bytes of the page's files (what a browser downloads, uncompressed).
pub fn page_size() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum()
}

/// The dashboard's routes, merged into [`crate::api::router`] (before its
/// guard).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/ui", get(page))
        .route("/ui/", get(page))
        .route("/ui/*file", get(file))
        .route("/v1/networks/:nid/tables", get(tables))
}

fn serve(asset: &Asset) -> Response {
    let mut resp = (StatusCode::OK, asset.body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn page() -> Response {
    serve(&ASSETS[0])
}

async fn file(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| !a.path.is_empty() && a.path == file) {
        Some(a) => serve(a),
        None => ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no dashboard file {:?}",
                crate::escape::esc(&file).to_string()
            ),
        )
        .into_response(),
    }
}

/// One table of `GET /v1/networks/{nid}/tables`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableCountView {
    /// Table name.
    pub table: String,
    /// Live entries (entries of failed owners included until reaped).
    pub entries: u64,
}

/// `GET /v1/networks/{nid}/tables`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TablesView {
    /// Network ID.
    pub network: String,
    /// Tables with live entries, by name.
    pub tables: Vec<TableCountView>,
}

async fn tables(
    State(state): State<ApiState>,
    Path(nid): Path<String>,
) -> Result<Json<TablesView>, ApiError> {
    let table = |cmd| async {
        ask(&state, |tx| Command::Table(cmd, tx))
            .await?
            .map_err(crate::api::table_error)
    };
    table(TableCommand::CheckAttached(nid.clone())).await?;
    match table(TableCommand::TableCounts(nid.clone())).await? {
        TableReply::TableCounts(ts) => Ok(Json(TablesView {
            network: nid,
            tables: ts
                .into_iter()
                .map(|(table, n)| TableCountView {
                    table,
                    entries: n as u64,
                })
                .collect(),
        })),
        _ => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected answer from the driver".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_served_with_its_type_and_the_policy() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{}", a.path);
            let r = serve(a);
            assert_eq!(r.headers()[header::CONTENT_TYPE], a.content_type);
            assert_eq!(
                r.headers()[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
        }
        // The page names no host but its own: no http(s) URL in the
        // page's own files (the vendored library is checked by the
        // browser test, which sees every request the page makes).
        for a in ASSETS.iter().filter(|a| !a.path.starts_with("vendor/")) {
            // The SVG namespace is a name, not a place anything is fetched from.
            let text = std::str::from_utf8(a.body)
                .unwrap()
                .replace("\"http://www.w3.org/2000/svg\"", "");
            assert!(!text.contains("http://"), "{}", a.path);
            assert!(!text.contains("https://"), "{}", a.path);
        }
        assert!(page_size() < 200 * 1024, "{}", page_size());
    }
}
