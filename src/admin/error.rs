//! THE table of admin API errors (SPEC §5): each [`AdminError`] has one status and one stable code,
//! rendered as problem+json with the request's id. Internal details are logged, never sent.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::problem::{Problem, CONTENT_TYPE};
use crate::registry::RegistryError;

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;

tokio::task_local! {
    /// The id of the admin request being handled (set by the request-id middleware).
    pub static REQUEST_ID: String;
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    BadRequest(String),
    #[error("a valid admin token is required: send Authorization: Bearer <token>")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("no such resource (or not visible to this token)")]
    NotFound,
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NameTaken(String),
    #[error("{0}")]
    KeyLimitReached(String),
    #[error("the key is already revoked")]
    AlreadyRevoked,
    #[error("{0}")]
    InvalidState(String),
    #[error("the request body is larger than 64 KiB")]
    PayloadTooLarge,
    #[error("some fields are not valid; see fields")]
    Validation(BTreeMap<String, String>),
    #[error("internal error; see the gateway log")]
    Internal(String),
}

impl AdminError {
    /// (status, code, title)
    fn describe(&self) -> (u16, &'static str, &'static str) {
        use AdminError::*;
        match self {
            BadRequest(_) => (400, "bad_request", "Bad request"),
            Unauthorized => (401, "unauthorized", "Unauthorized"),
            Forbidden(_) => (403, "forbidden", "Forbidden"),
            NotFound => (404, "not_found", "Not found"),
            MethodNotAllowed => (405, "method_not_allowed", "Method not allowed"),
            Conflict(_) => (409, "conflict", "Conflict"),
            NameTaken(_) => (409, "name_taken", "Name taken"),
            KeyLimitReached(_) => (409, "key_limit_reached", "Key limit reached"),
            AlreadyRevoked => (409, "already_revoked", "Already revoked"),
            InvalidState(_) => (409, "invalid_state", "Invalid state"),
            PayloadTooLarge => (413, "payload_too_large", "Payload too large"),
            Validation(_) => (422, "validation_failed", "Validation failed"),
            Internal(_) => (500, "internal_error", "Internal error"),
        }
    }

    /// One invalid field.
    pub fn field(name: &str, message: impl Into<String>) -> Self {
        AdminError::Validation(BTreeMap::from([(name.to_owned(), message.into())]))
    }
}

impl From<RegistryError> for AdminError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound => AdminError::NotFound,
            RegistryError::UnknownTenant(t) => {
                AdminError::field("tenant", format!("unknown tenant {t:?}; create it first"))
            }
            RegistryError::NameTaken(_) => AdminError::NameTaken(e.to_string()),
            RegistryError::KeyLimitReached { .. } => {
                AdminError::KeyLimitReached(format!("{e}; revoke a key or raise the limit"))
            }
            RegistryError::AlreadyRevoked => AdminError::AlreadyRevoked,
            RegistryError::InvalidState(..) => AdminError::InvalidState(e.to_string()),
            RegistryError::TenantExists(_) => AdminError::Conflict(e.to_string()),
            RegistryError::Store(e) => AdminError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        if let AdminError::Internal(detail) = &self {
            tracing::error!(%detail, "admin request failed");
        }
        let (status, code, title) = self.describe();
        let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
        let detail = self.to_string();
        let mut problem = Problem::new(status, code, title, &detail, &request_id);
        if let AdminError::Validation(fields) = &self {
            problem.fields = Some(fields);
        }
        let mut response =
            (http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR), problem.to_json())
                .into_response();
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(CONTENT_TYPE));
        if status == 401 {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static(r#"Bearer realm="keygate-admin""#),
            );
        }
        response
    }
}

/// A JSON request body, read (at most 64 KiB, else 413) but not yet parsed: handlers check who is
/// asking first, then call [`JsonBody::parse`], so a caller without the scope gets 403 whatever it
/// sent. Parse errors are 400 and name the problem, e.g. `unknown field "colour"`.
pub struct JsonBody<T> {
    bytes: axum::body::Bytes,
    shape: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> JsonBody<T> {
    pub fn parse(self) -> Result<T, AdminError> {
        if self.bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(AdminError::BadRequest("the request needs a JSON object body".into()));
        }
        parse_json(&self.bytes)
    }

    /// Like [`JsonBody::parse`], but an empty body means `T::default()` (all fields optional).
    pub fn parse_or_default(self) -> Result<T, AdminError>
    where
        T: Default,
    {
        if self.bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        parse_json(&self.bytes)
    }
}

impl<S: Send + Sync, T> FromRequest<S> for JsonBody<T> {
    type Rejection = AdminError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, AdminError> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| AdminError::PayloadTooLarge)?;
        Ok(JsonBody { bytes, shape: PhantomData })
    }
}

/// Query parameters, parsed after authorization like [`JsonBody`]: unknown names or malformed
/// values are a 400 that names them.
pub struct QueryParams<T> {
    query: String,
    shape: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> QueryParams<T> {
    pub fn parse(self) -> Result<T, AdminError> {
        serde_urlencoded::from_str(&self.query).map_err(|e| AdminError::BadRequest(format!("query parameters: {e}")))
    }
}

impl<S: Send + Sync, T> axum::extract::FromRequestParts<S> for QueryParams<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut http::request::Parts, _state: &S) -> Result<Self, AdminError> {
        Ok(QueryParams { query: parts.uri.query().unwrap_or_default().to_owned(), shape: PhantomData })
    }
}

/// The `{id}` of a key or tenant path. axum's `Path<String>` answers an id that is not UTF-8 once
/// percent-decoded (`/v1/keys/%FF`) with a plain-text 400 of its own, before the handler runs. Such an
/// id names nothing, so here it becomes `U+FFFD`, which no key or tenant id contains: the handler
/// checks the caller's scope and then answers 404 `not_found`, as for any other unknown id.
pub struct IdPath(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IdPath {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> Result<Self, AdminError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(IdPath(id)),
            Err(PathRejection::FailedToDeserializePathParams(e))
                if matches!(e.kind(), ErrorKind::InvalidUtf8InPathParam { .. }) =>
            {
                Ok(IdPath(char::REPLACEMENT_CHARACTER.to_string()))
            }
            Err(other) => Err(AdminError::Internal(format!("path {{id}} extraction: {other}"))),
        }
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    // serde's derived structs also accept a JSON array of the fields in order (`[null, 5]`); every
    // body of this API is an object, so anything else is refused before it reaches them.
    if bytes.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) != Some(&b'{') {
        return Err(AdminError::BadRequest("the body must be a JSON object, {...}".into()));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match path.as_str() {
            "." => AdminError::BadRequest(format!("the body is not a valid JSON object: {inner}")),
            _ => AdminError::BadRequest(format!("{path}: {inner}")),
        }
    })?;
    deserializer.end().map_err(|e| AdminError::BadRequest(format!("trailing data after the JSON object: {e}")))?;
    Ok(value)
}
