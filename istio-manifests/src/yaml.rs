//! A small YAML document tree that remembers where each node is (line and column), built on
//! `saphyr-parser`'s events, for the linter (`istio --check`) to report `FILE:LINE`.
//!
//! Multi-document files are split on `---` lines first, so that one document that does not
//! parse does not hide the others. A document that does not parse is retried with a few
//! mechanical repairs (a `- ` entry indented less than the key it belongs to, tabs used as
//! indentation), so the rest of it can still be checked; the parse error is reported either way.

use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A YAML node with its position in the file (1-based line, 0-based column).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub value: Value,
    /// 1-based line in the file.
    pub line: usize,
    /// 0-based column (in characters).
    pub col: usize,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar, as written (no type resolution: `80`, `true` and `"80"` are all text).
    Scalar {
        /// The scalar's text.
        text: String,
        /// Written without quotes (so `~`, `null` and the empty string mean null).
        plain: bool,
    },
    /// A block or flow sequence.
    Seq(Vec<Node>),
    /// A block or flow mapping, in source order (duplicate keys kept).
    Map(Vec<(Node, Node)>),
}

impl Node {
    fn new(value: Value, line: usize, col: usize) -> Node {
        Node { value, line, col }
    }

    /// The scalar's text, if this is a scalar (null scalars included, as `""`/`null`/`~`).
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether this is a null (`~`, `null`, empty plain scalar).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The scalar as an unsigned integer (`80`, `"80"`).
    pub fn as_u64(&self) -> Option<u64> {
        self.as_str()?.trim().parse().ok()
    }

    /// The scalar as a boolean (`true`/`false` in YAML 1.2's core schema).
    pub fn as_bool(&self) -> Option<bool> {
        match self.as_str()? {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        }
    }

    /// The items of a sequence (empty for anything else).
    pub fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    /// The entries of a mapping (empty for anything else).
    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// Whether this is a mapping.
    pub fn is_map(&self) -> bool {
        matches!(self.value, Value::Map(_))
    }

    /// Whether this is a sequence.
    pub fn is_seq(&self) -> bool {
        matches!(self.value, Value::Seq(_))
    }

    /// The value of key `key` in a mapping (exact spelling; the first if repeated).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value of key `key` (exact spelling).
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        self.entries()
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, v)| (k, v))
    }

    /// The key node and value of `key`, whatever its capitalisation (`Spec` for `spec`): the
    /// linter reports the spelling and checks the rest as if it were right.
    pub fn entry_ci(&self, key: &str) -> Option<(&Node, &Node)> {
        self.entry(key).or_else(|| {
            self.entries()
                .iter()
                .find(|(k, _)| k.as_str().is_some_and(|s| s.eq_ignore_ascii_case(key)))
                .map(|(k, v)| (k, v))
        })
    }

    /// The value of `key`, whatever its capitalisation.
    pub fn get_ci(&self, key: &str) -> Option<&Node> {
        self.entry_ci(key).map(|(_, v)| v)
    }

    /// Follows a path of keys (case-insensitively, see [`Node::entry_ci`]).
    pub fn path(&self, keys: &[&str]) -> Option<&Node> {
        keys.iter().try_fold(self, |node, key| node.get_ci(key))
    }

    /// The scalar at `keys`.
    pub fn str_at(&self, keys: &[&str]) -> Option<&str> {
        self.path(keys).and_then(Node::as_str)
    }

    /// The scalars of a sequence (a lone scalar counts as a one-item list).
    pub fn strings(&self) -> Vec<(&str, usize)> {
        match &self.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|n| n.as_str().map(|s| (s, n.line)))
                .collect(),
            Value::Scalar { text, .. } if !self.is_null() => vec![(text.as_str(), self.line)],
            _ => Vec::new(),
        }
    }
}

/// How the lines of a parsed text map to the lines of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// Line `n` of the text is line `n + offset` of the file.
    Offset(usize),
    /// Every line of the text is this line of the file (text that came from a quoted or
    /// folded scalar, whose lines do not survive).
    Fixed(usize),
}

impl Lines {
    fn map(self, line: usize) -> usize {
        match self {
            Lines::Offset(offset) => line + offset,
            Lines::Fixed(line) => line,
        }
    }
}

