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

use common::backends::{PgServer, fresh_db, pg_url, unique};
use common::env::{Env, path};
use opsgate::store::pg::Pg;
use serde_json::Value;

/// `opsgate ARGS --store URL` on `env`'s log; exit code, stdout, stderr.
fn store(env: &Env, url: &str, args: &[&str]) -> (i32, String, String) {
    common::outcome(
        common::opsgate_command(&env.log, env.policy.as_deref())
            .args(args)
            .args(["--store", url]),
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
    assert_eq!(first["applied"], serde_json::json!([1, 2, 3, 4]), "{first}");
    assert_eq!(first["schema_version"], 4, "{first}");
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
    common::outcome(common::opsgate_command(log, env.policy.as_deref()).args(args))
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

/// An event that names who wrote it and which of theirs it is.
fn marker(writer: usize, n: usize) -> opsgate::core::event::Event {
    opsgate::core::event::Event::Refused {
        attempt: "store-test".into(),
        plan_id: None,
        run_id: None,
        user: format!("w{writer}"),
        channel: opsgate::core::event::Channel::Cli,
        code: "test".into(),
        reason: format!("w{writer}-n{n}"),
        plan_hash: None,
        policy_hash: opsgate::core::digest::PolicyHash::new(format!("sha256:{}", "0".repeat(64))),
        metadata: Default::default(),
    }
}

/// How many times each marker is in the exported log, which must verify.
fn exported_markers(url: &str, dir: &Path) -> std::collections::BTreeMap<String, usize> {
    let pg = Pg::connect(url).expect("connects");
    let file = dir.join("export.jsonl");
    let mut out = std::fs::File::create(&file).expect("export file");
    pg.export(&mut out).expect("export");
    let report = opsgate::audit::verify::verify_file(&file, &opsgate::audit::Sealer::Sha256, None)
        .expect("reads");
    assert!(report.ok, "the chain verifies: {:?}", report.problem);
    let mut seen = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(&file).expect("export").lines() {
        let v = json(line);
        if v["attempt"] == "store-test" {
            *seen
                .entry(v["reason"].as_str().expect("reason").to_owned())
                .or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn concurrent_appends_from_sixteen_connections_make_one_chain() {
    let Some(url) = fresh_db() else { return };
    let dir = tempfile::tempdir().expect("dir");
    Pg::connect(&url).expect("connects").init().expect("init");
    let (writers, each) = (16, 25);
    std::thread::scope(|s| {
        for w in 0..writers {
            let url = &url;
            s.spawn(move || {
                let mut pg = Pg::connect(url).expect("connects");
                for n in 0..each {
                    // One to three records per transaction.
                    let batch: Vec<_> = (0..=n % 3).map(|k| marker(w, n * 3 + k)).collect();
                    let done = pg
                        .append(&opsgate::audit::Sealer::Sha256, &batch)
                        .expect("append");
                    assert_eq!(done.len(), batch.len());
                    assert!(done.windows(2).all(|p| p[1].0 == p[0].0 + 1), "{done:?}");
                }
            });
        }
    });
    let seen = exported_markers(&url, dir.path());
    let expected: usize = (0..each).map(|n| n % 3 + 1).sum::<usize>() * writers;
    assert_eq!(seen.len(), expected, "every record, once");
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    let status = Pg::connect(&url)
        .expect("connects")
        .status()
        .expect("status");
    assert_eq!(status.records, expected as i64);
    assert_eq!(status.head_seq, expected as i64);
}

/// How often each opsgate function was called in `url`'s database, from
/// the server's statistics (`track_functions` on for the database).
fn function_calls(url: &str) -> std::collections::BTreeMap<String, i64> {
    // Statistics reach the view when a backend ends or every second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-At",
            "-F",
            " ",
            url,
            "-c",
            "SELECT funcname, calls FROM pg_stat_user_functions",
        ])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(f, n)| (f.to_owned(), n.parse().expect("a count")))
        .collect()
}

#[test]
fn an_append_is_one_statement_and_a_store_at_an_older_schema_still_appends() {
    let Some(url) = fresh_db() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let admin = Pg::connect(&url).expect("connects");
    let db = url.rsplit('/').next().expect("a database name");
    admin
        .execute_raw(&format!("ALTER DATABASE {db} SET track_functions = 'pl'"))
        .expect("tracks functions");
    Pg::connect(&url).expect("connects").init().expect("init");
    // A store as an older opsgate left it: schema version 3.
    admin
        .execute_raw("DROP FUNCTION opsgate_append")
        .expect("back to version 3");
    admin
        .execute_raw("DELETE FROM opsgate_schema WHERE version = 4")
        .expect("back to version 3");
    let sealer = opsgate::audit::Sealer::Sha256;
    let (mut a, mut b) = (
        Pg::connect(&url).expect("connects"),
        Pg::connect(&url).expect("connects"),
    );
    // Two writers taking turns: each finds the head moved by the other.
    for n in 0..4 {
        a.append(&sealer, &[marker(1, n)])
            .expect("appends on version 3");
        b.append(&sealer, &[marker(2, n)])
            .expect("appends on version 3");
    }
    drop((a, b));
    let calls = function_calls(&url);
    assert!(
        calls.get("opsgate_move_head").is_some_and(|n| *n >= 8),
        "{calls:?}"
    );
    assert_eq!(calls.get("opsgate_append"), None, "{calls:?}");

    let init = Pg::connect(&url).expect("connects").init().expect("init");
    assert_eq!(init.applied, [4], "init brings the store to version 4");
    let mut a = Pg::connect(&url).expect("connects");
    for n in 4..10 {
        a.append(&sealer, &[marker(1, n)]).expect("appends");
    }
    drop(a);
    let calls = function_calls(&url);
    assert_eq!(
        calls.get("opsgate_append"),
        Some(&6),
        "one call per append: {calls:?}"
    );
    let seen = exported_markers(&url, dir.path());
    assert_eq!(seen.len(), 14, "every record, once: {seen:?}");
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
}

#[test]
fn a_server_crash_mid_append_loses_nothing_acknowledged_and_duplicates_nothing() {
    // A server of its own: crashing the shared one would break the other
    // tests.
    if pg_url().is_none() {
        return;
    }
    let server = PgServer::start();
    let url = server.url.clone();
    Pg::connect(&url).expect("connects").init().expect("init");
    let acknowledged = std::sync::Mutex::new(Vec::new());
    let running = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|s| {
        for w in 0..16 {
            let (url, acknowledged, running) = (&url, &acknowledged, &running);
            s.spawn(move || {
                let mut pg = None;
                let mut n = 0;
                while running.load(std::sync::atomic::Ordering::SeqCst) {
                    let conn = match pg.as_mut() {
                        Some(c) => c,
                        None => match Pg::connect(url) {
                            Ok(c) => pg.insert(c),
                            Err(_) => {
                                std::thread::sleep(std::time::Duration::from_millis(50));
                                continue;
                            }
                        },
                    };
                    n += 1;
                    if conn
                        .append(&opsgate::audit::Sealer::Sha256, &[marker(w, n)])
                        .is_ok()
                    {
                        acknowledged
                            .lock()
                            .expect("lock")
                            .push(format!("w{w}-n{n}"));
                    } else {
                        pg = None;
                    }
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(400));
        server.control("crash");
        std::thread::sleep(std::time::Duration::from_millis(300));
        server.control("start");
        std::thread::sleep(std::time::Duration::from_millis(700));
        running.store(false, std::sync::atomic::Ordering::SeqCst);
    });
    let seen = exported_markers(&url, &server.dir);
    let acknowledged = acknowledged.into_inner().expect("lock");
    assert!(
        acknowledged.len() > 50,
        "the writers wrote: {}",
        acknowledged.len()
    );
    for m in &acknowledged {
        assert_eq!(seen.get(m), Some(&1), "acknowledged {m} is in the log once");
    }
    assert!(seen.values().all(|n| *n == 1), "nothing twice: {seen:?}");
}

/// A TCP proxy to the server that, once armed, cuts the client's
/// connection right after passing on what ends a transaction, a `COMMIT`
/// or a `Sync` (which commits a statement sent outside `BEGIN`, as a
/// one-statement append is): the server commits, the client never hears
/// it. Returns the proxy's address, the arming switch
/// and the count of connections it took.
fn commit_cutter(
    server: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy binds");
    let addr = listener.local_addr().expect("addr");
    let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (a, t) = (armed.clone(), taken.clone());
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            t.fetch_add(1, Ordering::SeqCst);
            let Ok(mut upstream) = std::net::TcpStream::connect(server) else {
                return;
            };
            let (mut c2, mut u2) = (
                client.try_clone().expect("clone"),
                upstream.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = u2.read(&mut buf) {
                    if n == 0 || c2.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
            let armed = a.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = client.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let commit = buf[..n].windows(7).any(|w| w == b"COMMIT\0")
                        || buf[..n].windows(5).any(|w| w == b"S\0\0\0\x04");
                    if commit && armed.swap(false, Ordering::SeqCst) {
                        // The client's side is cut first, so no answer
                        // can reach it; then the server gets the COMMIT.
                        let _ = client.shutdown(std::net::Shutdown::Both);
                        let _ = upstream.write_all(&buf[..n]);
                        std::thread::sleep(std::time::Duration::from_millis(300));
                        let _ = upstream.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                    if upstream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, armed, taken)
}

#[test]
fn a_commit_whose_answer_is_lost_is_looked_up_not_written_twice() {
    let Some(url) = fresh_db() else { return };
    let dir = tempfile::tempdir().expect("dir");
    Pg::connect(&url).expect("connects").init().expect("init");
    // postgres://postgres@127.0.0.1:PORT/DB → the server's address.
    let hostport = url
        .split('@')
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("host:port");
    let server: std::net::SocketAddr = hostport.parse().expect("an address");
    let (proxy, armed, taken) = commit_cutter(server);
    let through = url.replacen(hostport, &proxy.to_string(), 1);
    let mut pg = Pg::connect(&through).expect("connects through the proxy");
    pg.append(&opsgate::audit::Sealer::Sha256, &[marker(0, 1)])
        .expect("a first append");
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let done = pg
        .append(
            &opsgate::audit::Sealer::Sha256,
            &[marker(0, 2), marker(0, 3)],
        )
        .expect("the append is acknowledged after the lookup");
    assert_eq!(done.len(), 2);
    assert!(
        !armed.load(std::sync::atomic::Ordering::SeqCst),
        "the proxy cut a COMMIT"
    );
    assert!(
        taken.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the client connected again"
    );
    pg.append(&opsgate::audit::Sealer::Sha256, &[marker(0, 4)])
        .expect("appends go on");
    let seen = exported_markers(&url, dir.path());
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        ["w0-n1", "w0-n2", "w0-n3", "w0-n4"]
    );
    assert!(seen.values().all(|n| *n == 1), "nothing twice: {seen:?}");
}

#[test]
fn one_process_s_threads_share_commits_and_each_returns_when_durable() {
    let Some(url) = fresh_db() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let mut pg = Pg::connect(&url).expect("connects");
    pg.init().expect("init");
    let log = opsgate::store::pg::PgLog::new(pg, opsgate::audit::Sealer::Sha256);
    let (threads, each) = (16, 30);
    std::thread::scope(|s| {
        for w in 0..threads {
            let log = &log;
            s.spawn(move || {
                for n in 0..each {
                    let done = log
                        .append_all(vec![marker(w, 2 * n), marker(w, 2 * n + 1)])
                        .expect("append");
                    assert_eq!(done.len(), 2);
                    assert_eq!(done[1].0, done[0].0 + 1, "a batch stays together");
                }
            });
        }
    });
    let seen = exported_markers(&url, dir.path());
    assert_eq!(seen.len(), threads * each * 2);
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    let commits = log.commits();
    assert!(
        commits < (threads * each) as u64,
        "{commits} commits for {} appends: gathered",
        threads * each
    );
}

#[test]
fn a_store_that_went_back_or_forked_is_refused_until_accepted() {
    let Some(url) = fresh_db() else { return };
    let env = Env::new(None);
    // The opsgate state directory the CLI uses for this log.
    let state = env.p("state/opsgate");
    let sealer = opsgate::audit::Sealer::Sha256;
    {
        let mut pg = Pg::connect(&url).expect("connects");
        pg.init().expect("init");
        let mut pg = pg.with_mark(&state).expect("mark");
        for n in 0..10 {
            pg.append(&sealer, &[marker(0, n)]).expect("append");
        }
    }
    // A snapshot at seq 10 (a backup), then five more records seen here.
    let snapshot = format!("{}_snap", url.rsplit('/').next().expect("db name"));
    let admin = pg_url().expect("admin URL");
    Pg::connect(&admin)
        .expect("admin")
        .execute_raw(&format!(
            "CREATE DATABASE {snapshot} TEMPLATE {}",
            url.rsplit('/').next().expect("db")
        ))
        .expect("snapshot");
    let snap_url = format!("{}/{snapshot}", url.rsplit_once('/').expect("/").0);
    {
        let mut pg = Pg::connect(&url)
            .expect("connects")
            .with_mark(&state)
            .expect("mark");
        for n in 10..15 {
            pg.append(&sealer, &[marker(0, n)]).expect("append");
        }
    }
    // The "failover" to the snapshot: behind this host's mark.
    let (code, _, err) = store(&env, &snap_url, &["store", "status"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("ends at seq 10") && err.contains("seq 15"),
        "{err}"
    );
    let mut behind = Pg::connect(&snap_url)
        .expect("connects")
        .with_mark(&state)
        .expect("mark");
    let refused = behind
        .append(&sealer, &[marker(1, 0)])
        .expect_err("refused");
    assert!(
        refused
            .to_string()
            .contains("acknowledged records are missing"),
        "{refused}"
    );
    // Another host (no mark) writes five other records there: a fork.
    {
        let mut other = Pg::connect(&snap_url).expect("connects");
        for n in 0..5 {
            other.append(&sealer, &[marker(2, n)]).expect("append");
        }
    }
    let (code, out, err) = store(&env, &snap_url, &["store", "status", "--json"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(json(&out)["mark"]["state"], "forked", "{out}");
    // The operator accepts it: recorded, and writes go on.
    let out = store_ok(
        &env,
        &snap_url,
        &[
            "store",
            "status",
            "--accept",
            "--reason",
            "failed over to the replica",
            "--json",
        ],
    );
    assert_eq!(json(&out)["mark"]["state"], "ok", "{out}");
    let mut after = Pg::connect(&snap_url)
        .expect("connects")
        .with_mark(&state)
        .expect("mark");
    after
        .append(&sealer, &[marker(1, 1)])
        .expect("accepted: appends go on");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("x.jsonl");
    Pg::connect(&snap_url)
        .expect("connects")
        .export(&mut std::fs::File::create(&file).expect("file"))
        .expect("export");
    let text = std::fs::read_to_string(&file).expect("export");
    assert!(
        text.contains("\"type\":\"truncation_acknowledged\""),
        "recorded"
    );
    assert!(text.contains("failed over to the replica"));
}

#[test]
fn one_live_run_per_plan_across_hosts_held_by_a_renewed_lease() {
    let Some(url) = fresh_db() else { return };
    Pg::connect(&url).expect("connects").init().expect("init");
    let ttl = std::time::Duration::from_millis(1500);
    // Eight "hosts" race for the same plan: exactly one takes it.
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|h| {
                let url = &url;
                s.spawn(move || {
                    Pg::connect(url).expect("connects").take_lease(
                        "drain",
                        &format!("r-host{h}"),
                        &format!("host{h}:1"),
                        ttl,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("joins"))
            .collect()
    });
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    let lease = won[0].clone();
    for lost in results.iter().filter_map(|r| r.as_ref().err()) {
        let m = lost.to_string();
        assert!(
            m.contains("running on another host") && m.contains(&lease.holder),
            "{m}"
        );
    }
    // Renewed, it holds past its first term.
    let holder = Pg::connect(&url).expect("connects");
    std::thread::sleep(std::time::Duration::from_millis(800));
    let lease = holder.renew_lease(&lease, ttl).expect("renewed");
    std::thread::sleep(std::time::Duration::from_millis(800));
    let other = Pg::connect(&url).expect("connects");
    assert!(
        other.take_lease("drain", "r-late", "late:2", ttl).is_err(),
        "still held"
    );
    assert!(
        other
            .lease_of("drain")
            .expect("read")
            .expect("a lease")
            .live
    );
    // The holder stops renewing (killed): the lease lapses, the run shows
    // as interrupted, another host may take it, and the old holder's
    // renewal is refused.
    std::thread::sleep(std::time::Duration::from_millis(1600));
    let lapsed = other.lease_of("drain").expect("read").expect("a lease");
    assert!(!lapsed.live, "{lapsed:?}");
    let taken = other
        .take_lease("drain", "r-late", "late:2", ttl)
        .expect("a lapsed lease is taken over");
    assert_eq!(taken.holder, "late:2");
    let refused = holder.renew_lease(&lease, ttl).expect_err("lapsed");
    assert!(refused.to_string().contains("lapsed"), "{refused}");
    other.release_lease(&taken).expect("released");
    assert_eq!(other.lease_of("drain").expect("read"), None);
}

#[test]
fn a_follower_hears_records_committed_by_another_connection() {
    let Some(url) = fresh_db() else { return };
    Pg::connect(&url).expect("connects").init().expect("init");
    let mut follower = opsgate::store::pg::Follower::new(&url, 0).expect("follows");
    let sealer = opsgate::audit::Sealer::Sha256;
    let mut seen = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut pg = Pg::connect(&url).expect("connects");
            for n in 0..3 {
                std::thread::sleep(std::time::Duration::from_millis(150));
                pg.append(&sealer, &[marker(5, n)]).expect("append");
            }
        });
        // A long wait: only a notification ends it early.
        while seen.len() < 3 {
            let got = follower
                .next(std::time::Duration::from_secs(60))
                .expect("next");
            seen.extend(got);
        }
    });
    assert_eq!(
        seen.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        [1, 2, 3],
        "in order, each once"
    );
    assert!(
        follower.woken >= 1,
        "woken by LISTEN/NOTIFY, not by the wait"
    );
    let line = String::from_utf8(seen[2].1.clone()).expect("text");
    assert!(line.contains("w5-n2"), "{line}");
}

#[test]
fn a_password_comes_from_the_password_file() {
    let Some(admin) = pg_url() else { return };
    let env = Env::new(None);
    let role = unique("pw").replace('-', "_");
    let pg = Pg::connect(&admin).expect("admin");
    pg.execute_raw(&format!("CREATE ROLE {role} LOGIN PASSWORD 'p4ss:word'"))
        .expect("role");
    // This role (only) must give a password: a line before the server's
    // `trust` lines.
    let hba_line = format!("host all {role} 127.0.0.1/32 scram-sha-256\n");
    let hba = {
        let out = std::process::Command::new("psql")
            .args(["-X", "-At", &admin, "-c", "SHOW hba_file"])
            .output()
            .expect("psql runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let old = std::fs::read_to_string(&hba).expect("hba");
    std::fs::write(&hba, format!("{hba_line}{old}")).expect("hba written");
    pg.execute_raw("SELECT pg_reload_conf()").expect("reload");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let hostport = admin
        .split('@')
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("host:port");
    // A database of its own, where no test made a schema.
    let db = fresh_db().expect("a database");
    let db = db.rsplit('/').next().expect("its name");
    let url = format!("postgres://{role}@{hostport}/{db}");
    // No password anywhere: refused by the server.
    let (code, _, err) = store(&env, &url, &["store", "status"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("password"), "{err}");
    // From the password file (its `:` escaped): connected (and told the
    // database has no schema).
    let file = env.p("pgpass");
    let port = hostport.rsplit(':').next().expect("port");
    std::fs::write(&file, format!("127.0.0.1:{port}:{db}:{role}:p4ss\\:word\n")).expect("pgpass");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let out = common::opsgate_command(&env.log, None)
        .env("PGPASSFILE", &file)
        .args(["store", "status", "--store", &url])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("store init"), "connected: {err}");
    assert!(
        !err.contains("p4ss"),
        "the password is never printed: {err}"
    );
    // Restore the server's rules for the other tests.
    std::fs::write(&hba, old).expect("hba restored");
    pg.execute_raw("SELECT pg_reload_conf()").expect("reload");
}

/// TLS: `sslmode=verify-full` checks the server's certificate against the
/// CA file and its name against the host. The test server's certificate
/// names `localhost` only: reached as localhost the connection is
/// encrypted; as 127.0.0.1, or with another CA, it is refused. The half
/// measures (`require`) are refused before connecting.
#[test]
fn tls_verify_full_checks_the_servers_certificate_and_name() {
    if pg_url().is_none() {
        return;
    }
    let server = PgServer::start();
    let env = Env::new(None);
    let ca = server.ca();
    let port = server
        .url
        .rsplit(':')
        .next()
        .and_then(|r| r.split('/').next())
        .expect("port")
        .to_owned();
    let at =
        |host: &str, query: &str| format!("postgres://postgres@{host}:{port}/postgres?{query}");
    let verify_with =
        |ca: &std::path::Path| format!("sslmode=verify-full&sslrootcert={}", path(ca));
    let verified = at("localhost", &verify_with(&ca));
    store_ok(&env, &verified, &["store", "init"]);
    let s = json(&store_ok(&env, &verified, &["store", "status", "--json"]));
    assert_eq!(s["tls"], true, "encrypted: {s}");
    let plain = json(&store_ok(
        &env,
        &at("localhost", "sslmode=disable"),
        &["store", "status", "--json"],
    ));
    assert_eq!(plain["tls"], false, "{plain}");
    // A connection refused before anything is read, for `why`.
    let refused = |url: &str, why: &str| {
        let (code, _, err) = store(&env, url, &["store", "status"]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(why), "{err}");
    };
    // The certificate does not name 127.0.0.1.
    refused(&at("127.0.0.1", &verify_with(&ca)), "certificate");
    // Another CA does not vouch for the server.
    let other = env.p("other-ca.crt");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=someone else"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .arg("-keyout")
        .arg(env.p("other-ca.key"))
        .arg("-out")
        .arg(&other)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{made:?}");
    refused(&at("localhost", &verify_with(&other)), "certificate");
    refused(&at("localhost", "sslmode=require"), "verify-full");
}

/// The attack a replica's rebuild could hide: the store forks under a live
/// connection (a failover behind a proxy), after that connection's one
/// check against this host's mark. Simulated from the host's side: its
/// mark says it saw another record at seq 3 than the store holds, and
/// another writer appends. Catching up must refuse the store as diverged,
/// for reading and for writing, and leave the replica and the mark as they
/// were, instead of taking the new records and raising the mark onto the
/// fork.
#[test]
fn a_store_that_forks_under_a_live_connection_is_refused_not_followed() {
    use opsgate::audit::mark::HighWater;
    use opsgate::audit::verify::Head;
    use opsgate::audit::{AuditError, AuditLog, Sealer};
    let Some(url) = fresh_db() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let state = dir.path().join("state");
    let mut pg = Pg::connect(&url).expect("connects");
    pg.init().expect("init");
    let pg = pg.with_mark(&state).expect("the mark");
    let chain = pg.status().expect("status").chain_id;
    let replica = dir.path().join("replica.jsonl");
    let log = AuditLog::open_store(&replica, &url, pg, Sealer::Sha256, Default::default())
        .expect("the log");
    for n in 0..3 {
        log.append(marker(0, n)).expect("appended");
    }
    log.refresh().expect("the store agrees");
    let before = std::fs::read(&replica).expect("replica");
    let forked = Head {
        seq: 3,
        hash: format!("sha256:{}", "f".repeat(64)),
    };
    let mark = HighWater::for_store(&state, &chain);
    mark.reset(Some(&forked)).expect("the mark rewritten");
    Pg::connect(&url)
        .expect("another writer")
        .append(&Sealer::Sha256, &[marker(1, 0)])
        .expect("appended elsewhere");
    let read = log.refresh().expect_err("a forked store is not followed");
    assert!(matches!(read, AuditError::Diverged(_)), "{read}");
    let write = log.append(marker(0, 3)).expect_err("nor written to");
    assert!(matches!(write, AuditError::Diverged(_)), "{write}");
    assert_eq!(
        std::fs::read(&replica).expect("replica"),
        before,
        "the replica is as it was"
    );
    assert_eq!(
        mark.get().expect("mark"),
        Some(forked),
        "the mark is as it was"
    );
}

/// The records of the test markers in `bytes` (a replica up to a length).
fn markers_in(bytes: &[u8]) -> usize {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| l.windows(22).any(|w| w == b"\"attempt\":\"store-test\""))
        .count()
}

/// The store at `url` initialised, and an `AuditLog` on it whose replica
/// is in `dir`: the replica's path and the log.
fn log_on_store(url: &str, dir: &Path) -> (std::path::PathBuf, opsgate::audit::AuditLog) {
    Pg::connect(url).expect("connects").init().expect("init");
    let replica = dir.join("replica.jsonl");
    let log = opsgate::audit::AuditLog::open_store(
        &replica,
        url,
        Pg::connect(url).expect("connects"),
        opsgate::audit::Sealer::Sha256,
        Default::default(),
    )
    .expect("the log");
    (replica, log)
}

/// Writers of one process share store transactions (a group commit of
/// decisions), and each still decides on everything recorded before it:
/// every decision here is "one more than the markers I can see", so a
/// writer that decided on the replica without the records of the writers
/// before it in its batch would repeat a number.
#[test]
fn writers_of_one_process_decide_in_turn_and_share_commits() {
    use opsgate::audit::AuditError;
    let Some(url) = fresh_db() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let db = url.rsplit('/').next().expect("a database name");
    Pg::connect(&url)
        .expect("connects")
        .execute_raw(&format!("ALTER DATABASE {db} SET track_functions = 'pl'"))
        .expect("tracks functions");
    let (replica, log) = log_on_store(&url, dir.path());
    let (threads, each) = (16, 10);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..each {
                    let done = log
                        .append_with(|len| {
                            let bytes = std::fs::read(&replica).map_err(|e| AuditError::Io {
                                path: replica.clone(),
                                source: e,
                            })?;
                            let seen = markers_in(&bytes[..usize::try_from(len).expect("len")]);
                            Ok::<_, AuditError>(vec![marker(0, seen + 1)])
                        })
                        .expect("appended");
                    assert_eq!(done.len(), 1);
                }
            });
        }
    });
    let seen = exported_markers(&url, dir.path());
    let expected: Vec<String> = {
        let mut v: Vec<String> = (1..=threads * each).map(|n| format!("w0-n{n}")).collect();
        v.sort();
        v
    };
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        expected,
        "each decision saw every one before it"
    );
    assert!(seen.values().all(|n| *n == 1), "no number twice: {seen:?}");
    drop(log);
    let calls = function_calls(&url);
    let transactions = calls.get("opsgate_append").copied().unwrap_or(0);
    assert!(
        transactions > 0 && transactions < (threads * each) as i64,
        "{transactions} transactions for {} decisions: they share commits",
        threads * each
    );
}

