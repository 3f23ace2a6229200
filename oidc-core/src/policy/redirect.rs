//! Validation of the `rd` redirect target (post-login and post-logout).
//!
//! Follows oauth2-proxy's `IsValidRedirect` rules, hardened to fail closed: a target is
//! either a same-site absolute path (`/...`, never `//` or `/\`) or an absolute `http(s)`
//! URL whose host and port a `--whitelist-domain` entry allows. Absolute URLs are parsed
//! with the WHATWG parser (the `url` crate) *and* split naively; both readings must agree
//! on the host and port, so inputs that browsers and simple parsers read differently are
//! rejected. The ground truth is `tests/data/open-redirects.tsv`.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::LazyLock;

use percent_encoding::percent_decode;
use url::{Host, Url};

/// Longest `rd` value accepted, in bytes; longer targets are rejected.
const MAX_REDIRECT_LEN: usize = 4096;

/// How many layers of percent-encoding a relative target is unwrapped to look for
/// hidden `//`, `/\`, control characters and the like; deeper nesting is rejected.
const MAX_DECODE_ROUNDS: usize = 4;

/// Base used to resolve relative targets with the WHATWG parser (defence in depth).
static RELATIVE_BASE: LazyLock<Option<Url>> =
    LazyLock::new(|| Url::parse("http://rd.invalid/").ok());

/// Decides whether a redirect target (`rd`) is safe to send a browser to.
#[derive(Clone, Debug)]
pub struct RedirectValidator {
    rules: Vec<Rule>,
}

/// One parsed `--whitelist-domain` entry.
#[derive(Clone, Debug)]
struct Rule {
    host: HostPattern,
    port: PortRule,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    /// `example.com`: that domain only (lowercase, ASCII/punycode).
    ExactDomain(String),
    /// `.example.com` or `*.example.com`: the domain and any subdomain.
    DomainAndSubdomains(String),
    /// `192.0.2.1` or `[2001:db8::1]`.
    Ip(IpAddr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortRule {
    /// No port in the entry: the scheme's default port only.
    Default,
    /// `:8080`: that port only.
    Exact(u16),
    /// `:*`: any port.
    Any,
}

/// A whitelisted redirect domain that cannot be used. Its message names the entry and what to
/// give, but not the setting ([`crate::config::setting::Setting::WhitelistDomains`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectConfigError {
    /// The entry is empty (for example a stray comma).
    #[error(
        "an entry is empty; remove it or give a host such as \
         `example.com`, `.example.com` or `*.example.com:8443`"
    )]
    Empty,
    /// The host part of the entry is not usable.
    #[error("`{entry}` is not usable: {reason}")]
    InvalidHost {
        /// The entry as given.
        entry: String,
        /// What is wrong and how to fix it.
        reason: &'static str,
    },
    /// The port part of the entry is not a port number or `*`.
    #[error(
        "`{entry}` has an invalid port `{port}`; use a number from 1 to \
         65535, `*` for any port, or no port for the scheme's default port"
    )]
    InvalidPort {
        /// The entry as given.
        entry: String,
        /// The text after the `:`.
        port: String,
    },
}

impl RedirectValidator {
    /// Builds a validator from `--whitelist-domain` entries (`example.com`, `.example.com`,
    /// `*.example.com`, with optional `:port` or `:*`).
    ///
    /// Without a port an entry allows only the scheme's default port (80 for `http`,
    /// 443 for `https`). `.example.com` and `*.example.com` both allow `example.com`
    /// itself and every subdomain. Entries are trimmed; hosts are compared
    /// case-insensitively (internationalised names are converted to punycode).
    pub fn new<I, S>(whitelist_domains: I) -> Result<Self, RedirectConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let rules = whitelist_domains
            .into_iter()
            .map(|entry| parse_rule(entry.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { rules })
    }

