//! The answers the engine gives when it cannot go on: a store or a provider that cannot be
//! reached (503, never an allow).

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};

use crate::decision::{Decision, Deny, DenyReason};
use crate::http::pages;
use crate::http::request;

pub(crate) fn deny(reason: DenyReason, response: Response<Bytes>) -> Decision {
    Decision::Deny(Box::new(Deny { reason, response }))
}

pub(crate) fn unavailable_page(message: &str) -> Response<Bytes> {
    pages::html(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        &format!("<p>{}</p>", pages::escape_html(message)),
    )
}

/// The session store is unreachable: 503, never an allow.
pub(crate) fn store_unavailable(parts: &Parts) -> Decision {
    let response = if request::is_navigation(parts) {
        unavailable_page(
            "The session store cannot be reached right now. Please try again in a moment.",
        )
    } else {
        pages::json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the session store cannot be reached",
        )
    };
    deny(DenyReason::Unavailable, response)
}

pub(crate) fn unavailable() -> Decision {
    deny(
        DenyReason::Unavailable,
        pages::html(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in unavailable",
            "<p>The identity provider cannot be reached right now. Please try again in a moment.</p>",
        ),
    )
}
