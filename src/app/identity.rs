//! Who is acting: looked up once, where a door starts, and passed down.
//! `--as NAME` when given, else the OS user.

use super::error::{Error, Result};

/// The OS user, for `--as` defaults: `$USER`, `$LOGNAME`, else the name
/// `/etc/passwd` gives the process's uid (the owner of `/proc/self`).
pub fn os_user() -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    if let Some(name) = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
    {
        return Ok(name);
    }
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|_| Error::Invalid("cannot tell who you are: pass --as NAME".into()))?;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    });
    Ok(name.unwrap_or_else(|| format!("uid-{uid}")))
}

/// The acting user: `--as NAME` (trimmed, not empty), or the OS user.
pub fn who(as_user: Option<&str>) -> Result<String> {
    match as_user {
        Some(name) if name.trim().is_empty() => Err(Error::Invalid("--as needs a name".into())),
        Some(name) => Ok(name.trim().to_owned()),
        None => os_user(),
    }
}
