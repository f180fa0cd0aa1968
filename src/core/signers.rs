//! OpenSSH `allowed_signers` parsing and `sshsig` signature verification.
//!
//! This module is pure: text in, values out. It never reads files, the clock,
//! the environment or spawns processes; the verification time is passed in.
//!
//! # Semantics
//!
//! [`AllowedSigners::verify`] mirrors
//! `ssh-keygen -Y verify -f allowed_signers -I principal -n namespace -s sig`
//! (OpenSSH 9.2, `sshsig.c`):
//!
//! * The signature must be a well-formed armored `SSHSIG` blob whose
//!   namespace equals the expected namespace and which cryptographically
//!   verifies over the message. RSA signatures must use `rsa-sha2-256` or
//!   `rsa-sha2-512` (SHA-1 `ssh-rsa` is refused, as in OpenSSH). The
//!   `reserved` field of the signature is ignored, as in OpenSSH.
//! * A plain signing key is accepted when it is listed on a line that is not
//!   `cert-authority` and whose principals pattern-list matches the principal.
//! * A certificate signing key (embedded in the signature by
//!   `ssh-keygen -Y sign -f user-cert.pub`) is accepted when its CA key is
//!   listed on a `cert-authority` line whose principals match, it is a user
//!   certificate, it is valid at the verification time
//!   (`valid_after <= at < valid_before`), its principal list is not empty
//!   and contains the principal exactly (no patterns), and its CA signature
//!   verifies. As in OpenSSH, a certificate never matches a plain line listing
//!   its underlying key, and a CA key signing directly is not a signer. As in
//!   OpenSSH, certificate critical options and extensions are not
//!   interpreted for signatures.
//! * The line's `namespaces="…"` pattern-list (if present) must match the
//!   namespace, and the time must satisfy `valid-after <= at <= valid-before`
//!   (both inclusive, second resolution, as in OpenSSH).
//!
//! Lines are independent: the signature is accepted when any one line accepts
//! it. When none does, the error describes the first line (in file order)
//! that listed the key for the principal, or says the key is not listed.
//!
//! # Differences from OpenSSH
//!
//! * Every line is parsed up front; any malformed line is an error naming its
//!   1-based line number (OpenSSH only parses lines whose principals match).
//! * Timestamps without a `Z` (or `UTC`) suffix are interpreted as UTC, not
//!   in the local time zone as OpenSSH does.
//! * Certificates cannot be listed as keys on a line; `ssh-dss` keys parse but
//!   their signatures never verify.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use ssh_key::certificate::CertType;
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, Certificate, Fingerprint, HashAlg, PublicKey, SshSig};

/// OpenSSH refuses sub-patterns of this length or longer (`match.c`).
const MAX_SUBPATTERN: usize = 1023;

/// Where an [`Entry`] came from, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A line of an allowed-signers file (1-based).
    Line(usize),
    /// An entry built with [`Entry::parse_key_line`].
    Inline,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line(n) => write!(f, "allowed signers line {n}"),
            Origin::Inline => f.write_str("inline entry"),
        }
    }
}

/// What is wrong with one allowed-signers line (or inline key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// The line has principals but no key.
    #[error("missing key")]
    MissingKey,
    /// The principals field is empty.
    #[error("empty principals")]
    EmptyPrincipals,
    /// An inline principal name is empty or contains pattern characters.
    #[error("invalid principal `{0}` (must be non-empty without whitespace, `,`, `*`, `?` or `!`)")]
    InvalidPrincipal(String),
    /// A quote was opened and never closed.
    #[error("unterminated quote in `{0}`")]
    UnterminatedQuote(String),
    /// An option name that allowed-signers does not know.
    #[error("unknown option `{0}`")]
    UnknownOption(String),
    /// The option list ends with a comma.
    #[error("unexpected end of options after `{0}`")]
    TrailingComma(String),
    /// The same option appears twice.
    #[error("duplicate option `{0}`")]
    DuplicateOption(String),
    /// An option value is not double-quoted.
    #[error("option `{0}` needs a double-quoted value")]
    UnquotedValue(String),
    /// A `valid-after`/`valid-before` value is not `YYYYMMDD[HHMM[SS]][Z]`.
    #[error("bad timestamp `{value}` for `{option}` (expected YYYYMMDD[HHMM[SS]][Z])")]
    BadTimestamp {
        /// The option name.
        option: String,
        /// The offending value.
        value: String,
    },
    /// `valid-before` is not after `valid-after`.
    #[error("valid-before `{valid_before}` is not after valid-after `{valid_after}`")]
    EmptyValidity {
        /// The `valid-after` value as written.
        valid_after: String,
        /// The `valid-before` value as written.
        valid_before: String,
    },
    /// The key type is not one this module can use.
    #[error("unsupported key type `{0}`")]
    UnsupportedKeyType(String),
    /// A certificate was listed where a key is expected.
    #[error(
        "certificate type `{0}` cannot be listed; list the certificate authority key with cert-authority"
    )]
    CertificateListed(String),
    /// The key type has no base64 key data after it.
    #[error("missing base64 key data after `{0}`")]
    MissingKeyData(String),
    /// The base64 key data does not decode to a key of the stated type.
    #[error("invalid `{key_type}` key data `{value}`: {reason}")]
    BadKey {
        /// The key type token.
        key_type: String,
        /// The offending base64 data (shortened).
        value: String,
        /// Why it was refused.
        reason: String,
    },
}

