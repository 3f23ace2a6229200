//! The structure of `istio-manifests/src`, checked from its text: imports run one way.
//!
//! Every path a file names inside the crate (`crate::...`, `super::...`, a child module's
//! `name::...`, in `use` lines, in code and in doc links alike, tests in the file included) is
//! an arrow from that file to the file of the longest module the path names. The arrows must
//! form no circle: a parent file may declare its children and re-export their items, but a
//! child imports from the file that defines an item, never back through its parent.

use test_support::import_graph::{Graph, assert_paths_are_read, circle_report, file};

/// The import graph of this crate's `src`.
fn graph() -> Graph {
    test_support::import_graph::graph(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn no_file_imports_itself_in_a_circle() {
    let report = circle_report(&graph());
    assert!(report.is_empty(), "imports run in circles:\n{report}");
}

/// The checker itself sees arrows: files known to import others are found doing so, so a
/// clean report means something.
#[test]
fn the_checker_sees_the_imports_it_must() {
    let g = graph();
    let lib = file(&g, "lib.rs");
    let args = file(&g, "args.rs");
    let check_gateway_api = file(&g, "check/gateway_api.rs");
    assert!(g.arrows[lib].contains_key(&file(&g, "render.rs")));
    assert!(
        g.arrows[args].contains_key(&file(&g, "names.rs")),
        "{:?}",
        g.arrows[args]
    );
    assert!(
        g.arrows[check_gateway_api].contains_key(&file(&g, "yaml.rs")),
        "{:?}",
        g.arrows[check_gateway_api]
    );
    assert_paths_are_read();
}
