//! Command-line flags, compatible with oauth2-proxy v7's names,
//! `OAUTH2_PROXY_*` environment variables and TOML config file (`--config`).

mod error;
mod flags;
mod values;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, Subcommand};
use istio_manifests::IstioArgs;
use oidc_core::{ClientSecret, Config, ConfigError, CookieSettings, Setting};

pub use self::error::CliError;
pub use self::flags::flag;
pub use self::values::{
    CodeChallengeMethod, CookieSameSite, LogFormat, Provider, SessionStoreType,
    TokenEndpointAuthMethod,
};
use crate::duration;

/// Boolean flag in oauth2-proxy style: `--flag`, `--flag=true`, `--flag=false`.
macro_rules! bool_flag {
    () => {
        BoolishValueParser::new()
    };
}

/// OpenID Connect login for services behind Envoy/Istio ext_authz: a drop-in
/// for oauth2-proxy's flags and endpoints.
///
/// Every flag can also be set with an environment variable: OAUTH2_PROXY_ and
/// the flag's name in upper case with `_` for `-` (e.g. OAUTH2_PROXY_CLIENT_SECRET).
/// Repeatable flags take a comma-separated list in their (plural) variable.
/// Precedence: command line, then environment, then the --config file.
#[derive(Debug, Parser)]
#[command(name = "ext-authz-adapter", version, about, long_about = None, max_term_width = 100, args_override_self = true)]
#[command(args_conflicts_with_subcommands = true, disable_help_subcommand = true)]
#[allow(clippy::struct_excessive_bools)]
pub struct Cli {
    /// A subcommand instead of the server (it reads no `OAUTH2_PROXY_*` variable).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// oauth2-proxy's TOML config file (keys as oauth2-proxy's: email_domains = [ "*" ]);
    /// it sets only the flags neither the command line nor the environment set.
    #[arg(long, env = "OAUTH2_PROXY_CONFIG", value_name = "PATH")]
    pub config: Option<std::path::PathBuf>,

