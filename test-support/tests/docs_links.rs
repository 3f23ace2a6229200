//! The documentation holds on a fresh clone: every link of every Markdown file in the repository
//! points at a file (or directory) inside the repository that exists, and every `#anchor` at a
//! heading of its target. A link that climbs out of the repository is refused: users' clones
//! have nothing there.
//!
//! Web links (`http://`, `https://`, `mailto:`) are left alone: they leave on purpose.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support sits in the repository root")
        .to_path_buf()
}

/// Directories that hold no documentation of ours.
const SKIPPED_DIRS: &[&str] = &["target", ".git", "node_modules"];

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type().unwrap().is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_ref()) && !name.starts_with("target") {
                markdown_files(&path, out);
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// The targets of the inline links `[text](target)` and `![alt](target)` of `text`, with their
/// line numbers, code blocks and code spans left out.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Code spans: drop the text between pairs of backticks.
        let mut plain = String::with_capacity(line.len());
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].trim();
            // `[text](target "title")`
            let target = target.split_whitespace().next().unwrap_or_default();
            out.push((n + 1, target.trim_matches(['<', '>']).to_owned()));
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, punctuation other than `-` and `_` dropped, spaces
/// as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            let heading = line.trim_start_matches('#').replace('`', "");
            let base = slug(&heading);
            // Repeated headings get -1, -2, ...
            let mut candidate = base.clone();
            let mut n = 0;
            while !out.insert(candidate.clone()) {
                n += 1;
                candidate = format!("{base}-{n}");
            }
        }
    }
    out
}

/// `path` with `.` and `..` resolved lexically (the target may not exist).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// What is wrong with the link `target` of `file`, if anything.
fn problem(root: &Path, file: &Path, target: &str) -> Option<String> {
    if target.is_empty() {
        return Some("an empty link".to_owned());
    }
    if ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| target.starts_with(scheme))
    {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let resolved = if path.is_empty() {
        file.to_path_buf()
    } else if path.starts_with('/') {
        return Some(format!(
            "{target}: an absolute path; link relative to the file"
        ));
    } else {
        normalise(&file.parent().unwrap().join(path))
    };
    if !resolved.starts_with(root) {
        return Some(format!(
            "{target}: leaves the repository (a user's clone has nothing there)"
        ));
    }
    if !resolved.exists() {
        return Some(format!("{target}: no such file in the repository"));
    }
    if let Some(anchor) = anchor.filter(|a| !a.is_empty())
        && resolved.extension().is_some_and(|e| e == "md")
    {
        let text = std::fs::read_to_string(&resolved).unwrap();
        if !anchors(&text).contains(anchor) {
            return Some(format!(
                "{target}: {} has no heading with the anchor #{anchor}",
                resolved.strip_prefix(root).unwrap().display()
            ));
        }
    }
    None
}

#[test]
fn every_link_of_the_documentation_stays_in_the_repository_and_resolves() {
    let root = repo();
    let mut files = Vec::new();
    markdown_files(&root, &mut files);
    files.sort();
    assert!(
        files.len() >= 10 && files.iter().any(|f| f.ends_with("README.md")),
        "found only {files:?}"
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file.strip_prefix(&root).unwrap().display().to_string();
        for (line, target) in links(&text) {
            checked += 1;
            if let Some(p) = problem(&root, file, &target) {
                problems.push(format!("{shown}:{line}: {p}"));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: the scanner is broken"
    );
    assert!(
        problems.is_empty(),
        "{} broken link(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_link_checker_finds_what_it_looks_for() {
    let root = repo();
    let readme = root.join("README.md");
    assert_eq!(problem(&root, &readme, "docs/sessions.md"), None);
    assert_eq!(problem(&root, &readme, "https://example.com/x"), None);
    assert_eq!(problem(&root, &readme, "#quick-start"), None);
    assert_eq!(
        problem(&root, &readme, "docs/sessions.md#cookie-or-redis"),
        None
    );
    for (target, expected) in [
        ("../../outside/post.md", "leaves the repository"),
        ("docs/nope.md", "no such file"),
        ("#no-such-heading", "no heading with the anchor"),
        ("docs/sessions.md#nope", "no heading with the anchor"),
        ("/etc/passwd", "absolute path"),
    ] {
        let found = problem(&root, &readme, target).unwrap_or_default();
        assert!(found.contains(expected), "{target}: {found:?}");
    }
    let found = links("see [a](x.md) and `[b](y.md)`, ![c](img.png \"t\")\n```\n[d](z.md)\n```\n");
    assert_eq!(
        found,
        vec![(1, "x.md".to_owned()), (1, "img.png".to_owned())]
    );
    assert_eq!(
        slug("5. The chart, as `operators` expect!"),
        "5-the-chart-as-operators-expect"
    );
}
