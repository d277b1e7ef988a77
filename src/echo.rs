//! `keygate-echo`: an upstream that answers every request with 200 and what it saw, as JSON
//! `{"upstream", "method", "path", "query", "headers"}` (SPEC §1). A request header
//! `x-echo-status: N` makes it answer with status N instead. Used by the quick start, the tests,
//! docker-compose and the benchmarks.

use std::collections::BTreeMap;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

#[derive(Serialize)]
struct Seen {
    upstream: String,
    method: String,
    path: String,
    query: String,
    headers: BTreeMap<String, String>,
}

/// Serves the echo on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, name: String) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(move |request: Request| {
        let name = name.clone();
        async move { answer(&name, &request) }
    });
    axum::serve(listener, app).await
}

fn answer(name: &str, request: &Request) -> impl IntoResponse {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers.entry(key.as_str().to_owned()).and_modify(|v| *v = format!("{v}, {value}")).or_insert(value);
    }
    let status = headers
        .get("x-echo-status")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let seen = Seen {
        upstream: name.to_owned(),
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().unwrap_or_default().to_owned(),
        headers,
    };
    (status, Json(seen))
}
