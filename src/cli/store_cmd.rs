//! `opsgate store …`: team mode's PostgreSQL store (`crate::store`).

use std::io::Write;

use super::args::{Cli, StoreArgs, StoreCommand};
use super::error::CliError;
use crate::store::StoreUrl;
use crate::store::pg::{Pg, StoreError};

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        match e {
            // Importing into a store that holds records, or from a file
            // that does not verify, would lose or forge history: refused.
            StoreError::NotEmpty { .. } | StoreError::Diverged(_) => {
                CliError::Refused(e.to_string())
            }
            other => CliError::Failed(other.to_string()),
        }
    }
}

/// Runs a `store` subcommand.
pub fn run(cli: &Cli, args: &StoreArgs) -> Result<(), CliError> {
    let url = cli.store.as_deref().ok_or_else(|| {
        CliError::Usage(
            "no store: give --store postgres://USER@HOST:PORT/DB or set OPSGATE_STORE".into(),
        )
    })?;
    let url = match StoreUrl::parse(url).map_err(CliError::Usage)? {
        StoreUrl::Postgres(u) => u,
        StoreUrl::File(p) => {
            return Err(CliError::Usage(format!(
                "`file:{}` is the file log, which needs no store command: `opsgate --audit-log {} audit verify` checks it",
                p.display(),
                p.display()
            )));
        }
    };
    let mut pg = Pg::connect(&url)?;
    let mut out = anstream::stdout().lock();
    let json_line = |out: &mut dyn Write, v: &dyn erased::Json| -> Result<(), CliError> {
        writeln!(out, "{}", v.json()?)?;
        Ok(())
    };
    match &args.command {
        StoreCommand::Init { json } => {
            let done = pg.init()?;
            if *json {
                return json_line(&mut out, &done);
            }
            if done.applied.is_empty() {
                writeln!(
                    out,
                    "{}: schema version {} is up to date (chain {})",
                    done.url, done.schema_version, done.chain_id
                )?;
            } else {
                writeln!(
                    out,
                    "{}: applied schema version(s) {:?}; now at {} (chain {})",
                    done.url, done.applied, done.schema_version, done.chain_id
                )?;
            }
        }
        StoreCommand::Status {
            json,
            accept,
            reason,
        } => {
            let mut pg = pg.with_mark(&crate::app::config::state_dir()?)?;
            let mark = match (accept, reason) {
                (true, Some(reason)) => {
                    let (user, _) = crate::app::identity::os_user()?;
                    let sealer = crate::app::config::reader_sealer(cli.config.as_deref())?;
                    pg.accept(&sealer, &user, reason)?
                }
                _ => pg.mark_state()?,
            };
            let s = pg.status()?;
            let refusal = mark.refusal(pg.url());
            let replica = replica_lag(cli, &s)?;
            if *json {
                #[derive(serde::Serialize)]
                struct Shown<'a> {
                    #[serde(flatten)]
                    status: &'a crate::store::pg::Status,
                    mark: &'a crate::store::pg::MarkState,
                    replica: &'a Option<Replica>,
                }
                json_line(
                    &mut out,
                    &Shown {
                        status: &s,
                        mark: &mark,
                        replica: &replica,
                    },
                )?;
            } else {
                writeln!(
                    out,
                    "{}: PostgreSQL {} ({}) · schema {} · chain {} · {} record(s) · head {}:{}",
                    s.url,
                    s.server_version,
                    if s.tls { "TLS" } else { "plain TCP" },
                    s.schema_version,
                    s.chain_id,
                    s.records,
                    s.head_seq,
                    s.head_hash
                )?;
                match &mark {
                    crate::store::pg::MarkState::Ok { seq, .. } => {
                        writeln!(out, "  this host's mark: seq {seq}, in the store")?;
                    }
                    crate::store::pg::MarkState::None => {
                        writeln!(out, "  this host has no mark of this chain yet")?;
                    }
                    _ => {}
                }
                match &replica {
                    Some(r) => writeln!(
                        out,
                        "  this host's replica: seq {} ({} behind the head) in {}",
                        r.seq,
                        r.behind,
                        r.path.display()
                    )?,
                    None => writeln!(out, "  this host has no replica of this chain yet")?,
                }
            }
            if let Some(why) = refusal {
                return Err(CliError::Refused(why));
            }
            return Ok(());
        }
        StoreCommand::Migrate { from, json } => {
            let sealer = crate::app::config::reader_sealer(cli.config.as_deref())?;
            let m = pg.migrate(from, &sealer)?;
            if *json {
                return json_line(&mut out, &m);
            }
            writeln!(
                out,
                "imported {} record(s) from {} into {} (chain {}): head {}:{}",
                m.records, m.from, m.url, m.chain_id, m.head_seq, m.head_hash
            )?;
        }
        StoreCommand::Export { output } => match output {
            Some(path) => {
                let tmp = path.with_extension("partial");
                let mut file =
                    std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|source| {
                        CliError::Read {
                            path: tmp.clone(),
                            source,
                        }
                    })?);
                let n = pg.export(&mut file)?;
                file.into_inner()
                    .map_err(|e| CliError::Failed(format!("{}: {e}", tmp.display())))?
                    .sync_all()?;
                std::fs::rename(&tmp, path)?;
                eprintln!("exported {n} record(s) to {}", path.display());
            }
            None => {
                pg.export(&mut out)?;
            }
        },
    }
    Ok(())
}

/// Serializing through a trait object, for the one printing helper.
mod erased {
    pub trait Json {
        fn json(&self) -> Result<String, std::io::Error>;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Result<String, std::io::Error> {
            serde_json::to_string(self).map_err(std::io::Error::other)
        }
    }
}

/// This host's replica of a store: how far it is behind the head (what a
/// running TUI or bridge's follower keeps at 0).
#[derive(Debug, serde::Serialize)]
struct Replica {
    path: std::path::PathBuf,
    seq: u64,
    behind: u64,
}

fn replica_lag(cli: &Cli, s: &crate::store::pg::Status) -> Result<Option<Replica>, CliError> {
    let path = crate::app::config::replica_path(&crate::app::config::state_dir()?, &s.chain_id);
    if !path.exists() {
        return Ok(None);
    }
    let sealer = crate::app::config::reader_sealer(cli.config.as_deref())?;
    let seq = match crate::audit::verify::read_head(&path, &sealer) {
        Ok(Ok(head)) => head.map_or(0, |h| h.seq),
        // A replica that does not read is rebuilt by the next command.
        _ => 0,
    };
    let head = u64::try_from(s.head_seq).unwrap_or(0);
    Ok(Some(Replica {
        path,
        seq,
        behind: head.saturating_sub(seq),
    }))
}
