//! The hash chain: how a record is sealed and how a sealed line is checked.
//!
//! A record's canonical bytes are its line without the trailing
//! `,"hash":"…"` member (and without the newline): the writer serializes
//! the record in a fixed field order, hashes those bytes, and appends
//! `hash` as the last member. Checking a line therefore needs no
//! re-serialization: split off the last member and hash the rest.

use std::borrow::Cow;
use std::fmt;

use hmac::{KeyInit, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
pub const HMAC_ALG: &str = "hmac-sha256";
const HASH_MEMBER: &[u8] = b",\"hash\":\"";

type HmacSha256 = hmac::Hmac<Sha256>;

/// The HMAC key of a keyed chain.
#[derive(Clone)]
pub struct AuditKey {
    bytes: Vec<u8>,
    id: String,
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditKey({})", self.id)
    }
}

pub const MIN_KEY_BYTES: usize = 16;

impl AuditKey {
    /// A key from its secret bytes; at least 16 of them.
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "an audit key needs at least {MIN_KEY_BYTES} bytes, got {}",
                bytes.len()
            ));
        }
        let mut h = Sha256::new();
        h.update(b"opsgate-audit-key-id/1\n");
        h.update(&bytes);
        let id = format!("k-{}", &hex::encode(h.finalize())[..12]);
        Ok(AuditKey { bytes, id })
    }

    /// The public key id recorded in each keyed record.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Seals and checks records: plain SHA-256, or HMAC-SHA256 under a key.
#[derive(Debug, Clone, Default)]
pub enum Sealer {
    #[default]
    Sha256,
    Hmac(AuditKey),
}

impl Sealer {
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Sealer::Sha256 => None,
            Sealer::Hmac(k) => Some(k.id()),
        }
    }

    pub fn alg(&self) -> Option<&'static str> {
        match self {
            Sealer::Sha256 => None,
            Sealer::Hmac(_) => Some(HMAC_ALG),
        }
    }

    /// The `hash` value for canonical bytes given in parts.
    fn seal_parts(&self, parts: &[&[u8]]) -> String {
        match self {
            Sealer::Sha256 => {
                let mut h = Sha256::new();
                parts.iter().for_each(|p| h.update(p));
                format!("sha256:{}", hex::encode(h.finalize()))
            }
            Sealer::Hmac(key) => {
                // HMAC takes keys of any length; new_from_slice cannot fail.
                let mut m = match HmacSha256::new_from_slice(&key.bytes) {
                    Ok(m) => m,
                    Err(_) => return String::from("hmac-sha256:invalid-key"),
                };
                parts.iter().for_each(|p| m.update(p));
                format!("{HMAC_ALG}:{}", hex::encode(m.finalize().into_bytes()))
            }
        }
    }

    /// Turns the canonical bytes of a record (a JSON object) into its line,
    /// newline included.
    pub(crate) fn seal(&self, mut canonical: Vec<u8>) -> (Vec<u8>, String) {
        let hash = self.seal_parts(&[&canonical]);
        canonical.pop(); // the closing brace
        canonical.extend_from_slice(HASH_MEMBER);
        canonical.extend_from_slice(hash.as_bytes());
        canonical.extend_from_slice(b"\"}\n");
        (canonical, hash)
    }
}

/// The chain fields of a record, read without parsing its payload.
#[derive(Debug, Deserialize)]
pub struct Header<'a> {
    pub v: u32,
    pub seq: u64,
    #[serde(borrow)]
    pub ts: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub alg: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub key_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub prev: Cow<'a, str>,
    #[serde(borrow)]
    pub hash: Cow<'a, str>,
}

/// Why one line does not check out on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineFault {
    BadJson(String),
    Version(u32),
    HashMismatch,
    /// Keyed and unkeyed records do not mix, and the key must match.
    Key(String),
}

