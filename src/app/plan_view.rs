//! How `plan show` presents a classified plan: a terminal render and a JSON
//! view. Both show the same facts: each step with its level and why, the
//! checks, the rollbacks and both hashes.

use std::io::Write;

use serde::Serialize;

use super::present::{badge, bold, dim};
use crate::core::digest::PolicyHash;
use crate::core::event::{printable, printable_lines};
use crate::core::plan::model::OnError;
use crate::core::plan::{Check, ClassifiedPlan, PlanRollback};
use crate::core::risk::{Classification, Reason, RiskLevel};

#[derive(Debug, Serialize)]
pub struct PlanView<'a> {
    id: &'a str,
    title: &'a str,
    description: Option<&'a str>,
    author: Option<&'a str>,
    target: &'a crate::core::plan::Target,
    params: &'a std::collections::BTreeMap<String, String>,
    estimated_time_seconds: Option<u64>,
    risk: RiskLevel,
    /// When a rollback, not a step, sets the plan's risk: which one.
    #[serde(skip_serializing_if = "Option::is_none")]
    risk_set_by_rollback: Option<&'a str>,
    plan_hash: &'a str,
    policy_hash: &'a str,
    steps: Vec<StepView<'a>>,
    rollback: RollbackView<'a>,
    /// The local files the lines run or read, hashed with the plan.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    files: &'a std::collections::BTreeMap<String, crate::core::plan::LocalFile>,
}

#[derive(Debug, Serialize)]
struct StepView<'a> {
    index: usize,
    name: &'a str,
    command: std::borrow::Cow<'a, str>,
    /// `$ ` for a command line, `» ` for a native action.
    #[serde(skip)]
    lead: &'static str,
    risk: RiskLevel,
    reasons: &'a [Reason],
    timeout_seconds: u64,
    pre_checks: Vec<CheckView<'a>>,
    post_checks: Vec<CheckView<'a>>,
    rollback: Option<ActionView<'a>>,
    /// Processes it starts in the background may outlive it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    keep_background: bool,
}

#[derive(Debug, Serialize)]
struct CheckView<'a> {
    name: &'a str,
    command: std::borrow::Cow<'a, str>,
    risk: RiskLevel,
    timeout_seconds: u64,
    retry_attempts: u32,
    retry_interval_seconds: u64,
    expect_exit_code: i32,
    expect_stdout_contains: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct ActionView<'a> {
    name: Option<&'a str>,
    command: std::borrow::Cow<'a, str>,
    risk: RiskLevel,
    reasons: &'a [Reason],
}

#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum RollbackView<'a> {
    None {
        reason: &'a str,
    },
    Steps {
        method: Option<&'a str>,
        estimated_time_seconds: Option<u64>,
        /// `stop` or `continue`: what a failed rollback step does.
        on_error: OnError,
        steps: Vec<ActionView<'a>>,
    },
    Absent,
}

