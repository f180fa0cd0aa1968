//! `opsgate plan validate | show | hash`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::CliError;
use crate::app::plan_view::PlanView;
use crate::app::present::badge;
use crate::core::plan::ClassifiedPlan;
use crate::core::policy::LoadedPolicy;

/// Reads and loads a plan file, classified under the policy; its
/// problems are printed, one per line.
pub fn load(path: &Path, policy: &LoadedPolicy) -> Result<ClassifiedPlan, CliError> {
    load_with(path, policy, &[])
}

/// Loads a plan file with some of its `params` set (`--param KEY=VALUE`).
pub fn load_with(
    path: &Path,
    policy: &LoadedPolicy,
    params: &[(String, String)],
) -> Result<ClassifiedPlan, CliError> {
    Ok(crate::app::plans::load(path, policy, params)?)
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
