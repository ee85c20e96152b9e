//! Keeps the edge a straight stack: reads every `crate::…` path in `src/` (and every
//! `pagesync::…` path in `main.rs`) and fails when a module uses one in a higher
//! layer, or when modules of one layer use each other in a circle. The layers are
//! [`LAYERS`]; docs/architecture.md ("The edge's module graph") shows the same table.
//!
//! A test rather than a lint because no stable tool checks this for a single crate;
//! it reads the source as text, so comments are skipped and a grouped
//! `use crate::{…}` is refused (it would hide its paths from this check).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom first. A module may use modules of lower layers, and modules of its own
/// layer as long as that makes no circle. `main` is the binary (`src/main.rs`).
const LAYERS: &[&[&str]] = &[
    // Foundations: no knowledge of settings, clients or HTTP state.
    &[
        "clock",
        "html",
        "rfc3339",
        "verify",
        "systemd",
        "control",
        "error",
        "request",
        "oauth_state",
        "delivery",
        "body",
        "privilege",
    ],
    &["config", "telemetry"],
    &["metrics"],
    &["clients"],
    &["app_state", "health"],
    &["routes"],
    &["startup"],
    &["emulator"],
    &["sandbox"],
    &["cli", "main"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { panic!("cannot read {}", dir.display()) };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file's code (not its comments) names after `prefix`.
fn used_modules(text: &str, prefix: &str, file: &Path) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" //").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + prefix.len()..];
            // `$crate::` and `foo_crate::` are not ours.
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            assert!(!rest.starts_with('{'), "{}: write one `use {prefix}…` path per line: {line}", file.display());
            let name: String =
                rest.chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
            if !name.is_empty() {
                used.insert(name);
            }
        }
    }
    used
}

/// Which top-level module each file under `src/` belongs to, and what it uses.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "module_graph" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let prefix = if module == "main" { "pagesync::" } else { "crate::" };
        let mut used = used_modules(&text, prefix, &file);
        used.remove(&module);
        graph.entry(module).or_default().extend(used);
    }
    graph
}

#[test]
fn every_module_has_a_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ").and_then(|m| m.strip_suffix(';')))
        .chain(["main"])
        .collect();
    let placed: BTreeSet<&str> = LAYERS.iter().flat_map(|layer| layer.iter().copied()).collect();
    assert_eq!(declared, placed, "lib.rs's modules and LAYERS (in src/module_graph.rs) must list the same modules");
}

#[test]
fn no_module_uses_a_higher_layer() {
    let mut upward = Vec::new();
    for (module, used) in module_graph() {
        let Some(own) = layer_of(&module) else { continue };
        for target in used {
            match layer_of(&target) {
                Some(layer) if layer <= own => {}
                _ => upward.push(format!("{module} -> {target}")),
            }
        }
    }
    assert!(upward.is_empty(), "uses that point up the stack (see LAYERS): {upward:?}");
}

#[test]
fn no_modules_use_each_other_in_a_circle() {
    let graph = module_graph();
    // Depth-first search; a module met again while it is still on the path closes a circle.
    fn visit<'g>(
        module: &'g str,
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'g str>,
        done: &mut BTreeSet<&'g str>,
    ) {
        if done.contains(module) {
            return;
        }
        if let Some(at) = path.iter().position(|m| *m == module) {
            panic!("import circle: {} -> {module}", path[at..].join(" -> "));
        }
        path.push(module);
        for next in graph.get(module).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(module);
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_checker_sees_uses_and_skips_comments() {
    let text = "use crate::config::Settings;\n// crate::routes in a comment\nlet x = crate::clock::unix_now(); // crate::cli\n$crate::ignored\n";
    let used = used_modules(text, "crate::", Path::new("x.rs"));
    assert_eq!(used, BTreeSet::from(["clock".to_owned(), "config".to_owned()]));
}
