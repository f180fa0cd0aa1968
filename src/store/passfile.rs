//! PostgreSQL's password file (`PGPASSFILE`, else `~/.pgpass`), read as
//! libpq reads it: lines `hostname:port:database:username:password`, `*`
//! matching anything, `\:` and `\\` escaping, `#` comments; the first line
//! that matches wins. A file that others may read is ignored, with a
//! warning, as libpq ignores it: a password must not be readable by them.

use std::path::{Path, PathBuf};

/// Where the password file is: `PGPASSFILE`, else `~/.pgpass`.
pub fn path() -> Option<PathBuf> {
    std::env::var_os("PGPASSFILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")))
}

/// The password `file` gives for (`host`, `port`, `database`, `user`), if
/// any; `None` also when the file is missing or others may read it.
pub fn lookup(file: &Path, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            file = %file.display(),
            "the password file may be read by others: ignored (chmod 600 it)"
        );
        eprintln!(
            "opsgate: warning: {} may be read by others and is ignored (chmod 600 it)",
            file.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    find(&text, host, port, database, user)
}

/// The first line of `text` that matches.
pub fn find(text: &str, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    let wanted = [host, port.as_str(), database, user];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .find_map(|line| {
            let fields = split(line);
            if fields.len() != 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want);
            matches.then(|| fields[4].clone())
        })
}

/// The fields of a line, split at unescaped `:`, escapes undone.
fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(f)) = (chars.next(), fields.last_mut()) {
                    f.push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# team store\n\
        db.internal:5432:opsgate:opsgate:first\\:pw\n\
        db.internal:*:*:opsgate:second\n\
        *:*:*:*:fallback\\\\x\n";

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        assert_eq!(
            find(FILE, "db.internal", 5432, "opsgate", "opsgate").as_deref(),
            Some("first:pw")
        );
        assert_eq!(
            find(FILE, "db.internal", 6543, "other", "opsgate").as_deref(),
            Some("second")
        );
        assert_eq!(
            find(FILE, "elsewhere", 5432, "opsgate", "ro").as_deref(),
            Some("fallback\\x")
        );
        assert_eq!(find("# nothing\n\n", "h", 1, "d", "u"), None);
        assert_eq!(find("h:1:d:u\n", "h", 1, "d", "u"), None, "four fields");
    }

    #[test]
    fn a_file_others_may_read_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("pgpass");
        std::fs::write(&file, "*:*:*:*:secret\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(lookup(&file, "h", 5432, "d", "u"), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(
            lookup(&file, "h", 5432, "d", "u").as_deref(),
            Some("secret")
        );
    }
}
