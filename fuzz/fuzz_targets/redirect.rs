//! The `rd` redirect validator (`RedirectValidator::is_valid`), with the whitelist
//! `.example.com` and `app.example.org:8443`.
//!
//! Invariants: `validate` agrees with `is_valid`; an accepted target has no backslash or
//! control character; resolved against `https://app.example.com/` (as a browser does), a
//! relative target stays on that origin and an absolute one lands on a whitelisted host.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use oidc_core::RedirectValidator;
use url::Url;

static VALIDATOR: LazyLock<RedirectValidator> = LazyLock::new(|| {
    RedirectValidator::new([".example.com", "app.example.org:8443"]).expect("whitelist")
});
static BASE: LazyLock<Url> =
    LazyLock::new(|| Url::parse("https://app.example.com/").expect("base URL"));

fuzz_target!(|data: &[u8]| {
    let Ok(rd) = std::str::from_utf8(data) else {
        return;
    };
    let ok = VALIDATOR.is_valid(rd);
    assert_eq!(VALIDATOR.validate(rd).is_some(), ok);
    if !ok {
        return;
    }
    assert!(!rd.contains('\\'), "accepted a backslash: {rd:?}");
    assert!(
        !rd.chars().any(char::is_control),
        "accepted a control character: {rd:?}"
    );
    let target = BASE.join(rd).expect("an accepted target resolves");
    let host = target.host_str().unwrap_or_default();
    if rd.starts_with('/') {
        assert_eq!(
            target.origin(),
            BASE.origin(),
            "relative {rd:?} left the site: {target}"
        );
    } else {
        assert!(
            host == "example.com"
                || host.ends_with(".example.com")
                || (host == "app.example.org" && target.port() == Some(8443)),
            "absolute {rd:?} lands on {target}"
        );
        assert!(matches!(target.scheme(), "http" | "https"));
    }
});
