//! The Redis building blocks: the session store (the cookie holds a [`Ticket`], Redis holds
//! the session encrypted under the ticket's key), revocation by `sid`/`sub` across replicas,
//! a revocation list for cookie-mode sessions, a cross-replica refresh lock with a result
//! cache, and back-channel-logout `jti` replay protection.
//!
//! Standalone Redis (with the `redis` crate's connection manager: one multiplexed connection
//! that reconnects by itself), Sentinel (the master is looked up again after a connection
//! error or a `READONLY` answer, so a failover is followed) and Cluster are supported, with or
//! without TLS (`rediss://`).
//!
//! Every operation is bounded by [`RedisSettings::timeout`] (2 s by default): a Redis that is
//! down or hung yields [`StoreError::Unavailable`] within that time, never a hang, and the
//! same [`RedisStore`] recovers on its own once Redis is back. Nothing is read from Redis at
//! [`RedisStore::connect`], so the store can be built while Redis is down.
//!
//! What Redis sees: session values encrypted with AES-256-GCM under a per-session key that
//! exists only in the ticket (the cookie); hashes of `sub`, `sid`, `jti`, lock names and
//! refresh-result keys; revocation timestamps. Never a token, a ticket key or a password.
//!
//! Keys (with the default prefix `oidc-authz`):
//!
//! | key | value | TTL |
//! | --- | --- | --- |
//! | `{prefix}:s:{hex(ticket id)}` | sealed session | the `ttl` given to [`RedisStore::save`] |
//! | `{prefix}:sid:{h(sid)}`, `{prefix}:sub:{h(sub)}` | set of ticket ids (hex) | the longest session TTL in the set |
//! | `{prefix}:rv:sid:{h(sid)}`, `{prefix}:rv:sub:{h(sub)}` | revocation time (Unix s) | the marker's TTL |
//! | `{prefix}:lock:{h(name)}` | random lock token | the lock's TTL |
//! | `{prefix}:rr:{h(key)}` | the caller's sealed refresh result | as given |
//! | `{prefix}:jti:{h(jti)}` | `1` | as given |
//!
//! `h` is SHA-256, domain-separated, hex, truncated to 128 bits. No command spans two keys,
//! so all of this works on a Redis Cluster as is.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind,
    IntoConnectionInfo, RedisError, RedisFuture, Script, ServerErrorKind, TlsCertificates, TlsMode,
    Value,
};
use sha2::{Digest, Sha256};

use crate::session::model::Session;
use crate::session::wire::FORMAT_VERSION;

/// Default for [`RedisSettings::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default for [`RedisSettings::key_prefix`].
pub const DEFAULT_KEY_PREFIX: &str = "oidc-authz";
/// Default for [`RedisSettings::revocation_ttl`]: oauth2-proxy's default `--cookie-expire` (168h).
pub const DEFAULT_REVOCATION_TTL: Duration = Duration::from_secs(168 * 3600);

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

/// Where Redis is: one server, a Sentinel-managed master, or a Cluster.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisTopology {
    /// One server (`--redis-connection-url`): `redis://[user:pass@]host:port[/db]`,
    /// `rediss://...` for TLS, or `unix:///path/to/socket`.
    Standalone {
        /// The URL.
        url: String,
    },
    /// A master found through Sentinel (`--redis-use-sentinel`).
    Sentinel {
        /// `--redis-sentinel-master-name`.
        master_name: String,
        /// `--redis-sentinel-connection-urls`: the Sentinels (not the master), `redis://host:port`
        /// or `rediss://host:port` (TLS to the Sentinels and to the master).
        sentinel_urls: Vec<String>,
    },
    /// A Redis Cluster (`--redis-use-cluster`).
    Cluster {
        /// `--redis-cluster-connection-urls`: some of the cluster's nodes (`redis://` or `rediss://`).
        urls: Vec<String>,
    },
}

impl fmt::Debug for RedisTopology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl RedisTopology {
    /// A description for logs and errors, with every password replaced by `***`.
    fn describe(&self) -> String {
        let list = |urls: &[String]| {
            urls.iter()
                .map(|u| scrub_url(u))
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Self::Standalone { url } => scrub_url(url),
            Self::Sentinel {
                master_name,
                sentinel_urls,
            } => format!(
                "sentinel master {master_name:?} via {}",
                list(sentinel_urls)
            ),
            Self::Cluster { urls } => format!("cluster {}", list(urls)),
        }
    }
}

/// How to reach Redis, with oauth2-proxy's `--redis-*` options. Build it with
/// [`RedisSettings::standalone`], [`RedisSettings::sentinel`] or [`RedisSettings::cluster`],
/// then set the public fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisSettings {
    /// Standalone, Sentinel or Cluster, with the URLs.
    pub topology: RedisTopology,
    /// `--redis-username` (Redis 6 ACL user); overrides a user in the URL.
    pub username: Option<String>,
    /// `--redis-password`; overrides a password in the URL. For Sentinel: the master's password.
    pub password: Option<String>,
    /// `--redis-sentinel-password`: the Sentinels' own password, when they have one (a password
    /// in a Sentinel URL works too).
    pub sentinel_password: Option<String>,
    /// `--redis-ca-path`: PEM file of the CA(s) that sign the Redis server certificates, for
    /// `rediss://`; without it the system's trust store is used.
    pub ca_path: Option<PathBuf>,
    /// `--redis-insecure-skip-tls-verify`: do not verify the server certificate (`rediss://`).
    pub insecure_skip_tls_verify: bool,
    /// `--redis-connection-idle-timeout`: when set, the connection is kept from idling that long
    /// (a `PING` every half of it), so a Redis `timeout` or a NAT does not drop it under us.
    pub idle_timeout: Option<Duration>,
    /// Bound on every operation of the store, reconnection included ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
    /// Prefix of every key ([`DEFAULT_KEY_PREFIX`]); lets several deployments share a Redis.
    pub key_prefix: String,
    /// How long the revocation markers written by [`RedisStore::revoke_sid`] and
    /// [`RedisStore::revoke_sub`] live: at least the longest session (`--cookie-expire`).
    pub revocation_ttl: Duration,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("RedisSettings")
            .field("topology", &self.topology)
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("sentinel_password", &redacted(&self.sentinel_password))
            .field("ca_path", &self.ca_path)
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("idle_timeout", &self.idle_timeout)
            .field("timeout", &self.timeout)
            .field("key_prefix", &self.key_prefix)
            .field("revocation_ttl", &self.revocation_ttl)
            .finish()
    }
}

