//! `--config FILE`: oauth2-proxy's TOML configuration file (the `oauth2_proxy.cfg` its Helm
//! chart mounts), read as `key = value` entries and turned into flags' values.
//!
//! Only the file's form is checked here; which flag a key sets is the caller's business
//! ([`crate::load`]), and the values are checked by the flags' own parsers. Nothing here repeats a
//! value or a line of the file in an error: the file holds secrets.

use std::collections::BTreeMap;
use std::path::Path;

use toml::{Spanned, Value};

use crate::error::LoadError;

/// One `key = value` of the file.
#[derive(Debug)]
pub struct Entry {
    /// The key (`email_domains`).
    pub key: String,
    /// Its line (from 1).
    pub line: usize,
    /// The value, as written.
    value: Value,
}

impl Entry {
    /// The value as flag values: one for a string, number or boolean; one per element of
    /// an array, which only a repeatable flag (`list`) takes. The error says what to write.
    pub fn flag_values(&self, list: bool) -> Result<Vec<String>, String> {
        match &self.value {
            Value::Array(items) if list => items.iter().map(scalar).collect(),
            Value::Array(_) => Err("takes one value, not a list: write key = \"value\"".into()),
            other => Ok(vec![scalar(other)?]),
        }
    }
}

/// A string, number or boolean as a flag value.
fn scalar(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) if s.contains("${") => Err(
            "${...} is not expanded here (oauth2-proxy expands environment references, this \
             adapter does not): set the flag's OAUTH2_PROXY_ variable instead"
                .into(),
        ),
        Value::String(s) => Ok(s.clone()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::Boolean(b) => Ok(b.to_string()),
        Value::Datetime(_) => Err("a date is not a value here: quote it".into()),
        Value::Array(_) => Err("a list inside a list is not a value here".into()),
        Value::Table(_) => Err(
            "a table is not a value here (oauth2-proxy's config file is flat: key = value)".into(),
        ),
    }
}

/// Reads the file at `path`: its entries in file order.
///
/// # Errors
///
/// [`LoadError::Unreadable`] when it cannot be read, [`LoadError::ConfigFile`] with the line
/// when it is not TOML.
pub fn read(path: &Path) -> Result<Vec<Entry>, LoadError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Unreadable {
        path: shown.clone(),
        source,
    })?;
    parse(&shown, &text)
}

/// Parses `text` (from the file `path`, for errors).
///
/// # Errors
///
/// [`LoadError::ConfigFile`] naming the line and what the parser expected.
pub fn parse(path: &str, text: &str) -> Result<Vec<Entry>, LoadError> {
    let table: BTreeMap<Spanned<String>, Spanned<Value>> =
        toml::from_str(text).map_err(|e| LoadError::ConfigFile {
            path: path.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)),
            // Only the parser's words: its `Display` quotes the line, which may hold a secret.
            message: format!(
                "not valid TOML: {} (write key = \"text\", key = true, key = 3 or \
                 key = [ \"a\", \"b\" ], one per line)",
                e.message().trim().replace('\n', "; ")
            ),
        })?;
    let mut entries: Vec<Entry> = table
        .into_iter()
        .map(|(key, value)| Entry {
            line: line_of(text, key.span().start),
            key: key.into_inner(),
            value: value.into_inner(),
        })
        .collect();
    entries.sort_by_key(|e| e.line);
    Ok(entries)
}

/// The line (from 1) of the byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_have_lines_and_values() {
        let text = "# chart\nemail_domains = [ \"*\" ]\n\ncookie_secure = false\ncookie_expire = \"4h\"\nredis_connection_idle_timeout = 30\n";
        let e = parse("f.cfg", text).unwrap();
        let got: Vec<(&str, usize, Vec<String>)> = e
            .iter()
            .map(|e| (e.key.as_str(), e.line, e.flag_values(true).unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("email_domains", 2, vec!["*".to_owned()]),
                ("cookie_secure", 4, vec!["false".to_owned()]),
                ("cookie_expire", 5, vec!["4h".to_owned()]),
                ("redis_connection_idle_timeout", 6, vec!["30".to_owned()]),
            ]
        );
        assert!(e[0].flag_values(false).unwrap_err().contains("one value"));
    }

    /// The error names the file and line and what to write, but never quotes the line.
    #[test]
    fn malformed_toml_names_the_line_not_the_text() {
        let text = "email_domains = [ \"*\" ]\nclient_secret = \"s3cr3t\nupstreams = []\n";
        let err = parse("/etc/oauth2_proxy/oauth2_proxy.cfg", text).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.starts_with("--config: /etc/oauth2_proxy/oauth2_proxy.cfg:2: not valid TOML: "),
            "{shown}"
        );
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let err = parse("f.cfg", "cookie_secure false\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--config: f.cfg:1: not valid TOML"),
            "{err}"
        );
    }

    #[test]
    fn env_references_are_refused_not_used_literally() {
        let e = parse("f.cfg", "client_secret = \"${CLIENT_SECRET}\"\n").unwrap();
        assert!(
            e[0].flag_values(false)
                .unwrap_err()
                .contains("OAUTH2_PROXY_")
        );
    }
}