/// Parses a line's header and checks its seal. `line` has no newline.
pub fn check_line<'a>(line: &'a [u8], sealer: &Sealer) -> Result<Header<'a>, LineFault> {
    let header: Header<'a> =
        serde_json::from_slice(line).map_err(|e| LineFault::BadJson(e.to_string()))?;
    if !(super::event::OLDEST_VERSION..=super::event::VERSION).contains(&header.v) {
        return Err(LineFault::Version(header.v));
    }
    match (sealer, header.alg.as_deref(), header.key_id.as_deref()) {
        (Sealer::Sha256, None, _) => {}
        (Sealer::Sha256, Some(alg), id) => {
            return Err(LineFault::Key(format!(
                "the record is sealed with {alg} (key {}); set OPSGATE_AUDIT_KEY or audit.key_file",
                id.unwrap_or("?")
            )));
        }
        (Sealer::Hmac(k), None, _) => {
            return Err(LineFault::Key(format!(
                "an unkeyed record in a log checked with key {}",
                k.id()
            )));
        }
        (Sealer::Hmac(k), Some(alg), id) => {
            if alg != HMAC_ALG || id != Some(k.id()) {
                return Err(LineFault::Key(format!(
                    "the record is sealed with {alg} key {}, not with key {}",
                    id.unwrap_or("?"),
                    k.id()
                )));
            }
        }
    }
    let Some(split) = hash_member_start(line) else {
        return Err(LineFault::BadJson("`hash` is not the last member".into()));
    };
    if sealer.seal_parts(&[&line[..split], b"}"]) != header.hash {
        return Err(LineFault::HashMismatch);
    }
    Ok(header)
}

/// Where the final `,"hash":"…"}` member starts, if the line ends with one.
fn hash_member_start(line: &[u8]) -> Option<usize> {
    if !line.ends_with(b"\"}") {
        return None;
    }
    let body = &line[..line.len() - 2];
    let start = body
        .windows(HASH_MEMBER.len())
        .rposition(|w| w == HASH_MEMBER)?;
    // The value itself never contains a quote or backslash.
    let value = &body[start + HASH_MEMBER.len()..];
    value
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b':' || *b == b'-')
        .then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_lines_check_and_any_byte_change_is_caught() {
        for sealer in [
            Sealer::Sha256,
            Sealer::Hmac(AuditKey::new(b"0123456789abcdef".to_vec()).unwrap()),
        ] {
            let alg = sealer
                .alg()
                .map(|a| format!(r#","alg":"{a}","key_id":"{}""#, sealer.key_id().unwrap()))
                .unwrap_or_default();
            let body = format!(r#"{{"v":1,"seq":1,"ts":"t","type":"x"{alg},"prev":"{GENESIS}"}}"#);
            let (line, _) = sealer.seal(body.into_bytes());
            let line = &line[..line.len() - 1];
            assert!(check_line(line, &sealer).is_ok());
            let edited = String::from_utf8(line.to_vec())
                .unwrap()
                .replace("\"x\"", "\"y\"");
            assert_eq!(
                check_line(edited.as_bytes(), &sealer).err(),
                Some(LineFault::HashMismatch)
            );
        }
    }

    #[test]
    fn keys_do_not_mix() {
        let k1 = Sealer::Hmac(AuditKey::new(vec![1; 32]).unwrap());
        let k2 = Sealer::Hmac(AuditKey::new(vec![2; 32]).unwrap());
        let body = format!(
            r#"{{"v":1,"seq":1,"ts":"t","type":"x","alg":"hmac-sha256","key_id":"{}","prev":"{GENESIS}"}}"#,
            k1.key_id().unwrap()
        );
        let (line, _) = k1.seal(body.into_bytes());
        let line = &line[..line.len() - 1];
        assert!(matches!(check_line(line, &k2), Err(LineFault::Key(_))));
        assert!(matches!(
            check_line(line, &Sealer::Sha256),
            Err(LineFault::Key(_))
        ));
        assert!(AuditKey::new(vec![0; 8]).is_err());
    }
}