impl<'a> PlanView<'a> {
    pub fn new(cp: &'a ClassifiedPlan, policy_hash: &'a PolicyHash) -> Self {
        let p = &cp.plan;
        let checks = |list: &'a [Check], ratings: &'a [Classification]| -> Vec<CheckView<'a>> {
            list.iter()
                .zip(ratings)
                .map(|(c, r)| CheckView {
                    name: &c.name,
                    command: c.action.command_line(),
                    risk: r.risk,
                    timeout_seconds: c.timeout.get().as_secs(),
                    retry_attempts: c.retry.attempts,
                    retry_interval_seconds: c.retry.interval.get().as_secs(),
                    expect_exit_code: c.expect.exit_code,
                    expect_stdout_contains: c.expect.stdout_contains.as_deref(),
                })
                .collect()
        };
        let steps =
            p.steps
                .iter()
                .zip(&cp.steps)
                .enumerate()
                .map(|(i, (s, r))| StepView {
                    index: i + 1,
                    name: &s.name,
                    command: s.action.command_line(),
                    lead: s.action.lead(),
                    risk: r.action.risk,
                    reasons: &r.action.reasons,
                    timeout_seconds: s.timeout.get().as_secs(),
                    pre_checks: checks(&s.pre_checks, &r.pre_checks),
                    post_checks: checks(&s.post_checks, &r.post_checks),
                    keep_background: s.keep_background,
                    rollback: s.rollback.as_ref().zip(r.rollback.as_ref()).map(|(a, c)| {
                        ActionView {
                            name: None,
                            command: a.command_line(),
                            risk: c.risk,
                            reasons: &c.reasons,
                        }
                    }),
                })
                .collect();
        let rollback = match &p.rollback {
            PlanRollback::None { reason } => RollbackView::None { reason },
            PlanRollback::Absent => RollbackView::Absent,
            PlanRollback::Steps {
                method,
                steps,
                estimated_time,
                on_error,
            } => RollbackView::Steps {
                method: method.as_deref(),
                on_error: *on_error,
                estimated_time_seconds: estimated_time.map(|d| d.get().as_secs()),
                steps: steps
                    .iter()
                    .zip(&cp.rollback)
                    .map(|(s, c)| ActionView {
                        name: Some(&s.name),
                        command: s.action.command_line(),
                        risk: c.risk,
                        reasons: &c.reasons,
                    })
                    .collect(),
            },
        };
        PlanView {
            id: &p.id,
            title: &p.title,
            description: p.description.as_deref(),
            author: p.author.as_deref(),
            target: &p.target,
            params: &p.params,
            estimated_time_seconds: p.estimated_time.map(|d| d.get().as_secs()),
            risk: cp.risk,
            risk_set_by_rollback: cp.risk_set_by_rollback.as_deref(),
            plan_hash: cp.hash.as_str(),
            policy_hash: policy_hash.as_str(),
            steps,
            rollback,
            files: &p.files,
        }
    }

    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{}  {}",
            bold(&format!("Plan {}", self.id)),
            shown(self.title)
        )?;
        if let Some(d) = self.description {
            for line in printable_lines(d) {
                writeln!(out, "  {}", dim(&line))?;
            }
        }
        let mut facts = Vec::new();
        if let Some(a) = self.author {
            facts.push(format!("author {}", shown(a)));
        }
        let t = self.target;
        for (k, v) in [
            ("context", &t.kube_context),
            ("namespace", &t.namespace),
            ("region", &t.aws_region),
            ("docker", &t.docker_host),
        ] {
            if let Some(v) = v {
                facts.push(format!("{k} {}", shown(v)));
            }
        }
        if let Some(s) = self.estimated_time_seconds {
            facts.push(format!("est. {}", human_secs(s)));
        }
        if !self.params.is_empty() {
            let ps: Vec<String> = self
                .params
                .iter()
                .map(|(k, v)| format!("{}={}", shown(k), shown(v)))
                .collect();
            facts.push(format!("params {}", ps.join(" ")));
        }
        if !facts.is_empty() {
            writeln!(out, "  {}", facts.join(" · "))?;
        }
        let by = self
            .risk_set_by_rollback
            .map(|by| format!(" (set by {})", shown(by)))
            .unwrap_or_default();
        writeln!(
            out,
            "  risk {}{by}   steps {}",
            badge(self.risk),
            self.steps.len()
        )?;
        writeln!(out)?;
        writeln!(out, "{}", bold("Steps"))?;
        for s in &self.steps {
            writeln!(
                out,
                "  {:>2}. {}  {}  {}",
                s.index,
                badge(s.risk),
                bold(&shown(s.name)),
                dim(&format!("timeout {}", human_secs(s.timeout_seconds)))
            )?;
            write_command(out, s.lead, &s.command, "      ")?;
            write_reasons(out, s.reasons, "      ")?;
            if s.keep_background {
                writeln!(
                    out,
                    "      {}",
                    dim("keeps its background processes running after it succeeds")
                )?;
            }
            for (kind, list) in [("pre ", &s.pre_checks), ("post", &s.post_checks)] {
                for c in list {
                    let mut extra = Vec::new();
                    if c.retry_attempts > 1 {
                        extra.push(format!(
                            "retry {}× every {}",
                            c.retry_attempts,
                            human_secs(c.retry_interval_seconds)
                        ));
                    }
                    if c.expect_exit_code != 0 {
                        extra.push(format!("expect exit {}", c.expect_exit_code));
                    }
                    if let Some(s) = c.expect_stdout_contains {
                        extra.push(format!("expect stdout ∋ \"{}\"", shown(s)));
                    }
                    let extra = if extra.is_empty() {
                        String::new()
                    } else {
                        format!("  {}", dim(&format!("({})", extra.join(", "))))
                    };
                    writeln!(
                        out,
                        "      {kind} check {}: {}{extra}",
                        shown(c.name),
                        one_line(&c.command)
                    )?;
                }
            }
            if let Some(r) = &s.rollback {
                writeln!(
                    out,
                    "      undo  {}  {}",
                    badge(r.risk),
                    one_line(&r.command)
                )?;
            }
        }
        writeln!(out)?;
        match &self.rollback {
            RollbackView::None { reason } => {
                writeln!(out, "{} none: {}", bold("Rollback"), shown(reason))?;
            }
            RollbackView::Absent => {
                writeln!(out, "{} per step only (see `undo` above)", bold("Rollback"))?;
            }
            RollbackView::Steps {
                method,
                estimated_time_seconds,
                on_error,
                steps,
            } => {
                let est = estimated_time_seconds
                    .map(|s| format!(" (est. {})", human_secs(s)))
                    .unwrap_or_default();
                let cont = if *on_error == OnError::Continue {
                    " (a failed step does not stop the rollback)"
                } else {
                    ""
                };
                writeln!(
                    out,
                    "{} {}{est}{cont}",
                    bold("Rollback"),
                    shown(method.unwrap_or(""))
                )?;
                for (i, s) in steps.iter().enumerate() {
                    writeln!(
                        out,
                        "  {:>2}. {}  {}",
                        i + 1,
                        badge(s.risk),
                        one_line(&s.command)
                    )?;
                }
            }
        }
        if !self.files.is_empty() {
            writeln!(out)?;
            writeln!(out, "{}", bold("Files (hashed with the plan)"))?;
            for (word, f) in self.files {
                writeln!(
                    out,
                    "  {}  {}",
                    dim(crate::core::event::short(&f.sha256)),
                    shown(word)
                )?;
            }
        }
        writeln!(out)?;
        writeln!(out, "plan hash   {}", self.plan_hash)?;
        writeln!(out, "policy hash {}", self.policy_hash)?;
        Ok(())
    }
}

