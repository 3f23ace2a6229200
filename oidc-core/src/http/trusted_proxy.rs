//! `--reverse-proxy` and `--trusted-proxy-ip`: whose `X-Forwarded-Proto`, `X-Forwarded-Host`
//! and `X-Forwarded-Uri` are believed at all.
//!
//! **Default: none are believed** (`--reverse-proxy=false`, oauth2-proxy's default). Then the
//! engine uses the request's own `Host`, target and the connection's scheme. With
//! `--reverse-proxy=true` they are believed from the peers in `--trusted-proxy-ip`; with no
//! entry there, from every peer (oauth2-proxy's `0.0.0.0/0`, `::/0`).
//!
//! Entries are IP addresses (`10.0.0.7`, `::1`) and CIDR ranges (`10.0.0.0/8`, `fd00::/8`).
//! The peer is the address of the TCP connection the request arrived on: in ext_authz mode
//! that is Envoy, never the browser. An IPv4 peer seen as an IPv4-mapped IPv6 address
//! (`::ffff:10.0.0.7`, from a dual-stack socket) matches IPv4 entries.
//!
//! What the believed values are used for: building URLs the browser is sent to (the
//! `redirect_uri`, sign-in and sign-out links) and, at `<prefix>/auth` (nginx
//! `auth_request`), the target being authorized. Never for deciding who may pass on which
//! host: `--authorization-rule` host rules judge the `Host` (`:authority`) Envoy routes by,
//! which a client cannot make differ from where its request goes.
//!
//! ```
//! use std::net::IpAddr;
//! use oidc_core::http::trusted_proxy::TrustedProxies;
//!
//! let trusted = TrustedProxies::new(&["127.0.0.1".to_owned(), "10.0.0.0/8".to_owned()])?;
//! assert!(trusted.trusts("10.1.2.3".parse::<IpAddr>()?));
//! assert!(!trusted.trusts("192.0.2.10".parse::<IpAddr>()?));
//! assert!(!TrustedProxies::none().trusts("10.1.2.3".parse::<IpAddr>()?));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::IpAddr;

use http::HeaderMap;
use http::request::Parts;

/// A trusted proxy entry that cannot be used. Its message names the entry and what to give,
/// but not the setting ([`crate::config::setting::Setting::TrustedProxyIps`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{entry:?} {reason}; give an IP address or a CIDR range such as 127.0.0.1, 10.0.0.0/8 or fd00::/8"
)]
#[non_exhaustive]
pub struct TrustedProxyError {
    /// The entry as given.
    pub entry: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// An address range: the network address (host bits zeroed) and the prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask32(ip.to_bits(), self.prefix) == net.to_bits(),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask128(ip.to_bits(), self.prefix) == net.to_bits()
            }
            _ => false,
        }
    }
}

fn mask32(bits: u32, prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => bits & (u32::MAX << (32 - u32::from(p.min(32)))),
    }
}

fn mask128(bits: u128, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => bits & (u128::MAX << (128 - u32::from(p.min(128)))),
    }
}

/// The parsed `--trusted-proxy-ip` entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedProxies {
    /// `false`: no peer is trusted (`--reverse-proxy=false`).
    believe: bool,
    /// Empty: every peer is trusted (when `believe`).
    nets: Vec<Net>,
}

impl Default for TrustedProxies {
    /// [`TrustedProxies::none`]: nothing forwarded is believed.
    fn default() -> Self {
        Self::none()
    }
}

impl TrustedProxies {
    /// Parses `--trusted-proxy-ip` entries. No entry at all means every peer is trusted
    /// (oauth2-proxy's default); an empty entry is an error.
    pub fn new(entries: &[String]) -> Result<Self, TrustedProxyError> {
        let nets = entries
            .iter()
            .map(|e| parse_entry(e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            believe: true,
            nets,
        })
    }

    /// Trusts every peer (`--reverse-proxy` with no `--trusted-proxy-ip`).
    #[must_use]
    pub fn all() -> Self {
        Self {
            believe: true,
            nets: Vec::new(),
        }
    }

    /// Trusts no peer: every `X-Forwarded-*` header is ignored (the default,
    /// `--reverse-proxy=false`).
    #[must_use]
    pub fn none() -> Self {
        Self {
            believe: false,
            nets: Vec::new(),
        }
    }

    /// `true` when every peer is trusted.
    #[must_use]
    pub fn trusts_everyone(&self) -> bool {
        self.believe && self.nets.is_empty()
    }

    /// `true` when the answer depends on the peer (a `--trusted-proxy-ip` list): transports
    /// must then say who the peer is ([`PeerAddr`]).
    #[must_use]
    pub fn depends_on_peer(&self) -> bool {
        self.believe && !self.nets.is_empty()
    }

