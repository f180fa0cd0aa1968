//! Checks and native actions: a check's command with its retries, and a
//! native action through its backend (with its server-side dry run).

use std::time::{Duration, Instant};

use super::*;

impl Engine<'_> {
    /// Records a check that a preview does not run, as skipped.
    pub(super) fn skip_check(
        &self,
        index: usize,
        check: &Check,
        phase: CheckPhase,
    ) -> Result<(), ExecError> {
        let output =
            "not run: the plan is not approved (a dry run of the approved plan runs its checks)"
                .to_owned();
        self.record(Event::CheckFinished {
            plan_id: self.plan_id.to_owned(),
            run_id: self.run_id.clone(),
            step: index as u32 + 1,
            phase,
            action: check.action.command_line().into_owned(),
            status: Status::Skipped,
            attempts: 0,
            duration_seconds: 0.0,
            output,
        })?;
        self.tell(Progress::CheckFinished {
            index,
            name: check.name.clone(),
            phase,
            status: Status::Skipped,
        });
        Ok(())
    }

    pub(super) async fn native(
        &self,
        index: usize,
        action: &Action,
        timeout: Duration,
        dry_run: bool,
    ) -> Result<shell::Outcome, ExecError> {
        let started = Instant::now();
        let mut stop = self.stop.clone();
        let call = self.backends.perform(action, dry_run, timeout);
        let killed = async {
            // A closed channel means no one can ask to stop any more.
            while *stop.borrow_and_update() < Stop::Kill {
                if stop.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        let result = tokio::select! {
            o = call => Some(o),
            () = killed => None,
        };
        for change in self.backends.take_changes() {
            self.record(Event::BreakerChanged {
                backend: change.backend.to_owned(),
                state: change.state.as_str().to_owned(),
                consecutive_failures: change.consecutive_failures,
                run_id: Some(self.run_id.clone()),
                error: change.error,
            })?;
        }
        let (status, exit_code, output) = match result {
            None => (
                Status::Killed,
                None,
                "stopped: the call was abandoned (the server may still carry it out)".to_owned(),
            ),
            Some(native::Outcome::Answered(reply)) => {
                let status = if reply.ok {
                    Status::Succeeded
                } else {
                    Status::Failed
                };
                (status, Some(if reply.ok { 0 } else { 1 }), reply.output)
            }
            Some(native::Outcome::Failed(e) | native::Outcome::BreakerOpen(e)) => {
                (Status::Failed, None, e)
            }
            Some(native::Outcome::TimedOut(e)) => (Status::TimedOut, None, e),
        };
        for line in output.lines() {
            self.tell(Progress::Output {
                index,
                line: OutputLine {
                    stderr: status != Status::Succeeded,
                    text: line.to_owned(),
                },
            });
        }
        Ok(shell::Outcome {
            status,
            exit_code,
            stdout: output.clone(),
            output,
            duration: started.elapsed(),
        })
    }

    /// A check, with its retries; records `check_finished`.
    pub(super) async fn check(
        &self,
        index: usize,
        check: &Check,
        phase: CheckPhase,
        mode: Mode,
    ) -> Result<bool, ExecError> {
        let started = Instant::now();
        let attempts = check.retry.attempts.max(1);
        let mut last = None;
        let mut tried = 0;
        for attempt in 1..=attempts {
            tried = attempt;
            // A check is a read: it runs as it is, never in a dry-run form,
            // and never in a preview (`perform` refuses a shell there).
            let check_mode = if mode == Mode::Preview {
                Mode::Preview
            } else {
                Mode::Real
            };
            let o = self
                .perform(index, &check.action, check.timeout.get(), check_mode, false)
                .await?;
            let passed = o.exit_code == Some(check.expect.exit_code)
                && o.status != Status::TimedOut
                && o.status != Status::Killed
                && check
                    .expect
                    .stdout_contains
                    .as_deref()
                    .is_none_or(|s| o.stdout.contains(s));
            let killed = o.status == Status::Killed;
            last = Some((passed, o));
            if passed || killed || attempt == attempts {
                break;
            }
            tokio::time::sleep(check.retry.interval.get()).await;
        }
        let (passed, o) =
            last.ok_or_else(|| ExecError::Refused("a check ran no attempt".into()))?;
        let status = if passed {
            Status::Passed
        } else {
            Status::Failed
        };
        self.record(Event::CheckFinished {
            plan_id: self.plan_id.to_owned(),
            run_id: self.run_id.clone(),
            step: index as u32 + 1,
            phase,
            action: check.action.command_line().into_owned(),
            status,
            attempts: tried,
            duration_seconds: started.elapsed().as_secs_f64(),
            output: o.output,
        })?;
        self.tell(Progress::CheckFinished {
            index,
            name: check.name.clone(),
            phase,
            status,
        });
        Ok(passed)
    }
}
