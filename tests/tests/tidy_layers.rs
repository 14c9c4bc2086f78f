//! Tidy: the layers of the server and client crates (ARCHITECTURE.md,
//! "Layers").
//!
//! The top-level modules of each crate form an order, from the bottom up.
//! A module may use what lies below it and never what lies above: every
//! `crate::`, `super::` and `self::` path in every file is read with `syn`
//! (grouped `use` trees and paths written inline in code included) and
//! resolved to the top-level module it names. Cycles are allowed only among
//! the files of one module. The few exceptions are listed here, each with
//! its reason, and must still be needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// One crate's rule.
struct Layers {
    /// The crate's `src` folder, from the workspace root.
    src: &'static str,
    /// Its top-level modules from the bottom up, in groups: a module uses
    /// only modules of the groups below its own.
    order: &'static [&'static [&'static str]],
    /// Imports that go up all the same: (from, to, why).
    exceptions: &'static [(&'static str, &'static str, &'static str)],
}

const SERVER: Layers = Layers {
    src: "server/src",
    order: &[
        &["error"],
        &["metrics"],
        &["signing"],
        &["config"],
        &["ws"],
        &["auth"],
        &["broker"],
        &["session"],
        &["webhook"],
        &["hub"],
        &["rpc"],
        &["state"],
        &["actor"],
        &["edge"],
        &["demo"],
    ],
    exceptions: &[(
        "edge",
        "demo",
        "the builder mounts the demo methods when `demo` is on; they are written against the public GatewayBuilder, as an application's would be",
    )],
};

const CLIENT: Layers = Layers {
    src: "client-rs/src",
    order: &[
        &["buffer", "error", "reconnect", "stats"],
        &["handler", "state", "token", "topic"],
        &["config"],
        &["shared"],
        &["calls", "inbound", "notifications"],
        &["batch", "refresher", "subscription"],
        &["connection"],
        &["client"],
        &["builder"],
    ],
    exceptions: &[],
};

/// The most exceptions a crate may have.
const MOST_EXCEPTIONS: usize = 2;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, with its module path (`lib.rs` is `[]`,
/// `a/mod.rs` and `a.rs` are `[a]`, `a/b.rs` is `[a, b]`). Binaries
/// (`main.rs`, `bin/`) are crates of their own and left out.
fn modules(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), Vec::<String>::new())];
    while let Some((folder, prefix)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            if path.is_dir() {
                if prefix.is_empty() && name == "bin" {
                    continue;
                }
                let mut inner = prefix.clone();
                inner.push(name);
                stack.push((path, inner));
            } else if let Some(stem) = name.strip_suffix(".rs") {
                let module = match (prefix.is_empty(), stem) {
                    (true, "main") => continue,
                    (true, "lib") | (false, "mod") => prefix.clone(),
                    _ => {
                        let mut m = prefix.clone();
                        m.push(stem.to_owned());
                        m
                    }
                };
                out.push((path, module));
            }
        }
    }
    out
}

/// Collects the crate-relative paths a file uses, resolved to absolute
/// module paths (`crate::a::b`, `super::c` from inside `a::d` is `a::c`).
struct Uses {
    /// The module the visitor stands in (the file's, plus inline `mod`s).
    here: Vec<String>,
    found: Vec<Vec<String>>,
}

impl Uses {
    fn resolve(&mut self, segments: &[String]) {
        let mut at = self.here.clone();
        let mut rest = segments;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                at.clear();
                rest = &rest[1..];
            }
            Some("super") => {
                while rest.first().map(String::as_str) == Some("super") {
                    at.pop();
                    rest = &rest[1..];
                }
            }
            Some("self") => rest = &rest[1..],
            _ => return,
        }
        at.extend(rest.iter().cloned());
        self.found.push(at);
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut full = prefix.clone();
                if n.ident != "self" {
                    full.push(n.ident.to_string());
                }
                self.resolve(&full);
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                if r.ident != "self" {
                    full.push(r.ident.to_string());
                }
                self.resolve(&full);
            }
            syn::UseTree::Glob(_) => {
                let full = prefix.clone();
                self.resolve(&full);
            }
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Uses {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_some() {
            self.here.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.here.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.resolve(&segments);
        syn::visit::visit_path(self, p);
    }
}