    /// OAuth provider. Only OpenID Connect: "oidc" (or "keycloak-oidc").
    #[arg(
        long,
        env = "OAUTH2_PROXY_PROVIDER",
        value_enum,
        default_value = "oidc"
    )]
    pub provider: Provider,

    /// Issuer URL; discovery is read from <issuer>/.well-known/openid-configuration.
    #[arg(long, env = "OAUTH2_PROXY_OIDC_ISSUER_URL", value_name = "URL")]
    pub oidc_issuer_url: Option<String>,

    /// OAuth client id.
    #[arg(long, env = "OAUTH2_PROXY_CLIENT_ID")]
    pub client_id: Option<String>,

    /// OAuth client secret (prefer the environment variable over the command line).
    #[arg(long, env = "OAUTH2_PROXY_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,

    /// File holding the client secret (alternative to --client-secret).
    #[arg(long, env = "OAUTH2_PROXY_CLIENT_SECRET_FILE", value_name = "PATH")]
    pub client_secret_file: Option<String>,

    /// How to authenticate at the token endpoint: client_secret_basic or client_secret_post.
    #[arg(
        long,
        env = "OAUTH2_PROXY_TOKEN_ENDPOINT_AUTH_METHOD",
        value_enum,
        default_value = "client_secret_basic"
    )]
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,

    /// Cookie encryption secret: 16, 24 or 32 bytes, raw or base64. Repeat to rotate:
    /// the first encrypts, all decrypt.
    #[arg(
        long,
        env = "OAUTH2_PROXY_COOKIE_SECRET",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub cookie_secret: Vec<String>,

    /// Name of the session cookie (split into NAME_0, NAME_1, ... when large).
    #[arg(
        long,
        env = "OAUTH2_PROXY_COOKIE_NAME",
        default_value = "_oauth2_proxy"
    )]
    pub cookie_name: String,

    /// Cookie domain(s); the first one the request host ends with is used. Repeatable.
    #[arg(long, env = "OAUTH2_PROXY_COOKIE_DOMAINS", value_delimiter = ',')]
    pub cookie_domain: Vec<String>,

    /// Cookie path.
    #[arg(long, env = "OAUTH2_PROXY_COOKIE_PATH", default_value = "/")]
    pub cookie_path: String,

    /// Set the Secure attribute on cookies (turn off only for plain-http testing).
    #[arg(long, env = "OAUTH2_PROXY_COOKIE_SECURE", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub cookie_secure: bool,

    /// Set the HttpOnly attribute on cookies.
    #[arg(long, env = "OAUTH2_PROXY_COOKIE_HTTPONLY", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub cookie_httponly: bool,

    /// SameSite attribute: lax, strict, none, or "" for none set.
    #[arg(
        long,
        env = "OAUTH2_PROXY_COOKIE_SAMESITE",
        value_enum,
        ignore_case = true,
        default_value = ""
    )]
    pub cookie_samesite: CookieSameSite,

    /// Session lifetime (Go duration: 4h, 168h0m0s).
    #[arg(long, env = "OAUTH2_PROXY_COOKIE_EXPIRE", default_value = "168h", value_parser = duration::parse)]
    pub cookie_expire: Duration,

    /// Refresh the session after this long (Go duration; 0 = off).
    #[arg(long, env = "OAUTH2_PROXY_COOKIE_REFRESH", default_value = "0", value_parser = duration::parse)]
    pub cookie_refresh: Duration,

    /// Set `Authorization: Bearer <ID token>` on allowed requests.
    #[arg(long, env = "OAUTH2_PROXY_SET_AUTHORIZATION_HEADER", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub set_authorization_header: bool,

    /// Set X-Auth-Request-User, -Email, -Preferred-Username and -Groups on allowed requests.
    #[arg(long, env = "OAUTH2_PROXY_SET_XAUTHREQUEST", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub set_xauthrequest: bool,

    /// Pass the access token in X-Auth-Request-Access-Token.
    #[arg(long, env = "OAUTH2_PROXY_PASS_ACCESS_TOKEN", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub pass_access_token: bool,

    /// Allowed email domain; "*" allows any. Repeatable. Without one, nobody is allowed.
    #[arg(long, env = "OAUTH2_PROXY_EMAIL_DOMAINS", value_delimiter = ',')]
    pub email_domain: Vec<String>,

    /// File of allowed email addresses, one per line (in addition to --email-domain).
    #[arg(
        long,
        env = "OAUTH2_PROXY_AUTHENTICATED_EMAILS_FILE",
        value_name = "PATH"
    )]
    pub authenticated_emails_file: Option<String>,

    /// Group a user must be in (any of the groups and roles given). Repeatable.
    #[arg(long, env = "OAUTH2_PROXY_ALLOWED_GROUPS", value_delimiter = ',')]
    pub allowed_group: Vec<String>,

    /// Keycloak role a user must have: realm role `role` or client role `client:role`
    /// (any of the groups and roles given; read from the access token). Repeatable.
    #[arg(long, env = "OAUTH2_PROXY_ALLOWED_ROLES", value_delimiter = ',')]
    pub allowed_role: Vec<String>,

    /// Who may use a host or path, on top of --allowed-group/--allowed-role:
    /// `[HOST][PATH_REGEX]=group:NAME,role:ROLE,role:CLIENT:ROLE` (any of those). Every rule
    /// that applies to a request must allow it. Repeatable; e.g. `^/admin/=role:admin`,
    /// `reports.example.com=group:reporting`, `*.example.com^/ops/=group:ops`.
    #[arg(long, env = "OAUTH2_PROXY_AUTHORIZATION_RULES", value_delimiter = ';')]
    pub authorization_rule: Vec<String>,

    /// Believe X-Forwarded-Proto, -Host and -Uri (from the --trusted-proxy-ip peers) when
    /// building URLs and at <prefix>/auth, as oauth2-proxy's flag. Host rules never use them.
    #[arg(long, env = "OAUTH2_PROXY_REVERSE_PROXY", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub reverse_proxy: bool,

    /// With --reverse-proxy: address or CIDR range of a proxy whose X-Forwarded-Proto, -Host
    /// and -Uri are believed (e.g. the ingress gateway's pod range). Repeatable. Default:
    /// every peer, as oauth2-proxy.
    #[arg(
        long,
        env = "OAUTH2_PROXY_TRUSTED_PROXY_IPS",
        value_delimiter = ',',
        value_name = "IP|CIDR"
    )]
    pub trusted_proxy_ip: Vec<String>,

    /// Requests that need no login: `METHOD=regex`, `METHOD!=regex`, `regex` or `!=regex`,
    /// matched against the decoded path only (never the query). Repeatable.
    #[arg(long, env = "OAUTH2_PROXY_SKIP_AUTH_ROUTES")]
    pub skip_auth_route: Vec<String>,

    /// Paths that need no login (regex, any method; legacy form of --skip-auth-route). Repeatable.
    #[arg(long, env = "OAUTH2_PROXY_SKIP_AUTH_REGEX")]
    pub skip_auth_regex: Vec<String>,

    /// Let CORS preflight requests (OPTIONS with Origin and Access-Control-Request-Method)
    /// through without a login.
    #[arg(long, env = "OAUTH2_PROXY_SKIP_AUTH_PREFLIGHT", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub skip_auth_preflight: bool,

    /// Let requests with `Authorization: Bearer <JWT>` in when the token verifies against
    /// the issuer's keys (iss, audience = client id or --oidc-extra-audience, exp, nbf),
    /// instead of a session; the same email, group, role and --authorization-rule checks
    /// apply. An invalid token gets 401.
    #[arg(long, env = "OAUTH2_PROXY_SKIP_JWT_BEARER_TOKENS", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub skip_jwt_bearer_tokens: bool,

    /// Another issuer whose bearer tokens are accepted (with --skip-jwt-bearer-tokens), as
    /// ISSUER=AUDIENCE, e.g. https://idp.example.com/realms/b2b=nginx. Repeatable.
    #[arg(
        long,
        env = "OAUTH2_PROXY_EXTRA_JWT_ISSUERS",
        value_delimiter = ',',
        value_name = "ISSUER=AUDIENCE"
    )]
    pub extra_jwt_issuers: Vec<String>,

    /// An audience accepted in bearer tokens besides the client id (Keycloak puts
    /// `account` there unless an audience mapper adds the client). Repeatable.
    #[arg(long, env = "OAUTH2_PROXY_OIDC_EXTRA_AUDIENCES", value_delimiter = ',')]
    pub oidc_extra_audience: Vec<String>,

    /// Address to listen on (host:port; `0.0.0.0:4180`, `:4180` and `http://` forms accepted).
    #[arg(
        long,
        env = "OAUTH2_PROXY_HTTP_ADDRESS",
        default_value = "127.0.0.1:4180"
    )]
    pub http_address: String,

    /// Where sessions are kept: cookie (encrypted in the browser) or redis (the cookie holds a
    /// ticket; see --redis-connection-url).
    #[arg(
        long,
        env = "OAUTH2_PROXY_SESSION_STORE_TYPE",
        value_enum,
        default_value = "cookie"
    )]
    pub session_store_type: SessionStoreType,

    /// Keep tokens out of cookie sessions: small cookies, but no refresh, no
    /// --set-authorization-header and no --pass-access-token.
    #[arg(long, env = "OAUTH2_PROXY_SESSION_COOKIE_MINIMAL", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub session_cookie_minimal: bool,

    /// Redis URL (redis://USER:PASSWORD@HOST:PORT/DB with USER:PASSWORD@ and /DB optional; rediss:// for TLS). Also used in
    /// cookie mode, for back-channel logout revocation and one refresh across replicas.
    #[arg(
        long,
        env = "OAUTH2_PROXY_REDIS_CONNECTION_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub redis_connection_url: Option<String>,

    /// Redis username (ACL), if not in the URL.
    #[arg(long, env = "OAUTH2_PROXY_REDIS_USERNAME")]
    pub redis_username: Option<String>,

    /// Redis password, if not in the URL (prefer the environment variable).
    #[arg(long, env = "OAUTH2_PROXY_REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,

    /// Connect through Redis Sentinel.
    #[arg(long, env = "OAUTH2_PROXY_REDIS_USE_SENTINEL", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub redis_use_sentinel: bool,

    /// Sentinel master name.
    #[arg(long, env = "OAUTH2_PROXY_REDIS_SENTINEL_MASTER_NAME")]
    pub redis_sentinel_master_name: Option<String>,

    /// Sentinel URLs (repeatable).
    #[arg(
        long,
        env = "OAUTH2_PROXY_REDIS_SENTINEL_CONNECTION_URLS",
        value_delimiter = ','
    )]
    pub redis_sentinel_connection_urls: Vec<String>,

    /// Sentinel password.
    #[arg(
        long,
        env = "OAUTH2_PROXY_REDIS_SENTINEL_PASSWORD",
        hide_env_values = true
    )]
    pub redis_sentinel_password: Option<String>,

    /// Connect to a Redis Cluster.
    #[arg(long, env = "OAUTH2_PROXY_REDIS_USE_CLUSTER", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub redis_use_cluster: bool,

    /// Cluster node URLs (repeatable).
    #[arg(
        long,
        env = "OAUTH2_PROXY_REDIS_CLUSTER_CONNECTION_URLS",
        value_delimiter = ','
    )]
    pub redis_cluster_connection_urls: Vec<String>,

    /// CA certificate file for rediss:// connections.
    #[arg(long, env = "OAUTH2_PROXY_REDIS_CA_PATH", value_name = "PATH")]
    pub redis_ca_path: Option<std::path::PathBuf>,

    /// Do not verify the Redis server's certificate (testing only).
    #[arg(long, env = "OAUTH2_PROXY_REDIS_INSECURE_SKIP_TLS_VERIFY", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub redis_insecure_skip_tls_verify: bool,

    /// Seconds after which idle Redis connections are pinged (0 = never).
    #[arg(
        long,
        env = "OAUTH2_PROXY_REDIS_CONNECTION_IDLE_TIMEOUT",
        default_value = "0"
    )]
    pub redis_connection_idle_timeout: u64,

    /// Address for the gRPC ext_authz server (envoy.service.auth.v3.Authorization), e.g.
    /// 0.0.0.0:9001; off when unset. Same decisions as the HTTP check.
    #[arg(long, env = "OAUTH2_PROXY_GRPC_ADDRESS")]
    pub grpc_address: Option<String>,

    /// On SIGTERM/SIGINT: how long checks already in flight may take to finish (Go duration)
    /// before the process exits anyway. New connections are refused from the signal on; idle
    /// keep-alive connections are closed (HTTP/2: GOAWAY). Keep it below the pod's
    /// terminationGracePeriodSeconds minus any preStop sleep. Not an oauth2-proxy flag.
    #[arg(long, env = "OAUTH2_PROXY_SHUTDOWN_DRAIN_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    pub shutdown_drain_timeout: std::time::Duration,

    /// Address for Prometheus metrics at /metrics (e.g. 0.0.0.0:9100); off when unset.
    #[arg(long, env = "OAUTH2_PROXY_METRICS_ADDRESS")]
    pub metrics_address: Option<String>,

    /// Log format: text or json (one JSON object per line; a request's lines carry Envoy's
    /// x-request-id as `request_id`).
    #[arg(
        long,
        env = "OAUTH2_PROXY_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Upstream. Only `static://200` (or file:///dev/null, the placeholder of oauth2-proxy's
    /// Helm chart): routing to the application is Envoy's job.
    #[arg(long, env = "OAUTH2_PROXY_UPSTREAMS", value_delimiter = ',')]
    pub upstream: Vec<String>,

    /// Send browsers straight to the provider instead of showing a sign-in page.
    #[arg(long, env = "OAUTH2_PROXY_SKIP_PROVIDER_BUTTON", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub skip_provider_button: bool,

    /// Domain allowed as an absolute `rd` redirect target (`.example.com`, `*.example.com`,
    /// optional `:port` or `:*`). Repeatable.
    #[arg(long, env = "OAUTH2_PROXY_WHITELIST_DOMAINS", value_delimiter = ',')]
    pub whitelist_domain: Vec<String>,

    /// Fixed callback URL (default: derived from the request, <scheme>://<host><prefix>/callback).
    #[arg(long, env = "OAUTH2_PROXY_REDIRECT_URL", value_name = "URL")]
    pub redirect_url: Option<String>,

    /// PKCE method. Only S256: PKCE is always used, and "plain" is refused.
    #[arg(
        long,
        env = "OAUTH2_PROXY_CODE_CHALLENGE_METHOD",
        value_enum,
        ignore_case = true,
        default_value = "S256"
    )]
    pub code_challenge_method: CodeChallengeMethod,

    /// Do not check the ID token's nonce (insecure; oauth2-proxy's default, not ours).
    #[arg(long, env = "OAUTH2_PROXY_INSECURE_OIDC_SKIP_NONCE", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub insecure_oidc_skip_nonce: bool,

    /// Accept ID tokens with email_verified=false.
    #[arg(long, env = "OAUTH2_PROXY_INSECURE_OIDC_ALLOW_UNVERIFIED_EMAIL", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub insecure_oidc_allow_unverified_email: bool,

    /// Claim holding the user's groups.
    #[arg(long, env = "OAUTH2_PROXY_OIDC_GROUPS_CLAIM", default_value = "groups")]
    pub oidc_groups_claim: String,

    /// Scopes to request (space-separated; must include openid).
    #[arg(
        long,
        env = "OAUTH2_PROXY_SCOPE",
        default_value = "openid email profile"
    )]
    pub scope: String,

    /// Prefix of the adapter's own endpoints (start, callback, sign_in, sign_out, auth, userinfo).
    #[arg(long, env = "OAUTH2_PROXY_PROXY_PREFIX", default_value = "/oauth2")]
    pub proxy_prefix: String,

    /// On sign-out, also end the session at the provider (OpenID RP-Initiated Logout with
    /// id_token_hint and post_logout_redirect_uri, as Keycloak 18+ requires). The `rd` target,
    /// made absolute, must be registered at the provider as a post-logout redirect URI.
    #[arg(long, env = "OAUTH2_PROXY_OIDC_RP_INITIATED_LOGOUT", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub oidc_rp_initiated_logout: bool,

    /// Resolve HOST to IP for calls to the identity provider, like curl's --resolve
    /// (e.g. keycloak.example.com=127.0.0.1 when the issuer's public name does not resolve
    /// from here). Repeatable.
    #[arg(
        long,
        env = "OAUTH2_PROXY_RESOLVE",
        value_delimiter = ',',
        value_name = "HOST=IP"
    )]
    pub resolve: Vec<String>,

    /// PEM bundle of the CA(s) that sign the identity provider's certificate, for every call
    /// to it (discovery, JWKS, token, userinfo, logout) and to extra JWT issuers. Repeatable.
    /// With any, only these CAs are trusted unless --use-system-trust-store.
    #[arg(
        long,
        env = "OAUTH2_PROXY_PROVIDER_CA_FILES",
        value_delimiter = ',',
        value_name = "PATH"
    )]
    pub provider_ca_file: Vec<std::path::PathBuf>,

    /// With --provider-ca-file, trust the public roots and the system's store as well
    /// (without CA files they are always trusted).
    #[arg(long, env = "OAUTH2_PROXY_USE_SYSTEM_TRUST_STORE", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub use_system_trust_store: bool,

    /// Do not verify the identity provider's TLS certificate (testing only; warned about at
    /// start, on /ready and in the metrics).
    #[arg(long, env = "OAUTH2_PROXY_SSL_INSECURE_SKIP_VERIFY", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, value_parser = bool_flag!())]
    pub ssl_insecure_skip_verify: bool,

    /// Client certificate (PEM, with its chain) for mutual TLS to the identity provider; needs
    /// --provider-client-key-file. Not an oauth2-proxy flag.
    #[arg(
        long,
        env = "OAUTH2_PROXY_PROVIDER_CLIENT_CERT_FILE",
        value_name = "PATH"
    )]
    pub provider_client_cert_file: Option<std::path::PathBuf>,

    /// Private key (PEM) of --provider-client-cert-file. Not an oauth2-proxy flag.
    #[arg(
        long,
        env = "OAUTH2_PROXY_PROVIDER_CLIENT_KEY_FILE",
        value_name = "PATH"
    )]
    pub provider_client_key_file: Option<std::path::PathBuf>,

    /// Extra authorization-request parameter KEY=VALUE, e.g. kc_idp_hint=github. Repeatable.
    #[arg(
        long,
        env = "OAUTH2_PROXY_AUTH_REQUEST_PARAMS",
        value_delimiter = ',',
        value_name = "KEY=VALUE"
    )]
    pub auth_request_param: Vec<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the Istio resources for the adapter (mesh config, Gateway, VirtualService or
    /// HTTPRoute, CUSTOM AuthorizationPolicy, EnvoyFilter, Service), or check existing
    /// manifests with --check.
    Istio(IstioArgs),
}

