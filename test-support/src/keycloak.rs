//! The shared Keycloak started by `cargo xtask test`, and logging in at it like a browser.
//!
//! `cargo xtask test` starts one Keycloak 26 per run with the realms of `deploy/keycloak`
//! (`mytest`, and `upstream-idp` brokered into it as the identity provider `upstream`) and
//! exports where it is. [`keycloak()`] reads that; it panics when the variables are missing
//! (run `cargo xtask test`, or `cargo xtask keycloak` and export what it prints): a test that
//! needs Keycloak never skips.
//!
//! Host names: Keycloak's frontend URL is `http://keycloak.example.com:<port>` (the seed's
//! host name), and that is the issuer's origin: `iss` of every token is
//! `http://keycloak.example.com:<port>/realms/mytest`. Nothing resolves keycloak.example.com:
//! clients map it to `127.0.0.1:<port>` ([`Keycloak::client_builder`] does so for reqwest;
//! curl: `--resolve keycloak.example.com:<port>:127.0.0.1`; Chromium:
//! `--host-resolver-rules="MAP *.example.com 127.0.0.1"`).
//!
//! HTTPS: Keycloak also listens on `https://127.0.0.1:<port>` ([`Keycloak::https`]) with a
//! certificate from a CA that `cargo xtask` made for the run (no system store trusts it). The
//! imported realms keep their `http://keycloak.example.com` issuer there; a test that logs in
//! over HTTPS creates a realm whose issuer is on the HTTPS listener
//! ([`Keycloak::create_https_realm`]).
//!
//! Tests share the one Keycloak and run in parallel: log in with a fresh client (cookie jar)
//! per user, and never change the imported realms; a test that needs other realm settings
//! creates its own realm ([`Keycloak::create_realm`]).
//!
//! ```no_run
//! # async fn demo() {
//! use test_support::keycloak::{ALICE, keycloak, login_at_keycloak};
//! let kc = keycloak();
//! let browser = kc.http_client();
//! // GET the relying party's start URL, take its Location (Keycloak's authorize URL), then:
//! let callback = login_at_keycloak(&browser, "<authorize url>", ALICE.username, ALICE.password).await;
//! # }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::Value;
use url::Url;

use crate::form_walk::{self, Outcome, Site, Step, form_action, walk};
use crate::html;

/// Keycloak's frontend base URL, `http://keycloak.example.com:<port>`. Set by `cargo xtask test`.
pub const URL_ENV: &str = "OIDC_AUTHZ_KEYCLOAK_URL";
/// Where Keycloak listens, `127.0.0.1:<port>`. Set by `cargo xtask test`.
pub const ADDR_ENV: &str = "OIDC_AUTHZ_KEYCLOAK_ADDR";
/// Keycloak's HTTPS listener, `https://127.0.0.1:<port>`. Set by `cargo xtask test`.
pub const HTTPS_URL_ENV: &str = "OIDC_AUTHZ_KEYCLOAK_HTTPS_URL";
/// The CA certificate (PEM) that signs the HTTPS listener's certificate. Set by `cargo xtask test`.
pub const CA_FILE_ENV: &str = "OIDC_AUTHZ_KEYCLOAK_CA_FILE";
/// Master realm admin user. Set by `cargo xtask test`.
pub const ADMIN_USER_ENV: &str = "OIDC_AUTHZ_KEYCLOAK_ADMIN_USER";
/// Master realm admin password. Set by `cargo xtask test`.
pub const ADMIN_PASSWORD_ENV: &str = "OIDC_AUTHZ_KEYCLOAK_ADMIN_PASSWORD";

/// The seed's host name for Keycloak.
pub const HOSTNAME: &str = "keycloak.example.com";
/// The seed's realm.
pub const REALM: &str = "mytest";
/// The realm standing in for Google/GitHub, brokered into [`REALM`].
pub const UPSTREAM_REALM: &str = "upstream-idp";
/// Alias of the identity provider in [`REALM`] (`kc_idp_hint=upstream`).
pub const IDP_ALIAS: &str = "upstream";
/// The confidential client of the seed (oauth2-proxy's `--client-id=nginx`).
pub const CLIENT_ID: &str = "nginx";
/// Its secret, fixed in `deploy/keycloak/realm-mytest.json` (tests and demo only).
pub const CLIENT_SECRET: &str = "nginx-client-secret-for-tests-only";

