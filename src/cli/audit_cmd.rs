//! `opsgate audit verify | head | replay | export | tail | repair`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;

use super::args::{ExportArgs, ExportFormat};
use super::error::CliError;
use crate::audit::event::printable;
use crate::audit::export::{ExportError, Filter, Format, export, for_each_match, parse_time};
use crate::audit::mark::HighWater;
use crate::audit::read::{Follower, RecordView, committed_len};
use crate::audit::verify::{Head, ProblemKind, Report, read_head, verify_file, verify_until};
use crate::audit::{AuditLog, Record, Sealer};

/// Fails, naming the path, when there is no log there.
pub fn require_log(path: &Path) -> Result<(), CliError> {
    std::fs::metadata(path)
        .map(drop)
        .map_err(|e| read_err(path, e))
}

fn missing(path: &Path) -> CliError {
    CliError::Failed(format!(
        "no audit log at `{}` (nothing was submitted yet, or pass --audit-log)",
        path.display()
    ))
}

fn read_err(path: &Path, source: std::io::Error) -> CliError {
    if source.kind() == std::io::ErrorKind::NotFound {
        missing(path)
    } else {
        CliError::Read {
            path: path.to_owned(),
            source,
        }
    }
}

fn export_err(path: &Path, e: ExportError) -> CliError {
    match e {
        ExportError::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe => CliError::Output(io),
        ExportError::Io(io) => read_err(path, io),
        ExportError::Line { line, message } => {
            CliError::Failed(format!("{}:{line}: {message}", path.display()))
        }
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let mut out = anstream::stdout().lock();
    serde_json::to_writer(&mut out, value)
        .map_err(|e| CliError::Failed(format!("cannot write JSON: {e}")))?;
    writeln!(out)?;
    Ok(())
}

/// Verifies the chain; against `--expect-head` when given, else against
/// this host's high-water `mark` (a log that ends before it was cut).
pub fn verify(
    path: &Path,
    sealer: &Sealer,
    mark: Option<&HighWater>,
    json: bool,
    expect_head: Option<&str>,
    policy: Option<&crate::core::policy::LoadedPolicy>,
) -> Result<(), CliError> {
    let explicit = expect_head
        .map(str::parse::<Head>)
        .transpose()
        .map_err(|e| CliError::Usage(format!("--expect-head: {e}")))?;
    let marked = match (&explicit, mark) {
        (None, Some(m)) => m.get().map_err(|e| CliError::Read {
            path: m.path().to_owned(),
            source: e,
        })?,
        _ => None,
    };
    let mut report =
        verify_file(path, sealer, explicit.or(marked.clone())).map_err(|e| read_err(path, e))?;
    if let (Some(p), Some(m), Some(file)) = (&mut report.problem, &marked, mark)
        && matches!(
            p.kind,
            ProblemKind::ShorterThanHead | ProblemKind::HeadMismatch
        )
    {
        p.message = format!(
            "{} (the expected head is this host's high-water mark {m}, kept in `{}`): records were removed or rewritten; `opsgate audit verify --acknowledge-truncation --reason TEXT` accepts the log as it is",
            p.message,
            file.path().display()
        );
    }
    // Who acted, once the chain holds: every signature checked offline
    // against the policy's allowed signers.
    let identities = match (&report.problem, policy) {
        (None, Some(policy)) => Some(crate::app::identity::audit_identities(path, policy)?),
        _ => None,
    };
    if json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            log: String,
            #[serde(flatten)]
            report: &'a Report,
            #[serde(skip_serializing_if = "Option::is_none")]
            identities: Option<&'a crate::app::identity::IdentityReport>,
            /// This host's high-water mark, when the log was checked
            /// against it.
            #[serde(skip_serializing_if = "Option::is_none")]
            mark: Option<&'a Head>,
        }
        print_json(&Out {
            log: path.display().to_string(),
            report: &report,
            identities: identities.as_ref(),
            mark: marked.as_ref(),
        })?;
    } else {
        let mut out = anstream::stdout().lock();
        let head = report
            .head
            .as_ref()
            .map_or_else(|| "empty".to_owned(), |h| format!("head {h}"));
        match &report.problem {
            None => writeln!(
                out,
                "chain intact · {} event(s) · {} → {} · {head}",
                report.events,
                report.first_ts.as_deref().unwrap_or("-"),
                report.last_ts.as_deref().unwrap_or("-"),
            )?,
            Some(p) => {
                let red = anstyle::AnsiColor::Red.on_default().bold();
                writeln!(
                    out,
                    "{red}BROKEN{red:#} at {}:{p}\n{} event(s) verified before it · {head}",
                    path.display(),
                    report.events
                )?;
            }
        }
    }
    if let (Some(ids), false) = (&identities, json) {
        let mut out = anstream::stdout().lock();
        writeln!(
            out,
            "identities: {} signed · {} chat-attested · {} OS user · {} claimed (--as) · {} unproven (before v3)",
            ids.signed, ids.chat_attested, ids.os, ids.claimed, ids.unproven
        )?;
        for f in &ids.unsigned {
            writeln!(out, "  did not count: {}", f.message)?;
        }
        match ids.anchor {
            Some(seq) => writeln!(
                out,
                "  checked against the policy of each record's time, anchored at this policy's adoption (seq {seq})"
            )?,
            None => writeln!(
                out,
                "  checked against this policy (the log never adopted it)"
            )?,
        }
        for f in &ids.bad {
            writeln!(out, "  BAD: {}", f.message)?;
        }
    }
    match (
        &report.problem,
        identities.as_ref().and_then(|i| i.bad.first()),
    ) {
        (Some(p), _) => Err(CliError::Reported(format!("audit log broken: {p}"))),
        (None, Some(bad)) => Err(CliError::Reported(format!(
            "a record in the audit log does not prove who acted: {}",
            bad.message
        ))),
        (None, None) => Ok(()),
    }
}

