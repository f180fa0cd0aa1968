//! Finding and reading the policy file.
//!
//! A path the user names must exist; a missing default path is fine and
//! falls through to the next one, and finally to the embedded default.

use std::path::{Path, PathBuf};

use super::error::CliError;
use crate::core::policy::LoadedPolicy;

pub fn load_policy(explicit: Option<&Path>) -> Result<LoadedPolicy, CliError> {
    let path = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => default_paths().into_iter().find(|p| p.is_file()),
    };
    match path {
        Some(p) => {
            let text = read(&p)?;
            Ok(LoadedPolicy::load(Some((&p.display().to_string(), &text)))?)
        }
        None => Ok(LoadedPolicy::embedded()?),
    }
}

fn default_paths() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("config/opsgate.yaml")];
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(dir) = xdg {
        v.push(dir.join("opsgate").join("opsgate.yaml"));
    }
    v
}

pub fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_path_buf(),
        source,
    })
}