    /// Returns true when `rd` is a safe redirect: a same-site absolute path, or an absolute
    /// http(s) URL whose host (and port) the whitelist allows.
    ///
    /// `rd` must already be decoded from the query string once. It must be printable
    /// ASCII without backslashes, `"`, `<` or `>`, and at most 4096 bytes long. Relative
    /// targets must start with a single `/`, and no `//`, `/\`, `/./`, `/../` or slashes
    /// separated only by whitespace may appear in them, even after percent-decoding.
    /// Absolute targets must use the lowercase `http://` or `https://` scheme, carry no
    /// user information, no percent-encoding in the host and no non-canonical IP
    /// address, and their host and port must be allowed by a whitelist entry.
    pub fn is_valid(&self, rd: &str) -> bool {
        if rd.is_empty() || rd.len() > MAX_REDIRECT_LEN || !rd.bytes().all(allowed_raw_byte) {
            return false;
        }
        if rd.starts_with('/') {
            return is_valid_relative(rd);
        }
        if let Some(rest) = rd.strip_prefix("https://") {
            return self.is_valid_absolute(rd, "https", rest);
        }
        if let Some(rest) = rd.strip_prefix("http://") {
            return self.is_valid_absolute(rd, "http", rest);
        }
        false
    }

    /// `Some(rd)` when valid, `None` otherwise (convenience).
    pub fn validate<'a>(&self, rd: &'a str) -> Option<&'a str> {
        self.is_valid(rd).then_some(rd)
    }

    /// `rest` is `rd` after `scheme://`.
    fn is_valid_absolute(&self, rd: &str, scheme: &str, rest: &str) -> bool {
        // Naive reading: the authority runs to the first `/`, `?` or `#`.
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let Some(authority) = rest.get(..authority_end) else {
            return false;
        };
        let Some((naive_host, naive_port)) = split_authority(authority) else {
            return false;
        };

        // WHATWG reading; it must agree with the naive one.
        let Ok(url) = Url::parse(rd) else {
            return false;
        };
        if url.scheme() != scheme
            || url.cannot_be_a_base()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return false;
        }
        match url.host_str() {
            Some(host) if host.eq_ignore_ascii_case(naive_host) => {}
            _ => return false,
        }
        let effective_port = url.port_or_known_default();
        match naive_port {
            Some(port) if effective_port != Some(port) => return false,
            None if url.port().is_some() => return false,
            _ => {}
        }
        let Some(host) = url.host() else {
            return false;
        };
        let explicit_port = url.port();

        self.rules.iter().any(|rule| {
            host_matches(&rule.host, &host)
                && match rule.port {
                    PortRule::Any => true,
                    PortRule::Default => explicit_port.is_none(),
                    PortRule::Exact(port) => effective_port == Some(port),
                }
        })
    }
}

/// Printable ASCII except characters no well-formed redirect target carries unencoded.
fn allowed_raw_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'\\' | b'"' | b'<' | b'>')
}

/// Splits `host[:port]` (host may be a bracketed IPv6 literal). Rejects userinfo,
/// percent-encoding, empty or odd labels and non-canonical ports.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let host = authority.get(..=close)?;
        let after = authority.get(close + 1..)?;
        let inner = host.get(1..host.len().checked_sub(1)?)?;
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (host, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if !is_plain_domain(host) {
            return None;
        }
        (host, port)
    };
    let port = match port {
        None => None,
        Some(port) => Some(parse_port(port)?),
    };
    Some((host, port))
}

