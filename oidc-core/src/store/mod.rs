//! Where server-side state lives: sessions by ticket, revocations, replayed logout tokens
//! and the cross-replica refresh lock, in this process or in Redis.

pub(crate) mod backend;
#[cfg(feature = "redis")]
pub mod redis;
pub(crate) mod revocations;