/// One document of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The root node (`None` for an empty document: only comments or nothing).
    pub root: Option<Node>,
    /// The file line where the document's text starts.
    pub first_line: usize,
    /// Set when the document did not parse as written.
    pub error: Option<ParseError>,
}

/// Why a document does not parse, and the repair (if one was found) that the rest of the
/// checks assumed.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// File line of the error.
    pub line: usize,
    /// The parser's message.
    pub message: String,
    /// The repairs that made the document parse, in order; empty if none did (then
    /// [`Document::root`] is `None`).
    pub repairs: Vec<Repair>,
}

/// A mechanical repair of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// File line repaired.
    pub line: usize,
    /// What was changed, for the fix text.
    pub description: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Splits `text` into documents and parses each; `lines` maps the text's lines to the file's.
pub fn parse_documents(text: &str, lines: Lines) -> Vec<Document> {
    split_documents(text)
        .into_iter()
        .filter_map(|(start, chunk)| {
            let chunk_lines = match lines {
                Lines::Offset(offset) => Lines::Offset(offset + start - 1),
                fixed @ Lines::Fixed(_) => fixed,
            };
            parse_chunk(&chunk, chunk_lines, lines.map(start))
        })
        .collect()
}

/// Parses text holding a single document (an embedded mesh config).
pub fn parse_one(text: &str, lines: Lines) -> Option<Document> {
    parse_chunk(text, lines, lines.map(1))
}

/// `(first line, text)` of each document: split on `---` lines (a directive end marker at
/// column 0 ends a block scalar too, so this is what a YAML parser does as well).
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker = bare == "---"
            || (bare.starts_with("---") && bare[3..].starts_with([' ', '\t']))
            || bare == "...";
        if is_marker {
            chunks.push((start, std::mem::take(&mut current)));
            start = i + 2;
            // Keep the line count right: the marker line becomes an empty line of the next chunk
            // only if something follows it on the line (`--- !tag`, `--- # comment`).
            let rest = bare.get(3..).unwrap_or("").trim();
            if !rest.is_empty() && !rest.starts_with('#') {
                start = i + 1;
                current.push_str(&line[3..]);
            }
            continue;
        }
        current.push_str(line);
    }
    chunks.push((start, current));
    chunks
}

