//! The README's module map is true: every module of the crate is on it, and each imports only
//! the modules its row names, all of which stand below it, so imports have no cycle.

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
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let first = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            if module == "lib" || module == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
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
