//! The README's module map is true: every module of the crate is on it, and each imports only
//! the modules its row names, all of which stand below it, so imports have no cycle; and inside
//! each module, no two files import each other, however many files lie between.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The map's rows in order: module and the modules it may import.
fn module_map() -> Vec<(String, BTreeSet<String>)> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let (_, rest) = readme
        .split_once("<!-- module map -->")
        .expect("README.md has a <!-- module map --> table");
    let (table, _) = rest
        .split_once("<!-- end module map -->")
        .expect("the module map table ends with <!-- end module map -->");
    let names = |cell: &str| -> BTreeSet<String> {
        cell.split(',')
            .map(|n| n.trim().trim_matches('`').to_string())
            .filter(|n| !n.is_empty() && n != "nothing")
            .collect()
    };
    table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_string(), names(cells[3]))
        })
        .collect()
}

/// The crate's top-level modules each file of `src/` belongs to, and what it names as
/// `crate::x`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, text) in source_files() {
        let module = file[0].clone();
        let used = found.entry(module.clone()).or_default();
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            // `crate::{a, b::c}` names several modules at once.
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group[..group.find('}').unwrap_or(group.len())]
                    .split(',')
                    .collect(),
                None => vec![rest],
            };
            for name in names {
                let name: String = name
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module && name != "self" {
                    used.insert(name);
                }
            }
        }
    }
    found
}

#[test]
fn imports_go_down_the_module_map() {
    let map = module_map();
    let imports = imports();
    let listed: BTreeSet<&String> = map.iter().map(|(m, _)| m).collect();
    let modules: BTreeSet<&String> = imports.keys().collect();
    assert_eq!(
        listed, modules,
        "the README's module map lists exactly the crate's modules"
    );
    for (row, (module, allowed)) in map.iter().enumerate() {
        let below: BTreeSet<&String> = map[row + 1..].iter().map(|(m, _)| m).collect();
        for name in allowed {
            assert!(
                below.contains(name),
                "{module} may import {name}, which is not below it"
            );
        }
        for name in &imports[module] {
            assert!(
                allowed.contains(name),
                "{module} imports crate::{name}, which its row of the README's module map \
                 does not allow"
            );
        }
    }
}

/// A file of `src/`, as its module path (`training::best`, `training` for its `mod.rs`).
type FileModule = Vec<String>;

/// Every file of `src/` as its module path, with its text (`lib.rs` and `main.rs` left out).
fn source_files() -> BTreeMap<FileModule, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap().with_extension("");
            let mut module: FileModule = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            if module == ["lib"] || module == ["main"] {
                continue;
            }
            files.insert(module, std::fs::read_to_string(&path).unwrap());
        }
    }
    files
}

/// The paths a file names from `super::…`, `self::…` and `crate::…`, as absolute segment
/// lists (a `{a, b::c}` group gives one path per member); in its `mod tests`, one level deeper.
fn named_paths(module: &[String], text: &str) -> Vec<Vec<String>> {
    match text.split_once("\nmod tests {") {
        Some((body, tests)) => {
            let mut paths = paths_from(module, body);
            let inner = [module.to_vec(), vec!["tests".to_string()]].concat();
            paths.extend(paths_from(&inner, tests));
            paths
        }
        None => paths_from(module, text),
    }
}

