//! The cookie session store: the whole [`Session`] sealed into the cookie,
//! split into `name_0`, `name_1`, ... when it does not fit in one.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use crate::config::secret::CookieSecret;
use crate::http::cookies::{self, CookieWriter};
use crate::session::crypto::{OpenError, Purpose, Sealer};
use crate::session::model::Session;

/// Longest cookie value we write; with name and attributes a `Set-Cookie`
/// stays under the 4096 bytes every browser accepts.
const MAX_CHUNK: usize = 3840;
/// Most chunks we read or write (about 60 KB, Envoy's default header limit).
const MAX_CHUNKS: usize = 16;

/// Why a session cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Decryption failed: tampered, truncated, reordered chunks, renamed, or an unknown secret.
    #[error(transparent)]
    Sealed(#[from] OpenError),
    /// Decrypted, but the content is not a session (written by an incompatible version).
    #[error("session cookie content is not a valid session")]
    Format,
    /// The session is past `--cookie-expire`.
    #[error("session expired")]
    Expired,
    /// More chunks than we ever write.
    #[error("session cookie has too many chunks")]
    TooLarge,
    /// Ended by a back-channel logout.
    #[error("session revoked by a logout at the identity provider")]
    Revoked,
}

/// Encodes sessions into cookies and back.
#[derive(Clone, Debug)]
pub(crate) struct SessionCodec {
    sealer: Sealer,
    name: String,
    chunk_names: Vec<String>,
}

/// `i` for a chunk suffix spelled exactly as we write it (`0`, `1`, ... `15`:
/// decimal, no sign, no leading zero), below [`MAX_CHUNKS`].
fn chunk_index(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let i = match b {
        [d] if d.is_ascii_digit() => usize::from(d - b'0'),
        [b'1'..=b'9', d] if d.is_ascii_digit() => {
            usize::from(b[0] - b'0') * 10 + usize::from(d - b'0')
        }
        _ => return None,
    };
    (i < MAX_CHUNKS).then_some(i)
}

/// The session cookie(s) of a request, as sent (see [`SessionCodec::find`]).
#[derive(Debug)]
pub(crate) struct Presented<'a> {
    /// The cookie names: the single cookie's, or one per chunk in order.
    names: &'a [String],
    /// The value of each name (the rest unused).
    values: [&'a str; MAX_CHUNKS],
    /// Chunks (`name_0`, ...) rather than the single cookie.
    chunked: bool,
}

impl<'a> Presented<'a> {
    /// `(name, value)` of each cookie, in chunk order.
    pub(crate) fn pieces(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.values.iter().copied())
    }
}

impl SessionCodec {
    pub(crate) fn new(name: &str, secrets: &[CookieSecret]) -> Self {
        Self {
            sealer: Sealer::new(secrets, Purpose::Session),
            name: name.to_owned(),
            chunk_names: (0..MAX_CHUNKS).map(|i| format!("{name}_{i}")).collect(),
        }
    }

