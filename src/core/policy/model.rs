//! The typed policy: what the policy file may say, and nothing else.
//!
//! Every struct denies unknown keys. The `Default` values here are Rust's
//! zero values and only serve to validate a partial user file; the real
//! defaults are the embedded `config/opsgate.yaml`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::core::classify::schema::{GlobPattern, RuleSpec, ToolSpec};
use crate::core::duration::HumanDuration;
use crate::core::event::Channel;
use crate::core::redact::RedactPattern;
use crate::core::risk::RiskLevel;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub execution: ExecutionPolicy,
    pub safety: SafetyPolicy,
    pub approvals: ApprovalPolicy,
    pub audit: AuditPolicy,
    /// When present, only these people may approve, each within their
    /// level and channels.
    pub approvers: Option<Vec<Approver>>,
    pub aliases: BTreeMap<String, String>,
    pub tools: BTreeMap<String, ToolSpec>,
    pub rules: Vec<RuleSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionPolicy {
    pub auto_approve_low_risk: bool,
    pub require_dry_run: bool,
    /// Roll back after a failure or a stop without asking.
    pub auto_rollback: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafetyPolicy {
    pub require_approval: bool,
    pub block_production: bool,
    pub production_namespaces: Vec<String>,
    pub production_contexts: Vec<GlobPattern>,
    pub allow_critical: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalPolicy {
    pub required: RequiredApprovals,
    pub ttl: HumanDuration,
    pub separation_of_duties: bool,
    /// The highest level each channel may approve.
    pub channel_max_risk: BTreeMap<Channel, RiskLevel>,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy {
            required: RequiredApprovals::default(),
            ttl: HumanDuration::from_secs(30 * 60),
            separation_of_duties: false,
            channel_max_risk: BTreeMap::new(),
        }
    }
}

/// A person allowed to approve.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Approver {
    pub name: String,
    /// The highest level they may approve.
    #[serde(default = "critical")]
    pub max_risk: RiskLevel,
    /// The channels they may approve from (default: all).
    #[serde(default = "all_channels")]
    pub channels: Vec<Channel>,
}

fn critical() -> RiskLevel {
    RiskLevel::Critical
}

fn all_channels() -> Vec<Channel> {
    vec![Channel::Tui, Channel::Cli, Channel::Chat]
}

/// The audit log's key and extra redaction patterns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditPolicy {
    /// A file holding the HMAC key for the hash chain, relative to the
    /// policy file. `OPSGATE_AUDIT_KEY` takes precedence.
    pub key_file: Option<PathBuf>,
    /// Regexes masked in every logged string, after the built-in ones. A
    /// group named `secret` limits the mask to that group.
    pub redact: Vec<RedactPattern>,
}

/// Distinct approvals each level needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequiredApprovals {
    #[serde(rename = "LOW")]
    pub low: u32,
    #[serde(rename = "MEDIUM")]
    pub medium: u32,
    #[serde(rename = "HIGH")]
    pub high: u32,
    #[serde(rename = "CRITICAL")]
    pub critical: u32,
}

impl RequiredApprovals {
    pub fn for_level(&self, level: RiskLevel) -> u32 {
        match level {
            RiskLevel::Low => self.low,
            RiskLevel::Medium => self.medium,
            RiskLevel::High => self.high,
            RiskLevel::Critical => self.critical,
        }
    }
}