/// An allowed-signers file or inline entry could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignersError {
    /// A line of an allowed-signers file is malformed.
    #[error("allowed signers line {line}: {error}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        error: LineError,
    },
    /// An inline key for a principal is malformed.
    #[error("inline key for principal `{principal}`: {error}")]
    Inline {
        /// The principal the key was given for.
        principal: String,
        /// What is wrong.
        error: LineError,
    },
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The armor or the `SSHSIG` encoding is malformed.
    #[error("malformed ssh signature: {0}")]
    Malformed(String),
    /// The signature was made for another namespace.
    #[error("signature namespace `{found}` does not match expected namespace `{expected}`")]
    WrongNamespace {
        /// The namespace the caller expects.
        expected: String,
        /// The namespace inside the signature.
        found: String,
    },
    /// The signature algorithm is refused (e.g. SHA-1 `ssh-rsa`).
    #[error("signature algorithm `{0}` is not accepted")]
    UnsupportedAlgorithm(String),
    /// The signature does not verify over the message with the embedded key.
    #[error("signature by key {fingerprint} does not verify over the message")]
    BadSignature {
        /// Fingerprint of the key embedded in the signature.
        fingerprint: String,
    },
    /// No usable line lists the plain signing key for the principal.
    #[error("key {fingerprint} is not listed for principal `{principal}`")]
    KeyNotListed {
        /// The claimed principal.
        principal: String,
        /// Fingerprint of the signing key.
        fingerprint: String,
    },
    /// The matching line restricts namespaces and this one is not allowed.
    #[error(
        "{origin}: key for `{principal}` is not permitted in namespace `{namespace}` (namespaces=\"{allowed}\")"
    )]
    NamespaceNotAllowed {
        /// The line that matched.
        origin: Origin,
        /// The claimed principal.
        principal: String,
        /// The signature namespace.
        namespace: String,
        /// The line's namespaces pattern-list.
        allowed: String,
    },
    /// The matching line's `valid-after` is later than the verification time.
    #[error("{origin}: key is not yet valid (valid-after {valid_after})")]
    LineNotYetValid {
        /// The line that matched.
        origin: Origin,
        /// The line's `valid-after`.
        valid_after: DateTime<Utc>,
    },
    /// The matching line's `valid-before` is earlier than the verification time.
    #[error("{origin}: key has expired (valid-before {valid_before})")]
    LineExpired {
        /// The line that matched.
        origin: Origin,
        /// The line's `valid-before`.
        valid_before: DateTime<Utc>,
    },
    /// No `cert-authority` line for the principal lists the certificate's CA.
    #[error("certificate authority {ca_fingerprint} is not trusted for principal `{principal}`")]
    CaNotTrusted {
        /// The claimed principal.
        principal: String,
        /// Fingerprint of the CA that signed the certificate.
        ca_fingerprint: String,
    },
    /// The certificate is a host certificate.
    #[error("certificate `{key_id}` is not a user certificate")]
    NotUserCertificate {
        /// The certificate's key id.
        key_id: String,
    },
    /// The certificate's validity starts after the verification time.
    #[error("certificate `{key_id}` is not yet valid (valid after {})", unix_display(.valid_after))]
    CertificateNotYetValid {
        /// The certificate's key id.
        key_id: String,
        /// The certificate's `valid_after` (unix seconds).
        valid_after: u64,
    },
    /// The certificate's validity ended at or before the verification time.
    #[error("certificate `{key_id}` has expired (valid before {})", unix_display(.valid_before))]
    CertificateExpired {
        /// The certificate's key id.
        key_id: String,
        /// The certificate's `valid_before` (unix seconds).
        valid_before: u64,
    },
    /// The certificate lists no principals (OpenSSH refuses these for signatures).
    #[error("certificate `{key_id}` lists no principals")]
    CertificateNoPrincipals {
        /// The certificate's key id.
        key_id: String,
    },
    /// The certificate does not list the claimed principal.
    #[error("certificate `{key_id}` is not valid for principal `{principal}` (it lists `{}`)", .listed.join(","))]
    CertificatePrincipalMismatch {
        /// The certificate's key id.
        key_id: String,
        /// The claimed principal.
        principal: String,
        /// The certificate's principals.
        listed: Vec<String>,
    },
    /// The certificate's CA signature does not verify.
    #[error("certificate `{key_id}` has an invalid signature from ca {ca_fingerprint}")]
    CertificateSignatureInvalid {
        /// The certificate's key id.
        key_id: String,
        /// Fingerprint of the CA named in the certificate.
        ca_fingerprint: String,
    },
}

