//! Runs every row of `tests/data/open-redirects.tsv` (oauth2-proxy's redirect test
//! cases) through [`RedirectValidator`].
//!
//! Columns: `rd whitelist_domains expected source_file rd_decoded_escaped note`.
//!
//! * Rows whose note says the test "applies url.QueryUnescape" come from oauth2-proxy's
//!   `openredirects.txt`: the raw line is query-unescaped (`+` is a space, `%XX` a byte)
//!   before validation, as oauth2-proxy's test does.
//! * The other rows are Go string literals from `validator_test.go`. The `rd` column holds
//!   them percent-encoded so that tabs and newlines fit in a TSV; the value the Go test
//!   passes is the percent-decoded one (also shown, escaped, in `rd_decoded_escaped`).
//!   Both that decoded value and the raw `rd` column, used verbatim, must give the
//!   expected answer.
//!
//! `rd_decoded_escaped` is the decoded value escaped like Python's `unicode_escape`
//! (invalid UTF-8 replaced by U+FFFD); every decoded input is checked against it so a
//! decoding mistake in this test cannot hide.

use std::collections::HashMap;

use oidc_core::policy::redirect::RedirectValidator;

const TSV: &str = include_str!("data/open-redirects.tsv");
const EXPECTED_ROWS: usize = 617;

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; a malformed escape is an error.
fn query_unescape(s: &str) -> Result<String, String> {
    unescape(s, true)
}

/// Percent-decoding without the `+` rule (used for the TSV encoding of Go literals).
fn percent_unescape(s: &str) -> Result<String, String> {
    unescape(s, false)
}

fn unescape(s: &str, plus_is_space: bool) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = |j: usize| {
                    bytes
                        .get(j)
                        .and_then(|h| char::from(*h).to_digit(16))
                        .ok_or_else(|| format!("malformed escape at byte {i} in {s:?}"))
                };
                let value = hex(i + 1)? * 16 + hex(i + 2)?;
                out.push(u8::try_from(value).map_err(|e| e.to_string())?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Go keeps invalid UTF-8 bytes; a `&str` API cannot, so use U+FFFD like the TSV does.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Python's `str.encode("unicode_escape")`, as used for the `rd_decoded_escaped` column.
fn python_unicode_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            _ => {
                let code = u32::from(c);
                if code < 0x100 {
                    out.push_str(&format!("\\x{code:02x}"));
                } else if code < 0x1_0000 {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
        }
    }
    out
}

#[test]
fn every_open_redirect_row() {
    let mut lines = TSV.lines();
    let header = lines.next().unwrap_or_default();
    assert_eq!(
        header, "rd\twhitelist_domains\texpected\tsource_file\trd_decoded_escaped\tnote",
        "unexpected TSV header"
    );

    let mut validators: HashMap<&str, RedirectValidator> = HashMap::new();
    let mut failures = Vec::new();
    let mut rows = 0;
    let mut passing = 0;

    for (index, line) in lines.enumerate() {
        let line_no = index + 2;
        if line.is_empty() {
            continue;
        }
        rows += 1;
        let fields: Vec<&str> = line.split('\t').collect();
        let [rd, whitelist, expected, _source, decoded_escaped, note] = fields[..] else {
            failures.push(format!(
                "line {line_no}: expected 6 fields, got {}",
                fields.len()
            ));
            continue;
        };
        let expected = match expected {
            "accept" => true,
            "reject" => false,
            other => {
                failures.push(format!("line {line_no}: bad expected value {other:?}"));
                continue;
            }
        };

        let validator = match validators.get(whitelist) {
            Some(v) => v,
            None => match RedirectValidator::new(whitelist.split(',')) {
                Ok(v) => validators.entry(whitelist).or_insert(v),
                Err(e) => {
                    failures.push(format!("line {line_no}: whitelist {whitelist:?}: {e}"));
                    continue;
                }
            },
        };

        // The inputs to check, each with a label.
        let query_unescaped = note.contains("url.QueryUnescape");
        let decoded = if query_unescaped {
            query_unescape(rd)
        } else {
            percent_unescape(rd)
        };
        let decoded = match decoded {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("line {line_no}: rd={rd:?}: cannot decode: {e}"));
                continue;
            }
        };
        let escaped = python_unicode_escape(&decoded);
        if escaped != decoded_escaped {
            failures.push(format!(
                "line {line_no}: rd={rd:?}: decoded to {escaped:?}, TSV says {decoded_escaped:?}"
            ));
            continue;
        }
        let mut inputs = vec![("decoded", decoded.as_str())];
        if !query_unescaped && rd != decoded {
            inputs.push(("verbatim", rd));
        }

        let mut row_ok = true;
        for (label, input) in inputs {
            let got = validator.is_valid(input);
            if got != expected {
                row_ok = false;
                failures.push(format!(
                    "line {line_no}: rd={rd:?} ({label} input {input:?}): expected {}, got {}",
                    if expected { "accept" } else { "reject" },
                    if got { "accept" } else { "reject" },
                ));
            }
        }
        if row_ok {
            passing += 1;
        }
    }

    println!("{passing}/{rows} rows passing");
    assert_eq!(rows, EXPECTED_ROWS, "row count changed");
    assert!(
        failures.is_empty(),
        "{} problem(s), {passing}/{rows} rows passing:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
