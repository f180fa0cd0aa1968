//! Where the audit log lives: a JSON Lines file (one host), or PostgreSQL
//! (team mode, [`pg`]), holding the same hash-chained records byte for byte.
//!
//! [`pg`] creates, inspects, imports into and exports the PostgreSQL store
//! (`opsgate store init|status|migrate|export`) and appends to it safely;
//! [`tls`] speaks TLS to it. Every other command reaches the store through
//! `crate::audit::AuditLog`, whose file is then the host's replica of the
//! store (`audit::log` `replica`); `app::config::LogAt` chooses which.

pub mod passfile;
pub mod pg;
pub mod tls;

use std::fmt;

/// A store named on the command line (`--store`, `OPSGATE_STORE`).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `file:PATH`: the JSON Lines log at PATH.
    File(std::path::PathBuf),
    /// `postgres://…` or `postgresql://…` (libpq's URL form).
    Postgres(String),
}

impl StoreUrl {
    /// Parses `text`; an unknown scheme is an error that names it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Some(path) = t.strip_prefix("file:") {
            if path.is_empty() {
                return Err("`file:` names no path (file:PATH)".into());
            }
            return Ok(StoreUrl::File(path.into()));
        }
        if t.starts_with("postgres://") || t.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(t.to_owned()));
        }
        Err(format!(
            "`{}`: a store is `postgres://USER@HOST:PORT/DB` or `file:PATH`",
            redact_url(t)
        ))
    }
}

/// Never prints a password: the URL with its `user:password@` reduced to
/// `user@`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::File(p) => write!(f, "file:{}", p.display()),
            StoreUrl::Postgres(u) => write!(f, "{}", redact_url(u)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_print_passwords() {
        assert_eq!(
            StoreUrl::parse("file:/var/lib/opsgate/audit.jsonl"),
            Ok(StoreUrl::File("/var/lib/opsgate/audit.jsonl".into()))
        );
        let pg = StoreUrl::parse("postgres://ops:s3cret@db.internal:5432/opsgate").expect("pg");
        assert_eq!(format!("{pg:?}"), "postgres://ops@db.internal:5432/opsgate");
        assert_eq!(
            redact_url("postgresql://a:b@h/d?sslmode=verify-full"),
            "postgresql://a@h/d?sslmode=verify-full"
        );
        let err = StoreUrl::parse("mysql://u:pw@h/db").expect_err("unknown scheme");
        assert!(
            err.contains("mysql://u@h/db") && !err.contains("pw"),
            "{err}"
        );
        assert!(StoreUrl::parse("file:").is_err());
    }
}