/// Details of an accepted signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The principal the signature was accepted for.
    pub principal: String,
    /// `SHA256:…` fingerprint of the signing key (of the key inside the
    /// certificate for certificates), as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// Algorithm name of the signing key, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// Set when the signing key was a certificate.
    pub certificate: Option<CertificateInfo>,
    /// The allowed-signers entry that accepted the signature.
    pub origin: Origin,
}

/// Certificate details of an accepted signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The certificate's key id (`ssh-keygen -s … -I keyid`).
    pub key_id: String,
    /// The certificate's serial number.
    pub serial: u64,
    /// `SHA256:…` fingerprint of the CA key that signed the certificate.
    pub ca_fingerprint: String,
}

/// One allowed-signers line: principals, options and a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    principals: String,
    cert_authority: bool,
    namespaces: Option<String>,
    valid_after: Option<DateTime<Utc>>,
    valid_before: Option<DateTime<Utc>>,
    key: PublicKey,
    origin: Origin,
}

impl Entry {
    /// Parse `[options] TYPE BASE64 [comment]` as the key of a single literal
    /// principal, e.g. an inline policy entry `{name, keys: ["ssh-ed25519 AAAA…"]}`.
    ///
    /// Options use the allowed-signers syntax (`namespaces="…"`, …). The
    /// principal is a literal name; pattern characters are refused.
    ///
    /// # Errors
    /// [`SignersError::Inline`] naming the principal and the bad value.
    pub fn parse_key_line(principal: &str, key_line: &str) -> Result<Entry, SignersError> {
        let wrap = |error| SignersError::Inline {
            principal: principal.to_string(),
            error,
        };
        if principal.is_empty()
            || principal
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, ',' | '*' | '?' | '!' | '"'))
        {
            return Err(wrap(LineError::InvalidPrincipal(principal.to_string())));
        }
        let rest = key_line.trim_matches(is_ws);
        if rest.is_empty() {
            return Err(wrap(LineError::MissingKey));
        }
        parse_options_and_key(principal.to_string(), rest, Origin::Inline).map_err(wrap)
    }

    /// The principals pattern-list (comma-separated, `*`, `?`, `!negation`).
    pub fn principals(&self) -> &str {
        &self.principals
    }

    /// Whether the key is a certificate authority (`cert-authority`).
    pub fn is_cert_authority(&self) -> bool {
        self.cert_authority
    }

    /// The `namespaces` pattern-list, if restricted.
    pub fn namespaces(&self) -> Option<&str> {
        self.namespaces.as_deref()
    }

    /// The `valid-after` time, if any.
    pub fn valid_after(&self) -> Option<DateTime<Utc>> {
        self.valid_after
    }

    /// The `valid-before` time, if any.
    pub fn valid_before(&self) -> Option<DateTime<Utc>> {
        self.valid_before
    }

    /// The listed key (a CA key for `cert-authority` entries).
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// Where this entry came from.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    fn matches_principal(&self, principal: &str) -> bool {
        match_pattern_list(principal, &self.principals)
    }

    /// Check the line options (namespaces, validity) for `namespace` at `at`.
    fn check_options(
        &self,
        principal: &str,
        namespace: &str,
        at: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        if let Some(allowed) = &self.namespaces
            && !match_pattern_list(namespace, allowed)
        {
            return Err(VerifyError::NamespaceNotAllowed {
                origin: self.origin,
                principal: principal.to_string(),
                namespace: namespace.to_string(),
                allowed: allowed.clone(),
            });
        }
        let t = at.timestamp();
        if let Some(va) = self.valid_after
            && t < va.timestamp()
        {
            return Err(VerifyError::LineNotYetValid {
                origin: self.origin,
                valid_after: va,
            });
        }
        if let Some(vb) = self.valid_before
            && t > vb.timestamp()
        {
            return Err(VerifyError::LineExpired {
                origin: self.origin,
                valid_before: vb,
            });
        }
        Ok(())
    }

    /// Literal principals of this entry: positive sub-patterns without
    /// wildcards that the pattern-list actually accepts.
    fn literal_principals(&self) -> impl Iterator<Item = &str> {
        self.principals.split(',').filter(move |p| {
            !p.is_empty()
                && !p.starts_with('!')
                && !p.contains(['*', '?'])
                && match_pattern_list(p, &self.principals)
        })
    }
}