/// A writer whose turn fails (here its decision panics) fails its whole
/// batch: the writers before it in the batch get an error, and none of
/// the batch's records is in the store or left in the replica.
#[test]
fn a_writer_that_fails_its_turn_fails_its_batch_and_nothing_of_it_is_anywhere() {
    use opsgate::audit::AuditError;
    let Some(url) = fresh_db() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let (replica, log) = log_on_store(&url, dir.path());
    log.append(marker(0, 0)).expect("a first record");
    let before = std::fs::read_to_string(&replica).expect("replica");
    let (a_in, a_is_in) = std::sync::mpsc::channel::<()>();
    let (b_go, b_goes) = std::sync::mpsc::channel::<()>();
    let log = &log;
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(move || {
            log.append_with(move |_| {
                a_in.send(()).expect("signal");
                b_goes.recv().expect("the second writer comes");
                // The second writer is now waiting for the log: this turn
                // leaves the batch open for it.
                std::thread::sleep(std::time::Duration::from_millis(500));
                Ok::<_, AuditError>(vec![marker(1, 0)])
            })
        });
        let second = s.spawn(move || {
            a_is_in.recv().expect("the first writer decides");
            b_go.send(()).expect("signal");
            log.append_with(
                |_| -> Result<Vec<opsgate::core::event::Event>, AuditError> {
                    panic!("a writer's bug")
                },
            )
        });
        (first.join().expect("no panic"), second.join())
    });
    assert!(second.is_err(), "the second writer's panic goes on");
    let err = first.expect_err("the first writer's batch failed");
    assert!(err.to_string().contains("panicked"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&replica).expect("replica"),
        before,
        "the batch was cut from the replica"
    );
    let status = Pg::connect(&url)
        .expect("connects")
        .status()
        .expect("status");
    assert_eq!(status.head_seq, 1, "and is not in the store");
    log.append(marker(2, 0)).expect("appends go on");
    let seen = exported_markers(&url, dir.path());
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), ["w0-n0", "w2-n0"]);
}