    /// Reads the session from the request's cookies. `Ok(None)` when there is no session cookie.
    pub(crate) fn read(
        &self,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<Option<Session>, SessionError> {
        let Some(plain) = self.read_raw(headers)? else {
            return Ok(None);
        };
        self.decode(&plain, now).map(Some)
    }

    /// A session from the plaintext of a session cookie, unless it has expired.
    pub(crate) fn decode(&self, plain: &[u8], now: u64) -> Result<Session, SessionError> {
        let session: Session = serde_json::from_slice(plain).map_err(|_| SessionError::Format)?;
        if session.is_expired(now) {
            return Err(SessionError::Expired);
        }
        Ok(session)
    }

    /// Opens the session cookie (single or chunked) and returns its plaintext:
    /// a serialised session, or a Redis ticket. `Ok(None)` when there is none.
    pub(crate) fn read_raw(&self, headers: &HeaderMap) -> Result<Option<Vec<u8>>, SessionError> {
        match self.find(headers)? {
            Some(presented) => self.open(&presented).map(Some),
            None => Ok(None),
        }
    }

    /// The session cookie(s) the request carries, as sent, without opening
    /// them: the single cookie if present, else the chunks `name_0`,
    /// `name_1`, ... up to the first missing one. `Ok(None)` when there is none.
    pub(crate) fn find<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> Result<Option<Presented<'a>>, SessionError> {
        // One pass over the Cookie headers (a session is several KB): the
        // first cookie of each name, as `cookies::get` would find it.
        let mut single = None;
        let mut chunks: [Option<&'a str>; MAX_CHUNKS] = [None; MAX_CHUNKS];
        for (name, value) in cookies::iter(headers) {
            let Some(rest) = name.strip_prefix(self.name.as_str()) else {
                continue;
            };
            if rest.is_empty() {
                single.get_or_insert(value);
            } else if let Some(i) = rest.strip_prefix('_').and_then(chunk_index) {
                chunks[i].get_or_insert(value);
            }
        }
        let mut values = [""; MAX_CHUNKS];
        if let Some(v) = single {
            values[0] = v;
            return Ok(Some(Presented {
                names: std::slice::from_ref(&self.name),
                values,
                chunked: false,
            }));
        }
        let mut found = 0;
        while let Some(Some(v)) = chunks.get(found) {
            values[found] = v;
            found += 1;
        }
        if found == 0 {
            return Ok(None);
        }
        if found == MAX_CHUNKS {
            return Err(SessionError::TooLarge);
        }
        Ok(Some(Presented {
            names: &self.chunk_names[..found],
            values,
            chunked: true,
        }))
    }

    /// Decrypts the session cookie(s) found by [`SessionCodec::find`].
    pub(crate) fn open(&self, presented: &Presented<'_>) -> Result<Vec<u8>, SessionError> {
        // The AAD binds the value to the cookie name and to its form: a
        // single cookie cannot be replayed as a chunk, nor N chunks as M.
        let (aad, sealed) = if presented.chunked {
            let n = presented.names.len();
            (
                self.aad(n),
                std::borrow::Cow::Owned(presented.values[..n].concat()),
            )
        } else {
            (self.aad(0), std::borrow::Cow::Borrowed(presented.values[0]))
        };
        Ok(self.sealer.open(aad.as_bytes(), &sealed)?)
    }

    /// `Set-Cookie` values that store `session`, and clear whatever session
    /// cookies (single or chunks) the request carried that are not rewritten.
    pub(crate) fn write(
        &self,
        session: &Session,
        request: &HeaderMap,
        writer: &CookieWriter,
        host: Option<&str>,
        max_age: Duration,
    ) -> Vec<HeaderValue> {
        let plain = serde_json::to_vec(session).unwrap_or_default();
        self.write_raw(&plain, request, writer, host, max_age)
    }

    /// Like [`SessionCodec::write`] for any plaintext (a Redis ticket).
    pub(crate) fn write_raw(
        &self,
        plain: &[u8],
        request: &HeaderMap,
        writer: &CookieWriter,
        host: Option<&str>,
        max_age: Duration,
    ) -> Vec<HeaderValue> {
        let plain = plain.to_vec();
        let single = self.sealer.seal(self.aad(0).as_bytes(), &plain);
        let mut out = Vec::new();
        if single.len() <= MAX_CHUNK {
            let sealed = single;
            out.push(writer.set(&self.name, &sealed, max_age, host));
            out.extend(self.clear_chunks_from(0, request, writer, host));
        } else {
            // Sealing more bytes than fit in one cookie: the AAD names the chunk count.
            let count = single.len().div_ceil(MAX_CHUNK);
            let sealed = self.sealer.seal(self.aad(count).as_bytes(), &plain);
            // base64url is ASCII, so byte offsets are char boundaries.
            let chunks: Vec<&str> = sealed
                .as_bytes()
                .chunks(MAX_CHUNK)
                .filter_map(|c| std::str::from_utf8(c).ok())
                .collect();
            for (chunk, name) in chunks.iter().zip(&self.chunk_names) {
                out.push(writer.set(name, chunk, max_age, host));
            }
            out.extend(self.clear_chunks_from(chunks.len(), request, writer, host));
            if cookies::get(request, &self.name).is_some() {
                out.push(writer.clear(&self.name, host));
            }
        }
        out
    }

    /// Associated data for a session in one cookie (`count` 0) or in `count` chunks.
    fn aad(&self, count: usize) -> String {
        if count == 0 {
            self.name.clone()
        } else {
            format!("{}#{count}", self.name)
        }
    }

    /// `Set-Cookie` values that delete every session cookie the request carried.
    pub(crate) fn clear(
        &self,
        request: &HeaderMap,
        writer: &CookieWriter,
        host: Option<&str>,
    ) -> Vec<HeaderValue> {
        let mut out = self.clear_chunks_from(0, request, writer, host);
        if cookies::get(request, &self.name).is_some() {
            out.push(writer.clear(&self.name, host));
        }
        out
    }

    fn clear_chunks_from(
        &self,
        first: usize,
        request: &HeaderMap,
        writer: &CookieWriter,
        host: Option<&str>,
    ) -> Vec<HeaderValue> {
        self.chunk_names
            .iter()
            .skip(first)
            .filter(|name| cookies::get(request, name).is_some())
            .map(|name| writer.clear(name, host))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::builder::CookieSettings;
    use http::header;

    fn codec() -> (SessionCodec, CookieWriter) {
        let secrets = [CookieSecret::parse("0123456789abcdef0123456789abcdef").unwrap()];
        let writer = CookieWriter::new(CookieSettings::default());
        (SessionCodec::new("auth", &secrets), writer)
    }

    fn session(token_len: usize) -> Session {
        Session {
            principal: crate::identity::principal::Principal {
                email: Some("alice@example.com".into()),
                groups: vec!["admins".into()],
                ..crate::identity::principal::Principal::new("alice")
            },
            access_token: Some(crate::identity::tokens::AccessToken::new(
                "a".repeat(token_len),
            )),
            created_at: 100,
            expires_at: 1_000,
            ..Session::default()
        }
    }

    /// Turns Set-Cookie values into the Cookie header a browser would send back.
    fn replay(set: &[HeaderValue]) -> HeaderMap {
        let pairs: Vec<String> = set
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .filter(|p| !p.ends_with('='))
            .collect();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&pairs.join("; ")).unwrap(),
        );
        h
    }

