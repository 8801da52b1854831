//! `docs/openapi.yaml` cannot drift from the code: its operations are exactly the route table
//! the router matches on (`http::ROUTES`, every path with every method), its error codes are
//! exactly the outcome table's HTTP codes (`OutcomeCode::spec`) plus the router's own
//! (`http::ROUTER_ERRORS`), each answered under the status those tables give it, and the server
//! serves the document at `GET /openapi.json`.

mod server_support;

use std::collections::{BTreeMap, BTreeSet};

use flashsale_core::types::OutcomeCode;
use flashsale_server::http::{ROUTER_ERRORS, ROUTES};
use flashsale_server::openapi;
use hyper::{Method, StatusCode};
use serde_json::Value;
use server_support::{Http, config, start};

/// The methods an OpenAPI path item may name.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_slice(openapi::JSON).expect("the served document is JSON")
}

/// `value`, or what its `$ref` (`#/a/b`) points at.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local reference");
            let target = document
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{reference} points at nothing"));
            resolve(document, target)
        }
        None => value,
    }
}

/// Every documented response: (method, path, status, the response object).
fn responses(document: &Value) -> Vec<(String, String, String, &Value)> {
    let mut all = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            for (status, response) in operation["responses"].as_object().expect("responses") {
                all.push((
                    method.to_uppercase(),
                    path.clone(),
                    status.clone(),
                    resolve(document, response),
                ));
            }
        }
    }
    all
}

/// The error codes a response's JSON body may carry: the `enum` that narrows `Error`'s
/// `error` in an `allOf`.
fn error_codes(document: &Value, response: &Value) -> Option<Vec<String>> {
    let schema = resolve(
        document,
        response.pointer("/content/application~1json/schema")?,
    );
    let parts = schema["allOf"].as_array()?;
    let is_error = parts
        .iter()
        .any(|part| part["$ref"] == "#/components/schemas/Error");
    let codes = parts
        .iter()
        .find_map(|part| part.pointer("/properties/error/enum"))?;
    assert!(is_error, "an `error` enum outside the Error schema");
    Some(
        codes
            .as_array()
            .expect("an enum is a list")
            .iter()
            .map(|code| code.as_str().expect("codes are strings").to_owned())
            .collect(),
    )
}

/// Every code HTTP answers with, and its status: from the outcome table and the router.
fn http_error_codes() -> BTreeMap<String, u16> {
    OutcomeCode::ALL
        .into_iter()
        .filter_map(|code| Some((code.as_str().to_owned(), code.http_status()?)))
        .chain(
            ROUTER_ERRORS
                .into_iter()
                .map(|(code, status)| (code.to_owned(), status)),
        )
        .collect()
}

#[test]
fn the_documented_operations_are_the_route_table() {
    let document = document();
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .into_iter()
                .filter(|method| item.get(*method).is_some())
                .map(|method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .flat_map(|route| {
            route
                .methods
                .iter()
                .map(|method| (method.to_string(), route.path.to_owned()))
        })
        .collect();
    assert_eq!(documented, routed);
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS.into_iter().filter(|m| item.get(*m).is_some()) {
            assert!(
                item[method]["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
        }
    }
}

#[test]
fn the_documented_error_codes_are_the_outcome_table() {
    let document = document();
    let expected = http_error_codes();
    let enumerated: BTreeSet<String> = document["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode is an enum")
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        enumerated,
        expected.keys().cloned().collect::<BTreeSet<_>>(),
        "components.schemas.ErrorCode"
    );

    let mut answered = BTreeSet::new();
    for (method, path, status, response) in responses(&document) {
        let Some(codes) = error_codes(&document, response) else {
            continue;
        };
        for code in codes {
            let table = expected
                .get(&code)
                .unwrap_or_else(|| panic!("{method} {path} {status}: unknown code {code}"));
            assert_eq!(
                table.to_string(),
                status,
                "{method} {path}: {code} is answered with {table}"
            );
            answered.insert(code);
        }
    }
    // Every code of the outcome table that HTTP sends is documented on some operation.
    for code in OutcomeCode::ALL
        .into_iter()
        .filter(|code| code.http_status().is_some())
    {
        assert!(
            answered.contains(code.as_str()),
            "no operation documents {}",
            code.as_str()
        );
    }
}

#[test]
fn documented_headers_follow_the_status() {
    let document = document();
    for (method, path, status, response) in responses(&document) {
        let required = |name: &str| {
            response["headers"][name]["required"] == true
                || resolve(&document, &response["headers"][name])["required"] == true
        };
        let has_body = response.get("content").is_some();
        match status.as_str() {
            "201" => assert!(required("Location"), "{method} {path} 201 without Location"),
            "401" => assert!(
                required("WWW-Authenticate"),
                "{method} {path} 401 without WWW-Authenticate"
            ),
            "503" if has_body && path != "/healthz" => {
                assert!(
                    required("Retry-After"),
                    "{method} {path} 503 without Retry-After"
                )
            }
            _ => {}
        }
        assert_eq!(
            has_body,
            method != "HEAD",
            "{method} {path} {status}: a HEAD answer has no body, every other one has"
        );
    }
}

#[tokio::test]
async fn the_server_serves_the_document() {
    let server = start(config()).await;
    let http = Http::new(server.http_addr);
    let answer = http.get("/openapi.json").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(&answer.body[..], openapi::JSON);
    assert_eq!(answer.json()["openapi"], "3.1.0");
    let head = http
        .send(Method::HEAD, "/openapi.json", None, bytes::Bytes::new())
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    let post = http.post("/openapi.json", "{}").await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers["allow"], "GET,HEAD");
    server.shutdown().await;
}