/// [`named_paths`] for code in module `module`.
fn paths_from(module: &[String], text: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let here: Vec<String> = module.to_vec();
    let mut paths = Vec::new();
    for start in ["crate::", "super::", "self::"] {
        for (at, _) in text.match_indices(start) {
            // Not the tail of a longer path (`super::super::`, `a::self::`).
            if at > 0 && text[..at].ends_with("::") {
                continue;
            }
            let mut base: Vec<String> = match start {
                "crate::" => vec![],
                "self::" => here.clone(),
                _ => here[..here.len().saturating_sub(1)].to_vec(),
            };
            let mut rest = &text[at + start.len()..];
            while let Some(next) = rest.strip_prefix("super::") {
                base.pop();
                rest = next;
            }
            let mut prefix = base.clone();
            loop {
                if let Some(group) = rest.strip_prefix('{') {
                    let end = group.find('}').unwrap_or(group.len());
                    for member in group[..end].split(',') {
                        let segments: Vec<String> = member
                            .trim()
                            .split("::")
                            .map(ident)
                            .filter(|s| !s.is_empty())
                            .collect();
                        if !segments.is_empty() && segments[0] != "self" {
                            paths.push([prefix.clone(), segments].concat());
                        }
                    }
                    break;
                }
                let name = ident(rest);
                if name.is_empty() {
                    paths.push(prefix);
                    break;
                }
                prefix.push(name.clone());
                rest = &rest[name.len()..];
                match rest.strip_prefix("::") {
                    Some(next) => rest = next,
                    None => {
                        paths.push(prefix);
                        break;
                    }
                }
            }
        }
    }
    paths
}

/// The file a path's item lives in: the longest file module the path starts with; an item
/// that a `mod.rs` re-exports from a child (`pub use child::Item`) lives in the child.
fn file_of(path: &[String], files: &BTreeMap<FileModule, String>) -> Option<FileModule> {
    let module = (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| files.contains_key(m))?;
    let Some(item) = path.get(module.len()) else {
        return Some(module);
    };
    let text = &files[&module];
    let child = text.match_indices("pub use ").find_map(|(at, _)| {
        let statement = &text[at + "pub use ".len()..];
        let statement = &statement[..statement.find(';')?];
        let (child, names) = statement.split_once("::")?;
        let names_item = names
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|n| n == item);
        let child_module = [module.clone(), vec![child.trim().to_string()]].concat();
        (names_item && files.contains_key(&child_module)).then_some(child_module)
    });
    Some(child.unwrap_or(module))
}

/// Within each top-level module, no file imports a file that imports it back, however many
/// files lie between: `super::` and `crate::` paths and a `mod.rs`'s uses of its children
/// (`child::item`) are the edges, except a file's uses of its own ancestors.
#[test]
fn files_import_each_other_in_one_direction() {
    let files = source_files();
    let mut edges: BTreeMap<FileModule, BTreeSet<FileModule>> = BTreeMap::new();
    for (module, text) in &files {
        let mut targets = BTreeSet::new();
        for path in named_paths(module, text) {
            if let Some(file) = file_of(&path, &files) {
                targets.insert(file);
            }
        }
        // A mod.rs names its children without a prefix: `child::item`.
        for (child, _) in files.iter().filter(|(m, _)| m.len() == module.len() + 1) {
            if !child.starts_with(module) {
                continue;
            }
            let name = child.last().unwrap();
            let uses = text.match_indices(&format!("{name}::")).any(|(at, _)| {
                let before = text[..at].chars().last();
                before.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            });
            if uses {
                targets.insert(child.clone());
            }
        }
        // Only files of the same top-level module (the module map orders the rest), and not a
        // file's own ancestors: a `mod.rs` declares its children, so a child's use of what its
        // parent defines is the one direction Rust's module tree has anyway.
        targets.retain(|t| t.first() == module.first() && !module.starts_with(t));
        edges.insert(module.clone(), targets);
    }
    // A depth-first search for a path back to each file.
    let mut circles: BTreeSet<String> = BTreeSet::new();
    for start in edges.keys() {
        let mut stack: Vec<Vec<FileModule>> = edges[start]
            .iter()
            .map(|t| vec![start.clone(), t.clone()])
            .collect();
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = path.last().unwrap();
            if last == start {
                let shown: Vec<String> = path.iter().map(|m| m.join("::")).collect();
                circles.insert(shown.join(" -> "));
                break;
            }
            if !seen.insert(last.clone()) {
                continue;
            }
            for next in edges.get(last).into_iter().flatten() {
                stack.push([path.clone(), vec![next.clone()]].concat());
            }
        }
    }
    assert!(
        circles.is_empty(),
        "files import each other in a circle:\n{}",
        circles.into_iter().collect::<Vec<_>>().join("\n")
    );
}
