//! Secret redaction: masks credentials in text with `[REDACTED]`.
//!
//! The audit log runs every string of an event through a [`Redactor`]
//! before the record is hashed and written, so a secret never reaches the
//! disk. Redaction errs on the side of masking: a false positive costs a
//! little readability, a false negative leaks a credential.
//!
//! The built-in patterns cover AWS keys, bearer tokens, JWTs, PEM private
//! keys, password flags and variables, secret query parameters and URL
//! credentials. The policy adds its own (`audit.redact`).

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use regex::{Regex, RegexSet};

use crate::core::quoting::Quoting;
use serde::{Deserialize, Serialize};

pub const MASK: &str = "[REDACTED]";

/// A pattern whose match is masked. When it has a group named `secret`,
/// only that group is masked, so `--password=hunter2` keeps its flag.
#[derive(Clone)]
pub struct RedactPattern {
    src: String,
    re: Regex,
    /// Whether the regex has a group named `secret`.
    secret_group: bool,
}

impl RedactPattern {
    pub fn new(src: &str) -> Result<Self, regex::Error> {
        let re = Regex::new(src)?;
        Ok(RedactPattern {
            src: src.to_owned(),
            secret_group: re.capture_names().flatten().any(|n| n == "secret"),
            re,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.src
    }

    /// Masks every match; borrows when nothing matched.
    fn apply<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let secret = self.secret_group;
        let mut out = String::new();
        let mut last = 0;
        for caps in self.re.captures_iter(text) {
            let m = if secret {
                caps.name("secret")
            } else {
                caps.get(0)
            };
            let Some(m) = m else { continue };
            if m.is_empty() || m.start() < last {
                continue;
            }
            out.push_str(&text[last..m.start()]);
            out.push_str(MASK);
            last = m.end();
        }
        if last == 0 {
            return Cow::Borrowed(text);
        }
        out.push_str(&text[last..]);
        Cow::Owned(out)
    }
}

impl fmt::Debug for RedactPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "regex({})", self.src)
    }
}

impl PartialEq for RedactPattern {
    fn eq(&self, other: &Self) -> bool {
        self.src == other.src
    }
}

impl<'de> Deserialize<'de> for RedactPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RedactPattern::new(&s).map_err(|e| {
            let first = e.to_string();
            let first = first.lines().last().unwrap_or_default().to_owned();
            serde::de::Error::custom(format!("invalid regex `{s}`: {first}"))
        })
    }
}

impl Serialize for RedactPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.src)
    }
}

/// The built-in patterns, in the order they are applied. PEM blocks go
/// first so their base64 body is masked whole.
const BUILTIN: &[&str] = &[
    // PEM private keys: the armor, optional headers, the base64 body (lines
    // of base64 only, separated by newlines or a literal `\n`) and the END
    // line. Only the key's own shape: a `;` or a space after the armor ends
    // the match, so text after a fake BEGIN line stays visible.
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:[ \t]*(?:\r?\n|\\n)(?:[A-Za-z0-9-]+:[^\n\\]*(?:\r?\n|\\n))*(?:[A-Za-z0-9+/=]+(?:\r?\n|\\n)?)*|[ \t]*[A-Za-z0-9+/=]+)?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----)?",
    // `Authorization: Bearer …`, `Bearer …` anywhere.
    r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/=-]+)",
    r"(?i)\bauthorization\s*[:=]\s*(?:basic|token|digest)?\s*(?P<secret>[A-Za-z0-9._~+/=-]{8,})",
    // JWTs: three base64url parts, the first a JSON header.
    r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
    // AWS access key ids.
    r"\b(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16}\b",
    // Secret-looking variables: PGPASSWORD=, MYSQL_PWD=, AWS_SECRET_ACCESS_KEY=…
    r"\b[A-Za-z_]*(?:PASSWORD|PASSWD|PWD|SECRET|TOKEN|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY)[A-Za-z0-9_]*\s*=\s*(?P<secret>'[^']*'|\x22[^\x22]*\x22|[^\s'\x22;&|]+)",
    // Flags: --password=…, --password …, --token …
    r"(?i)(?:^|[\s'\x22])--?(?:password|passwd|pass|token|secret|api-key|apikey|access-token|auth-token|client-secret|secret-access-key)(?:=|\s+)(?P<secret>'[^']*'|\x22[^\x22]*\x22|[^\s'\x22]+)",
    // mysql-family `-p<password>` (attached; `-p` alone prompts).
    r"\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlshow|mariadb|mariadb-dump)\b[^\n;|&]*?\s-p(?P<secret>[^\s'\x22]+)",
    // Query parameters and key: value pairs.
    r"(?i)[?&;](?:token|access_token|id_token|refresh_token|secret|client_secret|password|passwd|pwd|api_key|apikey|key|sig|signature|x-amz-signature|x-amz-security-token)=(?P<secret>[^&\s#'\x22]+)",
    r"(?i)\b(?:password|passwd|secret|token|api[_-]?key|secret[_-]?access[_-]?key|aws_secret_access_key|client[_-]?secret)\b\x22?\s*[:=]\s*(?P<secret>\x22[^\x22]*\x22|'[^']*'|[^\s,;&'\x22}]+)",
    // user:password@host in URLs.
    r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@]+:(?P<secret>[^/\s@]+)@",
];