/// A user of the imported realms (see `deploy/keycloak/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestUser {
    /// The realm the user is defined in.
    pub realm: &'static str,
    /// Login name (also `preferred_username`).
    pub username: &'static str,
    /// Password (not temporary).
    pub password: &'static str,
    /// `email`.
    pub email: &'static str,
    /// `email_verified`.
    pub email_verified: bool,
    /// `given_name`.
    pub first_name: &'static str,
    /// `family_name`.
    pub last_name: &'static str,
    /// `groups` claim in [`REALM`]'s tokens (group names, no path), sorted.
    pub groups: &'static [&'static str],
    /// Realm roles (`realm_access.roles` also has Keycloak's defaults), sorted.
    pub realm_roles: &'static [&'static str],
    /// Roles of the `nginx` client (`resource_access.nginx.roles`), sorted.
    pub client_roles: &'static [&'static str],
}

/// Admin of the applications: groups admins + users, realm roles admin + user, client roles
/// editor + viewer.
pub const ALICE: TestUser = TestUser {
    realm: REALM,
    username: "alice",
    password: "alice-password",
    email: "alice@example.com",
    email_verified: true,
    first_name: "Alice",
    last_name: "Admin",
    groups: &["admins", "users"],
    realm_roles: &["admin", "user"],
    client_roles: &["editor", "viewer"],
};

/// A plain user: group users, realm role user, client role viewer.
pub const BOB: TestUser = TestUser {
    realm: REALM,
    username: "bob",
    password: "bob-password",
    email: "bob@example.com",
    email_verified: true,
    first_name: "Bob",
    last_name: "User",
    groups: &["users"],
    realm_roles: &["user"],
    client_roles: &["viewer"],
};

/// A user whose email is not verified (`email_verified: false`).
pub const DAVE: TestUser = TestUser {
    realm: REALM,
    username: "dave",
    password: "dave-password",
    email: "dave@example.com",
    email_verified: false,
    first_name: "Dave",
    last_name: "Unverified",
    groups: &["users"],
    realm_roles: &["user"],
    client_roles: &[],
};

/// The user of the upstream realm, signing in to [`REALM`] through the broker. On first login
/// Keycloak creates the user `carol` in [`REALM`] (email trusted, group users, realm role user
/// by the identity provider's mappers).
pub const CAROL: TestUser = TestUser {
    realm: UPSTREAM_REALM,
    username: "carol",
    password: "carol-password",
    email: "carol@upstream.example.org",
    email_verified: true,
    first_name: "Carol",
    last_name: "Brokered",
    groups: &["users"],
    realm_roles: &["user"],
    client_roles: &[],
};

/// The shared Keycloak of this test run.
#[derive(Debug, Clone)]
pub struct Keycloak {
    /// Frontend base URL, `http://keycloak.example.com:<port>` (no trailing slash).
    pub base_url: String,
    /// Where it listens: `127.0.0.1:<port>` (the port of `base_url` unless Keycloak's frontend
    /// is behind a proxy).
    pub addr: SocketAddr,
    /// `<base_url>/realms/mytest`: the issuer of [`REALM`], equal to the tokens' `iss`.
    pub issuer: String,
    /// `<base_url>/realms/upstream-idp`.
    pub upstream_issuer: String,
    /// [`CLIENT_ID`].
    pub client_id: String,
    /// [`CLIENT_SECRET`].
    pub client_secret: String,
    /// Master realm admin user name.
    pub admin_user: String,
    /// Master realm admin password.
    pub admin_password: String,
}

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: this test needs the Keycloak that `cargo xtask test` starts; \
             run `cargo xtask test` (or `cargo xtask keycloak` in another shell and export \
             what it prints)"
        ),
    }
}

