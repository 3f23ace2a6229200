//! Engine configuration: one typed, validated value built with [`Config::builder`].

use std::time::Duration;

use url::Url;

use crate::config::error::ConfigError;
use crate::config::secret::{ClientSecret, CookieSecret};
use crate::config::setting::Setting;
use crate::policy::redirect::RedirectValidator;

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// HTTP Basic with the client id and secret (`client_secret_basic`, the default).
    #[default]
    Basic,
    /// Client id and secret in the form body (`client_secret_post`).
    Post,
}

/// Where sessions are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionStoreKind {
    /// The whole session, encrypted, in the cookie (no server needed).
    #[default]
    Cookie,
    /// In Redis; the cookie holds a ticket (id + per-session key).
    Redis,
}

/// The cookie `SameSite` attribute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SameSite {
    /// No attribute (the browser's default, Lax in current browsers). oauth2-proxy's default.
    #[default]
    Unset,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=None` (requires Secure).
    None,
}

/// Cookie attributes shared by the session and login-flow cookies.
#[derive(Clone, Debug)]
pub struct CookieSettings {
    /// Base cookie name (`--cookie-name`, default `_oauth2_proxy`).
    pub name: String,
    /// Domains (`--cookie-domain`); the first one that the request host ends with is used.
    pub domains: Vec<String>,
    /// Path (`--cookie-path`, default `/`).
    pub path: String,
    /// The `Secure` attribute (`--cookie-secure`, default true).
    pub secure: bool,
    /// The `HttpOnly` attribute (`--cookie-httponly`, default true).
    pub http_only: bool,
    /// The `SameSite` attribute (`--cookie-samesite`).
    pub same_site: SameSite,
    /// Session lifetime (`--cookie-expire`, default 168h).
    pub expire: Duration,
    /// Refresh the session after this long (`--cookie-refresh`, 0 = off).
    pub refresh: Option<Duration>,
}

impl Default for CookieSettings {
    fn default() -> Self {
        Self {
            name: "_oauth2_proxy".to_owned(),
            domains: Vec::new(),
            path: "/".to_owned(),
            secure: true,
            http_only: true,
            same_site: SameSite::Unset,
            expire: Duration::from_secs(168 * 3600),
            refresh: None,
        }
    }
}

/// What the engine needs to know. Build it with [`Config::builder`]; read-only once built.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The issuer URL, exactly as the provider's discovery document names it.
    pub(crate) issuer: Url,
    /// OAuth client id.
    pub(crate) client_id: String,
    /// OAuth client secret (`None` for a public client using PKCE only).
    pub(crate) client_secret: Option<ClientSecret>,
    /// Token endpoint authentication.
    pub(crate) client_auth: ClientAuthMethod,
    /// Fixed callback URL (`--redirect-url`); derived from the request when unset.
    pub(crate) redirect_url: Option<Url>,
    /// Space-separated scopes (`--scope`).
    pub(crate) scope: String,
    /// Cookie attributes.
    pub(crate) cookie: CookieSettings,
    /// Cookie secrets: the first encrypts, all decrypt.
    pub(crate) cookie_secrets: Vec<CookieSecret>,
    /// Prefix of the engine's own routes (`--proxy-prefix`, default `/oauth2`).
    pub(crate) proxy_prefix: String,
    /// Send navigations straight to the provider instead of a sign-in page.
    pub(crate) skip_provider_button: bool,
    /// Validator for `rd` redirect targets (built from `--whitelist-domain`).
    pub(crate) redirects: RedirectValidator,
    /// Set `X-Auth-Request-*` headers on allow.
    pub(crate) set_xauthrequest: bool,
    /// Pass the access token in `X-Auth-Request-Access-Token`.
    pub(crate) pass_access_token: bool,
    /// Set `Authorization: Bearer <id token>` on allow.
    pub(crate) set_authorization_header: bool,
    /// Do not check the ID token's nonce (insecure; oauth2-proxy's default, not ours).
    pub(crate) skip_nonce: bool,
    /// Accept `email_verified=false`.
    pub(crate) allow_unverified_email: bool,
    /// Claim that carries the groups (`--oidc-groups-claim`, default `groups`).
    pub(crate) groups_claim: String,
    /// Allowed email domains (`--email-domain`); `*` allows any, none allows nobody
    /// (unless the address is among the authenticated emails).
    pub(crate) email_domains: Vec<String>,
    /// Allowed email addresses (`--authenticated-emails-file`), lower case; an
    /// address listed here passes even if its domain is not allowed.
    pub(crate) authenticated_emails: Vec<String>,
    /// Who may pass once signed in (`--allowed-group`, `--allowed-role`: any of them).
    pub(crate) authorization: crate::policy::rule::Rule,
    /// Per host and path rules (`--authorization-rule`); every one that applies must allow.
    pub(crate) authorization_rules: crate::policy::route_rules::RouteRules,
    /// Peers whose `X-Forwarded-Proto`/`-Host`/`-Uri` are believed (`--trusted-proxy-ip`);
    /// everyone when none is given, as oauth2-proxy does.
    pub(crate) trusted_proxies: crate::http::trusted_proxy::TrustedProxies,
    /// Requests that need no login (`--skip-auth-route`, `--skip-auth-regex`).
    pub(crate) skip_auth: crate::policy::skip_auth::SkipAuthRoutes,
    /// Let CORS preflight requests through without a login (`--skip-auth-preflight`).
    pub(crate) skip_auth_preflight: bool,
    /// Extra query parameters for the authorization request (e.g. `kc_idp_hint`).
    pub(crate) extra_auth_params: Vec<(String, String)>,
    /// On sign-out, also end the provider's session (OpenID RP-Initiated Logout:
    /// `id_token_hint` and `post_logout_redirect_uri`, as Keycloak 18+ requires).
    pub(crate) rp_initiated_logout: bool,
    /// Clock skew tolerated on `exp`, `iat` and `nbf`.
    pub(crate) leeway: Duration,
    /// How long a login may take between start and callback.
    pub(crate) flow_ttl: Duration,
    /// At most this many logins in progress per browser; the oldest is dropped.
    pub(crate) max_flows: usize,
    /// Minimum time between two JWKS fetches triggered by an unknown `kid`.
    pub(crate) jwks_refetch_interval: Duration,
    /// Timeout for each call to the identity provider.
    pub(crate) http_timeout: Duration,
    /// Where sessions are kept (`--session-store-type`).
    pub(crate) session_store: SessionStoreKind,
    /// Redis, for the Redis session store, and in cookie mode for revocation
    /// (back-channel logout) and one refresh across replicas.
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<crate::store::redis::RedisSettings>,
    /// Keep tokens out of cookie sessions (`--session-cookie-minimal`): small
    /// cookies, but no refresh, no Authorization header and no access token upstream.
    pub(crate) minimal_session: bool,
    /// Host names resolved to fixed addresses for calls to the provider (like
    /// curl's `--resolve`), for setups where the issuer's public name is not
    /// resolvable from the adapter (local demos, split-horizon DNS).
    pub(crate) resolve: Vec<(String, std::net::IpAddr)>,
    /// TLS to the provider: `--provider-ca-file`, `--use-system-trust-store`,
    /// `--ssl-insecure-skip-verify`.
    pub(crate) provider_tls: crate::config::tls::ProviderTls,
}

impl Config {
    /// Starts a configuration for an issuer and client id.
    pub fn builder(issuer: impl Into<String>, client_id: impl Into<String>) -> ConfigBuilder {
        ConfigBuilder::new(issuer.into(), client_id.into())
    }

    /// The issuer URL, exactly as the provider's discovery document names it.
    #[must_use]
    pub fn issuer(&self) -> &Url {
        &self.issuer
    }

    /// The OAuth client id.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The prefix of the engine's own routes (`/oauth2`).
    #[must_use]
    pub fn proxy_prefix(&self) -> &str {
        &self.proxy_prefix
    }

    /// The session cookie's settings.
    #[must_use]
    pub fn cookie(&self) -> &CookieSettings {
        &self.cookie
    }

    /// The provider TLS settings (CA files, client certificate, insecure mode).
    #[must_use]
    pub fn provider_tls(&self) -> &crate::config::tls::ProviderTls {
        &self.provider_tls
    }

    /// Whose `X-Forwarded-*` headers are believed.
    #[must_use]
    pub fn trusted_proxies(&self) -> &crate::http::trusted_proxy::TrustedProxies {
        &self.trusted_proxies
    }

    /// The path of the callback route (`<prefix>/callback`).
    #[must_use]
    pub fn callback_path(&self) -> String {
        format!("{}/callback", self.proxy_prefix)
    }
}

/// Builder for [`Config`]. Every setter is optional except the cookie secret. Nothing is
/// checked until [`ConfigBuilder::build`], whose errors name the setting by its
/// [`Setting`] (`cookie_secret`, `cookie.refresh`, ...).
#[derive(Debug)]
#[must_use]
pub struct ConfigBuilder {
    issuer: String,
    client_id: String,
    client_secret: Option<ClientSecret>,
    client_auth: ClientAuthMethod,
    redirect_url: Option<String>,
    scope: String,
    cookie: CookieSettings,
    cookie_secrets: Vec<String>,
    proxy_prefix: String,
    skip_provider_button: bool,
    whitelist_domains: Vec<String>,
    set_xauthrequest: bool,
    pass_access_token: bool,
    set_authorization_header: bool,
    skip_nonce: bool,
    allow_unverified_email: bool,
    groups_claim: String,
    /// `None`: not set (see [`ConfigBuilder::email_domains`] for the library default).
    email_domains: Option<Vec<String>>,
    authenticated_emails: Vec<String>,
    authorization: crate::policy::rule::Rule,
    authorization_rules: Vec<String>,
    trusted_proxy_ips: Vec<String>,
    reverse_proxy: bool,
    skip_auth_routes: Vec<String>,
    skip_auth_regexes: Vec<String>,
    skip_auth_preflight: bool,
    extra_auth_params: Vec<(String, String)>,
    rp_initiated_logout: bool,
    leeway: Duration,
    flow_ttl: Duration,
    max_flows: usize,
    jwks_refetch_interval: Duration,
    http_timeout: Duration,
    resolve: Vec<(String, std::net::IpAddr)>,
    provider_ca_files: Vec<std::path::PathBuf>,
    use_system_trust_store: bool,
    ssl_insecure_skip_verify: bool,
    provider_client_cert_file: Option<std::path::PathBuf>,
    provider_client_key_file: Option<std::path::PathBuf>,
    session_store: SessionStoreKind,
    #[cfg(feature = "redis")]
    redis: Option<crate::store::redis::RedisSettings>,
    minimal_session: bool,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
}

impl ConfigBuilder {
    fn new(issuer: String, client_id: String) -> Self {
        Self {
            issuer,
            client_id,
            client_secret: None,
            client_auth: ClientAuthMethod::Basic,
            redirect_url: None,
            scope: "openid email profile".to_owned(),
            cookie: CookieSettings::default(),
            cookie_secrets: Vec::new(),
            proxy_prefix: "/oauth2".to_owned(),
            skip_provider_button: false,
            whitelist_domains: Vec::new(),
            set_xauthrequest: false,
            pass_access_token: false,
            set_authorization_header: false,
            skip_nonce: false,
            allow_unverified_email: false,
            groups_claim: "groups".to_owned(),
            email_domains: None,
            authenticated_emails: Vec::new(),
            authorization: crate::policy::rule::Rule::authenticated(),
            authorization_rules: Vec::new(),
            trusted_proxy_ips: Vec::new(),
            reverse_proxy: false,
            skip_auth_routes: Vec::new(),
            skip_auth_regexes: Vec::new(),
            skip_auth_preflight: false,
            extra_auth_params: Vec::new(),
            rp_initiated_logout: false,
            leeway: Duration::from_secs(30),
            flow_ttl: Duration::from_secs(15 * 60),
            max_flows: 5,
            jwks_refetch_interval: Duration::from_secs(10),
            http_timeout: Duration::from_secs(10),
            resolve: Vec::new(),
            provider_ca_files: Vec::new(),
            use_system_trust_store: false,
            ssl_insecure_skip_verify: false,
            provider_client_cert_file: None,
            provider_client_key_file: None,
            session_store: SessionStoreKind::Cookie,
            #[cfg(feature = "redis")]
            redis: None,
            minimal_session: false,
        }
    }

    /// The client secret.
    pub fn client_secret(mut self, secret: ClientSecret) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// A fixed callback URL.
    pub fn redirect_url(mut self, url: impl Into<String>) -> Self {
        self.redirect_url = Some(url.into());
        self
    }

    /// Adds a cookie secret; the first one added encrypts, all decrypt.
    pub fn cookie_secret(mut self, secret: impl Into<String>) -> Self {
        self.cookie_secrets.push(secret.into());
        self
    }

    /// Adds an extra authorization request parameter (e.g. `kc_idp_hint`).
    pub fn extra_auth_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_auth_params.push((name.into(), value.into()));
        self
    }

    setter!(/// Token endpoint authentication method.
        client_auth: ClientAuthMethod);
    setter!(/// Space-separated scopes; must include `openid`.
        scope: String);
    setter!(/// Cookie attributes.
        cookie: CookieSettings);
    setter!(/// Prefix of the engine's own routes.
        proxy_prefix: String);
    setter!(/// Redirect navigations straight to the provider.
        skip_provider_button: bool);
    setter!(/// Domains allowed as absolute `rd` targets.
        whitelist_domains: Vec<String>);
    setter!(/// Set `X-Auth-Request-*` headers.
        set_xauthrequest: bool);
    setter!(/// Pass the access token upstream.
        pass_access_token: bool);
    setter!(/// Set `Authorization: Bearer <id token>` upstream.
        set_authorization_header: bool);
    setter!(/// Skip the nonce check (insecure).
        skip_nonce: bool);
    setter!(/// Accept unverified emails.
        allow_unverified_email: bool);
    setter!(/// Claim carrying the groups.
        groups_claim: String);
    setter!(/// Who may pass once signed in.
        authorization: crate::policy::rule::Rule);
    setter!(/// `--authorization-rule` values (`[HOST][PATH_REGEX]=group:G,role:R`, see
        /// [`crate::policy::route_rules`]).
        authorization_rules: Vec<String>);
    setter!(/// `--trusted-proxy-ip` values (IP addresses and CIDR ranges, see
        /// [`crate::http::trusted_proxy`]): with [`ConfigBuilder::reverse_proxy`], whose
        /// `X-Forwarded-*` are believed; none trusts everyone.
        trusted_proxy_ips: Vec<String>);
    setter!(/// `--reverse-proxy`: believe `X-Forwarded-Proto`, `-Host` and `-Uri` (from the
        /// [`ConfigBuilder::trusted_proxy_ips`]) when building URLs and at `<prefix>/auth`.
        /// Default `false`: they are ignored. Host rules never use them.
        reverse_proxy: bool);
    setter!(/// `--skip-auth-route` rules (`METHOD=regex`, `METHOD!=regex`, `regex`, `!=regex`).
        skip_auth_routes: Vec<String>);
    setter!(/// `--skip-auth-regex` rules (any method).
        skip_auth_regexes: Vec<String>);
    setter!(/// Let CORS preflights through.
        skip_auth_preflight: bool);

    /// Allowed email domains (`*` = any, `.example.com` = its subdomains; an empty list
    /// allows nobody but [`ConfigBuilder::authenticated_emails`]).
    ///
    /// Not set, the library allows any signed-in user (as if `*`), or only the
    /// authenticated emails when those are given. (The adapter's command line keeps
    /// oauth2-proxy's default instead: without `--email-domain`, nobody.)
    pub fn email_domains(mut self, domains: Vec<String>) -> Self {
        self.email_domains = Some(domains);
        self
    }

    /// Allowed email addresses (in addition to allowed domains).
    pub fn authenticated_emails(mut self, emails: Vec<String>) -> Self {
        self.authenticated_emails = emails
            .into_iter()
            .map(|e| e.trim().to_ascii_lowercase())
            .filter(|e| !e.is_empty())
            .collect();
        self
    }
    setter!(/// End the provider's session on sign-out (RP-Initiated Logout).
        rp_initiated_logout: bool);
    setter!(/// Clock skew tolerance.
        leeway: Duration);
    setter!(/// Maximum duration of a login.
        flow_ttl: Duration);
    setter!(/// Maximum concurrent logins per browser.
        max_flows: usize);
    setter!(/// Minimum interval between JWKS refetches.
        jwks_refetch_interval: Duration);
    setter!(/// Timeout of calls to the provider.
        http_timeout: Duration);
    setter!(/// Where sessions are kept.
        session_store: SessionStoreKind);
    setter!(/// Keep tokens out of cookie sessions.
        minimal_session: bool);

    /// Redis settings (session store, revocation, cross-replica refresh).
    #[cfg(feature = "redis")]
    pub fn redis(mut self, settings: crate::store::redis::RedisSettings) -> Self {
        self.redis = Some(settings);
        self
    }

    setter!(/// Fixed addresses for provider host names.
        resolve: Vec<(String, std::net::IpAddr)>);
    setter!(/// `--provider-ca-file`: PEM bundles of the CAs that sign the provider's
        /// certificate (and the extra JWT issuers'). With any, only these are trusted
        /// unless [`ConfigBuilder::use_system_trust_store`] is set; without, the public
        /// (webpki) roots and the operating system's store are. Read by [`ConfigBuilder::build`].
        provider_ca_files: Vec<std::path::PathBuf>);
    setter!(/// `--use-system-trust-store`: with CA files, trust the public roots and the
        /// operating system's store as well (default `false`, oauth2-proxy's).
        use_system_trust_store: bool);
    setter!(/// `--ssl-insecure-skip-verify`: do not verify the provider's certificate at
        /// all (default `false`). For testing only: warned about at start, on `/ready`
        /// and in the metrics (`oidc_authz_insecure_tls`).
        ssl_insecure_skip_verify: bool);
    setter!(/// `--provider-client-cert-file`: a client certificate (PEM, with its chain)
        /// for mutual TLS to the provider; needs [`ConfigBuilder::provider_client_key_file`].
        provider_client_cert_file: Option<std::path::PathBuf>);
    setter!(/// `--provider-client-key-file`: the private key (PEM) of the client certificate.
        provider_client_key_file: Option<std::path::PathBuf>);

    /// A minimal session keeps no tokens: every setting that needs one would be
    /// silently dropped (and, for a header, a client's own copy would reach the app).
    fn check_minimal_session(&self) -> Result<(), ConfigError> {
        if !self.minimal_session {
            return Ok(());
        }
        let needs_tokens = [
            (
                self.set_authorization_header,
                Setting::SetAuthorizationHeader,
                "a minimal session keeps no tokens, and the Authorization header needs the ID token; drop one of the two",
            ),
            (
                self.pass_access_token,
                Setting::PassAccessToken,
                "a minimal session keeps no tokens, and X-Auth-Request-Access-Token needs the access token; drop one of the two",
            ),
            (
                self.cookie.refresh.is_some(),
                Setting::CookieRefresh,
                "a minimal session keeps no tokens, and a refresh needs the refresh token; drop one of the two",
            ),
        ];
        match needs_tokens.into_iter().find(|(on, _, _)| *on) {
            Some((_, other, why)) => Err(ConfigError::Conflict {
                setting: Setting::MinimalSession,
                other,
                why,
            }),
            None => Ok(()),
        }
    }

    /// Validates everything and builds the configuration. Reads the provider's CA and
    /// client certificate files; no network I/O.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found. It names the setting concerned
    /// ([`ConfigError::setting`], spelt in messages by [`Setting::name`], e.g.
    /// `cookie.refresh`) and what is wrong; the error behind it (an unreadable file's
    /// `io::Error`, a rule's regex error, ...) is its `source()`. Print the whole chain with
    /// [`crate::error::chain::chain`]:
    ///
    /// ```
    /// use std::time::Duration;
    /// use oidc_core::{Config, CookieSettings, Setting};
    ///
    /// let err = Config::builder("https://idp.example.com/realms/x", "app")
    ///     .cookie_secret("0123456789abcdef")
    ///     .cookie(CookieSettings {
    ///         expire: Duration::from_secs(3600),
    ///         refresh: Some(Duration::from_secs(7200)),
    ///         ..CookieSettings::default()
    ///     })
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), Some(Setting::CookieRefresh));
    /// assert_eq!(
    ///     oidc_core::error::chain(&err),
    ///     "cookie.refresh (7200s) must be shorter than cookie.expire (3600s)"
    /// );
    /// ```
    pub fn build(self) -> Result<Config, ConfigError> {
        self.check_minimal_session()?;
        let provider_tls = crate::config::tls::ProviderTls {
            ca_files: self
                .provider_ca_files
                .iter()
                .map(|p| crate::config::tls::CaFile::read(p.clone()))
                .collect::<Result<_, _>>()?,
            use_system_trust_store: self.use_system_trust_store,
            insecure_skip_verify: self.ssl_insecure_skip_verify,
            client_identity: match (
                self.provider_client_cert_file,
                self.provider_client_key_file,
            ) {
                (None, None) => None,
                (Some(cert), Some(key)) => {
                    Some(crate::config::tls::ClientIdentity::read(cert, key)?)
                }
                (Some(_), None) => {
                    return Err(ConfigError::RequiredWith {
                        setting: Setting::ProviderClientKeyFile,
                        with: Setting::ProviderClientCertFile,
                    });
                }
                (None, Some(_)) => {
                    return Err(ConfigError::RequiredWith {
                        setting: Setting::ProviderClientCertFile,
                        with: Setting::ProviderClientKeyFile,
                    });
                }
            },
        };
        let issuer = parse_http_url(Setting::Issuer, &self.issuer)?;
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::Missing {
                setting: Setting::ClientId,
            });
        }
        if self.cookie_secrets.is_empty() {
            return Err(ConfigError::Missing {
                setting: Setting::CookieSecret,
            });
        }
        let cookie_secrets = self
            .cookie_secrets
            .iter()
            .map(|s| CookieSecret::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        let redirect_url = match self.redirect_url.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => Some(parse_http_url(Setting::RedirectUrl, raw)?),
        };
        if !self.scope.split_whitespace().any(|s| s == "openid") {
            return Err(ConfigError::Invalid {
                setting: Setting::Scope,
                reason: format!("{:?} must include \"openid\"", self.scope),
            });
        }
        let prefix = self.proxy_prefix.trim_end_matches('/').to_owned();
        if !prefix.starts_with('/') || prefix.contains(['?', '#', '\\']) {
            return Err(ConfigError::Invalid {
                setting: Setting::ProxyPrefix,
                reason: format!(
                    "{:?} must be an absolute path such as /oauth2",
                    self.proxy_prefix
                ),
            });
        }
        if !is_cookie_name(&self.cookie.name) {
            return Err(ConfigError::Invalid {
                setting: Setting::CookieName,
                reason: format!(
                    "{:?} is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~ only)",
                    self.cookie.name
                ),
            });
        }
        if self.cookie.same_site == SameSite::None && !self.cookie.secure {
            return Err(ConfigError::Conflict {
                setting: Setting::CookieSameSite,
                other: Setting::CookieSecure,
                why: "SameSite=None cookies must be Secure (browsers drop them otherwise); make the cookie Secure, or choose another SameSite",
            });
        }
        if self.cookie.expire.is_zero() {
            return Err(ConfigError::Invalid {
                setting: Setting::CookieExpire,
                reason: "must be longer than 0 (e.g. 4h)".to_owned(),
            });
        }
        if let Some(refresh) = self.cookie.refresh
            && refresh >= self.cookie.expire
        {
            return Err(ConfigError::NotShorter {
                setting: Setting::CookieRefresh,
                value: refresh,
                than: Setting::CookieExpire,
                limit: self.cookie.expire,
            });
        }
        if self.max_flows == 0 {
            return Err(ConfigError::Invalid {
                setting: Setting::MaxFlows,
                reason: "must be at least 1".to_owned(),
            });
        }
        #[cfg(feature = "redis")]
        let has_redis = self.redis.is_some();
        #[cfg(not(feature = "redis"))]
        let has_redis = false;
        if self.session_store == SessionStoreKind::Redis && !has_redis {
            return Err(if cfg!(feature = "redis") {
                ConfigError::RequiredWith {
                    setting: Setting::Redis,
                    with: Setting::SessionStore,
                }
            } else {
                ConfigError::Invalid {
                    setting: Setting::SessionStore,
                    reason: "Redis is not available in this build (oidc-core without the `redis` feature)"
                        .to_owned(),
                }
            });
        }
        let redirects = RedirectValidator::new(&self.whitelist_domains)?;
        let authorization_rules =
            crate::policy::route_rules::RouteRules::new(&self.authorization_rules)?;
        // Parsed either way, so a typo is reported even while the list has no effect.
        let listed = crate::http::trusted_proxy::TrustedProxies::new(&self.trusted_proxy_ips)?;
        let trusted_proxies = if self.reverse_proxy {
            listed
        } else {
            if !self.trusted_proxy_ips.is_empty() {
                tracing::warn!(
                    "{} has no effect without {}: X-Forwarded-* headers are ignored",
                    Setting::TrustedProxyIps,
                    Setting::ReverseProxy
                );
            }
            crate::http::trusted_proxy::TrustedProxies::none()
        };
        let skip_auth = crate::policy::skip_auth::SkipAuthRoutes::from_flags(
            &self.skip_auth_routes,
            &self.skip_auth_regexes,
        )?;
        for w in skip_auth.warnings() {
            tracing::warn!("{w}");
        }
        crate::config::cookie_prefix::validate_cookie_prefix(
            &self.cookie.name,
            self.cookie.secure,
            &self.cookie.path,
            &self.cookie.domains,
        )?;
        Ok(Config {
            issuer,
            client_id: self.client_id,
            client_secret: self.client_secret,
            client_auth: self.client_auth,
            redirect_url,
            scope: self.scope,
            cookie: self.cookie,
            cookie_secrets,
            proxy_prefix: prefix,
            skip_provider_button: self.skip_provider_button,
            redirects,
            set_xauthrequest: self.set_xauthrequest,
            pass_access_token: self.pass_access_token,
            set_authorization_header: self.set_authorization_header,
            skip_nonce: self.skip_nonce,
            allow_unverified_email: self.allow_unverified_email,
            groups_claim: self.groups_claim,
            email_domains: self.email_domains.unwrap_or_else(|| {
                if self.authenticated_emails.is_empty() {
                    vec!["*".to_owned()]
                } else {
                    Vec::new()
                }
            }),
            authenticated_emails: self.authenticated_emails,
            authorization: self.authorization,
            authorization_rules,
            trusted_proxies,
            skip_auth,
            skip_auth_preflight: self.skip_auth_preflight,
            extra_auth_params: self.extra_auth_params,
            rp_initiated_logout: self.rp_initiated_logout,
            leeway: self.leeway,
            flow_ttl: self.flow_ttl,
            max_flows: self.max_flows,
            jwks_refetch_interval: self.jwks_refetch_interval,
            http_timeout: self.http_timeout,
            resolve: self.resolve,
            provider_tls,
            session_store: self.session_store,
            #[cfg(feature = "redis")]
            redis: self.redis,
            minimal_session: self.minimal_session,
        })
    }
}

