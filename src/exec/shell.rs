//! Running one command line: `/bin/sh -c` in its own process group, with a
//! timeout, a kill switch, bounded output capture and live output lines.
//!
//! On timeout or kill the whole group gets SIGTERM, then SIGKILL after the
//! grace period, so grandchildren (`sleep 100 &`) die too. A command that
//! exits by itself may leave a daemon behind on purpose (`worker &`); its
//! output is then read for at most [`DRAIN`] more, so a daemon holding the
//! pipes open cannot hang the step.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use super::Stop;
use super::reaper::{Leftovers, STEP_MARKER};
use crate::core::event::Status;

/// How long output is still read after the shell exits.
pub const DRAIN: Duration = Duration::from_millis(500);

/// How much output is kept: the last 64 KiB.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub command: &'a str,
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Let processes the command started in the background live on when it
    /// exits by itself and succeeds (a plan's `keep_background: true`).
    pub keep_background: bool,
    /// The whole environment the command gets (`core::environment`):
    /// nothing of the engine's own is inherited.
    pub env: &'a std::collections::BTreeMap<String, String>,
}

/// A line of output, as it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub stderr: bool,
    pub text: String,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `succeeded` (exit 0), `failed` (another exit code or a signal),
    /// `timed_out`, or `killed` (by a stop request).
    pub status: Status,
    pub exit_code: Option<i32>,
    /// The last 64 KiB of stdout and stderr, interleaved as they arrived.
    pub output: String,
    /// The last 64 KiB of stdout alone (for `expect.stdout_contains`).
    pub stdout: String,
    pub duration: Duration,
}

/// Keeps the last `OUTPUT_LIMIT` bytes of a stream of lines.
#[derive(Debug, Default)]
struct Tail {
    text: String,
    dropped: bool,
}

impl Tail {
    fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        if self.text.len() > OUTPUT_LIMIT {
            let mut cut = self.text.len() - OUTPUT_LIMIT;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.text.drain(..cut);
            self.dropped = true;
        }
    }

    fn finish(self) -> String {
        if self.dropped {
            format!("[… earlier output dropped …]\n{}", self.text)
        } else {
            self.text
        }
    }
}

/// Runs `spec`. Lines go to `lines` as they arrive; a stop request of
/// [`Stop::Kill`] kills the command.
pub async fn run(
    spec: &Spec<'_>,
    lines: Option<&mpsc::UnboundedSender<OutputLine>>,
    mut stop: watch::Receiver<Stop>,
) -> std::io::Result<Outcome> {
    let started = Instant::now();
    let mut leftovers = Leftovers::before_step();
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(spec.command)
        .env_clear()
        .envs(spec.env)
        .env(STEP_MARKER, leftovers.token())
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    leftovers.started(child.id());
    let group = child.id().and_then(|id| Pid::from_raw(id as i32));
    let (tx, mut rx) = mpsc::unbounded_channel::<OutputLine>();
    let readers = [
        child.stdout.take().map(|s| forward(s, false, tx.clone())),
        child.stderr.take().map(|s| forward(s, true, tx.clone())),
    ];
    drop(tx);
    let mut readers: Vec<_> = readers.into_iter().flatten().collect();

    let mut output = Tail::default();
    let mut stdout = Tail::default();
    let mut take = |line: OutputLine| {
        output.push(&line.text);
        if !line.stderr {
            stdout.push(&line.text);
        }
        if let Some(l) = lines {
            let _ = l.send(line);
        }
    };

    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    let mut ended_by: Option<Status> = None;
    let mut open = true;
    let mut stop_gone = false;
    if *stop.borrow() == Stop::Kill {
        ended_by = Some(Status::Killed);
        terminate(group, &mut child, spec.grace).await;
    }
    let exit = loop {
        tokio::select! {
            status = child.wait() => break status?,
            line = rx.recv(), if open => match line {
                Some(line) => take(line),
                None => open = false,
            },
            () = &mut deadline, if ended_by.is_none() => {
                ended_by = Some(Status::TimedOut);
                terminate(group, &mut child, spec.grace).await;
            }
            changed = stop.changed(), if ended_by.is_none() && !stop_gone => {
                if changed.is_err() {
                    stop_gone = true;
                } else if *stop.borrow() == Stop::Kill {
                    ended_by = Some(Status::Killed);
                    terminate(group, &mut child, spec.grace).await;
                }
            }
        }
    };
    // Nothing the command started may stay behind (in its group or
    // escaped from it), unless the plan lets it keep background processes
    // and it ended by itself, successfully.
    if !(spec.keep_background && ended_by.is_none() && exit.success()) {
        leftovers.kill(group);
    }
    let drain = async {
        for r in &mut readers {
            let _ = r.await;
        }
    };
    if tokio::time::timeout(DRAIN, drain).await.is_err() {
        // A background process still holds the pipes: stop reading.
        readers.iter().for_each(tokio::task::JoinHandle::abort);
    }
    while let Ok(line) = rx.try_recv() {
        take(line);
    }
    let exit_code = exit.code();
    let status = match ended_by {
        Some(s) => s,
        None if exit.success() => Status::Succeeded,
        None => Status::Failed,
    };
    Ok(Outcome {
        status,
        exit_code,
        output: output.finish(),
        stdout: stdout.finish(),
        duration: started.elapsed(),
    })
}

