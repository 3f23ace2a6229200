//! Every oauth2-proxy v7 flag and what this adapter does with it: the one table of
//! oauth2-proxy's names (flag, config-file key, `OAUTH2_PROXY_*` variable).
//!
//! A flag the adapter implements has the same name and meaning ([`Support::Same`]). The others
//! are accepted as hidden arguments (command line, environment and `--config` file alike) and
//! then either ignored with one warning that says why ([`Support::Ignored`], and
//! [`Support::OnlyAs`] set to what the adapter always does), or they stop the start naming what
//! to do instead ([`Support::Refused`]). `docs/oauth2-proxy-flags.md` is [`markdown`]'s output;
//! a test keeps the two equal.

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

/// How an oauth2-proxy flag takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `--flag`, `--flag=true|false`, `--flag false`; a TOML boolean in the file.
    Bool,
    /// One value (string, number or Go duration); a TOML string or number in the file.
    Value,
    /// Repeatable (comma-separated in the environment); a TOML array in the file.
    List,
}

/// What the adapter does with an oauth2-proxy flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Implemented with oauth2-proxy's meaning; the text notes a difference ("" for none).
    Same(&'static str),
    /// Accepted and ignored, with one warning at start; the text says why that is harmless.
    Ignored(&'static str),
    /// Accepted (ignored, warned) only when set to `value`, what the adapter always does; any
    /// other value stops the start with `instead`.
    OnlyAs {
        /// The value that means the adapter's fixed behaviour.
        value: &'static str,
        /// What to do instead of any other value.
        instead: &'static str,
    },
    /// Stops the start (exit 2); the text says what to do instead.
    Refused(&'static str),
}

/// One oauth2-proxy v7 flag.
#[derive(Clone, Copy, Debug)]
pub struct Oauth2ProxyFlag {
    /// The flag without `--` (`email-domain`).
    pub flag: &'static str,
    /// Its key in oauth2-proxy's TOML config file (`email_domains`: list flags have plural
    /// keys), "" for flags the file cannot set (`--config`, `--version`, ...). The
    /// environment variable is `OAUTH2_PROXY_` and the key in upper case.
    pub key: &'static str,
    /// How it takes its value.
    pub kind: Kind,
    /// What the adapter does with it.
    pub support: Support,
}

impl Oauth2ProxyFlag {
    /// Its environment variable (`OAUTH2_PROXY_EMAIL_DOMAINS`), if the file has a key for it.
    #[must_use]
    pub fn env(&self) -> Option<String> {
        (!self.key.is_empty()).then(|| env_name(self.key))
    }
}

/// The environment variable of a config-file key, as oauth2-proxy names them.
#[must_use]
pub fn env_name(key: &str) -> String {
    format!("OAUTH2_PROXY_{}", key.to_ascii_uppercase())
}

const fn entry(
    flag: &'static str,
    key: &'static str,
    kind: Kind,
    support: Support,
) -> Oauth2ProxyFlag {
    Oauth2ProxyFlag {
        flag,
        key,
        kind,
        support,
    }
}

const LOGS: &str = "only oauth2-proxy's own log lines; the adapter logs to stderr, its level set by `RUST_LOG` and its format by `--log-format`";
const PAGES: &str = "only the look of oauth2-proxy's HTML pages; no decision depends on it";
const UPSTREAM: &str = "only changes the request oauth2-proxy proxies to an `--upstream`; the adapter proxies nothing (Envoy routes to the app, as with oauth2-proxy's `--upstream=static://200`, where this flag does nothing either)";
const OTHER_PROVIDER: &str = "a flag of another oauth2-proxy provider: use `--provider=oidc` (Keycloak) and restrict users with `--allowed-group`, `--allowed-role` or `--email-domain`";
const DISCOVERY: &str = "endpoints and keys always come from the issuer's discovery document (`<issuer>/.well-known/openid-configuration`): remove it, and make discovery reachable (`--resolve`, `--provider-ca-file`)";
const TLS: &str = "TLS ends at the gateway (or the mesh's mTLS): the adapter serves plain HTTP on `--http-address` and `--grpc-address`";
const PROBES: &str = "probe `/ping` (liveness) and `/ready` (readiness) with an IP address as `Host`, as the kubelet does";
const NOT_NAVIGATION: &str = "the adapter already answers 401 instead of a login redirect to every request that is not a browser navigation (`Sec-Fetch-Mode` other than `navigate`, `X-Requested-With`, a non-GET method, or `Accept: application/json` without `text/html`)";
const EMAIL_CLAIM: &str = "the address is always the `email` claim: map the attribute to `email` in Keycloak (a client mapper)";
const HTPASSWD: &str = "sign-in goes through the OpenID Connect provider only: create these users in Keycloak (or federate their store)";

use Kind::{Bool, List, Value};
use Support::{Ignored, OnlyAs, Refused, Same};

/// Every oauth2-proxy v7 flag (its legacy options and `main.go`'s), sorted by name.
pub const FLAGS: &[Oauth2ProxyFlag] = &[
    entry(
        "acr-values",
        "acr_values",
        Value,
        Refused("request it with `--auth-request-param=acr_values=VALUE`"),
    ),
    entry(
        "allow-query-semicolons",
        "allow_query_semicolons",
        Bool,
        Ignored(
            "Go's query parsing; the adapter splits query strings on `&` only, and its checks never read the query",
        ),
    ),
    entry("allowed-group", "allowed_groups", List, Same("")),
    entry("allowed-role", "allowed_roles", List, Same("")),
    entry(
        "alpha-config",
        "",
        Value,
        Refused(
            "the alpha (YAML) configuration is not read: use flags, `OAUTH2_PROXY_*` variables or `--config` with the TOML file",
        ),
    ),
    entry("api-route", "api_routes", List, Refused(NOT_NAVIGATION)),
    entry(
        "approval-prompt",
        "approval_prompt",
        Value,
        Ignored(
            "`approval_prompt` is not an OpenID Connect parameter (Keycloak ignores it); to ask for consent or a new login use `--auth-request-param=prompt=consent` or `prompt=login`",
        ),
    ),
    entry("auth-logging", "auth_logging", Bool, Ignored(LOGS)),
    entry(
        "auth-logging-format",
        "auth_logging_format",
        Value,
        Ignored(LOGS),
    ),
    entry(
        "auth-request-response-mode",
        "auth_request_response_mode",
        Value,
        Refused(
            "remove it: the callback reads the code from the query string (the default response mode)",
        ),
    ),
    entry(
        "authenticated-emails-file",
        "authenticated_emails_file",
        Value,
        Same(""),
    ),
    entry(
        "azure-graph-group-field",
        "azure_graph_group_field",
        Value,
        Refused(OTHER_PROVIDER),
    ),
    entry(
        "azure-tenant",
        "azure_tenant",
        Value,
        Refused(OTHER_PROVIDER),
    ),
    entry(
        "backend-logout-url",
        "backend_logout_url",
        Value,
        Refused(
            "use `--oidc-rp-initiated-logout`: sign-out then sends the browser to the provider's `end_session_endpoint`, which ends the provider session",
        ),
    ),
    entry("banner", "banner", Value, Ignored(PAGES)),
    entry(
        "basic-auth-password",
        "basic_auth_password",
        Value,
        Ignored(
            "used only by `--pass-basic-auth` (upstream requests) and `--set-basic-auth` (refused unless `false`): alone it does nothing",
        ),
    ),
    entry(
        "bearer-token-login-fallback",
        "bearer_token_login_fallback",
        Bool,
        Ignored(
            "with `--skip-jwt-bearer-tokens` an invalid bearer token always gets 401 `invalid_token` here: never a login redirect (`true`) nor 403 (`false`); every case denies",
        ),
    ),
    entry(
        "bitbucket-repository",
        "bitbucket_repository",
        Value,
        Refused(OTHER_PROVIDER),
    ),
    entry(
        "bitbucket-team",
        "bitbucket_team",
        Value,
        Refused(OTHER_PROVIDER),
    ),
    entry("client-id", "client_id", Value, Same("")),
    entry("client-secret", "client_secret", Value, Same("")),
    entry("client-secret-file", "client_secret_file", Value, Same("")),
    entry(
        "code-challenge-method",
        "code_challenge_method",
        Value,
        Same("only `S256`; PKCE is always on"),
    ),
    entry(
        "config",
        "",
        Value,
        Same(
            "reads oauth2-proxy's TOML file (keys as oauth2-proxy's); command line, then environment, then file",
        ),
    ),
    entry(
        "config-test",
        "",
        Bool,
        Refused(
            "run the adapter: it checks every flag at start and exits 2 naming the first problem",
        ),
    ),
    entry(
        "convert-config-to-alpha",
        "",
        Bool,
        Refused(
            "the alpha (YAML) configuration is not read: use flags, `OAUTH2_PROXY_*` variables or `--config` with the TOML file",
        ),
    ),
    entry(
        "cookie-csrf-expire",
        "cookie_csrf_expire",
        Value,
        Ignored(
            "a login flow's cookie lives 15 minutes here (oauth2-proxy's default); a longer value would only let slower logins finish",
        ),
    ),
    entry(
        "cookie-csrf-per-request",
        "cookie_csrf_per_request",
        Bool,
        Ignored(
            "each login flow always has its own cookie here (`<cookie-name>_csrf_<id>`), as oauth2-proxy with `true`",
        ),
    ),
    entry(
        "cookie-csrf-per-request-limit",
        "cookie_csrf_per_request_limit",
        Value,
        Ignored("at most 5 login flows per browser are kept here, the oldest dropped first"),
    ),
    entry(
        "cookie-csrf-samesite",
        "cookie_csrf_samesite",
        Value,
        Ignored(
            "the login-flow cookie takes the session cookie's attributes (`--cookie-samesite`)",
        ),
    ),
    entry("cookie-domain", "cookie_domains", List, Same("")),
    entry("cookie-expire", "cookie_expire", Value, Same("")),
    entry("cookie-httponly", "cookie_httponly", Bool, Same("")),
    entry("cookie-name", "cookie_name", Value, Same("")),
    entry("cookie-path", "cookie_path", Value, Same("")),
    entry("cookie-refresh", "cookie_refresh", Value, Same("")),
    entry("cookie-samesite", "cookie_samesite", Value, Same("")),
    entry(
        "cookie-secret",
        "cookie_secret",
        Value,
        Same("repeat (or comma-separate) to rotate: the first encrypts, all decrypt"),
    ),
    entry(
        "cookie-secret-file",
        "cookie_secret_file",
        Value,
        Refused(
            "put the secret in `OAUTH2_PROXY_COOKIE_SECRET` (e.g. from a Kubernetes Secret, as the oauth2-proxy chart does) or `--cookie-secret`",
        ),
    ),
    entry("cookie-secure", "cookie_secure", Bool, Same("")),
    entry(
        "custom-sign-in-logo",
        "custom_sign_in_logo",
        Value,
        Ignored(PAGES),
    ),
    entry(
        "custom-templates-dir",
        "custom_templates_dir",
        Value,
        Ignored(PAGES),
    ),
    entry(
        "disable-keep-alives",
        "disable_keep_alives",
        Bool,
        Ignored(UPSTREAM),
    ),
    entry(
        "display-htpasswd-form",
        "display_htpasswd_form",
        Bool,
        Ignored(PAGES),
    ),
    entry(
        "email-domain",
        "email_domains",
        List,
        Same("without one, nobody is allowed (as oauth2-proxy)"),
    ),
    entry(
        "encode-state",
        "encode_state",
        Bool,
        Ignored("the adapter's `state` is already URL-safe"),
    ),
    entry(
        "entra-id-allowed-tenant",
        "entra_id_allowed_tenants",
        List,
        Refused(OTHER_PROVIDER),
    ),
    entry(
        "entra-id-federated-token-auth",
        "entra_id_federated_token_auth",
        Bool,
        Refused(OTHER_PROVIDER),
    ),
    entry(
        "errors-to-info-log",
        "errors_to_info_log",
        Bool,
        Ignored(LOGS),
    ),
    entry(
        "exclude-logging-path",
        "exclude_logging_paths",
        List,
        Ignored(LOGS),
    ),
    entry("extra-jwt-issuers", "extra_jwt_issuers", List, Same("")),
    entry("flush-interval", "flush_interval", Value, Ignored(UPSTREAM)),
    entry("footer", "footer", Value, Ignored(PAGES)),
    entry(
        "force-code-challenge-method",
        "force_code_challenge_method",
        Value,
        OnlyAs {
            value: "S256",
            instead: "remove it: PKCE always uses S256 (`--code-challenge-method=S256` is accepted)",
        },
    ),
    entry(
        "force-https",
        "force_https",
        Bool,
        OnlyAs {
            value: "false",
            instead: "redirect http to https at the gateway (Istio `Gateway`: `tls.httpsRedirect: true`)",
        },
    ),
    entry(
        "force-json-errors",
        "force_json_errors",
        Bool,
        OnlyAs {
            value: "false",
            instead: NOT_NAVIGATION,
        },
    ),
    entry(
        "gcp-healthchecks",
        "gcp_healthchecks",
        Bool,
        OnlyAs {
            value: "false",
            instead: PROBES,
        },
    ),
    entry("github-org", "github_org", Value, Refused(OTHER_PROVIDER)),
    entry("github-repo", "github_repo", Value, Refused(OTHER_PROVIDER)),
    entry("github-team", "github_team", Value, Refused(OTHER_PROVIDER)),
    entry(
        "github-token",
        "github_token",
        Value,
        Refused(OTHER_PROVIDER),
    ),
    entry("github-user", "github_users", List, Refused(OTHER_PROVIDER)),
    entry(
        "gitlab-group",
        "gitlab_groups",
        List,
        Refused(OTHER_PROVIDER),
    ),
    entry(
        "gitlab-project",
        "gitlab_projects",
        List,
        Refused(OTHER_PROVIDER),
    ),
    entry(
        "google-admin-api-user-scope",
        "google_admin_api_user_scope",
        Value,
        Refused(OTHER_PROVIDER),
    ),
    entry(
        "google-admin-email",
        "google_admin_email",
        Value,
        Refused(OTHER_PROVIDER),
    ),
    entry(
        "google-group",
        "google_groups",
        List,
        Refused(OTHER_PROVIDER),
    ),
    entry(
        "google-service-account-json",
        "google_service_account_json",
        Value,
        Refused(OTHER_PROVIDER),
    ),
    entry(
        "google-target-principal",
        "google_target_principal",
        Value,
        Refused(OTHER_PROVIDER),
    ),
    entry(
        "google-use-application-default-credentials",
        "google_use_application_default_credentials",
        Value,
        Refused(OTHER_PROVIDER),
    ),
    entry(
        "google-use-organization-id",
        "google_use_organization_id",
        Value,
        Refused(OTHER_PROVIDER),
    ),
    entry("htpasswd-file", "htpasswd_file", Value, Refused(HTPASSWD)),
    entry(
        "htpasswd-user-group",
        "htpasswd_user_groups",
        List,
        Refused(HTPASSWD),
    ),
    entry(
        "http-address",
        "http_address",
        Value,
        Same("no `unix://` or `fd:` listeners"),
    ),
    entry(
        "https-address",
        "https_address",
        Value,
        Ignored(
            "oauth2-proxy serves HTTPS there only with `--tls-cert-file`, which is refused (TLS ends at the gateway); the oauth2-proxy chart always passes it",
        ),
    ),
    entry(
        "insecure-oidc-allow-unverified-email",
        "insecure_oidc_allow_unverified_email",
        Bool,
        Same(""),
    ),
    entry(
        "insecure-oidc-skip-issuer-verification",
        "insecure_oidc_skip_issuer_verification",
        Bool,
        OnlyAs {
            value: "false",
            instead: "the discovery document's `issuer` must equal `--oidc-issuer-url`: use the issuer the provider reports (Keycloak: its hostname setting), with `--resolve` if that name does not resolve from the pod",
        },
    ),
    entry(
        "insecure-oidc-skip-nonce",
        "insecure_oidc_skip_nonce",
        Bool,
        Same("default `false` here: the nonce is checked (oauth2-proxy's default is `true`)"),
    ),
    entry("jwt-key", "jwt_key", Value, Refused(OTHER_PROVIDER)),
    entry(
        "jwt-key-file",
        "jwt_key_file",
        Value,
        Refused(OTHER_PROVIDER),
    ),
    entry(
        "keycloak-group",
        "keycloak_groups",
        List,
        Refused("use `--provider=oidc` with `--allowed-group` (and a groups mapper in Keycloak)"),
    ),
    entry("logging-compress", "logging_compress", Bool, Ignored(LOGS)),
    entry("logging-filename", "logging_filename", Value, Ignored(LOGS)),
    entry(
        "logging-local-time",
        "logging_local_time",
        Bool,
        Ignored(LOGS),
    ),
    entry("logging-max-age", "logging_max_age", Value, Ignored(LOGS)),
    entry(
        "logging-max-backups",
        "logging_max_backups",
        Value,
        Ignored(LOGS),
    ),
    entry("logging-max-size", "logging_max_size", Value, Ignored(LOGS)),
    entry("login-url", "login_url", Value, Refused(DISCOVERY)),
    entry("metrics-address", "metrics_address", Value, Same("")),
    entry(
        "metrics-secure-address",
        "metrics_secure_address",
        Value,
        Refused("serve metrics with `--metrics-address` (plain HTTP; scrape over the mesh's mTLS)"),
    ),
    entry(
        "metrics-tls-cert-file",
        "metrics_tls_cert_file",
        Value,
        Ignored("only for `--metrics-secure-address` (refused)"),
    ),
    entry(
        "metrics-tls-key-file",
        "metrics_tls_key_file",
        Value,
        Ignored("only for `--metrics-secure-address` (refused)"),
    ),
    entry(
        "oidc-audience-claim",
        "oidc_audience_claims",
        List,
        OnlyAs {
            value: "aud",
            instead: "the audience is always the `aud` claim: accept other audiences with `--oidc-extra-audience`, or add the client id with a Keycloak audience mapper",
        },
    ),
    entry(
        "oidc-email-claim",
        "oidc_email_claim",
        Value,
        OnlyAs {
            value: "email",
            instead: EMAIL_CLAIM,
        },
    ),
    entry(
        "oidc-enabled-signing-alg",
        "oidc_enabled_signing_algs",
        List,
        Refused(
            "remove it: ID and bearer tokens must be signed with an asymmetric algorithm of the adapter's list (RS256/384/512, PS256/384/512, ES256/384, EdDSA); narrow the realm's keys in Keycloak instead",
        ),
    ),
    entry(
        "oidc-extra-audience",
        "oidc_extra_audiences",
        List,
        Same(""),
    ),
    entry("oidc-groups-claim", "oidc_groups_claim", Value, Same("")),
    entry("oidc-issuer-url", "oidc_issuer_url", Value, Same("")),
    entry("oidc-jwks-url", "oidc_jwks_url", Value, Refused(DISCOVERY)),
    entry(
        "oidc-public-key-file",
        "oidc_public_key_files",
        List,
        Refused(DISCOVERY),
    ),
    entry("pass-access-token", "pass_access_token", Bool, Same("")),
    entry(
        "pass-authorization-header",
        "pass_authorization_header",
        Bool,
        Ignored(UPSTREAM),
    ),
    entry(
        "pass-basic-auth",
        "pass_basic_auth",
        Bool,
        Ignored(UPSTREAM),
    ),
    entry(
        "pass-host-header",
        "pass_host_header",
        Bool,
        Ignored(UPSTREAM),
    ),
    entry(
        "pass-user-headers",
        "pass_user_headers",
        Bool,
        Ignored(UPSTREAM),
    ),
    entry(
        "ping-path",
        "ping_path",
        Value,
        OnlyAs {
            value: "/ping",
            instead: PROBES,
        },
    ),
    entry("ping-user-agent", "ping_user_agent", Value, Refused(PROBES)),
    entry(
        "prefer-email-to-user",
        "prefer_email_to_user",
        Bool,
        Ignored(
            "changes only `--pass-basic-auth`, `--pass-user-headers` (upstream requests) and `--set-basic-auth` (refused unless `false`)",
        ),
    ),
    entry("profile-url", "profile_url", Value, Refused(DISCOVERY)),
    entry(
        "prompt",
        "prompt",
        Value,
        Refused("request it with `--auth-request-param=prompt=VALUE`"),
    ),
    entry(
        "provider",
        "provider",
        Value,
        Same("`oidc` or `keycloak-oidc` only; other providers are refused"),
    ),
    entry("provider-ca-file", "provider_ca_files", List, Same("")),
    entry(
        "provider-display-name",
        "provider_display_name",
        Value,
        Ignored(PAGES),
    ),
    entry("proxy-prefix", "proxy_prefix", Value, Same("")),
    entry(
        "proxy-websockets",
        "proxy_websockets",
        Bool,
        Ignored(UPSTREAM),
    ),
    entry("pubjwk-url", "pubjwk_url", Value, Refused(OTHER_PROVIDER)),
    entry(
        "ready-path",
        "ready_path",
        Value,
        OnlyAs {
            value: "/ready",
            instead: PROBES,
        },
    ),
    entry(
        "real-client-ip-header",
        "real_client_ip_header",
        Value,
        Ignored(
            "oauth2-proxy reads the client address from it for its logs and `--trusted-ip`; the adapter decides nothing by client address",
        ),
    ),
    entry("redeem-url", "redeem_url", Value, Refused(DISCOVERY)),
    entry("redirect-url", "redirect_url", Value, Same("")),
    entry("redis-ca-path", "redis_ca_path", Value, Same("")),
    entry(
        "redis-cluster-connection-urls",
        "redis_cluster_connection_urls",
        List,
        Same(""),
    ),
    entry(
        "redis-connection-idle-timeout",
        "redis_connection_idle_timeout",
        Value,
        Same(""),
    ),
    entry(
        "redis-connection-url",
        "redis_connection_url",
        Value,
        Same(""),
    ),
    entry(
        "redis-insecure-skip-tls-verify",
        "redis_insecure_skip_tls_verify",
        Bool,
        Same(""),
    ),
    entry("redis-password", "redis_password", Value, Same("")),
    entry(
        "redis-sentinel-connection-urls",
        "redis_sentinel_connection_urls",
        List,
        Same(""),
    ),
    entry(
        "redis-sentinel-master-name",
        "redis_sentinel_master_name",
        Value,
        Same(""),
    ),
    entry(
        "redis-sentinel-password",
        "redis_sentinel_password",
        Value,
        Same(""),
    ),
    entry("redis-use-cluster", "redis_use_cluster", Bool, Same("")),
    entry("redis-use-sentinel", "redis_use_sentinel", Bool, Same("")),
    entry("redis-username", "redis_username", Value, Same("")),
    entry(
        "relative-redirect-url",
        "relative_redirect_url",
        Bool,
        OnlyAs {
            value: "false",
            instead: "leave `--redirect-url` unset: the adapter builds `<scheme>://<host><prefix>/callback` from each request (with `--reverse-proxy`, from `X-Forwarded-Proto`/`-Host`)",
        },
    ),
    entry(
        "request-id-header",
        "request_id_header",
        Value,
        Ignored(
            "names the request id in oauth2-proxy's logs; the adapter's log lines of a request carry Envoy's `x-request-id` (`request_id`)",
        ),
    ),
    entry("request-logging", "request_logging", Bool, Ignored(LOGS)),
    entry(
        "request-logging-format",
        "request_logging_format",
        Value,
        Ignored(LOGS),
    ),
    entry(
        "resource",
        "resource",
        Value,
        Refused("request it with `--auth-request-param=resource=VALUE`"),
    ),
    entry("reverse-proxy", "reverse_proxy", Bool, Same("")),
    entry("scope", "scope", Value, Same("must include `openid`")),
    entry(
        "session-cookie-minimal",
        "session_cookie_minimal",
        Bool,
        Same(""),
    ),
    entry("session-store-type", "session_store_type", Value, Same("")),
    entry(
        "set-authorization-header",
        "set_authorization_header",
        Bool,
        Same(""),
    ),
    entry(
        "set-basic-auth",
        "set_basic_auth",
        Bool,
        OnlyAs {
            value: "false",
            instead: "give the app the user with `--set-xauthrequest` (`X-Auth-Request-User`, `-Email`) or `--set-authorization-header` (`Authorization: Bearer <ID token>`)",
        },
    ),
    entry("set-xauthrequest", "set_xauthrequest", Bool, Same("")),
    entry(
        "show-debug-on-error",
        "show_debug_on_error",
        Bool,
        Ignored("error pages never show details here (the log has them)"),
    ),
    entry("signature-key", "signature_key", Value, Ignored(UPSTREAM)),
    entry(
        "silence-ping-logging",
        "silence_ping_logging",
        Bool,
        Ignored(LOGS),
    ),
    entry("skip-auth-preflight", "skip_auth_preflight", Bool, Same("")),
    entry("skip-auth-regex", "skip_auth_regex", List, Same("")),
    entry("skip-auth-route", "skip_auth_routes", List, Same("")),
    entry(
        "skip-auth-strip-headers",
        "skip_auth_strip_headers",
        Bool,
        Ignored(
            "only about the request proxied to an `--upstream`; the adapter always has Envoy remove client-sent identity headers, in every spelling",
        ),
    ),
    entry(
        "skip-claims-from-profile-url",
        "skip_claims_from_profile_url",
        Bool,
        Ignored(
            "claims come from the ID token (groups and roles also from the access token); the adapter never calls a profile URL",
        ),
    ),
    entry(
        "skip-jwt-bearer-tokens",
        "skip_jwt_bearer_tokens",
        Bool,
        Same("ID tokens are refused as bearer tokens; an invalid token gets 401, never a login"),
    ),
    entry(
        "skip-oidc-discovery",
        "skip_oidc_discovery",
        Bool,
        OnlyAs {
            value: "false",
            instead: DISCOVERY,
        },
    ),
    entry(
        "skip-provider-button",
        "skip_provider_button",
        Bool,
        Same(""),
    ),
    entry(
        "ssl-insecure-skip-verify",
        "ssl_insecure_skip_verify",
        Bool,
        Same(""),
    ),
    entry(
        "ssl-upstream-insecure-skip-verify",
        "ssl_upstream_insecure_skip_verify",
        Bool,
        Ignored(UPSTREAM),
    ),
    entry("standard-logging", "standard_logging", Bool, Ignored(LOGS)),
    entry(
        "standard-logging-format",
        "standard_logging_format",
        Value,
        Ignored(LOGS),
    ),
    entry("tls-cert-file", "tls_cert_file", Value, Refused(TLS)),
    entry(
        "tls-cipher-suite",
        "tls_cipher_suites",
        List,
        Ignored("only for oauth2-proxy's HTTPS listener (`--tls-cert-file`, refused)"),
    ),
    entry("tls-key-file", "tls_key_file", Value, Refused(TLS)),
    entry(
        "tls-min-version",
        "tls_min_version",
        Value,
        Ignored("only for oauth2-proxy's HTTPS listener (`--tls-cert-file`, refused)"),
    ),
    entry(
        "trusted-ip",
        "trusted_ips",
        List,
        Refused(
            "the adapter never lets a request in by its source address: exempt those clients at the gateway (an Istio `AuthorizationPolicy`, or a route without ext_authz), or use `--skip-auth-route` for paths",
        ),
    ),
    entry("trusted-proxy-ip", "trusted_proxy_ips", List, Same("")),
    entry(
        "upstream",
        "upstreams",
        List,
        Same(
            "only `static://200` (or the chart's placeholder `file:///dev/null`): Envoy routes to the app, the adapter only decides",
        ),
    ),
    entry(
        "upstream-timeout",
        "upstream_timeout",
        Value,
        Ignored(UPSTREAM),
    ),
    entry(
        "use-system-trust-store",
        "use_system_trust_store",
        Bool,
        Same(""),
    ),
    entry(
        "user-id-claim",
        "user_id_claim",
        Value,
        OnlyAs {
            value: "email",
            instead: EMAIL_CLAIM,
        },
    ),
    entry("validate-url", "validate_url", Value, Refused(DISCOVERY)),
    entry("version", "", Bool, Same("")),
    entry("whitelist-domain", "whitelist_domains", List, Same("")),
];

/// The entry for `flag` (without `--`).
#[must_use]
pub fn find(flag: &str) -> Option<&'static Oauth2ProxyFlag> {
    FLAGS.iter().find(|f| f.flag == flag)
}

/// `cmd` with every oauth2-proxy flag the adapter does not implement as a hidden argument
/// (with its `OAUTH2_PROXY_*` variable), so that all their forms parse; [`review`] then
/// judges what was given.
#[must_use]
pub fn register(mut cmd: Command) -> Command {
    for f in FLAGS.iter().filter(|f| !matches!(f.support, Same(_))) {
        let mut arg = Arg::new(f.flag).long(f.flag).hide(true);
        arg = match f.kind {
            Bool => arg
                .action(ArgAction::Set)
                .num_args(0..=1)
                .default_missing_value("true"),
            Value => arg.action(ArgAction::Set),
            List => arg.action(ArgAction::Append).value_delimiter(','),
        };
        if let Some(env) = f.env() {
            arg = arg.env(env).hide_env_values(true);
        }
        cmd = cmd.arg(arg);
    }
    cmd
}

/// What [`review`] found among the flags the adapter does not implement.
#[derive(Debug, Default)]
pub struct Review {
    /// One line per flag given that is ignored: where it was given and why it does not matter.
    pub warnings: Vec<String>,
    /// One line per flag given that stops the start: where, and what to do instead.
    pub refused: Vec<String>,
}

/// Judges the unimplemented flags in `matches` (parsed by a [`register`]ed command).
/// `origin` names where a flag given on the command line came from (the config file's key,
/// for the values taken from it). Values are never repeated: some are secrets.
#[must_use]
pub fn review(matches: &ArgMatches, origin: impl Fn(&Oauth2ProxyFlag) -> Option<String>) -> Review {
    let mut review = Review::default();
    for f in FLAGS {
        let Ok(Some(values)) = matches.try_get_raw(f.flag) else {
            continue;
        };
        let from = match matches.value_source(f.flag) {
            Some(ValueSource::EnvVariable) => f.env().unwrap_or_default(),
            Some(ValueSource::CommandLine) => origin(f).unwrap_or_else(|| format!("--{}", f.flag)),
            _ => continue,
        };
        let values: Vec<String> = values.map(|v| v.to_string_lossy().into_owned()).collect();
        let empty = f.kind != Bool && values.iter().all(String::is_empty);
        match f.support {
            Same(_) => {}
            _ if empty => review.warnings.push(format!(
                "{from}: set to nothing: ignored (not implemented here)"
            )),
            Ignored(why) => review
                .warnings
                .push(format!("{from}: ignored: {}", plain(why))),
            OnlyAs { value, instead } => {
                if values.iter().all(|v| same_value(f.kind, v, value)) {
                    review.warnings.push(format!(
                        "{from}={value}: ignored: that is what the adapter always does"
                    ));
                } else {
                    review.refused.push(format!(
                        "{from}: not supported here except as {value}: {}",
                        plain(instead)
                    ));
                }
            }
            Refused(instead) => review
                .refused
                .push(format!("{from}: not supported here: {}", plain(instead))),
        }
    }
    review
}

/// `given` means `value` (booleans in any of oauth2-proxy's spellings, text without case).
fn same_value(kind: Kind, given: &str, value: &str) -> bool {
    match kind {
        Bool => boolish(given).is_some_and(|b| Some(b) == boolish(value)),
        Value | List => given.eq_ignore_ascii_case(value),
    }
}

/// A boolean as oauth2-proxy (Go's `strconv.ParseBool`) and clap's boolish parser read it.
fn boolish(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "" | "1" | "t" | "true" | "y" | "yes" | "on" => Some(true),
        "0" | "f" | "false" | "n" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Table text for a log line: without Markdown's backticks.
fn plain(text: &str) -> String {
    text.replace('`', "")
}

/// A section's last cells for a flag, `None` when the flag is not in that section.
type Cell = fn(&Support) -> Option<String>;

/// `docs/oauth2-proxy-flags.md`: every oauth2-proxy flag and what the adapter does with it,
/// then the adapter's own flags (those of `cmd` the table does not name).
#[must_use]
pub fn markdown(cmd: &Command) -> String {
    use std::fmt::Write as _;
    let key = |f: &Oauth2ProxyFlag| {
        if f.key.is_empty() {
            "(none)".to_owned()
        } else {
            format!("`{}`", f.key)
        }
    };
    let mut out = String::from(DOC_INTRO);
    let sections: [(&str, &str, Cell); 4] = [
        (
            "Supported, same meaning",
            "| flag | config-file key | note |\n|---|---|---|\n",
            |s| match s {
                Same(note) => Some((*note).to_owned()),
                _ => None,
            },
        ),
        (
            "Accepted and ignored (one warning at start)",
            "| flag | config-file key | why it does not matter here |\n|---|---|---|\n",
            |s| match s {
                Ignored(why) => Some((*why).to_owned()),
                _ => None,
            },
        ),
        (
            "Accepted only as the adapter behaves, refused otherwise",
            "| flag | config-file key | accepted (ignored, warned) when | any other value: what to do instead |\n|---|---|---|---|\n",
            |s| match s {
                OnlyAs { value, instead } => Some(format!("`{value}` | {instead}")),
                _ => None,
            },
        ),
        (
            "Refused (the start stops, exit 2)",
            "| flag | config-file key | what to do instead |\n|---|---|---|\n",
            |s| match s {
                Refused(instead) => Some((*instead).to_owned()),
                _ => None,
            },
        ),
    ];
    for (title, header, text) in sections {
        let rows: Vec<String> = FLAGS
            .iter()
            .filter_map(|f| {
                text(&f.support).map(|t| format!("| `--{}` | {} | {t} |\n", f.flag, key(f)))
            })
            .collect();
        let _ = write!(out, "\n## {title} ({})\n\n{header}", rows.len());
        out.extend(rows);
    }
    out.push_str(
        "\n## This adapter's own flags (not oauth2-proxy's)\n\n\
         Set like the others: flag, variable, or the variable's name in lower case without \
         `OAUTH2_PROXY_` as the config-file key.\n\n| flag | variable |\n|---|---|\n",
    );
    let mut own: Vec<(String, String)> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| {
            let long = a.get_long()?;
            let env = a.get_env()?.to_string_lossy().into_owned();
            find(long).is_none().then(|| (long.to_owned(), env))
        })
        .collect();
    own.sort();
    for (long, env) in own {
        let _ = writeln!(out, "| `--{long}` | `{env}` |");
    }
    out
}

const DOC_INTRO: &str = "# oauth2-proxy flags

Every flag of oauth2-proxy v7 (its legacy options, the ones its Helm chart and most
deployments use) and what `ext-authz-adapter` does with it. Generated from
`oauth2-proxy-compat/src/flags.rs`; a test fails when the two differ (rewrite this file with
`UPDATE_FLAG_DOC=1 cargo test -p ext-authz-adapter --test oauth2_proxy_flags`).

Each flag can be given three ways, as in oauth2-proxy, and the first found wins:

1. on the command line: `--flag=value`, `--flag value`; booleans also as `--flag` alone;
2. in the environment: `OAUTH2_PROXY_` and the config-file key in upper case
   (`OAUTH2_PROXY_EMAIL_DOMAINS=a.com,b.com`: list flags take a comma-separated list);
3. in the TOML file named by `--config` (or `OAUTH2_PROXY_CONFIG`), as oauth2-proxy's chart
   mounts it: `email_domains = [ \"*\" ]`, `cookie_secure = false`, `cookie_expire = \"4h\"`.

Flags the adapter does not implement are never silently dropped: each one given is either
ignored with one warning at start saying why that is harmless here, or it stops the start
(exit 2) with what to do instead. A config-file key that is not an oauth2-proxy option stops
the start (oauth2-proxy refuses unknown keys too), naming the file and line; so does a file
that is not valid TOML, and a `${VAR}` reference (oauth2-proxy expands them, this adapter does
not: set `OAUTH2_PROXY_<KEY>` instead). An `OAUTH2_PROXY_*` variable that names no option is
ignored, as oauth2-proxy does, with a warning (a typo would otherwise go unnoticed). Values
are never logged: some are secrets (`client_secret`, `cookie_secret`, `redis_password`).
";

#[cfg(test)]
mod tests {
    use super::*;

    fn review_of(args: &[&str]) -> Review {
        // oauth2-proxy keeps the last of a flag given twice.
        let matches = register(Command::new("ext-authz-adapter").args_override_self(true))
            .try_get_matches_from(std::iter::once("ext-authz-adapter").chain(args.iter().copied()))
            .expect("parses");
        review(&matches, |_| None)
    }

    /// Every form of a harmless flag is accepted with one warning; refused flags name the
    /// alternative; a refused flag set to nothing, or an `OnlyAs` flag set to the adapter's own
    /// behaviour, only warns.
    #[test]
    fn unimplemented_flags_warn_or_refuse() {
        for args in [
            &["--request-logging"][..],
            &["--request-logging=false"],
            &["--request-logging", "false"],
            &["--request-logging", "false", "--request-logging=true"],
        ] {
            let r = review_of(args);
            assert_eq!(r.warnings.len(), 1, "{args:?}: {r:?}");
            assert!(
                r.warnings[0].starts_with("--request-logging: ignored: "),
                "{r:?}"
            );
            assert!(r.refused.is_empty(), "{r:?}");
        }
        let r = review_of(&[
            "--htpasswd-file=/etc/htpasswd",
            "--set-basic-auth=false",
            "--ping-path",
            "/healthz",
            "--trusted-ip=",
        ]);
        assert_eq!(r.refused.len(), 2, "{r:?}");
        assert!(
            r.refused[0].starts_with("--htpasswd-file: not supported here: ")
                && r.refused[0].contains("Keycloak"),
            "{r:?}"
        );
        assert!(
            r.refused[1]
                .starts_with("--ping-path: not supported here except as /ping: probe /ping"),
            "{r:?}"
        );
        assert_eq!(r.warnings.len(), 2, "{r:?}");
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with("--set-basic-auth=false: ignored")),
            "{r:?}"
        );
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with("--trusted-ip: set to nothing")),
            "{r:?}"
        );
        assert!(
            !format!("{r:?}").contains("/etc/htpasswd") && !format!("{r:?}").contains("/healthz"),
            "values are not repeated"
        );
        let r = review_of(&["--set-basic-auth"]);
        assert_eq!(r.refused.len(), 1, "{r:?}");
    }
}