fn parse_chunk(chunk: &str, lines: Lines, first_line: usize) -> Option<Document> {
    let blank = chunk
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if blank {
        return None;
    }
    match build(chunk, lines) {
        Ok(root) => Some(Document {
            root,
            first_line,
            error: None,
        }),
        Err((line, message)) => {
            let mut error = ParseError {
                line: lines.map(line),
                message,
                repairs: Vec::new(),
            };
            let mut text = chunk.to_owned();
            let mut at = line;
            // A few repairs at most: each must move the error further down.
            for _ in 0..4 {
                let Some((repaired, description)) = repair(&text, at) else {
                    break;
                };
                error.repairs.push(Repair {
                    line: lines.map(at),
                    description,
                });
                match build(&repaired, lines) {
                    Ok(root) => {
                        return Some(Document {
                            root,
                            first_line,
                            error: Some(error),
                        });
                    }
                    Err((next, _)) if next > at => {
                        text = repaired;
                        at = next;
                    }
                    Err(_) => break,
                }
            }
            error.repairs.clear();
            Some(Document {
                root: None,
                first_line,
                error: Some(error),
            })
        }
    }
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// One mechanical repair of the (1-based) line `at` of `text`: tabs in the indentation become
/// two spaces each; a `- ` entry indented less than the `key:` just above it moves under that
/// key.
fn repair(text: &str, at: usize) -> Option<(String, String)> {
    let lines: Vec<&str> = text.split('\n').collect();
    let target = lines.get(at.checked_sub(1)?)?;
    let leading: String = target
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect();
    let fixed = if leading.contains('\t') {
        let spaces = leading.replace('\t', "  ");
        let new = format!("{spaces}{}", &target[leading.len()..]);
        Some((
            new,
            "replace the tabs in its indentation with spaces".to_owned(),
        ))
    } else {
        let body = target.trim_start();
        let is_entry = body == "-" || body.starts_with("- ");
        let previous = lines[..at - 1]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?;
        let key_without_value = previous
            .split(" #")
            .next()
            .unwrap_or("")
            .trim_end()
            .ends_with(':');
        let (mine, theirs) = (indent_of(target), indent_of(previous));
        (is_entry && key_without_value && mine < theirs).then(|| {
            let key = previous.trim().trim_end_matches(':');
            (
                format!("{}{body}", " ".repeat(theirs)),
                format!(
                    "indent `{}` by {} spaces, to column {}, under `{key}:`",
                    body.chars().take(40).collect::<String>(),
                    theirs - mine,
                    theirs + 1
                ),
            )
        })
    }?;
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    out[at - 1] = fixed.0;
    Some((out.join("\n"), fixed.1))
}

enum Frame {
    Seq(Vec<Node>, usize, usize, usize),
    Map(Vec<(Node, Node)>, Option<Node>, usize, usize, usize),
}

/// Builds the tree of the first document in `text`; `Err((chunk line, message))` if it does not
/// parse.
fn build(text: &str, lines: Lines) -> Result<Option<Node>, (usize, String)> {
    let mut anchors: Vec<(usize, Node)> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| (e.marker().line(), e.info().to_owned()))?;
        let (line, col) = (lines.map(span.start.line()), span.start.col());
        let done = match event {
            Event::Scalar(text, style, anchor, _) => {
                let line = scalar_line(&text, style, span, lines);
                let node = Node::new(
                    Value::Scalar {
                        plain: style == ScalarStyle::Plain,
                        text: text.into_owned(),
                    },
                    line,
                    col,
                );
                Some((node, anchor))
            }
            Event::Alias(id) => {
                let node = anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map(|(_, n)| Node {
                        line,
                        col,
                        ..n.clone()
                    })
                    .unwrap_or_else(|| {
                        Node::new(
                            Value::Scalar {
                                text: String::new(),
                                plain: true,
                            },
                            line,
                            col,
                        )
                    });
                Some((node, 0))
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq(Vec::new(), line, col, anchor));
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map(Vec::new(), None, line, col, anchor));
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(items, line, col, anchor)) => {
                    Some((Node::new(Value::Seq(items), line, col), anchor))
                }
                Some(Frame::Map(entries, _, line, col, anchor)) => {
                    Some((Node::new(Value::Map(entries), line, col), anchor))
                }
                None => None,
            },
            Event::DocumentEnd => break,
            _ => None,
        };
        let Some((node, anchor)) = done else { continue };
        if anchor > 0 {
            anchors.push((anchor, node.clone()));
        }
        match stack.last_mut() {
            Some(Frame::Seq(items, ..)) => items.push(node),
            Some(Frame::Map(entries, pending, ..)) => match pending.take() {
                Some(key) => entries.push((key, node)),
                None => *pending = Some(node),
            },
            None => root = Some(node),
        }
    }
    Ok(root)
}

/// The file line where a scalar's content starts. A block scalar's span starts at its first
/// non-empty content line; its leading empty lines are in the text.
fn scalar_line(text: &str, style: ScalarStyle, span: Span, lines: Lines) -> usize {
    let line = span.start.line();
    let line = if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
        line - text
            .chars()
            .take_while(|c| *c == '\n')
            .count()
            .min(line - 1)
    } else {
        line
    };
    lines.map(line)
}

/// The file line of a block scalar's first content line, for parsing text embedded in it
/// (`data.mesh: |`): only literal scalars keep their lines.
pub fn embedded_lines(node: &Node, literal: bool) -> Lines {
    if literal {
        Lines::Offset(node.line - 1)
    } else {
        Lines::Fixed(node.line)
    }
}