/// The settings read, and what to warn about once logging is set up.
#[derive(Debug)]
pub struct Loaded {
    /// The flags, with the file's values where neither the command line nor the environment
    /// set them.
    pub cli: Cli,
    /// One line per oauth2-proxy flag given but ignored, and per unknown `OAUTH2_PROXY_*`
    /// variable: log each once at start.
    pub warnings: Vec<String>,
}

impl Cli {
    /// Reads the command line `args` (program name first), the `OAUTH2_PROXY_*` environment
    /// and the `--config` file, as oauth2-proxy does ([`oauth2_proxy_compat::load()`]).
    ///
    /// # Errors
    ///
    /// [`CliError::Args`] when the arguments do not parse (also for `--help` and
    /// `--version`: print it with `exit()`), [`CliError::Load`] for the file and for
    /// oauth2-proxy flags whose meaning the adapter cannot honour.
    pub fn load<I, T>(args: I) -> Result<Loaded, CliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let loaded = oauth2_proxy_compat::load(Cli::command(), args)?;
        let cli = Cli::from_arg_matches(&loaded.matches).map_err(CliError::Args)?;
        let warnings = loaded.warnings;
        Ok(Loaded { cli, warnings })
    }
}

#[cfg(feature = "redis")]
impl Cli {
    /// The Redis settings from the `--redis-*` flags, if Redis is configured.
    fn redis_settings(&self) -> Result<Option<oidc_core::store::redis::RedisSettings>, CliError> {
        use oidc_core::store::redis::RedisSettings;
        let invalid = |flag, message: &str| CliError::Invalid {
            flag,
            message: message.to_owned(),
        };
        let mut settings = if self.redis_use_sentinel {
            let master = self.redis_sentinel_master_name.clone().ok_or_else(|| {
                invalid(
                    "--redis-sentinel-master-name",
                    "is required with --redis-use-sentinel",
                )
            })?;
            if self.redis_sentinel_connection_urls.is_empty() {
                return Err(invalid(
                    "--redis-sentinel-connection-urls",
                    "is required with --redis-use-sentinel",
                ));
            }
            RedisSettings::sentinel(master, self.redis_sentinel_connection_urls.clone())
        } else if self.redis_use_cluster {
            if self.redis_cluster_connection_urls.is_empty() {
                return Err(invalid(
                    "--redis-cluster-connection-urls",
                    "is required with --redis-use-cluster",
                ));
            }
            RedisSettings::cluster(self.redis_cluster_connection_urls.clone())
        } else if let Some(url) = &self.redis_connection_url {
            if !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("unix://"))
            {
                return Err(invalid(
                    "--redis-connection-url",
                    "must start with redis://, rediss:// or unix://",
                ));
            }
            RedisSettings::standalone(url.clone())
        } else {
            return Ok(None);
        };
        settings.username.clone_from(&self.redis_username);
        if self.redis_password.is_some() {
            settings.password.clone_from(&self.redis_password);
        }
        settings
            .sentinel_password
            .clone_from(&self.redis_sentinel_password);
        settings.ca_path.clone_from(&self.redis_ca_path);
        settings.insecure_skip_tls_verify = self.redis_insecure_skip_tls_verify;
        if self.redis_connection_idle_timeout > 0 {
            settings.idle_timeout = Some(Duration::from_secs(self.redis_connection_idle_timeout));
        }
        settings.revocation_ttl = self.cookie_expire;
        Ok(Some(settings))
    }
}

