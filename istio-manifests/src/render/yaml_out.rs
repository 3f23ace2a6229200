//! The YAML writer of the renderer: a value ([`Y`]) built in code and printed with the layout
//! and quoting Istio's docs use (plain scalars when unambiguous, header lists as flow
//! sequences, the mesh config as a literal block).

use std::fmt::Write as _;

/// A YAML value to print.
pub(super) enum Y {
    Str(String),
    Int(u64),
    Bool(bool),
    Map(Vec<(String, Y)>),
    Seq(Vec<Y>),
    /// A flow sequence of quoted strings (`["a", "b"]`), as Istio's docs write header lists.
    Flow(Vec<String>),
    /// A literal block scalar (`|-`).
    Literal(String),
}

pub(super) fn s(v: impl Into<String>) -> Y {
    Y::Str(v.into())
}

pub(super) fn map(entries: Vec<(&str, Y)>) -> Y {
    Y::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

pub(super) fn labels(pairs: &[(String, String)]) -> Y {
    Y::Map(pairs.iter().map(|(k, v)| (k.clone(), s(v))).collect())
}

pub(super) fn flow(items: &[&str]) -> Y {
    Y::Flow(items.iter().map(|s| (*s).to_owned()).collect())
}

/// A string as a YAML scalar: plain when that is unambiguous, double-quoted otherwise.
fn scalar(v: &str) -> String {
    let plain = !v.is_empty()
        && v.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '/')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/".contains(c))
        && !matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        )
        && v.parse::<f64>().is_err();
    if plain { v.to_owned() } else { quote(v) }
}

fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

fn emit(y: &Y, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match y {
        Y::Map(entries) => {
            for (k, v) in entries {
                let _ = write!(out, "{pad}{}:", scalar(k));
                match v {
                    Y::Map(e) if !e.is_empty() => {
                        out.push('\n');
                        emit(v, indent + 2, out);
                    }
                    Y::Seq(items) if !items.is_empty() => {
                        out.push('\n');
                        emit(v, indent, out);
                    }
                    Y::Literal(text) => {
                        out.push_str(" |-\n");
                        for line in text.trim_end_matches('\n').lines() {
                            if line.is_empty() {
                                out.push('\n');
                            } else {
                                let _ = writeln!(out, "{pad}  {line}");
                            }
                        }
                    }
                    other => {
                        out.push(' ');
                        out.push_str(&inline(other));
                        out.push('\n');
                    }
                }
            }
        }
        Y::Seq(items) => {
            for item in items {
                match item {
                    Y::Map(e) if !e.is_empty() => {
                        let mut inner = String::new();
                        emit(item, indent + 2, &mut inner);
                        let _ = write!(out, "{pad}- {}", &inner[indent + 2..]);
                    }
                    other => {
                        let _ = writeln!(out, "{pad}- {}", inline(other));
                    }
                }
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", inline(other));
        }
    }
}

fn inline(y: &Y) -> String {
    match y {
        Y::Str(v) => scalar(v),
        Y::Int(n) => n.to_string(),
        Y::Bool(b) => b.to_string(),
        Y::Flow(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| quote(i))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Y::Map(_) => "{}".to_owned(),
        Y::Seq(_) => "[]".to_owned(),
        Y::Literal(text) => quote(text),
    }
}

pub(super) fn to_yaml(y: &Y) -> String {
    let mut out = String::new();
    emit(y, 0, &mut out);
    out
}

pub(super) fn metadata(name: &str, namespace: &str) -> Y {
    map(vec![("name", s(name)), ("namespace", s(namespace))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_quoted_when_needed() {
        assert_eq!(scalar("nginx.example.com"), "nginx.example.com");
        assert_eq!(scalar("/oauth2/"), "/oauth2/");
        assert_eq!(scalar("*.example.com"), "\"*.example.com\"");
        assert_eq!(scalar("80"), "\"80\"");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("a: b"), "\"a: b\"");
        assert_eq!(scalar(""), "\"\"");
        assert_eq!(scalar("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn seq_of_maps_layout() {
        let y = map(vec![(
            "a",
            Y::Seq(vec![map(vec![
                ("b", s("c")),
                ("d", map(vec![("e", Y::Int(1))])),
            ])]),
        )]);
        assert_eq!(to_yaml(&y), "a:\n- b: c\n  d:\n    e: 1\n");
    }
}
