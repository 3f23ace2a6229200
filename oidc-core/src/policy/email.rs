//! The email rule: oauth2-proxy's `--email-domain` and `--authenticated-emails-file`.

use crate::identity::principal::Principal;

/// `true` when `who` passes the email rule: `*` among `domains` allows anyone; otherwise the
/// address must be `listed` (case-insensitive), or have exactly one `@` and a domain equal to
/// an entry of `domains` (a leading `.` allows its subdomains).
pub(crate) fn email_allowed(domains: &[String], listed: &[String], who: &Principal) -> bool {
    if domains.iter().any(|d| d == "*") {
        return true;
    }
    let Some(email) = who.email.as_deref() else {
        return false;
    };
    if !listed.is_empty() && listed.iter().any(|e| e.eq_ignore_ascii_case(email)) {
        return true;
    }
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if local.is_empty() || domain.is_empty() {
        return false;
    }
    domains.iter().any(|d| match d.strip_prefix('.') {
        Some(parent) => {
            domain.len() > parent.len() + 1
                && domain
                    .to_ascii_lowercase()
                    .ends_with(&format!(".{}", parent.to_ascii_lowercase()))
        }
        None => domain.eq_ignore_ascii_case(d),
    })
}
