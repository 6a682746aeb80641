//! The repository stands on its own: nothing in it reads a path beside the checkout, and every
//! script says what it does with `--help`, without doing it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files of the repository that could name a path: sources, scripts, docs, CI.
fn text_files() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(
                    name.as_str(),
                    "target" | ".git" | "artifacts" | "__pycache__"
                ) {
                    stack.push(path);
                }
                continue;
            }
            let text_like = ["rs", "sh", "py", "md", "toml", "txt"]
                .iter()
                .any(|ext| name.ends_with(&format!(".{ext}")))
                || name == "run";
            if text_like {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn nothing_reads_beside_the_checkout() {
    // Spelled in two parts, so that this file does not name it.
    let outside = [format!("../{}", "shared"), format!("..\\{}", "shared")];
    let files = text_files();
    assert!(files.len() > 50, "the walk found the repository's files");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for needle in &outside {
            assert!(
                !text.contains(needle.as_str()),
                "{} refers to {needle}, outside the repository",
                file.display()
            );
        }
    }
}

/// Each script's `--help` prints its header comment and exits 0 without running anything.
#[test]
fn every_script_explains_itself() {
    let scripts = std::fs::read_dir(root().join("scripts")).unwrap();
    let mut checked = 0;
    for script in scripts.flatten().map(|e| e.path()) {
        if script.extension().is_none_or(|e| e != "sh") {
            continue;
        }
        let out = Command::new("bash")
            .arg(&script)
            .arg("--help")
            .env("CARGO_TARGET_DIR", "/nonexistent")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {out:?}", script.display());
        let first = help.lines().next().unwrap_or("");
        assert!(
            first.len() > 20 && !first.starts_with('#'),
            "{}: --help should start with what the script does, got {first:?}",
            script.display()
        );
        checked += 1;
    }
    assert!(checked >= 6, "scripts checked: {checked}");
}
