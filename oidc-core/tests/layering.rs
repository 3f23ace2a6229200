//! The structure of `oidc-core/src`, checked from its text: imports run one way.
//!
//! Every path a file names inside the crate (`crate::...`, `super::...`, a child module's
//! `name::...`, in `use` lines, in code and in doc links alike, tests in the file included) is
//! an arrow from that file to the file of the longest module the path names. The arrows must
//! form no circle, and only `lib.rs` and the engine's own files may point into `src/engine/`
//! (the engine ties the layers together; no layer reaches back up to it). See
//! `docs/architecture.md` for the layers.

use std::path::Path;

use test_support::import_graph::{Graph, assert_paths_are_read, circle_report, file};

/// The import graph of this crate's `src`.
fn graph() -> Graph {
    test_support::import_graph::graph(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn no_file_of_the_core_imports_itself_in_a_circle() {
    let report = circle_report(&graph());
    assert!(report.is_empty(), "imports run in circles:\n{report}");
}

#[test]
fn nothing_below_the_engine_imports_it() {
    let g = graph();
    let engine = |i: usize| g.files[i].starts_with("engine");
    let mut wrong = Vec::new();
    for (a, targets) in g.arrows.iter().enumerate() {
        if engine(a) || g.files[a] == Path::new("lib.rs") {
            continue;
        }
        for (&b, path) in targets {
            if engine(b) {
                wrong.push(format!(
                    "{} -> {} ({path})",
                    g.files[a].display(),
                    g.files[b].display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "files below the engine import it:\n{}",
        wrong.join("\n")
    );
}

/// The checker itself sees arrows: a file known to import another one is found doing so
/// (through a group, a `super::` path and a doc link), so a clean report means something.
#[test]
fn the_checker_sees_the_imports_it_must() {
    let g = graph();
    let gate = file(&g, "engine/gate.rs");
    let state = file(&g, "engine/state.rs");
    let session = file(&g, "session/model.rs");
    let lib = file(&g, "lib.rs");
    assert!(g.arrows[gate].contains_key(&state), "{:?}", g.arrows[gate]);
    assert!(
        g.arrows[state].contains_key(&session),
        "{:?}",
        g.arrows[state]
    );
    assert!(g.arrows[lib].contains_key(&file(&g, "engine/mod.rs")));
    assert_paths_are_read();
}
