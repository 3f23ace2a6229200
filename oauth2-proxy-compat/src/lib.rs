//! `oauth2-proxy-compat`: oauth2-proxy v7's ways of being configured, for a [`clap`] command
//! that implements some of its flags.
//!
//! - [`flags`]: the table of every oauth2-proxy flag (name, config-file key, variable, what the
//!   program does with it), the hidden arguments that accept the flags it does not implement,
//!   the review that warns about or refuses them, and `docs/oauth2-proxy-flags.md`
//!   ([`flags::markdown`]).
//! - [`config_file`]: oauth2-proxy's TOML `--config` file.
//! - [`load()`]: command line, then `OAUTH2_PROXY_*` variables, then the file, as oauth2-proxy
//!   reads them.
//!
//! ```
//! use clap::{Arg, Command};
//!
//! let cmd = Command::new("ext-authz-adapter")
//!     .arg(Arg::new("client_id").long("client-id").env("OAUTH2_PROXY_CLIENT_ID"));
//! let loaded = oauth2_proxy_compat::load(
//!     cmd,
//!     ["ext-authz-adapter", "--client-id=nginx", "--request-logging=false"],
//! )?;
//! assert_eq!(loaded.matches.get_one::<String>("client_id").unwrap(), "nginx");
//! // Not implemented, harmless: accepted with one warning that says why.
//! assert!(loaded.warnings[0].starts_with("--request-logging: ignored: "));
//! # Ok::<(), oauth2_proxy_compat::LoadError>(())
//! ```

pub mod config_file;
mod error;
pub mod flags;
mod load;

pub use error::LoadError;
pub use load::{Loaded, load};