/// A parsed allowed-signers list, indexed by key for fast lookups.
#[derive(Debug, Clone, Default)]
pub struct AllowedSigners {
    entries: Vec<Entry>,
    /// Plain (non-`cert-authority`) entries by key.
    plain: HashMap<KeyData, Vec<usize>>,
    /// `cert-authority` entries by CA key.
    authorities: HashMap<KeyData, Vec<usize>>,
}

impl AllowedSigners {
    /// Parse the text of an OpenSSH `allowed_signers` file.
    ///
    /// # Errors
    /// [`SignersError::Line`] for the first malformed line, naming its
    /// 1-based number and the offending value.
    pub fn parse(text: &str) -> Result<AllowedSigners, SignersError> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            if let Some(entry) =
                parse_line(raw, line).map_err(|error| SignersError::Line { line, error })?
            {
                entries.push(entry);
            }
        }
        Ok(AllowedSigners::from_entries(entries))
    }

    /// Build from entries (e.g. [`Entry::parse_key_line`] results, possibly
    /// combined with [`AllowedSigners::into_entries`] of a parsed file).
    pub fn from_entries(entries: Vec<Entry>) -> AllowedSigners {
        let mut plain: HashMap<KeyData, Vec<usize>> = HashMap::new();
        let mut authorities: HashMap<KeyData, Vec<usize>> = HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            let index = if entry.cert_authority {
                &mut authorities
            } else {
                &mut plain
            };
            index
                .entry(entry.key.key_data().clone())
                .or_default()
                .push(i);
        }
        AllowedSigners {
            entries,
            plain,
            authorities,
        }
    }

    /// The entries, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Take the entries out, e.g. to combine with inline entries.
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Verify an armored SSH signature (`-----BEGIN SSH SIGNATURE-----`) over
    /// `message`, as `principal` in `namespace`, at time `at`.
    ///
    /// Mirrors `ssh-keygen -Y verify -I principal -n namespace`; see the
    /// module documentation for the exact rules.
    ///
    /// # Errors
    /// A [`VerifyError`] describing the first check that failed.
    pub fn verify(
        &self,
        principal: &str,
        namespace: &str,
        message: &[u8],
        armored_sig: &str,
        at: DateTime<Utc>,
    ) -> Result<Verified, VerifyError> {
        let sig = SshSig::from_pem(armored_sig.trim())
            .map_err(|e| VerifyError::Malformed(lower_first(&e.to_string())))?;
        if sig.namespace() != namespace {
            return Err(VerifyError::WrongNamespace {
                expected: namespace.to_string(),
                found: sig.namespace().to_string(),
            });
        }
        let (signer, cert) = match sig.public_key() {
            KeyData::Certificate(cert) => (cert.public_key(), Some(cert.as_ref())),
            key => (key, None),
        };
        let fingerprint = fingerprint_key_data(signer);
        check_signature(signer, &sig, message, &fingerprint)?;

        match cert {
            None => self.authorize_plain(principal, namespace, at, signer, fingerprint),
            Some(cert) => self.authorize_certificate(principal, namespace, at, cert, fingerprint),
        }
    }

    fn authorize_plain(
        &self,
        principal: &str,
        namespace: &str,
        at: DateTime<Utc>,
        key: &KeyData,
        fingerprint: String,
    ) -> Result<Verified, VerifyError> {
        let mut first_error = None;
        for entry in self.lookup(&self.plain, key) {
            if !entry.matches_principal(principal) {
                continue;
            }
            match entry.check_options(principal, namespace, at) {
                Ok(()) => {
                    return Ok(Verified {
                        principal: principal.to_string(),
                        fingerprint,
                        algorithm: key.algorithm().as_str().to_string(),
                        certificate: None,
                        origin: entry.origin,
                    });
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(VerifyError::KeyNotListed {
            principal: principal.to_string(),
            fingerprint,
        }))
    }

    fn authorize_certificate(
        &self,
        principal: &str,
        namespace: &str,
        at: DateTime<Utc>,
        cert: &Certificate,
        fingerprint: String,
    ) -> Result<Verified, VerifyError> {
        let ca_key = cert.signature_key();
        let ca_fingerprint = fingerprint_key_data(ca_key);
        let candidates: Vec<&Entry> = self
            .lookup(&self.authorities, ca_key)
            .filter(|e| e.matches_principal(principal))
            .collect();
        if candidates.is_empty() {
            return Err(VerifyError::CaNotTrusted {
                principal: principal.to_string(),
                ca_fingerprint,
            });
        }
        check_certificate(cert, Some(principal), at, ca_key, &ca_fingerprint)?;

        let mut first_error = None;
        for entry in candidates {
            match entry.check_options(principal, namespace, at) {
                Ok(()) => {
                    return Ok(Verified {
                        principal: principal.to_string(),
                        fingerprint,
                        algorithm: cert.public_key().algorithm().as_str().to_string(),
                        certificate: Some(CertificateInfo {
                            key_id: cert.key_id().to_string(),
                            serial: cert.serial(),
                            ca_fingerprint,
                        }),
                        origin: entry.origin,
                    });
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(VerifyError::CaNotTrusted {
            principal: principal.to_string(),
            ca_fingerprint,
        }))
    }

    /// The literal principals `key` may sign as in `namespace` at `at`, like
    /// `ssh-keygen -Y find-principals` (which ignores namespaces).
    ///
    /// For a plain key: the non-wildcard, non-negated principals of every
    /// non-`cert-authority` line listing the key whose options permit
    /// `namespace` at `at`. For a certificate that is valid at `at` and signed
    /// by a listed CA: the certificate's principals that a permitting
    /// `cert-authority` line accepts. In file order, without duplicates.
    pub fn principals_for_key(
        &self,
        key: &PublicKey,
        namespace: &str,
        at: DateTime<Utc>,
    ) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        let mut push = |p: &str| {
            if !found.iter().any(|f| f == p) {
                found.push(p.to_string());
            }
        };
        match key.key_data() {
            KeyData::Certificate(cert) => {
                let ca_key = cert.signature_key();
                let ca_fingerprint = fingerprint_key_data(ca_key);
                if check_certificate(cert, None, at, ca_key, &ca_fingerprint).is_err() {
                    return Vec::new();
                }
                for entry in self.lookup(&self.authorities, ca_key) {
                    for p in cert.valid_principals() {
                        if entry.matches_principal(p)
                            && entry.check_options(p, namespace, at).is_ok()
                        {
                            push(p);
                        }
                    }
                }
            }
            plain => {
                for entry in self.lookup(&self.plain, plain) {
                    if entry.check_options("", namespace, at).is_ok() {
                        entry.literal_principals().for_each(&mut push);
                    }
                }
            }
        }
        found
    }

    fn lookup<'a>(
        &'a self,
        index: &'a HashMap<KeyData, Vec<usize>>,
        key: &KeyData,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        index
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.entries.get(i))
    }
}