/// A command, `$ ` before its first line and the rest indented under it;
/// control and bidi characters shown escaped, so what is shown is what
/// runs.
fn write_command(out: &mut impl Write, lead: &str, cmd: &str, indent: &str) -> std::io::Result<()> {
    for (i, line) in printable_lines(cmd.trim_end()).enumerate() {
        let lead = if i == 0 { lead } else { "  " };
        writeln!(out, "{indent}{lead}{line}")?;
    }
    Ok(())
}

fn write_reasons(out: &mut impl Write, reasons: &[Reason], indent: &str) -> std::io::Result<()> {
    let top = reasons.first().map(|r| r.level);
    for r in reasons.iter().filter(|r| Some(r.level) == top) {
        let via = if r.via.is_empty() {
            String::new()
        } else {
            format!(" via {}", shown(&r.via.join(" › ")))
        };
        writeln!(out, "{indent}{} {}{via}", dim("why:"), shown(&r.message))?;
    }
    Ok(())
}

/// One text on one line, escaped (`shown`).
fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    printable(s)
}

/// A command on one line: its lines joined by ` ⏎ `, each escaped, so a
/// second line is never out of sight.
fn one_line(cmd: &str) -> String {
    printable_lines(cmd).collect::<Vec<_>>().join(" ⏎ ")
}

fn human_secs(s: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s)).to_string()
}