/// `audit verify --acknowledge-truncation`: an operator accepts a log that
/// ends before this host's high-water mark. The chain itself must verify;
/// `truncation_acknowledged` records both heads, who and why, and the mark
/// is reset to it.
pub fn acknowledge_truncation(log: &AuditLog, reason: &str) -> Result<(), CliError> {
    if reason.trim().is_empty() {
        return Err(CliError::Usage(
            "--reason must say why the log is accepted".into(),
        ));
    }
    let (user, _uid) = crate::app::identity::os_user()?;
    let Some(mark) = log.mark() else {
        return Err(CliError::Failed(
            "this log has no high-water mark here".into(),
        ));
    };
    let path = log.path();
    let mut acknowledged = None;
    log.append_acknowledged(|len| {
        // The chain on its own must be sound: a cut log, not a damaged one.
        let plain = verify_until(path, len, log.sealer(), None).map_err(|e| read_err(path, e))?;
        if let Some(p) = &plain.problem {
            return Err(CliError::Refused(format!(
                "the audit log `{}` does not verify ({p}): it is damaged, not only cut; nothing was acknowledged",
                path.display()
            )));
        }
        let Some(expected) = mark.get().map_err(|e| CliError::Read {
            path: mark.path().to_owned(),
            source: e,
        })?
        else {
            return Err(CliError::Failed(format!(
                "this host has no high-water mark of `{}`: there is nothing to acknowledge",
                path.display()
            )));
        };
        let against = verify_until(path, len, log.sealer(), Some(expected.clone()))
            .map_err(|e| read_err(path, e))?;
        if against.ok {
            return Err(CliError::Failed(format!(
                "the log reaches this host's high-water mark ({expected}): there is nothing to acknowledge"
            )));
        }
        let head = plain.head;
        acknowledged = Some((expected.clone(), head.clone()));
        Ok(vec![crate::audit::Event::TruncationAcknowledged {
            expected_seq: expected.seq,
            expected_hash: expected.hash,
            found_seq: head.as_ref().map_or(0, |h| h.seq),
            found_hash: head.map(|h| h.hash),
            user: user.clone(),
            reason: reason.trim().to_owned(),
        }])
    })?;
    if let Some((expected, found)) = acknowledged {
        writeln!(
            anstream::stdout().lock(),
            "accepted `{}` as it is: it {}, this host had seen {expected}; recorded truncation_acknowledged by {user}, and the high-water mark moved to it",
            path.display(),
            found.map_or_else(|| "was empty".to_owned(), |h| format!("ended at {h}")),
        )?;
    }
    Ok(())
}

pub fn head(path: &Path, sealer: &Sealer, json: bool) -> Result<(), CliError> {
    let head = read_head(path, sealer)
        .map_err(|e| read_err(path, e))?
        .map_err(|m| CliError::Failed(format!("{}: {m}", path.display())))?;
    let head = head.unwrap_or(Head {
        seq: 0,
        hash: crate::audit::chain::GENESIS.to_owned(),
    });
    if json {
        print_json(&head)
    } else {
        writeln!(anstream::stdout().lock(), "{head}")?;
        Ok(())
    }
}

