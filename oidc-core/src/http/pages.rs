//! The small responses the engine writes itself: redirects, JSON errors, HTML pages.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn base(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Bytes> {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `302 Found` to `location`.
pub(crate) fn redirect(location: &str) -> Response<Bytes> {
    let mut r = base(StatusCode::FOUND, "text/html; charset=utf-8", Bytes::new());
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A JSON error: `{"error": code, "message": message}`.
pub(crate) fn json_error(status: StatusCode, code: &str, message: &str) -> Response<Bytes> {
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    base(status, "application/json", body)
}

/// JSON body with status 200 (or another).
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Bytes> {
    base(status, "application/json", value.to_string())
}

/// A minimal HTML page.
pub(crate) fn html(status: StatusCode, title: &str, body_html: &str) -> Response<Bytes> {
    let page = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>{t}</h1>{body_html}</body></html>",
        t = escape_html(title)
    );
    base(status, "text/html; charset=utf-8", page)
}

/// The sign-in page with one button to the provider.
pub(crate) fn sign_in(status: StatusCode, start_url: &str) -> Response<Bytes> {
    html(
        status,
        "Sign in",
        &format!(
            "<p>You need to sign in to continue.</p><p><a href=\"{}\" style=\"padding:.6em 1.2em;background:#2563eb;color:#fff;border-radius:4px;text-decoration:none\">Sign in with OpenID Connect</a></p>",
            escape_html(start_url)
        ),
    )
}
