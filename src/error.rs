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
    /// 408: the body did not arrive in time (docs/contract.md §4: 10 s after the headers).
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// 404: no such thing.
    #[error("{0}")]
    NotFound(&'static str),
    /// 502: Meta or Shopify failed or could not be reached.
    #[error("{0}")]
    BadGateway(String),
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
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.render(false)
    }
}

impl ApiError {
    /// The error as JSON `{"error": ...}`, or as a small HTML page for browsers.
    pub fn render(&self, html: bool) -> HttpResponse {
        if let ApiError::Unexpected(cause) = self {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        let status = self.status_code();
        if html {
            let body = crate::html::html_page(
                "pagesync",
                &format!(
                    "<h1>{}</h1><p id=\"error\">{}</p><p><a href=\"/\">Back to pagesync</a></p>",
                    status.as_u16(),
                    crate::html::escape(&self.to_string())
                ),
            );
            HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body)
        } else {
            HttpResponse::build(status).json(serde_json::json!({ "error": self.to_string() }))
        }
    }
}
