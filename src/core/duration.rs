//! Human-friendly durations (`30m`, `5s`, `1h30m`) as they appear in plans and
//! the policy.
//!
//! A `HumanDuration` keeps the parsed value only, so two spellings of one
//! duration (`90s`, `1m30s`) are equal and hash alike. It serializes as whole
//! milliseconds, which is the canonical form used in hashes.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> Self {
        HumanDuration(Duration::from_secs(secs))
    }

    pub fn get(self) -> Duration {
        self.0
    }

    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }
}

/// The error for a duration that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{input}`: {detail} (examples: 30s, 5m, 1h30m)")]
pub struct InvalidDuration {
    pub input: String,
    pub detail: String,
}

impl FromStr for HumanDuration {
    type Err = InvalidDuration;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let d = humantime::parse_duration(s.trim()).map_err(|e| InvalidDuration {
            input: s.to_owned(),
            detail: e.to_string(),
        })?;
        if d.is_zero() {
            return Err(InvalidDuration {
                input: s.to_owned(),
                detail: "must be longer than zero".into(),
            });
        }
        Ok(HumanDuration(d))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_duration_are_equal() {
        let a: HumanDuration = "90s".parse().unwrap();
        let b: HumanDuration = "1m 30s".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_millis(), 90_000);
    }

    #[test]
    fn bad_and_zero_durations_are_rejected() {
        let e = "5 parsecs".parse::<HumanDuration>().unwrap_err();
        assert!(
            e.to_string().contains("invalid duration `5 parsecs`"),
            "{e}"
        );
        assert!("0s".parse::<HumanDuration>().is_err());
    }
}