/// A writer whose decision writes nothing, but was made on records of
/// writers before it in its batch, must not return before those records
/// are committed: a check that passed on an approval whose batch then
/// failed would let its caller act on a state that never was. Writer A
/// writes a marker, B checks for it and writes nothing, C's decision
/// panics and fails the batch: B, having seen A's marker, gets the error.
/// (Which of B and C goes first is the scheduler's choice: tried until B
/// goes first.)
#[test]
fn a_writer_that_decided_on_a_failed_batch_gets_its_error_even_with_nothing_to_write() {
    use opsgate::audit::AuditError;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::channel;
    let Some(url) = fresh_db() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let (replica, log) = log_on_store(&url, dir.path());
    let (log, replica) = (&log, &replica);
    for attempt in 0..30 {
        let (to_b, b_hears) = channel::<()>();
        let (to_c, c_hears) = channel::<()>();
        let (b_ready, b_is_ready) = channel::<()>();
        let (c_ready, c_is_ready) = channel::<()>();
        let saw = AtomicBool::new(false);
        let saw = &saw;
        let (first, second) = std::thread::scope(|s| {
            let first = s.spawn(move || {
                log.append_with(move |_| {
                    to_b.send(()).expect("signal");
                    to_c.send(()).expect("signal");
                    b_is_ready.recv().expect("B comes");
                    c_is_ready.recv().expect("C comes");
                    // B and C now wait for the log: the batch stays open.
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    Ok::<_, AuditError>(vec![marker(1, attempt)])
                })
            });
            let second = s.spawn(move || {
                b_hears.recv().expect("A decides");
                b_ready.send(()).expect("signal");
                log.append_with(|len| {
                    let bytes = std::fs::read(replica).expect("replica");
                    let mine = format!("\"reason\":\"w1-n{attempt}\"");
                    let upto = &bytes[..usize::try_from(len).expect("len")];
                    saw.store(
                        upto.windows(mine.len()).any(|w| w == mine.as_bytes()),
                        Ordering::SeqCst,
                    );
                    Ok::<_, AuditError>(Vec::new())
                })
            });
            let third = s.spawn(move || {
                c_hears.recv().expect("A decides");
                c_ready.send(()).expect("signal");
                log.append_with(
                    |_| -> Result<Vec<opsgate::core::event::Event>, AuditError> {
                        panic!("a writer's bug")
                    },
                )
            });
            assert!(third.join().is_err(), "C's panic goes on");
            (
                first.join().expect("no panic"),
                second.join().expect("no panic"),
            )
        });
        assert!(first.is_err(), "A's batch failed");
        if saw.load(Ordering::SeqCst) {
            let err = second.expect_err("B decided on A's marker, which was never committed");
            assert!(err.to_string().contains("panicked"), "{err}");
            return;
        }
    }
    panic!("B never took its turn between A and C in 30 tries");
}
