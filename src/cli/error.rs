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
    /// Refused by a rule, with its reason (exit 3): recorded in the log
    /// as a `refused` record before the answer (`app::refusal`).
    #[error("refused: {0}")]
    Denied(crate::app::Refusal),
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
            CliError::Refused(_) | CliError::Denied(_) => 3,
            // Nothing is written to a log that does not verify, ends with
            // a torn tail, or is behind this host's high-water mark: refused.
            CliError::Audit(
                crate::audit::AuditError::Damaged { .. }
                | crate::audit::AuditError::Broken { .. }
                | crate::audit::AuditError::TornTail { .. }
                | crate::audit::AuditError::Truncated { .. }
                | crate::audit::AuditError::Diverged(_),
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

impl From<crate::app::Error> for CliError {
    fn from(e: crate::app::Error) -> Self {
        use crate::app::Error;
        match e {
            Error::Refused(r) => CliError::Denied(r),
            Error::Invalid(m) => CliError::Usage(m),
            Error::NotFound(m) | Error::Failed(m) => CliError::Failed(m),
            Error::Audit(a) => CliError::Audit(a),
            Error::Read { path, source } => CliError::Read { path, source },
            Error::Policy(p) => CliError::Policy(p),
            Error::Plan(problems) => {
                use std::io::Write;
                let mut err = anstream::stderr().lock();
                for p in &problems.0 {
                    // Nothing more useful can be done if stderr is gone.
                    let _ = writeln!(err, "{p}");
                }
                CliError::Reported(format!("{} problem(s)", problems.0.len()))
            }
        }
    }
}