static BUILTIN_PATTERNS: LazyLock<Vec<RedactPattern>> = LazyLock::new(|| {
    BUILTIN
        .iter()
        .filter_map(|p| RedactPattern::new(p).ok())
        .collect()
});

/// One pass over the text says which patterns can match at all, so clean
/// text (most of it) costs one scan instead of one per pattern.
static BUILTIN_SET: LazyLock<Option<RegexSet>> = LazyLock::new(|| RegexSet::new(BUILTIN).ok());

/// Masks secrets: the built-in patterns, then the policy's.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    extra: Vec<RedactPattern>,
    extra_set: Option<RegexSet>,
}

impl Redactor {
    pub fn new(extra: Vec<RedactPattern>) -> Self {
        let extra_set = RegexSet::new(extra.iter().map(RedactPattern::as_str)).ok();
        Redactor { extra, extra_set }
    }

    /// The text with every secret masked; borrows when nothing was masked.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut cur = Cow::Borrowed(text);
        let groups = [
            (&*BUILTIN_PATTERNS, BUILTIN_SET.as_ref()),
            (&self.extra, self.extra_set.as_ref()),
        ];
        for (patterns, set) in groups {
            // Without a set (it failed to build), try every pattern.
            let hits = set.map(|s| s.matches(text));
            for (i, p) in patterns.iter().enumerate() {
                if hits.as_ref().is_some_and(|h| !h.matched(i)) {
                    continue;
                }
                if let Cow::Owned(s) = p.apply(&cur) {
                    cur = Cow::Owned(s);
                }
            }
        }
        if let Cow::Owned(s) = mask_aws_secret_keys(&cur) {
            cur = Cow::Owned(s);
        }
        cur
    }

    /// The byte ranges of `text` that redaction masks, each pattern on the
    /// original text (merged where they overlap).
    pub fn spans(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        let mut spans: Vec<std::ops::Range<usize>> = Vec::new();
        for p in BUILTIN_PATTERNS.iter().chain(&self.extra) {
            for caps in p.re.captures_iter(text) {
                let m = if p.secret_group {
                    caps.name("secret")
                } else {
                    caps.get(0)
                };
                if let Some(m) = m.filter(|m| !m.is_empty()) {
                    spans.push(m.range());
                }
            }
        }
        spans.extend(aws_secret_key_spans(text));
        spans.sort_by_key(|r| r.start);
        let mut merged: Vec<std::ops::Range<usize>> = Vec::new();
        for r in spans {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        merged
    }

    /// Checks that redacting a command line would mask only secret values,
    /// never shell syntax that runs: the log must show what runs. Returns
    /// the first masked text that is more than a value: one that crosses an
    /// unquoted space, newline or operator, or holds a command substitution
    /// (`$(…)`, `` `…` ``) outside single quotes.
    pub fn masks_only_values(&self, command: &str) -> Result<(), String> {
        let quoting = crate::core::quoting::quoting(command);
        let b = command.as_bytes();
        for span in self.spans(command) {
            for i in span.clone() {
                let q = quoting.get(i).copied().unwrap_or(Quoting::Unquoted);
                let c = b[i];
                let syntax = match q {
                    Quoting::Literal => false,
                    Quoting::Unquoted => {
                        c.is_ascii_whitespace() || b";&|<>()`".contains(&c) || substitution_at(b, i)
                    }
                    Quoting::Expanding => c == b'`' || substitution_at(b, i),
                };
                if syntax {
                    return Err(command[span].to_owned());
                }
            }
        }
        Ok(())
    }

    /// Redacts a string in place.
    pub fn redact_in_place(&self, text: &mut String) {
        if let Cow::Owned(s) = self.redact(text) {
            *text = s;
        }
    }

    /// Redacts every string (and object key) inside a JSON value. A
    /// string or number under a secret-looking key (`db_password`,
    /// `api_token`, …) is masked whole, as `key=value` would be.
    pub fn redact_json(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => self.redact_in_place(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|i| self.redact_json(i)),
            serde_json::Value::Object(map) => {
                let old = std::mem::take(map);
                for (mut k, mut item) in old {
                    if is_secret_key(&k) && (item.is_string() || item.is_number()) {
                        item = serde_json::Value::String(MASK.to_owned());
                    } else {
                        self.redact_json(&mut item);
                    }
                    self.redact_in_place(&mut k);
                    map.insert(k, item);
                }
            }
            _ => {}
        }
    }
}