    #[test]
    fn small_session_is_one_cookie() {
        let (c, w) = codec();
        let s = session(10);
        let set = c.write(&s, &HeaderMap::new(), &w, None, Duration::from_secs(60));
        assert_eq!(set.len(), 1);
        assert!(set[0].to_str().unwrap().starts_with("auth="));
        assert_eq!(c.read(&replay(&set), 500).unwrap(), Some(s));
    }

    #[test]
    fn large_session_is_chunked_and_read_back_whole() {
        let (c, w) = codec();
        let s = session(9000);
        let set = c.write(&s, &HeaderMap::new(), &w, None, Duration::from_secs(60));
        assert!(set.len() >= 3, "{} chunks", set.len());
        for v in &set {
            assert!(v.len() < 4096, "each Set-Cookie fits a browser's limit");
        }
        assert!(set[0].to_str().unwrap().starts_with("auth_0="));
        assert_eq!(c.read(&replay(&set), 500).unwrap(), Some(s));
    }

    #[test]
    fn stale_chunks_are_cleared_when_the_session_shrinks() {
        let (c, w) = codec();
        let big = c.write(
            &session(9000),
            &HeaderMap::new(),
            &w,
            None,
            Duration::from_secs(60),
        );
        let request = replay(&big);
        let small = c.write(&session(10), &request, &w, None, Duration::from_secs(60));
        let cleared: Vec<_> = small
            .iter()
            .map(|v| v.to_str().unwrap())
            .filter(|v| v.contains("Max-Age=0"))
            .map(|v| v.split('=').next().unwrap().to_owned())
            .collect();
        assert_eq!(
            cleared.len(),
            big.len(),
            "every old chunk is deleted: {cleared:?}"
        );
    }