/// Where to listen (`flag` names the flag in the error).
pub fn parse_address(flag: &'static str, raw: &str) -> Result<SocketAddr, CliError> {
    let s = raw.trim_start_matches("http://");
    let s = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_owned()
    };
    s.parse().map_err(|_| CliError::Invalid {
        flag,
        message: format!("{raw:?} is not host:port (e.g. 0.0.0.0:4180 or 127.0.0.1:4180)"),
    })
}

impl Cli {
    /// The bearer-token validator for `engine` when `--skip-jwt-bearer-tokens` is on.
    ///
    /// # Errors
    ///
    /// A `--extra-jwt-issuers` entry that is not `ISSUER=AUDIENCE` with an http(s) issuer.
    pub fn bearer_validator(
        &self,
        engine: &oidc_core::Engine,
    ) -> Result<Option<oidc_core::token::bearer::BearerValidator>, CliError> {
        use oidc_core::token::bearer::TrustedIssuer;
        if !self.skip_jwt_bearer_tokens {
            return Ok(None);
        }
        let mut b = engine
            .bearer_validator()
            .audience(engine.config().client_id());
        for a in self.oidc_extra_audience.iter().filter(|a| !a.is_empty()) {
            b = b.audience(a.clone());
        }
        for entry in &self.extra_jwt_issuers {
            let (issuer, audience) = entry
                .rsplit_once('=')
                .filter(|(i, a)| !i.is_empty() && !a.is_empty())
                .ok_or_else(|| CliError::Invalid {
                    flag: "--extra-jwt-issuers",
                    message: format!(
                        "{entry:?} is not ISSUER=AUDIENCE (e.g. https://idp.example.com/realms/b2b=nginx)"
                    ),
                })?;
            b = b.trusted_issuer(TrustedIssuer::new(issuer).audience(audience));
        }
        b.build().map(Some).map_err(|source| CliError::Bearer {
            flag: "--extra-jwt-issuers",
            source,
        })
    }

