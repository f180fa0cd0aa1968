//! Content hashes: `sha256:<hex>` over canonical bytes.
//!
//! Canonical bytes are a domain tag and a version line, then the JSON form of
//! a normalized value. JSON of Rust structs has a fixed field order and every
//! map in the hashed types is a `BTreeMap`, so the bytes never depend on a
//! map's iteration order, on YAML layout or on comments.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Hashes a value's canonical form under a domain tag such as
/// `opsgate-plan/1`, so a plan and a policy can never share a hash.
pub fn canonical_sha256<T: Serialize>(
    domain: &str,
    value: &T,
) -> Result<String, serde_json::Error> {
    let body = serde_json::to_vec(value)?;
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    h.update(b"\n");
    h.update(&body);
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

macro_rules! hash_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: String) -> Self {
                $name(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

hash_type!(
    /// The hash of a normalized plan; approvals are bound to it.
    PlanHash
);
hash_type!(
    /// The hash of the effective policy (user file over the default, plus
    /// the built-in rules); approvals are bound to it.
    PolicyHash
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_separates_equal_values() {
        let a = canonical_sha256("opsgate-plan/1", &1u8).unwrap();
        let b = canonical_sha256("opsgate-policy/1", &1u8).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64);
    }
}