/// Whether the scalar at file line `line` of `source` is a literal block scalar (`|`), so that
/// its lines are the file's lines.
pub fn is_literal_block(source: &str, key_line: usize) -> bool {
    source
        .lines()
        .nth(key_line.saturating_sub(1))
        .and_then(|l| l.split(" #").next())
        .is_some_and(|l| {
            let l = l.trim_end();
            l.ends_with('|') || l.ends_with("|-") || l.ends_with("|+")
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn docs(text: &str) -> Vec<Document> {
        parse_documents(text, Lines::Offset(0))
    }

    #[test]
    fn nodes_know_their_lines() {
        let d = docs("a: 1\nb:\n  c: [x, y]\n  d:\n  - e: f\n");
        assert_eq!(d.len(), 1);
        let root = d[0].root.as_ref().unwrap();
        assert_eq!(root.get("a").unwrap().line, 1);
        let b = root.get("b").unwrap();
        assert_eq!(b.get("c").unwrap().items()[1].as_str(), Some("y"));
        assert_eq!(b.get("c").unwrap().items()[1].line, 3);
        assert_eq!(b.path(&["d"]).unwrap().items()[0].get("e").unwrap().line, 5);
        assert_eq!(b.entry("d").unwrap().0.line, 4);
    }

    #[test]
    fn documents_split_on_markers_with_file_lines() {
        let d = docs("---\na: 1\n---\n# only a comment\n---\nb: 2\n...\n");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].root.as_ref().unwrap().get("a").unwrap().line, 2);
        assert_eq!(d[1].root.as_ref().unwrap().get("b").unwrap().line, 6);
        assert_eq!(d[1].first_line, 6);
    }

    #[test]
    fn case_insensitive_lookup_finds_misspelt_keys() {
        let d = docs("Spec:\n  x: 1\n");
        let root = d[0].root.as_ref().unwrap();
        assert!(root.get("spec").is_none());
        let (key, value) = root.entry_ci("spec").unwrap();
        assert_eq!(key.as_str(), Some("Spec"));
        assert_eq!(value.get("x").unwrap().as_u64(), Some(1));
    }

    #[test]
    fn a_bad_document_is_reported_and_repaired_and_others_still_parse() {
        let text = "a: 1\n---\nspec:\n  http:\n- match: x\n    route: y\n---\nb: 2\n";
        let d = docs(text);
        assert_eq!(d.len(), 3);
        let error = d[1].error.as_ref().unwrap();
        assert_eq!(error.line, 5);
        assert_eq!(error.repairs.len(), 1);
        assert!(
            error.repairs[0].description.contains("by 2 spaces"),
            "{error:?}"
        );
        let root = d[1].root.as_ref().unwrap();
        let http = root.path(&["spec", "http"]).unwrap();
        assert_eq!(http.items()[0].get("route").unwrap().as_str(), Some("y"));
        assert_eq!(http.items()[0].get("route").unwrap().line, 6);
        assert!(d[2].error.is_none());
    }

    #[test]
    fn tabs_are_repaired() {
        let d = docs("a:\n\tb: 1\n");
        let error = d[0].error.as_ref().unwrap();
        assert_eq!(error.line, 2);
        assert_eq!(
            d[0].root
                .as_ref()
                .unwrap()
                .path(&["a", "b"])
                .unwrap()
                .as_u64(),
            Some(1)
        );
    }

    #[test]
    fn unrepairable_documents_have_no_root() {
        let d = docs("a: [1, 2\nb: 3\n");
        assert!(d[0].root.is_none());
        assert!(d[0].error.as_ref().unwrap().repairs.is_empty());
    }

    #[test]
    fn literal_blocks_map_back_to_file_lines() {
        let text = "data:\n  mesh: |-\n\n    a: 1\n    b:\n      c: 2\n";
        let d = docs(text);
        let mesh = d[0].root.as_ref().unwrap().path(&["data", "mesh"]).unwrap();
        assert_eq!(mesh.line, 3);
        assert!(is_literal_block(text, 2));
        let inner = parse_one(mesh.as_str().unwrap(), embedded_lines(mesh, true)).unwrap();
        let root = inner.root.unwrap();
        assert_eq!(root.get("a").unwrap().line, 4);
        assert_eq!(root.path(&["b", "c"]).unwrap().line, 6);
        let fixed = parse_one("a: 1\nb: 2\n", Lines::Fixed(9)).unwrap();
        assert_eq!(fixed.root.unwrap().get("b").unwrap().line, 9);
    }

    #[test]
    fn anchors_and_aliases_resolve() {
        let d = docs("a: &x [1, 2]\nb: *x\n");
        let root = d[0].root.as_ref().unwrap();
        assert_eq!(root.get("b").unwrap().items().len(), 2);
        assert_eq!(root.get("b").unwrap().line, 2);
    }

    #[test]
    fn nulls_and_scalars() {
        let d = docs("a:\nb: ~\nc: \"\"\nd: 80\ne: true\n");
        let root = d[0].root.as_ref().unwrap();
        assert!(root.get("a").unwrap().is_null());
        assert!(root.get("b").unwrap().is_null());
        assert!(!root.get("c").unwrap().is_null());
        assert_eq!(root.get("d").unwrap().as_u64(), Some(80));
        assert_eq!(root.get("e").unwrap().as_bool(), Some(true));
    }
}
