//! Many distinct session cookies from one real login, for the cost curves of
//! `cargo xtask bench` (`bench-agent mint-sessions`).
//!
//! A login through the provider takes tens of milliseconds; 10^5 of them would take longer
//! than the whole benchmark. So one real login's session (its tokens, claims and expiry, read
//! back from the cookie the adapter set) is sealed again as many times as needed: every seal
//! draws a fresh AES-GCM nonce, so every cookie has different bytes, and an adapter run with the
//! same cookie name and secret must decrypt each one the first time it sees it (its session
//! cache is keyed by the cookie's exact bytes). Optionally the session gets extra groups
//! until its cookie spans a given number of chunks, as a user in many groups has.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Request, header};
use oidc_core::{Config, CookieSettings, Engine, Session};

/// What to mint.
#[derive(Debug, Clone)]
pub struct Mint {
    /// The session cookie's name (the adapter's `--cookie-name`).
    pub cookie_name: String,
    /// The adapter's `--cookie-secret`.
    pub cookie_secret: String,
    /// The `Cookie` header value a browser sent after a real login.
    pub cookie: String,
    /// How many cookies to mint.
    pub count: usize,
    /// Grow the session with groups until its cookie is this many chunks (1 = as it is).
    pub chunks: usize,
}

/// The minted cookies, as `Cookie: ...` lines (what `bench-agent http-load --credentials=`
/// reads), and the size of one.
#[derive(Debug)]
pub struct Minted {
    /// One `Cookie: <value>` line per cookie, each ending in `\n`.
    pub lines: String,
    /// Bytes of one `Cookie` header value.
    pub cookie_bytes: usize,
    /// Chunks of one cookie.
    pub chunks: usize,
    /// Groups added to the session.
    pub groups_added: usize,
}

impl Mint {
    /// Reads the session back from [`Mint::cookie`] and seals it [`Mint::count`] times.
    pub fn run(&self) -> Result<Minted, String> {
        if self.count == 0 || !(1..=8).contains(&self.chunks) {
            return Err("--count must be positive and --chunks between 1 and 8".into());
        }
        let engine = engine(&self.cookie_name, &self.cookie_secret)?;
        let mut session = read(&engine, &self.cookie)?;
        let mut groups_added = 0;
        let (mut value, mut chunks) = seal(&engine, &session)?;
        // Each added group is about 24 bytes before encryption; grow in steps, then stop at the
        // first size that has the chunks asked for.
        while chunks < self.chunks {
            for _ in 0..16 {
                session.principal.groups.push(group(groups_added));
                groups_added += 1;
            }
            (value, chunks) = seal(&engine, &session)?;
            if groups_added > 100_000 {
                return Err(format!("no cookie of {} chunks", self.chunks));
            }
        }
        if chunks != self.chunks {
            return Err(format!(
                "the session's cookie is already {chunks} chunks, more than --chunks={}",
                self.chunks
            ));
        }
        let cookie_bytes = value.len();
        let mut lines = String::with_capacity(self.count * (cookie_bytes + 10));
        for i in 0..self.count {
            if i > 0 {
                value = seal(&engine, &session)?.0;
            }
            let _ = writeln!(lines, "Cookie: {value}");
        }
        Ok(Minted {
            lines,
            cookie_bytes,
            chunks,
            groups_added,
        })
    }
}

/// An engine that opens and seals the adapter's session cookies (its cookie name and secret;
/// the provider is never contacted).
fn engine(cookie_name: &str, cookie_secret: &str) -> Result<Engine, String> {
    let config = Config::builder("https://idp.example.com/realms/bench", "nginx")
        .cookie_secret(cookie_secret)
        .cookie(CookieSettings {
            name: cookie_name.to_owned(),
            secure: false,
            ..CookieSettings::default()
        })
        .build()
        .map_err(|e| format!("--cookie-name/--cookie-secret: {e}"))?;
    Engine::new(config).map_err(|e| e.to_string())
}

/// The session a real login's cookie holds, refused when it is missing or expired.
fn read(engine: &Engine, cookie: &str) -> Result<Session, String> {
    let value =
        HeaderValue::from_str(cookie).map_err(|_| "--cookie is not a header value".to_owned())?;
    let (parts, ()) = Request::builder()
        .uri("/")
        .header(header::COOKIE, value)
        .body(())
        .map_err(|e| e.to_string())?
        .into_parts();
    let session = engine.authenticate(&parts).map_err(|e| {
        format!("--cookie holds no session this name and secret open ({e:?}): log in again")
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if session.expires_at <= now + 60 {
        return Err("--cookie's session expires within a minute: log in again".into());
    }
    Ok(session)
}

/// The `Cookie` header value that carries `session`, and its number of chunks.
fn seal(engine: &Engine, session: &Session) -> Result<(String, usize), String> {
    let set_cookies = engine.session_cookies(session, None);
    let value = crate::cookie_header(&set_cookies);
    let value = value
        .to_str()
        .map_err(|e| format!("minted cookie: {e}"))?
        .to_owned();
    Ok((value, set_cookies.len()))
}

/// A group name that does not compress into the previous one's.
fn group(i: usize) -> String {
    let mixed = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("/bench/team-{mixed:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real_cookie() -> String {
        let engine = engine("auth", crate::COOKIE_SECRET).expect("engine");
        seal(&engine, &crate::session(300, 2)).expect("seal").0
    }

    fn mint(count: usize, chunks: usize) -> Result<Minted, String> {
        Mint {
            cookie_name: "auth".into(),
            cookie_secret: crate::COOKIE_SECRET.into(),
            cookie: real_cookie(),
            count,
            chunks,
        }
        .run()
    }

    #[test]
    fn every_minted_cookie_is_distinct_and_opens() {
        let minted = mint(50, 1).expect("mint");
        let lines: Vec<&str> = minted.lines.lines().collect();
        assert_eq!(lines.len(), 50);
        let distinct: std::collections::HashSet<&&str> = lines.iter().collect();
        assert_eq!(distinct.len(), 50, "a reseal repeated a cookie");
        assert_eq!(minted.chunks, 1);
        let engine = engine("auth", crate::COOKIE_SECRET).expect("engine");
        for line in &lines {
            let value = line.strip_prefix("Cookie: ").expect("a Cookie line");
            let session = read(&engine, value).expect("a minted cookie opens");
            assert_eq!(
                session.principal.email.as_deref(),
                Some("alice@example.com")
            );
        }
    }

    #[test]
    fn grows_the_session_to_the_chunks_asked_for() {
        for chunks in 2..=4 {
            let minted = mint(2, chunks).expect("mint");
            assert_eq!(minted.chunks, chunks);
            let first = minted.lines.lines().next().expect("a line");
            assert_eq!(first.matches("auth_").count(), chunks, "{first:.80}");
            assert!(minted.groups_added > 0);
        }
    }

    #[test]
    fn refuses_a_cookie_of_another_secret() {
        let err = Mint {
            cookie_name: "auth".into(),
            cookie_secret: "another-cookie-secret-of-32-byte".into(),
            cookie: real_cookie(),
            count: 1,
            chunks: 1,
        }
        .run()
        .expect_err("another secret");
        assert!(err.contains("log in again"), "{err}");
    }
}
