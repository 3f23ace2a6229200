//! The names of the settings a configuration error can be about.
//!
//! A `ConfigError` names the setting it concerns as a [`Setting`];
//! its message spells it with the library's name ([`Setting::name`]). A front end with
//! other names (the adapter's command-line flags) maps each `Setting` to its own.

use std::fmt;

/// A setting of `ConfigBuilder`, or a field of the
/// `CookieSettings` it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// The issuer URL, the first argument of `Config::builder`.
    Issuer,
    /// The OAuth client id, the second argument of `Config::builder`.
    ClientId,
    /// `ConfigBuilder::client_secret`.
    ClientSecret,
    /// `ConfigBuilder::cookie_secret`.
    CookieSecret,
    /// `CookieSettings::name`.
    CookieName,
    /// `CookieSettings::domains`.
    CookieDomains,
    /// `CookieSettings::path`.
    CookiePath,
    /// `CookieSettings::secure`.
    CookieSecure,
    /// `CookieSettings::same_site`.
    CookieSameSite,
    /// `CookieSettings::expire`.
    CookieExpire,
    /// `CookieSettings::refresh`.
    CookieRefresh,
    /// `ConfigBuilder::redirect_url`.
    RedirectUrl,
    /// `ConfigBuilder::scope`.
    Scope,
    /// `ConfigBuilder::proxy_prefix`.
    ProxyPrefix,
    /// `ConfigBuilder::whitelist_domains`.
    WhitelistDomains,
    /// `ConfigBuilder::set_authorization_header`.
    SetAuthorizationHeader,
    /// `ConfigBuilder::pass_access_token`.
    PassAccessToken,
    /// `ConfigBuilder::authorization`.
    Authorization,
    /// `ConfigBuilder::authorization_rules`.
    AuthorizationRules,
    /// `ConfigBuilder::trusted_proxy_ips`.
    TrustedProxyIps,
    /// `ConfigBuilder::reverse_proxy`.
    ReverseProxy,
    /// `ConfigBuilder::skip_auth_routes`.
    SkipAuthRoutes,
    /// `ConfigBuilder::skip_auth_regexes`.
    SkipAuthRegexes,
    /// `ConfigBuilder::max_flows`.
    MaxFlows,
    /// `ConfigBuilder::session_store`.
    SessionStore,
    /// `ConfigBuilder::redis` (with the `redis` feature): the Redis settings.
    Redis,
    /// `ConfigBuilder::minimal_session`.
    MinimalSession,
    /// `ConfigBuilder::provider_ca_files`.
    ProviderCaFiles,
    /// `ConfigBuilder::provider_client_cert_file`.
    ProviderClientCertFile,
    /// `ConfigBuilder::provider_client_key_file`.
    ProviderClientKeyFile,
}

impl Setting {
    /// Every setting, for front ends that check their own names for each.
    pub const ALL: &'static [Setting] = &[
        Self::Issuer,
        Self::ClientId,
        Self::ClientSecret,
        Self::CookieSecret,
        Self::CookieName,
        Self::CookieDomains,
        Self::CookiePath,
        Self::CookieSecure,
        Self::CookieSameSite,
        Self::CookieExpire,
        Self::CookieRefresh,
        Self::RedirectUrl,
        Self::Scope,
        Self::ProxyPrefix,
        Self::WhitelistDomains,
        Self::SetAuthorizationHeader,
        Self::PassAccessToken,
        Self::Authorization,
        Self::AuthorizationRules,
        Self::TrustedProxyIps,
        Self::ReverseProxy,
        Self::SkipAuthRoutes,
        Self::SkipAuthRegexes,
        Self::MaxFlows,
        Self::SessionStore,
        Self::Redis,
        Self::MinimalSession,
        Self::ProviderCaFiles,
        Self::ProviderClientCertFile,
        Self::ProviderClientKeyFile,
    ];

    /// The library's name for the setting: the `ConfigBuilder`
    /// method (`cookie_secret`), or `cookie.<field>` for a
    /// `CookieSettings` field (`cookie.refresh`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Issuer => "issuer",
            Self::ClientId => "client_id",
            Self::ClientSecret => "client_secret",
            Self::CookieSecret => "cookie_secret",
            Self::CookieName => "cookie.name",
            Self::CookieDomains => "cookie.domains",
            Self::CookiePath => "cookie.path",
            Self::CookieSecure => "cookie.secure",
            Self::CookieSameSite => "cookie.same_site",
            Self::CookieExpire => "cookie.expire",
            Self::CookieRefresh => "cookie.refresh",
            Self::RedirectUrl => "redirect_url",
            Self::Scope => "scope",
            Self::ProxyPrefix => "proxy_prefix",
            Self::WhitelistDomains => "whitelist_domains",
            Self::SetAuthorizationHeader => "set_authorization_header",
            Self::PassAccessToken => "pass_access_token",
            Self::Authorization => "authorization",
            Self::AuthorizationRules => "authorization_rules",
            Self::TrustedProxyIps => "trusted_proxy_ips",
            Self::ReverseProxy => "reverse_proxy",
            Self::SkipAuthRoutes => "skip_auth_routes",
            Self::SkipAuthRegexes => "skip_auth_regexes",
            Self::MaxFlows => "max_flows",
            Self::SessionStore => "session_store",
            Self::Redis => "redis",
            Self::MinimalSession => "minimal_session",
            Self::ProviderCaFiles => "provider_ca_files",
            Self::ProviderClientCertFile => "provider_client_cert_file",
            Self::ProviderClientKeyFile => "provider_client_key_file",
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_no_flags() {
        let mut seen = std::collections::HashSet::new();
        for s in Setting::ALL {
            assert!(seen.insert(s.name()), "{s:?} named twice");
            assert!(!s.name().starts_with('-'), "{s:?}");
        }
    }
}