impl RedisSettings {
    /// One Redis server at `url` (`--redis-connection-url`).
    pub fn standalone(url: impl Into<String>) -> Self {
        Self::with_topology(RedisTopology::Standalone { url: url.into() })
    }

    /// The master `master_name`, found through these Sentinels.
    pub fn sentinel(
        master_name: impl Into<String>,
        sentinel_urls: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self::with_topology(RedisTopology::Sentinel {
            master_name: master_name.into(),
            sentinel_urls: sentinel_urls.into_iter().map(Into::into).collect(),
        })
    }

    /// A Redis Cluster, discovered from these nodes.
    pub fn cluster(urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self::with_topology(RedisTopology::Cluster {
            urls: urls.into_iter().map(Into::into).collect(),
        })
    }

    /// Default settings for this topology.
    pub fn with_topology(topology: RedisTopology) -> Self {
        Self {
            topology,
            username: None,
            password: None,
            sentinel_password: None,
            ca_path: None,
            insecure_skip_tls_verify: false,
            idle_timeout: None,
            timeout: DEFAULT_TIMEOUT,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            revocation_ttl: DEFAULT_REVOCATION_TTL,
        }
    }
}

/// `url` with its password (and query string) replaced by `***`; never fails.
fn scrub_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query().is_some() {
                u.set_query(Some("***"));
            }
            u.into()
        }
        // Not a URL: it may still hold a secret, so show nothing of it.
        Err(_) => "<invalid URL>".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a store operation failed. No variant's text carries a password, a token or a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Redis could not be reached, did not answer within the timeout, or refused the command.
    /// The caller should fail closed (503) and try again later: the store reconnects by itself.
    #[error("Redis ({endpoint}) is unavailable")]
    Unavailable {
        /// Which Redis (URLs with passwords scrubbed).
        endpoint: Arc<str>,
        /// What happened.
        #[source]
        source: RedisFailure,
    },
    /// The stored session cannot be opened with this ticket's key (a forged or tampered
    /// ticket, or a value written by an incompatible version). Treat as no session.
    #[error(
        "the session in Redis could not be decrypted with this ticket (forged or tampered ticket, or an incompatible version)"
    )]
    Corrupt,
    /// The session's `sid` or `sub` was revoked while it was being saved; it was deleted again.
    #[error("the session was revoked (logout) while it was being saved")]
    Revoked,
    /// The settings cannot be used (raised by [`RedisStore::connect`] only).
    #[error("{setting}: {message}")]
    Config {
        /// The [`RedisSettings`] field concerned (`ca_path`, `topology (Sentinel master_name)`,
        /// ...), by the library's name (the adapter's flags are `--redis-*`).
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The cause of [`StoreError::Unavailable`]: the Redis client's error or a timeout, as text
/// with any configured password removed.
#[derive(Debug, Clone)]
pub struct RedisFailure(String);

impl fmt::Display for RedisFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedisFailure {}

/// An operation's failure before it becomes a [`StoreError`].
enum Fail {
    Redis(RedisError),
    Store(StoreError),
}

impl From<RedisError> for Fail {
    fn from(e: RedisError) -> Self {
        Self::Redis(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Worth one more try on the (re)connected connection: the connection broke, not the command.
fn is_connection_error(e: &RedisError) -> bool {
    (e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()) && !e.is_timeout()
}

/// The connection must be replaced: it broke, or it reaches a node that is no longer a master.
fn needs_new_connection(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
        || e.kind() == ErrorKind::Server(ServerErrorKind::MasterDown)
}

// ---------------------------------------------------------------------------------------------
// Ticket
// ---------------------------------------------------------------------------------------------

const TICKET_VERSION: u8 = 1;
const TICKET_LEN: usize = 1 + 16 + 32;

/// What the session cookie holds in Redis mode: the id of the session in Redis and the key
/// its value is encrypted with. The key exists only here (in the cookie), never in Redis.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Random session id; Redis key `{prefix}:s:{hex(id)}`.
    pub id: [u8; 16],
    /// Random AES-256-GCM key of this session's value.
    pub key: [u8; 32],
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("id", &self.id_hex())
            .field("key", &"***")
            .finish()
    }
}

impl Ticket {
    /// A new random ticket (OS randomness).
    #[must_use]
    pub fn generate() -> Self {
        let mut t = Self {
            id: [0; 16],
            key: [0; 32],
        };
        rand::rngs::OsRng.fill_bytes(&mut t.id);
        rand::rngs::OsRng.fill_bytes(&mut t.key);
        t
    }

    /// Cookie-safe text: URL-safe base64 (no padding) of a version byte, the id and the key;
    /// 66 characters.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut raw = [0u8; TICKET_LEN];
        raw[0] = TICKET_VERSION;
        raw[1..17].copy_from_slice(&self.id);
        raw[17..].copy_from_slice(&self.key);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Parses [`Ticket::encode`]'s text; `None` for anything else.
    #[must_use]
    pub fn decode(text: &str) -> Option<Self> {
        if text.len() != TICKET_LEN.div_ceil(3) * 4 - 2 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
        if raw.len() != TICKET_LEN || raw[0] != TICKET_VERSION {
            return None;
        }
        let mut t = Self {
            id: [0; 16],
            key: [0; 32],
        };
        t.id.copy_from_slice(&raw[1..17]);
        t.key.copy_from_slice(&raw[17..]);
        Some(t)
    }

    /// The id in lower-case hex (as in the Redis key); safe to log.
    #[must_use]
    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// SHA-256 of `value` under a domain label, hex, 128 bits: names Redis keys without putting
/// the value itself in Redis.
fn hashed(label: &str, value: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"oidc-authz redis ");
    h.update(label.as_bytes());
    h.update([0]);
    h.update(value);
    hex(&h.finalize()[..16])
}

// ---------------------------------------------------------------------------------------------
// Sealing of session values
// ---------------------------------------------------------------------------------------------

/// A value's first byte: the session format version (see `FORMAT_VERSION`).
const VALUE_VERSION: u8 = FORMAT_VERSION;
const NONCE_LEN: usize = 12;

fn value_aad(id_hex: &str) -> Vec<u8> {
    let mut aad = b"oidc-authz redis session v1 ".to_vec();
    aad.extend_from_slice(id_hex.as_bytes());
    aad
}

fn seal_session(ticket: &Ticket, session: &Session) -> Vec<u8> {
    let plain = serde_json::to_vec(session).unwrap_or_default();
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = value_aad(&ticket.id_hex());
    let cipher = Aes256Gcm::new(&ticket.key.into());
    // Encryption only fails for inputs beyond AES-GCM's size limit (64 GiB).
    let ct = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .unwrap_or_default();
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(VALUE_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_session(ticket: &Ticket, value: &[u8]) -> Result<Session, StoreError> {
    if value.len() < 1 + NONCE_LEN + 16 || value[0] != VALUE_VERSION {
        return Err(StoreError::Corrupt);
    }
    let (nonce, ct) = value[1..].split_at(NONCE_LEN);
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(nonce);
    let aad = value_aad(&ticket.id_hex());
    let plain = Aes256Gcm::new(&ticket.key.into())
        .decrypt(&Nonce::from(n), Payload { msg: ct, aad: &aad })
        .map_err(|_| StoreError::Corrupt)?;
    serde_json::from_slice(&plain).map_err(|_| StoreError::Corrupt)
}

// ---------------------------------------------------------------------------------------------
// Lua scripts (each on one key, so Cluster-safe)
// ---------------------------------------------------------------------------------------------

/// Adds a member to an index set and makes the set live at least `ARGV[2]` ms.
static INDEX_ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"redis.call('SADD', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1",
    )
});

/// Sets a revocation marker to the later of its current time and `ARGV[1]`, living at least
/// `ARGV[2]` ms.
static MARK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local cur = redis.call('GET', KEYS[1])
local at = ARGV[1]
if cur and tonumber(cur) > tonumber(at) then at = cur end
local ttl = tonumber(ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if left > ttl then ttl = left end
redis.call('SET', KEYS[1], at, 'PX', ttl)
return 1",
    )
});

