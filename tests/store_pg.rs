//! Team mode's PostgreSQL store against a real server (Debian's
//! postgresql, started by `scripts/test-env-pg.sh`): the schema, a file log
//! imported and exported byte for byte, the append-only trigger, and the
//! refusals that keep history from being lost or forged.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use std::path::Path;

use common::backends::{pg_url, unique};
use common::env::{Env, path};
use opsgate::store::pg::Pg;
use serde_json::Value;

/// A database of its own for one test, on the test server; its URL.
fn fresh_db() -> Option<String> {
    let admin = pg_url()?;
    let name = unique("og").replace('-', "_");
    let pg = Pg::connect(&admin).expect("the test server takes connections");
    pg.execute_raw(&format!("CREATE DATABASE {name}"))
        .expect("CREATE DATABASE");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some(format!("{base}/{name}"))
}

/// `opsgate ARGS --store URL` on `env`'s log; exit code, stdout, stderr.
fn store(env: &Env, url: &str, args: &[&str]) -> (i32, String, String) {
    let out = common::opsgate_command(&env.log, env.policy.as_deref())
        .args(args)
        .args(["--store", url])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("opsgate runs");
    (
        out.status.code().expect("an exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn store_ok(env: &Env, url: &str, args: &[&str]) -> String {
    let (code, out, err) = store(env, url, args);
    assert_eq!(code, 0, "{args:?}: {out} {err}");
    out
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A file log with a few plans submitted, decided and run.
fn busy_log(env: &Env) {
    for (id, cmd) in [("first", "true"), ("second", "echo hi"), ("third", "true")] {
        let plan = env.plan(
            &format!("{id}.yaml"),
            &format!(
                "id: {id}\ntitle: {id}\nsteps:\n  - {{name: s, run: {cmd}, rollback: {{run: 'true'}}}}\n"
            ),
        );
        env.submit_and_approve(&plan, id);
    }
    env.ok(&["run", "first"]);
    env.ok(&["reject", "third", "--as", "bob", "--reason", "not now"]);
}

#[test]
fn init_creates_the_schema_once_and_status_reads_the_head() {
    let Some(url) = fresh_db() else { return };
    let env = Env::new(None);
    let (code, _, err) = store(&env, &url, &["store", "status"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("store init"), "no schema yet: {err}");
    let first = json(&store_ok(&env, &url, &["store", "init", "--json"]));
    assert_eq!(first["applied"], serde_json::json!([1]), "{first}");
    let again = json(&store_ok(&env, &url, &["store", "init", "--json"]));
    assert_eq!(again["applied"], serde_json::json!([]), "{again}");
    assert_eq!(
        again["chain_id"], first["chain_id"],
        "the chain keeps its id"
    );
    let s = json(&store_ok(&env, &url, &["store", "status", "--json"]));
    assert_eq!(
        (s["records"].clone(), s["head_seq"].clone()),
        (0.into(), 0.into())
    );
    assert!(s["server_version"].as_str().is_some_and(|v| !v.is_empty()));
    // The URL is never printed with its password.
    let with_pw = url.replacen("postgres@", "postgres:hunter2@", 1);
    let (_, out, err) = store(&env, &with_pw, &["store", "status"]);
    assert!(
        !out.contains("hunter2") && !err.contains("hunter2"),
        "{out} {err}"
    );
}

#[test]
fn a_file_log_migrates_and_exports_byte_for_byte() {
    let Some(url) = fresh_db() else { return };
    let env = Env::new(None);
    busy_log(&env);
    store_ok(&env, &url, &["store", "init"]);
    let m = json(&store_ok(
        &env,
        &url,
        &["store", "migrate", "--from", path(&env.log), "--json"],
    ));
    let lines = std::fs::read_to_string(&env.log)
        .expect("log")
        .lines()
        .count();
    assert_eq!(m["records"], lines as u64, "{m}");
    // The store's head is the file's.
    let head = json(&env.ok(&["audit", "head", "--json"]));
    let s = json(&store_ok(&env, &url, &["store", "status", "--json"]));
    assert_eq!(s["head_seq"], head["seq"], "{s} {head}");
    assert_eq!(s["head_hash"], head["hash"], "{s} {head}");
    // Out again: the same bytes, and `audit verify` checks them offline.
    let exported = env.p("exported.jsonl");
    store_ok(&env, &url, &["store", "export", "-o", path(&exported)]);
    assert_eq!(
        std::fs::read(&exported).expect("export"),
        std::fs::read(&env.log).expect("log"),
        "byte for byte"
    );
    let (code, out, err) = run_on(&env, &exported, &["audit", "verify"]);
    assert_eq!(code, 0, "{out} {err}");
    // To standard output too.
    let out = store_ok(&env, &url, &["store", "export"]);
    assert_eq!(out.as_bytes(), std::fs::read(&env.log).expect("log"));
}

/// `opsgate ARGS` on the log at `log`.
fn run_on(env: &Env, log: &Path, args: &[&str]) -> (i32, String, String) {
    let out = common::opsgate_command(log, env.policy.as_deref())
        .args(args)
        .output()
        .expect("opsgate runs");
    (
        out.status.code().expect("an exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn migrate_refuses_a_broken_file_and_a_store_that_holds_records() {
    let Some(url) = fresh_db() else { return };
    let env = Env::new(None);
    busy_log(&env);
    store_ok(&env, &url, &["store", "init"]);
    // A middle record edited: refused, naming the line; nothing imported.
    let good = std::fs::read_to_string(&env.log).expect("log");
    let edited = env.p("edited.jsonl");
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    lines[2] = lines[2].replacen("\"bob\"", "\"mallory\"", 1);
    assert_ne!(lines[2], good.lines().nth(2).expect("line 3"));
    std::fs::write(&edited, format!("{}\n", lines.join("\n"))).expect("edited");
    let (code, _, err) = store(&env, &url, &["store", "migrate", "--from", path(&edited)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("does not verify") && err.contains("line 3"),
        "{err}"
    );
    let s = json(&store_ok(&env, &url, &["store", "status", "--json"]));
    assert_eq!(s["records"], 0, "{s}");
    // A torn last line is refused too.
    let torn = env.p("torn.jsonl");
    std::fs::write(&torn, &good[..good.len() - 10]).expect("torn");
    let (code, _, err) = store(&env, &url, &["store", "migrate", "--from", path(&torn)]);
    assert_eq!(code, 1, "{err}");
    // The good log imports once; a second import is refused (exit 3).
    store_ok(&env, &url, &["store", "migrate", "--from", path(&env.log)]);
    let before = json(&store_ok(&env, &url, &["store", "status", "--json"]));
    let (code, _, err) = store(&env, &url, &["store", "migrate", "--from", path(&env.log)]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("already holds"), "{err}");
    let after = json(&store_ok(&env, &url, &["store", "status", "--json"]));
    assert_eq!(before, after);
}

#[test]
fn the_audit_table_is_append_only() {
    let Some(url) = fresh_db() else { return };
    let env = Env::new(None);
    busy_log(&env);
    store_ok(&env, &url, &["store", "init"]);
    store_ok(&env, &url, &["store", "migrate", "--from", path(&env.log)]);
    let pg = Pg::connect(&url).expect("connects");
    for sql in [
        "UPDATE opsgate_audit SET type = 'x' WHERE seq = 2",
        "DELETE FROM opsgate_audit WHERE seq = 3",
        "TRUNCATE opsgate_audit",
    ] {
        let err = pg.execute_raw(sql).expect_err(sql).to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    let out = store_ok(&env, &url, &["store", "export"]);
    assert_eq!(out.as_bytes(), std::fs::read(&env.log).expect("log"));
}

#[test]
fn a_keyed_chain_migrates_only_with_its_key() {
    const KEY: &str = "store-test-key-0123456789abcdef";
    let Some(url) = fresh_db() else { return };
    let env = Env::new(None);
    let plan = env.plan(
        "p.yaml",
        "id: p\ntitle: p\nsteps:\n  - {name: s, run: 'true'}\n",
    );
    let out = common::opsgate_command(&env.log, None)
        .env("OPSGATE_AUDIT_KEY", KEY)
        .args(["submit", path(&plan), "--as", "alice"])
        .output()
        .expect("submit");
    assert!(out.status.success(), "{out:?}");
    store_ok(&env, &url, &["store", "init"]);
    let (code, _, err) = store(&env, &url, &["store", "migrate", "--from", path(&env.log)]);
    assert_eq!(code, 1, "without the key: {err}");
    let out = common::opsgate_command(&env.log, None)
        .env("OPSGATE_AUDIT_KEY", KEY)
        .args([
            "store",
            "migrate",
            "--from",
            path(&env.log),
            "--store",
            &url,
        ])
        .output()
        .expect("migrate");
    assert!(out.status.success(), "{out:?}");
}