/// The names `lib.rs` re-exports, each with the top-level module it comes from.
fn root_reexports(lib: &syn::File) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for item in &lib.items {
        if let syn::Item::Use(u) = item {
            let mut uses = Uses {
                here: Vec::new(),
                found: Vec::new(),
            };
            // A re-export `pub use a::b::C;` is written without `crate::`.
            let mut prefix = vec!["crate".to_owned()];
            uses.use_tree(&mut prefix, &u.tree);
            for path in uses.found {
                if let (Some(first), Some(last)) = (path.first(), path.last()) {
                    out.insert(last.clone(), first.clone());
                }
            }
        }
    }
    out
}

/// Every import that breaks the crate's order: `file: from -> to (path)`.
fn violations(layers: &Layers) -> (Vec<String>, BTreeSet<(String, String)>) {
    let src = workspace_root().join(layers.src);
    let files = modules(&src);
    let top: BTreeSet<String> = files.iter().filter_map(|(_, m)| m.first().cloned()).collect();
    for module in &top {
        assert!(
            layers.order.iter().any(|group| group.contains(&module.as_str())),
            "{}: the top-level module `{module}` has no place in the layer order; add it to this test and to ARCHITECTURE.md",
            layers.src
        );
    }
    for module in layers.order.iter().flat_map(|group| group.iter()) {
        assert!(
            top.contains(*module),
            "{}: the layer order names `{module}`, which is not a module",
            layers.src
        );
    }
    let rank = |m: &str| layers.order.iter().position(|group| group.contains(&m));
    let parse = |path: &Path| {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let lib = parse(&src.join("lib.rs"));
    let reexports = root_reexports(&lib);
    let mut bad = Vec::new();
    let mut used_exceptions = BTreeSet::new();
    for (path, module) in &files {
        // The crate root is the crate's face: it may name everything.
        let Some(from) = module.first() else { continue };
        let mut uses = Uses {
            here: module.clone(),
            found: Vec::new(),
        };
        uses.visit_file(&parse(path));
        for used in uses.found {
            let Some(first) = used.first() else { continue };
            let to = if top.contains(first) {
                first.clone()
            } else if let Some(module) = reexports.get(first) {
                module.clone()
            } else {
                // Something the crate root defines itself, or a dependency re-exported there.
                continue;
            };
            if &to == from || !top.contains(&to) {
                continue;
            }
            let (Some(f), Some(t)) = (rank(from), rank(&to)) else {
                continue;
            };
            if f > t {
                continue;
            }
            if layers.exceptions.iter().any(|(a, b, _)| a == from && *b == to) {
                used_exceptions.insert((from.clone(), to.clone()));
                continue;
            }
            let shown = path
                .strip_prefix(workspace_root())
                .unwrap_or(path)
                .display()
                .to_string();
            bad.push(format!(
                "{shown}: `{from}` uses `{}`, which lies above it",
                used.join("::")
            ));
        }
    }
    bad.sort();
    bad.dedup();
    (bad, used_exceptions)
}

fn check(layers: &Layers) {
    assert!(
        layers.exceptions.len() <= MOST_EXCEPTIONS,
        "{}: at most {MOST_EXCEPTIONS} exceptions",
        layers.src
    );
    let (bad, used) = violations(layers);
    assert!(
        bad.is_empty(),
        "{}: imports that go up the layers ({} from the bottom up):\n  {}",
        layers.src,
        layers
            .order
            .iter()
            .map(|g| g.join(", "))
            .collect::<Vec<_>>()
            .join(" < "),
        bad.join("\n  ")
    );
    for (from, to, why) in layers.exceptions {
        assert!(
            used.contains(&((*from).to_owned(), (*to).to_owned())),
            "{}: the exception `{from}` -> `{to}` ({why}) is no longer needed; remove it here and in ARCHITECTURE.md",
            layers.src
        );
    }
}

#[test]
fn server_modules_import_only_downward() {
    check(&SERVER);
}

#[test]
fn client_modules_import_only_downward() {
    check(&CLIENT);
}

#[test]
fn the_checker_sees_grouped_inline_and_relative_paths() {
    let file: syn::File = syn::parse_str(
        "use crate::{a::{B, c::D}, e};\n\
         use super::f::G as H;\n\
         fn x() { crate::i::j(); let _ = super::super::k::L; }\n\
         mod inner { use super::m::N; }",
    )
    .expect("parses");
    let mut uses = Uses {
        here: vec!["p".into(), "q".into()],
        found: Vec::new(),
    };
    uses.visit_file(&file);
    let found: Vec<String> = uses.found.iter().map(|p| p.join("::")).collect();
    assert_eq!(found, ["a::B", "a::c::D", "e", "p::f::G", "i::j", "k::L", "p::q::m::N"]);
}
