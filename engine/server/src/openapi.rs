//! The OpenAPI 3.1 document of the HTTP API, `docs/openapi.yaml`, served as JSON at
//! `GET /openapi.json`. The build script converts the YAML to JSON once, at build time, so
//! the server carries no YAML parser and a document that does not parse fails the build.
//! `tests/openapi_contract.rs` holds the document to the route table ([`crate::http::ROUTES`])
//! and to the outcome table; `tests/openapi_fuzz.rs` runs schemathesis against it.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};

use crate::http::Response;

/// `docs/openapi.yaml` as compact JSON.
pub const JSON: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// The `GET /openapi.json` answer.
pub(crate) fn response() -> Response {
    let mut response = Response::new(Full::new(Bytes::from_static(JSON)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
