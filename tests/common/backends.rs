//! Where the backend tests find their real servers: the variables
//! `scripts/test-env.sh up` writes to its env file. A test whose server is
//! not there skips, loudly; with `OPSGATE_REQUIRE_BACKENDS` set (as `.ci/run`
//! sets it) it fails instead.

use std::path::PathBuf;

fn server(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ if std::env::var_os("OPSGATE_REQUIRE_BACKENDS").is_some() => panic!(
            "{var} is not set, and OPSGATE_REQUIRE_BACKENDS is: the {what} test server did not start (scripts/test-env.sh up)"
        ),
        _ => {
            eprintln!(
                "SKIPPED: {var} is not set: no {what} test server (start one with `scripts/test-env.sh up` and source its env file)"
            );
            None
        }
    }
}

/// `unix://…/docker.sock` of the test dockerd.
pub fn docker_host() -> Option<String> {
    server("OPSGATE_TEST_DOCKER_HOST", "Docker")
}

/// `http://127.0.0.1:PORT` of the test moto server.
pub fn ec2_endpoint() -> Option<String> {
    server("OPSGATE_TEST_EC2_ENDPOINT", "EC2 (moto)")
}

/// The kubeconfig of the test kube-apiserver.
pub fn kubeconfig() -> Option<PathBuf> {
    server("OPSGATE_TEST_KUBECONFIG", "Kubernetes").map(PathBuf::from)
}

/// `postgres://postgres@127.0.0.1:PORT/postgres` of the test PostgreSQL
/// (a superuser: each test creates its own database).
pub fn pg_url() -> Option<String> {
    server("OPSGATE_TEST_PG_URL", "PostgreSQL")
}

/// A database of its own for one test, on the shared test server; its URL.
pub fn fresh_db() -> Option<String> {
    let admin = pg_url()?;
    let name = unique("og").replace('-', "_");
    let pg = opsgate::store::pg::Pg::connect(&admin).expect("the test server takes connections");
    pg.execute_raw(&format!("CREATE DATABASE {name}"))
        .expect("CREATE DATABASE");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some(format!("{base}/{name}"))
}

/// A PostgreSQL server of a test's own (`scripts/test-env-pg.sh`), for
/// tests that crash or stop it; stopped when dropped, pass or fail.
pub struct PgServer {
    /// A directory of the test's, the server's data inside it.
    pub dir: std::path::PathBuf,
    server: std::path::PathBuf,
    _tmp: tempfile::TempDir,
    pub url: String,
}

impl PgServer {
    pub fn start() -> PgServer {
        let tmp = tempfile::tempdir().expect("dir");
        let server = tmp.path().join("pg");
        let up = std::process::Command::new(Self::script())
            .arg("up")
            .arg(&server)
            .output()
            .expect("test-env-pg.sh runs");
        assert!(up.status.success(), "{up:?}");
        let url = String::from_utf8_lossy(&up.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("DATABASE_URL=").map(str::to_owned))
            .expect("a URL");
        PgServer {
            dir: tmp.path().to_owned(),
            server,
            _tmp: tmp,
            url,
        }
    }

    /// The CA that signed the server's certificate (for the name
    /// `localhost` only).
    pub fn ca(&self) -> std::path::PathBuf {
        self.server.join("ca.crt")
    }

    fn script() -> std::path::PathBuf {
        super::repo().join("scripts/test-env-pg.sh")
    }

    /// `test-env-pg.sh ACTION` on this server: `crash` (`pg_ctl -m
    /// immediate stop`), `start`.
    pub fn control(&self, action: &str) {
        let out = std::process::Command::new(Self::script())
            .arg(action)
            .arg(&self.server)
            .output()
            .expect("test-env-pg.sh runs");
        assert!(out.status.success(), "{action}: {out:?}");
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new(Self::script())
            .arg("down")
            .arg(&self.server)
            .output();
    }
}

/// The image the Docker tests run: busybox, imported by
/// `scripts/test-env-docker.sh` (there is no registry to pull from).
pub const TEST_IMAGE: &str = "opsgate-test/busybox:latest";

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The binary against one audit log, with the variables that point it at
/// the test servers.
pub struct Cli {
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    pub policy: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

/// How long one `opsgate` command may take.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

impl Cli {
    pub fn new(policy: Option<&str>, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("audit.jsonl");
        let policy = policy.map(|text| {
            let p = dir.path().join("policy.yaml");
            std::fs::write(&p, text).expect("policy written");
            p
        });
        Cli {
            dir,
            log,
            policy,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// Writes a file in the temp dir; returns its path as text.
    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("file written");
        p.display().to_string()
    }

    /// Runs `opsgate ARGS`; exit code, stdout, stderr.
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = super::opsgate_command(&self.log, self.policy.as_deref());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.args(super::with_reviewed_hash(&self.log, args))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("opsgate starts");
        let started = std::time::Instant::now();
        loop {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!("opsgate {args:?} took over {DEADLINE:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("output");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "opsgate {args:?} failed:\n{out}\n{err}");
        out
    }

    /// Submits a plan file with `--param`s and approves it as `alice`;
    /// returns the plan id.
    #[track_caller]
    pub fn submit_and_approve(&self, plan: &str, params: &[&str]) -> String {
        let mut args = vec!["submit", "--json", plan];
        for p in params {
            args.push("--param");
            args.push(p);
        }
        let out = self.ok(&args);
        let v: serde_json::Value = serde_json::from_str(&out).expect("submit --json");
        let id = v["plan_id"].as_str().expect("plan_id").to_owned();
        self.ok(&["approve", &id, "--as", "alice"]);
        id
    }

    /// The audit log's records of one type.
    pub fn of_type(&self, kind: &str) -> Vec<serde_json::Value> {
        self.records()
            .into_iter()
            .filter(|r| r["type"] == kind)
            .collect()
    }

    /// Every record of the audit log.
    pub fn records(&self) -> Vec<serde_json::Value> {
        if !self.log.exists() {
            return Vec::new();
        }
        super::log_records(&self.log)
    }
}

/// A current-thread runtime for a test's own calls to a server.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
