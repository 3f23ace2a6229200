//! The import graph of a crate's `src`, read from its text (shared by the `layering` tests of
//! the crates that keep their imports running one way).
//!
//! Every path a file names inside the crate (`crate::...`, `super::...`, a child module's
//! `name::...`, in `use` lines, in code and in doc links alike, tests in the file included) is
//! an arrow from that file to the file of the longest module the path names.
//!
//! ```
//! let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
//! let g = test_support::import_graph::graph(&src);
//! assert!(g.files.iter().any(|f| f.ends_with("lib.rs")));
//! // A crate that keeps its imports running one way asserts this is empty:
//! println!("{}", test_support::import_graph::circle_report(&g));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path (`["a", "b"]`) and the file that holds it.
type Modules = BTreeMap<Vec<String>, PathBuf>;

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` -> `["a", "b"]`; `src/lib.rs` -> `[]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    match last.as_str() {
        "lib.rs" | "mod.rs" => {}
        name => parts.push(name.trim_end_matches(".rs").to_owned()),
    }
    parts
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Reads a path at `text[i..]` (identifiers joined by `::`, with `{...}` groups) and pushes
/// every leaf path, each prefixed by `prefix`.
fn read_tree(text: &[u8], mut i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    loop {
        while i < text.len() && text[i] == b' ' {
            i += 1;
        }
        if i < text.len() && text[i] == b'{' {
            i += 1;
            loop {
                while i < text.len() && matches!(text[i], b' ' | b'\n' | b'\r' | b'\t' | b',') {
                    i += 1;
                }
                if i >= text.len() || text[i] == b'}' {
                    return i + 1;
                }
                i = read_tree(text, i, path.clone(), out);
            }
        }
        let start = i;
        while i < text.len() && is_ident_byte(text[i]) {
            i += 1;
        }
        if start == i {
            out.push(path);
            return i;
        }
        let ident = String::from_utf8_lossy(&text[start..i]).into_owned();
        if ident != "self" {
            path.push(ident);
        }
        if text[i..].starts_with(b"::") {
            i += 2;
        } else {
            out.push(path);
            return i;
        }
    }
}

/// The module paths a file names, each resolved from the crate root.
fn named_paths(text: &str, own: &[String], children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    // Inside an inline module (`mod tests {`), `super::` is the file's own module.
    let mut inline_from = usize::MAX;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if inline_from == usize::MAX
            && (t.starts_with("mod ")
                || t.starts_with("pub mod ")
                || t.starts_with("pub(crate) mod "))
            && t.trim_end().ends_with('{')
        {
            inline_from = offset;
        }
        offset += line.len();
    }
    let parent: Vec<String> = own[..own.len().saturating_sub(1)].to_vec();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !is_ident_byte(bytes[i - 1]) && bytes[i - 1] != b':';
        if !boundary || !is_ident_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ident_byte(bytes[i]) {
            i += 1;
        }
        let word = &text[start..i];
        if !bytes[i..].starts_with(b"::") {
            continue;
        }
        let base = match word {
            "crate" => Vec::new(),
            "super" if start >= inline_from => own.to_vec(),
            "super" => parent.clone(),
            "self" => own.to_vec(),
            child if children.contains(child) => {
                let mut p = own.to_vec();
                p.push(child.to_owned());
                i = read_tree(bytes, i + 2, p, &mut out);
                continue;
            }
            _ => continue,
        };
        i = read_tree(bytes, i + 2, base, &mut out);
    }
    out
}

/// The file of the longest module `path` names.
fn resolve<'m>(modules: &'m Modules, path: &[String]) -> Option<&'m PathBuf> {
    (0..=path.len()).rev().find_map(|n| modules.get(&path[..n]))
}

/// The files of a crate's `src` and the arrows between them.
pub struct Graph {
    /// The files, relative to `src`.
    pub files: Vec<PathBuf>,
    /// `arrows[a]`: the files `a` names, with one path that shows it.
    pub arrows: Vec<BTreeMap<usize, String>>,
}

/// The import graph of the crate whose `src` directory is `src`.
pub fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    source_files(src, &mut files);
    files.sort();
    let modules: Modules = files
        .iter()
        .map(|f| (module_of(src, f), f.clone()))
        .collect();
    let index: BTreeMap<&PathBuf, usize> = files.iter().enumerate().map(|(i, f)| (f, i)).collect();
    let mut arrows = vec![BTreeMap::new(); files.len()];
    for (a, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(file).expect("source is readable");
        let own = module_of(src, file);
        let children: BTreeSet<String> = modules
            .keys()
            .filter(|m| m.len() == own.len() + 1 && m.starts_with(&own))
            .map(|m| m[own.len()].clone())
            .collect();
        for path in named_paths(&text, &own, &children) {
            if let Some(target) = resolve(&modules, &path) {
                let b = index[target];
                if b != a {
                    arrows[a].entry(b).or_insert_with(|| path.join("::"));
                }
            }
        }
    }
    let files = files
        .into_iter()
        .map(|f| f.strip_prefix(src).expect("under src").to_path_buf())
        .collect();
    Graph { files, arrows }
}

/// Tarjan's strongly connected components with more than one file.
pub fn circles(g: &Graph) -> Vec<Vec<usize>> {
    struct State<'g> {
        g: &'g Graph,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        found: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        let targets: Vec<usize> = s.g.arrows[v].keys().copied().collect();
        for w in targets {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let n = g.files.len();
    let mut s = State {
        g,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.found
}

/// Each circle's arrows, one a line (`a.rs -> b.rs (the path that shows it)`); empty when the
/// imports run one way.
pub fn circle_report(g: &Graph) -> String {
    let mut report = String::new();
    for component in circles(g) {
        report.push_str("circle:\n");
        for &a in &component {
            for (&b, path) in &g.arrows[a] {
                if component.contains(&b) {
                    report.push_str(&format!(
                        "  {} -> {} ({path})\n",
                        g.files[a].display(),
                        g.files[b].display()
                    ));
                }
            }
        }
    }
    report
}

/// The index of `name` (a path under `src`, `a/b.rs`) among the graph's files.
pub fn file(g: &Graph, name: &str) -> usize {
    g.files
        .iter()
        .position(|f| f == Path::new(name))
        .unwrap_or_else(|| panic!("{name} exists"))
}

/// The reader finds each kind of path (a group, a `super::` path, a doc link, a child module's
/// path, a glob in an inline test module), so a clean report means something.
pub fn assert_paths_are_read() {
    let children = BTreeSet::from(["model".to_owned()]);
    let own = ["session".to_owned()];
    let text = "use crate::a::{b::C, d};\nuse super::e;\n/// [`X`](crate::f::X)\npub use model::Session;\nmod tests {\n    use super::*;\n}\n";
    let paths = named_paths(text, &own, &children);
    let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    // The inline module's `super::*` names the file's own module, `session`.
    for expected in [
        "a::b::C",
        "a::d",
        "e",
        "f::X",
        "session::model::Session",
        "session",
    ] {
        assert!(
            joined.iter().any(|j| j == expected),
            "{expected} in {joined:?}"
        );
    }
}
