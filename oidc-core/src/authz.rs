//! Authorization rules: placeholder, filled in by its own change.