/// Letters, digits, `-`, `_` and dots between non-empty labels (no leading, trailing or
/// doubled dots).
fn is_plain_domain(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Canonical decimal port 1..=65535 (no sign, no leading zero).
fn parse_port(port: &str) -> Option<u16> {
    if port.is_empty()
        || port.len() > 5
        || port.starts_with('0')
        || !port.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    port.parse().ok()
}

fn host_matches(pattern: &HostPattern, host: &Host<&str>) -> bool {
    match (pattern, host) {
        (HostPattern::ExactDomain(allowed), Host::Domain(host)) => allowed == host,
        (HostPattern::DomainAndSubdomains(base), Host::Domain(host)) => {
            host == base
                || host
                    .strip_suffix(base.as_str())
                    .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.'))
        }
        (HostPattern::Ip(IpAddr::V4(allowed)), Host::Ipv4(host)) => allowed == host,
        (HostPattern::Ip(IpAddr::V6(allowed)), Host::Ipv6(host)) => allowed == host,
        _ => false,
    }
}

/// `rd` starts with `/` and passed the raw byte check.
fn is_valid_relative(rd: &str) -> bool {
    if !relative_shape_ok(rd.as_bytes()) {
        return false;
    }

    // Look through layers of percent-encoding: `/%2F%2Fevil.com`, `/%09/evil.com`, ...
    let mut layer: Cow<'_, [u8]> = Cow::Borrowed(rd.as_bytes());
    let mut rounds = 0;
    while layer.contains(&b'%') {
        let decoded: Vec<u8> = percent_decode(&layer).collect();
        if decoded == *layer {
            break;
        }
        rounds += 1;
        if rounds > MAX_DECODE_ROUNDS {
            return false;
        }
        let Ok(text) = std::str::from_utf8(&decoded) else {
            // Overlong or broken UTF-8 (e.g. `%C0%AF`): some decoders read it as `/`.
            return false;
        };
        if !text.chars().all(decoded_char_ok) || !relative_shape_ok(&decoded) {
            return false;
        }
        layer = Cow::Owned(decoded);
    }

    // Defence in depth: the WHATWG parser must resolve it to a path on the same origin.
    let Some(base) = RELATIVE_BASE.as_ref() else {
        return false;
    };
    let Ok(resolved) = base.join(rd) else {
        return false;
    };
    resolved.host_str() == base.host_str()
        && resolved.port().is_none()
        && resolved.username().is_empty()
        && resolved.password().is_none()
        && resolved.path().starts_with('/')
        && !resolved.path().starts_with("//")
}

/// oauth2-proxy's rule for relative targets: starts with `/`, not `//` or `/\`, and no
/// match of `[/\\](?:[\s\v]*|\.{1,2})[/\\]` anywhere (so no `//`, `/ /`, `/./`, `/../`).
fn relative_shape_ok(s: &[u8]) -> bool {
    let is_slash = |b: Option<&u8>| matches!(b, Some(b'/' | b'\\'));
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c');
    if s.first() != Some(&b'/') {
        return false;
    }
    for (i, b) in s.iter().enumerate() {
        if !matches!(b, b'/' | b'\\') {
            continue;
        }
        let rest = s.get(i + 1..).unwrap_or_default();
        // Slash, optional whitespace, slash.
        let after_space = rest.iter().position(|b| !is_space(b)).unwrap_or(rest.len());
        if is_slash(rest.get(after_space)) {
            return false;
        }
        // Slash, one or two dots, slash.
        if rest.first() == Some(&b'.')
            && (is_slash(rest.get(1)) || (rest.get(1) == Some(&b'.') && is_slash(rest.get(2))))
        {
            return false;
        }
    }
    true
}

/// Characters allowed in a percent-decoded relative target: no controls, no whitespace
/// other than a plain space, and no slash or backslash look-alikes that Unicode
/// normalisation turns into `/` or `\`.
fn decoded_char_ok(c: char) -> bool {
    !(c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(
            c,
            '\u{2044}'
                | '\u{2215}'
                | '\u{29F8}'
                | '\u{29F9}'
                | '\u{FE68}'
                | '\u{FF0F}'
                | '\u{FF3C}'
        ))
}

fn parse_rule(raw: &str) -> Result<Rule, RedirectConfigError> {
    let entry = raw.trim();
    let invalid = |reason: &'static str| RedirectConfigError::InvalidHost {
        entry: raw.to_owned(),
        reason,
    };
    if entry.is_empty() {
        return Err(RedirectConfigError::Empty);
    }
    if entry.contains("://") || entry.contains('/') {
        return Err(invalid(
            "give a host such as `example.com` or `.example.com:8443`, not a URL or path",
        ));
    }
    if entry.contains('@') {
        return Err(invalid("remove the user information before `@`"));
    }
    if !entry.bytes().all(|b| b.is_ascii_graphic() || !b.is_ascii()) || entry.contains(['%', '\\'])
    {
        return Err(invalid(
            "it contains whitespace, control characters, `%` or `\\`; give a plain host name",
        ));
    }

    // Split off the port.
    let (host, port) = if entry.starts_with('[') {
        let Some(close) = entry.find(']') else {
            return Err(invalid(
                "an IPv6 address needs a closing `]`, as in `[2001:db8::1]:8443`",
            ));
        };
        let (host, after) = entry.split_at(close + 1);
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(invalid("only `:port` may follow an IPv6 address")),
            },
        }
    } else {
        match entry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        }
    };
    let port = match port {
        None => PortRule::Default,
        Some("*") => PortRule::Any,
        Some(text) => match parse_port(text) {
            Some(port) => PortRule::Exact(port),
            None => {
                return Err(RedirectConfigError::InvalidPort {
                    entry: raw.to_owned(),
                    port: text.to_owned(),
                });
            }
        },
    };

    // Wildcard prefix.
    let (name, wildcard) = if let Some(name) = host.strip_prefix("*.") {
        (name, true)
    } else if let Some(name) = host.strip_prefix('.') {
        (name, true)
    } else {
        (host, false)
    };
    if name.is_empty() {
        return Err(invalid("give a domain after the leading `.` or `*.`"));
    }
    if name.contains('*') {
        return Err(invalid(
            "`*` is only allowed as a leading `*.` (as in `*.example.com`) or as the port `:*`",
        ));
    }

    let host = match Host::parse(name) {
        Ok(Host::Domain(domain)) => {
            if !is_plain_domain(&domain) {
                return Err(invalid(
                    "a domain may only contain letters, digits, `-` and `_` in non-empty \
                     dot-separated labels (no trailing dot)",
                ));
            }
            let domain = domain.to_ascii_lowercase();
            if wildcard {
                HostPattern::DomainAndSubdomains(domain)
            } else {
                HostPattern::ExactDomain(domain)
            }
        }
        Ok(Host::Ipv4(_) | Host::Ipv6(_)) if wildcard => {
            return Err(invalid(
                "a leading `.` or `*.` only works with domain names, not IP addresses",
            ));
        }
        Ok(Host::Ipv4(ip)) => HostPattern::Ip(IpAddr::V4(ip)),
        Ok(Host::Ipv6(ip)) => HostPattern::Ip(IpAddr::V6(ip)),
        Err(_) => {
            return Err(invalid(
                "it is not a valid domain name or IP address; give a host such as \
                 `example.com`, `192.0.2.1` or `[2001:db8::1]`",
            ));
        }
    };
    Ok(Rule { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator() -> RedirectValidator {
        RedirectValidator::new([
            "foo.bar",
            ".bar.foo",
            "port.bar:8080",
            "anyport.bar:*",
            "*.wildcard.bar",
            "127.0.0.1:8443",
            "[::1]:*",
            "Bücher.example",
        ])
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn relative_paths() {
        let v = validator();
        for ok in [
            "/",
            "/redirect",
            "/a/b?c=d#e",
            "/my%20docs/x",
            "/caf%C3%A9",
            "/a%2Fb",
        ] {
            assert!(v.is_valid(ok), "{ok} should be accepted");
        }
        for bad in [
            "",
            "//evil.com",
            "/\\evil.com",
            "/\t/evil.com",
            "/%09/evil.com",
            "/%20/evil.com",
            "/%2F%2Fevil.com",
            "/%252F%252Fevil.com",
            "/%5Cevil.com",
            "/%C0%AF/evil.com",
            "/%EF%BC%8F/evil.com",
            "/%0D%0ASet-Cookie:x=y",
            "/./\\evil.com",
            "/foo/../bar",
            "/https://evil.com",
            "/?next=//evil.com",
            "/ok ",
            " /ok",
            "/<script>",
            "/%25252525252525252F",
        ] {
            assert!(!v.is_valid(bad), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn absolute_urls() {
        let v = validator();
        for ok in [
            "http://foo.bar",
            "https://FOO.bar/x?y#z",
            "http://foo.bar:80/",
            "https://foo.bar:443/",
            "https://bar.foo/",
            "https://a.b.bar.foo/",
            "http://port.bar:8080/",
            "http://anyport.bar:1/",
            "http://x.wildcard.bar/",
            "https://127.0.0.1:8443/",
            "http://[::1]:9000/",
            "https://xn--bcher-kva.example/",
        ] {
            assert!(v.is_valid(ok), "{ok} should be accepted");
        }
        for bad in [
            "https:///foo.bar",
            "https:foo.bar",
            "HTTPS://foo.bar/",
            "ftp://foo.bar/",
            "javascript://foo.bar/%0aalert(1)",
            "http://foo.bar@evil.com/",
            "http://evil.com@foo.bar/",
            "http://:@foo.bar/",
            "http://foo.bar:/",
            "http://foo.bar:8080/",
            "http://foo.bar:080/",
            "https://foo.bar:80/",
            "http://foo.bar./",
            "http://foo%2ebar/",
            "http://evilbar.foo/",
            "http://.bar.foo/",
            "http://x..bar.foo/",
            "http://port.bar/",
            "http://0x7f.0.0.1:8443/",
            "https://2130706433:8443/",
            "http://[0:0::1]:9000/",
            "http://evil.com\\.foo.bar/",
            "http://evil.com\t.foo.bar/",
            "http://evil.com#.foo.bar/",
            "http://foo.bar\u{3002}evil.com/",
            "https://b\u{fc}cher.example/",
        ] {
            assert!(!v.is_valid(bad), "{bad:?} should be rejected");
        }
        assert_eq!(v.validate("/ok"), Some("/ok"));
        assert_eq!(v.validate("//evil.com"), None);
    }

    #[test]
    fn no_port_entry_means_default_port_only() {
        let v = RedirectValidator::new(["example.com"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(v.is_valid("https://example.com/"));
        assert!(!v.is_valid("https://example.com:8443/"));
        let v = RedirectValidator::new(["example.com:443"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(v.is_valid("https://example.com/"));
        assert!(!v.is_valid("http://example.com/"));
    }

    #[test]
    fn config_errors() {
        for bad in [
            "",
            "  ",
            "https://example.com",
            "example.com/path",
            "user@example.com",
            "example.com:0",
            "example.com:70000",
            "example.com:http",
            "example.com:",
            "foo.*.com",
            "*",
            ".",
            "*.",
            "*.192.0.2.1",
            "exa mple.com",
            "example.com.",
            "exa%6dple.com",
            "[::1",
            "[::1]x",
            "a:b:c",
        ] {
            let err = RedirectValidator::new([bad]);
            assert!(err.is_err(), "{bad:?} should be refused");
        }
        let msg = RedirectValidator::new(["example.com:99999"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("invalid port") && msg.contains("99999") && !msg.contains("--"),
            "{msg}"
        );
        assert!(RedirectValidator::new([" example.com ", "*.EXAMPLE.org:*"]).is_ok());
        assert!(RedirectValidator::new(Vec::<String>::new()).is_ok());
    }

    /// Deterministic fuzz: no panics, and anything accepted has one of the two safe shapes.
    #[test]
    fn fuzz_no_panic_and_accepted_shapes() {
        const PIECES: &[&str] = &[
            "/", "\\", "//", "http://", "https://", "foo.bar", "evil.com", "@", ":", ":8080", "%",
            "%2F", "%5C", "%09", "%25", ".", "..", "?", "#", "[", "]", "::1", "\t", " ",
            "\u{3002}", "\u{FF0F}", "a", "0x7f", "bar.foo", "*", "%C0%AF", "\u{0}", "é",
        ];
        let v = validator();
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..50_000 {
            let len = (next() % 8) as usize;
            let mut rd = String::new();
            for _ in 0..len {
                let idx = (next() % PIECES.len() as u64) as usize;
                rd.push_str(PIECES.get(idx).copied().unwrap_or_default());
            }
            if v.is_valid(&rd) {
                let relative = rd.starts_with('/') && !rd.starts_with("//");
                let absolute = Url::parse(&rd).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.username().is_empty()
                        && u.host_str().is_some_and(|h| {
                            h == "foo.bar"
                                || h == "bar.foo"
                                || h.ends_with(".bar.foo")
                                || h == "127.0.0.1"
                                || h == "[::1]"
                        })
                });
                assert!(relative || absolute, "accepted {rd:?}");
                assert!(!rd.contains('\\'), "accepted {rd:?}");
            }
        }
    }
}
