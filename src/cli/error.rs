//! The binary's errors, and the one place that maps them to exit codes:
//! 0 ok, 1 failure, 2 usage error, 3 refused.

use std::path::PathBuf;

use crate::core::policy::PolicyError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Policy(#[from] PolicyError),
    /// The problems were already printed, one per line.
    #[error("{0}")]
    Reported(String),
    #[error("{0}")]
    Usage(String),
    /// Refused by a rule (exit 3): an approval or run that may not happen.
    #[error("refused: {0}")]
    Refused(String),
    /// Refused by a rule, with a stable reason code (exit 3): recorded in
    /// the log as a `refused` record before the answer
    /// (`cli::refusal`).
    #[error("refused: {message}")]
    Denied {
        code: &'static str,
        message: String,
        /// The plan hash the refusal was about, when known.
        plan_hash: Option<crate::core::digest::PlanHash>,
    },
    /// A failure with its message still to print.
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Refused(_) | CliError::Denied { .. } => 3,
            // Nothing is written to a log that does not verify, ends with
            // a torn tail, or is behind this host's high-water mark: refused.
            CliError::Audit(
                crate::audit::AuditError::Damaged { .. }
                | crate::audit::AuditError::Broken { .. }
                | crate::audit::AuditError::TornTail { .. }
                | crate::audit::AuditError::Truncated { .. },
            ) => 3,
            CliError::Read { .. }
            | CliError::Policy(_)
            | CliError::Reported(_)
            | CliError::Failed(_)
            | CliError::Audit(_)
            | CliError::Output(_) => 1,
        }
    }

    /// Whether the message still has to be printed.
    pub fn needs_printing(&self) -> bool {
        !matches!(self, CliError::Reported(_))
    }
}

/// A refusal with its reason code.
pub fn denied(code: &'static str, message: impl Into<String>) -> CliError {
    CliError::Denied {
        code,
        message: message.into(),
        plan_hash: None,
    }
}

/// A refusal with its reason code, about a plan at `hash`.
pub fn denied_for(
    code: &'static str,
    hash: &crate::core::digest::PlanHash,
    message: impl Into<String>,
) -> CliError {
    CliError::Denied {
        code,
        message: message.into(),
        plan_hash: Some(hash.clone()),
    }
}