/// The Keycloak started by `cargo xtask test`, from its environment. Panics when it is not
/// set ("run `cargo xtask test`").
pub fn keycloak() -> Keycloak {
    let base_url = required_env(URL_ENV).trim_end_matches('/').to_owned();
    let addr_text = required_env(ADDR_ENV);
    let addr: SocketAddr = addr_text
        .parse()
        .unwrap_or_else(|e| panic!("{ADDR_ENV}={addr_text:?} is not an address: {e}"));
    // The frontend URL may go through a proxy (another port); `addr` is Keycloak itself.
    Url::parse(&base_url).unwrap_or_else(|e| panic!("{URL_ENV}={base_url:?}: {e}"));
    Keycloak {
        issuer: format!("{base_url}/realms/{REALM}"),
        upstream_issuer: format!("{base_url}/realms/{UPSTREAM_REALM}"),
        base_url,
        addr,
        client_id: CLIENT_ID.to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        admin_user: required_env(ADMIN_USER_ENV),
        admin_password: required_env(ADMIN_PASSWORD_ENV),
    }
}

/// Keycloak's HTTPS listener ([`Keycloak::https`]).
#[derive(Debug, Clone)]
pub struct KeycloakHttps {
    /// `https://127.0.0.1:<port>` (no trailing slash); the certificate is for `127.0.0.1` and
    /// `localhost`.
    pub base_url: String,
    /// The CA certificate (PEM) that signs it: what `--provider-ca-file` is given.
    pub ca_file: PathBuf,
}

impl KeycloakHttps {
    /// A client like [`Keycloak::http_client`] (cookie jar, no automatic redirects, 30 s
    /// timeout) that trusts the run's CA, so it can walk Keycloak's pages over HTTPS; `hosts`
    /// are mapped to 127.0.0.1 (the relying party's host names).
    pub fn browser(&self, hosts: &[&str]) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let pem = std::fs::read(&self.ca_file)
            .unwrap_or_else(|e| panic!("{CA_FILE_ENV}={}: {e}", self.ca_file.display()));
        let ca = reqwest::Certificate::from_pem(&pem)
            .unwrap_or_else(|e| panic!("{CA_FILE_ENV}={}: {e}", self.ca_file.display()));
        hosts
            .iter()
            .fold(reqwest::Client::builder(), |b, host| {
                b.resolve(host, SocketAddr::from(([127, 0, 0, 1], 0)))
            })
            .add_root_certificate(ca)
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("build reqwest client")
    }
}

impl Keycloak {
    /// Keycloak's HTTPS listener, from the environment `cargo xtask test` sets; panics when it
    /// is not set.
    pub fn https(&self) -> KeycloakHttps {
        let base_url = required_env(HTTPS_URL_ENV).trim_end_matches('/').to_owned();
        Url::parse(&base_url).unwrap_or_else(|e| panic!("{HTTPS_URL_ENV}={base_url:?}: {e}"));
        KeycloakHttps {
            base_url,
            ca_file: required_env(CA_FILE_ENV).into(),
        }
    }

    /// Creates a copy of [`REALM`] (same users, clients and secrets) named `<prefix>-<random>`
    /// whose frontend URL is the HTTPS listener, and returns its issuer,
    /// `https://127.0.0.1:<port>/realms/<name>`: discovery over HTTPS then names HTTPS
    /// endpoints only, and tokens carry that issuer.
    pub async fn create_https_realm(&self, prefix: &str) -> String {
        let https = self.https();
        let mut realm = self.mytest_realm_json();
        let name = format!("{prefix}-{:016x}", rand::random::<u64>());
        realm["realm"] = Value::from(name.as_str());
        realm["displayName"] = Value::from(name.as_str());
        realm["attributes"]["frontendUrl"] = Value::from(https.base_url.as_str());
        self.create_realm(&realm).await;
        format!("{}/realms/{name}", https.base_url)
    }

    /// `http://keycloak.example.com:<port>/realms/<realm>`.
    pub fn realm_url(&self, realm: &str) -> String {
        format!("{}/realms/{realm}", self.base_url)
    }

    /// [`REALM`]'s discovery document URL.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// `<issuer>/protocol/openid-connect/<endpoint>` of [`REALM`] (`auth`, `token`, `certs`,
    /// `userinfo`, `logout`).
    pub fn endpoint(&self, endpoint: &str) -> String {
        format!("{}/protocol/openid-connect/{endpoint}", self.issuer)
    }