    /// Validates the flags and builds the engine configuration.
    ///
    /// # Errors
    ///
    /// A [`CliError`] naming the flag: one the command line cannot use, or a setting the
    /// library refused ([`CliError::Config`], printed with flag names).
    pub fn to_config(&self) -> Result<Config, CliError> {
        for up in &self.upstream {
            // `file:///dev/null` is the oauth2-proxy chart's "no upstream" (nginx auth_request).
            if up != "static://200" && up != "file:///dev/null" {
                return Err(CliError::Invalid {
                    flag: "--upstream",
                    message: format!(
                        "{up:?} is not supported: only static://200 or file:///dev/null (Envoy routes to the application; this adapter only decides)"
                    ),
                });
            }
        }
        let missing = |setting| ConfigError::Missing { setting };
        let issuer = self
            .oidc_issuer_url
            .clone()
            .ok_or_else(|| missing(Setting::Issuer))?;
        let client_id = self
            .client_id
            .clone()
            .ok_or_else(|| missing(Setting::ClientId))?;
        let secret = match (&self.client_secret, &self.client_secret_file) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| CliError::Unreadable {
                        flag: "--client-secret-file",
                        path: path.clone(),
                        source,
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let mut b = Config::builder(issuer, client_id)
            .client_auth(self.token_endpoint_auth_method.into())
            .scope(self.scope.clone())
            .cookie(CookieSettings {
                name: self.cookie_name.clone(),
                domains: self.cookie_domain.clone(),
                path: self.cookie_path.clone(),
                secure: self.cookie_secure,
                http_only: self.cookie_httponly,
                same_site: self.cookie_samesite.into(),
                expire: self.cookie_expire,
                refresh: (!self.cookie_refresh.is_zero()).then_some(self.cookie_refresh),
            })
            .proxy_prefix(self.proxy_prefix.clone())
            .skip_provider_button(self.skip_provider_button)
            .whitelist_domains(self.whitelist_domain.clone())
            .set_xauthrequest(self.set_xauthrequest)
            .pass_access_token(self.pass_access_token)
            .set_authorization_header(self.set_authorization_header)
            .skip_nonce(self.insecure_oidc_skip_nonce)
            .allow_unverified_email(self.insecure_oidc_allow_unverified_email)
            .groups_claim(self.oidc_groups_claim.clone())
            .email_domains(self.email_domain.clone())
            .rp_initiated_logout(self.oidc_rp_initiated_logout);
        if let Some(s) = secret.filter(|s| !s.is_empty()) {
            b = b.client_secret(ClientSecret::new(s));
        }
        if let Some(u) = &self.redirect_url {
            b = b.redirect_url(u.clone());
        }
        for s in &self.cookie_secret {
            b = b.cookie_secret(s.clone());
        }
        let mut resolve = Vec::new();
        for r in &self.resolve {
            let parsed = r
                .split_once('=')
                .and_then(|(h, ip)| Some((h.trim().to_owned(), ip.trim().parse().ok()?)))
                .filter(|(h, _)| !h.is_empty());
            resolve.push(parsed.ok_or_else(|| CliError::Invalid {
                flag: "--resolve",
                message: format!("{r:?} is not HOST=IP (e.g. keycloak.example.com=127.0.0.1)"),
            })?);
        }
        b = b
            .resolve(resolve)
            .provider_ca_files(self.provider_ca_file.clone())
            .use_system_trust_store(self.use_system_trust_store)
            .ssl_insecure_skip_verify(self.ssl_insecure_skip_verify)
            .provider_client_cert_file(self.provider_client_cert_file.clone())
            .provider_client_key_file(self.provider_client_key_file.clone());
        b = b
            .skip_auth_routes(self.skip_auth_route.clone())
            .skip_auth_regexes(self.skip_auth_regex.clone())
            .skip_auth_preflight(self.skip_auth_preflight);
        b = b.authorization(oidc_core::Rule::oauth2_proxy(
            self.allowed_group.clone(),
            self.allowed_role.clone(),
        ));
        b = b
            .authorization_rules(self.authorization_rule.clone())
            .trusted_proxy_ips(self.trusted_proxy_ip.clone())
            .reverse_proxy(self.reverse_proxy);
        if let Some(path) = &self.authenticated_emails_file {
            let text = std::fs::read_to_string(path).map_err(|source| CliError::Unreadable {
                flag: "--authenticated-emails-file",
                path: path.clone(),
                source,
            })?;
            b = b.authenticated_emails(text.lines().map(str::to_owned).collect());
        }
        b = b
            .minimal_session(self.session_cookie_minimal)
            .session_store(self.session_store_type.into());
        #[cfg(feature = "redis")]
        if let Some(settings) = self.redis_settings()? {
            b = b.redis(settings);
        }
        #[cfg(not(feature = "redis"))]
        if self.redis_connection_url.is_some() || self.redis_use_sentinel || self.redis_use_cluster
        {
            return Err(CliError::Invalid {
                flag: "--redis-connection-url",
                message: "this build has no Redis support (build with the `redis` feature)"
                    .to_owned(),
            });
        }
        for p in &self.auth_request_param {
            let (k, v) = p
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| CliError::Invalid {
                    flag: "--auth-request-param",
                    message: format!("{p:?} is not KEY=VALUE (e.g. kc_idp_hint=github)"),
                })?;
            b = b.extra_auth_param(k, v);
        }
        Ok(b.build()?)
    }
}
