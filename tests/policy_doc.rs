//! `docs/policy.md` is checked against `config/rules.yaml`: every program a
//! built-in rule, wrapper or tool spec names, and every verb of the built-in
//! lexicon's classes, is written in the page in backquotes, so the page
//! cannot fall behind the table.

use opsgate::core::policy::builtin_pack;

fn page() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/policy.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every program the built-in pack names, globs included (`mkfs*`).
fn programs() -> Vec<String> {
    let pack = builtin_pack().unwrap_or_else(|e| panic!("built-in rules: {e}"));
    let mut out: Vec<String> = Vec::new();
    for r in &pack.rules {
        out.extend(r.program.iter().map(str::to_owned));
    }
    for w in &pack.wrappers {
        out.extend(w.program.iter().map(str::to_owned));
    }
    out.extend(pack.tools.keys().cloned());
    out.extend(pack.aliases.keys().cloned());
    out.sort();
    out.dedup();
    out
}

#[test]
fn every_program_of_the_built_in_table_is_in_the_policy_page() {
    let page = page();
    let missing: Vec<String> = programs()
        .into_iter()
        .filter(|p| !page.contains(&format!("`{p}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/policy.md does not name these programs of config/rules.yaml (in backquotes): {missing:?}"
    );
}

#[test]
fn the_check_finds_a_program_the_page_lacks() {
    // The check above is only as good as its list: it must hold the
    // programs of the new families.
    let all = programs();
    for p in [
        "gcloud",
        "redis-cli",
        "etcdctl",
        "ansible",
        "cryptsetup",
        "mongosh",
    ] {
        assert!(
            all.iter().any(|x| x == p),
            "{p} is not in the built-in pack"
        );
    }
    assert!(!page().contains("`no-such-program-xyz`"));
}
