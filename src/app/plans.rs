//! Plan files: read, parsed and rated under the policy, for every door.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use crate::core::plan::{ClassifiedPlan, PlanReader, parse_doc, review_with};
use crate::core::policy::LoadedPolicy;

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

/// Reads and loads a plan file with some of its `params` set
/// (`--param KEY=VALUE`), classified under the policy.
pub fn load(
    path: &Path,
    policy: &LoadedPolicy,
    params: &[(String, String)],
) -> Result<ClassifiedPlan> {
    let text = super::config::read(path)?;
    let today = chrono::Utc::now().date_naive();
    let file = path.display().to_string();
    let overrides = params.iter().cloned().collect();
    parse_doc(&file, &text)
        .and_then(|doc| review_with(&doc, &file, &text, policy, today, &overrides, &READER))
        .map_err(Error::Plan)
}

/// The plan files in `dir` (`*.yaml`, `*.yml`), sorted.
pub fn plan_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
