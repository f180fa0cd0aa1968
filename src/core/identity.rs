//! People, as opsgate compares them, and the proof a record carries of who
//! acted (pure).
//!
//! A name is compared as a person, not as a string. [`canonical_name`] is
//! what a name is recorded as: without surrounding space, without
//! default-ignorable code points (zero-width spaces, soft hyphens, a BOM,
//! bidi controls), in NFKC (fullwidth `ｂｏｂ` is `bob`), and made only of
//! letters, marks, digits, space and `.-_@+'` (controls, format characters
//! and symbols are refused). [`person_key`] is what names are compared by:
//! the UTS #39 confusable skeleton of the lower-cased canonical name, so the
//! Cyrillic `bоb` is `bob`, and `alice` with a zero-width space is `alice`.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_security::GeneralSecurityProfile;
use unicode_security::general_security_profile::IdentifierType;

/// Why a name cannot name a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name cannot be empty")]
    Empty,
    #[error("name `{name}` contains {what} {code} at character {index}")]
    Character {
        name: String,
        what: &'static str,
        code: String,
        index: usize,
    },
    #[error("name `{name}` is longer than {max} characters")]
    TooLong { name: String, max: usize },
}

/// The longest name accepted, in characters.
pub const MAX_NAME: usize = 128;

/// Punctuation a name may carry besides letters, marks and digits.
const NAME_PUNCTUATION: &str = " .-_@+'";

fn is_default_ignorable(c: char) -> bool {
    c.identifier_type() == Some(IdentifierType::Default_Ignorable)
}

/// The name as recorded: trimmed, default-ignorables removed, NFKC; an
/// error for anything that is not a letter, mark, digit, space or `.-_@+'`.
pub fn canonical_name(raw: &str) -> Result<String, NameError> {
    let stripped: String = raw.chars().filter(|c| !is_default_ignorable(*c)).collect();
    let name: String = stripped.trim().nfkc().collect();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX_NAME {
        return Err(NameError::TooLong {
            name: crate::core::event::printable(&name).into_owned(),
            max: MAX_NAME,
        });
    }
    for (index, c) in name.chars().enumerate() {
        if c.identifier_allowed() || NAME_PUNCTUATION.contains(c) {
            continue;
        }
        let what = if c.is_control() {
            "a control character"
        } else if c.is_whitespace() {
            "a space other than U+0020"
        } else {
            "a character that is not a letter, digit or .-_@+'"
        };
        return Err(NameError::Character {
            name: crate::core::event::printable(&name).into_owned(),
            what,
            code: format!("U+{:04X}", u32::from(c)),
            index: index + 1,
        });
    }
    Ok(name)
}

/// What names are compared by: the confusable skeleton (UTS #39) of the
/// name, lower-cased, in NFKC, without default-ignorables. Works on any
/// string, including names recorded before names were checked.
pub fn person_key(name: &str) -> String {
    let stripped: String = name.chars().filter(|c| !is_default_ignorable(*c)).collect();
    let lowered: String = stripped.trim().nfkc().collect::<String>().to_lowercase();
    unicode_security::skeleton(&lowered).collect()
}

/// Whether two names are the same person (see [`person_key`]).
pub fn same_person(a: &str, b: &str) -> bool {
    person_key(a) == person_key(b)
}

/// How a record knows who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Proof {
    /// An SSH signature (`ssh-keygen -Y sign -n opsgate`) over the
    /// record's [`Statement`], by a key the policy's allowed signers name
    /// for the person.
    Ssh {
        /// The signing key's fingerprint (`SHA256:…`).
        fingerprint: String,
        /// The armored signature.
        signature: String,
        /// When it was signed, in Unix seconds: part of the statement.
        signed_at: i64,
    },
    /// The operating system's user, from the process's uid.
    Os { uid: u32 },
    /// A name given with `--as`, which the policy trusts
    /// (`identity.trust_as`): a claim, for demos and tests.
    Claimed,
    /// Attested by the chat bridge client that carried the decision: the
    /// client's name and the chat platform's sender id, mapped to the
    /// person by the client's `senders`.
    Chat { client: String, sender: String },
}

impl Proof {
    /// The kind, as `audit verify` counts it.
    pub fn kind(&self) -> &'static str {
        match self {
            Proof::Ssh { .. } => "ssh",
            Proof::Os { .. } => "os",
            Proof::Claimed => "claimed",
            Proof::Chat { .. } => "chat",
        }
    }
}

/// Someone acting: their canonical name, how that is known, and the SSH
/// key that signs what they decide, if they have one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub proof: Proof,
    /// The key file (private, public with an agent, or certificate) that
    /// `ssh-keygen -Y sign` signs with. Each decision is signed when it is
    /// made, over its own [`Statement`].
    pub key: Option<std::path::PathBuf>,
}

impl Actor {
    /// An actor whose name is taken as it is (tests, the system).
    pub fn claimed(name: impl Into<String>) -> Self {
        Actor {
            name: name.into(),
            proof: Proof::Claimed,
            key: None,
        }
    }
}

/// The namespace opsgate's signatures are made in (`ssh-keygen -n`): a
/// signature for git or for a login is never one for opsgate.
pub const NAMESPACE: &str = "opsgate";