/// `SHA256:…` fingerprint of a key, as `ssh-keygen -l` prints it. For a
/// certificate, the fingerprint of the certified key (as OpenSSH does).
pub fn fingerprint(key: &PublicKey) -> String {
    fingerprint_key_data(key.key_data())
}

fn fingerprint_key_data(key: &KeyData) -> String {
    match key {
        KeyData::Certificate(cert) => cert.public_key().fingerprint(HashAlg::Sha256),
        key => key.fingerprint(HashAlg::Sha256),
    }
    .to_string()
}

/// Verify the `SSHSIG` signature cryptographically with `signer` (the plain
/// key, also for certificates). The signed data is rebuilt with an empty
/// `reserved` field, exactly as OpenSSH verifies it.
fn check_signature(
    signer: &KeyData,
    sig: &SshSig,
    message: &[u8],
    fingerprint: &str,
) -> Result<(), VerifyError> {
    let algorithm = sig.algorithm();
    if matches!(algorithm, Algorithm::Rsa { hash: None }) {
        return Err(VerifyError::UnsupportedAlgorithm(
            algorithm.as_str().to_string(),
        ));
    }
    let bad = || VerifyError::BadSignature {
        fingerprint: fingerprint.to_string(),
    };
    let canonical = SshSig::new(
        signer.clone(),
        sig.namespace(),
        sig.hash_alg(),
        sig.signature().clone(),
    )
    .map_err(|_| bad())?;
    PublicKey::new(signer.clone(), "")
        .verify(sig.namespace(), message, &canonical)
        .map_err(|_| bad())
}

