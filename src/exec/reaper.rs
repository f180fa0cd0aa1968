//! Nothing a step starts outlives it, whatever it does to escape.
//!
//! A step runs in its own process group, and a timeout or a kill signals the
//! group. A process that leaves the group (`setsid`, a double fork) used to
//! escape that and outlive the step. So:
//!
//! - the engine process is a child subreaper (`PR_SET_CHILD_SUBREAPER`):
//!   an orphaned descendant is re-parented to the engine, not to init, and
//!   stays in its process tree;
//! - every step's shell carries a marker in its environment
//!   (`OPSGATE_STEP=<token>`), inherited by what it starts;
//! - when the step ends, [`Leftovers::kill`] kills the step's process group
//!   and every process that descends from the step: the descendants of the
//!   engine that were not there when the step started and carry this
//!   step's marker, or carry none and left the engine's session (`setsid`,
//!   a daemon) or stayed in the step's process group. A process the host
//!   started itself (same session, no marker: a test harness's child, say)
//!   is left alone. Orphans the engine adopted are reaped.
//!
//! A step marked `keep_background: true` in the plan (approved like
//! everything in it) may leave processes running when it exits by itself
//! and succeeds; on a timeout, a kill or a failure they die too.
//!
//! Linux only (`/proc`); elsewhere only the process group is killed.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use rustix::process::{Pid, Signal, WaitOptions};

/// The environment variable that marks a step's processes.
pub const STEP_MARKER: &str = "OPSGATE_STEP";

/// Makes this process a child subreaper, once. Failure (an old kernel, a
/// sandbox) is logged: cleanup then finds only what stays in the tree.
pub fn become_subreaper() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
            tracing::warn!(error = %e, "cannot become a child subreaper: a step's escaped processes may outlive it");
        }
    });
}

/// The shells of the steps running in this process, by pid: never treated
/// as leftovers of another step.
fn shells() -> &'static Mutex<HashSet<i32>> {
    static SHELLS: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    SHELLS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// One step's cleanup: what the engine's tree held before the step, and
/// the step's marker.
#[derive(Debug)]
pub struct Leftovers {
    token: String,
    before: HashSet<i32>,
    shell: Option<i32>,
}

impl Leftovers {
    /// Notes the engine's descendants now, before the step's shell starts.
    pub fn before_step() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        become_subreaper();
        let me = rustix::process::getpid().as_raw_nonzero().get();
        let token = format!(
            "{me}-{}-{}",
            N.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        Leftovers {
            token,
            before: descendants(me).into_keys().collect(),
            shell: None,
        }
    }

    /// The marker value to put in the step's environment.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Registers the step's shell, once started.
    pub fn started(&mut self, shell: Option<u32>) {
        self.shell = shell.and_then(|p| i32::try_from(p).ok());
        if let Some(pid) = self.shell {
            shells()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(pid);
        }
    }