pub fn replay(path: &Path, id: &str, json: bool) -> Result<(), CliError> {
    let mut out = std::io::BufWriter::new(anstream::stdout().lock());
    if json {
        out.write_all(b"[")?;
    } else {
        writeln!(
            out,
            "{:<24}  {:>6}  {:<22}  {:>4}  {:<11}  {:<10}  {:>9}  DETAIL",
            "TIME", "SEQ", "EVENT", "STEP", "STATUS", "WHO", "DURATION"
        )?;
    }
    let mut n = 0u64;
    for_each_match(path, &Filter::default(), |line, view| {
        if view.plan_id.as_deref() != Some(id) && view.run_id.as_deref() != Some(id) {
            return Ok(());
        }
        n += 1;
        if json {
            if n > 1 {
                out.write_all(b",")?;
            }
            out.write_all(line)?;
            return Ok(());
        }
        let detail = serde_json::from_slice::<Record>(line)
            .map(|r| r.event.summary())
            .unwrap_or_default();
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        let row = format!(
            "{:<24}  {:>6}  {:<22}  {:>4}  {:<11}  {:<10}  {:>9}  {detail}",
            view.ts,
            view.seq,
            view.kind,
            view.step.map_or("-".into(), |s| s.to_string()),
            opt(&view.status),
            view.who().unwrap_or("-"),
            view.duration_seconds
                .map_or("-".into(), |d| format!("{d:.3}s")),
        );
        writeln!(out, "{}", printable(&row))?;
        Ok(())
    })
    .map_err(|e| export_err(path, e))?;
    if json {
        out.write_all(b"]\n")?;
    }
    out.flush()?;
    if n == 0 {
        return Err(CliError::Failed(format!(
            "no plan or run `{id}` in `{}`",
            path.display()
        )));
    }
    Ok(())
}

pub fn export_cmd(path: &Path, args: &ExportArgs) -> Result<(), CliError> {
    let now = Utc::now();
    let time = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| parse_time(s, now))
            .transpose()
            .map_err(|e| CliError::Usage(format!("{flag}: {e}")))
    };
    let filter = Filter {
        since: time("--since", &args.since)?,
        until: time("--until", &args.until)?,
        plan: args.plan.clone(),
        run: args.run.clone(),
        kind: args.kind.clone(),
        status: args.status.clone(),
        risk: args.risk.clone(),
        approver: args.approver.clone(),
    };
    let format = match args.format {
        ExportFormat::Jsonl => Format::Jsonl,
        ExportFormat::Csv => Format::Csv,
    };
    // Fail on a missing log before creating any output file.
    require_log(path)?;
    let Some(target) = &args.output else {
        let mut out = anstream::stdout().lock();
        export(path, &filter, format, &mut out).map_err(|e| export_err(path, e))?;
        return Ok(());
    };
    // Write beside the target and rename, so the file appears only whole.
    let partial = partial_path(target);
    let result = (|| {
        let mut f = std::fs::File::create(&partial)
            .map_err(|e| CliError::Failed(format!("cannot write `{}`: {e}", target.display())))?;
        let n = export(path, &filter, format, &mut f).map_err(|e| export_err(path, e))?;
        f.sync_all()?;
        std::fs::rename(&partial, target)?;
        Ok::<_, CliError>(n)
    })();
    match result {
        Ok(n) => {
            writeln!(
                anstream::stderr().lock(),
                "exported {n} record(s) to {}",
                target.display()
            )?;
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    target.with_file_name(name)
}

/// One readable line for a record: time, seq, type, summary.
fn readable(line: &[u8]) -> String {
    let text = match serde_json::from_slice::<Record>(line) {
        Ok(r) => format!(
            "{}  {:>6}  {:<22}  {}",
            crate::audit::event::format_ts(&r.ts),
            r.seq,
            r.event.kind(),
            r.event.summary()
        ),
        Err(_) => match RecordView::parse(line) {
            Ok(v) => format!(
                "{}  {:>6}  {:<22}  (unreadable payload)",
                v.ts, v.seq, v.kind
            ),
            Err(e) => format!("(not a record: {e})"),
        },
    };
    printable(&text).into_owned()
}

pub fn tail(path: &Path, lines: usize, follow: bool) -> Result<(), CliError> {
    let file = std::fs::File::open(path).map_err(|e| read_err(path, e))?;
    let len = committed_len(&file).map_err(|e| read_err(path, e))?;
    let view =
        crate::audit::backward::read_tail(&file, len, lines).map_err(|e| read_err(path, e))?;
    {
        let mut out = anstream::stdout().lock();
        for (_, l) in &view.lines {
            writeln!(out, "{}", readable(l))?;
        }
        out.flush()?;
    }
    if !follow {
        return Ok(());
    }
    let start = view.torn_at.unwrap_or(len);
    let mut follower = Follower::new(path, start).map_err(|e| read_err(path, e))?;
    loop {
        let new = follower.poll().map_err(|e| read_err(path, e))?;
        if new.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let mut out = anstream::stdout().lock();
        for l in &new {
            writeln!(out, "{}", readable(l))?;
        }
        out.flush()?;
    }
}

pub fn repair(log: &AuditLog, json: bool) -> Result<(), CliError> {
    let done = log.repair()?;
    if json {
        return print_json(&serde_json::json!({
            "repaired": done.is_some(),
            "seq": done.as_ref().map(|a| a.seq),
        }));
    }
    let mut out = anstream::stdout().lock();
    match done {
        None => writeln!(
            out,
            "nothing to repair: the log ends with a complete record"
        )?,
        Some(a) => writeln!(
            out,
            "moved a torn tail aside and recorded log_repaired (seq {}); see `opsgate audit tail -n 1`",
            a.seq
        )?,
    }
    Ok(())
}