    /// `true` when `X-Forwarded-*` headers from `peer` are believed.
    #[must_use]
    pub fn trusts(&self, peer: IpAddr) -> bool {
        if !self.believe {
            return false;
        }
        if self.nets.is_empty() {
            return true;
        }
        let canonical = peer.to_canonical();
        self.nets
            .iter()
            .any(|n| n.contains(peer) || n.contains(canonical))
    }

    /// [`TrustedProxies::trusts`] for a peer that may be unknown (a Unix socket, a transport
    /// that did not say): an unknown peer is trusted only when every peer is.
    #[must_use]
    pub fn trusts_peer(&self, peer: Option<IpAddr>) -> bool {
        match peer {
            Some(ip) => self.trusts(ip),
            None => self.trusts_everyone(),
        }
    }

    /// The `X-Forwarded-*` values to believe for a request from `peer`, or `None` when the
    /// peer is not trusted (then use the request's own `Host`, target and the connection's
    /// scheme, and ignore every `X-Forwarded-*` header).
    #[must_use]
    pub fn forwarded<'h>(
        &self,
        peer: Option<IpAddr>,
        headers: &'h HeaderMap,
    ) -> Option<Forwarded<'h>> {
        self.trusts_peer(peer)
            .then(|| Forwarded::from_headers(headers))
    }

    /// [`TrustedProxies::forwarded`] for a request whose peer is in its extensions as a
    /// [`PeerAddr`].
    #[must_use]
    pub fn forwarded_for<'h>(&self, parts: &'h Parts) -> Option<Forwarded<'h>> {
        self.forwarded(PeerAddr::of(parts), &parts.headers)
    }
}

/// The address of the connection a request came in on. Transports put it in the request's
/// extensions (`parts.extensions.insert(PeerAddr(addr.ip()))`) so the engine can ask
/// [`TrustedProxies::forwarded_for`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub IpAddr);

impl PeerAddr {
    /// The peer address in `parts`' extensions, if the transport put one there.
    #[must_use]
    pub fn of(parts: &Parts) -> Option<IpAddr> {
        parts.extensions.get::<PeerAddr>().map(|p| p.0)
    }
}

/// The believed `X-Forwarded-*` values. Each is `None` when the header is absent, empty,
/// or malformed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Forwarded<'h> {
    /// `X-Forwarded-Proto`: the first of a comma-separated list, `http` or `https` only.
    pub proto: Option<&'static str>,
    /// `X-Forwarded-Host`: the first of a comma-separated list, when it is a plain
    /// `host[:port]` (letters, digits, `-._:[]`).
    pub host: Option<&'h str>,
    /// `X-Forwarded-Uri`: the first header's whole value (URIs may hold commas), when it is
    /// an origin-form target starting with `/`.
    pub uri: Option<&'h str>,
}

