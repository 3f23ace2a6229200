//! Bearer-token (JWT access token) validation: placeholder, filled in by its own change.
