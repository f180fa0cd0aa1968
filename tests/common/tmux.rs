//! A real terminal for end-to-end TUI tests: tmux runs a command line, the
//! test types with `send-keys` and reads the screen with `capture-pane`.
//! `.ci/run` installs tmux when it is missing; without it these tests fail.

use std::process::Command;
use std::time::{Duration, Instant};

/// A detached tmux session, killed on drop.
pub struct Tmux {
    name: String,
}

impl Tmux {
    /// Runs the shell `command` in a 100×30 session `name`. The pane is
    /// kept after it exits, with `TUI-EXITED CODE`, to read what it left.
    pub fn run(name: &str, command: &str) -> Tmux {
        let command = format!("{command}; echo TUI-EXITED $?; sleep 60");
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "100",
                "-y",
                "30",
                &command,
            ])
            .env_remove("TMUX")
            .status()
            .expect("tmux runs (.ci/run installs it)");
        assert!(status.success(), "tmux new-session failed");
        Tmux {
            name: name.to_owned(),
        }
    }

    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            let status = Command::new("tmux")
                .args(["send-keys", "-t", &self.name, k])
                .status()
                .expect("tmux send-keys");
            assert!(status.success());
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text`; panics with the screen if not.
    pub fn wait_for(&self, text: &str) -> String {
        self.wait_within(text, Duration::from_secs(30))
            .unwrap_or_else(|screen| panic!("waited 30 s for {text:?}; the screen:\n{screen}"))
            .0
    }

    /// The screen once it shows `text` and how long that took, or the last
    /// screen seen when `within` passed first.
    pub fn wait_within(&self, text: &str, within: Duration) -> Result<(String, Duration), String> {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return Ok((screen, start.elapsed()));
            }
            if start.elapsed() >= within {
                return Err(screen);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
