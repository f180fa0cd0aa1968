//! Risk levels and classifications.
//!
//! `RiskLevel` is totally ordered (LOW < MEDIUM < HIGH < CRITICAL) so that
//! "the level of a line is the maximum over its parts" is a plain `max`. A
//! `Classification` carries the level together with the reasons that set it,
//! so every rating can be explained to the person asked to approve it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How dangerous an action is. The order of the variants is the order of risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
    Critical,
}

impl RiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "LOW",
            RiskLevel::Medium => "MEDIUM",
            RiskLevel::High => "HIGH",
            RiskLevel::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The error for a level name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown risk level `{0}` (expected LOW, MEDIUM, HIGH or CRITICAL)")]
pub struct UnknownRiskLevel(pub String);

impl FromStr for RiskLevel {
    type Err = UnknownRiskLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "LOW" => Ok(RiskLevel::Low),
            "MEDIUM" => Ok(RiskLevel::Medium),
            "HIGH" => Ok(RiskLevel::High),
            "CRITICAL" => Ok(RiskLevel::Critical),
            _ => Err(UnknownRiskLevel(s.to_owned())),
        }
    }
}

impl<'de> Deserialize<'de> for RiskLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One reason behind a rating: which rule (or built-in safeguard) matched,
/// on which part of the line, and what level it asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub level: RiskLevel,
    /// The simple command the reason is about, as written (after unwrapping).
    pub part: String,
    /// Wrappers the part was found inside, outermost first (`sudo`, `sh -c`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub via: Vec<String>,
    /// Which rule matched: a rule id, or a built-in safeguard such as
    /// `unparseable` or `production-scope`.
    pub rule: String,
    pub message: String,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: `{}`", self.level, self.part)?;
        if !self.via.is_empty() {
            write!(f, " (via {})", self.via.join(" › "))?;
        }
        write!(f, ": {} [{}]", self.message, self.rule)
    }
}

/// A rated action: its level and the reasons, most severe first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub risk: RiskLevel,
    pub reasons: Vec<Reason>,
}

impl Classification {
    /// Builds a classification from its reasons. The level is the highest
    /// reason's; the reasons are sorted most severe first, keeping their
    /// order within a level. An action with no reasons is LOW.
    pub fn from_reasons(mut reasons: Vec<Reason>) -> Self {
        reasons.sort_by_key(|r| std::cmp::Reverse(r.level));
        let risk = reasons.first().map_or(RiskLevel::Low, |r| r.level);
        Classification { risk, reasons }
    }

    /// The reasons that set the level (those at the top level).
    pub fn deciding_reasons(&self) -> impl Iterator<Item = &Reason> {
        self.reasons.iter().filter(move |r| r.level == self.risk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_by_risk() {
        assert!(RiskLevel::Low < RiskLevel::Medium);
        assert!(RiskLevel::Medium < RiskLevel::High);
        assert!(RiskLevel::High < RiskLevel::Critical);
    }

    #[test]
    fn levels_parse_case_insensitively_and_reject_others() {
        assert_eq!("critical".parse::<RiskLevel>(), Ok(RiskLevel::Critical));
        assert_eq!("Medium".parse::<RiskLevel>(), Ok(RiskLevel::Medium));
        assert!("SEVERE".parse::<RiskLevel>().is_err());
    }

    #[test]
    fn classification_takes_the_highest_reason() {
        let r = |level| Reason {
            level,
            part: "x".into(),
            via: vec![],
            rule: "t".into(),
            message: "m".into(),
        };
        let c = Classification::from_reasons(vec![r(RiskLevel::Low), r(RiskLevel::High)]);
        assert_eq!(c.risk, RiskLevel::High);
        assert_eq!(c.reasons[0].level, RiskLevel::High);
        assert_eq!(Classification::from_reasons(vec![]).risk, RiskLevel::Low);
    }
}
