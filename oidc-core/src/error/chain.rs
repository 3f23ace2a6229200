//! Reading an error's whole `source()` chain.

use std::error::Error as StdError;

/// Walks an error's sources for a rustls certificate error (also inside an
/// `io::Error`, whose `source()` skips the error it wraps).
pub(crate) fn is_certificate_error(err: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        // hyper-util wraps the connector's io::Error in another io::Error.
        let mut inner = e;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            inner = wrapped;
        }
        let tls = inner.downcast_ref::<rustls::Error>();
        // rustls's own wording is the fallback, should the wrapping change.
        if matches!(
            tls,
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
        ) || e.to_string().starts_with("invalid peer certificate")
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Walks an error's `source()` chain into one line, for logs.
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}