impl<'h> Forwarded<'h> {
    /// Reads the headers, without any trust decision.
    #[must_use]
    pub fn from_headers(headers: &'h HeaderMap) -> Self {
        let first = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let first_item = |name: &str| {
            first(name)
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let proto = first_item("x-forwarded-proto").and_then(|p| {
            if p.eq_ignore_ascii_case("https") {
                Some("https")
            } else if p.eq_ignore_ascii_case("http") {
                Some("http")
            } else {
                None
            }
        });
        let host = first_item("x-forwarded-host").filter(|h| is_host(h));
        let uri = first("x-forwarded-uri")
            .map(str::trim)
            .filter(|u| u.starts_with('/'));
        Self { proto, host, uri }
    }
}

fn is_host(h: &str) -> bool {
    h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
}

fn parse_entry(entry: &str) -> Result<Net, TrustedProxyError> {
    let err = |reason| TrustedProxyError {
        entry: entry.to_owned(),
        reason,
    };
    let e = entry.trim();
    if e.is_empty() {
        return Err(err("is empty"));
    }
    let (addr, prefix) = match e.split_once('/') {
        None => (e, None),
        Some((a, p)) => (a, Some(p)),
    };
    let addr: IpAddr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| err("is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3 {
                return Err(err("has an invalid prefix length"));
            }
            let n: u8 = p.parse().map_err(|_| err("has an invalid prefix length"))?;
            if n > max {
                return Err(err("has a prefix length longer than the address"));
            }
            n
        }
    };
    let addr = match addr {
        IpAddr::V4(a) => IpAddr::V4(mask32(a.to_bits(), prefix).into()),
        IpAddr::V6(a) => IpAddr::V6(mask128(a.to_bits(), prefix).into()),
    };
    Ok(Net { addr, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::new(&entries.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn default_believes_nobody() {
        let t = TrustedProxies::default();
        assert_eq!(t, TrustedProxies::none());
        assert!(!t.trusts_everyone());
        assert!(!t.depends_on_peer());
        assert!(!t.trusts(ip("127.0.0.1")));
        assert!(!t.trusts_peer(None));
        let h = headers(&[("x-forwarded-host", "app.example.com")]);
        assert_eq!(t.forwarded(Some(ip("127.0.0.1")), &h), None);
    }

    #[test]
    fn no_entry_trusts_everyone() {
        let t = proxies(&[]);
        assert!(t.trusts_everyone());
        assert!(t.trusts(ip("192.0.2.10")));
        assert!(t.trusts(ip("2001:db8::1")));
        assert!(t.trusts_peer(None));
        assert_eq!(t, TrustedProxies::all());
    }

    #[test]
    fn addresses_and_ranges_v4_and_v6() {
        let t = proxies(&[
            "127.0.0.1",
            " 10.0.0.0/8 ",
            "fd00::/8",
            "::1",
            "192.0.2.77/24",
        ]);
        assert!(t.trusts(ip("127.0.0.1")));
        assert!(!t.trusts(ip("127.0.0.2")));
        assert!(t.trusts(ip("10.255.0.1")));
        assert!(!t.trusts(ip("11.0.0.1")));
        assert!(t.trusts(ip("fd12:3456::1")));
        assert!(!t.trusts(ip("fe80::1")));
        assert!(t.trusts(ip("::1")));
        // Host bits in an entry are ignored, as Go's net.ParseCIDR does.
        assert!(t.trusts(ip("192.0.2.1")));
        // IPv4-mapped peers from dual-stack sockets.
        assert!(t.trusts(ip("::ffff:10.1.2.3")));
        assert!(!t.trusts(ip("::ffff:192.0.3.1")));
        // An unknown peer is not trusted once a list is given.
        assert!(!t.trusts_peer(None));
        let all = proxies(&["0.0.0.0/0", "::/0"]);
        assert!(all.trusts(ip("203.0.113.9")) && all.trusts(ip("2001:db8::9")));
        assert!(!all.trusts_everyone());
        let single = proxies(&["[2001:db8::5]", "2001:db8::/128"]);
        assert!(single.trusts(ip("2001:db8::5")) && single.trusts(ip("2001:db8::")));
        assert!(!single.trusts(ip("2001:db8::6")));
    }

    #[test]
    fn bad_entries_name_the_entry_and_the_setting() {
        for bad in [
            "",
            " ",
            "localhost",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "1.2.3",
            "fe80::1%eth0",
        ] {
            let err = TrustedProxies::new(&[bad.to_owned()]).unwrap_err();
            assert!(err.to_string().starts_with(&format!("{bad:?} ")), "{err}");
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn forwarded_headers_only_from_trusted_peers() {
        let t = proxies(&["127.0.0.1/32"]);
        let h = headers(&[
            ("x-forwarded-proto", "HTTPS, http"),
            ("x-forwarded-host", "app.example.com:8443, evil.example"),
            ("x-forwarded-uri", "/skip/auth/regex?a=1,2"),
        ]);
        assert_eq!(t.forwarded(Some(ip("192.0.2.10")), &h), None);
        assert_eq!(t.forwarded(None, &h), None);
        let f = t.forwarded(Some(ip("127.0.0.1")), &h).unwrap();
        assert_eq!(f.proto, Some("https"));
        assert_eq!(f.host, Some("app.example.com:8443"));
        assert_eq!(f.uri, Some("/skip/auth/regex?a=1,2"));
        let empty = HeaderMap::new();
        assert_eq!(
            t.forwarded(Some(ip("127.0.0.1")), &empty),
            Some(Forwarded::default())
        );
    }

    #[test]
    fn malformed_forwarded_values_are_ignored() {
        let h = headers(&[
            ("x-forwarded-proto", "javascript"),
            ("x-forwarded-host", "evil.example/path?x"),
            ("x-forwarded-uri", "https://evil.example/x"),
        ]);
        assert_eq!(Forwarded::from_headers(&h), Forwarded::default());
        let h = headers(&[("x-forwarded-host", "a@b")]);
        assert_eq!(Forwarded::from_headers(&h).host, None);
        let h = headers(&[("x-forwarded-host", "[::1]:4180")]);
        assert_eq!(Forwarded::from_headers(&h).host, Some("[::1]:4180"));
    }

    #[test]
    fn peer_from_extensions() {
        let mut parts = http::Request::get("/")
            .header("x-forwarded-uri", "/x")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let t = proxies(&["10.0.0.0/8"]);
        assert_eq!(t.forwarded_for(&parts), None);
        parts.extensions.insert(PeerAddr(ip("10.0.0.5")));
        assert_eq!(t.forwarded_for(&parts).unwrap().uri, Some("/x"));
    }
}
