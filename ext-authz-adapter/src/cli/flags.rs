//! The one map from the library's settings to this command line's flags.

use oidc_core::Setting;

/// The flag that sets `setting` (`Setting::CookieRefresh` -> `--cookie-refresh`). A setting
/// the command line has no flag for keeps the library's name.
#[must_use]
pub fn flag(setting: Setting) -> &'static str {
    match setting {
        Setting::Issuer => "--oidc-issuer-url",
        Setting::ClientId => "--client-id",
        Setting::ClientSecret => "--client-secret",
        Setting::CookieSecret => "--cookie-secret",
        Setting::CookieName => "--cookie-name",
        Setting::CookieDomains => "--cookie-domain",
        Setting::CookiePath => "--cookie-path",
        Setting::CookieSecure => "--cookie-secure",
        Setting::CookieSameSite => "--cookie-samesite",
        Setting::CookieExpire => "--cookie-expire",
        Setting::CookieRefresh => "--cookie-refresh",
        Setting::RedirectUrl => "--redirect-url",
        Setting::Scope => "--scope",
        Setting::ProxyPrefix => "--proxy-prefix",
        Setting::WhitelistDomains => "--whitelist-domain",
        Setting::SetAuthorizationHeader => "--set-authorization-header",
        Setting::PassAccessToken => "--pass-access-token",
        Setting::Authorization => "--allowed-group/--allowed-role",
        Setting::AuthorizationRules => "--authorization-rule",
        Setting::TrustedProxyIps => "--trusted-proxy-ip",
        Setting::ReverseProxy => "--reverse-proxy",
        Setting::SkipAuthRoutes => "--skip-auth-route",
        Setting::SkipAuthRegexes => "--skip-auth-regex",
        Setting::SessionStore => "--session-store-type",
        Setting::Redis => "--redis-connection-url",
        Setting::MinimalSession => "--session-cookie-minimal",
        Setting::ProviderCaFiles => "--provider-ca-file",
        Setting::ProviderClientCertFile => "--provider-client-cert-file",
        Setting::ProviderClientKeyFile => "--provider-client-key-file",
        // `max_flows` and settings added later: no flag sets them.
        other => other.name(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every flag named here is one the command line has.
    #[test]
    fn every_flag_exists() {
        let cli = crate::cli::Cli::command();
        let longs: Vec<&str> = cli.get_arguments().filter_map(|a| a.get_long()).collect();
        for s in Setting::ALL {
            let name = flag(*s);
            if name == s.name() {
                continue;
            }
            for f in name.split('/') {
                let long = f.strip_prefix("--").unwrap_or(f);
                assert!(longs.contains(&long), "{s:?}: no flag {f}");
            }
        }
        assert_eq!(flag(Setting::CookieRefresh), "--cookie-refresh");
        assert_eq!(flag(Setting::MaxFlows), "max_flows");
    }
}