/// `raw` as an absolute http(s) URL with a host, or the error naming `setting`.
fn parse_http_url(setting: Setting, raw: &str) -> Result<Url, ConfigError> {
    let not_http = |source| ConfigError::NotHttpUrl {
        setting,
        value: raw.to_owned(),
        source,
    };
    let url = Url::parse(raw).map_err(|e| not_http(Some(e)))?;
    if matches!(url.scheme(), "http" | "https") && url.host().is_some() {
        Ok(url)
    } else {
        Err(not_http(None))
    }
}

/// RFC 6265 `token` characters.
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn builds_with_defaults() {
        let c = Config::builder("https://idp.example.com/realms/x", "app")
            .cookie_secret(SECRET)
            .build()
            .unwrap();
        assert_eq!(c.proxy_prefix, "/oauth2");
        assert_eq!(c.callback_path(), "/oauth2/callback");
        assert!(c.cookie.secure && c.cookie.http_only);
    }

    #[test]
    fn library_default_allows_any_email_and_the_explicit_list_wins() {
        let b = || Config::builder("https://idp.example.com/realms/x", "app").cookie_secret(SECRET);
        assert_eq!(b().build().unwrap().email_domains, ["*"]);
        let listed = b()
            .authenticated_emails(vec!["a@example.com".into()])
            .build()
            .unwrap();
        assert!(listed.email_domains.is_empty(), "only the listed addresses");
        let nobody = b().email_domains(Vec::new()).build().unwrap();
        assert!(
            nobody.email_domains.is_empty(),
            "as the command line's default"
        );
    }

    #[test]
    fn minimal_sessions_refuse_settings_that_need_tokens() {
        let base = || {
            Config::builder("https://idp.example.com/realms/x", "app")
                .cookie_secret(SECRET)
                .minimal_session(true)
        };
        assert!(base().build().is_ok());
        for b in [
            base().set_authorization_header(true),
            base().pass_access_token(true),
            base().cookie(CookieSettings {
                refresh: Some(Duration::from_secs(60)),
                ..CookieSettings::default()
            }),
        ] {
            let err = b.build().unwrap_err();
            assert!(matches!(err, ConfigError::Conflict { .. }), "{err}");
        }
    }

    /// The library's errors name its own settings, never a command-line flag (`--x`; the
    /// cookie-secret hint's `tr -- '+/'` is a shell command, not a flag).
    fn names_no_flag(text: &str) -> bool {
        !text
            .match_indices("--")
            .any(|(i, _)| text[i + 2..].starts_with(|c: char| c.is_ascii_lowercase()))
    }

    /// The error's whole chain, checked to name no flag.
    fn refused(b: ConfigBuilder) -> (ConfigError, String) {
        let err = b.build().unwrap_err();
        let text = crate::error::chain::chain(&err);
        assert!(names_no_flag(&text), "{text}");
        (err, text)
    }

    #[test]
    fn names_the_setting_on_bad_values() {
        let b = |issuer: &str| Config::builder(issuer, "app").cookie_secret(SECRET);
        let (err, text) = refused(b("not a url"));
        assert_eq!(err.setting(), Some(Setting::Issuer));
        assert!(text.starts_with("issuer: \"not a url\""), "{text}");
        assert!(
            std::error::Error::source(&err).is_some_and(|s| s.is::<url::ParseError>()),
            "{text}"
        );
        let (_, text) = refused(b("ftp://x"));
        assert!(text.starts_with("issuer: \"ftp://x\""), "{text}");
        let (err, text) = refused(Config::builder("https://x", "app").cookie_secret("short"));
        assert!(
            matches!(err, ConfigError::SecretLength { len: 5, .. }),
            "{text}"
        );
        assert!(
            text.starts_with("cookie_secret: ") && text.contains("openssl rand"),
            "{text}"
        );
        let (err, text) = refused(Config::builder("https://x", "app"));
        assert!(
            matches!(
                err,
                ConfigError::Missing {
                    setting: Setting::CookieSecret
                }
            ),
            "{text}"
        );
        let (_, text) = refused(Config::builder("https://x", " ").cookie_secret(SECRET));
        assert!(text.starts_with("client_id is required"), "{text}");
        let (_, text) = refused(b("https://x").scope("email".into()));
        assert!(text.starts_with("scope: "), "{text}");
        let (_, text) = refused(b("https://x").redirect_url("/callback"));
        assert!(text.starts_with("redirect_url: "), "{text}");
        let (_, text) = refused(b("https://x").proxy_prefix("oauth2".into()));
        assert!(text.starts_with("proxy_prefix: "), "{text}");
        let (_, text) = refused(b("https://x").cookie(CookieSettings {
            name: "bad name;".into(),
            ..CookieSettings::default()
        }));
        assert!(text.starts_with("cookie.name: "), "{text}");
        let (_, text) = refused(b("https://x").cookie(CookieSettings {
            same_site: SameSite::None,
            secure: false,
            ..CookieSettings::default()
        }));
        assert!(
            text.starts_with("cookie.same_site conflicts with cookie.secure: "),
            "{text}"
        );
        let (_, text) = refused(b("https://x").cookie(CookieSettings {
            expire: Duration::from_secs(60),
            refresh: Some(Duration::from_secs(120)),
            ..CookieSettings::default()
        }));
        assert_eq!(
            text,
            "cookie.refresh (120s) must be shorter than cookie.expire (60s)"
        );
        let (_, text) = refused(b("https://x").max_flows(0));
        assert!(text.starts_with("max_flows: "), "{text}");
        let (_, text) = refused(b("https://x").session_store(SessionStoreKind::Redis));
        assert!(text.contains("session_store"), "{text}");
        let (_, text) = refused(b("https://x").whitelist_domains(vec!["exa mple.com".into()]));
        assert!(
            text.starts_with("whitelist_domains: invalid entry: `exa mple.com`"),
            "{text}"
        );
        let (_, text) = refused(b("https://x").trusted_proxy_ips(vec!["10.0.0.0/33".into()]));
        assert!(
            text.starts_with("trusted_proxy_ips: invalid entry: \"10.0.0.0/33\""),
            "{text}"
        );
        let (_, text) = refused(b("https://x").authorization_rules(vec!["^/a=x".into()]));
        assert!(
            text.starts_with("authorization_rules: invalid rule: \"^/a=x\""),
            "{text}"
        );
        let (_, text) = refused(b("https://x").authorization_rules(vec!["=group:x".into()]));
        assert_eq!(
            text,
            "authorization_rules: a requirement for every request belongs in authorization: \"=group:x\" names neither a host nor a path"
        );
        let (_, text) = refused(b("https://x").cookie(CookieSettings {
            name: "__Host-auth".into(),
            domains: vec![".example.com".into()],
            ..CookieSettings::default()
        }));
        assert!(
            text.starts_with("cookie.domains must be empty with this cookie.name: "),
            "{text}"
        );
        let (_, text) = refused(b("https://x").minimal_session(true).pass_access_token(true));
        assert!(
            text.starts_with("minimal_session conflicts with pass_access_token: "),
            "{text}"
        );
    }

    #[test]
    fn a_bad_skip_auth_regex_keeps_the_regex_error_as_source() {
        let (err, text) = refused(
            Config::builder("https://x", "app")
                .cookie_secret(SECRET)
                .skip_auth_routes(vec!["GET=^/(".into()]),
        );
        assert_eq!(err.setting(), Some(Setting::SkipAuthRoutes));
        assert!(
            text.starts_with("skip_auth_routes: invalid rule: \"GET=^/(\" is not a valid regex: "),
            "{text}"
        );
        let rule = std::error::Error::source(&err).expect("the rule's error");
        assert!(
            rule.is::<crate::policy::skip_auth::SkipAuthError>(),
            "{rule}"
        );
        assert!(
            rule.source().is_some_and(|r| r.is::<regex::Error>()),
            "{text}"
        );
        let (err, _) = refused(
            Config::builder("https://x", "app")
                .cookie_secret(SECRET)
                .skip_auth_regexes(vec!["[".into()]),
        );
        assert_eq!(err.setting(), Some(Setting::SkipAuthRegexes));
    }

    #[test]
    fn display_with_spells_every_setting_by_the_front_ends_names() {
        let err = Config::builder("https://x", "app")
            .cookie_secret(SECRET)
            .cookie(CookieSettings {
                expire: Duration::from_secs(60),
                refresh: Some(Duration::from_secs(120)),
                ..CookieSettings::default()
            })
            .build()
            .unwrap_err();
        let flag = |s: Setting| match s {
            Setting::CookieRefresh => "--cookie-refresh",
            Setting::CookieExpire => "--cookie-expire",
            _ => "--other",
        };
        assert_eq!(
            err.display_with(flag).to_string(),
            "--cookie-refresh (120s) must be shorter than --cookie-expire (60s)"
        );
    }
}
