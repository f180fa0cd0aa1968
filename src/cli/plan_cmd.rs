//! `opsgate plan validate | show | hash`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::config::read;
use super::error::CliError;
use super::plan_view::PlanView;
use super::style::badge;
use crate::core::plan::{ClassifiedPlan, PlanErrors, PlanReader, parse_doc, review_with};
use crate::core::policy::LoadedPolicy;

/// Reads and loads a plan file, classified under the policy.
pub fn load(path: &Path, policy: &LoadedPolicy) -> Result<ClassifiedPlan, CliError> {
    load_with(path, policy, &[])
}

/// Loads a plan file with some of its `params` set (`--param KEY=VALUE`).
pub fn load_with(
    path: &Path,
    policy: &LoadedPolicy,
    params: &[(String, String)],
) -> Result<ClassifiedPlan, CliError> {
    let text = read(path)?;
    let today = chrono::Utc::now().date_naive();
    let file = path.display().to_string();
    let overrides = params.iter().cloned().collect();
    parse_doc(&file, &text)
        .and_then(|doc| review_with(&doc, &file, &text, policy, today, &overrides, &READER))
        .map_err(|e| report(&e))
}

/// What the plan loader reads through at the edge: manifests, and the
/// files `run:` lines run or read.
pub const READER: PlanReader<'static> = PlanReader {
    read: &read_file,
    digest: &crate::exec::files::digest,
};

/// Reads a file a plan names (a kube `apply` manifest), for the plan loader.
pub fn read_file(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
}

fn report(e: &PlanErrors) -> CliError {
    let mut err = anstream::stderr().lock();
    for p in &e.0 {
        // Nothing more useful can be done if stderr is gone.
        let _ = writeln!(err, "{p}");
    }
    CliError::Reported(format!("{} problem(s)", e.0.len()))
}

pub fn validate(files: &[PathBuf], policy: &LoadedPolicy) -> Result<(), CliError> {
    let mut failed = 0;
    for f in files {
        match load(f, policy) {
            Ok(cp) => {
                let mut out = anstream::stdout().lock();
                writeln!(
                    out,
                    "{}: ok  {}  {} step(s)  {}",
                    f.display(),
                    badge(cp.risk),
                    cp.plan.steps.len(),
                    cp.hash
                )?;
            }
            Err(CliError::Read { path, source }) => {
                failed += 1;
                let mut err = anstream::stderr().lock();
                writeln!(err, "{}: cannot read: {source}", path.display())?;
            }
            Err(CliError::Reported(_)) => failed += 1,
            Err(e) => return Err(e),
        }
    }
    if failed > 0 {
        return Err(CliError::Reported(format!(
            "{failed} of {} plan file(s) are invalid",
            files.len()
        )));
    }
    Ok(())
}

pub fn show(file: &Path, json: bool, policy: &LoadedPolicy) -> Result<(), CliError> {
    let cp = load(file, policy)?;
    let view = PlanView::new(&cp, &policy.hash);
    let mut out = anstream::stdout().lock();
    if json {
        let s = serde_json::to_string_pretty(&view).map_err(std::io::Error::other)?;
        writeln!(out, "{s}")?;
    } else {
        view.write_text(&mut out)?;
    }
    Ok(())
}

pub fn hash(file: &Path, policy: &LoadedPolicy) -> Result<(), CliError> {
    let cp = load(file, policy)?;
    writeln!(std::io::stdout().lock(), "{}", cp.hash)?;
    Ok(())
}