/// What a signature says: the record's kind, the plan, what it is bound
/// to, who, when, and why. Its bytes ([`Statement::message`]) are what is
/// signed and verified; a field changed in the record changes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement<'a> {
    /// `plan_submitted`, `approval_granted` or `approval_rejected`.
    pub kind: &'a str,
    pub plan_id: &'a str,
    pub plan_hash: &'a str,
    pub policy_hash: &'a str,
    /// The seq of the submission decided on (a decision), none for a
    /// submission.
    pub submission: Option<u64>,
    /// A decision on rolling back this run.
    pub rollback_of: Option<&'a str>,
    pub principal: &'a str,
    /// Unix seconds.
    pub signed_at: i64,
    pub reason: Option<&'a str>,
}

impl Statement<'_> {
    /// The bytes signed: a fixed first line, then the statement as JSON
    /// (fields in this order).
    pub fn message(&self) -> Vec<u8> {
        let mut out = b"opsgate-statement-v1\n".to_vec();
        // Serializing plain strings and numbers cannot fail.
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out
    }
}

/// Signature checks already made: the digest of (statement, signature)
/// and the answer (the key's fingerprint, or why not).
type Checked = std::collections::HashMap<[u8; 32], Result<String, String>>;

/// The people who may sign, from the policy's `identity.allowed_signers`
/// file and its approvers' inline `keys`: checked signatures are
/// remembered, so a verdict computed again costs a lookup.
#[derive(Clone, Default)]
pub struct Signers {
    set: Option<std::sync::Arc<crate::core::signers::AllowedSigners>>,
    /// SHA-256 of the allowed signers file's text, part of the policy hash.
    digest: Option<String>,
    /// The file's text, as `policy_adopted` records it.
    text: Option<std::sync::Arc<str>>,
    memo: std::sync::Arc<std::sync::Mutex<Checked>>,
}

impl std::fmt::Debug for Signers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signers")
            .field("entries", &self.set.as_ref().map_or(0, |s| s.len()))
            .field("digest", &self.digest)
            .finish()
    }
}

impl PartialEq for Signers {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest && self.len() == other.len()
    }
}

impl Signers {
    /// Signers from parsed entries, and the digest of the file they came
    /// from (if any).
    pub fn new(set: crate::core::signers::AllowedSigners, digest: Option<String>) -> Self {
        Signers {
            set: Some(std::sync::Arc::new(set)),
            digest,
            text: None,
            memo: Default::default(),
        }
    }

    /// The same signers, remembering the text of the file they came from.
    #[must_use]
    pub fn with_text(self, text: &str) -> Self {
        Signers {
            text: Some(text.into()),
            ..self
        }
    }

    /// The allowed signers file's text, if the policy names one.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// How many entries (keys and certificate authorities) there are.
    pub fn len(&self) -> usize {
        self.set.as_ref().map_or(0, |s| s.len())
    }

    /// Whether no one may sign.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The digest of the allowed signers file, for the policy hash.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The parsed entries, if any.
    pub fn allowed(&self) -> Option<&crate::core::signers::AllowedSigners> {
        self.set.as_deref()
    }

    /// Checks `signature` over `statement`, by a key the signers name for
    /// `statement.principal`, valid at the time signed. Returns the key's
    /// fingerprint, or why not.
    pub fn check(&self, statement: &Statement<'_>, signature: &str) -> Result<String, String> {
        use sha2::Digest;
        let message = statement.message();
        let mut h = sha2::Sha256::new();
        h.update(&message);
        h.update([0]);
        h.update(signature.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        if let Ok(memo) = self.memo.lock()
            && let Some(known) = memo.get(&key)
        {
            return known.clone();
        }
        let answer = match &self.set {
            None => Err(
                "the policy names no allowed signers (identity.allowed_signers, approvers' keys)"
                    .to_owned(),
            ),
            Some(set) => {
                let at =
                    chrono::DateTime::from_timestamp(statement.signed_at, 0).unwrap_or_default();
                set.verify(statement.principal, NAMESPACE, &message, signature, at)
                    .map(|v| v.fingerprint)
                    .map_err(|e| e.to_string())
            }
        };
        if let Ok(mut memo) = self.memo.lock() {
            memo.insert(key, answer.clone());
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disguised_names_are_the_same_person() {
        for disguise in [
            "bob\u{200b}",
            "\u{feff}bob",
            "b\u{00ad}ob",
            "ｂｏｂ",
            "b\u{043e}b", // Cyrillic o
            " Bob ",
            "BOB",
        ] {
            assert!(same_person("bob", disguise), "{disguise:?} is bob");
        }
        assert!(!same_person("bob", "rob"));
        assert!(!same_person("alice", "alicia"));
    }

    #[test]
    fn canonical_names_drop_invisibles_and_refuse_controls() {
        assert_eq!(canonical_name(" bob\u{200b} ").as_deref(), Ok("bob"));
        assert_eq!(canonical_name("ｂｏｂ").as_deref(), Ok("bob"));
        assert_eq!(canonical_name("Émile Zola").as_deref(), Ok("Émile Zola"));
        assert_eq!(
            canonical_name("o'brien@example.com").as_deref(),
            Ok("o'brien@example.com")
        );
        assert_eq!(canonical_name("\u{200b}"), Err(NameError::Empty));
        for bad in [
            "bob\u{7}",
            "bob\nroot",
            "bob\u{0600}",
            "bob;rm",
            "bo\u{2028}b",
        ] {
            let err = canonical_name(bad).expect_err(bad);
            assert!(matches!(err, NameError::Character { .. }), "{bad:?}: {err}");
        }
        assert!(canonical_name(&"a".repeat(MAX_NAME + 1)).is_err());
    }
}