/// Whether a map key names a secret: it contains password, passwd, secret,
/// token, api_key/apikey, private_key, access_key or credential (any case,
/// `-` or `_`).
pub fn is_secret_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "privatekey",
        "accesskey",
        "credential",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// Whether a `$` at `i` starts a command substitution or arithmetic
/// (`$(`), which runs code; `$NAME` and `${NAME}` only read a variable.
fn substitution_at(b: &[u8], i: usize) -> bool {
    b[i] == b'$' && b.get(i + 1) == Some(&b'(')
}

/// AWS secret access keys have no prefix: a standalone run of exactly 40
/// base64 characters with upper case, lower case and a digit. Git and
/// SHA-1 hashes are lower-case hex, so they are left alone.
fn aws_secret_key_spans(text: &str) -> Vec<std::ops::Range<usize>> {
    let is_key_char = |b: u8| b.is_ascii_alphanumeric() || b == b'/' || b == b'+';
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_key_char(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_key_char(bytes[i]) {
            i += 1;
        }
        let run = &bytes[start..i];
        let looks_like_key = run.len() == 40
            && run.iter().any(u8::is_ascii_uppercase)
            && run.iter().any(u8::is_ascii_lowercase)
            && run.iter().any(u8::is_ascii_digit);
        if looks_like_key {
            spans.push(start..i);
        }
    }
    spans
}