/// Certificate checks that do not depend on the allowed-signers line:
/// user type, validity at `at`, principal (when given) and CA signature.
fn check_certificate(
    cert: &Certificate,
    principal: Option<&str>,
    at: DateTime<Utc>,
    ca_key: &KeyData,
    ca_fingerprint: &str,
) -> Result<(), VerifyError> {
    let key_id = || cert.key_id().to_string();
    if cert.cert_type() != CertType::User {
        return Err(VerifyError::NotUserCertificate { key_id: key_id() });
    }
    let now = u64::try_from(at.timestamp()).unwrap_or(0);
    if now < cert.valid_after() || at.timestamp() < 0 {
        return Err(VerifyError::CertificateNotYetValid {
            key_id: key_id(),
            valid_after: cert.valid_after(),
        });
    }
    if now >= cert.valid_before() {
        return Err(VerifyError::CertificateExpired {
            key_id: key_id(),
            valid_before: cert.valid_before(),
        });
    }
    let listed = cert.valid_principals();
    if listed.is_empty() {
        return Err(VerifyError::CertificateNoPrincipals { key_id: key_id() });
    }
    if let Some(principal) = principal
        && !listed.iter().any(|p| p == principal)
    {
        return Err(VerifyError::CertificatePrincipalMismatch {
            key_id: key_id(),
            principal: principal.to_string(),
            listed: listed.to_vec(),
        });
    }
    // Verifies the CA signature over the certificate, that the signing key is
    // the one we trust, and (again) the validity window.
    let trusted = Fingerprint::new(HashAlg::Sha256, ca_key);
    cert.validate_at(now, [&trusted])
        .map_err(|_| VerifyError::CertificateSignatureInvalid {
            key_id: key_id(),
            ca_fingerprint: ca_fingerprint.to_string(),
        })
}

