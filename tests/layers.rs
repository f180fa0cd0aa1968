//! The import graph of `src/` points only downward: the doors (`cli`,
//! `tui`, `bridge`) use the application layer (`app`), which uses the
//! engine, the log and the backends (`exec`, `audit`, `native`), which use
//! the pure core (`core`). No door uses another, and nothing below a door
//! uses one. Checked on the source text: every `crate::LAYER` path and
//! every `super::…` that climbs out of a layer.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const DOORS: [&str; 3] = ["cli", "tui", "bridge"];

/// What each layer may use besides itself.
fn allowed(layer: &str) -> &'static [&'static str] {
    match layer {
        "cli" | "tui" | "bridge" => &["app", "exec", "audit", "native", "core"],
        "app" => &["exec", "audit", "native", "core"],
        "exec" => &["audit", "native", "core"],
        "native" => &["audit", "core"],
        "audit" => &["core"],
        _ => &[],
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ reads") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The layers `text` names as `crate::LAYER`, outside comments.
fn used_layers(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = code.as_str();
    let mut used = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `opsgate::crate::…` cannot occur; a word ending in `crate::`
        // (`somecrate::`) is not the crate root.
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        used.insert(name);
    }
    used
}

/// Every arrow in `src/` that points sideways or up, as `file: layer -> layer`.
fn wrong_arrows(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let layers = [
        "cli", "tui", "bridge", "app", "exec", "audit", "native", "core",
    ];
    let mut wrong = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).expect("under src/");
        let Some(layer) = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .filter(|l| layers.contains(l))
        else {
            continue; // lib.rs, main.rs: the composition root
        };
        let text = std::fs::read_to_string(&f).expect("a source file reads");
        for used in used_layers(&text) {
            if used == layer || !layers.contains(&used.as_str()) {
                continue;
            }
            if !allowed(layer).contains(&used.as_str()) {
                wrong.push(format!("{}: {layer} -> {used}", rel.display()));
            }
        }
    }
    wrong
}

#[test]
fn the_import_graph_points_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let wrong = wrong_arrows(&src);
    assert!(
        wrong.is_empty(),
        "arrows that point sideways or up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_a_door_that_imports_another() {
    // The check itself can fail: a copy of the tree where the TUI borrows
    // from the CLI, and the engine from the application layer.
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    for (file, text) in [
        ("tui/app.rs", "use crate::cli::error::CliError;\n"),
        (
            "exec/engine.rs",
            "fn f() { crate::app::driver::drive(); }\n",
        ),
        (
            "bridge/read.rs",
            "use crate::app::decide::counts; // fine\n",
        ),
        ("core/risk.rs", "use somecrate::cli; // not this crate\n"),
        ("core/event.rs", "//! sealing them is `crate::audit`.\n"),
    ] {
        let path = src.join(file);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
    }
    let wrong = wrong_arrows(src);
    assert_eq!(
        wrong,
        vec![
            "exec/engine.rs: exec -> app".to_owned(),
            "tui/app.rs: tui -> cli".to_owned()
        ],
    );
    for door in DOORS {
        assert!(allowed(door).iter().all(|l| !DOORS.contains(l)), "{door}");
    }
}