fn mask_aws_secret_keys(text: &str) -> Cow<'_, str> {
    let spans = aws_secret_key_spans(text);
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for r in spans {
        out.push_str(&text[last..r.start]);
        out.push_str(MASK);
        last = r.end;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        Redactor::default().redact(s).into_owned()
    }

    #[test]
    fn builtin_patterns_compile() {
        assert_eq!(BUILTIN_PATTERNS.len(), BUILTIN.len());
    }

    #[test]
    fn masks_only_the_secret_part() {
        assert_eq!(
            r("mysql --password=hunter2 -h db"),
            "mysql --password=[REDACTED] -h db"
        );
        assert_eq!(
            r("mysql -uroot -phunter2 db"),
            "mysql -uroot -p[REDACTED] db"
        );
        assert_eq!(r("PGPASSWORD=s3cr3t psql"), "PGPASSWORD=[REDACTED] psql");
        assert_eq!(
            r("curl -H 'Authorization: Bearer abc.def-123' https://x"),
            "curl -H 'Authorization: Bearer [REDACTED]' https://x"
        );
        assert_eq!(
            r("curl https://bob:pw1@example.com/x?token=t0k&x=1"),
            "curl https://bob:[REDACTED]@example.com/x?token=[REDACTED]&x=1"
        );
    }

    #[test]
    fn leaves_ordinary_commands_alone() {
        for s in [
            "mkdir -p /tmp/x",
            "docker run -p 8080:80 web",
            "ssh -p 22 host",
            "git checkout 3f786850e387550fdab836ed7e6dc881de23001b",
            "kubectl create secret generic app --from-file=cfg",
            "kubectl scale deployment api --replicas=5 -n staging",
        ] {
            assert_eq!(r(s), s);
        }
    }

    #[test]
    fn masks_aws_keys_jwts_and_pem_blocks() {
        let out = r("AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        assert_eq!(out, "[REDACTED] [REDACTED]");
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature_x";
        assert_eq!(r(&format!("t {jwt} t")), "t [REDACTED] t");
        let pem =
            "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\nabcd\n-----END RSA PRIVATE KEY-----\nb";
        assert_eq!(r(pem), "a\n[REDACTED]\nb");
        // A block whose END was cut off (output truncated) is masked whole.
        assert_eq!(
            r("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\nkqhkiG9w0B"),
            "[REDACTED]"
        );
        // In a quoted string with literal `\n`s, as commands carry keys.
        assert_eq!(
            r(
                "printf '-----BEGIN EC PRIVATE KEY-----\\nMHcCAQE\\n-----END EC PRIVATE KEY-----' > k"
            ),
            "printf '[REDACTED]' > k"
        );
    }

    /// Hardening 8: a fake BEGIN line masked the rest of the command, so
    /// the log never showed the `rm -rf` that ran. Only the key's own
    /// shape is masked now.
    #[test]
    fn a_fake_pem_armor_masks_nothing_after_it() {
        assert_eq!(
            r("echo '-----BEGIN RSA PRIVATE KEY-----'; rm -rf /srv"),
            "echo '[REDACTED]'; rm -rf /srv"
        );
        assert_eq!(
            r("echo -----BEGIN RSA PRIVATE KEY----- && rm -rf /srv"),
            "echo [REDACTED] && rm -rf /srv"
        );
    }

    #[test]
    fn masking_anything_but_a_value_is_refused() {
        let red = Redactor::default();
        for ok in [
            "mysql --password=hunter2 -h db",
            "PGPASSWORD='a b; c' psql",
            "curl -H 'Authorization: Bearer abc.def-123' https://x",
            "cat > k <<'EOF'\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\nEOF\nchmod 600 k",
            "mysql --password=$DB_PASS db",
            "kubectl get pods",
        ] {
            assert_eq!(red.masks_only_values(ok), Ok(()), "{ok}");
        }
        for (bad, hidden) in [
            (
                "echo x\n-----BEGIN RSA PRIVATE KEY-----\nreboot\n-----END RSA PRIVATE KEY-----",
                "reboot",
            ),
            ("PGPASSWORD=\"$(rm -rf /srv)\" psql", "$(rm"),
            ("mysql --password=`rm -rf /` db", "`rm"),
            ("mysql --password=$(id) db", "$(id)"),
        ] {
            let got = red.masks_only_values(bad).unwrap_err();
            assert!(got.contains(hidden), "{bad}: {got}");
        }
    }

    #[test]
    fn policy_patterns_apply_with_or_without_a_secret_group() {
        let red = Redactor::new(vec![
            RedactPattern::new(r"corp-[0-9]{6}").unwrap(),
            RedactPattern::new(r"pin (?P<secret>\d+)").unwrap(),
        ]);
        assert_eq!(
            red.redact("id corp-123456 pin 4242"),
            "id [REDACTED] pin [REDACTED]"
        );
    }

    #[test]
    fn values_under_secret_keys_are_masked_whole() {
        let mut v = serde_json::json!({"params": {"db_password": "plain", "API-Token": 1234, "replicas": "5"}});
        Redactor::default().redact_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"params": {"db_password": "[REDACTED]", "API-Token": "[REDACTED]", "replicas": "5"}})
        );
    }

    #[test]
    fn json_values_are_redacted_everywhere() {
        let mut v = serde_json::json!({"a": ["PGPASSWORD=x1 psql"], "password=k": {"n": 1}});
        Redactor::default().redact_json(&mut v);
        let s = v.to_string();
        assert!(!s.contains("x1") && s.contains("[REDACTED]"), "{s}");
        assert!(!s.contains("password=k"), "{s}");
    }
}