    #[test]
    fn reordered_missing_or_renamed_chunks_fail_closed() {
        let (c, w) = codec();
        let set = c.write(
            &session(9000),
            &HeaderMap::new(),
            &w,
            None,
            Duration::from_secs(60),
        );
        let pairs: Vec<String> = set
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect();
        let values: Vec<&str> = pairs.iter().map(|p| p.split_once('=').unwrap().1).collect();
        let header_of = |cookie: String| {
            let mut h = HeaderMap::new();
            h.insert(header::COOKIE, HeaderValue::from_str(&cookie).unwrap());
            h
        };
        let swapped = header_of(format!(
            "auth_0={}; auth_1={}; auth_2={}",
            values[1], values[0], values[2]
        ));
        assert!(c.read(&swapped, 500).is_err());
        let missing = header_of(format!("auth_0={}; auth_2={}", values[0], values[2]));
        assert!(c.read(&missing, 500).is_err());
        let truncated = header_of(format!("auth_0={}; auth_1={}", values[0], values[1]));
        assert!(c.read(&truncated, 500).is_err());
        let extra = header_of(format!(
            "auth_0={}; auth_1={}; auth_2={}; auth_3=AAAA",
            values[0], values[1], values[2]
        ));
        assert!(c.read(&extra, 500).is_err());
        // A valid single cookie copied under another name.
        let small = c.write(
            &session(5),
            &HeaderMap::new(),
            &w,
            None,
            Duration::from_secs(60),
        );
        let v = small[0]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned();
        let other = SessionCodec::new(
            "other",
            &[CookieSecret::parse("0123456789abcdef0123456789abcdef").unwrap()],
        );
        assert!(other.read(&header_of(format!("other={v}")), 500).is_err());
        assert!(
            c.read(&header_of(format!("auth_0={v}")), 500).is_err(),
            "a single cookie is not a chunk"
        );
        assert!(c.read(&header_of(format!("auth={v}")), 500).is_ok());
    }

    #[test]
    fn chunk_names_are_exact() {
        for (s, i) in [
            ("0", Some(0)),
            ("9", Some(9)),
            ("10", Some(10)),
            ("15", Some(15)),
        ] {
            assert_eq!(chunk_index(s), i, "{s}");
        }
        for s in [
            "", "16", "99", "00", "01", "+1", "-1", " 1", "1 ", "a", "100",
        ] {
            assert_eq!(chunk_index(s), None, "{s:?}");
        }
    }

    #[test]
    fn find_takes_the_first_cookie_of_each_name() {
        let (c, _) = codec();
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("auth_1=b; x=1; auth_0=a; auth_00=z; auth_0=y"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("auth_1=w; auth_3=d"),
        );
        let p = c.find(&h).unwrap().unwrap();
        let pieces: Vec<_> = p.pieces().collect();
        assert_eq!(
            pieces,
            vec![("auth_0", "a"), ("auth_1", "b")],
            "stops at the missing auth_2"
        );
        h.append(header::COOKIE, HeaderValue::from_static("auth=s"));
        let p = c.find(&h).unwrap().unwrap();
        assert_eq!(
            p.pieces().collect::<Vec<_>>(),
            vec![("auth", "s")],
            "the single cookie wins"
        );
        let all: String = (0..MAX_CHUNKS).map(|i| format!("auth_{i}=v; ")).collect();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&all).unwrap());
        assert_eq!(c.find(&h).unwrap_err(), SessionError::TooLarge);
        assert!(c.find(&HeaderMap::new()).unwrap().is_none());
    }

    #[test]
    fn expired_and_absent() {
        let (c, w) = codec();
        let set = c.write(
            &session(5),
            &HeaderMap::new(),
            &w,
            None,
            Duration::from_secs(60),
        );
        assert_eq!(c.read(&replay(&set), 1_000), Err(SessionError::Expired));
        assert_eq!(c.read(&HeaderMap::new(), 0), Ok(None));
    }
}
