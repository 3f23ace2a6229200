//! The 403 answers: what a signed-in user whom a rule refuses gets, as a page for a browser
//! navigation or JSON for an API call, and the bearer-token form.

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};

use crate::http::pages;
use crate::http::request;
use crate::policy::rule::Rule;

/// The 403 answer for a signed-in user whom `rule` refuses, naming what the rule
/// needs (`realm_role(admin) or group(admins)`) and never the user's own claims: an
/// HTML page for browser navigations, JSON (`{"error":"forbidden",...}`) for API calls.
#[must_use]
pub fn forbidden_for(parts: &Parts, rule: &Rule) -> Response<Bytes> {
    forbidden_needing(parts, &rule.to_string())
}

/// The 403 answer saying what is needed (`needs`: plain text, escaped here).
pub(crate) fn forbidden_needing(parts: &Parts, needs: &str) -> Response<Bytes> {
    if request::is_navigation(parts) {
        pages::html(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "<p>You are signed in, but this page needs <code>{}</code>, which your account lacks. Ask the application's administrator for access.</p>",
                pages::escape_html(needs)
            ),
        )
    } else {
        pages::json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("the signed-in user lacks what this needs: {needs}"),
        )
    }
}

/// The 403 answer for a signed-in user whom a rule refuses: an HTML page for
/// browser navigations, JSON (`{"error":"forbidden",...}`) for API calls.
/// [`forbidden_for`] also names what the rule needs.
#[must_use]
pub fn forbidden_response(parts: &Parts) -> Response<Bytes> {
    if request::is_navigation(parts) {
        pages::html(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "<p>You are signed in, but your account lacks the group or role this page needs.</p>",
        )
    } else {
        pages::json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the signed-in user lacks a required group or role",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    #[test]
    fn forbidden_answers_by_request_kind() {
        let nav = http::Request::get("/a")
            .header("accept", "text/html")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let api = http::Request::get("/a")
            .header("accept", "application/json")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let r = forbidden_response(&nav);
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let r = forbidden_response(&api);
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