    /// The Keycloak host name without port (`keycloak.example.com`).
    pub fn host(&self) -> String {
        Url::parse(&self.base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| HOSTNAME.to_owned())
    }

    /// A reqwest builder that maps Keycloak's host name to 127.0.0.1 (add `.resolve(...)` for
    /// more hosts, e.g. `nginx.example.com`), with a 30 s timeout.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        // reqwest is built without a default rustls provider in this workspace.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .resolve(&self.host(), SocketAddr::new(self.addr.ip(), 0))
            .timeout(Duration::from_secs(30))
    }

    /// A client like a browser's for [`login_at_keycloak`]: a cookie jar, no automatic
    /// redirects, Keycloak's host name mapped to 127.0.0.1. One per user: the jar holds the
    /// Keycloak session.
    pub fn http_client(&self) -> reqwest::Client {
        self.client_builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("build reqwest client")
    }

    /// [`REALM`]'s discovery document.
    pub async fn discovery(&self) -> Value {
        let url = self.discovery_url();
        get_json(self.http_client().get(&url), &url).await
    }

    /// Exchanges an authorization code at [`REALM`]'s token endpoint as the `nginx` client
    /// (client_secret_basic) and returns the token response; panics unless it is 200.
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str, verifier: &str) -> Value {
        let response = self
            .http_client()
            .post(self.endpoint("token"))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap_or_else(|e| panic!("token request to Keycloak failed: {e}"));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::OK, "code exchange failed: {body}");
        body
    }

    /// A master realm admin access token (admin-cli, password grant; lives 60 s).
    pub async fn admin_token(&self) -> String {
        let response = self
            .client_builder()
            .build()
            .expect("build reqwest client")
            .post(format!(
                "{}/protocol/openid-connect/token",
                self.realm_url("master")
            ))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", self.admin_user.as_str()),
                ("password", self.admin_password.as_str()),
            ])
            .send()
            .await
            .unwrap_or_else(|e| panic!("admin token request failed: {e}"));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::OK, "admin token: {body}");
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("admin token response without access_token: {body}"))
            .to_owned()
    }

    /// `GET <base>/admin/realms/<path>` with an admin token; panics unless 200.
    pub async fn admin_get(&self, path: &str) -> Value {
        let url = format!(
            "{}/admin/realms/{}",
            self.base_url,
            path.trim_start_matches('/')
        );
        let client = self.client_builder().build().expect("build reqwest client");
        let token = self.admin_token().await;
        get_json(client.get(&url).bearer_auth(token), &url).await
    }

    /// Sends an admin request (`method` on `<base>/admin/realms/<path>`, optional JSON body)
    /// and returns the status and body text, whatever they are.
    pub async fn admin_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, String) {
        let url = format!(
            "{}/admin/realms/{}",
            self.base_url,
            path.trim_start_matches('/')
        )
        .trim_end_matches('/')
        .to_owned();
        let mut request = self
            .client_builder()
            .build()
            .expect("build reqwest client")
            .request(method.clone(), &url)
            .bearer_auth(self.admin_token().await);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url} failed: {e}"));
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }

    /// The user `username` of `realm` (admin representation), if it exists.
    pub async fn find_user(&self, realm: &str, username: &str) -> Option<Value> {
        let users = self
            .admin_get(&format!("{realm}/users?exact=true&username={username}"))
            .await;
        users.as_array().and_then(|u| u.first()).cloned()
    }

    /// The user sessions of `username` in `realm` (empty when the user does not exist).
    pub async fn user_sessions(&self, realm: &str, username: &str) -> Vec<Value> {
        let Some(user) = self.find_user(realm, username).await else {
            return Vec::new();
        };
        let id = user["id"].as_str().expect("user id");
        let sessions = self
            .admin_get(&format!("{realm}/users/{id}/sessions"))
            .await;
        sessions.as_array().cloned().unwrap_or_default()
    }

    /// The number of active user sessions of `client_id` in `realm`.
    pub async fn client_session_count(&self, realm: &str, client_id: &str) -> u64 {
        let clients = self
            .admin_get(&format!("{realm}/clients?clientId={client_id}"))
            .await;
        let id = clients[0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no client {client_id} in realm {realm}: {clients}"));
        let count = self
            .admin_get(&format!("{realm}/clients/{id}/session-count"))
            .await;
        count["count"].as_u64().unwrap_or(0)
    }

    /// The realm file `deploy/keycloak/realm-mytest.json` as JSON, with its placeholders
    /// filled in for this Keycloak: a starting point for [`Keycloak::create_realm`].
    pub fn mytest_realm_json(&self) -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/keycloak/realm-mytest.json"
        );
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        serde_json::from_str(&self.fill_placeholders(&text))
            .unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
    }

    /// Replaces `${OIDC_AUTHZ_KEYCLOAK_URL:...}` and `${OIDC_AUTHZ_KEYCLOAK_BACKCHANNEL_URL:...}`
    /// as Keycloak's import does.
    fn fill_placeholders(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${OIDC_AUTHZ_KEYCLOAK_") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').expect("closed placeholder");
            let name = after[..end].split(':').next().unwrap_or_default();
            match name {
                URL_ENV => out.push_str(&self.base_url),
                "OIDC_AUTHZ_KEYCLOAK_BACKCHANNEL_URL" => {
                    out.push_str(&format!("http://{}", self.addr));
                }
                other => panic!("unknown placeholder {other} in a realm file"),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Creates a realm from its JSON representation (for example [`Keycloak::mytest_realm_json`]
    /// with another `realm` name and changed settings), for a test that needs settings of its
    /// own. Panics unless Keycloak answers 201. The realm stays until Keycloak stops (each
    /// `cargo xtask test` run starts from the realm files): use a unique name.
    pub async fn create_realm(&self, realm: &Value) {
        let (status, body) = self
            .admin_send(reqwest::Method::POST, "", Some(realm))
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "creating realm {}: {body}",
            realm["realm"]
        );
    }
}

impl Keycloak {
    /// An access token of `user` from `realm` for the `nginx` client ([`CLIENT_ID`]), by
    /// [`Keycloak::code_flow_tokens`]: a login of its own, so a Keycloak session (`sid`) of its
    /// own.
    pub async fn access_token(&self, realm: &str, user: &TestUser) -> String {
        let tokens = self
            .code_flow_tokens(
                realm,
                CLIENT_ID,
                &self.client_secret,
                "http://127.0.0.1:1/oauth2/callback",
                user,
            )
            .await;
        tokens["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("Keycloak's token response has no access_token: {tokens}"))
            .to_owned()
    }

    /// The tokens of `user` from realm `realm` for the confidential client `client_id`, by the
    /// authorization code flow with PKCE S256 as a browser runs it: GETs the realm's
    /// authorization endpoint, fills in Keycloak's login form, takes the `code` from the
    /// redirect to `redirect_uri`, and exchanges it (client_secret_basic). Returns the token
    /// response. For clients without the password grant, e.g. `nginx` of [`REALM`], or
    /// `mytest-broker` of [`UPSTREAM_REALM`] with its broker endpoint as `redirect_uri`:
    /// `redirect_uri` is never requested, so it may be on Keycloak's own origin. Uses a fresh
    /// client (no Keycloak session); panics with the page's text unless each step succeeds.
    pub async fn code_flow_tokens(
        &self,
        realm: &str,
        client_id: &str,
        client_secret: &str,
        redirect_uri: &str,
        user: &TestUser,
    ) -> Value {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use sha2::{Digest, Sha256};

        let what = format!("code flow for {} at realm {realm}", user.username);
        let browser = self.http_client();
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let state = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let oidc = format!("{}/protocol/openid-connect", self.realm_url(realm));
        let mut authorize = Url::parse(&format!("{oidc}/auth")).expect("authorization URL");
        authorize
            .query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", &state)
            .append_pair(
                "code_challenge",
                &URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            )
            .append_pair("code_challenge_method", "S256");

        let mut submitted = false;
        let outcome = walk(
            &browser,
            &KEYCLOAK,
            &what,
            authorize.as_str(),
            Some(redirect_uri),
            |page, body| {
                if submitted {
                    panic!("{}", explain(page, body, &what));
                }
                submitted = true;
                let step = login_form(&what, page, body, user.username, user.password);
                Some(step.unwrap_or_else(|| panic!("{}", explain(page, body, &what))))
            },
        )
        .await;
        let back = match outcome {
            Outcome::Left(url) if url.as_str().starts_with(redirect_uri) => url,
            Outcome::Left(url) => panic!("{what}: left Keycloak for {url}, not {redirect_uri}"),
            Outcome::Page { url, body } => panic!("{}", explain(&url, &body, &what)),
        };
        let param = |name: &str| {
            back.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if let Some(error) = param("error") {
            panic!("{what}: Keycloak answered error {error:?}: {back}");
        }
        assert_eq!(
            param("state").as_deref(),
            Some(state.as_str()),
            "{what}: {back}"
        );
        let code = param("code").unwrap_or_else(|| panic!("{what}: no code in {back}"));

        let response = browser
            .post(format!("{oidc}/token"))
            .basic_auth(client_id, Some(client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: token request failed: {e}"));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            status,
            StatusCode::OK,
            "{what}: code exchange failed: {body}"
        );
        body
    }
}

/// Sends `request`, a GET of `url`, and returns the JSON it answers; panics unless 200.
async fn get_json(request: reqwest::RequestBuilder, url: &str) -> Value {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"))
}

/// Keycloak, for [`walk`].
const KEYCLOAK: Site = Site {
    name: "Keycloak",
    max_steps: 25,
    send_hint: |url| {
        format!(
            " (is {} mapped to 127.0.0.1? use Keycloak::http_client)",
            url.host_str().unwrap_or_default()
        )
    },
    page_hint,
};

/// Walks Keycloak's pages from `start` (see [`walk`]), letting `on_page` choose the next step
/// on each, until a redirect leaves Keycloak's origin (returned); panics with the page's text
/// should `on_page` return None.
async fn drive(
    client: &reqwest::Client,
    start: &str,
    what: &str,
    on_page: impl FnMut(&Url, &str) -> Option<Step>,
) -> String {
    match walk(client, &KEYCLOAK, what, start, None, on_page).await {
        Outcome::Left(url) => url.into(),
        Outcome::Page { url, body } => panic!(
            "{what}: stuck at {url}: {}",
            html::text_excerpt(&body, 1500)
        ),
    }
}

/// Keycloak's username/password form (`kc-form-login`) on a page, filled in.
fn login_form(what: &str, page: &Url, body: &str, username: &str, password: &str) -> Option<Step> {
    let forms = html::forms(body);
    let form = forms
        .iter()
        .find(|f| f.method == "post" && f.has_input("username") && f.has_input("password"))?;
    let mut fields: Vec<(String, String)> = form
        .inputs
        .iter()
        .filter(|i| i.kind != "submit" && i.kind != "checkbox")
        .map(|i| (i.name.clone(), i.value.clone()))
        .collect();
    for (name, value) in &mut fields {
        match name.as_str() {
            "username" => *value = username.to_owned(),
            "password" => *value = password.to_owned(),
            _ => {}
        }
    }
    Some(Step::Post(form_action(what, page, form), fields))
}

/// The `href` of the link to identity provider `alias` on a Keycloak login page
/// (`<a id="social-<alias>" href="/realms/<realm>/broker/<alias>/login?...">`).
pub fn identity_provider_link(page: &Url, body: &str, alias: &str) -> Option<Url> {
    let id = format!("id=\"social-{alias}\"");
    let at = body.find(&id)?;
    let tag_start = body[..at].rfind('<')?;
    let tag_end = at + body[at..].find('>')?;
    let tag = &body[tag_start..tag_end];
    let href_at = tag.find("href=\"")? + "href=\"".len();
    let href = &tag[href_at..href_at + tag[href_at..].find('"')?];
    page.join(&html::decode_entities(href)).ok()
}

/// What kind of Keycloak page this is, when that explains why a walk stopped there, or "".
fn page_hint(body: &str) -> &'static str {
    let forms = html::forms(body);
    let ids: Vec<&str> = forms.iter().filter_map(|f| f.id.as_deref()).collect();
    if ids.contains(&"kc-update-profile-form") || ids.contains(&"kc-idp-review-profile-form") {
        " (a profile page: the first broker login or a required action wants more user data)"
    } else if body.contains("kc-form-login") {
        " (the login form again: wrong credentials?)"
    } else {
        ""
    }
}

/// A page Keycloak shows instead of the expected form: say which and why.
fn explain(page: &Url, body: &str, what: &str) -> String {
    format!(
        "{what}: unexpected Keycloak page {page}{}: {}",
        page_hint(body),
        html::text_excerpt(body, 1500)
    )
}

/// Logs in at Keycloak the way a browser would, with a client from [`Keycloak::http_client`].
///
/// GETs `authorize_url` (Keycloak's authorization endpoint with the relying party's
/// parameters; or a URL of the relying party that redirects there), follows redirects on
/// Keycloak's origin, fills in Keycloak's real login form (its action URL taken from the HTML)
/// with `username` and `password`, and returns the first redirect `Location` that leaves
/// Keycloak without following it: normally the relying party's callback URL with `code`,
/// `state`, `session_state` and `iss` (or with `error`). Panics with the page's text on
/// anything else (wrong password, a required action, an error page).
///
/// If the client's cookie jar already holds a Keycloak session, no form is shown and the
/// session's user is used: take a fresh client for another user.
pub async fn login_at_keycloak(
    client: &reqwest::Client,
    authorize_url: &str,
    username: &str,
    password: &str,
) -> String {
    let mut submitted = false;
    let start = keycloak_entry(client, authorize_url).await;
    let start = match start {
        Entry::Keycloak(url) => url,
        Entry::Left(location) => return location,
    };
    let what = "login at keycloak";
    drive(client, &start, what, |page, body| {
        if !submitted && let Some(step) = login_form(what, page, body, username, password) {
            submitted = true;
            return Some(step);
        }
        panic!("{}", explain(page, body, what));
    })
    .await
}

/// Logs in through the identity provider `idp_alias` of the realm (for the imported realms:
/// [`IDP_ALIAS`] = the `upstream-idp` realm) with a client from [`Keycloak::http_client`], and
/// returns the redirect back to the relying party like [`login_at_keycloak`].
///
/// Works both with `kc_idp_hint=<alias>` in the authorize URL (Keycloak goes straight to the
/// provider) and without (then it clicks the provider's link on the realm's login page). Fills
/// in the provider's login form with `username` and `password`; the realm is configured so
/// that the first broker login shows no profile page (the provider's email is trusted and
/// complete): such a page fails the login with its text.
pub async fn login_via_broker(
    client: &reqwest::Client,
    authorize_url: &str,
    idp_alias: &str,
    username: &str,
    password: &str,
) -> String {
    let start = match keycloak_entry(client, authorize_url).await {
        Entry::Keycloak(url) => url,
        Entry::Left(location) => return location,
    };
    let broker_path = format!("/broker/{idp_alias}/");
    let mut clicked = false;
    let mut submitted = false;
    let what = "login via broker";
    drive(client, &start, what, |page, body| {
        // The realm's own login page: follow the provider's link (once).
        if !clicked
            && !page.path().contains(&broker_path)
            && let Some(link) = identity_provider_link(page, body, idp_alias)
        {
            clicked = true;
            return Some(Step::Get(link));
        }
        // The provider's login page.
        if !submitted && let Some(step) = login_form(what, page, body, username, password) {
            submitted = true;
            return Some(step);
        }
        panic!("{}", explain(page, body, what));
    })
    .await
}

enum Entry {
    /// A URL on Keycloak to start driving at.
    Keycloak(String),
    /// The relying party answered without sending the client to Keycloak.
    Left(String),
}

/// Resolves a start URL that may be the relying party's (which redirects to Keycloak) to the
/// first URL on Keycloak's origin, following the relying party's redirects (at most 5).
async fn keycloak_entry(client: &reqwest::Client, start: &str) -> Entry {
    let mut url = Url::parse(start).unwrap_or_else(|e| panic!("bad URL {start:?}: {e}"));
    for _ in 0..5 {
        if url.path().starts_with("/realms/") {
            return Entry::Keycloak(url.into());
        }
        let response = client
            .get(url.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
        let Some(location) = response
            .status()
            .is_redirection()
            .then(|| response.headers().get(LOCATION))
            .flatten()
            .and_then(|v| v.to_str().ok())
        else {
            return Entry::Left(url.into());
        };
        url = url
            .join(location)
            .unwrap_or_else(|e| panic!("bad Location {location:?} from {url}: {e}"));
    }
    panic!("more than 5 redirects from {start} before reaching Keycloak");
}

/// RP-initiated logout at Keycloak with a client from [`Keycloak::http_client`]: GETs
/// `end_session_url` (the end_session_endpoint with `id_token_hint`,
/// `post_logout_redirect_uri`, `state`...), confirms Keycloak's "Do you want to log out?"
/// form should it appear (it does without `id_token_hint`), and returns the redirect that
/// leaves Keycloak (the `post_logout_redirect_uri`), or the URL of Keycloak's final page
/// ("You are logged out") when there is none.
pub async fn logout_at_keycloak(client: &reqwest::Client, end_session_url: &str) -> String {
    form_walk::logout(
        client,
        &KEYCLOAK,
        "logout at keycloak",
        end_session_url,
        "confirmLogout",
        &[],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_identity_provider_link() {
        let page = Url::parse(
            "http://keycloak.example.com:1/realms/mytest/protocol/openid-connect/auth?x=1",
        )
        .unwrap();
        let body = r#"<li><a data-once-link id="social-upstream"
              type="button" href="/realms/mytest/broker/upstream/login?client_id=nginx&amp;tab_id=T&amp;session_code=S">
              <span>Upstream IdP</span></a></li>"#;
        assert_eq!(
            identity_provider_link(&page, body, "upstream")
                .unwrap()
                .as_str(),
            "http://keycloak.example.com:1/realms/mytest/broker/upstream/login?client_id=nginx&tab_id=T&session_code=S"
        );
        assert!(identity_provider_link(&page, body, "other").is_none());
    }

    #[test]
    fn fills_placeholders() {
        let kc = Keycloak {
            base_url: "http://keycloak.example.com:9".into(),
            addr: "127.0.0.1:9".parse().unwrap(),
            issuer: String::new(),
            upstream_issuer: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            admin_user: String::new(),
            admin_password: String::new(),
        };
        assert_eq!(
            kc.fill_placeholders(
                r#"{"a": "${OIDC_AUTHZ_KEYCLOAK_URL:http://x:1}/r", "b": "${OIDC_AUTHZ_KEYCLOAK_BACKCHANNEL_URL}/t", "c": "${keep}"}"#
            ),
            r#"{"a": "http://keycloak.example.com:9/r", "b": "http://127.0.0.1:9/t", "c": "${keep}"}"#
        );
    }

    #[test]
    fn the_test_users_match_the_realm_file() {
        let text = include_str!("../../deploy/keycloak/realm-mytest.json");
        let realm: Value = serde_json::from_str(text).unwrap();
        for user in [ALICE, BOB, DAVE] {
            let rep = realm["users"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["username"] == user.username)
                .unwrap_or_else(|| panic!("{} not in realm-mytest.json", user.username));
            assert_eq!(rep["email"], user.email);
            assert_eq!(rep["emailVerified"], user.email_verified);
            assert_eq!(rep["credentials"][0]["value"], user.password);
            let mut groups: Vec<String> = rep["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g.as_str().unwrap().trim_start_matches('/').to_owned())
                .collect();
            groups.sort();
            assert_eq!(groups, user.groups);
        }
        let client = realm["clients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["clientId"] == CLIENT_ID)
            .unwrap();
        assert_eq!(client["secret"], CLIENT_SECRET);
        let upstream: Value = serde_json::from_str(include_str!(
            "../../deploy/keycloak/realm-upstream-idp.json"
        ))
        .unwrap();
        assert_eq!(upstream["users"][0]["username"], CAROL.username);
        assert_eq!(
            upstream["users"][0]["credentials"][0]["value"],
            CAROL.password
        );
        assert_eq!(upstream["users"][0]["email"], CAROL.email);
    }
}