/// `SET NX PX` that is safe to retry: also succeeds when the key already holds our token (the
/// first attempt went through but its answer was lost with the connection).
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0",
    )
});

/// Deletes a lock only if it still holds our token.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0",
    )
});

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/// One connection of any topology, usable with `query_async` and `invoke_async`.
#[derive(Clone)]
enum Conn {
    Manager(ConnectionManager),
    Multiplexed(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Manager(c) => c.req_packed_command(cmd),
            Self::Multiplexed(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Manager(c) => c.req_packed_commands(cmd, offset, count),
            Self::Multiplexed(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Manager(c) => c.get_db(),
            Self::Multiplexed(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// A connection made on first use and replaced after a connection error.
struct Lazy {
    current: Mutex<Option<(u64, Conn)>>,
    /// Serialises (re)connecting, so a burst of requests makes one connection.
    connecting: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

impl Lazy {
    fn new() -> Self {
        Self {
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        }
    }

    fn get(&self) -> Option<(u64, Conn)> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn get_or_connect<F, Fut>(&self, connect: F) -> Result<(u64, Conn), RedisError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Conn, RedisError>>,
    {
        if let Some(c) = self.get() {
            return Ok(c);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(c) = self.get() {
            return Ok(c);
        }
        let conn = connect().await?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((generation, conn.clone()));
        Ok((generation, conn))
    }

    /// Drops the connection of `generation` (if it is still the current one).
    fn discard(&self, generation: u64) {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
        }
    }
}

struct SentinelBackend {
    client: tokio::sync::Mutex<SentinelClient>,
    config: AsyncConnectionConfig,
    conn: Lazy,
}

struct ClusterBackend {
    client: ClusterClient,
    conn: Lazy,
}

#[derive(Clone)]
enum Backend {
    Standalone(ConnectionManager),
    Sentinel(Arc<SentinelBackend>),
    Cluster(Arc<ClusterBackend>),
}

impl Backend {
    /// A connection and its generation (0 for the self-healing connection manager).
    async fn conn(&self) -> Result<(u64, Conn), RedisError> {
        match self {
            Self::Standalone(m) => Ok((0, Conn::Manager(m.clone()))),
            Self::Sentinel(s) => {
                s.conn
                    .get_or_connect(|| async {
                        // Ask the Sentinels where the master is now, then connect to it.
                        let client = s.client.lock().await.async_get_client().await?;
                        let c = client
                            .get_multiplexed_async_connection_with_config(&s.config)
                            .await?;
                        Ok(Conn::Multiplexed(c))
                    })
                    .await
            }
            Self::Cluster(c) => {
                c.conn
                    .get_or_connect(|| async {
                        Ok(Conn::Cluster(c.client.get_async_connection().await?))
                    })
                    .await
            }
        }
    }

    /// After an error on the connection of `generation`: replace it if it is broken.
    fn failed(&self, generation: u64, e: &RedisError) {
        if !needs_new_connection(e) {
            return;
        }
        match self {
            // The connection manager reconnects by itself.
            Self::Standalone(_) => {}
            Self::Sentinel(s) => s.conn.discard(generation),
            Self::Cluster(c) => c.conn.discard(generation),
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        let (generation, mut conn) = self.conn().await?;
        let result = cmd.query_async(&mut conn).await;
        if let Err(e) = &result {
            self.failed(generation, e);
        }
        result
    }

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        key: &str,
        args: &[&str],
    ) -> Result<T, RedisError> {
        let (generation, mut conn) = self.conn().await?;
        let mut invocation = script.key(key);
        for a in args {
            invocation.arg(*a);
        }
        let result = invocation.invoke_async(&mut conn).await;
        if let Err(e) = &result {
            self.failed(generation, e);
        }
        result
    }
}

fn config_error(setting: &'static str, message: impl fmt::Display) -> StoreError {
    StoreError::Config {
        setting,
        message: message.to_string(),
    }
}

/// Parses a URL into connection info, with the settings' credentials and TLS options applied.
fn connection_info(
    setting: &'static str,
    url: &str,
    username: Option<&str>,
    password: Option<&str>,
    insecure: bool,
) -> Result<ConnectionInfo, StoreError> {
    let info = url.into_connection_info().map_err(|e| {
        config_error(
            setting,
            format!("{} is not a usable Redis URL ({e:?})", scrub_url(url)),
        )
    })?;
    let mut redis = info.redis_settings().clone();
    if let Some(u) = username {
        redis = redis.set_username(u);
    }
    if let Some(p) = password {
        redis = redis.set_password(p);
    }
    let addr = match info.addr().clone() {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: from_url,
            tls_params,
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: from_url || insecure,
            tls_params,
        },
        other => other,
    };
    Ok(info.set_addr(addr).set_redis_settings(redis))
}

fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

fn ca_certificates(settings: &RedisSettings) -> Result<Option<TlsCertificates>, StoreError> {
    let Some(path) = &settings.ca_path else {
        return Ok(None);
    };
    let pem = std::fs::read(path)
        .map_err(|e| config_error("ca_path", format!("cannot read {}: {e}", path.display())))?;
    Ok(Some(TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

async fn build_backend(settings: &RedisSettings, timeout: Duration) -> Result<Backend, StoreError> {
    let certs = ca_certificates(settings)?;
    let username = settings.username.as_deref();
    let password = settings.password.as_deref();
    let insecure = settings.insecure_skip_tls_verify;
    match &settings.topology {
        RedisTopology::Standalone { url } => {
            const FLAG: &str = "topology (Standalone url)";
            let info = connection_info(FLAG, url, username, password, insecure)?;
            let client = match certs {
                Some(certs) if is_tls(&info) => Client::build_with_tls(info, certs),
                Some(_) => {
                    return Err(config_error(
                        "ca_path",
                        "a CA is only used with TLS: give a rediss:// URL",
                    ));
                }
                None => Client::open(info),
            }
            .map_err(|e| config_error(FLAG, format!("{e:?}")))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                // Few, quick retries: while Redis is down, calls fail fast; every later call
                // starts a new reconnection.
                .set_number_of_retries(2)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(500));
            let manager = ConnectionManager::new_lazy_with_config(client, config)
                .map_err(|e| config_error(FLAG, format!("{e:?}")))?;
            Ok(Backend::Standalone(manager))
        }
        RedisTopology::Sentinel {
            master_name,
            sentinel_urls,
        } => {
            const FLAG: &str = "topology (Sentinel sentinel_urls)";
            if sentinel_urls.is_empty() {
                return Err(config_error(FLAG, "no Sentinel URL given"));
            }
            if master_name.is_empty() {
                return Err(config_error(
                    "topology (Sentinel master_name)",
                    "the master name is required with Sentinel",
                ));
            }
            let infos = sentinel_urls
                .iter()
                .map(|u| {
                    connection_info(
                        FLAG,
                        u,
                        None,
                        settings.sentinel_password.as_deref(),
                        insecure,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            let tls = infos.iter().any(is_tls);
            if certs.is_some() && !tls {
                return Err(config_error(
                    "ca_path",
                    "a CA is only used with TLS: give rediss:// Sentinel URLs",
                ));
            }
            let sentinel_password = settings.sentinel_password.clone().or_else(|| {
                infos
                    .iter()
                    .find_map(|i| i.redis_settings().password().map(str::to_owned))
            });
            let sentinel_username = infos
                .iter()
                .find_map(|i| i.redis_settings().username().map(str::to_owned));
            let addrs = infos.iter().map(|i| i.addr().clone());
            let mut b = SentinelClientBuilder::new(addrs, master_name, SentinelServerType::Master)
                .map_err(|e| config_error(FLAG, format!("{e:?}")))?;
            if let Some(p) = &sentinel_password {
                b = b.set_client_to_sentinel_password(p);
            }
            if let Some(u) = &sentinel_username {
                b = b.set_client_to_sentinel_username(u);
            }
            if let Some(u) = username {
                b = b.set_client_to_redis_username(u);
            }
            if let Some(p) = password {
                b = b.set_client_to_redis_password(p);
            }
            if tls {
                let mode = if insecure {
                    TlsMode::Insecure
                } else {
                    TlsMode::Secure
                };
                b = b
                    .set_client_to_sentinel_tls_mode(mode)
                    .set_client_to_redis_tls_mode(mode);
                if let Some(certs) = certs {
                    b = b
                        .set_client_to_sentinel_certificates(certs.clone())
                        .set_client_to_redis_certificates(certs);
                }
            }
            let client = b
                .build()
                .map_err(|e| config_error(FLAG, format!("{e:?}")))?;
            Ok(Backend::Sentinel(Arc::new(SentinelBackend {
                client: tokio::sync::Mutex::new(client),
                config: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout)),
                conn: Lazy::new(),
            })))
        }
        RedisTopology::Cluster { urls } => {
            const FLAG: &str = "topology (Cluster urls)";
            if urls.is_empty() {
                return Err(config_error(FLAG, "no cluster node URL given"));
            }
            let infos = urls
                .iter()
                .map(|u| connection_info(FLAG, u, username, password, insecure))
                .collect::<Result<Vec<_>, _>>()?;
            let tls = infos.iter().any(is_tls);
            let mut b = ClusterClientBuilder::new(infos)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(2);
            if let Some(u) = username {
                b = b.username(u);
            }
            if let Some(p) = password {
                b = b.password(p);
            }
            if tls {
                b = b.tls(if insecure {
                    TlsMode::Insecure
                } else {
                    TlsMode::Secure
                });
            }
            match certs {
                Some(certs) if tls => b = b.certs(certs),
                Some(_) => {
                    return Err(config_error(
                        "ca_path",
                        "a CA is only used with TLS: give rediss:// cluster URLs",
                    ));
                }
                None => {}
            }
            let client = b
                .build()
                .map_err(|e| config_error(FLAG, format!("{e:?}")))?;
            Ok(Backend::Cluster(Arc::new(ClusterBackend {
                client,
                conn: Lazy::new(),
            })))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

/// Which claim a revocation marker is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationKind {
    /// The provider session id (`sid`).
    Sid,
    /// The subject (`sub`): every session of the user.
    Sub,
}

impl RevocationKind {
    fn label(self) -> &'static str {
        match self {
            Self::Sid => "sid",
            Self::Sub => "sub",
        }
    }
}

/// The Redis store. Cheap to clone; share one per process. Every method returns within
/// [`RedisSettings::timeout`].
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    prefix: String,
    timeout: Duration,
    revocation_ttl: Duration,
    endpoint: Arc<str>,
    /// Passwords to scrub from error texts.
    secrets: Vec<String>,
    keepalive: Option<tokio::task::AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(k) = &self.keepalive {
            k.abort();
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("endpoint", &self.inner.endpoint)
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Builds the store. Fails only on unusable settings (a bad URL, an unreadable CA file):
    /// no connection is made here, so Redis may be down; the first operations will report
    /// [`StoreError::Unavailable`] until it is up. Must run inside a Tokio runtime.
    pub async fn connect(settings: RedisSettings) -> Result<Self, StoreError> {
        if settings.timeout.is_zero() {
            return Err(config_error("redis timeout", "must be more than 0"));
        }
        let backend = build_backend(&settings, settings.timeout).await?;
        let secrets = [
            settings.password.as_deref(),
            settings.sentinel_password.as_deref(),
        ]
        .into_iter()
        .flatten()
        .chain(url_passwords(&settings.topology))
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
        let keepalive = settings.idle_timeout.filter(|t| !t.is_zero()).map(|idle| {
            let backend = backend.clone();
            let timeout = settings.timeout;
            tokio::spawn(async move {
                let every = (idle / 2).max(Duration::from_millis(100));
                loop {
                    tokio::time::sleep(every).await;
                    let ping = redis::cmd("PING");
                    let _ = tokio::time::timeout(timeout, backend.query::<String>(&ping)).await;
                }
            })
            .abort_handle()
        });
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                prefix: settings.key_prefix.clone(),
                timeout: settings.timeout,
                revocation_ttl: settings.revocation_ttl,
                endpoint: settings.topology.describe().into(),
                secrets,
                keepalive,
            }),
        })
    }

    /// Which Redis this is, for logs (passwords scrubbed).
    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// Runs `op` under the timeout; with `retry`, once more after a broken connection (the
    /// connection is replaced in between). Use `retry` only for idempotent operations.
    async fn run<T, F, Fut>(&self, retry: bool, op: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Fail>>,
    {
        let attempt = async {
            match op().await {
                Err(Fail::Redis(e)) if retry && is_connection_error(&e) => op().await,
                other => other,
            }
        };
        match tokio::time::timeout(self.inner.timeout, attempt).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(Fail::Store(e))) => Err(e),
            Ok(Err(Fail::Redis(e))) => Err(self.unavailable(e.to_string())),
            Err(_) => Err(self.unavailable(format!(
                "no answer within {} ms",
                self.inner.timeout.as_millis()
            ))),
        }
    }

    fn unavailable(&self, mut text: String) -> StoreError {
        for s in &self.inner.secrets {
            text = text.replace(s.as_str(), "***");
        }
        StoreError::Unavailable {
            endpoint: Arc::clone(&self.inner.endpoint),
            source: RedisFailure(text),
        }
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{name}", self.inner.prefix)
    }

    fn session_key(&self, ticket: &Ticket) -> String {
        self.key("s", &ticket.id_hex())
    }

    fn index_key(&self, kind: RevocationKind, value: &str) -> String {
        self.key(kind.label(), &hashed(kind.label(), value.as_bytes()))
    }

    fn marker_key(&self, kind: RevocationKind, value: &str) -> String {
        self.key(
            &format!("rv:{}", kind.label()),
            &hashed(kind.label(), value.as_bytes()),
        )
    }

    /// `PING`: `Ok` when Redis answers (readiness probes, start-up logs).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let backend = &self.inner.backend;
        self.run(true, || async {
            backend.query::<String>(&redis::cmd("PING")).await?;
            Ok(())
        })
        .await
    }

    /// Stores `session` under `ticket` for `ttl` (the cookie's expiry), encrypted with the
    /// ticket's key, and indexes it under its `sid` and `sub` for [`RedisStore::revoke_sid`]
    /// and [`RedisStore::revoke_sub`].
    ///
    /// Returns [`StoreError::Revoked`] (and leaves nothing behind) when the session's `sid` or
    /// `sub` has a revocation marker at or after `session.created_at`: a refresh that races a
    /// back-channel logout cannot bring the session back.
    pub async fn save(
        &self,
        ticket: &Ticket,
        session: &Session,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let backend = &self.inner.backend;
        let key = self.session_key(ticket);
        let value = seal_session(ticket, session);
        let id = ticket.id_hex();
        let ttl_ms = millis(ttl).to_string();
        let sub_index = self.index_key(RevocationKind::Sub, &session.principal.subject);
        let sid_index = session
            .sid
            .as_deref()
            .map(|sid| self.index_key(RevocationKind::Sid, sid));
        self.run(true, || async {
            // Index first, then the value, then look for a revocation: whichever of save and
            // revoke comes second sees the other's write.
            let args = [id.as_str(), ttl_ms.as_str()];
            let sub = backend.invoke::<i64>(&INDEX_ADD, &sub_index, &args);
            let sid = async {
                match &sid_index {
                    Some(k) => backend
                        .invoke::<i64>(&INDEX_ADD, k, &args)
                        .await
                        .map(|_| ()),
                    None => Ok(()),
                }
            };
            let (sub, sid) = tokio::join!(sub, sid);
            sub?;
            sid?;
            backend
                .query::<()>(
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&value)
                        .arg("PX")
                        .arg(&ttl_ms),
                )
                .await?;
            if self
                .revoked(
                    session.sid.as_deref(),
                    session.created_at,
                    &session.principal.subject,
                    session.created_at,
                )
                .await?
            {
                backend.query::<()>(redis::cmd("DEL").arg(&key)).await?;
                return Err(Fail::Store(StoreError::Revoked));
            }
            Ok(())
        })
        .await
    }

    /// The session stored under `ticket`: `Ok(None)` when there is none (expired, deleted,
    /// revoked), [`StoreError::Corrupt`] when the ticket's key does not open it. The caller
    /// still checks [`Session::is_expired`].
    pub async fn load(&self, ticket: &Ticket) -> Result<Option<Session>, StoreError> {
        let backend = &self.inner.backend;
        let key = self.session_key(ticket);
        let value = self
            .run(true, || async {
                Ok(backend
                    .query::<Option<Vec<u8>>>(redis::cmd("GET").arg(&key))
                    .await?)
            })
            .await?;
        value.map(|v| open_session(ticket, &v)).transpose()
    }

    /// How long the session under `ticket` has left in Redis; `None` when there is none.
    pub async fn remaining_ttl(&self, ticket: &Ticket) -> Result<Option<Duration>, StoreError> {
        let backend = &self.inner.backend;
        let key = self.session_key(ticket);
        let ms = self
            .run(true, || async {
                Ok(backend.query::<i64>(redis::cmd("PTTL").arg(&key)).await?)
            })
            .await?;
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }

    /// Deletes the session under `ticket` (sign-out). Deleting a missing session is fine.
    pub async fn delete(&self, ticket: &Ticket) -> Result<(), StoreError> {
        let backend = &self.inner.backend;
        let key = self.session_key(ticket);
        self.run(true, || async {
            Ok(backend.query::<()>(redis::cmd("DEL").arg(&key)).await?)
        })
        .await
    }

    /// Back-channel logout by `sid`: deletes every session indexed under it, in every replica
    /// (the data is in Redis), and leaves a revocation marker for
    /// [`RedisSettings::revocation_ttl`] (so a concurrent [`RedisStore::save`] fails, and
    /// [`RedisStore::is_revoked`] reports cookie-mode sessions). Returns how many stored
    /// sessions were deleted.
    pub async fn revoke_sid(&self, sid: &str) -> Result<usize, StoreError> {
        self.revoke(RevocationKind::Sid, sid).await
    }

    /// Like [`RedisStore::revoke_sid`], for every session of the subject `sub`.
    pub async fn revoke_sub(&self, sub: &str) -> Result<usize, StoreError> {
        self.revoke(RevocationKind::Sub, sub).await
    }

    async fn revoke(&self, kind: RevocationKind, value: &str) -> Result<usize, StoreError> {
        let backend = &self.inner.backend;
        let index = self.index_key(kind, value);
        let marker = self.marker_key(kind, value);
        let at = unix_now().to_string();
        let ttl = millis(self.inner.revocation_ttl).to_string();
        self.run(true, || async {
            backend.invoke::<i64>(&MARK, &marker, &[&at, &ttl]).await?;
            let ids: Vec<String> = backend.query(redis::cmd("SMEMBERS").arg(&index)).await?;
            if ids.is_empty() {
                return Ok(0);
            }
            let mut del = redis::cmd("DEL");
            for id in &ids {
                del.arg(self.key("s", id));
            }
            let deleted = backend.query::<usize>(&del).await?;
            // Only the members read above: a session indexed meanwhile (a login after the
            // revocation) stays indexed.
            backend
                .query::<()>(redis::cmd("SREM").arg(&index).arg(&ids))
                .await?;
            Ok(deleted)
        })
        .await
    }

    /// Records a revocation of `value` (a `sid` or a `sub`) now, for `ttl` (at least the
    /// longest cookie-mode session): sessions issued at or before now are then reported by
    /// [`RedisStore::is_revoked`]. Markers only move forward in time.
    pub async fn revoke_marker(
        &self,
        kind: RevocationKind,
        value: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let backend = &self.inner.backend;
        let marker = self.marker_key(kind, value);
        let at = unix_now().to_string();
        let ttl = millis(ttl).to_string();
        self.run(true, || async {
            backend.invoke::<i64>(&MARK, &marker, &[&at, &ttl]).await?;
            Ok(())
        })
        .await
    }

    /// `true` when the session's `sid` or `sub` was revoked at or after `issued_at` (Unix
    /// seconds; pass [`Session::created_at`]). A session issued in the same second as a
    /// revocation counts as revoked (fail closed).
    pub async fn is_revoked(
        &self,
        sid: Option<&str>,
        sub: &str,
        issued_at: u64,
    ) -> Result<bool, StoreError> {
        self.is_revoked_since(sid, issued_at, sub, issued_at).await
    }

    /// Whether `sid` was revoked at or after `sid_since`, or `sub` at or after `sub_since`
    /// (Unix seconds): [`RedisStore::is_revoked`] with a threshold for each. For an access
    /// token, any revocation of its `sid` (0: a provider session id names one session and is
    /// never reused) and one of its `sub` at or after its `iat`. One round trip.
    pub async fn is_revoked_since(
        &self,
        sid: Option<&str>,
        sid_since: u64,
        sub: &str,
        sub_since: u64,
    ) -> Result<bool, StoreError> {
        self.run(true, || async {
            self.revoked(sid, sid_since, sub, sub_since).await
        })
        .await
    }

    /// Whether `sid` was revoked at or after `sid_since`, or `sub` at or after `sub_since`.
    async fn revoked(
        &self,
        sid: Option<&str>,
        sid_since: u64,
        sub: &str,
        sub_since: u64,
    ) -> Result<bool, Fail> {
        let backend = &self.inner.backend;
        let get = |key: String| async move {
            backend
                .query::<Option<u64>>(redis::cmd("GET").arg(key))
                .await
        };
        let sub_marker = get(self.marker_key(RevocationKind::Sub, sub));
        let sid_marker = async {
            match sid {
                Some(sid) => get(self.marker_key(RevocationKind::Sid, sid)).await,
                None => Ok(None),
            }
        };
        let (sub_at, sid_at) = tokio::join!(sub_marker, sid_marker);
        let (sub_at, sid_at) = (sub_at?, sid_at?);
        Ok(sub_at.is_some_and(|at| sub_since <= at) || sid_at.is_some_and(|at| sid_since <= at))
    }

    /// Takes the lock `name` for `ttl` if nobody holds it (`SET NX PX` with a random token,
    /// safe to retry after a broken connection).
    /// `Ok(None)` when another holder (any replica) has it. Release it with
    /// [`LockGuard::release`]; a guard dropped unreleased is released in the background, and a
    /// crashed holder's lock expires after `ttl`. Redis sees only a hash of `name`.
    pub async fn try_lock(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<LockGuard>, StoreError> {
        let key = self.key("lock", &hashed("lock", name.as_bytes()));
        let got = self.claim(&key, ttl).await?;
        Ok(got.map(|token| LockGuard {
            store: self.clone(),
            key,
            token,
            released: false,
        }))
    }

    /// Caches a refresh outcome under `key` for `ttl`, for the replicas whose requests carry
    /// the old cookie. `sealed` must already be encrypted by the caller (with a key Redis never
    /// sees); Redis sees only a hash of `key`.
    pub async fn put_refresh_result(
        &self,
        key: &[u8; 32],
        sealed: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let backend = &self.inner.backend;
        let rkey = self.key("rr", &hashed("refresh result", key));
        let ttl_ms = millis(ttl);
        self.run(true, || async {
            Ok(backend
                .query::<()>(
                    redis::cmd("SET")
                        .arg(&rkey)
                        .arg(sealed)
                        .arg("PX")
                        .arg(ttl_ms),
                )
                .await?)
        })
        .await
    }

    /// The value stored by [`RedisStore::put_refresh_result`] under `key`, if still there.
    pub async fn get_refresh_result(&self, key: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let backend = &self.inner.backend;
        let rkey = self.key("rr", &hashed("refresh result", key));
        self.run(true, || async {
            Ok(backend
                .query::<Option<Vec<u8>>>(redis::cmd("GET").arg(&rkey))
                .await?)
        })
        .await
    }

    /// Back-channel logout replay protection: `true` the first time `jti` is seen (it is then
    /// remembered for `ttl`), `false` for a replay, from any replica.
    pub async fn remember_jti(&self, jti: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = self.key("jti", &hashed("jti", jti.as_bytes()));
        Ok(self.claim(&key, ttl).await?.is_some())
    }

    /// Sets `key` to a fresh random token for `ttl` if it does not exist; `Some(token)` if so.
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        let backend = &self.inner.backend;
        let mut raw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = hex(&raw);
        let ttl_ms = millis(ttl).to_string();
        let won = self
            .run(true, || async {
                Ok(backend
                    .invoke::<i64>(&CLAIM, key, &[&token, &ttl_ms])
                    .await?
                    == 1)
            })
            .await?;
        Ok(won.then_some(token))
    }

    async fn release_lock(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        let backend = &self.inner.backend;
        self.run(true, || async {
            Ok(backend.invoke::<i64>(&RELEASE, key, &[token]).await? == 1)
        })
        .await
    }
}

fn url_passwords(topology: &RedisTopology) -> Vec<&str> {
    let urls: Vec<&String> = match topology {
        RedisTopology::Standalone { url } => vec![url],
        RedisTopology::Sentinel { sentinel_urls, .. } => sentinel_urls.iter().collect(),
        RedisTopology::Cluster { urls } => urls.iter().collect(),
    };
    // The password sits between the first ':' after "//" and the last '@' of the authority.
    urls.into_iter()
        .filter_map(|u| {
            let rest = u.split_once("//")?.1;
            let authority = rest.split(['/', '?', '#']).next()?;
            let userinfo = authority.rsplit_once('@')?.0;
            userinfo.split_once(':').map(|(_, p)| p)
        })
        .collect()
}

/// A held lock from [`RedisStore::try_lock`].
#[must_use = "a lock is held until released or expired"]
pub struct LockGuard {
    store: RedisStore,
    key: String,
    token: String,
    released: bool,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    /// Releases the lock if it is still ours (compare-and-delete). `Ok(false)` when it had
    /// expired already (and maybe been taken by someone else, which is left alone).
    pub async fn release(mut self) -> Result<bool, StoreError> {
        self.released = true;
        self.store.release_lock(&self.key, &self.token).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Dropped without release (e.g. the request was cancelled): release in the
        // background rather than make the other replicas wait for the TTL.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (store, key, token) = (
                self.store.clone(),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.token),
            );
            rt.spawn(async move {
                let _ = store.release_lock(&key, &token).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_round_trip_and_rejects_anything_else() {
        let t = Ticket::generate();
        let text = t.encode();
        assert_eq!(text.len(), 66);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(Ticket::decode(&text), Some(t.clone()));
        assert_eq!(Ticket::decode(""), None);
        assert_eq!(Ticket::decode(&text[1..]), None);
        assert_eq!(Ticket::decode(&format!("{text}A")), None);
        let mut other_version = URL_SAFE_NO_PAD.decode(&text).unwrap();
        other_version[0] = 2;
        assert_eq!(Ticket::decode(&URL_SAFE_NO_PAD.encode(other_version)), None);
        assert_ne!(Ticket::generate(), t);
        let debug = format!("{t:?}");
        assert!(debug.contains(&t.id_hex()) && !debug.contains(&hex(&t.key)));
    }

    #[test]
    fn sealed_values_open_only_with_their_ticket() {
        let t = Ticket::generate();
        let s = Session {
            principal: crate::identity::principal::Principal::new("alice"),
            refresh_token: Some(crate::identity::tokens::RefreshToken::new("rt-secret")),
            ..Session::default()
        };
        let v = seal_session(&t, &s);
        assert!(!v.windows(9).any(|w| w == b"rt-secret"));
        assert_eq!(open_session(&t, &v).unwrap(), s);
        let mut wrong_key = t.clone();
        wrong_key.key[0] ^= 1;
        assert!(matches!(
            open_session(&wrong_key, &v),
            Err(StoreError::Corrupt)
        ));
        let mut moved = t.clone();
        moved.id[0] ^= 1;
        assert!(
            matches!(open_session(&moved, &v), Err(StoreError::Corrupt)),
            "bound to the id"
        );
        let mut tampered = v.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(open_session(&t, &tampered).is_err());
        assert!(open_session(&t, b"").is_err());
    }

    #[test]
    fn urls_are_scrubbed() {
        assert_eq!(
            scrub_url("redis://user:s3cret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(scrub_url("redis://host:6379"), "redis://host:6379");
        assert_eq!(scrub_url("not a url s3cret"), "<invalid URL>");
        let mut s = RedisSettings::sentinel("m", ["redis://:pw1@a:26379", "redis://b:26379"]);
        s.password = Some("pw2".into());
        let debug = format!("{s:?}");
        assert!(!debug.contains("pw1") && !debug.contains("pw2"), "{debug}");
        assert_eq!(
            url_passwords(&RedisTopology::Standalone {
                url: "rediss://u:p@ss:w@h:1/0".into()
            }),
            ["p@ss:w"]
        );
    }

    #[test]
    fn hashed_names_are_domain_separated() {
        assert_ne!(hashed("sid", b"x"), hashed("sub", b"x"));
        assert_eq!(hashed("sid", b"x").len(), 32);
    }
}