    /// Kills every process the step left: its group, and the descendants
    /// of the engine that came with this step. Returns how many it killed.
    pub fn kill(&self, group: Option<Pid>) -> usize {
        if let Some(pid) = group {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
        let me = rustix::process::getpid().as_raw_nonzero().get();
        let mut killed = HashSet::new();
        // A process may fork while its siblings are being killed: look
        // again until nothing is left.
        for _ in 0..20 {
            let table = descendants(me);
            let active = shells().lock().unwrap_or_else(|p| p.into_inner()).clone();
            let own_session = stat(me).map(|p| p.session);
            let group = group.map(|g| g.as_raw_nonzero().get());
            let mine: Vec<i32> = table
                .iter()
                .filter(|(pid, p)| {
                    if self.before.contains(pid) || active.contains(pid) {
                        return false;
                    }
                    match marker(**pid) {
                        Some(t) => t == self.token,
                        None => Some(p.session) != own_session || Some(p.group) == group,
                    }
                })
                .map(|(pid, _)| *pid)
                .collect();
            if mine.is_empty() {
                break;
            }
            for pid in &mine {
                if let Some(p) = Pid::from_raw(*pid) {
                    let _ = rustix::process::kill_process(p, Signal::KILL);
                }
                killed.insert(*pid);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            self.reap(&killed);
        }
        self.reap(&killed);
        killed.len()
    }

    /// Waits for the killed processes the engine adopted (so no zombie
    /// stays), without blocking.
    fn reap(&self, killed: &HashSet<i32>) {
        for pid in killed {
            if let Some(p) = Pid::from_raw(*pid) {
                let _ = rustix::process::waitpid(Some(p), WaitOptions::NOHANG);
            }
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if let Some(pid) = self.shell {
            shells()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&pid);
        }
    }
}

/// A live process as `/proc` shows it.
#[derive(Debug, Clone, Copy)]
struct Proc {
    parent: i32,
    group: i32,
    session: i32,
}

/// What `/proc/PID/stat` says of a live process; `None` for one that is
/// gone or a zombie (already dead).
fn stat(pid: i32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) STATE PPID PGRP SESSION …`: the comm may hold spaces and
    // parens.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let mut num = || fields.next().and_then(|p| p.parse::<i32>().ok());
    let (parent, group, session) = (num()?, num()?, num()?);
    (state != "Z" && state != "X").then_some(Proc {
        parent,
        group,
        session,
    })
}

/// The children of `pid`, from `/proc/PID/task/*/children` (each thread's
/// own); `None` where the kernel does not provide those files.
fn children(pid: i32) -> Option<Vec<i32>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut out = Vec::new();
    let mut supported = false;
    for task in tasks.flatten() {
        match std::fs::read_to_string(task.path().join("children")) {
            Ok(text) => {
                supported = true;
                out.extend(
                    text.split_whitespace()
                        .filter_map(|c| c.parse::<i32>().ok()),
                );
            }
            // A thread that just ended; or no such file on this kernel.
            Err(_) => continue,
        }
    }
    supported.then_some(out)
}

/// The live descendants of `root` (not `root` itself). Walks down from
/// `root` through its children's lists, so the cost follows the size of
/// the engine's own tree; where the kernel has no children lists, every
/// process in `/proc` is read instead. A process forking during the walk
/// may be missed: [`Leftovers::kill`] looks again until nothing is left.
fn descendants(root: i32) -> HashMap<i32, Proc> {
    if children(root).is_none() {
        return descendants_by_scan(root);
    }
    let mut out = HashMap::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for c in children(p).unwrap_or_default() {
            if out.contains_key(&c) {
                continue;
            }
            if let Some(info) = stat(c) {
                out.insert(c, info);
            }
            todo.push(c);
        }
    }
    out
}

/// [`descendants`] by reading every process in `/proc`.
fn descendants_by_scan(root: i32) -> HashMap<i32, Proc> {
    let mut table = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let pid = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok());
            if let Some((pid, info)) = pid.and_then(|pid| stat(pid).map(|i| (pid, i))) {
                table.insert(pid, info);
            }
        }
    }
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (pid, p) in &table {
        children.entry(p.parent).or_default().push(*pid);
    }
    let mut out = HashMap::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for c in children.get(&p).into_iter().flatten() {
            if !out.contains_key(c) {
                out.insert(*c, table[c]);
                todo.push(*c);
            }
        }
    }
    out
}

/// The step marker in a process's environment, if it has one.
fn marker(pid: i32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{STEP_MARKER}=");
    env.split(|b| *b == 0).find_map(|var| {
        var.strip_prefix(prefix.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The walk down the children lists finds what a scan of all of
    /// `/proc` finds: a child, and a grandchild in the background.
    #[test]
    fn the_tree_walk_finds_what_the_full_scan_finds() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 30 & sleep 30; wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let me = rustix::process::getpid().as_raw_nonzero().get();
        let child_pid = i32::try_from(child.id()).unwrap();
        // Wait (bounded) until the shell has started both sleeps.
        let mut walked = HashMap::new();
        for _ in 0..200 {
            walked = descendants(me);
            if walked.values().filter(|p| p.parent == child_pid).count() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let scanned = descendants_by_scan(me);
        let _ = child.kill();
        let _ =
            rustix::process::kill_process_group(Pid::from_raw(child_pid).unwrap(), Signal::KILL);
        let _ = child.wait();
        let under_child = |t: &HashMap<i32, Proc>| {
            let mut v: Vec<i32> = t
                .iter()
                .filter(|(pid, p)| **pid == child_pid || p.parent == child_pid)
                .map(|(pid, _)| *pid)
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(under_child(&walked).len(), 3, "{walked:?}");
        assert_eq!(under_child(&walked), under_child(&scanned));
    }
}
