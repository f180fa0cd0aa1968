//! A temp-dir world for tests that drive the binary: an audit log, an
//! optional policy file, plans, and `opsgate` processes that are killed on
//! every path (`Running` when dropped, `Reaper` for what steps left behind).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any one `opsgate` command may take before the test gives up.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// One audit log in a temp dir, an optional policy file, and the plans.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    pub policy: Option<PathBuf>,
}

impl Env {
    pub fn new(policy: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("audit.jsonl");
        let policy = policy.map(|text| {
            let p = dir.path().join("policy.yaml");
            std::fs::write(&p, text).expect("policy written");
            p
        });
        Env { dir, log, policy }
    }

    /// A path in the temp dir.
    pub fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self) -> Command {
        let mut cmd = super::opsgate_command(&self.log, self.policy.as_deref());
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs to the end; returns exit code, stdout, stderr.
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut running = self.spawn(args);
        running.finish(DEADLINE)
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {out} {err}");
        out
    }

    /// Must be refused (exit 3) with a message containing `why`, writing
    /// nothing to the log.
    #[track_caller]
    pub fn refused(&self, args: &[&str], why: &str) {
        let lines = self.records().len();
        let (code, out, err) = self.run(args);
        assert_eq!(code, 3, "{args:?} should be refused: {out} {err}");
        assert!(err.contains(why), "{args:?}: want {why:?} in {err}");
        super::assert_one_refused_record(&self.records()[lines..], why);
    }

    /// Starts `opsgate ARGS` with its output piped.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let mut child = self
            .command()
            .args(super::with_reviewed_hash(&self.log, args))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("opsgate starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut stderr = child.stderr.take().expect("stderr piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
            err: Some(err),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Writes a plan into the temp dir, with `@D@` replaced by its path.
    pub fn plan(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.p(name);
        std::fs::write(&p, self.subst(yaml)).expect("plan written");
        p
    }

    pub fn subst(&self, text: &str) -> String {
        text.replace("@D@", path(self.dir.path()))
    }

    /// Submits as alice and approves as bob.
    pub fn submit_and_approve(&self, file: &Path, id: &str) {
        self.ok(&["submit", path(file), "--as", "alice"]);
        self.ok(&["approve", id, "--as", "bob"]);
    }

    /// Every record of the log.
    pub fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .map(|text| {
                text.lines()
                    .map(|l| serde_json::from_str(l).expect("a JSON record"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The records of one type (and run, when given).
    pub fn of(&self, kind: &str, run_id: Option<&str>) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["type"] == kind && run_id.is_none_or(|id| r["run_id"] == id))
            .collect()
    }

    /// The one record of a type for a run's step.
    #[track_caller]
    pub fn step_record(&self, kind: &str, run_id: &str, step: u64) -> Value {
        let v: Vec<Value> = self
            .of(kind, Some(run_id))
            .into_iter()
            .filter(|r| r["step"] == step)
            .collect();
        assert_eq!(v.len(), 1, "one {kind} for step {step}: {v:?}");
        v.into_iter().next().expect("one record")
    }

    #[track_caller]
    pub fn status(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["status", id, "--json"])).expect("JSON status")
    }

    /// The plan's status, as `status ID --json` has it.
    #[track_caller]
    pub fn plan_status(&self, id: &str) -> String {
        self.status(id)["status"]
            .as_str()
            .expect("a status")
            .to_owned()
    }

    #[track_caller]
    pub fn verify(&self) {
        let out = self.ok(&["audit", "verify"]);
        assert!(out.contains("chain intact"), "{out}");
    }
}

/// A running `opsgate` process; killed if still running when dropped.
pub struct Running {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    /// The stdout lines read so far.
    pub seen: Vec<String>,
    pub err: Option<JoinHandle<String>>,
    pub args: Vec<String>,
}

impl Running {
    /// Reads stdout until a line contains `want`; returns it.
    #[track_caller]
    pub fn wait_for(&mut self, want: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        if let Some(l) = self.seen.iter().find(|l| l.contains(want)) {
            return l.clone();
        }
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(want) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "{:?}: no line with {want:?} ({e}); stdout so far:\n{}",
                    self.args,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The run id, from the first line `run r-…: plan …`.
    #[track_caller]
    pub fn run_id(&mut self) -> String {
        let line = self.wait_for("run r-", DEADLINE);
        run_id_of(&line)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the exit (killing the process after `within`); returns
    /// exit code, all of stdout, stderr.
    #[track_caller]
    pub fn finish(&mut self, within: Duration) -> (i32, String, String) {
        let end = Instant::now() + within;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{:?} did not finish within {within:?}; stdout:\n{}",
                    self.args,
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends when the pipe closes.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.seen.push(line);
        }
        let err = self
            .err
            .take()
            .map(|h| h.join().expect("stderr reader"))
            .unwrap_or_default();
        let code = status.code().unwrap_or_else(|| {
            panic!("{:?} ended by a signal: {status}\n{err}", self.args);
        });
        let mut out = self.seen.join("\n");
        out.push('\n');
        (code, out, err)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // No-ops when the process was already waited for.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills, when dropped, the processes (and process groups) whose pids are
/// in these files: what a step left behind, on every path of a test.
pub struct Reaper(pub Vec<PathBuf>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for file in &self.0 {
            if let Some(pid) = read_pid(file) {
                kill("-KILL", &format!("-{pid}"));
                kill("-KILL", &pid.to_string());
            }
        }
    }
}

pub fn read_pid(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// The pid in `file` once its writer has written it (`echo $$ > FILE`
/// makes the file before the number is in it), within `within`.
pub fn pid_within(file: &Path, within: Duration) -> Option<u32> {
    let end = Instant::now() + within;
    loop {
        if let Some(pid) = read_pid(file) {
            return Some(pid);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `kill SIGNAL -- TARGET`; whether it was delivered.
pub fn kill(signal: &str, target: &str) -> bool {
    Command::new("kill")
        .args([signal, "--", target])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `pid` is a live process (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `pid (comm) STATE …`: the state follows the last `)`.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Waits up to `within` for `pid` to be gone.
pub fn gone_within(pid: u32, within: Duration) -> bool {
    let end = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Waits up to `within` for a file to exist.
pub fn appears_within(file: &Path, within: Duration) -> bool {
    let end = Instant::now() + within;
    while !file.exists() {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[track_caller]
pub fn run_id_of(line: &str) -> String {
    line.trim_start_matches("dry ")
        .strip_prefix("run ")
        .and_then(|rest| rest.split_once(':'))
        .map(|(id, _)| id.to_owned())
        .unwrap_or_else(|| panic!("not a `run r-…: plan` line: {line}"))
}

/// The run id in the output of a finished `opsgate run`.
#[track_caller]
pub fn run_id_in(out: &str) -> String {
    run_id_of(out.lines().next().expect("a first line"))
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}
