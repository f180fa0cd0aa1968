//! `opsgate classify`: rate one command line, or one per input line.

use std::io::{BufRead, Write};

use serde::Serialize;

use super::args::ClassifyArgs;
use super::error::CliError;
use crate::app::present::{badge, dim};
use crate::core::classify::ClassifyContext;
use crate::core::policy::LoadedPolicy;
use crate::core::risk::{Classification, Reason, RiskLevel};

#[derive(Serialize)]
struct Rated<'a> {
    command: &'a str,
    risk: RiskLevel,
    reasons: &'a [Reason],
}

#[derive(Serialize)]
struct Failed<'a> {
    line: usize,
    command: &'a str,
    error: String,
}

pub fn run(args: &ClassifyArgs, policy: &LoadedPolicy) -> Result<(), CliError> {
    let ctx = ClassifyContext {
        namespace: args.namespace.clone(),
        kube_context: args.context.clone(),
    };
    if args.stdin {
        return run_stdin(policy, &ctx);
    }
    if args.words.is_empty() {
        return Err(CliError::Usage(
            "nothing to classify: give a command line, or --stdin".into(),
        ));
    }
    let line = args.words.join(" ");
    let c = policy
        .rules
        .classify(&line, &ctx)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let mut out = anstream::stdout().lock();
    if args.json {
        let json = serde_json::to_string(&Rated {
            command: &line,
            risk: c.risk,
            reasons: &c.reasons,
        })
        .map_err(std::io::Error::other)?;
        writeln!(out, "{json}")?;
    } else {
        write_text(&mut out, &line, &c)?;
    }
    Ok(())
}

fn write_text(out: &mut impl Write, line: &str, c: &Classification) -> std::io::Result<()> {
    writeln!(out, "{}  {line}", badge(c.risk))?;
    for r in &c.reasons {
        let via = if r.via.is_empty() {
            String::new()
        } else {
            format!(" (via {})", r.via.join(" › "))
        };
        writeln!(
            out,
            "  {}  {}{via}: {} {}",
            badge(r.level),
            r.part,
            r.message,
            dim(&format!("[{}]", r.rule))
        )?;
    }
    Ok(())
}

/// One JSON object per input line, in order. A line that is empty or not
/// UTF-8 gets an error object on its line; the exit code is then 1.
fn run_stdin(policy: &LoadedPolicy, ctx: &ClassifyContext) -> Result<(), CliError> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut buf = Vec::new();
    let mut n = 0;
    let mut failures = 0;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        n += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let json = match std::str::from_utf8(&buf) {
            Ok(line) => match policy.rules.classify(line, ctx) {
                Ok(c) => serde_json::to_string(&Rated {
                    command: line,
                    risk: c.risk,
                    reasons: &c.reasons,
                }),
                Err(e) => {
                    failures += 1;
                    serde_json::to_string(&Failed {
                        line: n,
                        command: line,
                        error: e.to_string(),
                    })
                }
            },
            Err(e) => {
                failures += 1;
                serde_json::to_string(&Failed {
                    line: n,
                    command: &String::from_utf8_lossy(&buf),
                    error: format!("line is not valid UTF-8: {e}"),
                })
            }
        }
        .map_err(std::io::Error::other)?;
        writeln!(out, "{json}")?;
    }
    out.flush()?;
    if failures > 0 {
        return Err(CliError::Reported(format!(
            "{failures} of {n} lines could not be classified"
        )));
    }
    Ok(())
}