fn unix_display(secs: &u64) -> String {
    if *secs == u64::MAX {
        return "forever".to_string();
    }
    i64::try_from(*secs)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .map_or_else(|| secs.to_string(), |t| t.to_string())
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Parse one line; `None` for blank and comment lines.
fn parse_line(raw: &str, line: usize) -> Result<Option<Entry>, LineError> {
    let s = raw.trim_start_matches(is_ws);
    if s.is_empty() || s.starts_with('#') {
        return Ok(None);
    }
    let (principals, rest) = split_principals(s)?;
    if principals.is_empty() {
        return Err(LineError::EmptyPrincipals);
    }
    parse_options_and_key(principals, rest, Origin::Line(line)).map(Some)
}

/// Split off the principals field like OpenSSH's `strdelimw`: up to the first
/// whitespace, or a double-quoted section (quotes removed).
fn split_principals(s: &str) -> Result<(String, &str), LineError> {
    let Some(i) = s.find(|c| is_ws(c) || c == '"') else {
        return Err(LineError::MissingKey);
    };
    let (before, after) = s.split_at(i);
    let (token, rest) = if let Some(quoted) = after.strip_prefix('"') {
        let Some(end) = quoted.find('"') else {
            return Err(LineError::UnterminatedQuote(s.to_string()));
        };
        let (inner, tail) = quoted.split_at(end);
        (format!("{before}{inner}"), tail.get(1..).unwrap_or(""))
    } else {
        (before.to_string(), after)
    };
    let rest = rest.trim_start_matches(is_ws);
    if rest.is_empty() {
        return Err(LineError::MissingKey);
    }
    Ok((token, rest))
}

/// Options of one line.
#[derive(Default)]
struct LineOptions {
    cert_authority: bool,
    namespaces: Option<String>,
    valid_after: Option<DateTime<Utc>>,
    valid_before: Option<DateTime<Utc>>,
}

/// Parse `[options] TYPE BASE64 [comment]`.
fn parse_options_and_key(principals: String, s: &str, origin: Origin) -> Result<Entry, LineError> {
    let first = s.split(is_ws).next().unwrap_or("");
    let (options, key_text) = if looks_like_key_type(first) {
        (LineOptions::default(), s)
    } else {
        let (options, rest) = parse_options(s)?;
        let rest = rest.trim_start_matches(is_ws);
        if rest.is_empty() {
            return Err(LineError::MissingKey);
        }
        (options, rest)
    };
    Ok(Entry {
        principals,
        cert_authority: options.cert_authority,
        namespaces: options.namespaces,
        valid_after: options.valid_after,
        valid_before: options.valid_before,
        key: parse_key(key_text)?,
        origin,
    })
}

/// Whether the token names a key type (rather than starting options).
fn looks_like_key_type(token: &str) -> bool {
    !token.contains(['=', '"', ','])
        && (Algorithm::new_certificate(token).is_ok() || Algorithm::new(token).is_ok())
}

/// Parse `TYPE BASE64 [comment]`.
fn parse_key(s: &str) -> Result<PublicKey, LineError> {
    let mut parts = s.splitn(2, is_ws);
    let key_type = parts.next().unwrap_or("");
    let rest = parts.next().unwrap_or("").trim_start_matches(is_ws);
    let mut parts = rest.splitn(2, is_ws);
    let data = parts.next().unwrap_or("");
    let comment = parts.next().unwrap_or("").trim_matches(is_ws);

    if Algorithm::new_certificate(key_type).is_ok() {
        return Err(LineError::CertificateListed(key_type.to_string()));
    }
    match Algorithm::new(key_type) {
        Ok(Algorithm::Other(_)) | Err(_) => {
            return Err(LineError::UnsupportedKeyType(key_type.to_string()));
        }
        Ok(_) => {}
    }
    if data.is_empty() {
        return Err(LineError::MissingKeyData(key_type.to_string()));
    }
    let bad = |reason: String| LineError::BadKey {
        key_type: key_type.to_string(),
        value: shorten(data),
        reason,
    };
    let mut key = PublicKey::from_openssh(&format!("{key_type} {data}"))
        .map_err(|e| bad(lower_first(&e.to_string())))?;
    if key.key_data().is_certificate() || key.key_data().is_other() {
        return Err(bad("not a plain public key".to_string()));
    }
    key.set_comment(comment);
    Ok(key)
}

fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Parse the comma-separated options at the start of `s` into `entry`;
/// returns the text after them. Option names are case-insensitive.
fn parse_options(s: &str) -> Result<(LineOptions, &str), LineError> {
    let mut entry = LineOptions::default();
    let mut rest = s;
    let mut after_text: Option<String> = None;
    let mut before_text: Option<String> = None;
    loop {
        let option_start = rest;
        if let Some(r) = strip_prefix_ci(rest, "cert-authority") {
            entry.cert_authority = true;
            rest = r;
        } else if let Some(r) = strip_prefix_ci(rest, "namespaces=") {
            if entry.namespaces.is_some() {
                return Err(LineError::DuplicateOption("namespaces".to_string()));
            }
            let (value, r) = dequote(r, "namespaces")?;
            entry.namespaces = Some(value);
            rest = r;
        } else if let Some(r) = strip_prefix_ci(rest, "valid-after=") {
            if entry.valid_after.is_some() {
                return Err(LineError::DuplicateOption("valid-after".to_string()));
            }
            let (value, r) = dequote(r, "valid-after")?;
            entry.valid_after = Some(parse_timestamp("valid-after", &value)?);
            after_text = Some(value);
            rest = r;
        } else if let Some(r) = strip_prefix_ci(rest, "valid-before=") {
            if entry.valid_before.is_some() {
                return Err(LineError::DuplicateOption("valid-before".to_string()));
            }
            let (value, r) = dequote(r, "valid-before")?;
            entry.valid_before = Some(parse_timestamp("valid-before", &value)?);
            before_text = Some(value);
            rest = r;
        } else {
            return Err(LineError::UnknownOption(option_name(option_start)));
        }
        match rest.chars().next() {
            None => break,
            Some(c) if is_ws(c) => break,
            Some(',') => {
                rest = &rest[1..];
                if rest.is_empty() || rest.starts_with(is_ws) {
                    return Err(LineError::TrailingComma(
                        s[..s.len() - rest.len()].to_string(),
                    ));
                }
            }
            Some(_) => {
                let parsed = &option_start[..option_start.len() - rest.len()];
                return Err(LineError::UnknownOption(format!(
                    "{parsed}{}",
                    option_name(rest)
                )));
            }
        }
    }
    if let (Some(va), Some(vb)) = (entry.valid_after, entry.valid_before)
        && vb <= va
    {
        return Err(LineError::EmptyValidity {
            valid_after: after_text.unwrap_or_default(),
            valid_before: before_text.unwrap_or_default(),
        });
    }
    Ok((entry, rest))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// The option name at the start of `s`, for error messages.
fn option_name(s: &str) -> String {
    let end = s
        .find(|c: char| is_ws(c) || c == ',' || c == '=')
        .unwrap_or(s.len());
    s[..end].to_string()
}

/// Read a double-quoted value (`\"` escapes a quote), like OpenSSH's
/// `opt_dequote`. Returns the value and the text after the closing quote.
fn dequote<'a>(s: &'a str, option: &str) -> Result<(String, &'a str), LineError> {
    let Some(body) = s.strip_prefix('"') else {
        return Err(LineError::UnquotedValue(option.to_string()));
    };
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &body[i + 1..])),
            '\\' if body[i + 1..].starts_with('"') => {
                value.push('"');
                chars.next();
            }
            c => value.push(c),
        }
    }
    Err(LineError::UnterminatedQuote(format!("{option}={s}")))
}