/// SIGTERM to the group; SIGKILL after `grace` if the shell still runs.
async fn terminate(group: Option<Pid>, child: &mut tokio::process::Child, grace: Duration) {
    let Some(pid) = group else {
        let _ = child.start_kill();
        return;
    };
    let _ = kill_process_group(pid, Signal::TERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

fn forward(
    stream: impl AsyncRead + Unpin + Send + 'static,
    stderr: bool,
    tx: mpsc::UnboundedSender<OutputLine>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                    }
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if tx.send(OutputLine { stderr, text }).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> &'static std::collections::BTreeMap<String, String> {
        static ENV: std::sync::LazyLock<std::collections::BTreeMap<String, String>> =
            std::sync::LazyLock::new(|| {
                std::collections::BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())])
            });
        &ENV
    }

    fn spec(command: &str, timeout_ms: u64) -> Spec<'_> {
        Spec {
            command,
            timeout: Duration::from_millis(timeout_ms),
            grace: Duration::from_millis(300),
            keep_background: false,
            env: env(),
        }
    }

    #[test]
    fn the_command_sees_only_the_environment_it_is_given() {
        let (_tx, rx) = watch::channel(Stop::Run);
        let o = rt()
            .block_on(run(
                &spec("env | cut -d= -f1 | sort | tr '\\n' ' '", 5000),
                None,
                rx,
            ))
            .unwrap();
        assert_eq!(o.stdout.trim(), "OPSGATE_STEP PATH PWD", "{o:?}");
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn exit_codes_and_output_are_reported() {
        let (_tx, rx) = watch::channel(Stop::Run);
        let o = rt()
            .block_on(run(&spec("echo out; echo err >&2; exit 3", 5000), None, rx))
            .unwrap();
        assert_eq!(o.status, Status::Failed);
        assert_eq!(o.exit_code, Some(3));
        assert!(
            o.output.contains("out\n") && o.output.contains("err\n"),
            "{o:?}"
        );
        assert_eq!(o.stdout, "out\n");
    }

    #[test]
    fn output_is_bounded_to_its_tail() {
        let (_tx, rx) = watch::channel(Stop::Run);
        let o = rt()
            .block_on(run(&spec("seq 1 40000; echo last", 20000), None, rx))
            .unwrap();
        assert_eq!(o.status, Status::Succeeded);
        assert!(o.output.len() <= OUTPUT_LIMIT + 64, "{}", o.output.len());
        assert!(o.output.starts_with("[… earlier output dropped …]"));
        assert!(o.output.ends_with("40000\nlast\n"));
    }

    #[test]
    fn a_timeout_kills_the_group() {
        let (_tx, rx) = watch::channel(Stop::Run);
        let o = rt()
            .block_on(run(&spec("sleep 30 & sleep 30; echo never", 300), None, rx))
            .unwrap();
        assert_eq!(o.status, Status::TimedOut);
        assert!(o.duration < Duration::from_secs(10), "{:?}", o.duration);
        assert!(!o.output.contains("never"));
    }

    #[test]
    fn a_kept_daemon_neither_hangs_the_step_nor_dies() {
        let (_tx, rx) = watch::channel(Stop::Run);
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let cmd = format!("sleep 30 & echo $! > {}; echo started", pid_file.display());
        let keep = Spec {
            keep_background: true,
            ..spec(&cmd, 20000)
        };
        let o = rt().block_on(run(&keep, None, rx)).unwrap();
        assert_eq!(o.status, Status::Succeeded);
        assert!(o.duration < Duration::from_secs(5), "{:?}", o.duration);
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if let Some(p) = Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(p, Signal::KILL);
        }
        assert!(alive, "the background process was left running");
    }

    #[test]
    fn the_kill_switch_kills() {
        let (tx, rx) = watch::channel(Stop::Run);
        let o = rt()
            .block_on(async {
                let killer = async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let _ = tx.send(Stop::Kill);
                };
                let s = spec("sleep 30", 60000);
                let (o, ()) = tokio::join!(run(&s, None, rx), killer);
                o
            })
            .unwrap();
        assert_eq!(o.status, Status::Killed);
    }
}
