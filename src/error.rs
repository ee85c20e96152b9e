//! The one error type HTTP handlers return, and its mapping to status codes.
//!
//! Clients see a short message in `{"error": "..."}`; the log sees the whole cause
//! chain of unexpected errors. No variant carries a secret or a request body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or not acceptable as it is.
    #[error("{0}")]
    BadRequest(String),
    /// 401: a signature or credential is missing or wrong.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: the request is understood and refused.
    #[error("forbidden")]
    Forbidden,
    /// 413: the body is larger than allowed.
    #[error("body larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 503: pagesync is saturated or stopping; try again.
    #[error("{0}")]
    Unavailable(&'static str),
    /// 500: a bug or a broken store; details go to the log only.
    #[error("unexpected error")]
    Unexpected(#[source] anyhow::Error),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Unexpected(cause) = self {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        HttpResponse::build(self.status_code()).json(serde_json::json!({ "error": self.to_string() }))
    }
}