/// Parse `YYYYMMDD[HHMM[SS]]` with an optional `Z`/`UTC` suffix. Times
/// without a suffix are taken as UTC (OpenSSH uses local time).
fn parse_timestamp(option: &str, value: &str) -> Result<DateTime<Utc>, LineError> {
    let bad = || LineError::BadTimestamp {
        option: option.to_string(),
        value: value.to_string(),
    };
    let digits = if value.len() > 1 && (value.ends_with('Z') || value.ends_with('z')) {
        &value[..value.len() - 1]
    } else if value.len() > 3
        && value
            .get(value.len() - 3..)
            .is_some_and(|s| s.eq_ignore_ascii_case("utc"))
    {
        &value[..value.len() - 3]
    } else {
        value
    };
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let field = |range: std::ops::Range<usize>| -> Option<u32> {
        digits.get(range).and_then(|d| d.parse().ok())
    };
    let year = field(0..4).and_then(|y| i32::try_from(y).ok());
    let (hour, minute, second) = match digits.len() {
        8 => (Some(0), Some(0), Some(0)),
        12 => (field(8..10), field(10..12), Some(0)),
        _ => (field(8..10), field(10..12), field(12..14)),
    };
    let time = (|| {
        let date = NaiveDate::from_ymd_opt(year?, field(4..6)?, field(6..8)?)?;
        let naive = date.and_hms_opt(hour?, minute?, second?)?;
        Some(Utc.from_utc_datetime(&naive))
    })()
    .ok_or_else(bad)?;
    // OpenSSH refuses times at or before the epoch.
    if time.timestamp() <= 0 {
        return Err(bad());
    }
    Ok(time)
}

/// OpenSSH `match_pattern_list`: comma-separated sub-patterns, `!` negates;
/// true only when some positive sub-pattern matches and no negated one does.
fn match_pattern_list(s: &str, list: &str) -> bool {
    let list = list.as_bytes();
    let s = s.as_bytes();
    let mut got_positive = false;
    let mut i = 0;
    while i < list.len() {
        let negated = list.get(i) == Some(&b'!');
        if negated {
            i += 1;
        }
        let start = i;
        while i < list.len() && list.get(i) != Some(&b',') {
            i += 1;
        }
        let sub = list.get(start..i).unwrap_or(&[]);
        if sub.len() >= MAX_SUBPATTERN {
            return false;
        }
        if i < list.len() {
            i += 1; // skip the comma
        }
        if match_pattern(s, sub) {
            if negated {
                return false;
            }
            got_positive = true;
        }
    }
    got_positive
}

/// OpenSSH `match_pattern`: `*` matches any run of bytes, `?` any one byte.
/// Iterative (linear backtracking), so hostile patterns cannot blow up.
fn match_pattern(s: &[u8], p: &[u8]) -> bool {
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = s.get(si) {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&pc) if pc == b'?' || pc == c => {
                si += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or(&[]).iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn patterns() {
        assert!(match_pattern(b"alice", b"alice"));
        assert!(match_pattern(b"alice", b"a*"));
        assert!(match_pattern(b"alice", b"*"));
        assert!(match_pattern(b"", b"*"));
        assert!(match_pattern(b"alice", b"?lic?"));
        assert!(match_pattern(b"alice@example.com", b"*@example.com"));
        assert!(match_pattern(b"abcbcd", b"a*bcd"));
        assert!(!match_pattern(b"alice", b"alic"));
        assert!(!match_pattern(b"alice", b"bob"));
        assert!(!match_pattern(b"alice", b"?"));
        assert!(!match_pattern(b"", b"?"));
        assert!(match_pattern_list("bob", "!carol,*"));
        assert!(!match_pattern_list("carol", "!carol,*"));
        assert!(!match_pattern_list("carol", "*,!carol"));
        assert!(!match_pattern_list("alice", "!carol"));
        assert!(match_pattern_list("bob", "alice,bob"));
        assert!(!match_pattern_list("bo", "alice,bob"));
        assert!(!match_pattern_list("alice", ""));
    }

    #[test]
    fn timestamps() {
        let t = |v| parse_timestamp("valid-after", v).map(|t| t.to_rfc3339());
        assert_eq!(t("20200102").unwrap(), "2020-01-02T00:00:00+00:00");
        assert_eq!(t("20200102Z").unwrap(), "2020-01-02T00:00:00+00:00");
        assert_eq!(t("202001020304").unwrap(), "2020-01-02T03:04:00+00:00");
        assert_eq!(t("20200102030405Z").unwrap(), "2020-01-02T03:04:05+00:00");
        assert_eq!(t("20200102030405UTC").unwrap(), "2020-01-02T03:04:05+00:00");
        for bad in [
            "2020010",
            "20201301",
            "20200230",
            "2020010225",
            "x0200102",
            "Z",
            "19700101Z",
        ] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }
}
