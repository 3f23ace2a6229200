//! Chromium: placeholder, filled in by its own change.

use super::{Component, Env};

/// Chromium.
pub struct Chromium;

impl Component for Chromium {
    fn ensure_installed(&self) -> Result<Env, String> {
        Ok(Env::new())
    }
}
