//! Walking a provider's pages the way a browser does: follow redirects on the provider's
//! origin, let the caller fill in a form (or follow a link) on each page, and stop at the
//! first redirect that leaves the provider. Shared by the node provider's
//! ([`crate::login_at_provider`]) and Keycloak's ([`crate::keycloak::login_at_keycloak`]) helpers.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use url::Url;

use crate::html;

/// How much of a page's text a panic message quotes.
const EXCERPT: usize = 1500;

/// The provider being walked, for the limits and the panic messages.
pub(crate) struct Site {
    /// How messages name it: `the provider`, `Keycloak`.
    pub name: &'static str,
    /// The most requests one walk makes.
    pub max_steps: usize,
    /// Added to the message of a request that fails (e.g. a host name that is not mapped).
    pub send_hint: fn(&Url) -> String,
    /// Added after the status of an unexpected page: what kind of page it is, or "".
    pub page_hint: fn(&str) -> &'static str,
}

/// The next request.
pub(crate) enum Step {
    /// Follow a link.
    Get(Url),
    /// Submit a form (url-encoded).
    Post(Url, Vec<(String, String)>),
}

impl Step {
    fn url(&self) -> &Url {
        match self {
            Step::Get(url) | Step::Post(url, _) => url,
        }
    }
}

/// What a walk ended with.
pub(crate) enum Outcome {
    /// A redirect off the start's origin (or to the `stop_at` prefix), not followed.
    Left(Url),
    /// A page (200, HTML) on which `on_page` chose no next step.
    Page { url: Url, body: String },
}

/// GETs `start`, follows redirects while they stay on its origin, and hands every page to
/// `on_page` (its URL and HTML), which chooses the next step: a form to post (on the same
/// origin only) or a link to follow. Ends at the first redirect that leaves the origin or
/// whose URL starts with `stop_at`, or at a page where `on_page` returns None.
///
/// Panics, the message starting with `what` and naming the method, URL and status (with an
/// excerpt of the page), on a failed request, a redirect without a usable `Location`, a page
/// that is not a 200 HTML page, a form posting to another origin, or more than
/// `site.max_steps` requests.
pub(crate) async fn walk(
    client: &reqwest::Client,
    site: &Site,
    what: &str,
    start: &str,
    stop_at: Option<&str>,
    mut on_page: impl FnMut(&Url, &str) -> Option<Step>,
) -> Outcome {
    let start = Url::parse(start).unwrap_or_else(|e| panic!("{what}: bad URL {start:?}: {e}"));
    let origin = start.origin();
    let mut step = Step::Get(start);
    for _ in 0..site.max_steps {
        let (method, url, request) = match &step {
            Step::Get(url) => ("GET", url.clone(), client.get(url.clone())),
            Step::Post(url, fields) => ("POST", url.clone(), client.post(url.clone()).form(fields)),
        };
        let response = request.send().await.unwrap_or_else(|e| {
            panic!(
                "{what}: {method} {url} failed: {e}{}",
                (site.send_hint)(&url)
            )
        });
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{what}: {method} {url} -> {status} without Location"));
            let next = url.join(location).unwrap_or_else(|e| {
                panic!("{what}: {method} {url} -> {status} with bad Location {location:?}: {e}")
            });
            if next.origin() != origin || stop_at.is_some_and(|s| next.as_str().starts_with(s)) {
                return Outcome::Left(next);
            }
            step = Step::Get(next);
            continue;
        }
        let is_html = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        let body = response.text().await.unwrap_or_default();
        if status != StatusCode::OK || !is_html {
            panic!(
                "{what}: {method} {url} -> unexpected {status}{}: {}",
                (site.page_hint)(&body),
                html::text_excerpt(&body, EXCERPT)
            );
        }
        match on_page(&url, &body) {
            Some(Step::Post(target, _)) if target.origin() != origin => panic!(
                "{what}: {url} has a form posting to another origin ({target}); \
                 response_mode=form_post is not supported here"
            ),
            Some(next) => step = next,
            None => return Outcome::Page { url, body },
        }
    }
    panic!(
        "{what}: more than {} steps at {}, the next one {}",
        site.max_steps,
        site.name,
        step.url()
    );
}

/// RP-initiated logout: walks from `end_session_url`, confirming the provider's "sign out?"
/// form (the POST form with an input named `marker`, submitted with `extra` fields added) at
/// most once, and returns the first redirect that leaves the provider (the
/// `post_logout_redirect_uri`), or, when there is none, the URL of its final page.
pub(crate) async fn logout(
    client: &reqwest::Client,
    site: &Site,
    what: &str,
    end_session_url: &str,
    marker: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut confirmed = false;
    let outcome = walk(client, site, what, end_session_url, None, |page, body| {
        let forms = html::forms(body);
        let form = forms
            .iter()
            .find(|f| f.method == "post" && f.has_input(marker))?;
        if confirmed {
            panic!("{what}: the logout confirmation form was shown again at {page}");
        }
        confirmed = true;
        let mut fields = form_fields(form);
        fields.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Some(Step::Post(form_action(what, page, form), fields))
    })
    .await;
    match outcome {
        Outcome::Left(url) | Outcome::Page { url, .. } => url.into(),
    }
}

/// Where `form` on `page` posts to (its `action`, resolved against the page).
pub(crate) fn form_action(what: &str, page: &Url, form: &html::Form) -> Url {
    let action = form.action.as_deref().unwrap_or("");
    page.join(action)
        .unwrap_or_else(|e| panic!("{what}: form on {page} has a bad action {action:?}: {e}"))
}

/// All named inputs of `form` with their values, as a browser would submit them unchanged.
pub(crate) fn form_fields(form: &html::Form) -> Vec<(String, String)> {
    form.inputs
        .iter()
        .map(|i| (i.name.clone(), i.value.clone()))
        .collect()
}
